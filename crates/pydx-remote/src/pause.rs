//! Briefly stopping a process's threads for a consistent snapshot.
#![allow(unsafe_code)]

use crate::error::{Error, Result};

/// The registers of a stopped thread that unwinding its native stack
/// starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindRegisters {
    /// The instruction pointer (`rip`).
    pub instruction: u64,
    /// The stack pointer (`rsp`).
    pub stack: u64,
    /// The frame pointer (`rbp`).
    pub frame: u64,
}

/// Longest pydx waits for the exit of a traced main thread to be
/// reported (see [`ProcessPause::release_exited`]).
const MAIN_THREAD_EXIT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

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
        let mut seized = Vec::with_capacity(tids.len());
        let mut failure = None;
        for &tid in tids {
            match pause.seize(tid, !seized.is_empty()) {
                Ok(true) => seized.push(tid),
                Ok(false) => {}
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        // Every seized thread's stop is taken before anything else: a
        // thread detached before it stops would stop later with no one to
        // resume it, and hold its process still for good.
        pause.held = seized
            .into_iter()
            .filter(|&tid| Self::wait_for_stop(pid, tid))
            .collect();
        match failure {
            // Dropping `pause` resumes the threads held.
            Some(error) => Err(error),
            None => Ok(pause),
        }
    }

    /// The threads that are held stopped.
    pub fn threads(&self) -> &[u32] {
        &self.held
    }

    /// The registers a native unwinder starts from, of thread `tid`, which
    /// must be one of [`ProcessPause::threads`]; `None` if it is not held
    /// or the kernel refused (it exited under the pause).
    #[cfg(target_arch = "x86_64")]
    pub fn registers(&self, tid: u32) -> Option<UnwindRegisters> {
        if !self.held.contains(&tid) {
            return None;
        }
        // SAFETY: an all-zero `user_regs_struct` is valid.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: PTRACE_GETREGS writes one `user_regs_struct` to `regs`,
        // a valid out-pointer; the thread is in a ptrace stop.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGS,
                tid as libc::pid_t,
                std::ptr::null_mut::<libc::c_void>(),
                &mut regs as *mut libc::user_regs_struct as *mut libc::c_void,
            )
        };
        (rc == 0).then_some(UnwindRegisters {
            instruction: regs.rip,
            stack: regs.rsp,
            frame: regs.rbp,
        })
    }

    /// Native stacks are read on x86_64 only.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn registers(&self, _tid: u32) -> Option<UnwindRegisters> {
        None
    }

    /// Seizes and interrupts one thread; `Ok(false)` if it is already gone,
    /// or refused because it (once `others_seized`) or its process is exiting.
    fn seize(&self, tid: u32, others_seized: bool) -> Result<bool> {
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
                // Seizing is refused for a thread that is exiting; when its
                // siblings could be seized, that is what happened.
                Some(libc::EPERM) if others_seized || crate::proc::exiting(self.pid) => Ok(false),
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
            if !Self::detach(tid, 0) {
                Self::release_exited(self.pid, tid);
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// Waits until `tid` reports its interrupt stop and says whether it is
    /// now held. A thread that exits, or that stops for a signal first, is
    /// not held: the latter is detached at once with its signal, so no signal
    /// is ever lost, at the price of that one thread running on.
    fn wait_for_stop(pid: u32, tid: u32) -> bool {
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
                Self::release_exited(pid, tid);
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

    /// Collects the exit of traced thread `tid`, which no one else can: a
    /// traced thread that exits stays a zombie until its tracer waits for
    /// it, and until then its process cannot finish exiting, nor its
    /// parent learn that it did (a process pool waiting for a worker would
    /// wait forever). The tracer's wait hands a process's exit on to its
    /// parent, so a main thread's exit is collected too, unless pydx itself
    /// is the parent (a launched program), whose exit status it takes
    /// later. Only called for a thread that has exited or is exiting (a
    /// traced thread that cannot be interrupted or detached is dead), so
    /// the wait is short; a main thread is not waited for longer than
    /// [`MAIN_THREAD_EXIT_WAIT`], as its exit is reported only once every
    /// other thread of its process has exited too.
    fn release_exited(pid: u32, tid: u32) {
        let main_thread = tid == pid;
        if main_thread && crate::proc::parent_pid(pid) == Some(std::process::id()) {
            return;
        }
        let flags = libc::__WALL | if main_thread { libc::WNOHANG } else { 0 };
        let started = std::time::Instant::now();
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer for the call.
            let rc = unsafe { libc::waitpid(tid as libc::pid_t, &mut status, flags) };
            let interrupted =
                rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
            let not_yet = rc == 0 && started.elapsed() < MAIN_THREAD_EXIT_WAIT;
            if !(interrupted || not_yet) {
                return;
            }
            if not_yet {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
    }

    /// Detaches `tid`; false when it could not be (it has exited).
    fn detach(tid: u32, signal: i32) -> bool {
        // SAFETY: PTRACE_DETACH takes the signal to deliver as data, no pointers.
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_DETACH,
                tid as libc::pid_t,
                std::ptr::null_mut::<libc::c_void>(),
                signal as usize as *mut libc::c_void,
            )
        };
        rc == 0
    }
}

impl ProcessPause {
    /// Hands the exit of process `pid` on to its parent if a pause caught
    /// it exiting and its main thread's exit was not reported then (see
    /// [`ProcessPause::release_exited`]): for a process found gone. Does
    /// nothing for a process pydx does not trace or launched itself.
    pub fn release_exited_process(pid: u32) {
        Self::release_exited(pid, pid);
    }
}

impl Drop for ProcessPause {
    fn drop(&mut self) {
        for &tid in &self.held {
            // A held thread is killed when another thread of its process,
            // not held, ends the process: collect it.
            if !Self::detach(tid, 0) {
                Self::release_exited(self.pid, tid);
            }
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
