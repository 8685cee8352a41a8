//! The report as JSON.

use std::io::{self, Write};

use pydx_diagnose::Report;
use serde::Serialize;

use super::ReportOptions;

/// The `schema` of JSON reports; it changes only when a field is removed,
/// renamed or changes meaning (new fields may appear without it changing).
pub const JSON_REPORT_SCHEMA: &str = "pydx-doctor/1";

/// The fields of JSON reports and their units, in Markdown (for the
/// README and `pydx doctor --help`).
pub const JSON_REPORT_DOC: &str = include_str!("json_report.md");

/// The top-level object.
#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    tool: String,
    report: &'a Report,
}

/// Writes `report` as pretty-printed JSON, ending with a line break.
pub(crate) fn write_report(
    report: &Report,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let document = JsonReport {
        schema: JSON_REPORT_SCHEMA,
        tool: format!("pydx {}", options.tool_version),
        report,
    };
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}
