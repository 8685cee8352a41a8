//! Snapshots of real processes: pausing, a target that exits mid-run, the
//! arguments of a paused stack's frames, and the SQL read from a database
//! driver's frame.

use pydx_cpython::PythonProcess;
use pydx_profile::Activity;
use pydx_remote::{RunState, ThreadStateReader};
use std::time::Duration;

use pydx_sampler::{Consistency, SnapshotError, Snapshotter, MAX_STATEMENT_CHARS};
use pydx_testkit::{eventually, interpreter, marker_line};

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
        let (mut burner_waits, mut burner_cpu, mut handing_over, mut blocked_seen) = (0, 0, 0, 0);
        for _ in 0..300 {
            for thread in snapshotter.snapshot().unwrap() {
                let name = thread.python.name.as_deref().unwrap_or_default();
                if name.starts_with("burner-") {
                    match thread.activity {
                        Activity::GilWait => {
                            // The GIL's last holder sleeps on it only while
                            // it hands it to the next thread.
                            if thread.python.holds_gil {
                                handing_over += 1;
                            }
                            burner_waits += 1;
                        }
                        Activity::OnCpu => burner_cpu += 1,
                        _ => {}
                    }
                } else if name == "blocked" {
                    blocked_seen += 1;
                    assert_eq!(
                        thread.activity,
                        Activity::Idle,
                        "{label}: a lock wait is not a GIL wait"
                    );
                }
            }
        }
        // The threads were seen, and so were both states: a test that saw
        // no GIL wait at all proves nothing about telling them apart.
        assert!(
            blocked_seen >= 250,
            "{label}: the blocked thread seen {blocked_seen} times"
        );
        assert!(
            burner_waits > 0 && burner_cpu > 0,
            "{label}: {burner_waits} GIL waits, {burner_cpu} on CPU"
        );
        // Four threads share one GIL: three of four burner samples should be
        // GIL waits. A loaded machine leaves woken threads runnable for
        // longer (counted on CPU), so ask for a quarter.
        assert!(
            burner_waits * 4 >= burner_waits + burner_cpu,
            "{label}: {burner_waits} GIL waits, {burner_cpu} on CPU"
        );
        assert!(
            handing_over * 3 <= burner_waits,
            "{label}: {handing_over} of {burner_waits} GIL waits by its holder"
        );
    }
}

/// Observations of `recurse.py` whose `rec` arguments contradict the stack
/// they were read with (each `rec` frame's `depth` is one more than the
/// frame it called; the innermost is more than 0 at the descending call, 0
/// past it), in `rounds` paused snapshots observed before the target runs
/// on; and how many frames were observed.
/// More threads deriving keys (hashlib lets go of the GIL) than there are
/// CPUs: at any moment at most one per CPU runs, and the others wait for
/// one. Those are told apart from running threads by their context
/// switches, so the threads counted on a CPU per snapshot stay near the
/// number of CPUs (all of them were counted running before: `R` in
/// `/proc` means runnable).
#[test]
fn threads_waiting_for_a_cpu_are_not_counted_on_one() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = 2 * cpus + 1;
    let python = interpreter("pyenv-3.12");
    let child = python.spawn("native_hashlib.py", &[&threads.to_string()]);
    let process = PythonProcess::attach(child.pid).unwrap();
    let mut snapshotter = Snapshotter::new(process, Consistency::NonBlocking);
    let (rounds, mut on_cpu, mut waiting) = (300, 0, 0);
    for _ in 0..rounds {
        let snapshot = snapshotter.snapshot().unwrap();
        assert_eq!(snapshot.len(), threads);
        for thread in snapshot {
            match thread.activity {
                Activity::OnCpu => on_cpu += 1,
                Activity::CpuWait => waiting += 1,
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Each round reads the threads one after another, so a thread can be
    // switched on between two reads and be counted twice: allow half a CPU.
    assert!(
        on_cpu as f64 <= (cpus as f64 + 0.5) * rounds as f64,
        "{on_cpu} samples on a CPU, {waiting} waiting, in {rounds} rounds of {threads} threads on {cpus} CPUs"
    );
    assert!(
        waiting as f64 >= (threads - cpus - 1) as f64 * rounds as f64,
        "{on_cpu} samples on a CPU, {waiting} waiting, in {rounds} rounds of {threads} threads on {cpus} CPUs"
    );
}

fn arguments_out_of_step_with_their_stack(label: &str, rounds: usize) -> (Vec<String>, usize) {
    let descend = marker_line("recurse.py", "LINE:descend");
    let leaf = marker_line("recurse.py", "LINE:leaf");
    let python = interpreter(label);
    let child = python.spawn("recurse.py", &["60"]);
    let process = PythonProcess::attach(child.pid).unwrap();
    let mut snapshotter = Snapshotter::new(process, Consistency::Paused);
    let (mut wrong, mut observed) = (Vec::new(), 0);
    for _ in 0..rounds {
        let (threads, ()) = snapshotter
            .snapshot_then(|target, threads| target.observe(threads, 3))
            .unwrap();
        for thread in &threads {
            let frames = &thread.python.frames;
            let depths: Vec<(usize, i64)> = thread
                .observations
                .iter()
                .filter(|o| frames[o.frame].code.qualname == "rec")
                .map(|o| {
                    let depth = o
                        .arguments
                        .strip_prefix("depth=")
                        .and_then(|d| d.parse().ok());
                    (o.frame, depth.unwrap_or(-1))
                })
                .collect();
            observed += depths.len();
            let innermost_ok = depths.first().is_none_or(|&(index, depth)| {
                let line = frames[0].line;
                index != 0
                    || (depth >= 0 && (line != descend || depth > 0) && (line < leaf || depth == 0))
            });
            let in_step = depths
                .windows(2)
                .all(|pair| pair[1].0 == pair[0].0 + 1 && pair[1].1 == pair[0].1 + 1);
            if !innermost_ok || !in_step {
                let lines: Vec<u32> = frames.iter().map(|f| f.line).collect();
                wrong.push(format!("{depths:?} at lines {lines:?}"));
            }
        }
    }
    (wrong, observed)
}

#[test]
fn arguments_are_read_at_the_instant_of_a_paused_stack() {
    // The frame objects of 3.8 and the frames in the data stack of 3.12.
    for label in ["pyenv-3.12", "pyenv-3.8"] {
        let (wrong, observed) = arguments_out_of_step_with_their_stack(label, 200);
        assert!(observed >= 200, "{label}: {observed} frames observed");
        assert!(
            wrong.is_empty(),
            "{label}: {} wrong, first {:?}",
            wrong.len(),
            wrong.first()
        );
    }
}

#[test]
fn the_sql_of_a_driver_call_is_read_and_charged_to_its_caller() {
    let wide = format!(
        "SELECT {} FROM wide",
        (0..100)
            .map(|n| format!("column_{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let wide_cut = format!("{}…", &wide[..MAX_STATEMENT_CHARS]);
    let lookup = "SELECT id FROM users WHERE email = %s".to_string();
    let line = |marker| marker_line("sql_driver.py", marker);
    let expected = vec![
        ("lookup".to_string(), line("LINE:lookup"), lookup.clone()),
        ("lookup".to_string(), line("LINE:lookup"), lookup),
        ("report".to_string(), line("LINE:wide"), wide_cut),
    ];
    // Before 3.11 (function names without their class), 3.12, and 3.15
    // (tagged stack references).
    for label in ["pyenv-3.9", "pyenv-3.12", "sid-3.15"] {
        let python = interpreter(label);
        let child = python.spawn("sql_driver.py", &[]);
        let process = PythonProcess::attach(child.pid).unwrap();
        let mut snapshotter = Snapshotter::new(process, Consistency::Paused);
        let mut read = || {
            let mut threads = snapshotter.snapshot().map_err(|e| e.to_string())?;
            snapshotter.observe(&mut threads, 3);
            let mut statements: Vec<((String, u32, String), u64)> = threads
                .iter()
                .filter_map(|thread| {
                    let statement = thread.statement.as_ref()?;
                    let caller = &thread.python.frames[statement.caller];
                    let site = (
                        caller.code.qualname.clone(),
                        caller.line,
                        statement.text.clone(),
                    );
                    Some((site, statement.call))
                })
                .collect();
            statements.sort();
            Ok::<_, String>(statements)
        };
        let first = eventually(Duration::from_secs(10), || {
            let statements = read()?;
            let sites: Vec<_> = statements.iter().map(|(site, _)| site.clone()).collect();
            if sites == expected {
                Ok(statements)
            } else {
                Err(format!("{statements:#?}"))
            }
        })
        .unwrap_or_else(|read| panic!("{label}: expected {expected:#?}, read {read}"));
        // The two lookups run the same statement with other values: two
        // calls. Read again, each call is the same call.
        assert_ne!(first[0].1, first[1].1, "{label}");
        let second = read().unwrap();
        let calls = |s: &[((String, u32, String), u64)]| {
            let mut calls: Vec<u64> = s.iter().map(|(_, call)| *call).collect();
            calls.sort_unstable();
            calls
        };
        assert_eq!(calls(&first), calls(&second), "{label}");
    }
}
