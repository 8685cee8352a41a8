//! Errors of the CPython reader.

use pydx_remote::ReadError;

use crate::version::PythonVersion;

/// Why attaching to a process as a Python process failed. These end a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// Reading the process failed (no such process, permission denied, ...).
    #[error(transparent)]
    Remote(#[from] pydx_remote::Error),
    /// The process runs no CPython interpreter pydx can find.
    #[error("process {pid} ({command}) is not a Python process: {reason}")]
    NotPython {
        /// The process.
        pid: u32,
        /// Its command line, shortened.
        command: String,
        /// What was looked for and not found.
        reason: String,
    },
    /// The interpreter's version is outside what pydx reads.
    #[error("process {pid} runs Python {version}, which pydx does not support ({reason})")]
    UnsupportedVersion {
        /// The process.
        pid: u32,
        /// The version found.
        version: String,
        /// Which versions are supported, or what did not match.
        reason: String,
    },
    /// The interpreter's state or stacks do not read with the layout of its
    /// version: a build pydx does not know, or (briefly) one still starting.
    #[error("process {pid} runs Python {version}, which pydx does not support ({reason})")]
    LayoutMismatch {
        /// The process.
        pid: u32,
        /// The version found.
        version: String,
        /// What did not read.
        reason: String,
    },
    /// The interpreter has not finished starting, or is shutting down.
    #[error("the Python interpreter in process {pid} is not running ({reason})")]
    NotRunning {
        /// The process.
        pid: u32,
        /// Starting, finalizing, or no thread state.
        reason: String,
    },
}

/// Why one read of interpreter state failed. These are expected while a
/// process runs (a thread exits mid-read, a frame is torn) and are counted,
/// not fatal, except [`WalkError::is_process_gone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// Reading the target's memory failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A value read from the target was inconsistent (torn or corrupt).
    #[error("inconsistent {what} at {addr:#x}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Where.
        addr: u64,
    },
    /// The thread's stack changed every time it was read (before 3.11,
    /// where each frame is read on its own), so no consistent stack was seen.
    #[error("stack changed while it was read ({attempts} attempts)")]
    Torn {
        /// How many times it was read.
        attempts: usize,
    },
}

impl WalkError {
    /// True when the target process no longer exists.
    pub fn is_process_gone(&self) -> bool {
        matches!(self, WalkError::Read(e) if e.is_process_gone())
    }

    /// True when the stack changed while it was read.
    pub fn is_torn(&self) -> bool {
        matches!(self, WalkError::Torn { .. })
    }

    /// True when the kernel denied access.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, WalkError::Read(e) if e.kind == pydx_remote::ReadErrorKind::PermissionDenied)
    }

    pub(crate) fn invalid(what: &'static str, addr: u64) -> Self {
        WalkError::Invalid { what, addr }
    }
}

impl AttachError {
    pub(crate) fn unsupported(pid: u32, version: PythonVersion) -> Self {
        AttachError::UnsupportedVersion {
            pid,
            version: version.to_string(),
            reason: format!(
                "pydx reads CPython {}.{} to {}.{}",
                PythonVersion::OLDEST_SUPPORTED.0,
                PythonVersion::OLDEST_SUPPORTED.1,
                PythonVersion::NEWEST_KNOWN.0,
                PythonVersion::NEWEST_KNOWN.1
            ),
        }
    }
}
