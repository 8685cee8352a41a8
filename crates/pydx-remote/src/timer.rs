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
