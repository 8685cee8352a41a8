//! Starting or attaching to the process to sample, and ending it.

use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pydx_cpython::{AttachError, PythonProcess};
use pydx_remote::{send_stop, StopSignal};
use pydx_sampler::{attach_when_ready, StopReason};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::cli::TargetArgs;

/// How long a launched program gets to stop after each signal pydx sends.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often pydx checks whether a launched program has exited.
const WAIT_POLL: Duration = Duration::from_millis(20);
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
    /// `subprocesses`, the process itself need not be Python. A launched
    /// program gets at most `duration` seconds (if given) to turn out to run
    /// Python.
    pub fn start(
        args: &TargetArgs,
        subprocesses: bool,
        duration: Option<f64>,
    ) -> anyhow::Result<Self> {
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
        let timeout = duration
            .map(Duration::from_secs_f64)
            .map_or(timeout, |duration| timeout.min(duration));
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

    /// Ends the run after sampling stopped for `why`: a launched program is
    /// waited for when it exited on its own, and stopped (as by
    /// [`Target::finish`]) when pydx was interrupted or the duration ended.
    /// The exit code is the program's, except when pydx stopped it because
    /// the duration ended: then the run did what was asked, and succeeds.
    pub fn end(mut self, why: StopReason) -> anyhow::Result<ExitCode> {
        let stopped_at_duration = why == StopReason::DurationElapsed
            && self
                .child
                .as_mut()
                .is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        let code = self.finish(why != StopReason::TargetExited)?;
        Ok(if stopped_at_duration {
            ExitCode::SUCCESS
        } else {
            code
        })
    }

    /// Waits for a launched program and returns its exit code (128 + the
    /// signal if it was killed); success when attached to a running process.
    ///
    /// With `interrupt` (pydx was interrupted, or the user quit `top`), or
    /// when pydx is interrupted while it waits, the program gets the signal
    /// pydx got (SIGINT when the user quit `top`), as its terminal or
    /// supervisor would have sent it (for when only pydx got it): a server
    /// tells a SIGTERM (finish the requests in flight) from a SIGINT (stop
    /// now). One that is still running [`STOP_GRACE`] later gets a
    /// SIGTERM, and then a SIGKILL, so that pydx never hangs on it.
    pub fn finish(mut self, interrupt: bool) -> anyhow::Result<ExitCode> {
        let Some(mut child) = self.child.take() else {
            return Ok(ExitCode::SUCCESS);
        };
        let stop = interrupt_flag()?;
        let mut signalled: Option<(StopSignal, Instant)> = None;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .context("waiting for the launched program")?
            {
                break status;
            }
            let next = match signalled {
                None if interrupt || stop.load(Ordering::SeqCst) => Some(received_stop()),
                Some((StopSignal::Interrupt | StopSignal::Hangup, at))
                    if at.elapsed() >= STOP_GRACE =>
                {
                    Some(StopSignal::Terminate)
                }
                Some((StopSignal::Terminate, at)) if at.elapsed() >= STOP_GRACE => {
                    Some(StopSignal::Kill)
                }
                _ => None,
            };
            if let Some(signal) = next {
                let _ = send_stop(child.id(), signal);
                signalled = Some((signal, Instant::now()));
            }
            std::thread::sleep(WAIT_POLL);
        };
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

impl Drop for Target {
    /// A launched program that pydx leaves without [`Target::finish`] (it
    /// could not attach, or failed later) is stopped, not left behind.
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        for signal in [StopSignal::Terminate, StopSignal::Kill] {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            let _ = send_stop(child.id(), signal);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(WAIT_POLL);
            }
        }
        let _ = child.wait();
    }
}

/// Where `/proc/PID/root` points.
fn root_dir(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/root")).ok()
}

/// The last stop signal pydx received (0 before any), once the handlers
/// are installed.
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// A flag set by SIGINT (Ctrl-C), SIGTERM or SIGHUP: sampling stops and
/// what was collected is written. Repeated signals change nothing more, so
/// that a second Ctrl-C, or `timeout` signalling pydx and then its process
/// group, cannot lose the recording.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicBool::new(false));
    let received = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(signal, flag.clone())
            .and_then(|_| {
                signal_hook::flag::register_usize(signal, received.clone(), signal as usize)
            })
            .context("cannot install the signal handlers")?;
    }
    Ok(FLAG.get_or_init(|| flag).clone())
}

/// The signal to pass on to a launched program: the one pydx received,
/// SIGINT when none.
fn received_stop() -> StopSignal {
    let received = RECEIVED.get().map_or(0, |r| r.load(Ordering::SeqCst));
    match i32::try_from(received) {
        Ok(SIGTERM) => StopSignal::Terminate,
        Ok(SIGHUP) => StopSignal::Hangup,
        _ => StopSignal::Interrupt,
    }
}
