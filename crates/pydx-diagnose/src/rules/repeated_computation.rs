//! PYDX-CACHE001: a hot function called again and again with the same arguments.

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{Activity, FrameId, Observed, RunStack, StackId};

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
                 Most (at least half) of the calls seen must show their arguments so. \
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
            if kind != Observed::CallArgs && kind != Observed::CallArgsAgain {
                continue;
            }
            // An argument without a value: the frame was read as its call
            // ended (or before it began), not a call with other arguments.
            if value.contains(UNBOUND) {
                continue;
            }
            let shown = shows_values(value);
            let id = (
                context.function(frame).to_string(),
                context.file(frame).to_string(),
            );
            let entry = calls.entry(id).or_insert_with(|| ObservedCalls {
                arguments: BTreeMap::new(),
                hidden: 0,
                again: 0,
                again_by_arguments: BTreeMap::new(),
                frame,
            });
            if kind == Observed::CallArgs && !shown {
                entry.hidden += count;
            } else if kind == Observed::CallArgs {
                *entry.arguments.entry(value.to_string()).or_insert(0) += count;
            } else {
                entry.again += count;
                if shown && !value.is_empty() {
                    *entry
                        .again_by_arguments
                        .entry(value.to_string())
                        .or_insert(0) += count;
                }
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
                // The calls read in full must be most of those seen: when
                // most hold containers or objects (a recursive walk over a
                // document, repeating only its leaves), the repeats say
                // nothing about where the function's time goes.
                let values_shown = seen as f64 >= MIN_SHOWN_SHARE * (seen + observed.hidden) as f64;
                let reuse = observed.reuse();
                let repeats = reuse.seen >= config.min_calls
                    && reuse.hit_rate >= 1.0 - config.max_distinct_ratio;
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
                    && !is_request_handler(context, &function, &file)
                    && !looks_impure(context, observed.frame)
                    && has_arguments
                    && values_shown
                    && computes
                    && share >= config.min_cpu_share
                    && samples >= Context::MIN_CPU_SAMPLES
                    && repeats
                    && calls_are_short)
                    .then(|| finding(context, &observed, reuse, samples, share))
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

/// How the reader shows a variable without a value.
const UNBOUND: &str = "<unbound>";

/// Smallest share of a function's observed calls whose arguments must be
/// shown in full (see [`shows_values`]) for their repeats to count.
const MIN_SHOWN_SHARE: f64 = 0.5;

/// Fewest times the timeline must show the function being entered afresh
/// for its observations to count as separate calls.
const MIN_ENTRIES: u64 = 3;

/// What pydx saw of one function's calls.
struct ObservedCalls {
    /// Argument text to the number of observations with it (arguments
    /// shown in full only).
    arguments: BTreeMap<String, u64>,
    /// Observations whose arguments were not all shown in full.
    hidden: u64,
    /// Observations that found the thread's previous observation on the
    /// same frame with the same arguments.
    again: u64,
    /// Of those, per argument set, the observations that found the call
    /// of the observation before still running with the same arguments
    /// (profiles written before these were recorded give only the sum).
    again_by_arguments: BTreeMap<String, u64>,
    /// A frame of the function, to point at.
    frame: FrameId,
}

/// How often the calls of a function repeat an argument set already seen.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reuse {
    /// Calls whose arguments pydx read.
    seen: u64,
    /// Distinct argument sets among them.
    distinct: u64,
    /// Distinct argument sets the function is called with in all, estimated
    /// from how often the sets seen once and twice occur (Chao1).
    estimated_distinct: u64,
    /// Calls the function made while recorded, estimated from how rarely
    /// two observations in a row found the same call running (a model, not
    /// a count: calls shorter than the time between reads all look alike).
    estimated_calls: u64,
    /// Share of calls that recompute a result already computed: from the
    /// calls seen, or, when enough of those repeat, from the estimates.
    hit_rate: f64,
}

/// Share of the calls seen that must repeat an argument set already seen
/// before the repeats are extrapolated to the calls not seen.
const MIN_REPEATED_SHARE: f64 = 0.15;

impl ObservedCalls {
    /// How much a cache would be hit. Sampling sees a few of many short
    /// calls: 181 calls seen with 139 distinct argument sets may be 192 sets
    /// called thousands of times. When at least 15% of the calls seen repeat
    /// one already seen, the number of sets in all is estimated from the
    /// sets seen exactly once (f1) and twice (f2): d + f1²/(2(f2+1)) (the
    /// bias-corrected Chao1 estimator, a lower bound), and the calls made
    /// from how rarely the next observation found the same call still
    /// running: short calls (seen again a times in n) number about
    /// n²/(a+1) (the n observations are spread over the function's time,
    /// and a call lasting that share of the spacing would be seen again that
    /// often).
    fn reuse(&self) -> Reuse {
        let observations: u64 = self.arguments.values().sum();
        let calls: Vec<u64> = self.arguments.keys().map(|a| self.calls_with(a)).collect();
        let seen: u64 = calls.iter().sum();
        let distinct = self.arguments.len() as u64;
        let once = calls.iter().filter(|&&n| n == 1).count() as u64;
        let twice = calls.iter().filter(|&&n| n == 2).count() as u64;
        let estimated_distinct = distinct + once * once.saturating_sub(1) / (2 * (twice + 1));
        let estimated_calls = (observations * observations / (self.again + 1)).max(seen);
        let direct = 1.0 - distinct as f64 / seen.max(1) as f64;
        let repeated = seen.saturating_sub(distinct) as f64 >= seen as f64 * MIN_REPEATED_SHARE;
        let extrapolated = 1.0 - estimated_distinct as f64 / estimated_calls.max(1) as f64;
        Reuse {
            seen,
            distinct,
            estimated_distinct,
            estimated_calls,
            hit_rate: if repeated {
                direct.max(extrapolated)
            } else {
                direct
            },
        }
    }

    /// How many separate calls the observations of argument set `arguments`
    /// stand for: an observation that found the previous one's call still
    /// running (same frame, same arguments) is that call seen again, not a
    /// repeat. At least one.
    fn calls_with(&self, arguments: &str) -> u64 {
        let observed = self.arguments.get(arguments).copied().unwrap_or(0);
        let again = self.again_by_arguments.get(arguments).copied().unwrap_or(0);
        observed.saturating_sub(again).max(1)
    }

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
    observed: &ObservedCalls,
    reuse: Reuse,
    samples: u64,
    share: f64,
) -> Finding {
    let frame = observed.frame;
    let arguments = &observed.arguments;
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
    let Reuse {
        seen,
        distinct,
        estimated_distinct,
        estimated_calls,
        hit_rate,
    } = reuse;
    let mut common: Vec<(&String, u64)> = arguments
        .keys()
        .map(|a| (a, observed.calls_with(a)))
        .collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let interval = context.interval_seconds();
    let seconds = samples as f64 * interval;
    let saved = seconds * hit_rate;
    let direct = 1.0 - distinct as f64 / seen.max(1) as f64;
    let mut evidence = vec![format!(
        "{} and its callees take {:.0}% of the on-CPU samples ({seconds:.2} s)",
        location.function,
        share * 100.0
    )];
    if hit_rate > direct {
        evidence.push(format!(
            "pydx read the arguments of {seen} calls: {distinct} distinct argument sets, {} of the calls \
             repeating one already seen; from how often sets came back, about {estimated_distinct} sets in \
             all (Chao1 estimate) over an estimated {estimated_calls} calls (calls were rarely still running \
             at the next read), so about {:.0}% of the calls recompute a result already computed",
            seen - distinct,
            hit_rate * 100.0
        ));
    } else {
        evidence.push(format!(
            "pydx read the arguments of {seen} calls: only {distinct} distinct argument set{}, so about \
             {:.0}% of the calls recomputed a result already computed",
            if distinct == 1 { "" } else { "s" },
            direct * 100.0
        ));
    }
    for (text, count) in common.iter().take(3) {
        evidence.push(format!("({text}) seen in {count} calls"));
    }
    let distinct = distinct.max(estimated_distinct);
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
            "{} recomputes the same results (about {:.0}% of its calls repeat earlier arguments)",
            location.function,
            hit_rate * 100.0
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
        stack: context.stack_text(representative_stack(context, frame)),
        location,
        evidence,
        fix,
    }
}

/// Names in a function's body that make its result depend on more than
/// its arguments (files, the network, the clock, randomness, a database,
/// the request) or give it effects: a cache would return stale or wrong
/// results.
const IMPURE_NAMES: [&str; 16] = [
    "open(",
    ".read(",
    ".write(",
    "socket",
    "requests.",
    "urlopen",
    "time.",
    "random",
    "datetime.",
    "uuid",
    "input(",
    "print(",
    ".execute(",
    "global ",
    "request.",
    "os.",
];

/// Lines of a function's body read to judge whether it looks pure.
const MAX_BODY_LINES: u32 = 200;

/// Whether the body of `frame`'s function (from its source) uses one of
/// [`IMPURE_NAMES`]; without the source it cannot be told, and the rule
/// keeps to the evidence of the arguments.
fn looks_impure(context: &Context<'_>, frame: FrameId) -> bool {
    let file = context.file(frame);
    let def = context.def_line(file, context.profile.frame_info(frame).first_line);
    let Some(header) = context.raw_source_line(file, def) else {
        return false;
    };
    let indent = header.len() - header.trim_start().len();
    (def + 1..def + MAX_BODY_LINES)
        .map_while(|line| context.raw_source_line(file, line))
        .take_while(|text| text.trim().is_empty() || text.len() - text.trim_start().len() > indent)
        .any(|text| {
            let code = text.split('#').next().unwrap_or_default();
            IMPURE_NAMES.iter().any(|name| code.contains(name))
        })
}

/// Whether `function` serves requests itself (the program's outermost frame
/// in samples of a thread serving an endpoint): a view's result depends on
/// the request and the app's state, not only on its arguments.
fn is_request_handler(context: &Context<'_>, function: &str, file: &str) -> bool {
    context.profile.samples().any(|(key, _)| {
        context.profile.endpoint(key.labels).is_some()
            && context
                .profile
                .frames_root_first(key.stack)
                .into_iter()
                .find(|&f| context.is_user_frame(f))
                .is_some_and(|f| context.function(f) == function && context.file(f) == file)
    })
}

/// The most sampled stack running `frame`'s function, to show.
fn representative_stack(context: &Context<'_>, frame: FrameId) -> Option<StackId> {
    let (function, file) = (context.function(frame), context.file(frame));
    context
        .profile
        .samples()
        .filter(|(key, _)| {
            context
                .profile
                .frames_innermost_first(key.stack)
                .into_iter()
                .any(|f| context.function(f) == function && context.file(f) == file)
        })
        .max_by_key(|(key, count)| (*count, std::cmp::Reverse(**key)))
        .and_then(|(key, _)| key.stack)
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
            hidden: 0,
            again,
            again_by_arguments: BTreeMap::new(),
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

    /// `n` observed calls over argument sets `0..population`, drawn evenly
    /// (a fixed stride through the population, so the test is exact).
    fn drawn(population: u64, n: u64, again: u64) -> ObservedCalls {
        let mut arguments: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..n {
            *arguments
                .entry(format!("{}", (i * 7919) % population))
                .or_default() += 1;
        }
        ObservedCalls {
            arguments,
            hidden: 0,
            again,
            again_by_arguments: BTreeMap::new(),
            frame: FrameId(0),
        }
    }

    #[test]
    fn long_calls_seen_on_consecutive_samples_are_not_repeats() {
        // 120 calls with new arguments each, 40 of them long enough to be
        // seen by two observations in a row.
        let mut observed = drawn(10_000, 120, 0);
        for arguments in observed
            .arguments
            .keys()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
        {
            *observed.arguments.get_mut(&arguments).unwrap() += 1;
            observed.again_by_arguments.insert(arguments, 1);
            observed.again += 1;
        }
        let reuse = observed.reuse();
        assert_eq!((reuse.seen, reuse.distinct), (120, 120));
        assert_eq!(reuse.hit_rate, 0.0, "{reuse:?}");
    }

    #[test]
    fn repeats_among_a_few_calls_seen_are_extrapolated_to_the_calls_made() {
        // 181 short calls seen of a function called over 150 argument sets:
        // 31 repeats among them, and calls rarely seen twice.
        let reuse = drawn(150, 181, 1).reuse();
        assert_eq!((reuse.seen, reuse.distinct), (181, 150));
        assert!(reuse.distinct as f64 > 0.5 * reuse.seen as f64);
        assert!(reuse.estimated_distinct >= 150, "{reuse:?}");
        assert!(reuse.hit_rate > 0.9, "{reuse:?}");
    }

    #[test]
    fn calls_with_new_arguments_each_time_are_not_extrapolated() {
        let unique = drawn(10_000, 200, 0).reuse();
        assert_eq!(unique.distinct, 200);
        assert_eq!(unique.hit_rate, 0.0);
        // A few repeats (under 15% of the calls seen) are not enough either.
        let few = drawn(180, 200, 0).reuse();
        assert!(few.hit_rate < 0.5, "{few:?}");
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

    /// Findings on a function taking all of 100 on-CPU samples whose calls
    /// were read `shown` times with one of a few scalar arguments, and
    /// `hidden` times with a container argument.
    fn findings_with(shown: u64, hidden: u64) -> Vec<Finding> {
        use pydx_profile::{Activity, Meta, Profile};

        use crate::config::Config;
        use crate::context::SourceMap;
        use crate::test_support::add;

        let mut profile = Profile::new(Meta {
            duration_ns: 1_000_000_000,
            ..Meta::default()
        });
        let frame = profile.frame("canonicalize", "/app/sign.py", 19, 22);
        let stack = profile.stack_from_root([frame]);
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        add(&mut profile, thread, stack, Activity::OnCpu, 100);
        for i in 0..shown {
            let value = format!("value={}", i % 4);
            profile.observe(frame, Observed::CallArgs, &value, 1);
        }
        profile.observe(frame, Observed::CallArgs, "value=<dict of 3>", hidden);
        // Frames read as their calls ended are neither.
        profile.observe(frame, Observed::CallArgs, "value=<unbound>", 50);
        let config = Config::default();
        RepeatedComputation.check(&Context::new(&profile, &config, &SourceMap::default()))
    }

    #[test]
    fn repeats_among_a_minority_of_calls_read_in_full_do_not_count() {
        // A recursive walk over a document: its leaves repeat, the calls
        // with a dict or a list, most of them, cannot be compared.
        assert_eq!(findings_with(60, 40).len(), 1);
        assert!(findings_with(40, 60).is_empty());
    }

    #[test]
    fn one_argument_set_cannot_tell() {
        let calls = observed(&[("batch", 100)], 99);
        assert_eq!(calls.distinct_calls(100), None);
    }
}
