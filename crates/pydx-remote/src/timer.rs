//! Precise sleeping for the sampling loop.
#![allow(unsafe_code)]

/// The scheduler time slice the sampling thread asks for (EEVDF, Linux
/// 6.12 and later; the smallest allowed): a thread with a short slice has
/// an early deadline when it wakes, so it preempts busy threads instead of
/// waiting for their slices to end.
const SAMPLING_SLICE_NS: u64 = 100_000;

/// `struct sched_attr` of `sched_setattr(2)`, first version.
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Prepares the calling thread to keep a sampling schedule: the kernel
/// wakes it from sleeps within a microsecond instead of the default 50 µs
/// timer slack, and, on kernels whose scheduler takes a time-slice request
/// (Linux 6.12+), it asks for the shortest slice, so that a wake-up is not
/// queued behind the target's busy threads for most of a millisecond.
/// Neither raises the thread's priority or needs a privilege; errors (an
/// older kernel) are ignored.
pub fn set_precise_sleep() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and affects only
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
    ask_for_short_slice();
}

/// Gives the calling thread the lowest real-time priority (`SCHED_FIFO` 1,
/// not passed on to threads or processes it starts), where allowed (root,
/// `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` above 0); whether it did.
///
/// Why: on a machine whose CPUs are all busy, a sampling thread of the
/// normal policy waits, once its timer fires, until the scheduler next
/// looks at a busy CPU, which is often when the thread running there makes
/// a system call that updates its CPU time (`clock_gettime` of a thread
/// clock, say). The thread it then takes the CPU from is read where it
/// stopped, so its samples pile up on those calls. A real-time thread takes
/// the CPU when its timer fires, wherever the running thread is. Only a
/// thread of the normal policy is changed (one run under `chrt` keeps its
/// own); [`leave_real_time_priority`] undoes it.
pub fn take_real_time_priority() -> bool {
    // SAFETY: sched_getscheduler takes no pointers.
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_OTHER {
        return false;
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_FIFO as u32,
        flags: libc::SCHED_FLAG_RESET_ON_FORK as u64,
        nice: 0,
        priority: 1,
        runtime: 0,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr reads one `sched_attr` of `attr.size` bytes
    // from a valid pointer, for the calling thread (pid 0).
    unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
}

/// Returns the calling thread from real-time priority
/// ([`take_real_time_priority`]) to the normal policy, with the short
/// slice of [`set_precise_sleep`].
pub fn leave_real_time_priority() {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: 0,
        priority: 0,
        runtime: 0,
        deadline: 0,
        period: 0,
    };
    // SAFETY: as in `take_real_time_priority`.
    unsafe {
        libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
    }
    ask_for_short_slice();
}

/// Asks for the shortest scheduler slice (see [`SAMPLING_SLICE_NS`]) for
/// the calling thread, if it runs under the normal policy.
fn ask_for_short_slice() {
    // Only a thread of the normal policy is changed: one the user runs
    // under another (`chrt`) keeps it, and its nice value is kept as read.
    // SAFETY: sched_getscheduler takes no pointers.
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_OTHER {
        return;
    }
    // SAFETY: errno is the calling thread's; getpriority takes no pointers.
    // errno is cleared first so that a nice of -1 is told from an error.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    if nice == -1 && std::io::Error::last_os_error().raw_os_error() != Some(0) {
        return;
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: SAMPLING_SLICE_NS,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr reads one `sched_attr` of `attr.size` bytes
    // from a valid pointer, for the calling thread (pid 0).
    unsafe {
        libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduling policy of process or thread `pid`, from its `stat`.
    fn policy_of(pid: u32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        // Field 41 (`policy`); the text after the name starts at field 3.
        after_name.split(' ').nth(38).unwrap().parse().unwrap()
    }

    #[test]
    fn real_time_priority_is_taken_where_allowed_and_not_passed_on() {
        std::thread::spawn(|| {
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            let taken = take_real_time_priority();
            assert!(taken || !root, "root may take real-time priority");
            if !taken {
                return;
            }
            // SAFETY: sched_getscheduler takes no pointers.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy & !libc::SCHED_RESET_ON_FORK, libc::SCHED_FIFO);
            let mut child = std::process::Command::new("sleep")
                .arg("1")
                .spawn()
                .unwrap();
            let child_policy = policy_of(child.id());
            child.kill().unwrap();
            child.wait().unwrap();
            assert_eq!(child_policy, libc::SCHED_OTHER);
            leave_real_time_priority();
            // SAFETY: as above.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        })
        .join()
        .unwrap();
    }
}
