//! The doctor's rules on the accuracy corpus, offline: every profile that
//! `bench/doctor_accuracy.py` recorded of a corpus program (saved in
//! `corpus/profiles/`) is diagnosed again, and its findings are compared
//! with a snapshot and scored against the program's `# expect:` markers, so
//! that a rule change shows its effect on every program in seconds. The
//! live runs (the benchmark, and each rule's bad/fixed test) stay the proof
//! that recording works.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pydx_diagnose::{diagnose, Config, Severity, SourceMap};
use pydx_profile::read_pprof;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus")
}

/// A corpus program's manifest: healthy or planted, its markers and the
/// codes it forbids.
struct Program {
    healthy: bool,
    markers: Vec<(String, u32)>,
    forbid: Vec<String>,
}

fn program(name: &str) -> Program {
    let text = std::fs::read_to_string(corpus_dir().join(name))
        .unwrap_or_else(|e| panic!("corpus/{name}: {e}"));
    let header = |key: &str| {
        text.lines()
            .take_while(|l| l.starts_with('#'))
            .find_map(|l| {
                l.trim_start_matches('#')
                    .trim()
                    .strip_prefix(key)?
                    .strip_prefix(':')
            })
            .map(|v| v.trim().to_string())
    };
    let markers = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let (_, marker) = line.split_once("# expect:")?;
            Some(
                marker
                    .split([',', ' '])
                    .filter(|c| c.starts_with("PYDX-"))
                    .map(move |c| (c.to_string(), i as u32 + 1)),
            )
        })
        .flatten()
        .collect();
    Program {
        healthy: header("corpus").as_deref() == Some("healthy"),
        markers,
        forbid: header("forbid")
            .map(|v| {
                v.split([',', ' '])
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The basename of a path as the target named it.
fn basename(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// Per rule: true positives, false positives, misses.
type Scores = BTreeMap<String, [u32; 3]>;

#[test]
fn the_rules_on_every_saved_corpus_profile() {
    let profiles = corpus_dir().join("profiles");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&profiles)
        .unwrap_or_else(|e| panic!("{}: {e}", profiles.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pprof"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 40, "only {} saved profiles", paths.len());
    let mut scores = Scores::new();
    let mut summary = String::new();
    for path in paths {
        let stem = path.file_name().unwrap().to_string_lossy().into_owned();
        let program_file = format!("{}.py", stem.split('.').next().unwrap());
        let program = program(&program_file);
        let profile = read_pprof(std::fs::File::open(&path).unwrap()).unwrap();
        // The program's source, under the name the target gave it.
        let mut sources = SourceMap::default();
        let text = std::fs::read_to_string(corpus_dir().join(&program_file)).unwrap();
        for index in 0..profile.frame_count() {
            let file = profile.str(profile.frame_info(pydx_profile::FrameId(index as u32)).file);
            if basename(file) == program_file {
                sources.insert(file, &text);
            }
        }
        // And where a server found it (`uvicorn module:app` in its working
        // directory), for runs that never sampled the program's own code.
        for process in &profile.meta.processes {
            if let Some(cwd) = &process.cwd {
                sources.insert(&format!("{cwd}/{program_file}"), &text);
            }
        }
        let report = diagnose(&profile, &Config::default(), &sources);
        let mut matched = Vec::new();
        writeln!(summary, "{stem}:").unwrap();
        for finding in &report.findings {
            let at = (finding.code.to_string(), finding.location.line);
            let in_program = basename(&finding.location.file) == program_file;
            let process_rule = finding.code == "PYDX-MEM001";
            let hit = program.markers.iter().find(|(code, line)| {
                in_program && *code == at.0 && (*line == at.1 || process_rule)
            });
            let verdict = match hit {
                Some(marker) if !matched.contains(marker) => {
                    matched.push(marker.clone());
                    scores.entry(at.0.clone()).or_default()[0] += 1;
                    "TP"
                }
                Some(_) => "dup",
                None if finding.severity >= Severity::Warning || program.forbid.contains(&at.0) => {
                    scores.entry(at.0.clone()).or_default()[1] += 1;
                    "FP"
                }
                None => "info",
            };
            writeln!(
                summary,
                "  {verdict:4} {} {} {}:{} {}",
                finding.severity.as_str(),
                finding.code,
                basename(&finding.location.file),
                finding.location.line,
                finding.title
            )
            .unwrap();
        }
        for marker in &program.markers {
            if !matched.contains(marker) {
                scores.entry(marker.0.clone()).or_default()[2] += 1;
                writeln!(summary, "  miss {} at line {}", marker.0, marker.1).unwrap();
            }
        }
        if program.healthy && report.findings.is_empty() {
            writeln!(summary, "  (healthy, nothing found)").unwrap();
        }
    }
    writeln!(summary, "\nrule: TP FP misses").unwrap();
    for (code, [tp, fp, miss]) in &scores {
        writeln!(summary, "{code}: {tp} {fp} {miss}").unwrap();
    }
    insta::assert_snapshot!("corpus_findings", summary);
}
