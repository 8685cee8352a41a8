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
