//! `pydx record` against real interpreters: accuracy on a known split,
//! every output format parsed back, launch mode, Ctrl-C and target exit.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pydx_testkit::{eventually, interpreter, marker_line, Interpreter, PythonChild};

fn pydx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
}

/// Sample counts per function name from collapsed stacks, counting the
/// innermost frame of each line.
fn innermost_counts(collapsed: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in collapsed.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("stack and count");
        let leaf = stack.rsplit(';').next().unwrap_or_default();
        let function = leaf.split(" (").next().unwrap_or_default().to_string();
        *counts.entry(function).or_insert(0) += count.parse::<u64>().expect("count");
    }
    counts
}

/// The truth the split program printed: seconds spent per function.
fn truth(stdout: &str) -> HashMap<String, f64> {
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("split.py prints its timings");
    serde_json::from_str(json).expect("timings are JSON")
}

/// Records the program `args` run by `python`, at `rate` Hz, into `out`;
/// the recording must succeed.
fn record_program(python: &Interpreter, args: &[&str], rate: &str, out: &Path) -> Output {
    let output = pydx()
        .args(["record", "--rate", rate, "-o"])
        .arg(out)
        .arg("--")
        .args(python.argv(args))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        python.label,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn record_split(label: &str) {
    let python = interpreter(label);
    let script = python.install_script("split.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("split.txt");
    let output = record_program(&python, &[&script, "3"], "1000", &out);
    let collapsed = std::fs::read_to_string(&out).unwrap();
    let counts = innermost_counts(&collapsed);
    let truth = truth(&String::from_utf8_lossy(&output.stdout));
    let sampled: u64 = ["alpha", "beta", "gamma"]
        .iter()
        .map(|f| counts.get(*f).copied().unwrap_or(0))
        .sum();
    let true_total: f64 = truth.values().sum();
    assert!(
        sampled > 1500,
        "{label}: only {sampled} samples in the three functions: {}\n{collapsed}",
        String::from_utf8_lossy(&output.stderr)
    );
    for function in ["alpha", "beta", "gamma"] {
        let sampled_share =
            counts.get(function).copied().unwrap_or(0) as f64 / sampled as f64 * 100.0;
        let true_share = truth[function] / true_total * 100.0;
        assert!(
            (sampled_share - true_share).abs() < 4.0,
            "{label}: {function} sampled {sampled_share:.1}% vs true {true_share:.1}%"
        );
    }
    // Lines are exact: every sample of alpha is on its loop line.
    let alpha_line = marker_line("split.py", "LINE:alpha");
    let alpha_lines: Vec<&str> = collapsed
        .lines()
        .filter(|l| l.contains(";alpha ("))
        .collect();
    let on_loop: u64 = alpha_lines
        .iter()
        .filter(|l| l.contains(&format!("alpha ({script}:")))
        .filter(|l| {
            let line_no = l
                .rsplit_once(' ')
                .unwrap()
                .0
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches(')');
            line_no
                .parse::<u32>()
                .is_ok_and(|n| n + 1 >= alpha_line && n <= alpha_line)
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert!(
        on_loop * 10 >= counts["alpha"] * 9,
        "{label}: most alpha samples must be on its loop (lines {}-{alpha_line}): {alpha_lines:?}",
        alpha_line - 1
    );
}

macro_rules! per_interpreter {
    ($($name:ident => $label:literal),* $(,)?) => {
        mod split_accuracy {
            $(#[test] fn $name() { super::record_split($label); })*
        }
    };
}

per_interpreter! {
    pyenv_3_8 => "pyenv-3.8",
    pyenv_3_9 => "pyenv-3.9",
    pyenv_3_10 => "pyenv-3.10",
    pyenv_3_11 => "pyenv-3.11",
    pyenv_3_12 => "pyenv-3.12",
    pyenv_3_13 => "pyenv-3.13",
    debian_3_11_static => "debian-3.11",
    sid_3_13 => "sid-3.13",
    sid_3_14 => "sid-3.14",
    sid_3_15 => "sid-3.15",
}

/// Records the split program once, returning the pprof file's path.
fn record_pprof(dir: &Path) -> std::path::PathBuf {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("split.py");
    let out = dir.join("split.pb.gz");
    let status = pydx()
        .args(["record", "--rate", "500", "-o"])
        .arg(&out)
        .arg("--")
        .args(python.argv(&[&script, "1"]))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn every_output_format_parses() {
    let dir = tempfile::tempdir().unwrap();
    let pprof = record_pprof(dir.path());
    let profile = pydx_profile::read_pprof(std::fs::File::open(&pprof).unwrap()).unwrap();
    assert!(profile.total_samples() > 200);
    assert_eq!(profile.meta.processes.len(), 1);
    assert!(profile.meta.processes[0]
        .python_version
        .starts_with("3.12."));
    let functions: Vec<&str> = profile
        .samples()
        .flat_map(|(key, _)| {
            profile
                .frames_innermost_first(key.stack)
                .into_iter()
                .take(1)
        })
        .map(|f| profile.str(profile.frame_info(f).function))
        .collect();
    assert!(functions.contains(&"alpha"), "{functions:?}");

    // The other formats, rendered from the same samples.
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("split.py");
    for (name, check) in [
        ("out.svg", check_svg as fn(&str)),
        ("out.speedscope.json", check_speedscope),
        ("out.trace.json", check_chrometrace),
        ("out.txt", check_collapsed),
    ] {
        let path = dir.path().join(name);
        record_program(&python, &[&script, "1"], "500", &path);
        check(&std::fs::read_to_string(&path).unwrap());
    }
}

/// A pstats file opens in Python's own `pstats` (3.8 and 3.12 read it),
/// with the split's three functions in their 50:30:20 proportions.
#[test]
fn pstats_output_opens_in_python() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("split.py");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("split.pstats");
    record_program(&python, &[&script, "2"], "500", &path);
    let read = "import pstats, sys\n\
                stats = pstats.Stats(sys.argv[1]).stats\n\
                own = {f[2]: v[2] for f, v in stats.items()}\n\
                callers = {f[2]: sorted(c[2] for c in v[4]) for f, v in stats.items()}\n\
                total = own['alpha'] + own['beta'] + own['gamma']\n\
                print(round(own['alpha'] / total, 2), round(own['gamma'] / total, 2), callers['alpha'])\n";
    for label in ["pyenv-3.12", "pyenv-3.8"] {
        let reader = interpreter(label);
        let output = reader
            .command(&["-c", read, path.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        let share = |i: usize| fields[i].parse::<f64>().unwrap();
        assert!((share(0) - 0.5).abs() < 0.1, "{label}: {stdout}");
        assert!((share(1) - 0.2).abs() < 0.1, "{label}: {stdout}");
        assert!(stdout.contains("['main']"), "{label}: {stdout}");
    }
}

fn check_svg(svg: &str) {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let document = roxmltree::Document::parse_with_options(svg, options).expect("well-formed SVG");
    let titles: Vec<&str> = document
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        titles.iter().any(|t| t.starts_with("alpha (")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.starts_with("gamma (")),
        "{titles:?}"
    );
}

fn check_speedscope(text: &str) {
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    assert_eq!(
        json["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames = json["shared"]["frames"].as_array().expect("shared frames");
    assert!(frames
        .iter()
        .any(|f| f["name"].as_str().is_some_and(|n| n.starts_with("alpha"))));
    let profiles = json["profiles"].as_array().expect("profiles");
    assert!(!profiles.is_empty());
    for profile in profiles {
        assert_eq!(profile["type"], "sampled");
        let samples = profile["samples"].as_array().unwrap();
        let weights = profile["weights"].as_array().unwrap();
        assert_eq!(samples.len(), weights.len());
        for sample in samples {
            for index in sample.as_array().unwrap() {
                assert!((index.as_u64().unwrap() as usize) < frames.len());
            }
        }
    }
}

fn check_chrometrace(text: &str) {
    let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let events = json["traceEvents"].as_array().expect("traceEvents");
    let mut open: HashMap<u64, Vec<String>> = HashMap::new();
    for event in events {
        let tid = event["tid"].as_u64().unwrap_or(0);
        let name = event["name"].as_str().unwrap_or_default().to_string();
        match event["ph"].as_str() {
            Some("B") => open.entry(tid).or_default().push(name),
            Some("E") => assert_eq!(open.entry(tid).or_default().pop(), Some(name)),
            _ => {}
        }
    }
    assert!(
        open.values().all(Vec::is_empty),
        "unclosed events: {open:?}"
    );
    assert!(events
        .iter()
        .any(|e| e["name"].as_str().is_some_and(|n| n.starts_with("alpha ("))));
}

fn check_collapsed(text: &str) {
    let counts = innermost_counts(text);
    assert!(
        counts.contains_key("alpha") && counts.contains_key("beta"),
        "{counts:?}"
    );
}

/// Runs `pydx ARGS -- python split.py 0.5 7` and checks that pydx exits
/// with the program's status, 7; returns its output.
fn passes_the_exit_code_through(args: &[&str]) -> Output {
    let python = interpreter("pyenv-3.11");
    let script = python.install_script("split.py");
    let output = pydx()
        .args(args)
        .arg("--")
        .args(python.argv(&[&script, "0.5", "7"]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(7), "{args:?}: {stderr}");
    output
}

#[test]
fn launch_mode_passes_the_exit_code_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb.gz");
    passes_the_exit_code_through(&["record", "-o", out.to_str().unwrap()]);
    assert!(out.exists());
}

/// `doctor` passes a launched program's exit status through, as `record` does.
#[test]
fn doctor_passes_the_exit_code_through() {
    let output = passes_the_exit_code_through(&["doctor"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("\npydx doctor: "));
}

fn wait_for_exit(child: &mut std::process::Child, timeout: Duration) -> Output {
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("pydx did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    }
}

/// Records a running program, sends pydx `signals` (80 ms apart) once it
/// has sampled for a while, and checks that the profile is written.
fn a_stop_signal_still_writes_the_profile(signals: &[&str]) {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("threads.py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("interrupted.txt");
    let mut recorder = pydx()
        .args(["record", "--idle", "-o"])
        .arg(&out)
        .args(["--pid", &target.pid.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it take some samples, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    for signal in signals {
        Command::new("kill")
            .args([&format!("-{signal}"), &recorder.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(80));
    }
    let output = wait_for_exit(&mut recorder, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{signals:?}: {stderr}");
    assert!(stderr.contains("; interrupted"), "{signals:?}: {stderr}");
    let counts = innermost_counts(&std::fs::read_to_string(&out).unwrap());
    assert!(counts.contains_key("nap"), "{signals:?}: {counts:?}");
}

#[test]
fn ctrl_c_still_writes_the_profile() {
    a_stop_signal_still_writes_the_profile(&["INT"]);
}

#[test]
fn repeated_ctrl_c_still_writes_the_profile() {
    a_stop_signal_still_writes_the_profile(&["INT", "INT", "INT"]);
}

#[test]
fn sigterm_still_writes_the_profile() {
    a_stop_signal_still_writes_the_profile(&["TERM"]);
}

#[test]
fn sighup_still_writes_the_profile() {
    a_stop_signal_still_writes_the_profile(&["HUP"]);
}

/// An output that cannot be written is found before sampling, and named
/// as given.
#[test]
fn an_unwritable_output_fails_before_sampling() {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("threads.py", &[]);
    let started = std::time::Instant::now();
    let output = pydx()
        .args(["record", "--duration", "30", "-o", "/nonexistent/dir/x.svg"])
        .args(["--pid", &target.pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write /nonexistent/dir/x.svg"),
        "{stderr}"
    );
    assert!(!stderr.contains(".tmp"), "{stderr}");
}

/// A launched program that pydx cannot read (Python 3.7) is not left
/// running when pydx gives up.
#[test]
fn a_launched_program_pydx_cannot_read_is_not_left_behind() {
    let python37 = "/root/.pyenv/versions/3.7.16/bin/python3.7";
    let dir = tempfile::tempdir().unwrap();
    // Marks the program's command line, to look for it afterwards.
    // A Python name: the program must run (and be refused), not stop at
    // a syntax error before pydx attaches.
    let marker = format!("pydx_left_behind_{}", std::process::id());
    let program = format!("import time\n{marker} = 1\ntime.sleep(60)");
    let output = pydx()
        .args(["record", "-o"])
        .arg(dir.path().join("x.txt"))
        .args(["--", python37, "-c", &program])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not support"), "{stderr}");
    assert_nothing_left_running(&marker);
}

/// No process's command line contains `marker`.
fn assert_nothing_left_running(marker: &str) {
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(marker))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// Launches `/bin/sleep` under `pydx record` with `args`; checks that pydx
/// refuses it as not Python and leaves nothing running, and returns how
/// long that took.
fn refuse_a_launched_sleep(args: &[&str], dir: &Path) -> Duration {
    // An unusual length marks this `sleep` among the machine's processes.
    let seconds = format!("{}{}.5", args.len() + 3, std::process::id() % 1000);
    let started = std::time::Instant::now();
    let output = pydx()
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(dir.join("x.txt"))
        .args(["--", "/bin/sleep", &seconds])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("not a Python process"), "{stderr}");
    assert_nothing_left_running(&format!("sleep {seconds}"));
    elapsed
}

#[test]
fn a_launched_program_that_is_not_python_is_given_up_on_within_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    // About the second asked for, not the 10 s a program without -d gets
    // to start its interpreter.
    let elapsed = refuse_a_launched_sleep(&["-d", "1"], dir.path());
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

#[test]
fn a_launched_program_that_is_not_python_is_recognised_in_about_a_second() {
    let dir = tempfile::tempdir().unwrap();
    // One second running one program without children, not the 10 s a
    // program gets to start its interpreter.
    let elapsed = refuse_a_launched_sleep(&[], dir.path());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // A launcher that prepares for longer (it runs a child meanwhile)
    // and then `exec`s Python is still sampled.
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("split.py");
    let out = dir.path().join("late.txt");
    let launcher = format!("sleep 1.5; exec {} {script} 1", python.argv(&[])[0]);
    let output = pydx()
        .args(["record", "-f", "collapsed", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", &launcher])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let collapsed = std::fs::read_to_string(&out).unwrap();
    assert!(collapsed.contains("alpha"), "{collapsed}");
}

/// Records process `pid` with `args` into `out`; pydx's stderr, once it
/// has succeeded.
fn record_attached(pid: u32, args: &[&str], out: &Path) -> String {
    let output = pydx()
        .arg("record")
        .args(args)
        .arg("-o")
        .arg(out)
        .args(["--pid", &pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// `--stats` counts the system calls per sample. A steady one-thread
/// program (`words.py`, one loop) on 3.12 takes one `process_vm_readv`
/// for its stack per sample, plus three reads for each frame whose locals
/// are read (every 25 ms): 1.16 reads per sample at 1 kHz. Its CPU state
/// comes from the context switches the kernel reports into pydx's memory
/// (perf_event_open, allowed on the test machines), not from a `/proc`
/// read per sample. The budget is the issue's: at most two system calls
/// per sample besides the pacing sleep, and the bounds hold today's line,
/// so that a change adding a read per sample, or a read per local, fails.
#[test]
fn sampling_stays_within_its_system_call_budget() {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("words.py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("budget.txt");
    let stderr = record_attached(target.pid, &["--stats", "--rate", "1000", "-d", "2"], &out);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("pydx: per sample: "))
        .unwrap_or_else(|| panic!("no --stats line: {stderr}"));
    let number_before = |marker: &str| -> f64 {
        let head = &line[..line.find(marker).unwrap_or_else(|| panic!("{line}"))];
        head.rsplit(' ').nth(1).unwrap().parse().unwrap()
    };
    let memory_reads = number_before("process_vm_readv");
    let proc_reads = number_before("/proc reads");
    assert!(memory_reads <= 1.3, "{line}");
    assert!(
        proc_reads <= 0.05,
        "a /proc read per sample: is perf_event_open refused? {line}"
    );
    assert!(memory_reads + proc_reads <= 2.0, "{line}");
    // Where the time went: the sampling thread's CPU per sample, and the
    // stages' shares of it.
    let cpu = number_before("µs of pydx's CPU");
    let reading = number_before("µs, locals");
    assert!(cpu > 0.0 && reading > 0.0 && reading < cpu, "{line}");
}

/// With `--blocking`, a thread waiting for a CPU (more busy threads than
/// CPUs: hashlib runs without the GIL) is read without a pause: its stack
/// stands still until the scheduler runs it again, which a pause would
/// have to wait for. Its context switches show it stayed off its CPU
/// while read. Before, every one of them was paused; now about a third of
/// the thread reads here go without a pause (rounds that read locals
/// pause them all), and every sample still shows where each thread is.
#[test]
fn blocking_reads_threads_waiting_for_a_cpu_without_pausing_them() {
    let (target, _, _) = more_threads_than_cpus();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("preempted.txt");
    let args = ["--blocking", "--stats", "--rate", "200", "-d", "2"];
    let stderr = record_attached(target.pid, &args, &out);
    let count_after = |marker: &str| -> u64 {
        let at = stderr.find(marker).unwrap_or_else(|| panic!("{stderr}")) + marker.len();
        let digits: String = stderr[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    let paused = count_after("threads paused ");
    let unpaused = count_after("read without a pause ");
    assert!(4 * unpaused >= paused + unpaused, "{stderr}");
    let counts = innermost_counts(&std::fs::read_to_string(&out).unwrap());
    let total: u64 = counts.values().sum();
    let deriving = counts.get("derive").copied().unwrap_or(0);
    assert!(
        deriving * 100 >= total * 95,
        "{deriving} of {total} samples in derive: {counts:?}"
    );
}

/// The CPU time the threads of process `pid` have used, by the kernel's
/// count (the first field of each thread's `schedstat`), in seconds.
fn process_cpu_seconds(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

/// More threads deriving keys (hashlib lets go of the GIL) than there are
/// CPUs: the samples on a CPU add up to the CPU the process used by the
/// kernel's count. Counting every runnable thread as running would show
/// all of them busy all the time, more than twice the CPUs there are; and
/// counting the threads that pydx's own wake-up takes off a CPU as waiting
/// for one would leave out part of the CPU they used.
#[test]
fn on_cpu_samples_add_up_to_the_cpu_time_the_target_used() {
    let (target, threads, cpus) = more_threads_than_cpus();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cpu.pprof");
    let (wall_before, cpu_before) = (std::time::Instant::now(), process_cpu_seconds(target.pid));
    record_attached(target.pid, &["--rate", "200", "-d", "3"], &out);
    let used = (process_cpu_seconds(target.pid) - cpu_before) / wall_before.elapsed().as_secs_f64();
    let profile = pydx_profile::read_pprof(std::fs::File::open(&out).unwrap()).unwrap();
    let count = |wanted: pydx_profile::Activity| -> u64 {
        profile
            .samples()
            .filter(|(key, _)| key.state.activity == wanted)
            .map(|(_, count)| count)
            .sum()
    };
    let rounds = profile.total_samples() as f64 / threads as f64;
    let on_cpu = count(pydx_profile::Activity::OnCpu) as f64 / rounds;
    let waiting = count(pydx_profile::Activity::CpuWait) as f64 / rounds;
    let measured = format!(
        "{on_cpu:.2} threads on a CPU and {waiting:.2} waiting for one per sample, \
         {used:.2} CPUs used by the kernel's count ({cpus} CPUs)"
    );
    eprintln!("{measured}");
    assert!((on_cpu - used).abs() <= 0.35 * used, "{measured}");
    assert!(waiting >= (threads - cpus - 1) as f64, "{measured}");
}

/// `native_hashlib.py` on 3.12 with more threads deriving keys (hashlib
/// lets go of the GIL) than there are CPUs: the child, its thread count
/// and the CPUs.
fn more_threads_than_cpus() -> (PythonChild, usize, usize) {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = 2 * cpus + 1;
    let target = interpreter("pyenv-3.12").spawn("native_hashlib.py", &[&threads.to_string()]);
    (target, threads, cpus)
}

/// Records a program launched with `argv` into `out` and sends pydx
/// `signal` once it has sampled for a while.
fn record_launched_until(out: &Path, argv: &[String], signal: &str) -> Output {
    let mut recorder = pydx()
        .args(["record", "-o"])
        .arg(out)
        .arg("--")
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    Command::new("kill")
        .args([&format!("-{signal}"), &recorder.id().to_string()])
        .status()
        .unwrap();
    wait_for_exit(&mut recorder, Duration::from_secs(10))
}

#[test]
fn ctrl_c_in_launch_mode_interrupts_the_program_and_passes_its_exit_code() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("split.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("launched.txt");
    let output = record_launched_until(&out, &python.argv(&[&script, "60"]), "INT");
    // Python exits with status 1 after an unhandled KeyboardInterrupt... or
    // by the signal itself (130) when it is interrupted outside Python code.
    assert!(
        matches!(output.status.code(), Some(1) | Some(130)),
        "{:?}",
        output.status
    );
    assert!(innermost_counts(&std::fs::read_to_string(&out).unwrap()).contains_key("alpha"));
}

/// SIGTERM to pydx reaches a launched program as SIGTERM (a server's
/// "finish what is in flight"), not as the SIGINT of Ctrl-C; the program's
/// own exit status is passed through.
#[test]
fn sigterm_in_launch_mode_reaches_the_program_as_sigterm() {
    let python = interpreter("pyenv-3.12");
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got.txt");
    let program = format!(
        "import signal, sys, time\n\
         def stop(number, frame):\n    open({:?}, 'w').write(signal.Signals(number).name)\n    sys.exit(3)\n\
         signal.signal(signal.SIGTERM, stop)\n\
         signal.signal(signal.SIGINT, stop)\n\
         end = time.time() + 60\n\
         while time.time() < end:\n    sum(range(1000))\n",
        got.to_string_lossy()
    );
    let out = dir.path().join("term.txt");
    let output = record_launched_until(&out, &python.argv(&["-c", &program]), "TERM");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "SIGTERM");
    assert!(stderr.contains("; interrupted"), "{stderr}");
}

/// When `--duration` ends, a launched program is stopped with it, and the
/// run succeeds: pydx returns after about the duration, program included.
#[test]
fn the_duration_stops_a_launched_program() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("split.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("duration.txt");
    let started = std::time::Instant::now();
    let output = pydx()
        .args(["record", "-d", "1", "-o"])
        .arg(&out)
        .arg("--")
        .args(python.argv(&[&script, "59"]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("; duration reached"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_nothing_left_running(&format!("{script} 59"));
    assert!(innermost_counts(&std::fs::read_to_string(&out).unwrap()).contains_key("alpha"));
}

/// Threads that exit while pydx pauses the others (the default before
/// 3.11) are collected: a traced thread that exits stays a zombie until its
/// tracer waits for it, and a launched program whose thread was never
/// collected never finishes exiting, so pydx waited for it forever.
#[test]
fn a_launched_program_whose_threads_exit_under_pauses_finishes() {
    let python = interpreter("pyenv-3.8");
    let script = python.install_script("thread_churn.py");
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let out = dir.path().join(format!("churn-{round}.txt"));
        let mut recorder = pydx()
            .args(["record", "--blocking", "--rate", "1000", "-o"])
            .arg(&out)
            .arg("--")
            .args(python.argv(&[&script, "2"]))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = wait_for_exit(&mut recorder, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "round {round}: {stderr}");
        assert!(
            stderr.contains("; the program exited"),
            "round {round}: {stderr}"
        );
    }
}

#[test]
fn a_target_that_exits_still_gets_its_profile_written() {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("split.py", &["1"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exited.txt");
    let stderr = record_attached(target.pid, &[], &out);
    assert!(stderr.contains("; the program exited"), "{stderr}");
    assert!(innermost_counts(&std::fs::read_to_string(&out).unwrap()).contains_key("alpha"));
    let _ = eventually(Duration::from_secs(1), || Ok::<(), String>(()));
}

#[test]
fn an_unknown_output_extension_is_a_clear_error() {
    let output = pydx()
        .args(["record", "--pid", "1", "-o", "profile.xyz"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot tell the format from profile.xyz"),
        "{stderr}"
    );
}

/// `record --async --idle`: each waiting task gets its own root frame and
/// the coroutines it waits in, root first.
fn record_async_tasks(label: &str) {
    let python = interpreter(label);
    let child = python.spawn("tasks.py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.txt");
    let output = pydx()
        .args(["record", "--async", "--idle", "-d", "0.5", "-o"])
        .arg(&path)
        .args(["--pid", &child.pid.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{label}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let collapsed = std::fs::read_to_string(&path).unwrap();
    let script = &child.script_path;
    let line = |marker| marker_line("tasks.py", marker);
    for n in 0..3 {
        let prefix = format!(
            "task \"worker-{n}\";worker ({script}:{});fetch ({script}:{});sleep (",
            line("LINE:worker"),
            line("LINE:fetch")
        );
        let samples: u64 = collapsed
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(
            (30..=80).contains(&samples),
            "{label}: worker-{n} has {samples} samples in 0.5 s at 100 Hz:\n{collapsed}"
        );
    }
    assert!(
        !collapsed.contains("task \"finished\""),
        "{label}: a finished task shown as waiting:\n{collapsed}"
    );
    let main = format!("task \"Task-1\";main ({script}:{}) ", line("LINE:main"));
    assert!(
        collapsed.lines().any(|l| l.starts_with(&main)),
        "{label}: no main task:\n{collapsed}"
    );
}

#[test]
fn async_tasks_on_3_11() {
    record_async_tasks("pyenv-3.11");
}

#[test]
fn async_tasks_on_3_15() {
    record_async_tasks("sid-3.15");
}

/// Without `--idle`, the time an event loop spends stuck in `time.sleep`
/// still shows: every task waited for it, although the thread slept.
#[test]
fn a_blocked_event_loop_shows_without_idle() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_example("blocked_loop.py");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.txt");
    let output = pydx()
        .args(["record", "-o"])
        .arg(&path)
        .arg("--")
        .args(python.argv(&[&script, "2"]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let collapsed = std::fs::read_to_string(&path).unwrap();
    let count = |l: &str| {
        l.rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total: u64 = collapsed.lines().map(count).sum();
    let sleeping: u64 = collapsed
        .lines()
        .filter(|l| l.contains(&format!("handle_request ({script}:19)")))
        .map(count)
        .sum();
    // The handler sleeps 0.25 s of every 0.3 s.
    assert!(
        sleeping * 100 >= total * 60,
        "{sleeping} of {total} samples in the blocking call:\n{collapsed}"
    );
}

/// `pydx record` with `args`, attached for a second to `sleep.py` (a
/// program that only sleeps), writing `name`: its exit status, stderr and
/// the file.
fn record_idle_program(name: &str, args: &[&str]) -> (Output, String, Option<String>) {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("sleep.py", &["30"]);
    // It prints `ready` just before it sleeps: on a loaded machine the first
    // sample could still find it running.
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let output = pydx()
        .args(["record", "-d", "1", "-o"])
        .arg(&out)
        .args(args)
        .args(["--pid", &target.pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr, std::fs::read_to_string(&out).ok())
}

#[test]
fn a_drawing_without_samples_on_a_cpu_is_written_with_idle_time() {
    for name in ["idle.svg", "idle.speedscope.json"] {
        let (output, stderr, file) = record_idle_program(name, &[]);
        assert!(output.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("was on a CPU: the file shows idle time too"),
            "{stderr}"
        );
        let file = file.unwrap_or_else(|| panic!("{name} not written: {stderr}"));
        assert!(
            file.contains("nap"),
            "{name}: the sleeping function is not drawn"
        );
    }
}

#[test]
fn an_endpoint_no_sample_served_is_named_and_the_recording_kept() {
    let (output, stderr, file) =
        record_idle_program("all.txt", &["--endpoint", "GET /nosuch", "--idle"]);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "no sample served endpoint \"GET /nosuch\" (served: no requests at all); the file shows every sample"
        ),
        "{stderr}"
    );
    assert!(innermost_counts(&file.expect("the recording")).contains_key("nap"));
}

#[test]
fn a_rate_below_one_is_reported_as_asked() {
    let (output, stderr, _) = record_idle_program("slow.txt", &["--rate", "0.5", "--idle"]);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("of 0.5 requested"), "{stderr}");
}

/// The voluntary context switches of each thread of `pid` that is asleep
/// now, by thread id.
fn switches_of_sleeping_threads(pid: u32) -> HashMap<u32, u64> {
    let mut switches = HashMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("State:").is_some_and(|s| s.starts_with('S')) {
            let tid: u32 = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let count = field("voluntary_ctxt_switches:").unwrap().parse().unwrap();
            switches.insert(tid, count);
        }
    }
    switches
}

/// Pausing a thread asleep in a system call wakes it (the call is cut
/// short and restarted, or fails with EINTR). A paused read before 3.11
/// leaves such threads alone when the kernel's count of their switches
/// onto a CPU shows that they did not run while read, and their stacks
/// are still exact: threads.py's sleeping threads (one 40 calls deep)
/// record their own stacks, and are woken for none of the 200 samples.
#[test]
fn paused_reads_leave_sleeping_threads_asleep() {
    let python = interpreter("pyenv-3.10");
    let target = python.spawn("threads.py", &[]);
    std::thread::sleep(Duration::from_millis(300));
    let before = switches_of_sleeping_threads(target.pid);
    assert!(before.len() >= 3, "{before:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sleepers.txt");
    let args = [
        "--blocking",
        "--idle",
        "-r",
        "200",
        "-d",
        "1",
        "--format",
        "collapsed",
    ];
    let stderr = record_attached(target.pid, &args, &out);
    let after = switches_of_sleeping_threads(target.pid);
    for (tid, count) in &before {
        let woken = after.get(tid).map_or(0, |now| now - count);
        assert!(woken < 10, "thread {tid} switched {woken} times: {stderr}");
    }
    let collapsed = std::fs::read_to_string(&out).unwrap();
    let line = |marker| marker_line("threads.py", marker);
    let script = &target.script_path;
    let nap = format!("nap ({script}:{})", line("LINE:nap"));
    let recursion = format!(
        "deep ({script}:{});{}recurse_λ ({script}:{})",
        line("LINE:deep"),
        format!("recurse_λ ({script}:{});", line("LINE:recurse")).repeat(40),
        line("LINE:bottom")
    );
    for stack in [nap, recursion] {
        let samples: u64 = collapsed
            .lines()
            .filter(|l| l.contains(&stack))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(samples >= 150, "{samples} samples of {stack}:\n{collapsed}");
    }
}

/// On 3.11 and 3.12 the frame pointer is read through the thread's current
/// `_PyCFrame`; a generator resumed by `for` (3.11), or Python called from
/// C, runs under a new one while the outer one keeps pointing to the frame
/// that made the call. A read through the outer one once it was left
/// showed the `for` line as where the time went (912 of 3,000 samples of a
/// corpus program, 5% here, where a paused read finds none). The thread
/// state's `_PyCFrame` is now checked with the frame pointer.
#[test]
fn a_generator_driven_loop_is_not_charged_to_its_for_line() {
    for label in ["pyenv-3.11", "pyenv-3.12"] {
        let python = interpreter(label);
        let script = python.install_script("generator_pipeline.py");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("generator.txt");
        let output = record_program(&python, &[&script, "3"], "500", &out);
        let collapsed = std::fs::read_to_string(&out).unwrap();
        let line = |marker| marker_line("generator_pipeline.py", marker);
        let main_at = |marker| format!(";main ({script}:{}) ", line(marker));
        let count = |pattern: &str| -> u64 {
            collapsed
                .lines()
                .filter(|l| l.contains(pattern))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        let all = count(&format!(";main ({script}:"));
        let at_for = count(&main_at("LINE:for"));
        assert!(
            all > 1000 && at_for * 100 <= all * 2,
            "{label}: {at_for} of {all} samples at the for line: {}\n{collapsed}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
