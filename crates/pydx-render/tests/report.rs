//! `pydx doctor` reports in every format, and the rules' documentation,
//! through the public API.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pydx_diagnose::{
    all_rules, Cost, Endpoint, EndpointFunction, Finding, HotLine, HotSpot, Location, NoSources,
    Report, RequestsServed, Severity, ShareOf, Summary, TimeUnit,
};
use pydx_profile::{Meta, Profile};
use pydx_render::{
    render_report, render_rule, render_rules, DocsFormat, ReportFormat, ReportOptions,
    JSON_REPORT_DOC, JSON_REPORT_SCHEMA,
};
use serde_json::Value;

/// The headings `pydx explain` shows, in order.
const RULE_HEADINGS: [&str; 6] = [
    "Summary",
    "What it detects",
    "Why it matters",
    "Example",
    "How to fix it",
    "Thresholds",
];

fn options(color: bool) -> ReportOptions {
    let mut options = ReportOptions::default();
    options.color = color;
    options.tool_version = "1.2.3".to_string();
    options
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn hot_spot(function: &str, file: &str, line: u32, self_share: f64, total_share: f64) -> HotSpot {
    HotSpot {
        function: function.to_string(),
        file: file.to_string(),
        line,
        self_share,
        total_share,
        self_seconds: self_share * 9.0,
        lines: Vec::new(),
    }
}

fn hot_line(line: u32, share: f64, seconds: f64, source: Option<&str>) -> HotLine {
    HotLine {
        line,
        share,
        seconds,
        source: source.map(str::to_string),
    }
}

fn summary(processes: &[&str]) -> Summary {
    Summary {
        duration_seconds: 12.5,
        samples: 3750,
        threads: 3,
        processes: strings(processes),
        on_cpu_share: 0.58,
        gil_wait_share: 0.3,
        idle_share: 0.08,
        cpu_wait_share: 0.04,
        requests: None,
        gaps: Vec::new(),
    }
}

/// Three findings (error, warning, info) of three rules, ranked, and six
/// hot spots.
fn report_with_findings() -> Report {
    let gil_stack: Vec<String> = (0..10)
        .map(|depth| format!("frame_{depth} (/srv/my app/pricing.py:{})", 40 - depth))
        .collect();
    Report {
        summary: Summary {
            requests: Some(RequestsServed {
                count: 6_895,
                per_second: 766.1,
                processes: 4,
            }),
            gaps: strings(&["3 of 25 memory readings of process 4243 failed: memory growth (MEM001, WORKER003) was judged on the rest"]),
            ..summary(&["4242 (Python 3.12.3): python -m pricing --workers 4"])
        },
        findings: vec![
            Finding {
                code: "PYDX-GIL001",
                title: "4 threads take turns on the GIL in price_orders (41% of their time waiting)"
                    .to_string(),
                severity: Severity::Error,
                cost: Cost {
                    share: 0.41,
                    share_of: ShareOf::ThreadsBusyTime,
                    seconds: 4.1,
                    unit: TimeUnit::ThreadSeconds,
                    cpu_seconds: 3.25,
                    longest_ms: None,
                    occurrences: None,
                },
                location: Location {
                    function: "price_orders".to_string(),
                    file: "/srv/my app/pricing.py".to_string(),
                    line: 40,
                    source: Some("    total += order.price * order.quantity".to_string()),
                },
                stack: gil_stack,
                evidence: strings(&[
                    "4 threads of process 4242 wanted the GIL at the same time and spent 41% of their \
                     busy time waiting for it (4.10 s of 10.00 s)",
                    "Thread-1 (worker): waiting for the GIL 40% of its busy time, running 60%",
                    "while holding the GIL they ran price_orders (/srv/my app/pricing.py:40) 93% of \
                     the time: pure Python that keeps the GIL",
                ]),
                fix: "Run price_orders in processes rather than threads: replace the \
                      ThreadPoolExecutor with `concurrent.futures.ProcessPoolExecutor`, or move the \
                      loop into NumPy, which releases the GIL."
                    .to_string(),
            },
            Finding {
                code: "PYDX-ASYNC001",
                title: "time.sleep blocks the event loop in handle_order (up to 250 ms)".to_string(),
                severity: Severity::Warning,
                cost: Cost {
                    share: 0.12,
                    share_of: ShareOf::EventLoopTime,
                    seconds: 1.5,
                    unit: TimeUnit::Seconds,
                    cpu_seconds: 0.0,
                    longest_ms: Some(250.0),
                    occurrences: Some(12),
                },
                location: Location {
                    function: "OrderService.handle_order".to_string(),
                    file: "app/handlers.py".to_string(),
                    line: 88,
                    source: Some("time.sleep(0.25)".to_string()),
                },
                stack: strings(&[
                    "OrderService.handle_order (app/handlers.py:88)",
                    "Handle._run (/usr/lib/python3.12/asyncio/events.py:84)",
                ]),
                evidence: strings(&[
                    "the event loop of thread MainThread ran one callback for 250 ms, 12 times",
                ]),
                fix: "Replace time.sleep(0.25) at app/handlers.py:88 with `await asyncio.sleep(...)` \
                      (same argument): time.sleep stops the whole event loop, asyncio.sleep only the \
                      current task."
                    .to_string(),
            },
            Finding {
                code: "PYDX-CPU001",
                title: "Pure-Python numeric loop in <module> (3% of CPU)".to_string(),
                severity: Severity::Info,
                cost: Cost {
                    share: 0.03,
                    share_of: ShareOf::CpuTime,
                    seconds: 0.004,
                    unit: TimeUnit::CpuSeconds,
                    cpu_seconds: 0.004,
                    longest_ms: None,
                    occurrences: None,
                },
                location: Location {
                    function: "<module>".to_string(),
                    file: "<string>".to_string(),
                    line: 3,
                    source: None,
                },
                stack: strings(&["<module> (<string>:3)"]),
                evidence: strings(&[
                    "line 3 (hottest): 71% of CPU (213 samples): `total += prices[i] * quantities[i]`",
                    "prices, quantities are a NumPy array indexed one element at a time: every \
                     access builds a Python scalar",
                ]),
                fix: "Replace the loop at <string>:2 with one NumPy expression. Convert the inputs \
                      once (`import numpy as np`; `np.asarray(...)`), then instead of `for i in \
                      range(len(prices)):` / `total += prices[i] * quantities[i]` write:\n    \
                      total = float(np.dot(prices, quantities))\nThe loop's __init__ step stays as is."
                    .to_string(),
            },
        ],
        hot_spots: vec![
            HotSpot {
                lines: vec![hot_line(40, 0.7, 1.96, Some("total += price * qty"))],
                ..hot_spot("price_orders", "/srv/my app/pricing.py", 40, 0.55, 0.81)
            },
            hot_spot("Order.__init__", "/srv/my app/models.py", 12, 0.12, 0.14),
            hot_spot("<module>", "<string>", 3, 0.03, 0.03),
            hot_spot("json.dumps", "/usr/lib/python3.12/json/__init__.py", 231, 0.02, 0.05),
            hot_spot("parse_row", "app/io.py", 77, 0.008, 0.02),
            hot_spot("unused_sixth", "app/io.py", 90, 0.001, 0.001),
        ],
        endpoints: vec![
            Endpoint {
                endpoint: "POST /orders/{id}/price".to_string(),
                samples: 412,
                share: 0.72,
                seconds: 4.12,
                on_cpu_share: 0.35,
                top_functions: vec![EndpointFunction {
                    function: "price_orders".to_string(),
                    file: "/srv/my app/pricing.py".to_string(),
                    line: 40,
                    share: 0.61,
                }],
            },
            Endpoint {
                endpoint: "GET /health".to_string(),
                samples: 160,
                share: 0.28,
                seconds: 1.6,
                on_cpu_share: 0.02,
                top_functions: Vec::new(),
            },
        ],
    }
}

/// No findings, four hot spots (one of frames whose code could not be
/// read), two processes.
fn report_without_findings() -> Report {
    Report {
        summary: summary(&[
            "100 (Python 3.11.9): python serve.py",
            "101 (Python 3.11.9): python worker.py",
        ]),
        findings: Vec::new(),
        hot_spots: vec![
            HotSpot {
                lines: vec![
                    hot_line(12, 0.1, 0.28, Some("for ch in text:")),
                    hot_line(14, 0.75, 2.1, Some("if ch.isalnum() or ch == \"_\":")),
                    hot_line(15, 0.15, 0.42, None),
                ],
                ..hot_spot("tokenize", "app/text.py", 14, 0.31, 0.4)
            },
            hot_spot("Lexer.next_token", "app/text.py", 52, 0.09, 0.31),
            hot_spot("main", "app/main.py", 3, 0.01, 0.98),
            hot_spot("<unreadable code object>", "<unknown>", 0, 0.01, 0.01),
        ],
        endpoints: Vec::new(),
    }
}

fn rendered(format: ReportFormat, report: &Report, options: &ReportOptions) -> String {
    let mut out = Vec::new();
    let profile = Profile::new(Meta::default());
    render_report(format, report, &profile, &NoSources, options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn sarif(report: &Report) -> Value {
    serde_json::from_str(&rendered(ReportFormat::Sarif, report, &options(false))).unwrap()
}

/// The platform the tests run on, e.g. `x86_64-unknown-linux-gnu`.
fn host_platform() -> String {
    let output = Command::new("rustc")
        .args(["--print", "host-tuple"])
        .output()
        .expect("rustc runs");
    assert!(output.status.success(), "rustc --print host-tuple failed");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The SARIF 2.1.0 schema shipped in the serde-sarif crate's source, found
/// through `cargo metadata` (for this platform only, so that nothing needs
/// downloading).
fn sarif_schema() -> Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host_platform(), "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let serde_sarif_manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "serde-sarif")
        .and_then(|package| package["manifest_path"].as_str())
        .expect("serde-sarif is a dev-dependency");
    let schema: PathBuf = Path::new(serde_sarif_manifest)
        .parent()
        .unwrap()
        .join("src/schema.json");
    serde_json::from_str(&fs::read_to_string(&schema).unwrap()).unwrap()
}

/// The ways `log` breaks the SARIF 2.1.0 schema (formats such as URIs
/// included).
fn sarif_schema_errors(log: &Value) -> Vec<String> {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&sarif_schema())
        .unwrap();
    validator
        .iter_errors(log)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect()
}

/// The SARIF output as written, with each rule's descriptor reduced to
/// its `"id"` line, so that the snapshot does not change with the rules'
/// documentation (checked in `sarif_describes_every_rule` instead).
fn sarif_for_snapshot(report: &Report) -> String {
    let text = rendered(ReportFormat::Sarif, report, &options(false));
    let mut kept = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        kept.push(line.to_string());
        if line.trim_start() == "\"rules\": [" {
            let indent = &line[..line.len() - line.trim_start().len()];
            let id_prefix = format!("{indent}    \"id\": ");
            let close = format!("{indent}]");
            for inner in lines.by_ref() {
                if let Some(id) = inner.strip_prefix(&id_prefix) {
                    kept.push(format!(
                        "{indent}  {{ \"id\": {} ... }}",
                        id.trim_end_matches(',')
                    ));
                } else if inner.trim_end_matches(',') == close {
                    kept.push(inner.to_string());
                    break;
                }
            }
        }
    }
    kept.join("\n")
}

#[test]
fn text_report() {
    let report = report_with_findings();
    insta::assert_snapshot!(
        "text",
        rendered(ReportFormat::Text, &report, &options(false))
    );
}

#[test]
fn text_report_in_colour() {
    let report = report_with_findings();
    let text = rendered(ReportFormat::Text, &report, &options(true));
    insta::assert_snapshot!("text_colour", text.replace('\x1b', "<ESC>"));
}

#[test]
fn text_without_colour_has_no_escape_codes() {
    for report in [report_with_findings(), report_without_findings()] {
        assert!(!rendered(ReportFormat::Text, &report, &options(false)).contains('\x1b'));
    }
}

#[test]
fn text_report_without_findings() {
    let report = report_without_findings();
    insta::assert_snapshot!(
        "text_no_findings",
        rendered(ReportFormat::Text, &report, &options(false))
    );
}

#[test]
fn markdown_report() {
    let report = report_with_findings();
    insta::assert_snapshot!(
        "markdown",
        rendered(ReportFormat::Markdown, &report, &options(false))
    );
}

#[test]
fn markdown_report_without_findings() {
    let report = report_without_findings();
    insta::assert_snapshot!(
        "markdown_no_findings",
        rendered(ReportFormat::Markdown, &report, &options(false))
    );
}

#[test]
fn json_report() {
    let report = report_with_findings();
    insta::assert_snapshot!(
        "json",
        rendered(ReportFormat::Json, &report, &options(false))
    );
}

#[test]
fn json_wraps_the_serialized_report() {
    for report in [report_with_findings(), report_without_findings()] {
        let json: Value =
            serde_json::from_str(&rendered(ReportFormat::Json, &report, &options(false))).unwrap();
        assert_eq!(json["schema"], JSON_REPORT_SCHEMA);
        assert_eq!(json["tool"], "pydx 1.2.3");
        assert_eq!(json["report"], serde_json::to_value(&report).unwrap());
    }
}

/// Every key of `value` and of the values it contains.
fn keys(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, value) in object {
                found.push(key.clone());
                keys(value, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys(item, found)),
        _ => {}
    }
}

#[test]
fn json_doc_describes_every_field() {
    let json: Value = serde_json::from_str(&rendered(
        ReportFormat::Json,
        &report_with_findings(),
        &options(false),
    ))
    .unwrap();
    let mut found = Vec::new();
    keys(&json, &mut found);
    for key in found {
        assert!(
            JSON_REPORT_DOC.contains(&format!("| `{key}` |")),
            "JSON_REPORT_DOC does not describe `{key}`"
        );
    }
    assert!(JSON_REPORT_DOC.contains(JSON_REPORT_SCHEMA));
}

#[test]
fn sarif_report() {
    insta::assert_snapshot!("sarif", sarif_for_snapshot(&report_with_findings()));
}

#[test]
fn sarif_report_without_findings() {
    insta::assert_snapshot!(
        "sarif_no_findings",
        sarif_for_snapshot(&report_without_findings())
    );
}

#[test]
fn sarif_validates_against_the_sarif_schema() {
    for report in [report_with_findings(), report_without_findings()] {
        let log = sarif(&report);
        let errors = sarif_schema_errors(&log);
        assert!(errors.is_empty(), "invalid SARIF:\n{}", errors.join("\n"));
        serde_json::from_value::<serde_sarif::sarif::Sarif>(log)
            .expect("serde-sarif reads the log");
    }
}

#[test]
fn the_sarif_schema_check_catches_invalid_logs() {
    let valid = sarif(&report_with_findings());
    let mut bad_level = valid.clone();
    bad_level["runs"][0]["results"][0]["level"] = "fatal".into();
    let mut bad_uri = valid.clone();
    bad_uri["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"] = "my app/pricing.py".into();
    let mut no_version = valid;
    no_version.as_object_mut().unwrap().remove("version");
    for invalid in [bad_level, bad_uri, no_version] {
        assert!(!sarif_schema_errors(&invalid).is_empty(), "{invalid:#}");
    }
}

#[test]
fn sarif_describes_every_rule() {
    let log = sarif(&report_with_findings());
    let descriptors = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let rules = all_rules();
    assert_eq!(descriptors.len(), rules.len());
    for (descriptor, rule) in descriptors.iter().zip(&rules) {
        let docs = rule.docs();
        assert_eq!(descriptor["id"], docs.code);
        assert_eq!(descriptor["name"], docs.name);
        assert_eq!(descriptor["shortDescription"]["text"], docs.summary);
        assert_eq!(descriptor["fullDescription"]["text"], docs.detects);
        let help = descriptor["help"]["text"].as_str().unwrap();
        assert!(help.contains(docs.fix) && help.contains(docs.thresholds));
        let help_markdown = descriptor["help"]["markdown"].as_str().unwrap();
        for heading in RULE_HEADINGS {
            assert!(
                help_markdown.contains(&format!("## {heading}\n")),
                "{heading}"
            );
        }
        assert_eq!(descriptor["defaultConfiguration"]["level"], "warning");
    }
    for result in log["runs"][0]["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(descriptors[index]["id"], result["ruleId"]);
    }
}

fn rules_list(format: DocsFormat) -> String {
    let mut out = Vec::new();
    render_rules(format, &options(false), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn rule_docs_text(code: &str, format: DocsFormat, color: bool) -> String {
    let docs = pydx_diagnose::rule_docs(code).unwrap();
    let mut out = Vec::new();
    render_rule(docs, format, &options(color), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn rules_list_every_code_name_and_summary() {
    for format in [DocsFormat::Text, DocsFormat::Markdown] {
        let list = rules_list(format);
        for rule in all_rules() {
            let docs = rule.docs();
            assert!(list.contains(docs.code), "{format:?} lacks {}", docs.code);
            assert!(list.contains(docs.name), "{format:?} lacks {}", docs.name);
            let first_words: Vec<&str> = docs.summary.split_whitespace().take(3).collect();
            assert!(list.contains(&first_words.join(" ")), "{format:?}");
        }
    }
}

#[test]
fn text_rules_list_is_a_table_within_the_width() {
    let list = rules_list(DocsFormat::Text);
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("CODE") && header.contains("NAME") && header.contains("SUMMARY"));
    let summary_column = header.find("SUMMARY").unwrap();
    for line in lines {
        assert!(line.chars().count() <= 100, "{line}");
        assert!(line.starts_with("PYDX-") || line[..summary_column].trim().is_empty());
    }
}

#[test]
fn rule_docs_show_every_section_under_its_heading() {
    for rule in all_rules() {
        let docs = rule.docs();
        let text = rule_docs_text(docs.code, DocsFormat::Text, false);
        let markdown = rule_docs_text(docs.code, DocsFormat::Markdown, false);
        assert!(text.starts_with(docs.code) && markdown.starts_with(&format!("# {}", docs.code)));
        let mut text_from = 0;
        let mut markdown_from = 0;
        for heading in RULE_HEADINGS {
            let in_text = text[text_from..]
                .find(&format!("\n{heading}\n"))
                .unwrap_or_else(|| panic!("{} lacks {heading} in text", docs.code));
            text_from += in_text + 1;
            let in_markdown = markdown[markdown_from..]
                .find(&format!("\n## {heading}\n"))
                .unwrap_or_else(|| panic!("{} lacks {heading} in Markdown", docs.code));
            markdown_from += in_markdown + 1;
        }
        let example_first_line = docs.example.lines().next().unwrap();
        assert!(text.contains(example_first_line) && markdown.contains(example_first_line));
        let thresholds_start: Vec<&str> = docs.thresholds.split_whitespace().take(2).collect();
        assert!(text.contains(&thresholds_start.join(" ")));
    }
}

#[test]
fn rule_docs_in_colour_have_bold_headings() {
    let text = rule_docs_text("PYDX-GIL001", DocsFormat::Text, true);
    assert!(text.contains("\x1b[1mWhat it detects\x1b[0m"));
    assert!(!rule_docs_text("PYDX-GIL001", DocsFormat::Text, false).contains('\x1b'));
}
