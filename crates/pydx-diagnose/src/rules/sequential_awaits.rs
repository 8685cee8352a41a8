//! PYDX-ASYNC002: independent awaits run one after another.

use std::collections::BTreeMap;

use pydx_profile::{FrameId, LabelSetId, Run, RunStack, ThreadId};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity, ShareOf, TimeUnit};
use crate::source::{code_only, contains_name};

/// Shortest wait at one await line that counts as an I/O wait.
const MIN_WAIT_NS: u64 = 5_000_000;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-ASYNC002",
    name: "sequential-awaits",
    summary: "A coroutine awaits several independent operations one after another instead of concurrently",
    detects: "pydx reads the asyncio tasks that are waiting (not only the running one) and their chains of \
              suspended coroutines. A coroutine of the program's own code that waits at one await line, \
              then at the next, then the next, within one call, where no awaited call uses a result of an \
              earlier one (checked on the source lines), could have run those operations concurrently.",
    why: "Awaiting one operation at a time makes the coroutine take the sum of their latencies; gathered, \
          it takes about the longest one.",
    example: "user = await fetch_user(user_id)\norders = await fetch_orders(user_id)\nprefs = await fetch_preferences(user_id)",
    fix: "Run the independent awaits together: `a, b = await asyncio.gather(f(), g())`, or start tasks in \
          an `asyncio.TaskGroup` (3.11+) and read their results after the group.",
    thresholds: "min_saved_ms = 100: running the awaits together would save at least 100 ms per call on \
                 average (sum of the waits minus the longest), as Sentry's consecutive-query detector \
                 requires. Waits shorter than 5 ms are not counted.",
};

/// PYDX-ASYNC002.
pub struct SequentialAwaits;

/// Consecutive waits at different lines of one coroutine call: (line, ns).
type WaitSequence = Vec<(u32, u64)>;

/// All sequences found for one coroutine function.
struct CoroutineWaits {
    frame: FrameId,
    /// The name of a task it was seen in.
    task: String,
    sequences: Vec<WaitSequence>,
}

impl Rule for SequentialAwaits {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        // A pseudo-thread records one task after another: the labels tell
        // the tasks apart.
        let mut by_task: BTreeMap<(ThreadId, LabelSetId), Vec<&Run>> = BTreeMap::new();
        for run in context.profile.runs() {
            if context.profile.is_waiting_task(run.labels) && !run.is_mixed() {
                by_task
                    .entry((run.thread, run.labels))
                    .or_default()
                    .push(run);
            }
        }
        let mut coroutines: BTreeMap<(String, String), CoroutineWaits> = BTreeMap::new();
        for ((_, labels), runs) in by_task {
            let task = context
                .profile
                .task(labels)
                .map_or("?", |name| context.profile.str(name));
            for (frame, sequence) in wait_sequences(context, &runs) {
                let id = (
                    context.function(frame).to_string(),
                    context.file(frame).to_string(),
                );
                coroutines
                    .entry(id)
                    .or_insert_with(|| CoroutineWaits {
                        frame,
                        task: task.to_string(),
                        sequences: Vec::new(),
                    })
                    .sequences
                    .push(sequence);
            }
        }
        coroutines
            .into_values()
            .filter_map(|waits| finding(context, &waits))
            .collect()
    }
}

/// Follows each user coroutine frame of a task (by its depth in the
/// coroutine chain) through the task's runs and returns, per call, the
/// waits it made at successive lines.
fn wait_sequences(context: &Context<'_>, runs: &[&Run]) -> Vec<(FrameId, WaitSequence)> {
    let mut finished = Vec::new();
    // depth -> (frame of the current call's first wait, function, waits so far)
    let mut open: BTreeMap<usize, (FrameId, String, WaitSequence)> = BTreeMap::new();
    let mut previous_end = None;
    for run in runs {
        let RunStack::Stack(stack) = run.stack else {
            continue;
        };
        let frames = context.profile.frames_root_first(stack);
        let gap = previous_end.is_some_and(|end: u64| run.start_ns > end + MIN_WAIT_NS);
        previous_end = Some(run.end_ns);
        // Close calls that left the chain (or a gap broke it).
        let depths: Vec<usize> = open.keys().copied().collect();
        for depth in depths {
            let still_there = !gap
                && frames
                    .get(depth)
                    .is_some_and(|&f| context.function(f) == open[&depth].1)
                && frames.len() > depth + 1;
            if !still_there {
                let (frame, _, waits) = open.remove(&depth).expect("listed above");
                finished.push((frame, waits));
            }
        }
        // Only a frame awaiting something deeper is waiting at its line.
        for (depth, &frame) in frames
            .iter()
            .enumerate()
            .take(frames.len().saturating_sub(1))
        {
            if !context.is_user_frame(frame) {
                continue;
            }
            let line = context.profile.frame_info(frame).line;
            let entry = open
                .entry(depth)
                .or_insert_with(|| (frame, context.function(frame).to_string(), Vec::new()));
            let waits = &mut entry.2;
            let same_line = waits.last().is_some_and(|&(last, _)| last == line);
            if same_line {
                if let Some((_, duration)) = waits.last_mut() {
                    *duration += run.duration_ns();
                }
            } else {
                if waits.iter().any(|&(seen, _)| seen >= line) {
                    // Back at an earlier await line: the next call, or the
                    // next turn of a loop, starts a new sequence.
                    finished.push((entry.0, std::mem::take(waits)));
                    entry.0 = frame;
                }
                waits.push((line, run.duration_ns()));
            }
        }
    }
    finished.extend(open.into_values().map(|(frame, _, waits)| (frame, waits)));
    finished
}

/// An await statement's assigned names and the text of what it awaits:
/// `a, b = await f(x)`, `await f(x)`, `return await f(x)` and
/// `while line := await f(x):`.
fn parse_await(line: &str) -> Option<(Vec<String>, String)> {
    let code = line.split('#').next()?.trim();
    let (left, awaited) = code.split_once("await ")?;
    let left = left.trim_end();
    let targets: Vec<String> = if let Some(walrus) = left.strip_suffix(":=") {
        let name = walrus
            .trim_end()
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        vec![name.to_string()]
    } else if let Some(assigned) = left.strip_suffix('=') {
        if assigned.ends_with(['=', '!', '<', '>']) {
            return None;
        }
        assigned
            .split(',')
            .map(|t| t.trim().trim_matches(|c| c == '(' || c == ')').to_string())
            .filter(|t| !t.is_empty())
            .collect()
    } else if left.is_empty() || left == "return" {
        Vec::new()
    } else {
        return None;
    };
    let awaited = enclosed_prefix(awaited)
        .trim()
        .trim_end_matches(':')
        .trim_end();
    (!awaited.is_empty()).then(|| (targets, awaited.to_string()))
}

/// `text` up to the bracket that closes one opened before it.
fn enclosed_prefix(text: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return &text[..i],
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// Whether the awaits at `lines` (in order, in one function of `file`) are
/// independent: no awaited call, and no statement between two awaits,
/// uses a value an earlier await produced, directly or through plain
/// assignments in between. Statements that are not assignments and use
/// such a value (an `if`, a `return`) make the later awaits dependent.
fn independent_awaits(context: &Context<'_>, file: &str, lines: &[u32]) -> Option<bool> {
    let mut tainted: Vec<String> = Vec::new();
    for (i, &line) in lines.iter().enumerate() {
        let (targets, call) = parse_await(&context.source_line(file, line)?)?;
        if tainted
            .iter()
            .any(|name| contains_name(&code_only(&call), name))
        {
            return Some(false);
        }
        tainted.extend(targets);
        let Some(&next) = lines.get(i + 1) else {
            break;
        };
        for between in line + 1..next {
            let Some(text) = context.source_line(file, between) else {
                continue;
            };
            let code = code_only(&text);
            if !tainted.iter().any(|name| contains_name(&code, name)) {
                continue;
            }
            match plain_assignment(&code) {
                Some(assigned) => tainted.extend(assigned),
                None => return Some(false),
            }
        }
    }
    Some(true)
}

/// The names a plain assignment statement (`a = ...`, `a, b = ...`,
/// `a += ...`) binds, or `None` for any other statement.
fn plain_assignment(code: &str) -> Option<Vec<String>> {
    let code = code.trim();
    let position = code.find('=')?;
    let (left, right) = code.split_at(position);
    if right.starts_with("==") || left.ends_with(['!', '<', '>']) || left.contains('(') {
        return None;
    }
    let left = left.trim_end_matches(|c: char| "+-*/%&|^@".contains(c) || c.is_whitespace());
    let names: Vec<String> = left
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let simple = names.iter().all(|n| {
        n.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    });
    (simple && !names.is_empty()).then_some(names)
}

fn finding(context: &Context<'_>, waits: &CoroutineWaits) -> Option<Finding> {
    let file = context.file(waits.frame).to_string();
    // Keep, per call, the waits long enough to be I/O, at await lines.
    let mut savings = Vec::new();
    let mut lines_seen: Vec<u32> = Vec::new();
    for sequence in &waits.sequences {
        let real: Vec<&(u32, u64)> = sequence
            .iter()
            .filter(|(_, ns)| *ns >= MIN_WAIT_NS)
            .collect();
        if real.len() < 2 {
            continue;
        }
        let lines: Vec<u32> = real.iter().map(|(line, _)| *line).collect();
        if independent_awaits(context, &file, &lines) != Some(true) {
            continue;
        }
        let total: u64 = real.iter().map(|(_, ns)| ns).sum();
        let longest = real.iter().map(|(_, ns)| *ns).max().unwrap_or(0);
        savings.push(total - longest);
        for (line, _) in real {
            if !lines_seen.contains(line) {
                lines_seen.push(*line);
            }
        }
    }
    if savings.is_empty() {
        return None;
    }
    let average_saved_ms = savings.iter().sum::<u64>() as f64 / savings.len() as f64 / 1e6;
    if average_saved_ms < context.config.sequential_awaits.min_saved_ms {
        return None;
    }
    lines_seen.sort_unstable();
    let statements: Vec<(u32, String)> = lines_seen
        .iter()
        .filter_map(|&line| Some((line, context.source_line(&file, line)?)))
        .collect();
    let parsed: Vec<(Vec<String>, String)> = statements
        .iter()
        .filter_map(|(_, s)| parse_await(s))
        .collect();
    let targets: Vec<String> = parsed
        .iter()
        .map(|(names, _)| {
            if names.is_empty() {
                "_".to_string()
            } else {
                names.join(", ")
            }
        })
        .collect();
    let calls: Vec<String> = parsed.iter().map(|(_, call)| call.clone()).collect();
    let gathered = format!(
        "{} = await asyncio.gather({})",
        targets.join(", "),
        calls.join(", ")
    );
    let first_line = lines_seen[0];
    let location = crate::finding::Location {
        line: first_line,
        source: context.source_line(&file, first_line),
        ..context.location(waits.frame)
    };
    let total_saved_s = savings.iter().sum::<u64>() as f64 / 1e9;
    let mut evidence = vec![format!(
        "{} call{} of {} waited at {} await lines one after another; run together they would have \
         saved {average_saved_ms:.0} ms per call ({total_saved_s:.2} s in this recording)",
        savings.len(),
        if savings.len() == 1 { "" } else { "s" },
        location.function,
        lines_seen.len()
    )];
    for (line, text) in &statements {
        evidence.push(format!("line {line}: `{text}`"));
    }
    evidence.push(format!(
        "none of the awaited calls uses a result of an earlier one (seen in task {})",
        waits.task
    ));
    Some(Finding {
        code: DOCS.code,
        title: format!(
            "{} awaits {} independent operations one at a time (~{average_saved_ms:.0} ms lost per call)",
            location.function,
            lines_seen.len()
        ),
        severity: Severity::Warning,
        cost: Cost {
            share: 0.0,
            share_of: ShareOf::CpuTime,
            unit: TimeUnit::Seconds,
            seconds: total_saved_s,
            cpu_seconds: 0.0,
            longest_ms: None,
            occurrences: Some(savings.len() as u64),
        },
        stack: vec![context.frame_text(waits.frame)],
        fix: format!(
            "Await the independent operations at {file}:{}-{} together:\n    {gathered}\n\
             or start them as tasks in an `async with asyncio.TaskGroup() as group:` block (Python 3.11+).",
            lines_seen[0],
            lines_seen[lines_seen.len() - 1]
        ),
        location,
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_await_statements() {
        assert_eq!(
            parse_await("user = await fetch_user(user_id)  # slow"),
            Some((vec!["user".to_string()], "fetch_user(user_id)".to_string()))
        );
        assert_eq!(
            parse_await("await asyncio.sleep(1)"),
            Some((vec![], "asyncio.sleep(1)".to_string()))
        );
        assert_eq!(
            parse_await("(a, b) = await pair()"),
            Some((vec!["a".to_string(), "b".to_string()], "pair()".to_string()))
        );
        assert_eq!(parse_await("x = compute()"), None);
        assert_eq!(
            parse_await("while line := await reader.readline():"),
            Some((vec!["line".to_string()], "reader.readline()".to_string()))
        );
        assert_eq!(
            parse_await("if (row := await cursor.fetchone()) is None:"),
            Some((vec!["row".to_string()], "cursor.fetchone()".to_string()))
        );
        assert_eq!(
            parse_await("return await client.get(url)"),
            Some((vec![], "client.get(url)".to_string()))
        );
        assert_eq!(parse_await("if x == await f():"), None);
    }

    #[test]
    fn reads_plain_assignments() {
        assert_eq!(
            plain_assignment("service, _, key = line.partition(' ')"),
            Some(vec!["service".into(), "_".into(), "key".into()])
        );
        assert_eq!(
            plain_assignment("total += price"),
            Some(vec!["total".into()])
        );
        assert_eq!(plain_assignment("if user is None:"), None);
        assert_eq!(plain_assignment("if a == b:"), None);
        assert_eq!(plain_assignment("log(level=1)"), None);
    }
}
