//! Passing an interrupt on to a program pydx launched itself.
#![allow(unsafe_code)]

/// Sends SIGINT to `pid`, as Ctrl-C in its terminal would. pydx uses this
/// only for a program it launched, when pydx itself was interrupted.
pub fn send_interrupt(pid: u32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes two integers and has no memory effects on pydx.
    let result = unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
