//! Stacks read while the program runs are never torn: on a program whose
//! stack changes every few hundred nanoseconds, every recorded stack is one
//! the program had, on every version. Before 3.11 (frames are separate heap
//! objects) the default mode pauses the program for each sample; from 3.11
//! it pauses only to read again a stack that changed while it was read.
//! `--nonblocking` leaves out, and counts, what it cannot read whole.

use std::collections::BTreeMap;
use std::process::Command;

use pydx_testkit::interpreter;

/// What a collapsed profile of `recurse.py` holds: samples by number of
/// `rec` frames, and the stacks the program never had.
struct Depths {
    by_depth: BTreeMap<usize, u64>,
    impossible: Vec<String>,
    total: u64,
}

fn depths(collapsed: &str) -> Depths {
    let mut result = Depths {
        by_depth: BTreeMap::new(),
        impossible: Vec::new(),
        total: 0,
    };
    for line in collapsed.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("stack and count");
        let count: u64 = count.parse().expect("count");
        result.total += count;
        let names: Vec<&str> = stack
            .split(';')
            .map(|frame| frame.split(" (").next().unwrap_or_default())
            .collect();
        let possible = names.len() >= 2
            && names[0] == "<module>"
            && names[1] == "main"
            && names[2..].iter().all(|&name| name == "rec")
            && names.len() - 2 <= 20;
        if possible {
            *result.by_depth.entry(names.len() - 2).or_default() += count;
        } else {
            result.impossible.push(line.to_string());
        }
    }
    result
}

/// The stacks of a collapsed profile of `two_families.py` that the program
/// never had (an `a` frame calling a `b` one, a family member skipped), and
/// the number of samples.
fn mixed_families(collapsed: &str) -> (Vec<String>, u64) {
    let mut impossible = Vec::new();
    let mut total = 0;
    for line in collapsed.lines() {
        let (stack, count) = line.rsplit_once(' ').expect("stack and count");
        total += count.parse::<u64>().expect("count");
        let names: Vec<&str> = stack
            .split(';')
            .map(|frame| frame.split(" (").next().unwrap_or_default())
            .collect();
        let calls: Vec<String> = names
            .iter()
            .skip(2)
            .take_while(|name| name.starts_with(['a', 'b']))
            .map(|name| name.to_string())
            .collect();
        let expected: Vec<String> = calls
            .first()
            .map(|first| {
                let family = &first[..1];
                (0..calls.len()).map(|i| format!("{family}{i}")).collect()
            })
            .unwrap_or_default();
        if names.get(..2) != Some(&["<module>", "main"][..]) || calls != expected {
            impossible.push(line.to_string());
        }
    }
    (impossible, total)
}

/// Records `script` at 1 kHz for 2 s once it runs its loop; returns the
/// collapsed profile and pydx's summary line.
fn record_script(label: &str, script: &str, mode: &[&str]) -> (String, String) {
    let python = interpreter(label);
    let mut target = python.spawn(script, &["30"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recurse.txt");
    let output = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["record", "--rate", "1000", "--duration", "2"])
        .args(mode)
        .arg("-o")
        .arg(&out)
        .args(["--pid", &target.pid.to_string()])
        .output()
        .unwrap();
    target.kill();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{label}: {stderr}");
    (std::fs::read_to_string(&out).unwrap(), stderr)
}

/// Records `recurse.py` (see [`record_script`]).
fn record(label: &str, mode: &[&str]) -> (Depths, String) {
    let (collapsed, stderr) = record_script(label, "recurse.py", mode);
    (depths(&collapsed), stderr)
}

/// From 3.11 frames are slots of a data stack, reused at once: a read that
/// mixed an `a` family's old frames with a `b` family's new ones would look
/// like a chain. The default mode records none and leaves out none; with
/// `--nonblocking` none either, what could not be read whole is counted.
fn data_stack_is_never_torn(label: &str, mode: &[&str]) {
    let (collapsed, stderr) = record_script(label, "two_families.py", mode);
    let (impossible, total) = mixed_families(&collapsed);
    assert!(total > 200, "{label}: {total} samples");
    assert!(impossible.is_empty(), "{label} {mode:?}: {impossible:#?}");
    if mode.is_empty() {
        assert!(total > 1000, "{label}: {total} samples");
        assert!(!stderr.contains("left out"), "{label}: {stderr}");
    }
}

/// The default mode: no impossible stack, none left out, and the share of
/// each depth as a paused read sees it (each about 5%; reading heap frames
/// without pausing over-samples short stacks, 35-50% at one `rec`).
fn default_mode_is_exact(label: &str) {
    let (depths, stderr) = record(label, &[]);
    assert!(depths.total > 1000, "{label}: {} samples", depths.total);
    assert!(
        depths.impossible.is_empty(),
        "{label}: {:?}",
        depths.impossible
    );
    assert!(!stderr.contains("left out"), "{label}: {stderr}");
    for (depth, count) in &depths.by_depth {
        let share = *count as f64 / depths.total as f64;
        assert!(
            share < 0.2,
            "{label}: {:.0}% of samples at depth {depth}: {:?}\n{stderr}",
            share * 100.0,
            depths.by_depth
        );
    }
}

/// `--nonblocking` before 3.11: every stack recorded is one the program had
/// (what could not be read whole is left out and counted in the summary).
fn nonblocking_is_never_torn(label: &str) {
    let (depths, stderr) = record(label, &["--nonblocking"]);
    assert!(depths.total > 200, "{label}: {} samples", depths.total);
    assert!(
        depths.impossible.is_empty(),
        "{label}: {:?}",
        depths.impossible
    );
    assert!(stderr.contains(", 0 errors"), "{label}: {stderr}");
}

#[test]
fn default_mode_on_3_8() {
    default_mode_is_exact("pyenv-3.8");
}

#[test]
fn default_mode_on_3_9() {
    default_mode_is_exact("pyenv-3.9");
}

#[test]
fn default_mode_on_3_10() {
    default_mode_is_exact("pyenv-3.10");
}

#[test]
fn default_mode_on_3_11() {
    default_mode_is_exact("pyenv-3.11");
}

#[test]
fn default_mode_on_3_15() {
    default_mode_is_exact("sid-3.15");
}

#[test]
fn nonblocking_on_3_8() {
    nonblocking_is_never_torn("pyenv-3.8");
}

#[test]
fn nonblocking_on_3_9() {
    nonblocking_is_never_torn("pyenv-3.9");
}

#[test]
fn nonblocking_on_3_10() {
    nonblocking_is_never_torn("pyenv-3.10");
}

#[test]
fn data_stack_on_3_11() {
    data_stack_is_never_torn("pyenv-3.11", &[]);
}

#[test]
fn data_stack_on_3_12() {
    data_stack_is_never_torn("pyenv-3.12", &[]);
}

#[test]
fn data_stack_on_3_13() {
    data_stack_is_never_torn("pyenv-3.13", &[]);
}

#[test]
fn data_stack_on_3_15() {
    data_stack_is_never_torn("sid-3.15", &[]);
}

#[test]
fn data_stack_nonblocking_on_3_12() {
    data_stack_is_never_torn("pyenv-3.12", &["--nonblocking"]);
}

#[test]
fn data_stack_nonblocking_on_3_15() {
    data_stack_is_never_torn("sid-3.15", &["--nonblocking"]);
}
