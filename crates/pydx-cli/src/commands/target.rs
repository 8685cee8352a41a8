//! Starting or attaching to the process to sample, and ending it.

use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context};
use pydx_cpython::{AttachError, PythonProcess};
use pydx_sampler::attach_when_ready;

use crate::cli::TargetArgs;

/// How long a launched program may take to start its interpreter.
const LAUNCH_ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a launched wrapper (shell, launcher) to turn out to
/// be Python itself when its children are sampled anyway.
const WRAPPER_ATTACH_TIMEOUT: Duration = Duration::from_secs(2);

/// The process being sampled.
pub struct Target {
    /// Its PID.
    pub pid: u32,
    /// The attached interpreter, if the process itself runs Python.
    pub root: Option<PythonProcess>,
    /// The launched program, in launch mode.
    child: Option<Child>,
    /// The process's root directory as pydx sees it (a chroot's folder, or
    /// `/`), read at start so that its files can be found after it exits.
    pub root_dir: Option<std::path::PathBuf>,
}

impl Target {
    /// Attaches to `--pid`, or launches the command and attaches to it. With
    /// `subprocesses`, the process itself need not be Python.
    pub fn start(args: &TargetArgs, subprocesses: bool) -> anyhow::Result<Self> {
        if let Some(pid) = args.pid {
            let root = match PythonProcess::attach(pid) {
                Ok(process) => Some(process),
                Err(AttachError::NotPython { .. }) if subprocesses => None,
                Err(error) => return Err(error.into()),
            };
            return Ok(Self {
                pid,
                root,
                child: None,
                root_dir: root_dir(pid),
            });
        }
        let (program, arguments) = args.command.split_first().context("no command to launch")?;
        let child = Command::new(program)
            .args(arguments)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let pid = child.id();
        let mut target = Self {
            pid,
            root: None,
            child: Some(child),
            root_dir: None,
        };
        let timeout = if subprocesses {
            WRAPPER_ATTACH_TIMEOUT
        } else {
            LAUNCH_ATTACH_TIMEOUT
        };
        match attach_when_ready(pid, timeout) {
            Ok(process) => {
                // Read once the program runs: a launcher such as chroot
                // changes its root on the way.
                target.root_dir = root_dir(pid);
                target.root = Some(process);
            }
            Err(AttachError::NotPython { .. } | AttachError::NotRunning { .. }) if subprocesses => {
            }
            Err(error) => {
                if target.has_exited() {
                    bail!("{program} exited before pydx could attach to it");
                }
                return Err(error.into());
            }
        }
        Ok(target)
    }

    fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// A short name for default output files: the program or the PID.
    pub fn name(&self, args: &TargetArgs) -> String {
        args.command
            .iter()
            .find(|a| a.ends_with(".py"))
            .or(args.command.first())
            .and_then(|a| a.rsplit('/').next())
            .map(|a| a.trim_end_matches(".py").to_string())
            .unwrap_or_else(|| self.pid.to_string())
    }

    /// Interrupts a launched program that is still running, as Ctrl-C in
    /// the terminal it shares with pydx would (for when only pydx got it).
    pub fn interrupt(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = pydx_remote::send_interrupt(child.id());
            }
        }
    }

    /// Waits for a launched program and returns its exit code (128 + the
    /// signal if it was killed); success when attached to a running process.
    pub fn finish(self) -> anyhow::Result<ExitCode> {
        let Some(mut child) = self.child else {
            return Ok(ExitCode::SUCCESS);
        };
        let status = child.wait().context("waiting for the launched program")?;
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 1,
        };
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
    }
}

/// Where `/proc/PID/root` points.
fn root_dir(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/root")).ok()
}

/// A flag set by the first Ctrl-C; a second Ctrl-C exits at once.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| flag).clone())
}
