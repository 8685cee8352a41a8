//! PYDX-CPU002: a pure-Python function that takes much of the CPU.

use std::collections::BTreeMap;

use pydx_profile::{CodeKind, FrameId, FunctionTime, StackId};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf, TimeUnit};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-CPU002",
    name: "python-hot-spot",
    summary: "One function of the program's own code takes a large share of the CPU in interpreted Python",
    detects: "Functions of the program's own code in which a large share of the on-CPU samples have their \
              innermost frame (self time), other than numeric loops (PYDX-CPU001 covers those). The \
              evidence shows the function's hottest lines and, when pydx recorded it, how much of its time \
              the interpreter spent executing bytecode versus inside calls to native code.",
    why: "CPython executes each bytecode through its interpreter loop, typically 10-100x slower than \
          compiled code for the same algorithm; string processing, parsing and algorithmic code written \
          in Python are bounded by that.",
    example: "def tokenize(text):\n    tokens = []\n    for ch in text:\n        if ch.isalnum(): ...",
    fix: "In order: change the algorithm (fewer passes, a better data structure); cache the function with \
          functools.lru_cache if it is pure and called again with the same arguments (see PYDX-CACHE001); \
          move it to a compiled extension (Cython, or Rust with PyO3); or run the program on PyPy.",
    thresholds: "min_cpu_share = 0.20: the function's own time interpreting Python is at least 20% of \
                 the on-CPU samples (a function below that is a profile's fact, not a finding), and at least \
                 20 samples (0.2 s at 100 Hz). min_wall_share = 0.10: that time is also at least 10% of \
                 the recording's wall time (one CPU's worth), so a program idle most of the time, whose \
                 little CPU work is mostly one function, is left alone: making it faster saves nothing \
                 anyone waits for. Lines working on NumPy arrays or pandas objects and time inside native \
                 calls do not count as interpreting Python.",
};

/// PYDX-CPU002.
pub struct HotSpot;

/// A function's self samples, by line.
#[derive(Default)]
struct FunctionSamples {
    own: u64,
    lines: BTreeMap<u32, (u64, FrameId, Option<StackId>)>,
}

impl FunctionSamples {
    /// The self samples of `function`, per line that ran, with the line's
    /// frame and a stack it ran on.
    fn of(function: &FunctionTime) -> Self {
        let lines = function
            .lines
            .iter()
            .filter(|(_, time)| time.self_samples > 0)
            .filter_map(|(&line, time)| {
                Some((line, (time.self_samples, time.frame?, time.running_stack)))
            })
            .collect();
        Self {
            own: function.self_samples,
            lines,
        }
    }
}

impl Rule for HotSpot {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let total = context.on_cpu_samples();
        if total == 0 {
            return Vec::new();
        }
        let mut findings: Vec<Finding> = context
            .profile
            .function_times(Context::on_cpu)
            .iter()
            .filter(|function| function.self_samples > 0)
            .filter(|function| CodeKind::of(&function.file) == CodeKind::User)
            .filter_map(|function| self.finding(context, FunctionSamples::of(function), total))
            .collect();
        findings.sort_by(|a, b| b.cost.seconds.total_cmp(&a.cost.seconds));
        findings
    }
}

impl HotSpot {
    fn finding(
        &self,
        context: &Context<'_>,
        samples: FunctionSamples,
        total: u64,
    ) -> Option<Finding> {
        // Time inside native calls (a regex engine, NumPy) is not interpreted
        // Python: per line, only the bytecode share counts when pydx observed
        // it, and nothing of a line working on whole arrays. The hot line is
        // the one with the most time interpreting Python.
        let interpreted_at = |frame: FrameId, own: u64| -> u64 {
            if context.works_on_arrays(frame) {
                return 0;
            }
            match context.execution_split(|f| f == frame) {
                Some((bytecode, native)) => own * bytecode / (bytecode + native).max(1),
                None => own,
            }
        };
        let (&hot_line, &(_, hot_frame, hot_stack)) =
            samples.lines.iter().max_by_key(|(line, (n, frame, _))| {
                (interpreted_at(*frame, *n), *n, std::cmp::Reverse(**line))
            })?;
        let split = execution_split(
            context,
            context.function(hot_frame),
            context.file(hot_frame),
        );
        let interpreted: f64 = samples
            .lines
            .values()
            .map(|&(n, frame, _)| interpreted_at(frame, n) as f64)
            .sum();
        let share = interpreted / total as f64;
        let config = &context.config.hot_spot;
        let interval = context.interval_seconds();
        let recorded = context.profile.meta.duration_ns as f64 / 1e9;
        if share < config.min_cpu_share
            || (interpreted as u64) < Context::MIN_CPU_SAMPLES
            || interpreted * interval < config.min_wall_share * recorded
        {
            return None;
        }
        // A numeric loop is PYDX-CPU001's: when that rule reports this
        // function, the report drops this more general finding.
        let file = context.file(hot_frame).to_string();
        let location = context.location(hot_frame);
        let mut evidence = vec![format!(
            "{:.0}% of the on-CPU samples ({:.2} s) run {} itself, {:.0}% of them interpreting Python",
            samples.own as f64 / total as f64 * 100.0,
            samples.own as f64 * interval,
            location.function,
            interpreted / samples.own.max(1) as f64 * 100.0
        )];
        let mut lines: Vec<(u32, u64)> = samples
            .lines
            .iter()
            .map(|(line, (n, _, _))| (*line, *n))
            .collect();
        lines.sort_by_key(|(line, n)| (std::cmp::Reverse(*n), *line));
        for (line, count) in lines.into_iter().take(3) {
            let text = context.source_line(&file, line).unwrap_or_default();
            evidence.push(format!(
                "line {line}: {:.0}% of its time: `{text}`",
                count as f64 / samples.own as f64 * 100.0
            ));
        }
        if let Some((bytecode, native)) = split {
            let seen = (bytecode + native).max(1) as f64;
            evidence.push(format!(
                "of its own time, {:.0}% was the interpreter running its bytecode and {:.0}% inside calls to \
                 native code (built-ins, C extensions)",
                bytecode as f64 / seen * 100.0,
                native as f64 / seen * 100.0
            ));
        }
        let fix = format!(
            "`{}` is interpreted Python that runs hot. In order of payoff: 1) change the algorithm around \
             line {hot_line} (fewer passes over the data, a dict or set instead of repeated searches, \
             built-ins such as str.join, sorted, sum that run in C); 2) if it is pure and called again \
             with the same arguments, decorate it with @functools.lru_cache; 3) compile it: Cython, or a \
             Rust function via PyO3 and maturin; 4) run the program on PyPy, whose JIT speeds up code like \
             this 3-10x.",
            location.function
        );
        Some(Finding {
            code: DOCS.code,
            title: format!(
                "{} takes {:.0}% of the CPU in interpreted Python",
                location.function,
                share * 100.0
            ),
            // A hot function is a warning until it takes half the CPU: it
            // may be the program's inherent work.
            severity: if share >= 0.5 {
                Severity::Error
            } else {
                Severity::Warning
            },
            cost: Cost {
                share,
                share_of: ShareOf::CpuTime,
                unit: TimeUnit::CpuSeconds,
                seconds: interpreted * interval,
                cpu_seconds: interpreted * interval,
                longest_ms: None,
                occurrences: None,
            },
            location: Location {
                line: hot_line,
                ..location
            },
            stack: context.stack_text(hot_stack),
            evidence,
            fix,
        })
    }
}

/// How many samples of a function's own time were spent running bytecode
/// and inside native calls, from the `exec` observations, if recorded.
fn execution_split(context: &Context<'_>, function: &str, file: &str) -> Option<(u64, u64)> {
    context
        .execution_split(|frame| context.function(frame) == function && context.file(frame) == file)
}

#[cfg(test)]
mod tests {
    use pydx_profile::{Activity, Meta, Profile};

    use super::*;
    use crate::config::Config;
    use crate::context::SourceMap;
    use crate::test_support::add;

    /// Findings when a function's loop runs 0.5 s on a CPU (50 samples at
    /// 100 Hz, all of the on-CPU time) in a recording `seconds` long.
    fn findings_over(seconds: u64) -> Vec<Finding> {
        let mut profile = Profile::new(Meta {
            duration_ns: seconds * 1_000_000_000,
            ..Meta::default()
        });
        let frame = profile.frame("quote", "/app/pricing.py", 12, 10);
        let stack = profile.stack_from_root([frame]);
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        add(&mut profile, thread, stack, Activity::OnCpu, 50);
        add(
            &mut profile,
            thread,
            stack,
            Activity::Idle,
            seconds * 100 - 50,
        );
        let config = Config::default();
        HotSpot.check(&Context::new(&profile, &config, &SourceMap::default()))
    }

    #[test]
    fn a_program_idle_most_of_the_time_has_no_hot_spot() {
        assert_eq!(findings_over(2).len(), 1);
        assert_eq!(findings_over(4).len(), 1);
        assert!(findings_over(6).is_empty());
    }
}
