//! `pydx annotate` on a real recording: the function's source, each line
//! with its samples, the lines that did the work the hottest.

use std::path::Path;
use std::process::{Command, Output};

use pydx_testkit::examples_python;

fn annotate(profile: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
        .arg("annotate")
        .arg(profile)
        .args(extra)
        .output()
        .expect("run pydx annotate")
}

/// The samples column of the row for the source line containing `text`.
fn samples_of(output: &str, text: &str) -> u64 {
    let row = output
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no row for {text}: {output}"));
    row.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_function_is_shown_line_by_line_with_its_time() {
    let python = examples_python();
    let script = python.install_example("hot_spot.py");
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("hot.pb.gz");
    let recorded = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["record", "-o"])
        .arg(&profile)
        .arg("--")
        .args(python.argv(&[&script, "2"]))
        .output()
        .unwrap();
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );

    // Without a function name: the program's function with the most samples.
    for extra in [&[][..], &["tokenize"][..]] {
        let output = annotate(&profile, extra);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.starts_with("tokenize ("), "{text}");
        assert!(text.contains("def tokenize(text):"), "{text}");
        assert!(text.contains("return tokens"), "{text}");
        let loop_samples = samples_of(&text, "for ch in text:")
            + samples_of(&text, "if ch.isalnum()")
            + samples_of(&text, "current += ch");
        let set_up = samples_of(&text, "tokens = []");
        assert!(loop_samples > 50 && loop_samples > set_up * 10, "{text}");
    }

    let output = annotate(&profile, &["no_such_function"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no function no_such_function"), "{stderr}");
    assert!(stderr.contains("tokenize"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
