//! `pydx doctor` reports in text, Markdown, JSON and SARIF, `pydx diff` in
//! text and JSON, and the rules' documentation for `pydx rules` and
//! `pydx explain`.

mod diff;
mod html;
mod html_diff;
mod json;
mod layout;
mod markdown;
mod rules;
mod sarif;
mod text;

use std::io::{self, BufWriter, Write};
use std::path::Path;

use pydx_diagnose::{Diff, Report, RuleDocs, SourceLines};
use pydx_profile::Profile;

pub use diff::JSON_DIFF_SCHEMA;
pub use json::{JSON_REPORT_DOC, JSON_REPORT_SCHEMA};

/// A format for a `pydx doctor` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    /// For a terminal: the findings, each with its evidence and fix, then
    /// the hot spots.
    Text,
    /// The same content in Markdown, e.g. for a pull-request comment.
    Markdown,
    /// The report as JSON, described in [`JSON_REPORT_DOC`].
    Json,
    /// SARIF 2.1.0, for code-scanning tools (GitHub code scanning, IDEs).
    Sarif,
    /// One self-contained HTML page with the findings, an interactive
    /// flamegraph, the endpoints, a function table and the hottest
    /// functions' source (see [`render_html_report`]).
    Html,
}

impl ReportFormat {
    /// The format called `name`: `text` (or `txt`), `markdown` (or `md`),
    /// `json`, `sarif` or `html`, case ignored.
    pub fn from_name(name: &str) -> Option<ReportFormat> {
        match name.to_ascii_lowercase().as_str() {
            "text" | "txt" => Some(ReportFormat::Text),
            "markdown" | "md" => Some(ReportFormat::Markdown),
            "json" => Some(ReportFormat::Json),
            "sarif" => Some(ReportFormat::Sarif),
            "html" => Some(ReportFormat::Html),
            _ => None,
        }
    }

    /// The format a file name's extension asks for: `.sarif` or
    /// `.sarif.json` for SARIF, `.json` for JSON, `.md` or `.markdown` for
    /// Markdown, `.txt` for text, `.html` or `.htm` for HTML. Case is
    /// ignored; any other name gives `None`.
    pub fn from_path(path: &Path) -> Option<ReportFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let ends_with_any = |suffixes: &[&str]| suffixes.iter().any(|s| name.ends_with(s));
        if ends_with_any(&[".sarif", ".sarif.json"]) {
            Some(ReportFormat::Sarif)
        } else if ends_with_any(&[".json"]) {
            Some(ReportFormat::Json)
        } else if ends_with_any(&[".md", ".markdown"]) {
            Some(ReportFormat::Markdown)
        } else if ends_with_any(&[".txt"]) {
            Some(ReportFormat::Text)
        } else if ends_with_any(&[".html", ".htm"]) {
            Some(ReportFormat::Html)
        } else {
            None
        }
    }
}

/// A format for the rules' documentation (`pydx rules`, `pydx explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocsFormat {
    /// For a terminal.
    Text,
    /// Markdown, e.g. for the documentation site.
    Markdown,
}

impl DocsFormat {
    /// The format called `name`: `text` (or `txt`) or `markdown` (or
    /// `md`), case ignored.
    pub fn from_name(name: &str) -> Option<DocsFormat> {
        match name.to_ascii_lowercase().as_str() {
            "text" | "txt" => Some(DocsFormat::Text),
            "markdown" | "md" => Some(DocsFormat::Markdown),
            _ => None,
        }
    }
}

/// How reports and the rules' documentation are rendered.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReportOptions {
    /// Colour the text format with ANSI escape codes (the caller decides,
    /// e.g. from whether the output is a terminal and from `NO_COLOR`).
    /// Other formats ignore it.
    pub color: bool,
    /// pydx's version, named in the JSON and SARIF output.
    pub tool_version: String,
    /// The column the text format wraps prose at (code lines, paths and
    /// stacks are never broken).
    pub width: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            color: false,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            width: 100,
        }
    }
}

/// Writes `report`, made from `profile`, to `out` in `format`.
///
/// The findings are shown in the report's order (most costly first). The
/// text and Markdown formats end with the hot spots: the top five after
/// findings, all of the report's when there are none. HTML draws from the
/// profile too, and shows source lines read through `sources`.
pub fn render_report(
    format: ReportFormat,
    report: &Report,
    profile: &Profile,
    sources: &dyn SourceLines,
    options: &ReportOptions,
    out: impl Write,
) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    match format {
        ReportFormat::Text => text::write_report(report, options, &mut out)?,
        ReportFormat::Markdown => markdown::write_report(report, &mut out)?,
        ReportFormat::Json => json::write_report(report, options, &mut out)?,
        ReportFormat::Sarif => sarif::write_report(report, options, &mut out)?,
        ReportFormat::Html => html::write_report(report, profile, sources, options, &mut out)?,
    }
    out.flush()
}

/// Writes `diff` (`pydx diff`) to `out`: as text, or as JSON (schema
/// [`JSON_DIFF_SCHEMA`]) when `json` is set.
pub fn render_diff(
    diff: &Diff,
    json: bool,
    options: &ReportOptions,
    out: impl Write,
) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    if json {
        diff::write_json(diff, options, &mut out)?;
    } else {
        diff::write_text(diff, &mut out)?;
    }
    out.flush()
}

/// Writes `diff` as one self-contained HTML page: the CPU change, the
/// findings gone, new and remaining, the endpoints, the functions, and a
/// differential flamegraph of `before` and `after` (the recordings `diff`
/// compares).
pub fn render_diff_html(
    diff: &Diff,
    before: &Profile,
    after: &Profile,
    options: &ReportOptions,
    out: impl Write,
) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    html_diff::write_diff(diff, before, after, options, &mut out)?;
    out.flush()
}

/// Writes the list of rules for `pydx rules`: a table of code, name and
/// summary, in code order.
pub fn render_rules(
    format: DocsFormat,
    options: &ReportOptions,
    out: impl Write,
) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    match format {
        DocsFormat::Text => rules::write_rules_text(options, &mut out)?,
        DocsFormat::Markdown => rules::write_rules_markdown(&mut out)?,
    }
    out.flush()
}

/// Writes one rule's documentation for `pydx explain CODE`: every section
/// (summary, what it detects, why it matters, example, how to fix it,
/// thresholds) under its heading.
pub fn render_rule(
    docs: &RuleDocs,
    format: DocsFormat,
    options: &ReportOptions,
    out: impl Write,
) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    match format {
        DocsFormat::Text => rules::write_rule_text(docs, options, &mut out)?,
        DocsFormat::Markdown => out.write_all(rules::rule_markdown(docs).as_bytes())?,
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_formats_are_found_by_name_and_extension() {
        for (name, format) in [
            ("text", ReportFormat::Text),
            ("TXT", ReportFormat::Text),
            ("markdown", ReportFormat::Markdown),
            ("md", ReportFormat::Markdown),
            ("json", ReportFormat::Json),
            ("Sarif", ReportFormat::Sarif),
            ("HTML", ReportFormat::Html),
        ] {
            assert_eq!(ReportFormat::from_name(name), Some(format), "{name}");
        }
        assert_eq!(ReportFormat::from_name("pdf"), None);
        for (path, format) in [
            ("report.sarif", Some(ReportFormat::Sarif)),
            ("out/report.SARIF.json", Some(ReportFormat::Sarif)),
            ("report.json", Some(ReportFormat::Json)),
            ("report.md", Some(ReportFormat::Markdown)),
            ("report.markdown", Some(ReportFormat::Markdown)),
            ("report.txt", Some(ReportFormat::Text)),
            ("report.html", Some(ReportFormat::Html)),
            ("report.HTM", Some(ReportFormat::Html)),
            ("report.pdf", None),
            ("report", None),
        ] {
            assert_eq!(ReportFormat::from_path(Path::new(path)), format, "{path}");
        }
    }

    #[test]
    fn docs_formats_are_found_by_name() {
        assert_eq!(DocsFormat::from_name("Text"), Some(DocsFormat::Text));
        assert_eq!(DocsFormat::from_name("md"), Some(DocsFormat::Markdown));
        assert_eq!(DocsFormat::from_name("json"), None);
    }
}
