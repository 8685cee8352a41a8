//! Error types for process access.

use std::path::PathBuf;

/// A failed read of the target's memory.
///
/// It is `Copy` and carries no heap data, so a sampler can produce, count and
/// drop millions of them without cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {len} bytes at {addr:#x}: {kind}")]
pub struct ReadError {
    /// Address of the failed read in the target.
    pub addr: u64,
    /// Number of bytes that were asked for.
    pub len: usize,
    /// Why the read failed.
    pub kind: ReadErrorKind,
}

/// Why a read of the target's memory failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadErrorKind {
    /// The address range is not (or no longer) mapped in the target.
    #[error("address not mapped")]
    Unmapped,
    /// The target process no longer exists.
    #[error("the process has exited")]
    ProcessGone,
    /// The kernel refused access to the target's memory.
    #[error("permission denied")]
    PermissionDenied,
    /// A value read from the target was out of the range the caller accepts.
    #[error("implausible value read from the target")]
    Implausible,
    /// Any other OS error, by errno.
    #[error("OS error {0}")]
    Os(i32),
}

impl ReadError {
    /// A read error of the given kind for `len` bytes at `addr`.
    pub fn new(addr: u64, len: usize, kind: ReadErrorKind) -> Self {
        Self { addr, len, kind }
    }

    /// True when the target process has gone away.
    pub fn is_process_gone(&self) -> bool {
        self.kind == ReadErrorKind::ProcessGone
    }
}

/// Errors from inspecting a process (as opposed to reading its memory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// There is no process with this PID.
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    /// The kernel refused access; `hint` explains how to get it.
    #[error("permission denied reading process {pid}: {hint}")]
    PermissionDenied {
        /// The target process.
        pid: u32,
        /// How to get access (capabilities, ptrace_scope, user).
        hint: String,
    },
    /// A read of the target's memory failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A file of the target (maps, ELF image, /proc entry) could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An ELF file could not be parsed.
    #[error("cannot parse ELF file {path}: {message}")]
    Elf {
        /// The file that failed.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// Pausing or resuming a thread with ptrace failed.
    #[error("cannot pause thread {tid} of process {pid}: {source}")]
    Pause {
        /// The target process.
        pid: u32,
        /// The thread that failed.
        tid: u32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// There is no thread with this TID (it exited, or never existed).
    #[error("no thread with TID {0}")]
    NoSuchThread(u32),
    /// The kernel refused `perf_event_open` on a thread; `reason` says
    /// what is missing.
    #[error("perf_event_open refused for thread {tid} ({reason})")]
    PerfDenied {
        /// The thread that was to be sampled.
        tid: u32,
        /// What is missing (paranoid level, ptrace permission, capability).
        reason: String,
    },
    /// Kernel sampling of user stacks is not available here.
    #[error("cannot sample thread {tid} with perf_event_open: {reason}")]
    PerfUnsupported {
        /// The thread that was to be sampled.
        tid: u32,
        /// Why not.
        reason: &'static str,
    },
    /// Another failure setting up kernel sampling of a thread.
    #[error("{call} failed for perf sampling of thread {tid}: {source}")]
    Perf {
        /// The thread that was to be sampled.
        tid: u32,
        /// The call that failed.
        call: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error on `path`, turning ENOENT/ESRCH on a /proc path into
    /// [`Error::NoSuchProcess`] and EPERM/EACCES into [`Error::PermissionDenied`].
    pub(crate) fn from_proc_io(pid: u32, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) if !crate::proc::process_exists(pid) => {
                Error::NoSuchProcess(pid)
            }
            Some(libc::EPERM) | Some(libc::EACCES) if crate::proc::exiting(pid) => {
                Error::NoSuchProcess(pid)
            }
            Some(libc::EPERM) | Some(libc::EACCES) => Error::PermissionDenied {
                pid,
                hint: crate::permission::permission_hint(pid),
            },
            _ => Error::Io {
                path: path.into(),
                source,
            },
        }
    }
}
