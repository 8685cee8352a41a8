//! Bad input gets one clear line on stderr and a non-zero exit, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use pydx_testkit::interpreter;

fn pydx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(args)
        .output()
        .expect("run pydx")
}

/// The single line pydx printed on stderr.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "pydx should have failed");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn a_pid_that_does_not_exist() {
    // Above every kernel's pid_max, so it can never exist.
    let output = pydx(&["dump", "--pid", "2147483632"]);
    assert_eq!(error_line(&output), "error: no process with PID 2147483632");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_process_that_is_not_python() {
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = sleeper.id();
    // `sleep` may still be exec'ing; wait until /proc shows its command line.
    pydx_testkit::eventually(std::time::Duration::from_secs(5), || {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(|e| e.to_string())?;
        cmdline
            .starts_with(b"sleep")
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    })
    .unwrap();
    let output = pydx(&["dump", "--pid", &pid.to_string()]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(
        error_line(&output),
        format!("error: process {pid} (sleep 60) is not a Python process: no libpython or python executable is mapped")
    );
}

#[test]
fn an_unsupported_python_version() {
    let (python, version) = pydx_testkit::unsupported_python();
    let mut child = Command::new(&python)
        .args([
            "-c",
            "import sys, time; print('ready', flush=True); time.sleep(60)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    let output = pydx(&["dump", "--pid", &child.id().to_string()]);
    child.kill().unwrap();
    child.wait().unwrap();
    let line = error_line(&output);
    let shown = if version.starts_with("2.") {
        "2.7".to_string()
    } else {
        version.clone()
    };
    assert_eq!(
        line,
        format!(
            "error: process {} runs Python {shown}, which pydx does not support (pydx reads CPython 3.8 to 3.15)",
            child.id()
        )
    );
}

#[test]
fn permission_denied_explains_how_to_get_access() {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("threads.py", &[]);
    // Run pydx as an unprivileged user against a root-owned process; the
    // binary is copied where that user can execute it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.path().join("pydx");
    std::fs::copy(env!("CARGO_BIN_EXE_pydx"), &binary).unwrap();
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&binary)
        .args(["dump", "--pid", &target.pid.to_string()])
        .output()
        .expect("run setpriv");
    let line = error_line(&output);
    assert!(
        line.starts_with(&format!(
            "error: permission denied reading process {}: ",
            target.pid
        )),
        "{line}"
    );
    assert!(line.contains("uid 0") && line.contains("sudo"), "{line}");
}

#[test]
fn a_pid_that_is_not_a_number() {
    let output = pydx(&["dump", "--pid", "abc"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: invalid value 'abc' for '--pid <PID>'"),
        "{stderr}"
    );
}

#[test]
fn sampling_arguments_out_of_range_get_their_own_message() {
    let line = error_line(&pydx(&["record", "--rate", "0", "--pid", "1"]));
    assert_eq!(
        line,
        "error: --rate must be more than 0 and at most 1000000 samples per second, not 0"
    );
    // A negative number is a value, not an option: no tip to write `-- -5`.
    let line = error_line(&pydx(&["record", "--rate", "-5", "--pid", "1"]));
    assert!(line.contains("--rate must be more than 0"), "{line}");
    let line = error_line(&pydx(&["doctor", "--duration", "-1", "--pid", "1"]));
    assert_eq!(
        line,
        "error: --duration must be a positive number of seconds"
    );
}

#[test]
fn top_without_a_terminal_says_so_and_writes_nothing_to_stdout() {
    let output = pydx(&["top", "--pid", "1"]);
    assert!(
        output.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    let line = error_line(&output);
    assert!(
        line.starts_with("error: pydx top draws on a terminal"),
        "{line}"
    );
}
