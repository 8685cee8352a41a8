//! Read-only access to another Linux process.
//!
//! This crate owns everything pydx needs to know about a target process that
//! is not about Python: reading its memory, listing its mappings and threads,
//! finding symbols in the ELF files it has mapped, telling whether a thread is
//! running, and briefly pausing it for a consistent snapshot.
//!
//! # Design constraints
//! - Nothing here writes to the target. Pausing uses `PTRACE_SEIZE` and
//!   `PTRACE_INTERRUPT`, and every paused thread is resumed when the guard is
//!   dropped.
//! - Reads from the target are fallible and cheap to fail: [`ReadError`] is
//!   `Copy`, so callers can count failed samples instead of aborting.
//! - All code that talks to the target through a [`MemoryReader`] can run over
//!   [`FakeMemory`] in tests.
//! - The only `unsafe` in pydx lives here, each block with a `SAFETY:` note.
//!
//! ```
//! use pydx_remote::{FakeMemory, MemoryReader, ReadExt};
//! let mut memory = FakeMemory::default();
//! memory.insert(0x1000, 42u64.to_le_bytes().to_vec());
//! assert_eq!(memory.read_u64(0x1000).unwrap(), 42);
//! assert!(memory.read_u64(0x2000).is_err());
//! ```

mod elf;
mod error;
mod maps;
mod memory;
mod pause;
mod perf;
mod permission;
mod prefetch;
mod proc;
mod process_memory;
mod signal;
mod stats;
mod switches;
#[cfg(test)]
mod test_support;
mod timer;

pub use elf::{ElfImage, ElfSymbol, FunctionSymbol, LoadInfo};
pub use error::{Error, ReadError, ReadErrorKind, Result};
pub use maps::{MemoryMap, MemoryMaps};
pub use memory::{FakeMemory, MemoryReader, ReadExt, ReadRequest, RoundCopy};
pub use pause::{ProcessPause, UnwindRegisters};
pub use perf::{monotonic_ns, PerfStackSample, PerfStackSampler};
pub use permission::permission_hint;
pub use prefetch::PrefetchingMemory;
pub use proc::{
    child_pids, cpus_available, executable, memory_usage, parent_pid, process_alive,
    process_exists, read_cmdline, read_proc_text, thread_ids, MemoryUsage, NamespaceTids,
    ProcessInfo, RunState, SyscallState, ThreadStateReader, UserPosition,
};
pub use process_memory::ProcessMemory;
pub use signal::{send_stop, StopSignal};
pub use stats::ReadStats;
pub use switches::{Switch, SwitchWatcher, SwitchesOver};
pub use timer::{leave_real_time_priority, set_precise_sleep, take_real_time_priority};
