//! PYDX-WORKER001: gunicorn sync workers that are always busy, mostly
//! waiting on I/O.

use std::collections::HashMap;

use pydx_profile::FrameId;

use super::async_views_under_wsgi::serves_async_views;
use super::server_processes::{
    busiest_handler, handler_evidence, handler_or_command, option_value, saturated_sync_workers,
};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf, TimeUnit};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WORKER001",
    name: "sync-workers-waiting",
    summary: "Gunicorn sync workers are all busy, but mostly waiting on I/O: requests queue while CPUs idle",
    detects: "The workers of a gunicorn master (found through the process tree with --subprocesses) \
              run the sync worker class (seen in their stacks), spend nearly all their time serving \
              requests (so new requests wait in the listen queue), and spend most of that time \
              sleeping (on the database, an upstream HTTP service, a lock) rather than on a CPU.",
    why: "A sync worker serves one request at a time. When requests wait on I/O, the worker holds a \
          whole process hostage doing nothing: throughput is capped at workers ÷ request latency, and \
          latency grows with the queue, although the machine's CPUs are mostly idle.",
    example: "gunicorn --workers 2 app:app\n# each request waits 50 ms on an upstream service: \
              two workers serve at most 40 requests/s",
    fix: "Serve more requests per process while they wait: threaded workers (`--worker-class gthread \
          --threads 4..16`, with thread-safe code and a connection pool sized to the threads), or \
          gevent workers (`--worker-class gevent`, with monkey-patched I/O), or an ASGI app on uvicorn \
          workers with async drivers. More sync workers help too, at the cost of a process's memory \
          each.",
    thresholds: "min_busy_share = 0.8: in at least 80% of their samples the workers are busy with a \
                 connection rather than waiting in `SyncWorker.wait` for one (saturated); min_waiting_share = 0.5: at least half of the request time is spent \
                 off CPU. Gunicorn's own guidance: sync workers suit CPU-bound apps with short \
                 requests; I/O-bound apps want threads, greenlets or async workers. Workers that \
                 run async views through async_to_sync get PYDX-WORKER004 instead.",
};

/// PYDX-WORKER001.
pub struct SyncWorkersWaiting;

impl Rule for SyncWorkersWaiting {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.workers;
        saturated_sync_workers(context)
            .into_iter()
            .filter(|group| {
                group.waiting_share() >= config.min_waiting_share
                    && !serves_async_views(context, group)
            })
            .map(|group| {
                let workers = group.pids.len();
                let waiting = group.waiting_share();
                let handler = busiest_handler(context, &group.pids);
                let site = waiting_site(context, &group.pids);
                let threads = (workers * 4).clamp(4, 16);
                let mut evidence = vec![
                    format!(
                        "{workers} sync workers (pids {}) were busy with a connection in {:.0}% of their samples",
                        group
                            .pids
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        group.busy_share() * 100.0
                    ),
                    format!(
                        "{:.0}% of the request time was spent waiting off CPU, {:.0}% on a CPU",
                        waiting * 100.0,
                        (1.0 - waiting) * 100.0
                    ),
                    format!("command: {}", group.command),
                ];
                evidence.extend(handler_evidence(&handler));
                if let Some(site) = &site {
                    evidence.push(format!(
                        "the requests waited most in {} ({}:{})",
                        site.function, site.file, site.line
                    ));
                }
                let workers_option = option_value(&group.command, &["--workers", "-w"])
                    .map(|w| format!("--workers {w} "))
                    .unwrap_or_default();
                let fix = format!(
                    "Let each worker serve several requests while they wait: run gunicorn with \
                     `{workers_option}--worker-class gthread --threads {threads}` (the code must be \
                     thread-safe and database pools sized for the threads), or gevent workers \
                     (`--worker-class gevent`) if the drivers cooperate with gevent. With {:.0}% of \
                     request time spent waiting, each worker's CPU is idle most of the time; adding \
                     sync workers also helps but costs a process's memory each.",
                    waiting * 100.0
                );
                let seconds = (group.request_samples - group.request_busy_samples) as f64
                    * context.interval_seconds();
                Finding {
                    code: DOCS.code,
                    title: format!(
                        "{workers} gunicorn sync workers are saturated but wait on I/O {:.0}% of the time",
                        waiting * 100.0
                    ),
                    severity: Severity::for_share(waiting * group.busy_share()),
                    cost: Cost {
                        share: waiting * group.busy_share(),
            share_of: ShareOf::WorkerTime,
            unit: TimeUnit::ThreadSeconds,
                        seconds,
                        cpu_seconds: 0.0,
                        longest_ms: None,
                        occurrences: None,
                    },
                    location: site.unwrap_or_else(|| {
                        handler_or_command(handler, &group.command, group.cwd.as_deref())
                    }),
                    stack: Vec::new(),
                    evidence,
                    fix,
                }
            })
            .collect()
    }
}

/// Where the workers' requests waited: the program's own line, innermost
/// on the stack, seen most often in samples of a worker serving a request
/// off CPU (the call that waits on the network or a database). That is
/// the code the fix lets run concurrently.
fn waiting_site(context: &Context<'_>, pids: &[u32]) -> Option<Location> {
    let profile = context.profile;
    let mut sites: HashMap<FrameId, u64> = HashMap::new();
    for (key, count) in profile.samples() {
        if !pids.contains(&profile.thread_info(key.thread).pid)
            || profile.endpoint(key.labels).is_none()
            || key.state.activity.is_busy()
        {
            continue;
        }
        let innermost_user = profile
            .frames_innermost_first(key.stack)
            .into_iter()
            .find(|&f| context.is_user_frame(f));
        if let Some(frame) = innermost_user {
            *sites.entry(frame).or_default() += count;
        }
    }
    let (&frame, _) = sites
        .iter()
        .max_by_key(|(frame, n)| (**n, std::cmp::Reverse(**frame)))?;
    Some(context.location(frame))
}
