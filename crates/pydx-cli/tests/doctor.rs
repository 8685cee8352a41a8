//! `pydx doctor` on the examples: each rule fires on the program that has
//! the problem, at the right file and line, and stays silent on the same
//! program with the fix applied, on Python 3.11 and 3.15.

use std::process::Command;

use pydx_testkit::{examples_dir, examples_python, interpreter, Interpreter};
use serde_json::Value;

/// Seconds each example runs.
const RUN_SECONDS: &str = "3";

/// Runs `pydx doctor --format json` on an example and returns the report.
fn doctor(python: &Interpreter, example: &str, extra: &[&str]) -> (Value, String) {
    let script = python.install_example(example);
    let output = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["doctor", "--format", "json"])
        .args(extra)
        .arg("--")
        .args(python.argv(&[&script, RUN_SECONDS]))
        .output()
        .expect("run pydx doctor");
    assert!(
        output.status.success(),
        "{} {example}: {}",
        python.label,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{example}: not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(json["schema"], "pydx-doctor/1");
    (json["report"].clone(), script)
}

/// The findings of a report with this code.
fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .map(|all| all.iter().filter(|f| f["code"] == code).collect())
        .unwrap_or_default()
}

/// The line of `example` that contains `snippet` (exactly one).
fn line_of(example: &str, snippet: &str) -> u64 {
    let text = std::fs::read_to_string(examples_dir().join(example)).unwrap();
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(snippet))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{snippet:?} must be on one line of {example}"
    );
    lines[0] as u64
}

/// Where a finding must point.
enum Expect {
    /// Exactly the line containing this text.
    Line(&'static str),
    /// A line of this function, whose `def` line contains the text (for
    /// rules that point at the hottest line, which varies run to run).
    InFunction(&'static str, &'static str),
}

/// The codes of all findings of a report.
fn codes(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .map(|all| all.iter().filter_map(|f| f["code"].as_str()).collect())
        .unwrap_or_default()
}

/// Checks that `code` fires where expected in `bad`, and that nothing else
/// does there or in `fixed`: no false findings on either program. `extra`
/// goes to both doctor runs (`--native`, say).
fn fires_and_is_fixed(
    python: &Interpreter,
    extra: &[&str],
    code: &str,
    bad: &str,
    fixed: &str,
    expect: Expect,
) {
    let (report, script) = doctor(python, bad, extra);
    assert_eq!(
        codes(&report),
        [code],
        "{} {bad}: expected one {code} and nothing else, got {report:#}",
        python.label
    );
    let found = findings(&report, code);
    let location = &found[0]["location"];
    assert_eq!(
        location["file"],
        script.as_str(),
        "{} {bad}: {location}",
        python.label
    );
    let line = location["line"].as_u64().unwrap_or(0);
    match expect {
        Expect::Line(snippet) => assert_eq!(
            line,
            line_of(bad, snippet),
            "{} {bad}: {location}",
            python.label
        ),
        Expect::InFunction(function, definition) => {
            assert_eq!(
                location["function"], function,
                "{} {bad}: {location}",
                python.label
            );
            let start = line_of(bad, definition);
            assert!(
                line > start && line < start + 20,
                "{} {bad}: line {line} not in {function}",
                python.label
            );
        }
    }
    assert!(!found[0]["fix"].as_str().unwrap_or_default().is_empty());
    assert!(!found[0]["evidence"].as_array().unwrap().is_empty());

    let (report, _) = doctor(python, fixed, extra);
    assert!(
        codes(&report).is_empty(),
        "{} {fixed}: the fixed program still gets findings: {report:#}",
        python.label
    );
}

macro_rules! rule_tests {
    ($($name:ident: $code:literal, $bad:literal, $fixed:literal, $expect:expr;)*) => {
        mod on_3_11 {
            use super::*;
            $(#[test] fn $name() { fires_and_is_fixed(&examples_python(), &[], $code, $bad, $fixed, $expect); })*
        }
        mod on_3_15 {
            use super::*;
            $(#[test] fn $name() { fires_and_is_fixed(&interpreter("sid-3.15"), &[], $code, $bad, $fixed, $expect); })*
        }
        /// With native frames in the stacks (NumPy's, libc's, the
        /// interpreter's built-ins), the same findings and no others.
        mod with_native_frames {
            use super::*;
            $(#[test] fn $name() { fires_and_is_fixed(&examples_python(), &["--native"], $code, $bad, $fixed, $expect); })*
        }
    };
}

rule_tests! {
    gil_contention: "PYDX-GIL001", "gil_contention.py", "gil_contention_fixed.py",
        Expect::Line("count_primes(20_000)");
    blocked_event_loop: "PYDX-ASYNC001", "blocked_loop.py", "blocked_loop_fixed.py",
        Expect::Line("time.sleep(0.25)");
    numeric_loop: "PYDX-CPU001", "numeric_loop.py", "numeric_loop_fixed.py",
        Expect::Line("total += prices[i] * quantities[i]");
    interpreted_hot_spot: "PYDX-CPU002", "hot_spot.py", "hot_spot_fixed.py",
        Expect::InFunction("tokenize", "def tokenize(text):");
    repeated_computation: "PYDX-CACHE001", "repeated_computation.py", "repeated_computation_fixed.py",
        Expect::Line("def shipping_quote(zone, weight_class):");
    sequential_awaits: "PYDX-ASYNC002", "sequential_awaits.py", "sequential_awaits_fixed.py",
        Expect::Line("user = await backends[\"user\"].ask(order_id)");
}

/// The mixed program has three problems: each is found once, at its line,
/// nothing else is reported, and the findings come most costly first.
fn mixed_program_gets_three_ranked_findings(python: &Interpreter) {
    let (report, script) = doctor(python, "mixed.py", &[]);
    let all = report["findings"].as_array().expect("findings");
    let mut codes: Vec<&str> = all.iter().filter_map(|f| f["code"].as_str()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        ["PYDX-ASYNC001", "PYDX-CACHE001", "PYDX-GIL001"],
        "{}: {report:#}",
        python.label
    );
    let costs: Vec<f64> = all
        .iter()
        .map(|f| f["cost"]["seconds"].as_f64().unwrap_or(-1.0))
        .collect();
    assert!(
        costs.windows(2).all(|pair| pair[0] >= pair[1]),
        "{}: not ranked by cost: {costs:?}",
        python.label
    );
    let at = |code: &str| {
        let finding = findings(&report, code)[0];
        assert_eq!(finding["location"]["file"], script.as_str());
        (
            finding["location"]["function"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            finding["location"]["line"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(
        at("PYDX-GIL001"),
        (
            "build_reports".to_string(),
            line_of("mixed.py", "count_primes(20_000)")
        )
    );
    assert_eq!(
        at("PYDX-ASYNC001"),
        (
            "handle_request".to_string(),
            line_of("mixed.py", "time.sleep(0.2)")
        )
    );
    assert_eq!(
        at("PYDX-CACHE001"),
        (
            "shipping_quote".to_string(),
            line_of("mixed.py", "def shipping_quote(zone, weight_class):")
        )
    );
}

#[test]
fn mixed_program_on_3_11() {
    mixed_program_gets_three_ranked_findings(&examples_python());
}

#[test]
fn mixed_program_on_3_15() {
    mixed_program_gets_three_ranked_findings(&interpreter("sid-3.15"));
}

/// The CPU seconds `hot_spot.py`'s `tokenize` took by the report's hot
/// spots, recorded at `rate`, and the rate the sampler achieved.
fn tokenize_seconds(python: &Interpreter, rate: &str) -> (f64, f64) {
    let (report, _) = doctor(python, "hot_spot.py", &["--rate", rate]);
    let tokenize = report["hot_spots"]
        .as_array()
        .and_then(|all| all.iter().find(|h| h["function"] == "tokenize"))
        .unwrap_or_else(|| panic!("at {rate} Hz, no tokenize hot spot: {report:#}"));
    let summary = &report["summary"];
    let achieved =
        summary["samples"].as_f64().unwrap() / summary["duration_seconds"].as_f64().unwrap();
    (tokenize["self_seconds"].as_f64().unwrap(), achieved)
}

#[test]
fn seconds_stay_right_when_the_sampler_falls_behind() {
    let python = examples_python();
    let (easy, _) = tokenize_seconds(&python, "100");
    let (hard, achieved) = tokenize_seconds(&python, "200000");
    // The point of the test: the sampler could not hold the rate, so a
    // sample counted at the requested interval would be worth far less time.
    assert!(achieved < 100_000.0, "the sampler held {achieved:.0} Hz");
    assert!(
        (hard / easy - 1.0).abs() <= 0.10,
        "{hard:.2} s at 200 kHz against {easy:.2} s at 100 Hz"
    );
}
