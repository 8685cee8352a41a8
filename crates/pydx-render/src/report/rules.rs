//! The rules' documentation: the list for `pydx rules` and one rule for
//! `pydx explain`.

use std::io::{self, Write};

use pydx_diagnose::{all_rules, RuleDocs};

use super::layout::{
    indented_text, markdown_cell_code, markdown_fence, markdown_text, table, Align, Paint,
};
use super::markdown::write_prose_and_code;
use super::ReportOptions;

/// How far a section's text is indented under its heading.
const SECTION: &str = "  ";
/// How far the example's code is indented.
const CODE: &str = "    ";

/// The documentation of every rule, in code order.
fn every_rule() -> Vec<&'static RuleDocs> {
    all_rules().iter().map(|rule| rule.docs()).collect()
}

/// The text of a section of a rule's documentation.
#[derive(Debug, Clone, Copy)]
enum Content {
    /// Prose, possibly with indented code lines.
    Prose(&'static str),
    /// Code, shown as written.
    Code(&'static str),
}

/// A rule's documentation, section by section, with the headings.
fn sections(docs: &RuleDocs) -> [(&'static str, Content); 6] {
    [
        ("Summary", Content::Prose(docs.summary)),
        ("What it detects", Content::Prose(docs.detects)),
        ("Why it matters", Content::Prose(docs.why)),
        ("Example", Content::Code(docs.example)),
        ("How to fix it", Content::Prose(docs.fix)),
        ("Thresholds", Content::Prose(docs.thresholds)),
    ]
}

/// Writes a table of code, name and summary.
pub(crate) fn write_rules_text(options: &ReportOptions, out: &mut impl Write) -> io::Result<()> {
    let paint = Paint {
        color: options.color,
    };
    let rows: Vec<Vec<String>> = every_rule()
        .into_iter()
        .map(|docs| {
            vec![
                docs.code.to_string(),
                docs.name.to_string(),
                docs.summary.to_string(),
            ]
        })
        .collect();
    let (header, lines) = table(
        &["CODE", "NAME", "SUMMARY"],
        &rows,
        &[Align::Left, Align::Left, Align::Left],
        options.width,
    );
    writeln!(out, "{}", paint.bold(&header))?;
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Writes a Markdown table of code, name and summary.
pub(crate) fn write_rules_markdown(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "| Code | Name | Summary |")?;
    writeln!(out, "|---|---|---|")?;
    for docs in every_rule() {
        writeln!(
            out,
            "| {} | {} | {} |",
            markdown_cell_code(docs.code),
            markdown_cell_code(docs.name),
            markdown_text(docs.summary)
        )?;
    }
    Ok(())
}

/// Writes every section of a rule's documentation under its heading.
pub(crate) fn write_rule_text(
    docs: &RuleDocs,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let paint = Paint {
        color: options.color,
    };
    writeln!(out, "{} ({})", paint.bold(docs.code), docs.name)?;
    for (heading, content) in sections(docs) {
        writeln!(out)?;
        writeln!(out, "{}", paint.bold(heading))?;
        let lines = match content {
            Content::Prose(text) => indented_text(text, SECTION, options.width),
            Content::Code(code) => code
                .lines()
                .map(|line| format!("{CODE}{}", line.trim_end()))
                .collect(),
        };
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Every section of a rule's documentation in Markdown, under `##`
/// headings.
pub(crate) fn rule_markdown(docs: &RuleDocs) -> String {
    let mut out = Vec::new();
    write_rule_markdown(docs, &mut out).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("the documentation is UTF-8")
}

fn write_rule_markdown(docs: &RuleDocs, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# {}: {}", docs.code, markdown_text(docs.name))?;
    for (heading, content) in sections(docs) {
        writeln!(out)?;
        writeln!(out, "## {heading}")?;
        match content {
            Content::Prose(text) => write_prose_and_code(text, out)?,
            Content::Code(code) => {
                let lines: Vec<&str> = code.lines().map(str::trim_end).collect();
                writeln!(out)?;
                write!(out, "{}", markdown_fence("python", &lines))?;
            }
        }
    }
    Ok(())
}
