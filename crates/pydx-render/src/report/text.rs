//! The report for a terminal.

use std::io::{self, Write};

use pydx_diagnose::{Endpoint, Finding, HotSpot, Report, Summary};

use super::layout::{
    bullet, cost, count, duration, file_line, findings_heading, hot_spots_shown, indented_text,
    percent, requests_served, shown_frames, table, unreadable_code_note, Align, Paint,
};
use super::ReportOptions;

/// How far the details of a finding are indented.
const DETAIL: &str = "  ";
/// How far the items under a detail's label are indented.
const ITEM: &str = "    ";

/// Writes the summary, the findings and the hot spots.
pub(crate) fn write_report(
    report: &Report,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let paint = Paint {
        color: options.color,
    };
    write_summary(&report.summary, paint, out)?;
    writeln!(out)?;
    writeln!(out, "{}", findings_heading(report.findings.len()))?;
    for finding in &report.findings {
        writeln!(out)?;
        write_finding(finding, options, paint, out)?;
    }
    if !report.endpoints.is_empty() {
        writeln!(out)?;
        write_endpoints(&report.endpoints, options, paint, out)?;
    }
    writeln!(out)?;
    write_hot_spots(hot_spots_shown(report), options, paint, out)
}

fn write_endpoints(
    endpoints: &[Endpoint],
    options: &ReportOptions,
    paint: Paint,
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        "{}",
        paint.bold("Endpoints (time serving each request, summed over threads):")
    )?;
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            let top = e
                .top_functions
                .first()
                .map(|f| format!("{} ({})", f.function, file_line(&f.file, f.line)))
                .unwrap_or_else(|| "-".to_string());
            vec![
                percent(e.share),
                duration(e.seconds),
                percent(e.on_cpu_share),
                e.endpoint.clone(),
                top,
            ]
        })
        .collect();
    write_three_numbers_two_names(
        &["share", "time", "on CPU", "endpoint", "mostly in"],
        &rows,
        options,
        paint,
        out,
    )
}

fn write_summary(summary: &Summary, paint: Paint, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} recorded, {}, {}",
        paint.bold("pydx doctor"),
        duration(summary.duration_seconds),
        count(summary.samples, "sample", "samples"),
        count(summary.threads as u64, "thread", "threads"),
    )?;
    for process in &summary.processes {
        writeln!(out, "{DETAIL}process {process}")?;
    }
    write!(
        out,
        "{DETAIL}{} on CPU, {} waiting for the GIL, {} idle",
        percent(summary.on_cpu_share),
        percent(summary.gil_wait_share),
        percent(summary.idle_share),
    )?;
    if summary.cpu_wait_share > 0.0 {
        write!(
            out,
            ", {} waiting for a CPU",
            percent(summary.cpu_wait_share)
        )?;
    }
    writeln!(out)?;
    if let Some(requests) = &summary.requests {
        writeln!(out, "{DETAIL}{}", requests_served(requests))?;
    }
    for gap in &summary.gaps {
        writeln!(out, "{DETAIL}not seen: {gap}")?;
    }
    Ok(())
}

fn write_finding(
    finding: &Finding,
    options: &ReportOptions,
    paint: Paint,
    out: &mut impl Write,
) -> io::Result<()> {
    let location = &finding.location;
    writeln!(
        out,
        "{} {} {}",
        paint.severity(finding.severity),
        paint.bold(finding.code),
        finding.title
    )?;
    write!(
        out,
        "{DETAIL}at {}",
        file_line(&location.file, location.line)
    )?;
    if !location.function.is_empty() {
        write!(out, " in {}", location.function)?;
    }
    writeln!(out)?;
    if let Some(source) = &location.source {
        writeln!(out, "{ITEM}> {}", source.trim())?;
    }
    writeln!(out, "{DETAIL}cost: {}", cost(&finding.cost))?;
    if !finding.evidence.is_empty() {
        writeln!(out, "{DETAIL}evidence:")?;
        for fact in &finding.evidence {
            for line in bullet(fact, &format!("{ITEM}- "), options.width) {
                writeln!(out, "{line}")?;
            }
        }
    }
    if !finding.stack.is_empty() {
        let (frames, more) = shown_frames(&finding.stack);
        writeln!(out, "{DETAIL}stack (innermost first):")?;
        for frame in frames {
            writeln!(out, "{ITEM}{frame}")?;
        }
        if more > 0 {
            writeln!(out, "{ITEM}... {more} more")?;
        }
    }
    writeln!(out, "{DETAIL}fix:")?;
    for line in indented_text(&finding.fix, ITEM, options.width) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn write_hot_spots(
    hot_spots: &[HotSpot],
    options: &ReportOptions,
    paint: Paint,
    out: &mut impl Write,
) -> io::Result<()> {
    if hot_spots.is_empty() {
        return writeln!(out, "No hot spots: no sample was on a CPU.");
    }
    writeln!(out, "{}", paint.bold("Hot spots (CPU time by function):"))?;
    let rows: Vec<Vec<String>> = hot_spots
        .iter()
        .map(|spot| {
            vec![
                percent(spot.self_share),
                percent(spot.total_share),
                duration(spot.self_seconds),
                spot.function.clone(),
                file_line(&spot.file, spot.line),
            ]
        })
        .collect();
    write_three_numbers_two_names(
        &["self %", "total %", "self time", "function", "location"],
        &rows,
        options,
        paint,
        out,
    )?;
    if let Some(top) = hot_spots.first().filter(|spot| !spot.lines.is_empty()) {
        writeln!(out)?;
        writeln!(
            out,
            "{}",
            paint.bold(&format!(
                "  {} line by line (its CPU time, running or calling):",
                top.function
            ))
        )?;
        for hot in &top.lines {
            let row = format!(
                "    {:>6} {:>5} {:>9}  {}",
                format!("{}:", hot.line),
                percent(hot.share),
                duration(hot.seconds),
                hot.source.as_deref().unwrap_or("")
            );
            writeln!(out, "{}", row.trim_end())?;
        }
    }
    if let Some(note) = unreadable_code_note(hot_spots) {
        for line in indented_text(note, DETAIL, options.width) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Writes an indented table of three right-aligned number columns and two
/// left-aligned text columns, the header in bold.
fn write_three_numbers_two_names(
    headers: &[&str],
    rows: &[Vec<String>],
    options: &ReportOptions,
    paint: Paint,
    out: &mut impl Write,
) -> io::Result<()> {
    let (header, lines) = table(
        headers,
        rows,
        &[
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Left,
            Align::Left,
        ],
        options.width.saturating_sub(DETAIL.len()),
    );
    writeln!(out, "{DETAIL}{}", paint.bold(&header))?;
    for line in lines {
        writeln!(out, "{DETAIL}{line}")?;
    }
    Ok(())
}
