//! Counts of the system calls pydx makes to read its targets, for
//! `record --stats` and for tests that hold sampling to a budget.

use std::sync::atomic::{AtomicU64, Ordering};

static MEMORY_READS: AtomicU64 = AtomicU64::new(0);
static BYTES_READ: AtomicU64 = AtomicU64::new(0);
static PROC_READS: AtomicU64 = AtomicU64::new(0);

/// System calls made to read targets since pydx started (or between two
/// readings, subtracted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// `process_vm_readv` calls.
    pub memory_reads: u64,
    /// Bytes those calls transferred.
    pub bytes_read: u64,
    /// Reads of `/proc` files of thread states (one `pread` each).
    pub proc_reads: u64,
}

impl ReadStats {
    /// The counts so far.
    pub fn now() -> Self {
        Self {
            memory_reads: MEMORY_READS.load(Ordering::Relaxed),
            bytes_read: BYTES_READ.load(Ordering::Relaxed),
            proc_reads: PROC_READS.load(Ordering::Relaxed),
        }
    }

    /// The counts since `earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            memory_reads: self.memory_reads.saturating_sub(earlier.memory_reads),
            bytes_read: self.bytes_read.saturating_sub(earlier.bytes_read),
            proc_reads: self.proc_reads.saturating_sub(earlier.proc_reads),
        }
    }
}

pub(crate) fn count_memory_read(bytes: usize) {
    MEMORY_READS.fetch_add(1, Ordering::Relaxed);
    BYTES_READ.fetch_add(bytes as u64, Ordering::Relaxed);
}

pub(crate) fn count_proc_read() {
    PROC_READS.fetch_add(1, Ordering::Relaxed);
}
