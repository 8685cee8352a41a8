//! Briefly stopping a process's threads for a consistent snapshot.
#![allow(unsafe_code)]

use crate::error::{Error, Result};

/// Threads of a process held stopped with `PTRACE_SEIZE` + `PTRACE_INTERRUPT`.
///
/// Seizing does not send the target a signal. Dropping the guard detaches
/// every thread, which resumes it. A signal that arrives while a thread is
/// held stays pending and is delivered after the detach, so the target sees
/// no difference beyond the pause. If pydx dies, the kernel detaches the
/// threads itself.
#[derive(Debug)]
pub struct ProcessPause {
    pid: u32,
    /// Threads that are stopped and must be detached.
    held: Vec<u32>,
}

impl ProcessPause {
    /// Stops every thread in `tids`. Threads that exit while this runs are
    /// skipped; any other failure resumes the threads already stopped.
    pub fn new(pid: u32, tids: &[u32]) -> Result<Self> {
        let mut pause = Self {
            pid,
            held: Vec::with_capacity(tids.len()),
        };
        for &tid in tids {
            if pause.seize(tid)? {
                pause.held.push(tid);
            }
        }
        pause.held.retain(|&tid| Self::wait_for_stop(tid));
        Ok(pause)
    }

    /// The threads that are held stopped.
    pub fn threads(&self) -> &[u32] {
        &self.held
    }

    /// Seizes and interrupts one thread; `Ok(false)` if it is already gone.
    fn seize(&self, tid: u32) -> Result<bool> {
        // SAFETY: PTRACE_SEIZE and PTRACE_INTERRUPT take no pointers.
        let seized = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                tid as libc::pid_t,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        if seized != 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(false),
                Some(libc::EPERM) => Err(Error::PermissionDenied {
                    pid: self.pid,
                    hint: crate::permission::permission_hint(self.pid),
                }),
                _ => Err(Error::Pause {
                    pid: self.pid,
                    tid,
                    source: err,
                }),
            };
        }
        // SAFETY: as above.
        let interrupted = unsafe {
            libc::ptrace(
                libc::PTRACE_INTERRUPT,
                tid as libc::pid_t,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        if interrupted != 0 {
            Self::detach(tid, 0);
            return Ok(false);
        }
        Ok(true)
    }

    /// Waits until `tid` reports its interrupt stop and says whether it is
    /// now held. A thread that exits, or that stops for a signal first, is
    /// not held: the latter is detached at once with its signal, so no signal
    /// is ever lost, at the price of that one thread running on.
    fn wait_for_stop(tid: u32) -> bool {
        loop {
            // Look before taking: when pydx launched the target, its exit
            // status is pydx's to collect as the parent, later. Only a stop
            // is taken here.
            // SAFETY: an all-zero `siginfo_t` is valid, and `info` is a
            // valid out-pointer for the call.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    tid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WSTOPPED | libc::WNOWAIT | libc::__WALL,
                )
            };
            if rc < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // ECHILD: the thread exited before stopping.
                return false;
            }
            if matches!(
                info.si_code,
                libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED
            ) {
                return false;
            }
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer for the call.
            let rc = unsafe { libc::waitpid(tid as libc::pid_t, &mut status, libc::__WALL) };
            if rc < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // ECHILD: the thread exited before stopping.
                return false;
            }
            if !libc::WIFSTOPPED(status) {
                return false;
            }
            if (status >> 16) & 0xff == libc::PTRACE_EVENT_STOP {
                return true;
            }
            Self::detach(tid, libc::WSTOPSIG(status));
            return false;
        }
    }

    fn detach(tid: u32, signal: i32) {
        // SAFETY: PTRACE_DETACH takes the signal to deliver as data, no pointers.
        unsafe {
            libc::ptrace(
                libc::PTRACE_DETACH,
                tid as libc::pid_t,
                std::ptr::null_mut::<libc::c_void>(),
                signal as usize as *mut libc::c_void,
            );
        }
    }
}

impl Drop for ProcessPause {
    fn drop(&mut self) {
        for &tid in &self.held {
            Self::detach(tid, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc::{thread_ids, RunState, ThreadStateReader};

    #[test]
    fn pauses_and_resumes_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut states = ThreadStateReader::new(pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while states.state(pid) != Some(RunState::Sleeping) {
            assert!(std::time::Instant::now() < deadline, "sleep never slept");
            std::thread::yield_now();
        }
        {
            let pause = ProcessPause::new(pid, &thread_ids(pid).unwrap()).unwrap();
            assert_eq!(pause.threads(), [pid]);
            assert_eq!(states.state(pid), Some(RunState::Stopped));
        }
        assert_ne!(states.state(pid), Some(RunState::Stopped));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
