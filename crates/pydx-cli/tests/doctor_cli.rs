//! `pydx doctor` as a command: a saved profile gives the same findings
//! offline, report files take their format from the extension, `--fail-on`
//! sets the exit status, thresholds change verdicts, bad input gets a clear
//! error; and `pydx rules` / `pydx explain` document every rule.

use std::path::Path;
use std::process::{Command, Output};

use pydx_testkit::examples_python;
use serde_json::Value;

/// Every rule code the doctor has.
const CODES: [&str; 18] = [
    "PYDX-GIL001",
    "PYDX-ASYNC001",
    "PYDX-ASYNC002",
    "PYDX-CPU001",
    "PYDX-CPU002",
    "PYDX-CACHE001",
    "PYDX-CONN001",
    "PYDX-DB001",
    "PYDX-DB002",
    "PYDX-DB003",
    "PYDX-DB004",
    "PYDX-WEB001",
    "PYDX-WEB002",
    "PYDX-MEM001",
    "PYDX-WORKER001",
    "PYDX-WORKER002",
    "PYDX-WORKER003",
    "PYDX-WORKER004",
];

fn pydx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(args)
        .output()
        .expect("run pydx")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs the blocked-loop example live with `--save`, then diagnoses the
/// saved profile in every way the tests below need.
#[test]
fn saved_profile_gives_the_same_findings_and_drives_ci_options() {
    let python = examples_python();
    let script = python.install_example("blocked_loop.py");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("blocked.pb.gz");
    let live = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["doctor", "--format", "json", "--save", path(&saved), "--"])
        .args(python.argv(&[&script, "2"]))
        .output()
        .unwrap();
    assert!(live.status.success(), "{}", stderr(&live));
    let live = json(&live);
    assert!(!live["report"]["findings"].as_array().unwrap().is_empty());

    let offline = pydx(&["doctor", path(&saved), "--format", "json"]);
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_eq!(
        json(&offline)["report"]["findings"],
        live["report"]["findings"],
        "the saved profile must give the same findings"
    );

    // Report files take their format from the extension.
    let sarif = dir.path().join("report.sarif");
    let markdown = dir.path().join("report.md");
    for file in [&sarif, &markdown] {
        let output = pydx(&["doctor", path(&saved), "-o", path(file)]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).is_empty());
    }
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "PYDX-ASYNC001");
    let markdown = std::fs::read_to_string(&markdown).unwrap();
    assert!(markdown.contains("PYDX-ASYNC001"), "{markdown}");

    // --fail-on: the blocked loop is an error.
    let failing = pydx(&["doctor", path(&saved), "--fail-on", "error"]);
    assert_eq!(failing.status.code(), Some(3), "{}", stderr(&failing));
    assert!(stdout(&failing).contains("PYDX-ASYNC001"));

    // Thresholds above the longest block (a sleep: a synchronous wait)
    // silence the finding.
    let tolerant = pydx(&[
        "doctor",
        path(&saved),
        "--format",
        "json",
        "--fail-on",
        "warning",
        "--threshold",
        "event_loop.slow_callback_ms=2000",
        "--threshold",
        "event_loop.blocking_wait_ms=2000",
    ]);
    assert_eq!(tolerant.status.code(), Some(0), "{}", stderr(&tolerant));
    let codes: Vec<Value> = json(&tolerant)["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].clone())
        .collect();
    assert!(!codes.contains(&Value::from("PYDX-ASYNC001")), "{codes:?}");

    // The same through a thresholds file.
    let config = dir.path().join("pydx.toml");
    std::fs::write(
        &config,
        "[event_loop]\nslow_callback_ms = 2000\nblocking_wait_ms = 2000\n",
    )
    .unwrap();
    let from_file = pydx(&[
        "doctor",
        path(&saved),
        "--config",
        path(&config),
        "--fail-on",
        "warning",
    ]);
    assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
}

#[test]
fn bad_thresholds_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("empty.pb.gz");
    std::fs::write(&profile, b"").unwrap();
    for (setting, message) in [
        (
            "event_loop.slow_callback_ms=fast",
            "the value must be a number",
        ),
        ("slow_callback_ms=5", "expected SECTION.NAME=VALUE"),
        ("event_loop.no_such_threshold=5", "no_such_threshold"),
    ] {
        let output = pydx(&["doctor", path(&profile), "--threshold", setting]);
        assert_eq!(output.status.code(), Some(1), "{setting}");
        let error = stderr(&output);
        assert!(error.contains(message), "{setting}: {error}");
        assert_eq!(error.trim().lines().count(), 1, "{setting}: {error}");
    }
}

#[test]
fn corrupt_or_missing_profiles_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pb.gz");
    std::fs::write(&garbage, b"\x1f\x8b\x08\x00 this is not a profile").unwrap();
    let not_gzip = dir.path().join("text.pb.gz");
    std::fs::write(&not_gzip, b"hello").unwrap();
    let missing = dir.path().join("missing.pb.gz");
    let empty = dir.path().join("empty.pb.gz");
    std::fs::write(&empty, b"").unwrap();
    for file in [&garbage, &not_gzip, &missing, &empty] {
        let output = pydx(&["doctor", path(file)]);
        assert_eq!(output.status.code(), Some(1), "{}", file.display());
        let error = stderr(&output);
        assert!(error.starts_with("error: "), "{error}");
        assert!(error.contains(path(file)), "{error}");
        assert_eq!(error.trim().lines().count(), 1, "{error}");
    }
}

#[test]
fn rules_lists_every_rule_and_explain_documents_each() {
    let listing = pydx(&["rules"]);
    assert!(listing.status.success());
    let listing = stdout(&listing);
    // Exactly these: a rule added without its test here fails.
    let listed: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.starts_with("PYDX-"))
        .collect();
    assert_eq!(listed.len(), CODES.len(), "{listing}");
    for code in CODES {
        assert!(listing.contains(code), "{code} missing from:\n{listing}");
        let short = code.trim_start_matches("PYDX-").to_lowercase();
        let explained = pydx(&["explain", &short]);
        assert!(explained.status.success(), "{code}");
        let text = stdout(&explained);
        assert!(text.contains(code), "{text}");
        for section in ["How to fix it", "Thresholds"] {
            assert!(text.contains(section), "{code} has no {section}:\n{text}");
        }
    }
    let unknown = pydx(&["explain", "PYDX-NOPE999"]);
    assert_ne!(unknown.status.code(), Some(0));
    assert!(
        stderr(&unknown).contains("PYDX-NOPE999"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn completion_scripts_cover_every_subcommand_and_parse() {
    let bash = pydx(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = stdout(&bash);
    for word in [
        "record",
        "doctor",
        "dump",
        "top",
        "explain",
        "--subprocesses",
        "--endpoint",
    ] {
        assert!(
            script.contains(word),
            "{word} missing from the bash completion"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pydx.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(pydx(&["completions", shell]).status.success(), "{shell}");
    }
    assert_eq!(pydx(&["completions", "tcsh"]).status.code(), Some(2));
}
