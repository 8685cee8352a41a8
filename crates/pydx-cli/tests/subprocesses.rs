//! `pydx record --subprocesses`: every worker of a multiprocessing pool and
//! of a real gunicorn server is sampled, each sample knowing its process.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pydx_profile::{read_pprof, Profile};
use pydx_testkit::{interpreter, WebServer};

fn pydx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
}

/// Sample counts per process id, and the functions seen in each process.
fn per_process(profile: &Profile) -> HashMap<u32, (u64, HashSet<String>)> {
    let mut processes: HashMap<u32, (u64, HashSet<String>)> = HashMap::new();
    for (key, count) in profile.samples() {
        let pid = profile.thread_info(key.thread).pid;
        let entry = processes.entry(pid).or_default();
        entry.0 += count;
        for frame in profile.frames_innermost_first(key.stack) {
            entry
                .1
                .insert(profile.str(profile.frame_info(frame).function).to_string());
        }
    }
    processes
}

#[test]
fn every_worker_of_a_multiprocessing_pool_is_sampled() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("pool.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pool.pb.gz");
    let output = pydx()
        .args(["record", "--subprocesses", "--rate", "200", "-o"])
        .arg(&out)
        .arg("--")
        .args(python.argv(&[&script, "3"]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let profile = read_pprof(std::fs::File::open(&out).unwrap()).unwrap();
    let processes = per_process(&profile);
    let workers: Vec<&u32> = processes
        .iter()
        .filter(|(_, (_, f))| f.contains("crunch"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        processes.len(),
        4,
        "parent and three workers: {:?}",
        processes.keys()
    );
    assert_eq!(workers.len(), 3, "three workers ran crunch: {processes:?}");
    assert_eq!(profile.meta.processes.len(), 4);
}

#[test]
fn every_worker_of_gunicorn_is_sampled() {
    let server = WebServer::gunicorn("wsgi_app.py", "wsgi_app:app", 3);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gunicorn.pb.gz");
    let recorder = pydx()
        .args([
            "record",
            "--subprocesses",
            "--idle",
            "--rate",
            "200",
            "--duration",
            "3",
            "-o",
        ])
        .arg(&out)
        .args(["--pid", &server.master.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Load while recording, so that workers run the handler.
    let load_until = Instant::now() + Duration::from_millis(2500);
    let mut requests = 0;
    while Instant::now() < load_until {
        if server.get(&format!("/orders/{requests}")).is_some() {
            requests += 1;
        }
    }
    let output = recorder.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(requests > 10, "only {requests} requests served");
    let profile = read_pprof(std::fs::File::open(&out).unwrap()).unwrap();
    let processes = per_process(&profile);
    assert_eq!(
        processes.len(),
        4,
        "master and three workers: {:?}",
        processes.keys()
    );
    assert!(
        processes
            .values()
            .any(|(_, functions)| functions.contains("handle")),
        "{processes:?}"
    );
}

/// `dump --subprocesses` shows the pool's parent first and each worker
/// once, named as the parent's child, each in its own stack.
#[test]
fn dump_shows_a_pool_and_each_worker_once() {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("pool.py", &["60"]);
    let outcome = pydx_testkit::eventually(Duration::from_secs(15), || {
        let output = pydx()
            .args(["dump", "--subprocesses", "--json", "--pid"])
            .arg(target.pid.to_string())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let dump: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
        let processes = dump["processes"].as_array().ok_or("no processes")?;
        let pids: Vec<u64> = processes.iter().filter_map(|p| p["pid"].as_u64()).collect();
        let crunching: Vec<u64> = processes
            .iter()
            .filter(|p| {
                p["threads"].as_array().is_some_and(|threads| {
                    threads
                        .iter()
                        .any(|t| t["frames"][0]["function"] == "crunch")
                })
            })
            .filter_map(|p| p["parent_pid"].as_u64())
            .collect();
        let unique: HashSet<u64> = pids.iter().copied().collect();
        if pids.first() != Some(&u64::from(target.pid))
            || processes[0].get("parent_pid").is_some()
            || unique.len() != pids.len()
            || pids.len() != 4
            || crunching.len() != 3
            || crunching.iter().any(|&p| p != u64::from(target.pid))
        {
            return Err(format!("{dump:#}"));
        }
        Ok(())
    });
    if let Err(reason) = outcome {
        panic!("{reason}");
    }
}

/// Without a Python process anywhere in the tree, `dump --subprocesses`
/// says so in one line and fails.
#[test]
fn dump_subprocesses_of_no_python_fails_clearly() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let output = pydx()
        .args(["dump", "--subprocesses", "--pid"])
        .arg(sleeper.id().to_string())
        .output()
        .unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no Python process to dump"), "{stderr}");
}

/// A child that runs a Python pydx cannot read is counted, with why, in the
/// summary line, the profile and the doctor's report, not silently dropped.
#[test]
fn a_child_that_cannot_be_sampled_is_counted_with_why() {
    let python = interpreter("pyenv-3.12");
    let (old_python, old_version) = pydx_testkit::unsupported_python();
    let parent = format!(
        "import subprocess, time\n\
         child = subprocess.Popen([{:?}, '-c', 'import time; time.sleep(30)'])\n\
         end = time.time() + 2.5\n\
         while time.time() < end:\n    sum(range(1000))\n\
         child.kill()\n",
        old_python.to_string_lossy()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("parent.pb.gz");
    let output = pydx()
        .args(["record", "--subprocesses", "-o"])
        .arg(&out)
        .arg("--")
        .args(python.argv(&["-c", &parent]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let old_minor: String = old_version.split('.').take(2).collect::<Vec<_>>().join(".");
    assert!(
        stderr.contains(", 1 child process not sampled (process ")
            && stderr.contains(&format!("runs Python {old_minor}")),
        "{stderr}"
    );
    let profile = read_pprof(std::fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(
        profile.meta.unattached_processes.len(),
        1,
        "{:?}",
        profile.meta
    );
    assert_eq!(profile.meta.processes.len(), 1);
    let doctor = pydx().arg("doctor").arg(&out).output().unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("not seen: 1 child process could not be sampled, so no finding covers it"),
        "{report}"
    );
}

/// Threads that come and go while workers fork and exit: each short-lived
/// thread is its own thread in the profile. Before 3.11 a new thread often
/// reuses an ended one's thread state memory and `pthread_t`, and was
/// labelled as that thread (one "thread" collected 115 samples of threads
/// that each lived 5 ms).
#[test]
fn short_lived_threads_are_not_merged_into_old_ones() {
    for label in ["pyenv-3.8", "pyenv-3.12"] {
        let python = interpreter(label);
        let script = python.install_script("fork_churn.py");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("churn.txt");
        let output = pydx()
            .args([
                "record",
                "--subprocesses",
                "--rate",
                "200",
                "-t",
                "--idle",
                "-o",
            ])
            .arg(&out)
            .arg("--")
            .args(python.argv(&[&script, "4"]))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{label}: {stderr}");
        let mut per_thread: HashMap<String, u64> = HashMap::new();
        for line in std::fs::read_to_string(&out).unwrap().lines() {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            if !stack.contains("short_lived_thread") {
                continue;
            }
            let thread = stack.split(';').find(|f| f.starts_with("thread ")).unwrap();
            *per_thread.entry(thread.to_string()).or_default() += count.parse::<u64>().unwrap();
        }
        // A 5 ms thread (a few times that while the GIL is busy) is seen by
        // a handful of samples at 200 Hz, and over a hundred threads are.
        let most = per_thread.values().max().copied().unwrap_or(0);
        assert!(
            per_thread.len() >= 100,
            "{label}: {} threads",
            per_thread.len()
        );
        assert!(
            most <= 8,
            "{label}: one thread has {most} samples: {per_thread:?}"
        );
    }
}

/// A worker that exits while pydx holds it paused is handed back to its
/// parent: before, its zombie stayed traced by pydx, so a parent waiting
/// for it (a process pool joining its workers) waited for good.
#[test]
fn workers_exiting_under_a_pause_are_reaped_by_their_parent() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("fork_wait.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("workers.txt");
    let mut child = pydx()
        .args([
            "record",
            "--subprocesses",
            "--blocking",
            "--rate",
            "1000",
            "-o",
        ])
        .arg(&out)
        .arg("--")
        .args(python.argv(&[&script, "100"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the program did not finish: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("reaped 100"), "{stdout}");
    assert!(std::fs::read_to_string(&out).unwrap().contains("busy"));
}
