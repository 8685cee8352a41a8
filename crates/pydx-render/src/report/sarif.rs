//! The report as SARIF 2.1.0
//! (<https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html>).

use std::io::{self, Write};

use pydx_diagnose::{all_rules, Cost, Finding, Report, RuleDocs, Severity, Summary};
use serde::Serialize;

use super::rules::rule_markdown;
use super::ReportOptions;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = env!("CARGO_PKG_REPOSITORY");

/// A SARIF log (`sarifLog`).
#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(Serialize)]
struct Run<'a> {
    tool: Tool<'a>,
    results: Vec<SarifResult<'a>>,
    properties: RunProperties<'a>,
}

#[derive(Serialize)]
struct Tool<'a> {
    driver: Driver<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver<'a> {
    name: &'static str,
    version: &'a str,
    information_uri: &'static str,
    rules: Vec<ReportingDescriptor>,
}

/// A rule's description.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportingDescriptor {
    id: &'static str,
    name: &'static str,
    short_description: Message,
    full_description: Message,
    help: Help,
    default_configuration: Configuration,
    properties: RuleProperties,
}

/// A `message` or `multiformatMessageString` with plain text only.
#[derive(Serialize)]
struct Message {
    text: String,
}

impl Message {
    fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }
}

#[derive(Serialize)]
struct Help {
    text: String,
    markdown: String,
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
struct RuleProperties {
    tags: [&'static str; 1],
}

/// What the run recorded.
#[derive(Serialize)]
struct RunProperties<'a> {
    summary: &'a Summary,
}

/// A `result`: one finding.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<usize>,
    level: &'static str,
    message: Message,
    locations: [Location<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stacks: Vec<Stack>,
    properties: ResultProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation<'a>,
    logical_locations: [LogicalLocation<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation<'a> {
    artifact_location: ArtifactLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region<'a>>,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region<'a> {
    start_line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<Snippet<'a>>,
}

#[derive(Serialize)]
struct Snippet<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation<'a> {
    fully_qualified_name: &'a str,
    kind: &'static str,
}

#[derive(Serialize)]
struct Stack {
    message: Message,
    frames: Vec<StackFrame>,
}

/// A frame, named by its text (`function (file:line)`).
#[derive(Serialize)]
struct StackFrame {
    location: FrameLocation,
}

#[derive(Serialize)]
struct FrameLocation {
    message: Message,
}

/// pydx's own facts about a finding.
#[derive(Serialize)]
struct ResultProperties<'a> {
    severity: Severity,
    cost: &'a Cost,
    evidence: &'a [String],
}

/// Writes `report` as a SARIF log with one run: every rule in
/// `tool.driver.rules`, one result per finding.
pub(crate) fn write_report(
    report: &Report,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let rules: Vec<&RuleDocs> = all_rules().iter().map(|rule| rule.docs()).collect();
    let log = Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "pydx",
                    version: &options.tool_version,
                    information_uri: INFORMATION_URI,
                    rules: rules
                        .iter()
                        .map(|docs| reporting_descriptor(docs))
                        .collect(),
                },
            },
            results: report
                .findings
                .iter()
                .map(|finding| result(finding, &rules))
                .collect(),
            properties: RunProperties {
                summary: &report.summary,
            },
        }],
    };
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

fn reporting_descriptor(docs: &'static RuleDocs) -> ReportingDescriptor {
    ReportingDescriptor {
        id: docs.code,
        name: docs.name,
        short_description: Message::new(docs.summary),
        full_description: Message::new(docs.detects),
        help: Help {
            text: format!("{}\n\nThresholds: {}", docs.fix, docs.thresholds),
            markdown: rule_markdown(docs),
        },
        default_configuration: Configuration { level: "warning" },
        properties: RuleProperties {
            tags: ["performance"],
        },
    }
}

fn result<'a>(finding: &'a Finding, rules: &[&RuleDocs]) -> SarifResult<'a> {
    let location = &finding.location;
    let region = (location.line > 0).then(|| Region {
        start_line: location.line,
        snippet: location.source.as_deref().map(|text| Snippet { text }),
    });
    let frames: Vec<StackFrame> = finding
        .stack
        .iter()
        .map(|frame| StackFrame {
            location: FrameLocation {
                message: Message::new(frame.as_str()),
            },
        })
        .collect();
    SarifResult {
        rule_id: finding.code,
        rule_index: rules.iter().position(|docs| docs.code == finding.code),
        level: level(finding.severity),
        message: Message::new(format!("{}\n\n{}", finding.title, finding.fix)),
        locations: [Location {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation {
                    uri: file_uri(&location.file),
                },
                region,
            },
            logical_locations: [LogicalLocation {
                fully_qualified_name: &location.function,
                kind: "function",
            }],
        }],
        stacks: if frames.is_empty() {
            Vec::new()
        } else {
            vec![Stack {
                message: Message::new("A representative stack, innermost frame first"),
                frames,
            }]
        },
        properties: ResultProperties {
            severity: finding.severity,
            cost: &finding.cost,
            evidence: &finding.evidence,
        },
    }
}

/// SARIF's level for a severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A file name as a URI reference: a `file://` URI for an absolute path, a
/// relative reference otherwise, with every byte but unreserved characters
/// and `/` percent-encoded (so `<string>` and names with spaces or colons
/// stay valid).
fn file_uri(file: &str) -> String {
    let mut uri = String::new();
    if file.starts_with('/') {
        uri.push_str("file://");
    }
    for byte in file.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_become_uri_references() {
        for (file, uri) in [
            ("app/main.py", "app/main.py"),
            ("/srv/app/main.py", "file:///srv/app/main.py"),
            ("/srv/my app/main.py", "file:///srv/my%20app/main.py"),
            ("<string>", "%3Cstring%3E"),
            ("c:odd.py", "c%3Aodd.py"),
            ("/home/zoë/a#b?.py", "file:///home/zo%C3%AB/a%23b%3F.py"),
        ] {
            assert_eq!(file_uri(file), uri, "{file}");
        }
    }

    #[test]
    fn severities_map_to_sarif_levels() {
        assert_eq!(level(Severity::Error), "error");
        assert_eq!(level(Severity::Warning), "warning");
        assert_eq!(level(Severity::Info), "note");
    }
}
