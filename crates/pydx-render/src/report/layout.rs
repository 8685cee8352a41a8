//! Shared by the text and Markdown renderers: numbers, wrapping, tables,
//! terminal colours and Markdown escaping.

use pydx_diagnose::{Cost, HotSpot, Report, RequestsServed, Severity, TimeUnit};
use pydx_profile::UNREADABLE_CODE;

/// How many hot spots follow findings.
const HOT_SPOTS_AFTER_FINDINGS: usize = 5;
/// How many frames of a representative stack are shown.
const STACK_FRAMES_SHOWN: usize = 8;

/// A duration: milliseconds below a second, seconds above.
pub(crate) fn duration(seconds: f64) -> String {
    let ms = seconds * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else if seconds < 100.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{seconds:.0} s")
    }
}

/// A number of seconds without its unit, to three significant figures or
/// so: `8.51`, `12.3`, `123`.
fn decimal(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.2}")
    } else if seconds < 100.0 {
        format!("{seconds:.1}")
    } else {
        format!("{seconds:.0}")
    }
}

/// A share (0–1) as a percentage, with a decimal when under 1 %.
pub(crate) fn percent(share: f64) -> String {
    let percent = share * 100.0;
    if percent > 0.0 && percent < 1.0 {
        format!("{percent:.1}%")
    } else {
        format!("{percent:.0}%")
    }
}

/// `1 thread`, `2 threads`.
pub(crate) fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// `6895 requests served (766/s) by 2 processes, by their own count`.
pub(crate) fn requests_served(requests: &RequestsServed) -> String {
    format!(
        "{} served ({:.0}/s) by {}, by their own count",
        count(requests.count, "request", "requests"),
        requests.per_second,
        count(requests.processes as u64, "process", "processes"),
    )
}

/// The sentence before the findings, or `No problems found.`.
pub(crate) fn findings_heading(findings: usize) -> String {
    match findings {
        0 => "No problems found.".to_string(),
        1 => "1 problem found:".to_string(),
        n => format!("{n} problems found, most costly first:"),
    }
}

/// What a finding costs, each figure labelled by what it counts, e.g.
/// `1.23 s (42% of the event loop's time), 1.10 s on CPU, longest 250 ms,
/// 12 times`, `8.51 thread-seconds (57% of these threads' busy time)` or
/// `1.86 s on CPU (60% of the CPU time)`.
pub(crate) fn cost(cost: &Cost) -> String {
    if cost.seconds == 0.0 && cost.share == 0.0 && cost.occurrences.is_none() {
        // Findings about memory or configuration cost no time directly.
        return "not in time (see the evidence)".to_string();
    }
    let mut text = match cost.unit {
        TimeUnit::Seconds => duration(cost.seconds),
        TimeUnit::ThreadSeconds => format!("{} thread-seconds", decimal(cost.seconds)),
        TimeUnit::CpuSeconds => format!("{} on CPU", duration(cost.seconds)),
    };
    if cost.share > 0.0 {
        text.push_str(&format!(
            " ({} of {})",
            percent(cost.share.min(1.0)),
            cost.share_of.phrase()
        ));
    }
    if cost.cpu_seconds > 0.0 && cost.unit != TimeUnit::CpuSeconds {
        text.push_str(&format!(", {} on CPU", duration(cost.cpu_seconds)));
    }
    if let Some(longest_ms) = cost.longest_ms {
        text.push_str(&format!(", longest {}", duration(longest_ms / 1000.0)));
    }
    if let Some(occurrences) = cost.occurrences {
        text.push_str(&format!(", {}", count(occurrences, "time", "times")));
    }
    text
}

/// `file:line`, or just the file when the line is unknown (0).
pub(crate) fn file_line(file: &str, line: u32) -> String {
    if line == 0 {
        file.to_string()
    } else {
        format!("{file}:{line}")
    }
}

/// The frames of a stack to show, and how many more there are.
pub(crate) fn shown_frames(stack: &[String]) -> (&[String], usize) {
    let shown = stack.len().min(STACK_FRAMES_SHOWN);
    (&stack[..shown], stack.len() - shown)
}

/// The hot spots to show: the top five after findings, all of the
/// report's when there are none.
pub(crate) fn hot_spots_shown(report: &Report) -> &[HotSpot] {
    let shown = if report.findings.is_empty() {
        report.hot_spots.len()
    } else {
        report.hot_spots.len().min(HOT_SPOTS_AFTER_FINDINGS)
    };
    &report.hot_spots[..shown]
}

/// What a hot spot named `<unreadable code object>` is, when one is shown.
pub(crate) fn unreadable_code_note(hot_spots: &[HotSpot]) -> Option<&'static str> {
    hot_spots
        .iter()
        .any(|spot| spot.function == UNREADABLE_CODE)
        .then_some(
            "<unreadable code object>: frames whose code object could not be read when \
             sampled (being created or freed at that moment: code from exec or eval, a \
             module being imported, or a stack that changed while read without pausing). \
             Their time is counted; where it went is not known.",
        )
}

/// `Error`, `Warning` or `Info`.
pub(crate) fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
}

/// `ERROR`, `WARNING` or `INFO`.
fn severity_label(severity: Severity) -> String {
    severity.as_str().to_ascii_uppercase()
}

/// Wraps one paragraph at `width` columns, breaking between words; a word
/// longer than the width gets a line of its own.
pub(crate) fn wrap(paragraph: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_width = 0;
    for word in paragraph.split_whitespace() {
        let word_width = word.chars().count();
        if line_width > 0 && line_width + 1 + word_width > width {
            lines.push(std::mem::take(&mut line));
            line_width = 0;
        }
        if line_width > 0 {
            line.push(' ');
            line_width += 1;
        }
        line.push_str(word);
        line_width += word_width;
    }
    if line_width > 0 {
        lines.push(line);
    }
    lines
}

/// A text of prose and code: a code line is one that starts with white
/// space.
#[derive(Debug, PartialEq)]
pub(crate) enum Block {
    /// A paragraph: consecutive prose lines.
    Prose(Vec<String>),
    /// Consecutive code lines, as written.
    Code(Vec<String>),
}

/// Splits `text` into paragraphs and code; blank lines separate paragraphs.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        let is_code = line.starts_with(char::is_whitespace);
        match (blocks.last_mut(), line.is_empty()) {
            (_, true) => blocks.push(Block::Prose(Vec::new())),
            (Some(Block::Code(lines)), false) if is_code => lines.push(line.to_string()),
            (Some(Block::Prose(lines)), false) if !is_code => lines.push(line.to_string()),
            (_, false) if is_code => blocks.push(Block::Code(vec![line.to_string()])),
            (_, false) => blocks.push(Block::Prose(vec![line.to_string()])),
        }
    }
    blocks.retain(|block| !matches!(block, Block::Prose(lines) if lines.is_empty()));
    blocks
}

/// Code lines without the indentation they all share.
pub(crate) fn dedent(lines: &[String]) -> Vec<&str> {
    let common = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|line| line.get(common..).unwrap_or(line.trim_start()).trim_end())
        .collect()
}

/// Indents every line of `text`, wrapping prose lines at `width` columns
/// (counting the indent) and keeping line breaks, blank lines and code
/// lines (those starting with white space) as written.
pub(crate) fn indented_text(text: &str, indent: &str, width: usize) -> Vec<String> {
    let prose_width = width.saturating_sub(indent.chars().count()).max(1);
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            lines.push(String::new());
        } else if line.starts_with(char::is_whitespace) {
            lines.push(format!("{indent}{line}"));
        } else {
            lines.extend(
                wrap(line, prose_width)
                    .into_iter()
                    .map(|wrapped| format!("{indent}{wrapped}")),
            );
        }
    }
    lines
}

/// Wraps one item of a list: the first line starts with `marker`, the
/// others are indented to line up with the text after it.
pub(crate) fn bullet(text: &str, marker: &str, width: usize) -> Vec<String> {
    let hanging = " ".repeat(marker.chars().count());
    indented_text(text, &hanging, width)
        .into_iter()
        .enumerate()
        .map(|(index, line)| match index {
            0 => format!("{marker}{}", line.strip_prefix(&hanging).unwrap_or(&line)),
            _ => line,
        })
        .collect()
}

/// How a table column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// A plain-text table: columns two spaces apart, each as wide as its
/// widest cell; the last column is wrapped to fit in `width`, its
/// continuation lines lined up under it. Returns the header line and the
/// row lines.
pub(crate) fn table(
    header: &[&str],
    rows: &[Vec<String>],
    align: &[Align],
    width: usize,
) -> (String, Vec<String>) {
    let last = header.len() - 1;
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lead = widths[..last].iter().map(|w| w + 2).sum::<usize>();
    let last_width = width.saturating_sub(lead).max(20);
    let pad = |cells: &[&str]| -> String {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let fill = " ".repeat(widths[column].saturating_sub(cell.chars().count()));
            match (align[column], column == last) {
                (Align::Right, _) => line.push_str(&format!("{fill}{cell}")),
                (Align::Left, false) => line.push_str(&format!("{cell}{fill}")),
                (Align::Left, true) => line.push_str(cell),
            }
            if column < last {
                line.push_str("  ");
            }
        }
        line
    };
    let mut lines = Vec::new();
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let mut wrapped = match align[last] {
            Align::Left => wrap(cells[last], last_width),
            Align::Right => vec![cells[last].to_string()],
        };
        if wrapped.is_empty() {
            wrapped.push(String::new());
        }
        let mut first = cells.clone();
        first[last] = &wrapped[0];
        lines.push(pad(&first));
        lines.extend(
            wrapped[1..]
                .iter()
                .map(|more| format!("{}{more}", " ".repeat(lead))),
        );
    }
    (pad(header), lines)
}

/// ANSI colours for a terminal, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paint {
    /// Whether to colour at all.
    pub(crate) color: bool,
}

impl Paint {
    /// `text` in bold.
    pub(crate) fn bold(self, text: &str) -> String {
        self.apply("1", text)
    }

    /// `[ERROR]` in bold red, `[WARNING]` in bold yellow, `[INFO]` in bold
    /// blue.
    pub(crate) fn severity(self, severity: Severity) -> String {
        let colour = match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;34",
        };
        self.apply(colour, &format!("[{}]", severity_label(severity)))
    }

    fn apply(self, codes: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{codes}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Markdown for prose: Markdown's special characters are escaped except
/// inside `code spans`, which are kept as written.
pub(crate) fn markdown_text(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        out.push_str(&markdown_escape(&rest[..start]));
        let after = &rest[start + 1..];
        match after.find('`') {
            Some(end) => {
                out.push_str(&rest[start..start + end + 2]);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("\\`");
                rest = after;
            }
        }
    }
    out.push_str(&markdown_escape(rest));
    out
}

fn markdown_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(
            character,
            '\\' | '*' | '_' | '<' | '>' | '[' | ']' | '|' | '~' | '&' | '#'
        ) {
            out.push('\\');
        }
        out.push(character);
    }
    out
}

/// `text` as a Markdown code span.
pub(crate) fn markdown_code(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

/// `text` as a Markdown code span in a table cell, where `|` must be
/// escaped even inside the span.
pub(crate) fn markdown_cell_code(text: &str) -> String {
    markdown_code(&text.replace('|', "\\|"))
}

/// Lines as a fenced Markdown code block, the fence longer than any run of
/// backticks in them.
pub(crate) fn markdown_fence(language: &str, lines: &[&str]) -> String {
    let longest_run = lines
        .iter()
        .flat_map(|line| line.split(|c| c != '`').map(str::len))
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let mut block = format!("{fence}{language}\n");
    for line in lines {
        block.push_str(line);
        block.push('\n');
    }
    block.push_str(&fence);
    block.push('\n');
    block
}

#[cfg(test)]
mod tests {
    use pydx_diagnose::ShareOf;

    use super::*;

    #[test]
    fn durations_and_shares_read_naturally() {
        assert_eq!(duration(0.0042), "4.2 ms");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(1.234), "1.23 s");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(123.4), "123 s");
        assert_eq!(percent(0.4249), "42%");
        assert_eq!(percent(0.004), "0.4%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn costs_name_only_what_was_measured() {
        let mut measured = Cost {
            share: 0.0,
            seconds: 2.0,
            ..Cost::default()
        };
        assert_eq!(cost(&measured), "2.00 s");
        measured.occurrences = Some(1);
        assert_eq!(cost(&measured), "2.00 s, 1 time");
        assert_eq!(cost(&Cost::default()), "not in time (see the evidence)");
    }

    #[test]
    fn costs_say_what_their_seconds_and_shares_count() {
        let waits = Cost {
            share: 0.57,
            share_of: ShareOf::ThreadsBusyTime,
            seconds: 8.512,
            unit: TimeUnit::ThreadSeconds,
            ..Cost::default()
        };
        assert_eq!(
            cost(&waits),
            "8.51 thread-seconds (57% of these threads' busy time)"
        );
        let cpu = Cost::on_cpu(0.6, ShareOf::CpuTime, 1.86);
        assert_eq!(cost(&cpu), "1.86 s on CPU (60% of the CPU time)");
        let blocked = Cost {
            share: 0.73,
            share_of: ShareOf::EventLoopTime,
            seconds: 3.72,
            cpu_seconds: 0.01,
            longest_ms: Some(247.0),
            occurrences: Some(18),
            ..Cost::default()
        };
        assert_eq!(
            cost(&blocked),
            "3.72 s (73% of the event loop's time), 10 ms on CPU, longest 247 ms, 18 times"
        );
    }

    #[test]
    fn wrapping_breaks_between_words_and_keeps_long_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(
            wrap("a /a/very/long/path b", 6),
            vec!["a", "/a/very/long/path", "b"]
        );
        assert!(wrap("  ", 10).is_empty());
    }

    #[test]
    fn indented_text_keeps_line_breaks_and_code() {
        let text = "Do this and that:\n    code(x,  y)\n\nthen the rest";
        assert_eq!(
            indented_text(text, "> ", 12),
            vec![
                "> Do this",
                "> and that:",
                ">     code(x,  y)",
                "",
                "> then the",
                "> rest"
            ]
        );
    }

    #[test]
    fn bullets_hang_under_their_text() {
        assert_eq!(
            bullet("one two three", "- ", 9),
            vec!["- one two", "  three"]
        );
    }

    #[test]
    fn blocks_split_prose_from_code() {
        let text = "First\nsecond\n    code()\n      more()\nafter\n\nnext";
        assert_eq!(
            blocks(text),
            vec![
                Block::Prose(vec!["First".into(), "second".into()]),
                Block::Code(vec!["    code()".into(), "      more()".into()]),
                Block::Prose(vec!["after".into()]),
                Block::Prose(vec!["next".into()]),
            ]
        );
        assert_eq!(
            dedent(&["    code()".into(), "      more()".into()]),
            vec!["code()", "  more()"]
        );
    }

    #[test]
    fn markdown_escapes_outside_code_spans_only() {
        assert_eq!(
            markdown_text("<module> ran `a[i] * b_c` __init__"),
            "\\<module\\> ran `a[i] * b_c` \\_\\_init\\_\\_"
        );
        assert_eq!(markdown_text("odd ` tick"), "odd \\` tick");
        assert_eq!(markdown_cell_code("a|b"), "`a\\|b`");
        assert_eq!(markdown_code("a`b"), "`` a`b ``");
        assert_eq!(
            markdown_fence("text", &["```", "x"]),
            "````text\n```\nx\n````\n"
        );
    }

    #[test]
    fn tables_align_columns_and_wrap_the_last() {
        let rows = vec![
            vec![
                "1".to_string(),
                "alpha".to_string(),
                "one two three four five six".to_string(),
            ],
            vec!["22".to_string(), "b".to_string(), "x".to_string()],
        ];
        let align = [Align::Right, Align::Left, Align::Left];
        let (header, lines) = table(&["N", "NAME", "TEXT"], &rows, &align, 31);
        assert_eq!(header, " N  NAME   TEXT");
        assert_eq!(
            lines,
            vec![
                " 1  alpha  one two three four",
                "           five six",
                "22  b      x",
            ]
        );
        let (_, narrow) = table(&["N", "NAME", "TEXT"], &rows, &align, 0);
        assert_eq!(narrow[0], " 1  alpha  one two three four");
    }

    #[test]
    fn colour_is_added_only_when_asked_for() {
        let plain = Paint { color: false };
        let coloured = Paint { color: true };
        assert_eq!(plain.severity(Severity::Error), "[ERROR]");
        assert_eq!(
            coloured.severity(Severity::Warning),
            "\x1b[1;33m[WARNING]\x1b[0m"
        );
        assert_eq!(coloured.bold("x"), "\x1b[1mx\x1b[0m");
    }
}
