//! `pydx rules` and `pydx explain`: the doctor's rules and their documentation.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use pydx_diagnose::rule_docs;
use pydx_render::{render_rule, render_rules, DocsFormat, ReportOptions};

/// Options for writing rule documentation to standard output.
fn options() -> ReportOptions {
    let mut options = ReportOptions::default();
    options.color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    options
}

/// Runs `pydx rules`.
pub fn list() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    render_rules(DocsFormat::Text, &options(), &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `pydx explain CODE`.
pub fn explain(code: &str) -> anyhow::Result<ExitCode> {
    let docs =
        rule_docs(code).with_context(|| format!("no rule {code}; `pydx rules` lists them"))?;
    let mut out = std::io::stdout().lock();
    render_rule(docs, DocsFormat::Text, &options(), &mut out)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
