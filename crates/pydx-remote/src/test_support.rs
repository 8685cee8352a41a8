//! What this crate's tests share.

use std::process::{Child, Command, Stdio};

/// A shell script run as a child process, killed and reaped on drop.
pub(crate) struct ShellTarget(Child);

impl ShellTarget {
    /// Runs `script` with `sh -c`, its output thrown away.
    pub(crate) fn spawn(script: &str) -> Self {
        let child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// The process id of the shell (that of the command it `exec`s).
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ShellTarget {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
