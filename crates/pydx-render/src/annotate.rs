//! `pydx annotate`: a function's source with the samples and time of each
//! line, laid out as line_profiler prints it.

use std::io::{self, Write};

use pydx_profile::FunctionTime;

/// Most source lines printed in a row; a longer function shows only its
/// lines with samples.
const MAX_LINES: u32 = 400;

/// Writes `function`'s lines, from its `def` to its last line with
/// samples, each with its samples, time and shares of the function's time:
/// *% func* counts the line running or calling, *own %* the line running
/// itself. `source` holds the file's lines (`None` when it could not be
/// read); `samples_of` says which samples were counted ("on-CPU", ...).
pub fn write_annotation(
    function: &FunctionTime,
    source: Option<&[String]>,
    samples_of: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        "{} ({}:{}): {:.3} s of {samples_of} time in {} samples, {:.3} s in the function itself",
        function.function,
        function.file,
        function.first_line,
        function.total_ns as f64 / 1e9,
        function.total_samples,
        function.self_ns as f64 / 1e9,
    )?;
    if source.is_none() {
        writeln!(out, "(source not found: {})", function.file)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:>7} {:>9} {:>10} {:>7} {:>7}  Line contents",
        "Line", "Samples", "Time (s)", "% func", "Own %"
    )?;
    writeln!(out, "{}", "=".repeat(64))?;
    let whole = function.total_ns.max(1) as f64;
    let last = function.lines.keys().copied().max().unwrap_or(0);
    let first = match function.first_line {
        0 => function.lines.keys().copied().find(|&l| l > 0).unwrap_or(0),
        line => line.min(last),
    };
    let every_line = source.is_some() && last.saturating_sub(first) < MAX_LINES;
    let numbers: Vec<u32> = if let (true, Some(lines)) = (every_line, source) {
        (first.max(1)..=function_end(lines, first, last)).collect()
    } else {
        function.lines.keys().copied().filter(|&l| l > 0).collect()
    };
    for number in numbers {
        let text = source
            .and_then(|lines| lines.get(number as usize - 1))
            .map_or("", String::as_str);
        match function.lines.get(&number) {
            Some(time) => writeln!(
                out,
                "{number:>7} {:>9} {:>10.3} {:>7.1} {:>7.1}  {text}",
                time.total_samples,
                time.total_ns as f64 / 1e9,
                time.total_ns as f64 / whole * 100.0,
                time.self_ns as f64 / whole * 100.0,
            )?,
            None => writeln!(
                out,
                "{number:>7} {:>9} {:>10} {:>7} {:>7}  {text}",
                "", "", "", ""
            )?,
        }
    }
    Ok(())
}

/// The last line of the function whose `def` is at line `first` and which
/// runs at least to line `last`: the lines after `last` indented deeper
/// than the `def`, without trailing blank lines (at most [`MAX_LINES`]).
fn function_end(lines: &[String], first: u32, last: u32) -> u32 {
    let indent = |text: &str| text.len() - text.trim_start().len();
    let Some(def_indent) = lines.get(first.max(1) as usize - 1).map(|l| indent(l)) else {
        return last;
    };
    let mut end = last;
    while end < first.saturating_add(MAX_LINES) {
        match lines.get(end as usize) {
            Some(next) if next.trim().is_empty() || indent(next) > def_indent => end += 1,
            _ => break,
        }
    }
    while end > last
        && lines
            .get(end as usize - 1)
            .is_some_and(|l| l.trim().is_empty())
    {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pydx_profile::LineTime;

    use super::*;

    fn line(self_samples: u64, total_samples: u64) -> LineTime {
        LineTime {
            self_samples,
            self_ns: self_samples * 10_000_000,
            total_samples,
            total_ns: total_samples * 10_000_000,
            ..LineTime::default()
        }
    }

    fn quote() -> FunctionTime {
        FunctionTime {
            function: "shipping_quote".into(),
            file: "/app/shop.py".into(),
            first_line: 2,
            self_samples: 90,
            total_samples: 100,
            self_ns: 900_000_000,
            total_ns: 1_000_000_000,
            lines: BTreeMap::from([(3, line(2, 2)), (5, line(78, 78)), (6, line(10, 20))]),
        }
    }

    const SHOP: &str = "import math\n\
def shipping_quote(zone, weight_class):\n\
\x20   table = {}\n\
\x20   for step in range(3_000):\n\
\x20       key = f\"{zone}-{weight_class}-{step % 50}\"\n\
\x20       table[key] = table.get(key, 0) + len(key)\n\
\x20   return sum(table.values())\n";

    #[test]
    fn every_line_of_the_function_with_its_samples_and_shares() {
        let lines: Vec<String> = SHOP.lines().map(str::to_string).collect();
        let mut out = Vec::new();
        write_annotation(&quote(), Some(&lines), "on-CPU", &mut out).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }

    #[test]
    fn without_its_source_only_the_lines_with_samples_are_listed() {
        let mut out = Vec::new();
        write_annotation(&quote(), None, "on-CPU", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("(source not found: /app/shop.py)"), "{text}");
        let numbered: Vec<&str> = text
            .lines()
            .skip(5)
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(numbered, ["3", "5", "6"], "{text}");
    }
}
