//! A few programs of the doctor's accuracy corpus (`corpus/`), diagnosed
//! live: a healthy one that used to get a false finding, and planted ones
//! whose finding must land on the line the `# expect:` marker names. The
//! whole corpus is scored by `bench/doctor_accuracy.py`, and offline on its
//! saved profiles by `crates/pydx-diagnose/tests/corpus.rs`.

use std::path::PathBuf;
use std::process::Command;

use pydx_testkit::{interpreter, web_python, Interpreter};
use serde_json::Value;

fn corpus_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../corpus")
        .join(name)
}

/// The line of `name` carrying the `# expect: CODE` marker.
fn marker_line(name: &str, code: &str) -> u64 {
    let text = std::fs::read_to_string(corpus_file(name)).unwrap();
    let marker = format!("# expect: {code}");
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(&marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "{name}: {code} markers at {lines:?}");
    lines[0] as u64
}

/// `pydx doctor --format json` on a corpus program, launched (the report
/// goes to a file: the program writes to standard output too).
fn doctor(python: &Interpreter, name: &str) -> Value {
    let path = corpus_file(name);
    let report =
        std::env::temp_dir().join(format!("pydx-corpus-{}-{name}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["doctor", "--format", "json", "-o"])
        .arg(&report)
        .arg("--")
        .args(python.argv(&[path.to_str().unwrap()]))
        .output()
        .expect("run pydx doctor");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&report).expect("the report");
    let _ = std::fs::remove_file(&report);
    serde_json::from_str::<Value>(&text).expect("JSON")["report"].clone()
}

/// `(code, severity, line)` of every finding.
fn findings(report: &Value) -> Vec<(String, String, u64)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["location"]["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn light_threads_waiting_behind_a_big_sort_are_healthy() {
    let report = doctor(&interpreter("pyenv-3.11"), "price_board_ranking.py");
    let all = findings(&report);
    assert!(
        all.iter()
            .all(|(code, severity, _)| code != "PYDX-GIL001" && severity == "info"),
        "{report:#}"
    );
}

#[test]
fn contending_threads_are_found_where_their_loop_calls_the_work() {
    let report = doctor(&interpreter("pyenv-3.11"), "access_log_shards.py");
    let line = marker_line("access_log_shards.py", "PYDX-GIL001");
    assert!(
        findings(&report)
            .iter()
            .any(|(code, _, at)| code == "PYDX-GIL001" && *at == line),
        "{report:#}"
    );
}

#[test]
fn a_batch_import_committing_per_row_is_found() {
    let report = doctor(&web_python(), "bank_statement_import.py");
    let line = marker_line("bank_statement_import.py", "PYDX-DB003");
    let all = findings(&report);
    assert!(
        all.iter()
            .any(|(code, _, at)| code == "PYDX-DB003" && *at == line),
        "{report:#}"
    );
}
