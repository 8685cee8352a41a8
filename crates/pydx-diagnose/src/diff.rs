//! `pydx diff`: what changed between two recordings of one program, to
//! verify that a fix worked (or that a change did not make things worse).
//!
//! Recordings differ in length, so CPU time is compared per unit of work:
//! per request when both recordings counted the requests their servers
//! answered, else per second of recording.

use std::collections::{BTreeMap, BTreeSet};

use pydx_profile::{FunctionTime, Profile};
use serde::Serialize;

use crate::context::Context;
use crate::finding::{Finding, Severity};
use crate::report::{Endpoint, Report};

/// Functions shown, most changed first.
const FUNCTIONS_SHOWN: usize = 15;
/// A function's change is shown only when it moves at least this share of
/// the larger of the two totals (smaller moves are sampling noise).
const MIN_FUNCTION_CHANGE: f64 = 0.01;

/// What each recording is compared by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// CPU time per request served.
    PerRequest,
    /// CPU time per second of recording.
    PerSecond,
}

impl Basis {
    /// The unit each normalised time is in, for people.
    pub fn unit(self) -> &'static str {
        match self {
            Basis::PerRequest => "ms per request",
            Basis::PerSecond => "ms per second",
        }
    }
}

/// One recording, as the diff sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The file it was read from.
    pub file: String,
    /// Length of the recording in seconds.
    pub duration_seconds: f64,
    /// CPU seconds of all its threads.
    pub cpu_seconds: f64,
    /// Requests its servers answered, when counted.
    pub requests: Option<u64>,
    /// CPU milliseconds per unit of work (see [`Basis`]).
    pub cpu_ms_per_unit: f64,
}

impl Side {
    /// The units of work it did on `basis`: requests, or seconds.
    pub fn units(&self, basis: Basis) -> f64 {
        match basis {
            Basis::PerRequest => self.requests.unwrap_or(0) as f64,
            Basis::PerSecond => self.duration_seconds,
        }
    }
}

/// How one function's CPU time changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionChange {
    /// The function.
    pub function: String,
    /// Its file.
    pub file: String,
    /// Its hottest line in the recording where it took more time (0 when
    /// it was never the innermost frame).
    pub line: u32,
    /// Its own CPU milliseconds per unit, before and after.
    pub self_before: f64,
    /// See `self_before`.
    pub self_after: f64,
    /// CPU milliseconds per unit of it and what it called, before and after.
    pub total_before: f64,
    /// See `total_before`.
    pub total_after: f64,
}

impl FunctionChange {
    /// Relative change of the total time (`None` for a function new in
    /// the second recording).
    pub fn total_change(&self) -> Option<f64> {
        (self.total_before > 0.0).then(|| self.total_after / self.total_before - 1.0)
    }
}

/// A finding of either recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingSide {
    /// Its code, e.g. `PYDX-CACHE001`.
    pub code: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// Its title.
    pub title: String,
    /// Where it points: `file:line` in `function`.
    pub function: String,
    /// See `function`.
    pub file: String,
    /// See `function`.
    pub line: u32,
    /// Its cost in seconds per unit of work, in milliseconds (0 for a
    /// finding that costs no time).
    pub cost_ms_per_unit: f64,
}

/// What became of the findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FindingChanges {
    /// In the first recording only: fixed, or no longer seen.
    pub gone: Vec<FindingSide>,
    /// In the second recording only.
    pub new: Vec<FindingSide>,
    /// In both (same code, function and file).
    pub remaining: Vec<RemainingFinding>,
}

/// A finding of both recordings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemainingFinding {
    /// As the first recording found it.
    pub before: FindingSide,
    /// As the second recording found it.
    pub after: FindingSide,
}

/// The comparison of two recordings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// How times are normalised.
    pub basis: Basis,
    /// The first recording.
    pub before: Side,
    /// The second recording.
    pub after: Side,
    /// Functions whose time changed most: largest change of their own time
    /// first, then of their total time.
    pub functions: Vec<FunctionChange>,
    /// The findings of both.
    pub findings: FindingChanges,
    /// The HTTP endpoints either served, most changed first.
    pub endpoints: Vec<EndpointChange>,
}

/// How the time serving one HTTP endpoint changed, per unit of work (see
/// [`Basis`]: per request of all endpoints, or per second).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointChange {
    /// `METHOD /route`.
    pub endpoint: String,
    /// Milliseconds of thread time serving it (waiting included), before.
    pub time_before: f64,
    /// The same, after.
    pub time_after: f64,
    /// Milliseconds of it on a CPU, before.
    pub cpu_before: f64,
    /// The same, after.
    pub cpu_after: f64,
}

impl Diff {
    /// Relative change of the CPU time per unit of work.
    pub fn cpu_change(&self) -> Option<f64> {
        (self.before.cpu_ms_per_unit > 0.0)
            .then(|| self.after.cpu_ms_per_unit / self.before.cpu_ms_per_unit - 1.0)
    }

    /// Whether the CPU time per unit rose by more than `percent` percent.
    pub fn regressed_by_more_than(&self, percent: f64) -> bool {
        self.cpu_change()
            .is_some_and(|change| change * 100.0 > percent)
    }
}

/// A recording to compare: its file name, profile and diagnosis.
pub struct Recording<'a> {
    /// Where it was read from.
    pub file: &'a str,
    /// Its samples.
    pub profile: &'a Profile,
    /// Its diagnosis.
    pub report: &'a Report,
}

/// Compares `before` with `after`.
pub fn diff(before: &Recording<'_>, after: &Recording<'_>) -> Diff {
    let requests = |r: &Recording<'_>| r.report.summary.requests.as_ref().map(|s| s.count);
    let basis = match (requests(before), requests(after)) {
        (Some(a), Some(b)) if a > 0 && b > 0 => Basis::PerRequest,
        _ => Basis::PerSecond,
    };
    let units = |r: &Recording<'_>| match basis {
        Basis::PerRequest => requests(r).unwrap_or(1) as f64,
        Basis::PerSecond => r.report.summary.duration_seconds.max(1e-9),
    };
    let (before_units, after_units) = (units(before), units(after));
    let before_functions = before.profile.function_times(Context::on_cpu);
    let after_functions = after.profile.function_times(Context::on_cpu);
    let cpu_ns = |functions: &[FunctionTime]| -> u64 { functions.iter().map(|f| f.self_ns).sum() };
    let side = |r: &Recording<'_>, functions: &[FunctionTime], units: f64| Side {
        file: r.file.to_string(),
        duration_seconds: r.report.summary.duration_seconds,
        cpu_seconds: cpu_ns(functions) as f64 / 1e9,
        requests: requests(r),
        cpu_ms_per_unit: cpu_ns(functions) as f64 / 1e6 / units,
    };
    let before_side = side(before, &before_functions, before_units);
    let after_side = side(after, &after_functions, after_units);
    let functions = function_changes(
        &before_functions,
        before_units,
        &after_functions,
        after_units,
        before_side.cpu_ms_per_unit.max(after_side.cpu_ms_per_unit),
    );
    let findings = finding_changes(
        &before.report.findings,
        before_units,
        &after.report.findings,
        after_units,
    );
    let endpoints = endpoint_changes(
        &before.report.endpoints,
        before_units,
        &after.report.endpoints,
        after_units,
    );
    Diff {
        basis,
        before: before_side,
        after: after_side,
        functions,
        findings,
        endpoints,
    }
}

fn endpoint_changes(
    before: &[Endpoint],
    before_units: f64,
    after: &[Endpoint],
    after_units: f64,
) -> Vec<EndpointChange> {
    let find = |endpoints: &'_ [Endpoint], name: &str| -> Option<(f64, f64)> {
        endpoints
            .iter()
            .find(|e| e.endpoint == name)
            .map(|e| (e.seconds * 1e3, e.seconds * e.on_cpu_share * 1e3))
    };
    let names: BTreeSet<&str> = before
        .iter()
        .chain(after)
        .map(|e| e.endpoint.as_str())
        .collect();
    let mut changes: Vec<EndpointChange> = names
        .into_iter()
        .map(|name| {
            let (time_before, cpu_before) = find(before, name).unwrap_or_default();
            let (time_after, cpu_after) = find(after, name).unwrap_or_default();
            EndpointChange {
                endpoint: name.to_string(),
                time_before: time_before / before_units,
                time_after: time_after / after_units,
                cpu_before: cpu_before / before_units,
                cpu_after: cpu_after / after_units,
            }
        })
        .collect();
    changes.sort_by(|a, b| {
        let moved = |c: &EndpointChange| (c.time_after - c.time_before).abs();
        moved(b)
            .total_cmp(&moved(a))
            .then_with(|| a.endpoint.cmp(&b.endpoint))
    });
    changes
}

fn function_changes(
    before: &[FunctionTime],
    before_units: f64,
    after: &[FunctionTime],
    after_units: f64,
    largest_total: f64,
) -> Vec<FunctionChange> {
    let per_unit = |ns: u64, units: f64| ns as f64 / 1e6 / units;
    let index = |functions: &'_ [FunctionTime]| -> BTreeMap<(String, String), usize> {
        functions
            .iter()
            .enumerate()
            .map(|(i, f)| ((f.function.clone(), f.file.clone()), i))
            .collect()
    };
    let (before_index, after_index) = (index(before), index(after));
    let names: BTreeSet<&(String, String)> =
        before_index.keys().chain(after_index.keys()).collect();
    let mut changes: Vec<FunctionChange> = names
        .into_iter()
        .map(|name| {
            let old = before_index.get(name).map(|&i| &before[i]);
            let new = after_index.get(name).map(|&i| &after[i]);
            let hotter = match (old, new) {
                (Some(o), Some(n)) if o.total_ns >= n.total_ns => o,
                (Some(o), None) => o,
                (_, Some(n)) => n,
                (None, None) => unreachable!("every name comes from one side"),
            };
            FunctionChange {
                function: name.0.clone(),
                file: name.1.clone(),
                line: hotter.hottest_line(),
                self_before: old.map_or(0.0, |f| per_unit(f.self_ns, before_units)),
                self_after: new.map_or(0.0, |f| per_unit(f.self_ns, after_units)),
                total_before: old.map_or(0.0, |f| per_unit(f.total_ns, before_units)),
                total_after: new.map_or(0.0, |f| per_unit(f.total_ns, after_units)),
            }
        })
        .filter(|c| (c.total_after - c.total_before).abs() >= largest_total * MIN_FUNCTION_CHANGE)
        .collect();
    changes.sort_by(|a, b| {
        let own = |c: &FunctionChange| (c.self_after - c.self_before).abs();
        let total = |c: &FunctionChange| (c.total_after - c.total_before).abs();
        own(b)
            .total_cmp(&own(a))
            .then_with(|| total(b).total_cmp(&total(a)))
            .then_with(|| (&a.function, &a.file).cmp(&(&b.function, &b.file)))
    });
    changes.truncate(FUNCTIONS_SHOWN);
    changes
}

fn finding_side(finding: &Finding, units: f64) -> FindingSide {
    FindingSide {
        code: finding.code,
        severity: finding.severity,
        title: finding.title.clone(),
        function: finding.location.function.clone(),
        file: finding.location.file.clone(),
        line: finding.location.line,
        cost_ms_per_unit: finding.cost.seconds * 1e3 / units,
    }
}

fn finding_changes(
    before: &[Finding],
    before_units: f64,
    after: &[Finding],
    after_units: f64,
) -> FindingChanges {
    // A fix moves lines; the code, function and file stay.
    let key = |f: &Finding| (f.code, f.location.function.clone(), f.location.file.clone());
    let mut unmatched: Vec<&Finding> = after.iter().collect();
    let mut changes = FindingChanges::default();
    for old in before {
        match unmatched.iter().position(|new| key(new) == key(old)) {
            Some(i) => {
                let new = unmatched.remove(i);
                changes.remaining.push(RemainingFinding {
                    before: finding_side(old, before_units),
                    after: finding_side(new, after_units),
                });
            }
            None => changes.gone.push(finding_side(old, before_units)),
        }
    }
    changes.new = unmatched
        .into_iter()
        .map(|f| finding_side(f, after_units))
        .collect();
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::EndpointFunction;

    fn endpoint(name: &str, seconds: f64, on_cpu_share: f64) -> Endpoint {
        Endpoint {
            endpoint: name.into(),
            samples: 0,
            share: 0.0,
            seconds,
            on_cpu_share,
            top_functions: Vec::<EndpointFunction>::new(),
        }
    }

    #[test]
    fn endpoints_are_compared_per_unit_most_changed_first() {
        let before = [
            endpoint("GET /quote", 4.0, 0.9),
            endpoint("GET /health", 0.2, 0.5),
        ];
        let after = [
            endpoint("GET /quote", 1.0, 0.8),
            endpoint("GET /new", 0.5, 1.0),
        ];
        let changes = endpoint_changes(&before, 400.0, &after, 500.0);
        let names: Vec<&str> = changes.iter().map(|c| c.endpoint.as_str()).collect();
        assert_eq!(names, ["GET /quote", "GET /new", "GET /health"]);
        let quote = &changes[0];
        assert!((quote.time_before - 10.0).abs() < 1e-9, "{quote:?}");
        assert!((quote.time_after - 2.0).abs() < 1e-9, "{quote:?}");
        assert!((quote.cpu_before - 9.0).abs() < 1e-9, "{quote:?}");
        assert!((quote.cpu_after - 1.6).abs() < 1e-9, "{quote:?}");
        assert_eq!(changes[1].time_before, 0.0);
        assert_eq!(changes[2].time_after, 0.0);
    }
}
