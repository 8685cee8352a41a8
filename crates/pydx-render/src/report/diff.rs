//! `pydx diff` output: text and JSON.

use std::io::{self, Write};

use pydx_diagnose::{Basis, Diff, FindingSide};
use serde::Serialize;

use super::ReportOptions;

/// The `schema` field of `pydx diff --format json`.
pub const JSON_DIFF_SCHEMA: &str = "pydx-diff/1";

/// `+12%`, `-74%`, or `new` when there was nothing before.
fn change_text(before: f64, after: f64) -> String {
    if before <= 0.0 {
        return if after > 0.0 {
            "new".into()
        } else {
            "0%".into()
        };
    }
    format!("{:+.0}%", (after / before - 1.0) * 100.0)
}

fn basis_text(basis: Basis) -> &'static str {
    match basis {
        Basis::PerRequest => "per request served (both recordings counted their requests)",
        Basis::PerSecond => "per second of recording",
    }
}

fn finding_text(finding: &FindingSide, unit: &str) -> String {
    let cost = if finding.cost_ms_per_unit > 0.0 {
        format!(", {:.1} {unit}", finding.cost_ms_per_unit)
    } else {
        String::new()
    };
    format!(
        "[{}] {} {} ({}:{}{cost})",
        finding.severity.as_str().to_uppercase(),
        finding.code,
        finding.title,
        finding.file,
        finding.line
    )
}

/// Writes `diff` as text for a terminal or a CI log.
pub(crate) fn write_text(diff: &Diff, out: &mut impl Write) -> io::Result<()> {
    let unit = diff.basis.unit();
    writeln!(
        out,
        "pydx diff: {} -> {}",
        diff.before.file, diff.after.file
    )?;
    writeln!(out)?;
    writeln!(out, "CPU time, {}:", basis_text(diff.basis))?;
    for (name, side) in [("before", &diff.before), ("after", &diff.after)] {
        let requests = side
            .requests
            .map_or(String::new(), |n| format!(", {n} requests"));
        writeln!(
            out,
            "  {name:<7} {:>9.1} {unit}  ({:.2} s of CPU in {:.1} s{requests})",
            side.cpu_ms_per_unit, side.cpu_seconds, side.duration_seconds
        )?;
    }
    writeln!(
        out,
        "  change  {:>9}",
        change_text(diff.before.cpu_ms_per_unit, diff.after.cpu_ms_per_unit)
    )?;
    writeln!(out)?;
    let findings = &diff.findings;
    writeln!(out, "Findings:")?;
    if findings.gone.is_empty() && findings.new.is_empty() && findings.remaining.is_empty() {
        writeln!(out, "  none in either recording")?;
    }
    for finding in &findings.gone {
        writeln!(out, "  gone       {}", finding_text(finding, unit))?;
    }
    for finding in &findings.new {
        writeln!(out, "  new        {}", finding_text(finding, unit))?;
    }
    for pair in &findings.remaining {
        writeln!(out, "  remaining  {}", finding_text(&pair.after, unit))?;
        if pair.before.cost_ms_per_unit > 0.0 || pair.after.cost_ms_per_unit > 0.0 {
            writeln!(
                out,
                "             cost {:.1} -> {:.1} {unit} ({})",
                pair.before.cost_ms_per_unit,
                pair.after.cost_ms_per_unit,
                change_text(pair.before.cost_ms_per_unit, pair.after.cost_ms_per_unit)
            )?;
        }
    }
    if !diff.endpoints.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Endpoints ({unit}; time = serving it, waiting included; CPU = of it on a CPU):"
        )?;
        let rows = diff.endpoints.iter().map(|endpoint| {
            (
                [
                    endpoint.time_before,
                    endpoint.time_after,
                    endpoint.cpu_before,
                    endpoint.cpu_after,
                ],
                endpoint.endpoint.clone(),
            )
        });
        write_change_table(out, ["time", "CPU", "endpoint"], rows)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Functions whose CPU time changed most ({unit}; total = with what they call):"
    )?;
    if diff.functions.is_empty() {
        writeln!(out, "  none changed by 1% of the CPU time or more")?;
        return Ok(());
    }
    let rows = diff.functions.iter().map(|function| {
        let place = match function.line {
            0 => function.file.clone(),
            line => format!("{}:{line}", function.file),
        };
        (
            [
                function.total_before,
                function.total_after,
                function.self_before,
                function.self_after,
            ],
            format!("{} ({place})", function.function),
        )
    });
    write_change_table(out, ["total", "self", "function"], rows)
}

/// A table of rows that changed: two measures before and after (the first
/// with its relative change) and a name; `columns` names the two measures
/// and the name column.
fn write_change_table(
    out: &mut impl Write,
    [first, second, name]: [&str; 3],
    rows: impl Iterator<Item = ([f64; 4], String)>,
) -> io::Result<()> {
    let heading = |measure: &str, when: &str| format!("{measure} {when}");
    writeln!(
        out,
        "  {:>12} {:>12} {:>7} {:>12} {:>12}  {name}",
        heading(first, "before"),
        heading(first, "after"),
        "change",
        heading(second, "before"),
        heading(second, "after"),
    )?;
    for ([first_before, first_after, second_before, second_after], label) in rows {
        writeln!(
            out,
            "  {first_before:>12.1} {first_after:>12.1} {:>7} {second_before:>12.1} {second_after:>12.1}  {label}",
            change_text(first_before, first_after),
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonDiff<'a> {
    schema: &'static str,
    tool: String,
    /// Relative change of the CPU time per unit (0.1 = 10% more).
    cpu_change: Option<f64>,
    diff: &'a Diff,
}

/// Writes `diff` as JSON (schema [`JSON_DIFF_SCHEMA`]).
pub(crate) fn write_json(
    diff: &Diff,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let document = JsonDiff {
        schema: JSON_DIFF_SCHEMA,
        tool: format!("pydx {}", options.tool_version),
        cpu_change: diff.cpu_change(),
        diff,
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use pydx_diagnose::{
        EndpointChange, FindingChanges, FunctionChange, RemainingFinding, Severity, Side,
    };

    use super::*;

    fn side(file: &str, cpu_seconds: f64, requests: u64) -> Side {
        Side {
            file: file.into(),
            duration_seconds: 10.0,
            cpu_seconds,
            requests: Some(requests),
            cpu_ms_per_unit: cpu_seconds * 1e3 / requests as f64,
        }
    }

    fn finding(code: &'static str, title: &str, line: u32, cost: f64) -> FindingSide {
        FindingSide {
            code,
            severity: Severity::Warning,
            title: title.into(),
            function: "quote".into(),
            file: "shop/quotes.py".into(),
            line,
            cost_ms_per_unit: cost,
        }
    }

    fn sample_diff() -> Diff {
        Diff {
            basis: Basis::PerRequest,
            before: side("before.pb.gz", 8.0, 400),
            after: side("after.pb.gz", 2.1, 420),
            functions: vec![
                FunctionChange {
                    function: "shipping_quote".into(),
                    file: "shop/quotes.py".into(),
                    line: 14,
                    self_before: 17.5,
                    self_after: 0.2,
                    total_before: 18.0,
                    total_after: 0.3,
                },
                FunctionChange {
                    function: "render_invoice".into(),
                    file: "shop/invoices.py".into(),
                    line: 40,
                    self_before: 0.0,
                    self_after: 1.2,
                    total_before: 0.0,
                    total_after: 1.5,
                },
            ],
            findings: FindingChanges {
                gone: vec![finding(
                    "PYDX-CACHE001",
                    "shipping_quote recomputes the same results",
                    12,
                    17.6,
                )],
                new: Vec::new(),
                remaining: vec![RemainingFinding {
                    before: finding("PYDX-CPU002", "quote takes 30% of the CPU", 30, 6.0),
                    after: finding("PYDX-CPU002", "quote takes 12% of the CPU", 31, 1.5),
                }],
            },
            endpoints: vec![
                EndpointChange {
                    endpoint: "GET /quote/{sku}".into(),
                    time_before: 19.0,
                    time_after: 2.4,
                    cpu_before: 18.1,
                    cpu_after: 1.9,
                },
                EndpointChange {
                    endpoint: "GET /invoices/<int:id>".into(),
                    time_before: 0.0,
                    time_after: 1.6,
                    cpu_before: 0.0,
                    cpu_after: 1.5,
                },
            ],
        }
    }

    #[test]
    fn text_names_what_went_what_stayed_and_what_moved() {
        let mut out = Vec::new();
        write_text(&sample_diff(), &mut out).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[test]
    fn json_carries_the_schema_and_the_overall_change() {
        let mut out = Vec::new();
        write_json(&sample_diff(), &ReportOptions::default(), &mut out).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["schema"], JSON_DIFF_SCHEMA);
        let change = json["cpu_change"].as_f64().unwrap();
        assert!((change - (5.0 / 20.0 - 1.0)).abs() < 1e-9, "{change}");
        assert_eq!(json["diff"]["findings"]["gone"][0]["code"], "PYDX-CACHE001");
        assert_eq!(json["diff"]["basis"], "per_request");
    }
}
