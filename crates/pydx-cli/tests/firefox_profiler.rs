//! `--format gecko` files open in the real Firefox Profiler: they are
//! loaded by its own code (the `@firefox-devtools/profiler-cli` package,
//! which bundles the profiler's importers, run headless under Node 24; both
//! installed by scripts/setup-test-env.sh), which must find the recorded
//! threads, functions and time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pydx_testkit::{cache_dir, interpreter};
use serde_json::Value;

/// Node 24 and the Firefox Profiler's CLI, from the test cache.
fn profiler_cli() -> (PathBuf, PathBuf) {
    let dir = cache_dir().join("firefox-profiler");
    let node = dir.join("node_modules/.bin/node");
    let cli = dir.join("node_modules/@firefox-devtools/profiler-cli/dist/profiler-cli.js");
    assert!(
        node.exists() && cli.exists(),
        "the Firefox Profiler CLI is in {} (scripts/setup-test-env.sh installs it)",
        dir.display()
    );
    (node, cli)
}

/// Runs the Firefox Profiler CLI with `args`, its sessions kept in `home`.
fn profiler(home: &Path, args: &[&str]) -> Output {
    let (node, cli) = profiler_cli();
    Command::new(node)
        .arg(cli)
        .args(args)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Records `split.py` (alpha, beta and gamma burning CPU 50:30:20) for 2 s
/// into a Gecko file.
fn record_split(dir: &Path) -> PathBuf {
    let python = interpreter("pyenv-3.12");
    let target = python.spawn("split.py", &["30"]);
    let out = dir.join("split.gecko.json");
    let output = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(["record", "--rate", "200", "--duration", "2", "-o"])
        .arg(&out)
        .args(["--pid", &target.pid.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    out
}

/// The file follows the format's definition: the schemas of version 24,
/// every index within its table, sample times in order.
#[test]
fn a_gecko_file_follows_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(record_split(dir.path())).unwrap()).unwrap();
    assert_eq!(file["meta"]["version"], 24);
    assert!((file["meta"]["interval"].as_f64().unwrap() - 5.0).abs() < 1e-9);
    let categories = file["meta"]["categories"].as_array().unwrap();
    let threads = file["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{threads:?}");
    let thread = &threads[0];
    let strings = thread["stringTable"].as_array().unwrap();
    let frames = thread["frameTable"]["data"].as_array().unwrap();
    let stacks = thread["stackTable"]["data"].as_array().unwrap();
    let samples = thread["samples"]["data"].as_array().unwrap();
    assert_eq!(thread["frameTable"]["schema"]["location"], 0);
    assert_eq!(thread["frameTable"]["schema"]["category"], 7);
    for frame in frames {
        assert!((frame[0].as_u64().unwrap() as usize) < strings.len());
        let category = frame[7].as_u64().unwrap() as usize;
        let subcategories = categories[category]["subcategories"].as_array().unwrap();
        assert!((frame[8].as_u64().unwrap() as usize) < subcategories.len());
    }
    for (index, stack) in stacks.iter().enumerate() {
        assert!(stack[0].is_null() || (stack[0].as_u64().unwrap() as usize) < index);
        assert!((stack[1].as_u64().unwrap() as usize) < frames.len());
    }
    let times: Vec<f64> = samples.iter().map(|s| s[1].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(samples.len() > 300, "{} samples", samples.len());
    for sample in samples {
        assert!((sample[0].as_u64().unwrap() as usize) < stacks.len());
    }
}

/// The Firefox Profiler's own importer loads the file and finds the thread
/// and the three functions at about their true shares of the samples.
#[test]
fn the_firefox_profiler_loads_a_gecko_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = record_split(dir.path());
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let loaded = profiler(&home, &["load", file.to_str().unwrap()]);
    let samples = profiler(&home, &["thread", "samples"]);
    let functions = profiler(&home, &["thread", "functions"]);
    profiler(&home, &["stop"]);
    assert!(loaded.status.success(), "{}", text(&loaded));
    assert!(samples.status.success(), "{}", text(&samples));
    let listing = text(&functions);
    for (function, share) in [("alpha", 50.0), ("beta", 30.0), ("gamma", 20.0)] {
        let line = listing
            .lines()
            .find(|line| line.contains(function))
            .unwrap_or_else(|| panic!("{function} not listed: {listing}"));
        let percent: f64 = line
            .split_whitespace()
            .find_map(|word| {
                let word = word.trim_matches(|c| matches!(c, '(' | ')' | ','));
                word.strip_suffix('%')?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no share in {line:?}"));
        assert!(
            (percent - share).abs() < 12.0,
            "{function}: {percent}% ({line}); {listing}"
        );
    }
}
