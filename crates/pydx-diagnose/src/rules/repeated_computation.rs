//! PYDX-CACHE001: a hot function called again and again with the same arguments.

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{FrameId, OBSERVED_CALL_ARGS};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity};

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
    thresholds: "min_cpu_share = 0.05 (the function and its callees take 5% of the on-CPU samples), \
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
        // (function, file) -> argument text -> calls, and a frame to point at.
        let mut calls: BTreeMap<(String, String), (BTreeMap<String, u64>, FrameId)> =
            BTreeMap::new();
        for (frame, kind, value, count) in context.profile.observations() {
            if kind != OBSERVED_CALL_ARGS {
                continue;
            }
            let id = (
                context.function(frame).to_string(),
                context.file(frame).to_string(),
            );
            let entry = calls.entry(id).or_insert_with(|| (BTreeMap::new(), frame));
            *entry.0.entry(value.to_string()).or_insert(0) += count;
        }
        let inclusive = inclusive_samples(context);
        calls
            .into_iter()
            .filter_map(|((function, file), (arguments, frame))| {
                let samples = inclusive
                    .get(&(function.as_str(), file.as_str()))
                    .copied()
                    .unwrap_or(0);
                let share = samples as f64 / total as f64;
                let seen: u64 = arguments.values().sum();
                let distinct = arguments.len() as u64;
                let repeats = seen >= config.min_calls
                    && distinct as f64 <= seen as f64 * config.max_distinct_ratio;
                (share >= config.min_cpu_share && repeats)
                    .then(|| finding(context, frame, &arguments, samples, share))
            })
            .collect()
    }
}

/// On-CPU samples with each function anywhere on the stack (once per sample).
fn inclusive_samples<'a>(context: &'a Context<'_>) -> HashMap<(&'a str, &'a str), u64> {
    let mut inclusive: HashMap<(&str, &str), u64> = HashMap::new();
    for (key, count) in context
        .profile
        .samples()
        .filter(|(key, _)| Context::on_cpu(key))
    {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for frame in context.profile.frames_innermost_first(key.stack) {
            let id = (context.function(frame), context.file(frame));
            if !seen.contains(&id) {
                seen.push(id);
                *inclusive.entry(id).or_insert(0) += count;
            }
        }
    }
    inclusive
}

fn finding(
    context: &Context<'_>,
    frame: FrameId,
    arguments: &BTreeMap<String, u64>,
    samples: u64,
    share: f64,
) -> Finding {
    let location = context.location(frame);
    let definition = context.profile.frame_info(frame).first_line;
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
    let unhashable = arguments
        .keys()
        .any(|a| a.contains("<list of") || a.contains("<dict of") || a.contains("<set of"));
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
    if unhashable {
        fix.push_str(
            " Some arguments are lists or dicts, which a cache cannot hash: pass tuples or frozensets, or \
             cache on a key derived from them.",
        );
    }
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
