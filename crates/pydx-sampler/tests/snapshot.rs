//! Snapshots of real processes: pausing, and a target that exits mid-run.

use pydx_cpython::PythonProcess;
use pydx_profile::Activity;
use pydx_remote::{RunState, ThreadStateReader};
use pydx_sampler::{Consistency, SnapshotError, Snapshotter};
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
    let mut states = ThreadStateReader::new(child.pid);
    for _ in 0..200 {
        let threads = snapshotter.snapshot().unwrap();
        assert_eq!(threads.len(), 4);
        busy_seen_on_cpu |= threads
            .iter()
            .any(|t| t.python.name.as_deref() == Some("busy") && t.activity == Activity::OnCpu);
    }
    assert!(busy_seen_on_cpu);
    // No thread is left stopped after the snapshots.
    for tid in pydx_remote::thread_ids(child.pid).unwrap() {
        assert_ne!(
            states.state(tid),
            Some(RunState::Stopped),
            "thread {tid} left stopped"
        );
    }
}

#[test]
fn threads_waiting_for_the_gil_are_told_apart_from_other_waits() {
    for label in ["pyenv-3.9", "pyenv-3.12", "sid-3.15"] {
        let python = interpreter(label);
        let child = python.spawn("gil_contention.py", &[]);
        let process = PythonProcess::attach(child.pid).unwrap();
        let mut snapshotter = Snapshotter::new(process, Consistency::NonBlocking);
        let (mut burner_waits, mut burner_cpu) = (0, 0);
        for _ in 0..300 {
            for thread in snapshotter.snapshot().unwrap() {
                let name = thread.python.name.as_deref().unwrap_or_default();
                if name.starts_with("burner-") {
                    match thread.activity {
                        Activity::GilWait => {
                            assert!(
                                !thread.python.holds_gil,
                                "{label}: GIL holder waits for the GIL"
                            );
                            burner_waits += 1;
                        }
                        Activity::OnCpu => burner_cpu += 1,
                        _ => {}
                    }
                } else if name == "blocked" {
                    assert_eq!(
                        thread.activity,
                        Activity::Idle,
                        "{label}: a lock wait is not a GIL wait"
                    );
                }
            }
        }
        // Four threads share one GIL: three of four burner samples should be
        // GIL waits. A loaded machine leaves woken threads runnable for
        // longer (counted on CPU), so ask for a quarter.
        assert!(
            burner_waits * 4 >= burner_waits + burner_cpu,
            "{label}: {burner_waits} GIL waits, {burner_cpu} on CPU"
        );
    }
}
