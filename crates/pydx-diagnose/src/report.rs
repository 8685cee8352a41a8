//! A diagnosis: the findings of every rule, ranked, and the hot spots.

use std::collections::{HashMap, HashSet};

use pydx_profile::{
    Activity, CodeKind, ProcessMeta, Profile, RunStack, SampleKey, StackId, StrId, ThreadId,
};
use serde::Serialize;

use crate::config::Config;
use crate::context::{Context, SourceLines};
use crate::finding::{Finding, Location};
use crate::rules::all_rules;

/// The code of the general hot-spot rule.
const HOT_SPOT_CODE: &str = "PYDX-CPU002";
/// How many hot spots a report lists.
const HOT_SPOTS: usize = 10;

/// The result of `pydx doctor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was profiled.
    pub summary: Summary,
    /// Findings, most costly first.
    pub findings: Vec<Finding>,
    /// The functions that took the most CPU, whatever the findings.
    pub hot_spots: Vec<HotSpot>,
    /// The HTTP endpoints the program served, most time first (empty when
    /// it served none while sampled).
    pub endpoints: Vec<Endpoint>,
}

/// Time spent serving one HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// `METHOD /path/{id}`.
    pub endpoint: String,
    /// Thread samples serving it.
    pub samples: u64,
    /// Its share of all request-serving samples.
    pub share: f64,
    /// Thread-seconds spent serving it (wall time, summed over threads).
    pub seconds: f64,
    /// Share of its samples on a CPU (the rest waited: I/O, locks, GIL).
    pub on_cpu_share: f64,
    /// Where its time went: the innermost frames of the program's own
    /// code, most samples first.
    pub top_functions: Vec<EndpointFunction>,
}

/// A function of the program's code inside one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointFunction {
    /// The function.
    pub function: String,
    /// Its file.
    pub file: String,
    /// Its line with the most samples.
    pub line: u32,
    /// Share of the endpoint's samples.
    pub share: f64,
}

/// What was profiled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Seconds recorded.
    pub duration_seconds: f64,
    /// Thread samples.
    pub samples: u64,
    /// Threads seen.
    pub threads: usize,
    /// Processes and their Python versions.
    pub processes: Vec<String>,
    /// Share of thread samples on a CPU.
    pub on_cpu_share: f64,
    /// Share waiting for the GIL.
    pub gil_wait_share: f64,
    /// Share idle (I/O, sleeps, locks).
    pub idle_share: f64,
    /// Share runnable but waiting for a CPU (more runnable threads than
    /// CPUs); 0 when pydx could not tell it from running.
    pub cpu_wait_share: f64,
    /// The requests the servers counted while they were sampled, when
    /// pydx could read their counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestsServed>,
    /// What the recording could not see, and which findings that keeps
    /// from being judged: processes not sampled, memory readings that
    /// failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
}

/// Requests served while sampled, from the servers' own counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestsServed {
    /// Requests served, summed over processes.
    pub count: u64,
    /// Requests per second, summed over processes.
    pub per_second: f64,
    /// Processes whose count was read.
    pub processes: usize,
}

/// A function that took CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotSpot {
    /// The function.
    pub function: String,
    /// Its file.
    pub file: String,
    /// Its hottest line.
    pub line: u32,
    /// Share of on-CPU samples in the function itself.
    pub self_share: f64,
    /// Share of on-CPU samples with the function anywhere on the stack.
    pub total_share: f64,
    /// CPU seconds in the function itself.
    pub self_seconds: f64,
    /// For the first hot spot only: its lines that took the most of its
    /// CPU time (running or calling), in line order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<HotLine>,
}

/// A line of a hot function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HotLine {
    /// The line number.
    pub line: u32,
    /// Share of the function's CPU time spent on this line, running or
    /// calling.
    pub share: f64,
    /// CPU seconds on this line, running or calling.
    pub seconds: f64,
    /// The line's text, trimmed, when the file could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Runs every rule over `profile`.
///
/// Samples taken while a module was being imported, or while the main
/// script's module-level code ran statements it had finished with before
/// the statement it ran to the end (building tables before calling
/// `main()`), are left out of the rules' view: start-up is not a finding's
/// place. The summary and the hot spots still count them.
pub fn diagnose(profile: &Profile, config: &Config, sources: &dyn SourceLines) -> Report {
    let context = Context::new(profile, config, sources);
    let mut running = profile.clone();
    let startup = startup_stacks(profile);
    running.retain_samples(|profile, key| {
        !profile.is_importing(key.stack) && !key.stack.is_some_and(|s| startup.contains(&s))
    });
    let rules_context = Context::new(&running, config, sources).with_recorded(profile);
    let mut findings: Vec<Finding> = all_rules()
        .iter()
        .flat_map(|rule| rule.check(&rules_context))
        .collect();
    // A general hot-spot finding defers to a more specific one about the
    // same code (GIL contention, a cache, a numeric loop, saturated
    // workers): about the same function, or one calling or called by it.
    let specific: Vec<&Finding> = findings
        .iter()
        .filter(|f| CPU_FINDINGS.contains(&f.code))
        .collect();
    let covered: Vec<bool> = findings
        .iter()
        .map(|f| f.code == HOT_SPOT_CODE && specific.iter().any(|other| same_code(f, other)))
        .collect();
    let mut covered = covered.into_iter();
    findings.retain(|_| !covered.next().unwrap_or(false));
    findings.sort_by(|a, b| {
        b.cost
            .seconds
            .total_cmp(&a.cost.seconds)
            .then_with(|| a.code.cmp(b.code))
            .then_with(|| a.location.line.cmp(&b.location.line))
    });
    Report {
        summary: summary(&context),
        findings,
        hot_spots: hot_spots(&context),
        endpoints: endpoints(&context),
    }
}

/// Share of the recording the main script's last module-level statement
/// must span for the statements before it to count as start-up.
const STEADY_SHARE: f64 = 0.3;
/// How near the end of the recording that statement must still run.
const STEADY_UNTIL: f64 = 0.9;

/// The stacks of the main script's start-up: module-level statements that
/// ran, and finished, before the one the script then ran for most of the
/// recording and was still running at its end. A script whose module
/// level is its work (a loop that runs to the end, or statements that end
/// with the program) has none.
fn startup_stacks(profile: &Profile) -> HashSet<StackId> {
    // The main script's `<module>` frame of each stack: the outermost frame
    // of the program's own code, when it is module-level code.
    let mut module_line: HashMap<StackId, Option<(StrId, u32)>> = HashMap::new();
    let mut spans: HashMap<(StrId, u32), (u64, u64)> = HashMap::new();
    let mut recording_end = 0;
    for run in profile.runs() {
        recording_end = recording_end.max(run.end_ns);
        let RunStack::Stack(Some(stack)) = run.stack else {
            continue;
        };
        let position = *module_line.entry(stack).or_insert_with(|| {
            let outermost_user = profile
                .frames_innermost_first(Some(stack))
                .into_iter()
                .rev()
                .map(|frame| profile.frame_info(frame))
                .find(|frame| CodeKind::of(profile.str(frame.file)) == CodeKind::User)?;
            (profile.str(outermost_user.function) == "<module>")
                .then_some((outermost_user.file, outermost_user.line))
        });
        if let Some(position) = position {
            let span = spans.entry(position).or_insert((run.start_ns, run.end_ns));
            span.0 = span.0.min(run.start_ns);
            span.1 = span.1.max(run.end_ns);
        }
    }
    let Some((&last, &(last_start, last_end))) = spans
        .iter()
        .max_by_key(|(position, (start, end))| (*end, *start, **position))
    else {
        return HashSet::new();
    };
    let duration = recording_end.max(1) as f64;
    let steady = last_end.saturating_sub(last_start) as f64 >= duration * STEADY_SHARE
        && last_end as f64 >= duration * STEADY_UNTIL;
    if !steady {
        return HashSet::new();
    }
    let interval = profile.meta.interval_ns();
    module_line
        .into_iter()
        .filter(|(_, position)| {
            position.is_some_and(|position| {
                // A run ends one nominal interval after its last sample;
                // the next statement's first sample may come sooner.
                let ended = spans[&position].1.saturating_sub(interval);
                position.0 == last.0 && position != last && ended <= last_start
            })
        })
        .map(|(stack, _)| stack)
        .collect()
}

/// The findings that explain CPU time more specifically than a hot spot.
const CPU_FINDINGS: [&str; 4] = [
    "PYDX-GIL001",
    "PYDX-CPU001",
    "PYDX-CACHE001",
    "PYDX-WORKER002",
];

/// Whether two findings are about the same code: the same function, or
/// either one's function on the other's stack.
fn same_code(a: &Finding, b: &Finding) -> bool {
    let on_stack = |finding: &Finding, location: &Location| {
        let frame = format!("{} ({}:", location.function, location.file);
        finding.stack.iter().any(|f| f.starts_with(&frame))
    };
    (a.location.function == b.location.function && a.location.file == b.location.file)
        || on_stack(a, &b.location)
        || on_stack(b, &a.location)
}

/// How many endpoints a report lists.
const ENDPOINTS: usize = 20;
/// How many functions a report lists per endpoint.
const ENDPOINT_FUNCTIONS: usize = 3;

/// Samples per endpoint, from the `endpoint` label.
fn endpoints(context: &Context<'_>) -> Vec<Endpoint> {
    let profile = context.profile;
    // endpoint -> (samples, on-CPU samples, (function, file) -> (samples, line -> samples))
    type Functions<'a> = HashMap<(&'a str, &'a str), (u64, HashMap<u32, u64>)>;
    let mut by_endpoint: HashMap<&str, (u64, u64, Functions<'_>)> = HashMap::new();
    for (key, count) in profile.samples() {
        let Some(endpoint) = profile.endpoint(key.labels) else {
            continue;
        };
        let entry = by_endpoint.entry(profile.str(endpoint)).or_default();
        entry.0 += count;
        if Context::on_cpu(key) {
            entry.1 += count;
        }
        // The innermost frame of the program's code: where the handler was.
        if let Some(frame) = context.innermost_user_frame(key.stack) {
            let function = entry
                .2
                .entry((context.function(frame), context.file(frame)))
                .or_default();
            function.0 += count;
            *function
                .1
                .entry(profile.frame_info(frame).line)
                .or_insert(0) += count;
        }
    }
    let total: u64 = by_endpoint.values().map(|e| e.0).sum();
    let mut endpoints: Vec<Endpoint> = by_endpoint
        .into_iter()
        .map(|(endpoint, (samples, on_cpu, functions))| {
            let mut top: Vec<EndpointFunction> = functions
                .into_iter()
                .map(|((function, file), (n, lines))| EndpointFunction {
                    function: function.to_string(),
                    file: file.to_string(),
                    line: lines
                        .into_iter()
                        .max_by_key(|&(line, n)| (n, std::cmp::Reverse(line)))
                        .map_or(0, |(line, _)| line),
                    share: n as f64 / samples.max(1) as f64,
                })
                .collect();
            top.sort_by(|a, b| {
                b.share
                    .total_cmp(&a.share)
                    .then_with(|| a.function.cmp(&b.function))
            });
            top.truncate(ENDPOINT_FUNCTIONS);
            Endpoint {
                endpoint: endpoint.to_string(),
                samples,
                share: samples as f64 / total.max(1) as f64,
                seconds: samples as f64 * context.interval_seconds(),
                on_cpu_share: on_cpu as f64 / samples.max(1) as f64,
                top_functions: top,
            }
        })
        .collect();
    endpoints.sort_by(|a, b| {
        b.samples
            .cmp(&a.samples)
            .then_with(|| a.endpoint.cmp(&b.endpoint))
    });
    endpoints.truncate(ENDPOINTS);
    endpoints
}

/// The summary counts threads only: waiting asyncio tasks, recorded on
/// pseudo-threads, are left out.
fn summary(context: &Context<'_>) -> Summary {
    let profile = context.profile;
    let thread_samples: Vec<(&SampleKey, u64)> = profile
        .samples()
        .filter(|(key, _)| !profile.is_waiting_task(key.labels))
        .collect();
    let samples: u64 = thread_samples.iter().map(|(_, count)| count).sum();
    let share = |wanted: &[Activity]| {
        thread_samples
            .iter()
            .filter(|(key, _)| wanted.contains(&key.state.activity))
            .map(|(_, count)| count)
            .sum::<u64>() as f64
            / samples.max(1) as f64
    };
    let threads: HashSet<ThreadId> = thread_samples.iter().map(|(key, _)| key.thread).collect();
    Summary {
        duration_seconds: profile.meta.duration_ns as f64 / 1e9,
        samples,
        threads: threads.len(),
        processes: profile
            .meta
            .processes
            .iter()
            .map(|p| format!("{} (Python {}): {}", p.pid, p.python_version, p.command))
            .collect(),
        on_cpu_share: share(&[Activity::OnCpu, Activity::Unknown]),
        gil_wait_share: share(&[Activity::GilWait]),
        idle_share: share(&[Activity::Idle]),
        cpu_wait_share: share(&[Activity::CpuWait]),
        requests: requests_served(&profile.meta.processes),
        gaps: gaps(profile),
    }
}

/// What the recording missed that the rules would have used.
fn gaps(profile: &Profile) -> Vec<String> {
    let mut gaps = Vec::new();
    let unattached = &profile.meta.unattached_processes;
    if let Some(first) = unattached.first() {
        gaps.push(format!(
            "{} child process{} could not be sampled, so no finding covers {} ({})",
            unattached.len(),
            if unattached.len() == 1 { "" } else { "es" },
            if unattached.len() == 1 { "it" } else { "them" },
            first.reason
        ));
    }
    for process in &profile.meta.processes {
        let failed = process.failed_memory_readings;
        if failed == 0 {
            continue;
        }
        let read = process.memory.len() as u64;
        gaps.push(format!(
            "{failed} of {} memory readings of process {} failed{}",
            failed + read,
            process.pid,
            if read < 2 {
                ": memory growth (MEM001, WORKER003) could not be judged for it"
            } else {
                ": memory growth (MEM001, WORKER003) was judged on the rest"
            }
        ));
    }
    gaps
}

/// The requests counted by the processes that keep a count.
fn requests_served(processes: &[ProcessMeta]) -> Option<RequestsServed> {
    let mut served: Option<RequestsServed> = None;
    for counted in processes.iter().filter_map(ProcessMeta::served_requests) {
        let seconds = (counted.end_ns - counted.start_ns) as f64 / 1e9;
        let total = served.get_or_insert(RequestsServed {
            count: 0,
            per_second: 0.0,
            processes: 0,
        });
        total.count += counted.count;
        total.per_second += counted.count as f64 / seconds;
        total.processes += 1;
    }
    served
}

/// Lines of the top hot spot shown.
const HOT_LINES: usize = 5;

/// The lines of `function` with the most of its time, in line order.
fn hot_lines(context: &Context<'_>, function: &pydx_profile::FunctionTime) -> Vec<HotLine> {
    let whole = function.total_ns.max(1) as f64;
    let mut lines: Vec<HotLine> = function
        .lines
        .iter()
        .filter(|(&line, _)| line > 0)
        .map(|(&line, time)| HotLine {
            line,
            share: time.total_ns as f64 / whole,
            seconds: time.total_ns as f64 / 1e9,
            source: context.source_line(&function.file, line),
        })
        .collect();
    lines.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.line.cmp(&b.line)));
    lines.truncate(HOT_LINES);
    lines.sort_by_key(|l| l.line);
    lines
}

/// The functions with the most CPU samples, by self and total share; the
/// first with its hottest lines.
fn hot_spots(context: &Context<'_>) -> Vec<HotSpot> {
    let total = context.on_cpu_samples().max(1) as f64;
    let mut spots: Vec<HotSpot> = context
        .profile
        .function_times(Context::on_cpu)
        .into_iter()
        .filter(|f| f.self_samples > 0)
        .map(|f| HotSpot {
            lines: hot_lines(context, &f),
            line: f.hottest_line(),
            self_share: f.self_samples as f64 / total,
            total_share: f.total_samples as f64 / total,
            self_seconds: f.self_ns as f64 / 1e9,
            function: f.function,
            file: f.file,
        })
        .collect();
    spots.sort_by(|a, b| {
        b.self_share
            .total_cmp(&a.self_share)
            .then_with(|| a.function.cmp(&b.function))
    });
    spots.truncate(HOT_SPOTS);
    for spot in spots.iter_mut().skip(1) {
        spot.lines.clear();
    }
    spots
}

#[cfg(test)]
mod tests {
    use pydx_profile::{Activity, Meta};

    use super::*;
    use crate::context::NoSources;
    use crate::test_support::add;

    /// Three threads taking turns on the GIL in `price`, called from
    /// `caller` in `file`.
    fn contention_under(caller: &str, file: &str) -> Profile {
        let mut profile = Profile::new(Meta::default());
        let outer = profile.frame(caller, file, 3, 1);
        let price = profile.frame("price", "/app/pricing.py", 12, 10);
        let stack = profile.stack_from_root([outer, price]);
        for tid in 1..=3 {
            let thread = profile.thread(7, tid, u64::from(tid), None);
            add(&mut profile, thread, stack, Activity::OnCpu, 40);
            add(&mut profile, thread, stack, Activity::GilWait, 60);
        }
        profile
    }

    #[test]
    fn failed_memory_readings_are_reported_with_what_they_keep_from_judging() {
        let reading = pydx_profile::MemoryReading {
            at_ns: 0,
            rss_bytes: 1 << 20,
            private_bytes: 1 << 20,
            served_requests: None,
            cpu_ns: None,
        };
        let mut profile = Profile::new(Meta {
            processes: vec![
                ProcessMeta {
                    pid: 10,
                    failed_memory_readings: 3,
                    memory: vec![reading; 5],
                    ..ProcessMeta::default()
                },
                ProcessMeta {
                    pid: 11,
                    failed_memory_readings: 4,
                    ..ProcessMeta::default()
                },
                ProcessMeta {
                    pid: 12,
                    memory: vec![reading; 8],
                    ..ProcessMeta::default()
                },
            ],
            ..Meta::default()
        });
        let frame = profile.frame("main", "/app/main.py", 1, 1);
        let stack = profile.stack_from_root([frame]);
        let thread = profile.thread(10, 10, 1, None);
        add(&mut profile, thread, stack, Activity::Idle, 10);
        let report = diagnose(&profile, &Config::default(), &NoSources);
        assert_eq!(
            report.summary.gaps,
            [
                "3 of 8 memory readings of process 10 failed: memory growth (MEM001, WORKER003) was judged on the rest",
                "4 of 4 memory readings of process 11 failed: memory growth (MEM001, WORKER003) could not be judged for it",
            ]
        );
    }

    /// A single-threaded script at 100 Hz: each part is (module-level
    /// line, function it calls, on a CPU, seconds), in order.
    fn script(parts: &[(u32, &str, bool, u64)]) -> Profile {
        let mut profile = Profile::new(Meta::default());
        let thread = profile.thread(7, 7, 1, Some("MainThread"));
        let mut time_ns = 0;
        for &(line, function, on_cpu, seconds) in parts {
            let module = profile.frame("<module>", "/app/tool.py", line, 1);
            let callee = profile.frame(function, "/app/tool.py", 40, 38);
            let stack = profile.stack_from_root([module, callee]);
            let activity = if on_cpu {
                Activity::OnCpu
            } else {
                Activity::Idle
            };
            // 100 samples a second, at jittered intervals (6 and 14 ms) as
            // the sampler takes them.
            for i in 0..seconds * 100 {
                time_ns += if i % 2 == 0 { 6_000_000 } else { 14_000_000 };
                crate::test_support::add_at(&mut profile, time_ns, thread, stack, activity);
            }
        }
        profile
    }

    fn hot_spot_findings(profile: &Profile) -> Vec<String> {
        diagnose(profile, &Config::default(), &NoSources)
            .findings
            .iter()
            .filter(|f| f.code == HOT_SPOT_CODE)
            .map(|f| f.location.function.clone())
            .collect()
    }

    #[test]
    fn module_level_start_up_before_the_main_loop_is_not_diagnosed() {
        // Tables built at module level for 2 s, then `main()` waits for 6 s.
        let service = script(&[(10, "build_table", true, 2), (30, "main", false, 6)]);
        assert_eq!(hot_spot_findings(&service), Vec::<String>::new());
        let report = diagnose(&service, &Config::default(), &NoSources);
        assert_eq!(report.hot_spots[0].function, "build_table");
        // A script whose module level is its work is diagnosed: its last
        // statement is the work itself, or ends with it.
        let batch = script(&[(10, "build_table", true, 2), (30, "crunch", true, 6)]);
        assert_eq!(hot_spot_findings(&batch), ["crunch"]);
        let report_at_end = script(&[(10, "build_table", true, 6), (30, "report", true, 1)]);
        assert_eq!(hot_spot_findings(&report_at_end), ["build_table"]);
    }

    #[test]
    fn samples_taken_while_importing_are_not_diagnosed_but_are_summarised() {
        let codes = |profile: &Profile| -> Vec<&str> {
            diagnose(profile, &Config::default(), &NoSources)
                .findings
                .iter()
                .map(|f| f.code)
                .collect()
        };
        assert_eq!(
            codes(&contention_under("run", "/app/main.py")),
            ["PYDX-GIL001"]
        );
        let importing = contention_under("_find_and_load", "<frozen importlib._bootstrap>");
        assert_eq!(codes(&importing), Vec::<&str>::new());
        let report = diagnose(&importing, &Config::default(), &NoSources);
        assert_eq!(report.summary.samples, 300);
    }
}
