//! PYDX-CACHE001: a hot function called again and again with the same arguments.

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{Activity, FrameId, RunStack, OBSERVED_CALL_ARGS, OBSERVED_CALL_ARGS_AGAIN};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf, TimeUnit};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-CACHE001",
    name: "repeated-pure-computation",
    summary: "A hot function keeps being called with the same arguments; a cache would remove the repeats",
    detects: "While sampling, pydx reads the argument values of the program's own hot frames (through the \
              same out-of-process reader as `pydx dump --locals`), once per call it sees. A function that \
              takes a large share of the CPU (itself and its callees) and whose observed calls repeat the \
              same arguments is reported, with the number of calls seen, the number of distinct argument \
              sets and the most repeated ones.",
    why: "Every repeated call recomputes a result that is already known. If the function is pure (its \
          result depends only on its arguments and it has no side effects), a cache turns the repeats \
          into dictionary lookups.",
    example: "def shipping_rate(zone, weight_class):\n    ... # pure, 5 ms of Python\nfor order in orders:\n    order.rate = shipping_rate(order.zone, order.weight_class)",
    fix: "If the function is pure, decorate it with @functools.lru_cache(maxsize=N) (or @functools.cache \
          for a small, bounded set of arguments), with N from the number of distinct argument sets; for \
          results shared between processes, use an application cache such as Redis.",
    thresholds: "Only calls whose argument values were read in full count: an argument pydx shows by type \
                 and length or address (a list, a dict, a NumPy array, any object) or a truncated string \
                 may differ, or change in place, between calls that look alike. \
                 Only functions with arguments that do not wait for I/O (at most 5% of their samples idle). \
                 min_cpu_share = 0.05 (the function and its callees take 5% of the on-CPU samples, \
                 and at least 20 samples), \
                 min_calls = 10 calls observed, max_distinct_ratio = 0.5 (at most one distinct argument \
                 set per two calls).",
};

/// PYDX-CACHE001.
pub struct RepeatedComputation;

impl Rule for RepeatedComputation {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.cache;
        let total = context.on_cpu_samples();
        if total == 0 {
            return Vec::new();
        }
        let mut calls: BTreeMap<(String, String), ObservedCalls> = BTreeMap::new();
        for (frame, kind, value, count) in context.profile.observations() {
            if kind != OBSERVED_CALL_ARGS && kind != OBSERVED_CALL_ARGS_AGAIN {
                continue;
            }
            if kind == OBSERVED_CALL_ARGS && !shows_values(value) {
                continue;
            }
            let id = (
                context.function(frame).to_string(),
                context.file(frame).to_string(),
            );
            let entry = calls.entry(id).or_insert_with(|| ObservedCalls {
                arguments: BTreeMap::new(),
                again: 0,
                frame,
            });
            if kind == OBSERVED_CALL_ARGS {
                *entry.arguments.entry(value.to_string()).or_insert(0) += count;
            } else {
                entry.again += count;
            }
        }
        let inclusive = inclusive_samples(context);
        calls
            .into_iter()
            .filter_map(|((function, file), observed)| {
                let (samples, idle) = inclusive
                    .get(&(function.as_str(), file.as_str()))
                    .copied()
                    .unwrap_or((0, 0));
                let computes = idle as f64 <= (samples + idle) as f64 * MAX_IDLE_SHARE;
                // A function without arguments has nothing to key a cache on
                // (and its calls cannot be told apart by their arguments).
                let has_arguments = observed.arguments.keys().any(|a| !a.is_empty());
                let share = samples as f64 / total as f64;
                let seen: u64 = observed.arguments.values().sum();
                let distinct = observed.arguments.len() as u64;
                let repeats = seen >= config.min_calls
                    && distinct as f64 <= seen as f64 * config.max_distinct_ratio;
                // With one dominant argument set, only the timeline can
                // tell many calls from one long one: it must show the
                // function entered afresh for at least half the calls seen.
                let calls_are_short = match observed.distinct_calls(seen) {
                    Some(distinct_calls) => distinct_calls,
                    None => {
                        let entries = calls_entered(context, &function, &file);
                        entries >= MIN_ENTRIES && entries * 2 >= seen
                    }
                };
                // Module bodies, comprehensions and the like are not functions to cache.
                let a_function = !function.starts_with('<');
                (a_function
                    && has_arguments
                    && computes
                    && share >= config.min_cpu_share
                    && samples >= Context::MIN_CPU_SAMPLES
                    && repeats
                    && calls_are_short)
                    .then(|| finding(context, observed.frame, &observed.arguments, samples, share))
            })
            .collect()
    }
}

/// Whether an observed argument list shows every value in full, so that
/// two equal texts are equal arguments: not a container or object shown by
/// type and length or address (`<list of 3>`, `<Order at 0x7f..>`), nor a
/// truncated string or bytes.
fn shows_values(arguments: &str) -> bool {
    !(arguments.contains('<') || arguments.contains("... ("))
}

/// Fewest times the timeline must show the function being entered afresh
/// for its observations to count as separate calls.
const MIN_ENTRIES: u64 = 3;

/// What pydx saw of one function's calls.
struct ObservedCalls {
    /// Argument text to the number of observations with it.
    arguments: BTreeMap<String, u64>,
    /// Observations that found the thread's previous observation on the
    /// same frame with the same arguments.
    again: u64,
    /// A frame of the function, to point at.
    frame: FrameId,
}

impl ObservedCalls {
    /// Whether the observations look like many short calls rather than a few
    /// long ones seen several times each, or `None` when the arguments cannot
    /// tell. Two observations of random short calls repeat each other's
    /// arguments about as often as any two calls do (the sum of the squared
    /// shares of each argument set); observations of long calls repeat far
    /// more often than that. With one dominant argument set both look alike.
    fn distinct_calls(&self, seen: u64) -> Option<bool> {
        let seen = seen.max(1) as f64;
        let chance: f64 = self
            .arguments
            .values()
            .map(|&n| (n as f64 / seen).powi(2))
            .sum();
        let limit = chance + REPEAT_MARGIN;
        (limit < INDISTINCT_REPEAT_SHARE).then(|| self.again as f64 / seen <= limit)
    }
}

/// How much more often than chance consecutive observations of separate
/// calls may repeat their arguments.
const REPEAT_MARGIN: f64 = 0.25;

/// Repeat share from which consecutive observations could as well be one
/// long call seen again and again.
const INDISTINCT_REPEAT_SHARE: f64 = 0.8;

/// How many times the timeline shows a stack containing the function right
/// after one that did not (entries into it), over all threads.
fn calls_entered(context: &Context<'_>, function: &str, file: &str) -> u64 {
    let mut entries = 0;
    let mut previous: Option<(pydx_profile::ThreadId, bool)> = None;
    for run in context.profile.runs() {
        let RunStack::Stack(stack) = run.stack else {
            previous = None;
            continue;
        };
        let inside = context
            .profile
            .frames_innermost_first(stack)
            .into_iter()
            .any(|f| context.function(f) == function && context.file(f) == file);
        if inside
            && previous.is_some_and(|(thread, was_inside)| thread == run.thread && !was_inside)
        {
            entries += 1;
        }
        previous = Some((run.thread, inside));
    }
    entries
}

/// Samples with each function anywhere on the stack (once per sample):
/// on a CPU, and idle (waiting for I/O, sleeping, locks).
fn inclusive_samples<'a>(context: &'a Context<'_>) -> HashMap<(&'a str, &'a str), (u64, u64)> {
    let mut inclusive: HashMap<(&str, &str), (u64, u64)> = HashMap::new();
    for (key, count) in context.profile.samples() {
        let on_cpu = Context::on_cpu(key);
        if !on_cpu && key.state.activity != Activity::Idle {
            continue;
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for frame in context.profile.frames_innermost_first(key.stack) {
            let id = (context.function(frame), context.file(frame));
            if !seen.contains(&id) {
                seen.push(id);
                let entry = inclusive.entry(id).or_insert((0, 0));
                if on_cpu {
                    entry.0 += count;
                } else {
                    entry.1 += count;
                }
            }
        }
    }
    inclusive
}

/// Largest share of a function's (running or idle) samples spent idle for
/// it to count as computation: a function that waits for I/O is not pure.
const MAX_IDLE_SHARE: f64 = 0.05;

fn finding(
    context: &Context<'_>,
    frame: FrameId,
    arguments: &BTreeMap<String, u64>,
    samples: u64,
    share: f64,
) -> Finding {
    let definition = context.def_line(
        context.file(frame),
        context.profile.frame_info(frame).first_line,
    );
    // The fix goes on the `def` line, so that is where the finding points.
    let location = Location {
        line: definition,
        source: context.source_line(context.file(frame), definition),
        ..context.location(frame)
    };
    let seen: u64 = arguments.values().sum();
    let distinct = arguments.len() as u64;
    let mut common: Vec<(&String, &u64)> = arguments.iter().collect();
    common.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let interval = context.interval_seconds();
    let seconds = samples as f64 * interval;
    let saved = seconds * (1.0 - distinct as f64 / seen as f64);
    let mut evidence = vec![
        format!(
            "{} and its callees take {:.0}% of the on-CPU samples ({seconds:.2} s)",
            location.function,
            share * 100.0
        ),
        format!(
            "pydx read the arguments of {seen} calls: only {distinct} distinct argument set{}, so about \
             {:.0}% of the calls recomputed a result already computed",
            if distinct == 1 { "" } else { "s" },
            (1.0 - distinct as f64 / seen as f64) * 100.0
        ),
    ];
    for (text, count) in common.iter().take(3) {
        evidence.push(format!("({text}) seen in {count} calls"));
    }
    let size = (distinct * 2).next_power_of_two().max(32);
    let decorator = if distinct <= 64 {
        "@functools.cache".to_string()
    } else {
        format!("@functools.lru_cache(maxsize={size})")
    };
    let mut fix = format!(
        "If `{function}` is pure (its result depends only on its arguments and it changes nothing), add \
         `{decorator}` above `def` at {file}:{definition} (with `import functools`): the {distinct} distinct \
         argument sets fit in the cache, and the repeated calls, about {saved:.2} s of CPU in this recording, \
         become lookups.",
        function = location.function,
        file = location.file,
    );
    fix.push_str(" For results shared across worker processes, use an application cache (e.g. Redis with a TTL).");
    Finding {
        code: DOCS.code,
        title: format!(
            "{} recomputes the same results ({distinct} distinct arguments in {seen} calls)",
            location.function
        ),
        severity: Severity::for_share(share),
        cost: Cost {
            share,
            share_of: ShareOf::CpuTime,
            unit: TimeUnit::CpuSeconds,
            seconds: saved,
            cpu_seconds: saved,
            longest_ms: None,
            occurrences: Some(seen),
        },
        stack: vec![context.frame_text(frame)],
        location,
        evidence,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(arguments: &[(&str, u64)], again: u64) -> ObservedCalls {
        ObservedCalls {
            arguments: arguments
                .iter()
                .map(|(text, n)| (text.to_string(), *n))
                .collect(),
            again,
            frame: FrameId(0),
        }
    }

    #[test]
    fn only_arguments_read_in_full_can_repeat() {
        assert!(shows_values("zone=3, weight_class=2"));
        assert!(shows_values("name='north', rate=1.5, flag=None"));
        assert!(!shows_values("items=<list of 3>"));
        assert!(!shows_values("prices=<numpy.ndarray at 0x7f0ac3f0fe10>"));
        assert!(!shows_values("text='aaaaaaaaaa'... (4096 chars)"));
    }

    #[test]
    fn short_calls_over_a_few_arguments_are_distinct_calls() {
        let calls = observed(
            &[("1, 2", 25), ("3, 4", 25), ("5, 6", 25), ("7, 8", 25)],
            30,
        );
        assert_eq!(calls.distinct_calls(100), Some(true));
    }

    #[test]
    fn long_calls_seen_again_and_again_are_not() {
        let calls = observed(&[("1, 2", 50), ("3, 4", 50)], 98);
        assert_eq!(calls.distinct_calls(100), Some(false));
    }

    #[test]
    fn one_argument_set_cannot_tell() {
        let calls = observed(&[("batch", 100)], 99);
        assert_eq!(calls.distinct_calls(100), None);
    }
}
