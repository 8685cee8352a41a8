//! `pydx diff` on real recordings of an example and its fix: the finding
//! is gone, and its function's time fell by what the finding cost.

use std::path::Path;
use std::process::{Command, Output};

use pydx_testkit::{examples_python, Interpreter};
use serde_json::Value;

/// Records `example` for 3 seconds with `pydx doctor --save`.
fn save(python: &Interpreter, example: &str, to: &Path) {
    let script = python.install_example(example);
    let output = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["doctor", "--save"])
        .arg(to)
        .arg("--")
        .args(python.argv(&[&script, "3"]))
        .output()
        .expect("run pydx doctor");
    assert!(
        output.status.success(),
        "{example}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pydx_diff(before: &Path, after: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
        .arg("diff")
        .arg(before)
        .arg(after)
        .args(extra)
        .output()
        .expect("run pydx diff")
}

#[test]
fn a_fix_shows_as_its_finding_gone_and_its_time_fallen() {
    let python = examples_python();
    let dir = tempfile::tempdir().unwrap();
    let (bad, fixed) = (dir.path().join("bad.pb.gz"), dir.path().join("fixed.pb.gz"));
    save(&python, "repeated_computation.py", &bad);
    save(&python, "repeated_computation_fixed.py", &fixed);

    let svg_path = dir.path().join("diff.svg");
    let svg_arg = svg_path.to_str().unwrap();
    let output = pydx_diff(
        &bad,
        &fixed,
        &[
            "--json",
            "--fail-on-regression",
            "10",
            "--flamegraph",
            svg_arg,
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["schema"], "pydx-diff/1");
    let diff = &json["diff"];
    assert_eq!(diff["basis"], "per_second", "{diff:#}");
    let gone = diff["findings"]["gone"].as_array().unwrap();
    assert_eq!(gone.len(), 1, "{diff:#}");
    assert_eq!(gone[0]["code"], "PYDX-CACHE001");
    assert!(
        diff["findings"]["new"].as_array().unwrap().is_empty(),
        "{diff:#}"
    );
    let quote = diff["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == "shipping_quote")
        .unwrap_or_else(|| panic!("shipping_quote is not among the changes: {diff:#}"));
    let (before, after) = (
        quote["total_before"].as_f64().unwrap(),
        quote["total_after"].as_f64().unwrap(),
    );
    let cost = gone[0]["cost_ms_per_unit"].as_f64().unwrap();
    // The cache removes the repeats the finding costed: the function's time
    // falls by at least most of that cost.
    assert!(after < before * 0.2, "{before} -> {after} ms per second");
    assert!(
        before - after >= cost * 0.8,
        "fell {} of a {cost} ms cost",
        before - after
    );
    assert!(json["cpu_change"].as_f64().unwrap() < -0.5, "{json:#}");
    // The differential flamegraph shows the function the fix removed, in
    // blue: its tooltip gives a fall.
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let quote_title = svg
        .split("<title>")
        .filter_map(|t| t.split("</title>").next())
        .find(|t| t.starts_with("shipping_quote"))
        .unwrap_or_else(|| panic!("no shipping_quote frame in the flamegraph"));
    assert!(quote_title.contains("%; -"), "{quote_title}");

    // Read the other way round, the same recordings are a regression.
    let output = pydx_diff(&fixed, &bad, &["--fail-on-regression", "10"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stdout}{stderr}");
    assert!(
        stderr.contains("more than --fail-on-regression 10"),
        "{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("new ") && l.contains("PYDX-CACHE001")),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_get_one_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pb.gz");
    let not_a_profile = dir.path().join("text.pb.gz");
    std::fs::write(&not_a_profile, "not a profile").unwrap();
    for (extra, expected) in [
        (vec![missing.clone(), not_a_profile.clone()], "cannot open"),
        (
            vec![not_a_profile.clone(), not_a_profile.clone()],
            "cannot read",
        ),
    ] {
        let output = pydx_diff(&extra[0], &extra[1], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let output = pydx_diff(
        &not_a_profile,
        &not_a_profile,
        &["--fail-on-regression", "-5"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--fail-on-regression takes a percentage of 0 or more, not -5"),
        "{stderr}"
    );
}
