//! PYDX-MEM001: worker memory rising steadily during the recording.

use std::collections::BTreeMap;

use pydx_profile::{MemoryReading, ProcessMeta, Profile, RunStack, ServedRequests};

use super::server_processes::{busiest_handler, handler_evidence, handler_or_command, server_kind};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity};

/// Fewest memory readings (about two a second) a process needs.
const MIN_READINGS: usize = 8;
const MIB: f64 = 1024.0 * 1024.0;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-MEM001",
    name: "memory-growth",
    summary: "A process's resident memory rises steadily while it runs",
    detects: "Processes whose resident memory (RSS, read from /proc/PID/smaps_rollup about twice \
              a second while they were sampled) rises along a straight line through the recording, by \
              a noticeable amount. Workers of one server (same parent and command line) are reported \
              together, with the rate of each, per minute and, when the server's own request count \
              can be read (a gunicorn worker's `nr`, a uvicorn server's `total_requests`, read \
              with the memory), per 1,000 requests.",
    why: "Memory that keeps growing under a steady load is a leak or an unbounded cache: the worker \
          ends killed by the OOM killer or swapping, and every fork of it copies more. Resident memory \
          is used rather than private memory because a freshly forked worker's private memory also \
          grows as it writes to pages shared with its parent, which is not a leak.",
    example: "_recent = []\n\n@app.get(\"/report\")\ndef report():\n    data = build_report()\n    \
              _recent.append(data)   # kept forever: one report per request",
    fix: "Find what holds the memory: `tracemalloc` snapshots compared a few minutes apart \
          (`snapshot.compare_to(old, \"lineno\")`), or `memray run` / `memray attach PID` for a flame \
          graph of live allocations. Typical causes are module-level lists and dicts that only grow, \
          caches without a size limit (`functools.lru_cache(maxsize=None)`), and objects kept alive \
          by reference cycles or global registries. As a stop-gap, recycle workers with gunicorn \
          `--max-requests N --max-requests-jitter M` (uvicorn `--limit-max-requests`), which hides \
          the leak rather than curing it.",
    thresholds: "min_growth_mib = 5 and min_growth_share = 0.05: the fitted line rises by at least \
                 5 MiB and 5% of the starting RSS over the recording; min_fit = 0.9: the readings \
                 follow the line (R² of a least-squares fit, over the requests the process served \
                 when its server's request count is read, else over time), so a single step such \
                 as a cache filling once does not count; min_steadiness = 0.5: the rise over the later half \
                 of the readings is at least half as fast as over the earlier half, so a worker \
                 warming up (imports, caches and pools filling under its first requests: fast, \
                 then slowing down) does not count; at least 8 readings. pydx's own defaults: no tool \
                 publishes a standard; tracemalloc and memray leave the judgement to the user.",
};

/// PYDX-MEM001.
pub struct MemoryGrowth;

/// Growing processes, grouped by parent PID and command line.
type GrowingGroups<'a> = BTreeMap<(Option<u32>, &'a str), Vec<(&'a ProcessMeta, Growth)>>;

/// A straight line through one process's RSS readings.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Growth {
    /// The fitted rise per second, in bytes.
    bytes_per_second: f64,
    /// The fitted rise over the readings, in bytes.
    bytes: f64,
    /// RSS at the first reading, in bytes.
    start_bytes: f64,
    /// RSS at the last reading, in bytes.
    end_bytes: f64,
    /// Private memory at the last reading, in bytes.
    end_private_bytes: f64,
    /// How well the line fits the readings (R², 0–1).
    fit: f64,
    /// Seconds between the first and the last reading.
    seconds: f64,
    /// Requests the process served between its first and last reading
    /// with a request count, when it keeps one.
    requests: Option<u64>,
    /// The rate of rise over the later half of the readings as a share of
    /// the rate over the earlier half (1 for a straight line, less for
    /// growth that slows down); 0 when the earlier half does not rise.
    steadiness: f64,
}

/// A least-squares line through `(seconds or requests, bytes)` points: its
/// slope and R² (0 when the points are level); `None` for fewer than two
/// distinct abscissas.
fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_m = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var_t: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    let var_m: f64 = points.iter().map(|p| (p.1 - mean_m).powi(2)).sum();
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_m)).sum();
    if var_t <= 0.0 {
        return None;
    }
    let fit = if var_m > 0.0 {
        cov * cov / (var_t * var_m)
    } else {
        0.0
    };
    Some((cov / var_t, fit))
}

/// The points a process's growth is fitted to: its RSS against the
/// requests it had served, when every reading has its server's request
/// count and at least [`MIN_READINGS`] requests were served; else its RSS
/// over time. Memory a worker keeps per request rises with the requests it
/// serves, and workers of one server take turns at the load unevenly (one
/// accepts a burst of connections, then the other), so over time such a
/// worker rises in steps while over its requests it rises along a line.
fn growth_points(readings: &[MemoryReading]) -> Vec<(f64, f64)> {
    let served: Option<Vec<u64>> = readings.iter().map(|r| r.served_requests).collect();
    match served {
        Some(served)
            if served
                .last()
                .zip(served.first())
                .is_some_and(|(last, first)| {
                    last.saturating_sub(*first) >= MIN_READINGS as u64
                }) =>
        {
            served
                .iter()
                .zip(readings)
                .map(|(&count, r)| (count as f64, r.rss_bytes as f64))
                .collect()
        }
        _ => readings
            .iter()
            .map(|r| (r.at_ns as f64 / 1e9, r.rss_bytes as f64))
            .collect(),
    }
}

impl Growth {
    /// Fits a least-squares line to the readings' RSS (see [`growth_points`]).
    fn fit(readings: &[MemoryReading]) -> Option<Growth> {
        let (first, last) = (readings.first()?, readings.last()?);
        let points = growth_points(readings);
        let (slope, fit) = least_squares(&points)?;
        // The halves of the span (of time, or of requests) share the
        // reading nearest its middle.
        let half_way = (points[0].0 + points[points.len() - 1].0) / 2.0;
        let middle = (0..points.len())
            .min_by(|&a, &b| {
                let distance = |i: usize| (points[i].0 - half_way).abs();
                distance(a).total_cmp(&distance(b))
            })
            .unwrap_or(points.len() / 2);
        let steadiness = match (
            least_squares(&points[..=middle]),
            least_squares(&points[middle..]),
        ) {
            (Some((earlier, _)), Some((later, _))) if earlier > 0.0 => later / earlier,
            _ => 0.0,
        };
        let seconds = (last.at_ns - first.at_ns) as f64 / 1e9;
        let span = points.last().map_or(0.0, |p| p.0) - points.first().map_or(0.0, |p| p.0);
        let bytes = slope * span;
        Some(Growth {
            steadiness,
            bytes_per_second: if seconds > 0.0 { bytes / seconds } else { 0.0 },
            bytes,
            start_bytes: first.rss_bytes as f64,
            end_bytes: last.rss_bytes as f64,
            end_private_bytes: last.private_bytes as f64,
            fit,
            seconds,
            requests: ServedRequests::from_readings(readings).map(|served| served.count),
        })
    }

    /// The fitted rise per 1,000 requests served, in bytes.
    fn bytes_per_thousand_requests(&self) -> Option<f64> {
        let requests = self.requests.filter(|&n| n > 0)?;
        Some(self.bytes / requests as f64 * 1_000.0)
    }
}

/// How close to a process's last sample a fall in its memory is taken for
/// the program finishing: about one memory reading's interval.
const FINISHING_NS: u64 = 600_000_000;

/// The readings of `process` that show its program running: up to the end
/// of its threads' last sample with frames, and without a last reading,
/// within [`FINISHING_NS`] of that end, lower than the one before. A
/// program that finishes during the recording frees what it held (a
/// function's locals when it returns, every object as the interpreter
/// shuts down), and a reading taken then shows the end, not the program's
/// steady state.
fn while_running<'a>(profile: &Profile, process: &'a ProcessMeta) -> &'a [MemoryReading] {
    let last_python_ns = profile
        .runs()
        .filter(|run| {
            run.stack != RunStack::Stack(None) && profile.thread_info(run.thread).pid == process.pid
        })
        .map(|run| run.end_ns)
        .max();
    let Some(last_python_ns) = last_python_ns else {
        return &process.memory;
    };
    let mut kept = process
        .memory
        .iter()
        .take_while(|reading| reading.at_ns <= last_python_ns)
        .count();
    if let [.., before, last] = &process.memory[..kept] {
        if last.rss_bytes < before.rss_bytes && last.at_ns + FINISHING_NS > last_python_ns {
            kept -= 1;
        }
    }
    &process.memory[..kept]
}

impl Rule for MemoryGrowth {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.memory;
        let mut groups = GrowingGroups::new();
        for process in &context.profile.meta.processes {
            let readings = while_running(context.profile, process);
            if readings.len() < MIN_READINGS {
                continue;
            }
            let Some(growth) = Growth::fit(readings) else {
                continue;
            };

            let growing = growth.bytes >= config.min_growth_mib * MIB
                && growth.bytes >= config.min_growth_share * growth.start_bytes
                && growth.fit >= config.min_fit
                && growth.steadiness >= config.min_steadiness;
            if growing {
                groups
                    .entry((process.parent_pid, process.command.as_str()))
                    .or_default()
                    .push((process, growth));
            }
        }
        groups
            .into_iter()
            .map(|((parent, command), growing)| {
                let siblings = context
                    .profile
                    .meta
                    .processes
                    .iter()
                    .filter(|p| p.parent_pid == parent && p.command == command)
                    .count();
                finding(context, command, siblings, &growing)
            })
            .collect()
    }
}

/// The finding for the growing processes of one group.
fn finding(
    context: &Context<'_>,
    command: &str,
    siblings: usize,
    growing: &[(&ProcessMeta, Growth)],
) -> Finding {
    let per_minute = |g: &Growth| g.bytes_per_second * 60.0 / MIB;
    let mut rates: Vec<f64> = growing.iter().map(|(_, g)| per_minute(g)).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let mut per_thousand: Vec<f64> = growing
        .iter()
        .filter_map(|(_, g)| g.bytes_per_thousand_requests())
        .map(|bytes| bytes / MIB)
        .collect();
    per_thousand.sort_by(f64::total_cmp);
    let per_requests = if per_thousand.len() == growing.len() {
        format!(
            " ({:.2} MiB per 1,000 requests)",
            per_thousand[per_thousand.len() / 2]
        )
    } else {
        String::new()
    };
    let pids: Vec<u32> = growing.iter().map(|(p, _)| p.pid).collect();
    let handler = busiest_handler(context, &pids);
    let server = server_kind(command);
    let who = match (server, growing.len()) {
        (Some(server), 1) => format!("a {server} worker"),
        (Some(server), n) => format!("{n} of {siblings} {server} workers"),
        (None, 1) => format!("process {}", pids[0]),
        (None, n) => format!("{n} processes"),
    };
    let mut evidence: Vec<String> = growing
        .iter()
        .map(|(process, g)| {
            let per_requests = match (g.requests, g.bytes_per_thousand_requests()) {
                (Some(requests), Some(bytes)) => format!(
                    ", {:+.2} MiB per 1,000 requests ({requests} served)",
                    bytes / MIB
                ),
                _ => String::new(),
            };
            format!(
                "pid {}: RSS {:.1} → {:.1} MiB in {:.0} s, {:+.1} MiB/min{per_requests} (fit R² {:.2}); private {:.1} MiB at the end",
                process.pid,
                g.start_bytes / MIB,
                g.end_bytes / MIB,
                g.seconds,
                per_minute(g),
                g.fit,
                g.end_private_bytes / MIB,
            )
        })
        .collect();
    evidence.push(format!("command: {command}"));
    evidence.extend(handler_evidence(&handler));
    if growing.iter().all(|(_, g)| g.requests.is_none()) {
        evidence.push(
            "the server's request count could not be read (pydx reads gunicorn's and uvicorn's): \
             divide the rate per minute by the request rate for the growth per request"
                .to_string(),
        );
    }
    let stop_gap = match server {
        Some("gunicorn") if command.contains("max-requests") => {
            "Workers are already recycled with --max-requests; the leak is still there between recycles."
                .to_string()
        }
        Some("gunicorn") => {
            "Until it is fixed, recycle workers: gunicorn `--max-requests 1000 --max-requests-jitter 100` \
             (a stop-gap, not a cure)."
                .to_string()
        }
        Some("uvicorn") => {
            "Until it is fixed, recycle workers with uvicorn `--limit-max-requests 1000` (a stop-gap, \
             not a cure)."
                .to_string()
        }
        _ => String::new(),
    };
    let place = handler
        .as_ref()
        .map(|(l, _)| {
            format!(
                " Start with what `{}` at {}:{} keeps alive.",
                l.function, l.file, l.line
            )
        })
        .unwrap_or_default();
    let fix = format!(
        "Find what holds the memory: take two `tracemalloc` snapshots a few minutes apart and compare \
         them by line (`new.compare_to(old, \"lineno\")`), or run `memray attach {}` for a flame graph of \
         the live allocations. Look for module-level lists or dicts that only grow and caches without \
         a size limit.{place} {stop_gap}",
        pids[0]
    );
    Finding {
        code: DOCS.code,
        title: format!("memory of {who} grows by {median:.1} MiB/min{per_requests}"),
        severity: Severity::Warning,
        cost: Cost::default(),
        location: handler_or_command(handler, command, growing[0].0.cwd.as_deref()),
        stack: Vec::new(),
        evidence,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(rss_mib: impl Fn(u64) -> f64) -> Vec<MemoryReading> {
        (0..12)
            .map(|s| MemoryReading {
                at_ns: s * 1_000_000_000,
                rss_bytes: (rss_mib(s) * MIB) as u64,
                private_bytes: (rss_mib(s) * MIB / 2.0) as u64,
                served_requests: None,
                cpu_ns: None,
            })
            .collect()
    }

    #[test]
    fn a_steady_rise_fits_a_line() {
        let growth = Growth::fit(&readings(|s| 40.0 + s as f64)).unwrap();
        assert!((growth.bytes_per_second - MIB).abs() < 1.0);
        assert!((growth.bytes - 11.0 * MIB).abs() < 16.0);
        assert!(growth.fit > 0.999);
        assert!((growth.steadiness - 1.0).abs() < 1e-6);
        assert_eq!(growth.requests, None);
    }

    /// A worker warming up under its first requests: a fast rise that slows
    /// down (here 47.8 → 54.5 MiB in 11 s, settling with a 6 s time
    /// constant), which a line fits well (R² 0.94) but is not a leak.
    #[test]
    fn growth_that_slows_down_is_not_steady() {
        let warming = Growth::fit(&readings(|s| {
            47.8 + 8.0 * (1.0 - (-(s as f64) / 6.0).exp())
        }))
        .unwrap();
        assert!(warming.fit > 0.9, "R² {}", warming.fit);
        assert!(warming.bytes > 5.0 * MIB);
        assert!(warming.steadiness < 0.5, "{}", warming.steadiness);
        // A leak on top of a flat start still counts, as does a leak
        // speeding up.
        let leak =
            Growth::fit(&readings(|s| 40.0 + 2.0 * s as f64 + (s % 2) as f64 * 0.3)).unwrap();
        assert!(leak.steadiness > 0.8, "{}", leak.steadiness);
        let faster = Growth::fit(&readings(|s| 40.0 + 0.1 * (s * s) as f64)).unwrap();
        assert!(faster.steadiness > 1.0, "{}", faster.steadiness);
    }

    /// A worker keeping 20 KiB per request while its sibling takes the
    /// load in turns: over time it rises in steps (a poor line), over its
    /// requests along a line; warming up under its first requests still
    /// shows as slowing down.
    #[test]
    fn a_worker_served_in_bursts_is_fitted_over_its_requests() {
        // Requests served by each second: a burst, a long pause while the
        // sibling takes the load, another burst.
        let served = [
            0, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 8_000, 8_000, 8_000, 8_000,
        ];
        let per_request = 20.0 / 1024.0;
        let mut memory = readings(|s| 30.0 + served[s as usize] as f64 * per_request);
        for (reading, count) in memory.iter_mut().zip(served) {
            reading.served_requests = Some(count);
        }
        let over_time: Vec<(f64, f64)> = memory
            .iter()
            .map(|r| (r.at_ns as f64, r.rss_bytes as f64))
            .collect();
        assert!(least_squares(&over_time).unwrap().1 < 0.9);
        let growth = Growth::fit(&memory).unwrap();
        assert!(growth.fit > 0.999, "R² {}", growth.fit);
        assert!(
            (growth.steadiness - 1.0).abs() < 0.01,
            "{}",
            growth.steadiness
        );
        let per_thousand = growth.bytes_per_thousand_requests().unwrap() / MIB;
        assert!(
            (per_thousand - 1000.0 * per_request).abs() < 0.01,
            "{per_thousand}"
        );
        // 8,000 requests of 20 KiB over the 11 s between the readings.
        let per_minute = growth.bytes_per_second * 60.0 / MIB;
        assert!((per_minute - 8_000.0 * per_request / 11.0 * 60.0).abs() < 0.1);

        let mut warming = readings(|s| 47.8 + 8.0 * (1.0 - (-(s as f64) / 3.0).exp()));
        for (n, reading) in warming.iter_mut().enumerate() {
            reading.served_requests = Some(n as u64 * 100);
        }
        assert!(Growth::fit(&warming).unwrap().steadiness < 0.5);
    }

    #[test]
    fn growth_per_request_uses_the_server_count() {
        let mut memory = readings(|s| 40.0 + s as f64);
        for (n, reading) in memory.iter_mut().enumerate() {
            reading.served_requests = (n > 0).then_some(100 + 500 * n as u64);
        }
        let growth = Growth::fit(&memory).unwrap();
        assert_eq!(growth.requests, Some(5_000));
        let per_thousand = growth.bytes_per_thousand_requests().unwrap() / MIB;
        assert!((per_thousand - 11.0 / 5.0).abs() < 0.01, "{per_thousand}");
    }

    #[test]
    fn flat_noisy_and_one_step_memory_is_not_growth() {
        let flat = Growth::fit(&readings(|_| 40.0)).unwrap();
        assert_eq!(flat.bytes, 0.0);
        let noisy = Growth::fit(&readings(|s| 40.0 + if s % 2 == 0 { 3.0 } else { 0.0 })).unwrap();
        assert!(noisy.fit < 0.1);
        let step = Growth::fit(&readings(|s| if s < 6 { 40.0 } else { 48.0 })).unwrap();
        assert!(step.fit < 0.9, "a step fits a line with R² {}", step.fit);
    }

    #[test]
    fn readings_of_the_program_finishing_are_left_out() {
        use crate::test_support::add_at;
        use pydx_profile::{Activity, Meta};
        let mut profile = Profile::new(Meta::default());
        let frame = profile.frame("main", "/app/cache.py", 30, 20);
        let stack = profile.stack_from_root([frame]);
        let thread = profile.thread(7, 7, 1, Some("MainThread"));
        for s in 0..120 {
            add_at(
                &mut profile,
                s * 100_000_000,
                thread,
                stack,
                Activity::OnCpu,
            );
        }
        // Growing while the program runs (samples end at 12 s), freed as
        // it finishes, and read again as the interpreter shuts down.
        let mut memory = readings(|s| 40.0 + 5.0 * s as f64);
        for (at_ns, rss_mib) in [(11_800_000_000, 30.0), (12_500_000_000, 20.0)] {
            memory.push(MemoryReading {
                at_ns,
                rss_bytes: (rss_mib * MIB) as u64,
                private_bytes: (rss_mib * MIB / 2.0) as u64,
                served_requests: None,
                cpu_ns: None,
            });
        }
        let process = ProcessMeta {
            pid: 7,
            memory,
            ..ProcessMeta::default()
        };
        let kept = while_running(&profile, &process);
        assert_eq!(kept.len(), 12);
        assert!(Growth::fit(kept).unwrap().fit > 0.999);
        assert!(Growth::fit(&process.memory).unwrap().fit < 0.9);
        // A process with no sample keeps every reading.
        let other = ProcessMeta {
            pid: 8,
            ..process.clone()
        };
        assert_eq!(while_running(&profile, &other).len(), 14);
        // A fall earlier on is the program's.
        let mut fell_early = process.clone();
        fell_early.memory[5].rss_bytes = 0;
        fell_early.memory.truncate(12);
        assert_eq!(while_running(&profile, &fell_early).len(), 12);
    }
}
