//! The report in Markdown.

use std::io::{self, Write};

use pydx_diagnose::{Endpoint, Finding, HotSpot, Report, Summary};

use super::layout::{
    blocks, cost, dedent, duration, file_line, findings_heading, hot_spots_shown,
    markdown_cell_code, markdown_code, markdown_fence, markdown_text, percent, requests_served,
    severity_name, shown_frames, unreadable_code_note, Block,
};

/// Writes the summary, the findings and the hot spots.
pub(crate) fn write_report(report: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# pydx doctor report")?;
    writeln!(out)?;
    write_summary(&report.summary, out)?;
    writeln!(out)?;
    writeln!(out, "{}", findings_heading(report.findings.len()))?;
    for finding in &report.findings {
        writeln!(out)?;
        write_finding(finding, out)?;
    }
    if !report.endpoints.is_empty() {
        writeln!(out)?;
        write_endpoints(&report.endpoints, out)?;
    }
    writeln!(out)?;
    write_hot_spots(hot_spots_shown(report), out)
}

fn write_endpoints(endpoints: &[Endpoint], out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "## Endpoints")?;
    writeln!(out)?;
    writeln!(out, "| Endpoint | Share | Time | On CPU | Mostly in |")?;
    writeln!(out, "|---|---:|---:|---:|---|")?;
    for endpoint in endpoints {
        let top = endpoint
            .top_functions
            .first()
            .map(|f| format!("{} ({})", f.function, file_line(&f.file, f.line)))
            .unwrap_or_else(|| "-".to_string());
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            markdown_cell_code(&endpoint.endpoint),
            percent(endpoint.share),
            duration(endpoint.seconds),
            percent(endpoint.on_cpu_share),
            markdown_cell_code(&top),
        )?;
    }
    Ok(())
}

fn write_summary(summary: &Summary, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "| Recorded | Samples | Threads | On CPU | Waiting for the GIL | Idle |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |",
        duration(summary.duration_seconds),
        summary.samples,
        summary.threads,
        percent(summary.on_cpu_share),
        percent(summary.gil_wait_share),
        percent(summary.idle_share),
    )?;
    if summary.cpu_wait_share > 0.0 {
        writeln!(out)?;
        writeln!(
            out,
            "Waiting for a CPU (runnable, more threads than CPUs): {} of thread samples.",
            percent(summary.cpu_wait_share)
        )?;
    }
    if let Some(requests) = &summary.requests {
        writeln!(out)?;
        writeln!(out, "Requests: {}.", requests_served(requests))?;
    }
    for gap in &summary.gaps {
        writeln!(out)?;
        writeln!(out, "Not seen: {}.", markdown_text(gap))?;
    }
    if !summary.processes.is_empty() {
        writeln!(out)?;
        let label = if summary.processes.len() == 1 {
            "Process"
        } else {
            "Processes"
        };
        writeln!(out, "{label}:")?;
        writeln!(out)?;
        for process in &summary.processes {
            writeln!(out, "- {}", markdown_text(process))?;
        }
    }
    Ok(())
}

fn write_finding(finding: &Finding, out: &mut impl Write) -> io::Result<()> {
    let location = &finding.location;
    writeln!(
        out,
        "## {}: {}",
        finding.code,
        markdown_text(&finding.title)
    )?;
    writeln!(out)?;
    write!(
        out,
        "**{}** at {}",
        severity_name(finding.severity),
        markdown_code(&file_line(&location.file, location.line)),
    )?;
    if !location.function.is_empty() {
        write!(out, " in {}", markdown_code(&location.function))?;
    }
    writeln!(out)?;
    if let Some(source) = &location.source {
        writeln!(out)?;
        write!(out, "{}", markdown_fence("python", &[source.trim()]))?;
    }
    writeln!(out)?;
    writeln!(out, "**Cost:** {}", cost(&finding.cost))?;
    if !finding.evidence.is_empty() {
        writeln!(out)?;
        writeln!(out, "**Evidence:**")?;
        writeln!(out)?;
        for fact in &finding.evidence {
            writeln!(out, "- {}", markdown_text(fact).replace('\n', "\n  "))?;
        }
    }
    if !finding.stack.is_empty() {
        let (frames, more) = shown_frames(&finding.stack);
        let mut lines: Vec<String> = frames.to_vec();
        if more > 0 {
            lines.push(format!("... {more} more"));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        writeln!(out)?;
        writeln!(out, "**Stack** (innermost first):")?;
        writeln!(out)?;
        write!(out, "{}", markdown_fence("text", &lines))?;
    }
    writeln!(out)?;
    writeln!(out, "**Fix:**")?;
    write_prose_and_code(&finding.fix, out)
}

/// Writes `text` as paragraphs and Python code blocks, each preceded by a
/// blank line.
pub(crate) fn write_prose_and_code(text: &str, out: &mut impl Write) -> io::Result<()> {
    for block in blocks(text) {
        writeln!(out)?;
        match block {
            Block::Prose(lines) => {
                let paragraph: Vec<String> = lines.iter().map(|line| markdown_text(line)).collect();
                writeln!(out, "{}", paragraph.join("\n"))?;
            }
            Block::Code(lines) => write!(out, "{}", markdown_fence("python", &dedent(&lines)))?,
        }
    }
    Ok(())
}

fn write_hot_spots(hot_spots: &[HotSpot], out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "## Hot spots")?;
    writeln!(out)?;
    if hot_spots.is_empty() {
        return writeln!(out, "No sample was on a CPU.");
    }
    writeln!(out, "| Function | Location | Self | Total | Self time |")?;
    writeln!(out, "|---|---|---:|---:|---:|")?;
    for spot in hot_spots {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            markdown_cell_code(&spot.function),
            markdown_cell_code(&file_line(&spot.file, spot.line)),
            percent(spot.self_share),
            percent(spot.total_share),
            duration(spot.self_seconds),
        )?;
    }
    if let Some(top) = hot_spots.first().filter(|spot| !spot.lines.is_empty()) {
        writeln!(out)?;
        writeln!(
            out,
            "{} line by line (its CPU time, running or calling):",
            markdown_cell_code(&top.function)
        )?;
        writeln!(out)?;
        writeln!(out, "| Line | Share | Time | Code |")?;
        writeln!(out, "|---:|---:|---:|---|")?;
        for hot in &top.lines {
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                hot.line,
                percent(hot.share),
                duration(hot.seconds),
                hot.source
                    .as_deref()
                    .map(markdown_cell_code)
                    .unwrap_or_default()
            )?;
        }
    }
    if let Some(note) = unreadable_code_note(hot_spots) {
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            note.replacen('<', "`<", 1).replacen('>', ">`", 1)
        )?;
    }
    Ok(())
}
