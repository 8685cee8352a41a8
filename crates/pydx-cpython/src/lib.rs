//! CPython version knowledge: find the interpreter in a process and read its
//! threads, frames, code objects and values from outside, without stopping
//! or changing it.
//!
//! Supported: CPython 3.8 to 3.15 on Linux x86_64, shared-libpython and
//! static builds, in the host or in a chroot/container. From 3.13 on, the
//! structure layout is taken from the target's own `_Py_DebugOffsets`, so
//! patch releases (and, after a check, newer minor versions) read without a
//! code change.
//!
//! # Design constraints
//! - Every read of interpreter state goes through one [`Layout`]; there are
//!   no version `match`es scattered through the walker.
//! - Everything is generic over [`pydx_remote::MemoryReader`], so the walker
//!   runs the same over a live process and over test memory images.
//! - Foreign memory is untrusted: every loop is bounded (stack depth, thread
//!   count, dictionary size, string length, line-table size) and every
//!   allocation is capped, so garbage can cost an error, never a hang.
//!
//! ```
//! use pydx_cpython::{LineTable, LineTableFormat};
//! // 3.10 line table: 4 bytes on line 11, then 2 bytes on line 13.
//! let table = LineTable::decode(LineTableFormat::LineTable310, &[4, 1, 2, 2], 10);
//! assert_eq!(table.line_at(2), Some(11));
//! assert_eq!(table.line_at(4), Some(13));
//! ```

mod asyncio;
mod debug_offsets;
mod error;
mod frames;
mod layout;
mod linetable;
mod locals;
mod locate;
mod objects;
mod process;
mod reader;
mod requests;
mod threads;
mod version;

pub use asyncio::{AsyncioDebugOffsets, AsyncioTask};
pub use debug_offsets::{DebugOffsets, DebugOffsetsError};
pub use error::{AttachError, WalkError};
pub use frames::{CodeInfo, Frame, RawFrame, RawStack, Stack};
pub use layout::{
    DictKeysFormat, FrameEntry, FrameRunning, InstructionPointer, Layout, LineTableFormat,
    LongFormat, ManagedDict,
};
pub use linetable::LineTable;
pub use locals::Local;
pub use objects::{decode_string_data, Value, UNREADABLE_REPR};
pub use process::{AsyncioError, PythonProcess, PythonThread};
pub use reader::{PythonReader, TypeInfo, MAX_STACK_DEPTH, MAX_STRING_CHARS};
pub use requests::{HttpRequest, RequestCount};
pub use threads::{Gil, ThreadState, Threads, GIL_STATE_SIZE};
pub use version::{PythonVersion, ReleaseLevel};
