//! PYDX-CPU001: element-wise arithmetic in a pure-Python loop.

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{FrameId, Observed, StackId};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity, ShareOf, TimeUnit};
use crate::source::{enclosing_loop, is_elementwise_arithmetic, loop_body, vectorised, LoopHeader};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-CPU001",
    name: "numeric-python-loop",
    summary: "A hot pure-Python loop does element-wise arithmetic that NumPy would do 10-100x faster",
    detects: "Lines that take on-CPU samples, sit inside a `for`/`while` loop of the program's own code, and \
              do arithmetic element by element (on subscripted values or on the loop variable). Types seen \
              in the frame's local variables sharpen the evidence: a `numpy.ndarray` indexed element by \
              element is the worst case, since every access creates a Python scalar object.",
    why: "Each iteration of a Python loop runs dozens of bytecodes and allocates number objects; a NumPy \
          expression does the same arithmetic in one call over contiguous memory.",
    example: "total = 0.0\nfor i in range(len(prices)):\n    total += prices[i] * quantities[i]",
    fix: "Express the loop as one array expression: convert the inputs once with `np.asarray(...)`, then \
          use `a * b`, `np.sum`, `np.dot`, `np.where`, etc. instead of indexing element by element.",
    thresholds: "min_cpu_share = 0.05: the loop's arithmetic lines take at least 5% of the on-CPU samples \
                 (and at least 20 samples, 0.2 s at 100 Hz). \
                 The rule needs the program's source lines to see the loop and the arithmetic.",
};

/// PYDX-CPU001.
pub struct NumericLoop;

/// A loop and the samples of its arithmetic lines.
struct LoopSamples {
    header: LoopHeader,
    function: String,
    lines: BTreeMap<u32, (u64, FrameId, Option<StackId>)>,
}

impl Rule for NumericLoop {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let total = context.on_cpu_samples();
        if total == 0 {
            return Vec::new();
        }
        let mut loops: HashMap<(String, u32), LoopSamples> = HashMap::new();
        for (frame, stack, count) in context.on_cpu_innermost() {
            if let Some((header, line)) = numeric_line(context, frame) {
                let file = context.file(frame).to_string();
                let entry = loops
                    .entry((file, header.line))
                    .or_insert_with(|| LoopSamples {
                        header,
                        function: context.function(frame).to_string(),
                        lines: BTreeMap::new(),
                    });
                let slot = entry.lines.entry(line).or_insert((0, frame, stack));
                slot.0 += count;
            }
        }
        let mut findings: Vec<Finding> = loops
            .into_iter()
            .filter_map(|((file, _), samples)| self.finding(context, &file, samples, total))
            .collect();
        findings.sort_by(|a, b| b.cost.seconds.total_cmp(&a.cost.seconds));
        findings
    }
}

/// Calls that make a loop a search over a priority queue or a worklist
/// (Dijkstra, A*, breadth-first search): each step depends on the ones
/// before it, so no array expression replaces the loop.
const WORKLIST_CALLS: [&str; 4] = ["heappush(", "heappop(", ".popleft(", ".pop("];

/// Whether a loop body (its statements) pushes to or pops from a heap or
/// a work queue.
fn is_worklist_search(body: &[String]) -> bool {
    body.iter()
        .any(|statement| WORKLIST_CALLS.iter().any(|call| statement.contains(call)))
}

/// The enclosing loop and line of `frame`, if its line is element-wise
/// arithmetic on numbers in a loop of the program's own code. When the
/// types of the line's variables were observed, they must be numbers or
/// arrays (so that string building such as `text += ch` is not taken for
/// arithmetic); without observations, the line must index by the loop variable.
fn numeric_line(context: &Context<'_>, frame: FrameId) -> Option<(LoopHeader, u32)> {
    if !context.is_user_frame(frame) {
        return None;
    }
    let file = context.file(frame);
    let line = context.profile.frame_info(frame).line;
    let statement = context.source_line(file, line)?;
    let header = enclosing_loop(context, file, line)?;
    if is_worklist_search(&loop_body(context, file, &header)) {
        return None;
    }
    let target = header.target_and_iterable.as_ref().map(|(t, _)| t.as_str());
    if !is_elementwise_arithmetic(&statement, target) {
        return None;
    }
    let types = context.observed_types(frame, &statement);
    let numeric =
        |t: &str| matches!(t, "int" | "float" | "complex" | "bool") || t.starts_with("numpy.");
    let indexed = target.is_some_and(|t| statement.contains(&format!("[{t}]")));
    let ok = if types.is_empty() {
        indexed
    } else {
        types
            .iter()
            .all(|(_, t)| numeric(t) || t == "list" || t == "tuple")
            && (indexed || types.iter().any(|(_, t)| numeric(t)))
    };
    ok.then_some((header, line))
}

impl NumericLoop {
    fn finding(
        &self,
        context: &Context<'_>,
        file: &str,
        samples: LoopSamples,
        total: u64,
    ) -> Option<Finding> {
        let loop_samples: u64 = samples.lines.values().map(|(n, _, _)| n).sum();
        let share = loop_samples as f64 / total as f64;
        if share < context.config.numeric_loop.min_cpu_share
            || loop_samples < Context::MIN_CPU_SAMPLES
        {
            return None;
        }
        let (&hot_line, &(_, hot_frame, hot_stack)) = samples
            .lines
            .iter()
            .max_by_key(|(line, (n, _, _))| (*n, std::cmp::Reverse(**line)))?;
        let location = context.location(hot_frame);
        let statement = location.source.clone().unwrap_or_default();
        let interval = context.interval_seconds();
        let mut evidence = vec![format!(
            "{:.0}% of the on-CPU samples ({:.2} s) are in the arithmetic of the loop at {file}:{} \
             (`{}`) in {}",
            share * 100.0,
            loop_samples as f64 * interval,
            samples.header.line,
            samples.header.text,
            samples.function
        )];
        for (line, (count, _, _)) in &samples.lines {
            let text = context.source_line(file, *line).unwrap_or_default();
            let marker = if *line == hot_line { " (hottest)" } else { "" };
            evidence.push(format!(
                "line {line}{marker}: {:.0}% of CPU ({count} samples): `{text}`",
                *count as f64 / total as f64 * 100.0
            ));
        }
        let array_locals = array_locals(context, hot_frame, &statement);
        if !array_locals.is_empty() {
            evidence.push(format!(
                "{} {} a NumPy array indexed one element at a time: every access builds a Python scalar",
                array_locals.join(", "),
                if array_locals.len() == 1 { "is" } else { "are" }
            ));
        }
        let sketch = vectorised(&samples.header, &statement);
        let fix = match &sketch {
            Some(sketch) => format!(
                "Replace the loop at {file}:{} with one NumPy expression. Convert the inputs once \
                 (`import numpy as np`; `np.asarray(...)`), then instead of `{}` / `{statement}` write:\n    {sketch}",
                samples.header.line, samples.header.text
            ),
            None => format!(
                "Replace the loop at {file}:{} with array operations: convert the inputs once with \
                 `np.asarray(...)` and express `{statement}` over whole arrays (`a * b`, `np.sum`, \
                 `np.cumsum`, `np.where`) instead of element by element.",
                samples.header.line
            ),
        };
        Some(Finding {
            code: DOCS.code,
            title: format!(
                "Pure-Python numeric loop in {} ({:.0}% of CPU)",
                samples.function,
                share * 100.0
            ),
            severity: Severity::for_share(share),
            cost: Cost {
                share,
                share_of: ShareOf::CpuTime,
                unit: TimeUnit::CpuSeconds,
                seconds: loop_samples as f64 * interval,
                cpu_seconds: loop_samples as f64 * interval,
                longest_ms: None,
                occurrences: None,
            },
            location: crate::finding::Location {
                line: hot_line,
                ..location
            },
            stack: context.stack_text(hot_stack),
            evidence,
            fix,
        })
    }
}

/// Names used in `statement` that were seen holding NumPy arrays in this
/// function's frames (from the types of locals observed).
fn array_locals(context: &Context<'_>, frame: FrameId, statement: &str) -> Vec<String> {
    let function = context.function(frame);
    let file = context.file(frame);
    let mut names: Vec<String> = context
        .profile
        .observations()
        .into_iter()
        .filter(|(f, _, value, _)| {
            context.function(*f) == function
                && context.file(*f) == file
                && *value == "numpy.ndarray"
        })
        .filter_map(|(_, what, _, _)| match what {
            Observed::LocalType(name) => Some(context.profile.str(name).to_string()),
            _ => None,
        })
        .filter(|name| crate::source::contains_name(statement, name))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use pydx_profile::{Activity, Meta, Profile};

    use super::*;
    use crate::config::Config;
    use crate::context::SourceMap;
    use crate::test_support::add;

    const ROUTES: &str = "\
def total_length(lengths):
    total = 0.0
    for length in lengths:
        total = total + length
    return total

def shortest(source, target):
    best = {source: 0.0}
    queue = [(0.0, source)]
    while queue:
        dist, node = heapq.heappop(queue)
        for nxt, length in STREETS[node]:
            candidate = dist + length
            if candidate < best.get(nxt, INF):
                best[nxt] = candidate
                heapq.heappush(queue, (candidate, nxt))
";

    /// Codes found when all on-CPU samples are at `line` of `function`,
    /// whose locals were seen to hold floats.
    fn findings_at(function: &str, line: u32, first_line: u32) -> Vec<Finding> {
        let mut profile = Profile::new(Meta::default());
        let frame = profile.frame(function, "/app/routes.py", line, first_line);
        let stack = profile.stack_from_root([frame]);
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        add(&mut profile, thread, stack, Activity::OnCpu, 100);
        for name in ["total", "length", "dist", "candidate"] {
            profile.observe_local_type(frame, name, "float", 5);
        }
        let mut sources = SourceMap::default();
        sources.insert("/app/routes.py", ROUTES);
        let config = Config::default();
        NumericLoop.check(&Context::new(&profile, &config, &sources))
    }

    #[test]
    fn a_shortest_path_search_over_a_heap_is_not_an_array_expression() {
        assert_eq!(findings_at("total_length", 4, 1).len(), 1);
        assert!(findings_at("shortest", 13, 7).is_empty());
    }
}
