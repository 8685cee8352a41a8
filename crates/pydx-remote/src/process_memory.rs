//! Reading another process's memory with `process_vm_readv`.
#![allow(unsafe_code)]

use crate::error::{ReadError, ReadErrorKind};
use crate::memory::{MemoryReader, ReadRequest};

/// Most iovecs one `process_vm_readv` call accepts (Linux `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

/// Memory of a live process, read with `process_vm_readv(2)`.
///
/// Reading needs the same permission as a ptrace attach. The target is never
/// stopped or written to.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pid: u32,
}

impl ProcessMemory {
    /// Memory of process `pid`. Nothing is checked until the first read.
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// The process this reads from.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    fn error_kind(&self, errno: i32) -> ReadErrorKind {
        match errno {
            libc::EFAULT | libc::EIO | libc::ENOMEM => ReadErrorKind::Unmapped,
            libc::ESRCH => ReadErrorKind::ProcessGone,
            // A process that is exiting has given up its memory, and the
            // kernel refuses to read it with EPERM: it is going, not guarded.
            libc::EPERM | libc::EACCES if crate::proc::exiting(self.pid) => {
                ReadErrorKind::ProcessGone
            }
            libc::EPERM | libc::EACCES => ReadErrorKind::PermissionDenied,
            other => ReadErrorKind::Os(other),
        }
    }

    /// One `process_vm_readv` call over `requests` (at most [`MAX_IOVECS`]);
    /// returns the number of bytes transferred.
    fn readv(&self, requests: &mut [ReadRequest<'_>]) -> Result<usize, i32> {
        let mut local = Vec::with_capacity(requests.len());
        let mut remote = Vec::with_capacity(requests.len());
        for request in requests.iter_mut() {
            local.push(libc::iovec {
                iov_base: request.buf.as_mut_ptr().cast(),
                iov_len: request.buf.len(),
            });
            remote.push(libc::iovec {
                iov_base: request.addr as *mut libc::c_void,
                iov_len: request.buf.len(),
            });
        }
        // SAFETY: every local iovec points into a distinct `&mut [u8]` that
        // outlives the call and has exactly `iov_len` writable bytes; the
        // remote iovecs are only addresses in the other process, which the
        // kernel checks. The counts match the vectors' lengths.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid as libc::pid_t,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            crate::stats::count_memory_read(0);
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            crate::stats::count_memory_read(n as usize);
            Ok(n as usize)
        }
    }
}

impl MemoryReader for ProcessMemory {
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len();
        let mut request = [ReadRequest::new(addr, buf)];
        match self.readv(&mut request) {
            Ok(n) if n == len => Ok(()),
            Ok(_) => Err(ReadError::new(addr, len, ReadErrorKind::Unmapped)),
            Err(errno) => Err(ReadError::new(addr, len, self.error_kind(errno))),
        }
    }

    fn read_batch(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        let mut start = 0;
        while start < requests.len() {
            let end = (start + MAX_IOVECS).min(requests.len());
            let group = &mut requests[start..end];
            let transferred = match self.readv(group) {
                Ok(n) => n,
                Err(errno) => {
                    let kind = self.error_kind(errno);
                    if kind != ReadErrorKind::Unmapped {
                        return Err(ReadError::new(group[0].addr, group[0].buf.len(), kind));
                    }
                    0
                }
            };
            // The kernel stops at the first range it cannot read: everything
            // before it is complete, the failing one is not.
            let mut remaining = transferred;
            let mut completed = 0;
            for request in group.iter_mut() {
                if remaining >= request.buf.len() {
                    remaining -= request.buf.len();
                    request.done = true;
                    completed += 1;
                } else {
                    break;
                }
            }
            if completed == group.len() {
                start = end;
            } else {
                // Skip the request that failed and carry on after it.
                group[completed].done = false;
                start += completed + 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::ReadExt;

    #[test]
    fn reads_own_memory() {
        let value: u64 = 0x1122_3344_5566_7788;
        let memory = ProcessMemory::new(std::process::id());
        let addr = &value as *const u64 as u64;
        assert_eq!(memory.read_u64(addr).unwrap(), value);
    }

    #[test]
    fn unmapped_address_is_reported_as_unmapped() {
        let memory = ProcessMemory::new(std::process::id());
        let err = memory.read_u64(8).unwrap_err();
        assert_eq!(err.kind, ReadErrorKind::Unmapped);
    }

    #[test]
    fn batch_skips_the_failing_range_and_reads_the_rest() {
        let values = [1u64, 2, 3];
        let memory = ProcessMemory::new(std::process::id());
        let (mut a, mut b, mut c) = ([0u8; 8], [0u8; 8], [0u8; 8]);
        let mut requests = [
            ReadRequest::new(&values[0] as *const u64 as u64, &mut a),
            ReadRequest::new(16, &mut b),
            ReadRequest::new(&values[2] as *const u64 as u64, &mut c),
        ];
        memory.read_batch(&mut requests).unwrap();
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        assert_eq!(done, [true, false, true]);
        assert_eq!(u64::from_le_bytes(a), 1);
        assert_eq!(u64::from_le_bytes(c), 3);
    }

    #[test]
    fn missing_process_is_reported_as_gone() {
        // PID 0x7fff_fff0 is above pid_max on every Linux system.
        let memory = ProcessMemory::new(0x7fff_fff0);
        let err = memory.read_u64(0x1000).unwrap_err();
        assert_eq!(err.kind, ReadErrorKind::ProcessGone);
    }
}
