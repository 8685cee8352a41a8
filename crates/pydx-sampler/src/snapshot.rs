//! One consistent snapshot of every Python thread of a process.

use pydx_cpython::{PythonProcess, PythonThread, WalkError};
use pydx_remote::{thread_ids, ProcessPause, RunState, ThreadStateReader};

/// What a thread was doing when it was sampled, as the OS saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Running or runnable on a CPU.
    OnCpu,
    /// Sleeping or blocked (I/O, a lock, a timer, ...).
    Idle,
    /// The OS state could not be read (the thread was exiting).
    Unknown,
}

impl Activity {
    fn from_run_state(state: Option<RunState>) -> Self {
        match state {
            Some(RunState::Running) => Activity::OnCpu,
            Some(_) => Activity::Idle,
            None => Activity::Unknown,
        }
    }
}

/// A Python thread and its OS state at one instant.
#[derive(Debug, Clone)]
pub struct ThreadSnapshot {
    /// The Python-level view: stack, GIL, name.
    pub python: PythonThread,
    /// The OS-level view.
    pub activity: Activity,
}

/// How a snapshot treats the running target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Stop the target's threads for the duration of the read (a few
    /// microseconds per thread), so every stack is exactly as it was.
    #[default]
    Paused,
    /// Read while the target runs; cheaper, but a stack may be torn.
    NonBlocking,
}

/// Takes snapshots of one process.
#[derive(Debug)]
pub struct Snapshotter {
    process: PythonProcess,
    os_states: ThreadStateReader,
    consistency: Consistency,
}

/// Why a snapshot could not be taken at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The process has exited.
    #[error("process {0} has exited")]
    ProcessExited(u32),
    /// Reading the interpreter state failed as a whole.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// Pausing the target failed for a reason other than a thread exiting.
    #[error(transparent)]
    Pause(#[from] pydx_remote::Error),
}

impl Snapshotter {
    /// Takes snapshots of `process` with the given consistency.
    pub fn new(process: PythonProcess, consistency: Consistency) -> Self {
        let pid = process.pid();
        Self {
            process,
            os_states: ThreadStateReader::new(pid),
            consistency,
        }
    }

    /// The process being sampled.
    pub fn process(&mut self) -> &mut PythonProcess {
        &mut self.process
    }

    /// Reads every Python thread with its OS state.
    pub fn snapshot(&mut self) -> Result<Vec<ThreadSnapshot>, SnapshotError> {
        let pid = self.process.pid();
        let tids = thread_ids(pid).map_err(|_| SnapshotError::ProcessExited(pid))?;
        // A stopped thread never shows as running, so the OS states are read
        // before pausing.
        let states: Vec<(u32, Option<RunState>)> = tids
            .iter()
            .map(|&tid| (tid, self.os_states.state(tid)))
            .collect();
        self.os_states.retain(&tids);
        let pause = match self.consistency {
            Consistency::Paused => Some(ProcessPause::new(pid, &tids)?),
            Consistency::NonBlocking => None,
        };
        let threads = self.process.threads();
        drop(pause);
        let threads = threads.map_err(|e| {
            if e.is_process_gone() {
                SnapshotError::ProcessExited(pid)
            } else {
                SnapshotError::Walk(e)
            }
        })?;
        Ok(threads
            .into_iter()
            .map(|python| {
                let state = python
                    .native_id
                    .and_then(|tid| states.iter().find(|(t, _)| *t == tid))
                    .and_then(|(_, s)| *s);
                ThreadSnapshot {
                    activity: Activity::from_run_state(state),
                    python,
                }
            })
            .collect())
    }
}
