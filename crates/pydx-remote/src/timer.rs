//! Precise sleeping for the sampling loop.
#![allow(unsafe_code)]

/// Asks the kernel to wake this thread from sleeps within a microsecond
/// instead of the default 50 µs timer slack, so that high sampling rates
/// (10 kHz and more) keep their schedule. Best effort: errors are ignored.
pub fn set_precise_sleep() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and affects only
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}
