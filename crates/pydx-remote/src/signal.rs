//! Stopping a program pydx launched itself.
#![allow(unsafe_code)]

/// How pydx asks a program it launched to stop, most polite first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT, as Ctrl-C in its terminal would.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP, as closing its terminal would.
    Hangup,
    /// SIGKILL.
    Kill,
}

/// Sends `signal` to `pid`. pydx uses this only for a program it launched:
/// the target of `--pid` is never signalled.
pub fn send_stop(pid: u32, signal: StopSignal) -> std::io::Result<()> {
    let number = match signal {
        StopSignal::Interrupt => libc::SIGINT,
        StopSignal::Terminate => libc::SIGTERM,
        StopSignal::Hangup => libc::SIGHUP,
        StopSignal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) takes two integers and has no memory effects on pydx.
    let result = unsafe { libc::kill(pid as libc::pid_t, number) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
