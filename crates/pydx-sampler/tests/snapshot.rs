//! Snapshots of real processes: pausing, and a target that exits mid-run.

use pydx_cpython::PythonProcess;
use pydx_remote::{RunState, ThreadStateReader};
use pydx_sampler::{Activity, Consistency, SnapshotError, Snapshotter};
use pydx_testkit::interpreter;

#[test]
fn a_target_that_exits_is_reported_as_exited() {
    let python = interpreter("pyenv-3.12");
    let mut child = python.spawn("threads.py", &[]);
    let pid = child.pid;
    let process = PythonProcess::attach(pid).unwrap();
    let mut snapshotter = Snapshotter::new(process, Consistency::Paused);
    assert!(snapshotter.snapshot().is_ok());
    child.kill();
    let error = snapshotter.snapshot().unwrap_err();
    assert!(
        matches!(error, SnapshotError::ProcessExited(p) if p == pid),
        "{error:?}"
    );
    assert_eq!(error.to_string(), format!("process {pid} has exited"));
}

#[test]
fn paused_snapshots_leave_the_target_running() {
    let python = interpreter("pyenv-3.11");
    let child = python.spawn("threads.py", &[]);
    let process = PythonProcess::attach(child.pid).unwrap();
    let mut snapshotter = Snapshotter::new(process, Consistency::Paused);
    let mut busy_seen_on_cpu = false;
    for _ in 0..200 {
        let threads = snapshotter.snapshot().unwrap();
        assert_eq!(threads.len(), 4);
        busy_seen_on_cpu |= threads
            .iter()
            .any(|t| t.python.name.as_deref() == Some("busy") && t.activity == Activity::OnCpu);
    }
    assert!(busy_seen_on_cpu);
    // No thread is left stopped after the snapshots.
    let mut states = ThreadStateReader::new(child.pid);
    for tid in pydx_remote::thread_ids(child.pid).unwrap() {
        assert_ne!(
            states.state(tid),
            Some(RunState::Stopped),
            "thread {tid} left stopped"
        );
    }
}
