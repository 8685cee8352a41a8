//! Native stacks of stopped threads (or copied by the kernel while they run).
//!
//! A Python stack read from the interpreter's frames shows where Python code
//! is; time spent inside compiled code (an extension module, a library it
//! calls, the interpreter's built-in functions) is charged to the Python line
//! that called it. This crate recovers the C, C++ and Rust frames of a thread
//! held stopped (see [`pydx_remote::ProcessPause`]):
//!
//! - [`NativeUnwinder`] unwinds from the thread's registers over its stack
//!   memory, with each mapped binary's unwind tables (`.eh_frame`,
//!   `.debug_frame`, frame pointers where there are none), through framehop;
//! - it names each frame from the binary's symbol table ([`Symbols`]), or as
//!   `module+0xoffset` when the binary has no symbol for it;
//! - [`merge`] puts the Python frames in place of the interpreter's
//!   evaluation loop calls that were running them, so that a native function
//!   shows under the Python frame that called it and above the Python frames
//!   it called back into.

mod merge;
mod modules;
mod unwind;

pub use merge::{merge, unwind_until, MergedFrame, Mismatch, PythonCall, CUT_SHORT};
pub use modules::{demangle, Symbols};
pub use unwind::{NativeFrame, NativeStack, NativeUnwinder, Role, UnwindUntil};
