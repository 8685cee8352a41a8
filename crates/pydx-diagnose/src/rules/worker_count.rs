//! PYDX-WORKER002: CPU-bound gunicorn workers whose number does not fit
//! the CPUs.

use pydx_libraries::Role;

use super::server_processes::{
    busiest_handler, handler_evidence, handler_or_command, saturated_sync_workers, server_kind,
};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity, ShareOf};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WORKER002",
    name: "worker-count",
    summary: "Saturated CPU-bound gunicorn or uvicorn workers, fewer than the CPUs or far more than 2 × CPUs + 1",
    detects: "The sync workers of a gunicorn master serve requests nearly all the time, mostly on a \
              CPU, or the event loops of a uvicorn master's workers (`uvicorn --workers N`) run on a \
              CPU nearly all the time, and their number is below the CPUs the server may use (affinity and cgroup quota \
              of the master, so containers count right) or above gunicorn's rule of thumb of \
              (2 × CPUs) + 1.",
    why: "A sync worker, like an event loop, runs Python on one CPU at a time. With fewer workers than CPUs, requests \
          queue while CPUs sit idle; with many more than 2 × CPUs + 1, the workers only take turns \
          on the CPUs, each costing its own memory, and latency rises with the context switches.",
    example: "gunicorn --workers 1 app:app   # on a 4-CPU machine, CPU-bound requests",
    fix: "Set `--workers` to between the number of CPUs and (2 × CPUs) + 1 (gunicorn's documented \
          starting point), then measure; for CPU-heavy endpoints also consider moving the work out \
          of the request (a task queue) or into native code.",
    thresholds: "min_busy_share = 0.8 of the workers' samples busy with a connection (gunicorn) or of \
                 the event loops' samples on a CPU (uvicorn); min_cpu_share = 0.6 of the gunicorn \
                 request samples on a CPU (the [workers] thresholds of pydx.toml); the worker \
                 count is compared with the CPUs recorded with the profile. Source: gunicorn's \
                 design notes, \"(2 x $num_cores) + 1\".",
};

/// PYDX-WORKER002.
pub struct WorkerCount;

impl Rule for WorkerCount {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.workers;
        let Some(cpus) = context.profile.meta.cpus else {
            return Vec::new();
        };
        let gunicorn = saturated_sync_workers(context)
            .into_iter()
            .filter(|group| 1.0 - group.waiting_share() >= config.min_cpu_share)
            .map(|group| {
                let on_cpu = 1.0 - group.waiting_share();
                Pool {
                    server: "gunicorn",
                    busy: format!(
                        "{} sync workers were busy with a connection in {:.0}% of their samples; \
                         requests ran on a CPU {:.0}% of the time",
                        group.pids.len(),
                        group.busy_share() * 100.0,
                        on_cpu * 100.0
                    ),
                    share: group.busy_share() * on_cpu,
                    busy_samples: group.request_busy_samples,
                    command: group.command,
                    cwd: group.cwd,
                    pids: group.pids,
                }
            });
        let uvicorn = uvicorn_workers(context)
            .into_iter()
            .filter(|pool| pool.share >= config.min_busy_share);
        gunicorn
            .chain(uvicorn)
            .filter_map(|pool| finding(context, cpus, pool))
            .collect()
    }
}

/// Worker processes of one server, CPU-bound and saturated.
struct Pool {
    /// `gunicorn` or `uvicorn`.
    server: &'static str,
    /// The evidence that they are busy on a CPU.
    busy: String,
    /// The share of the workers' time busy on a CPU.
    share: f64,
    /// Samples busy on a CPU.
    busy_samples: u64,
    /// The master's command line and working directory.
    command: String,
    cwd: Option<String>,
    /// The workers.
    pids: Vec<u32>,
}

/// The worker processes of each uvicorn master (`uvicorn --workers N`),
/// with the share of their event loops' samples on a CPU.
fn uvicorn_workers(context: &Context<'_>) -> Vec<Pool> {
    let profile = context.profile;
    let processes = &profile.meta.processes;
    processes
        .iter()
        .filter(|master| server_kind(&master.command) == Some("uvicorn"))
        .filter_map(|master| {
            // `uvicorn --workers 1` (the default) serves from the master.
            let mut pids: Vec<u32> = processes
                .iter()
                .filter(|p| p.parent_pid == Some(master.pid))
                .map(|p| p.pid)
                .collect();
            if pids.is_empty() {
                pids.push(master.pid);
            }
            let (mut loop_samples, mut on_cpu) = (0u64, 0u64);
            for (key, count) in profile.samples() {
                if !pids.contains(&profile.thread_info(key.thread).pid) {
                    continue;
                }
                let runs_loop = profile
                    .frames_innermost_first(key.stack)
                    .iter()
                    .any(|&f| context.plays(f, Role::EventLoopRun));
                if runs_loop {
                    loop_samples += count;
                    if key.state.activity.is_busy() {
                        on_cpu += count;
                    }
                }
            }
            if loop_samples < Context::MIN_CPU_SAMPLES {
                return None;
            }
            let share = on_cpu as f64 / loop_samples as f64;
            Some(Pool {
                server: "uvicorn",
                busy: format!(
                    "{} workers' event loops were running on a CPU in {:.0}% of their samples \
                     (waiting for I/O the rest)",
                    pids.len(),
                    share * 100.0
                ),
                share,
                busy_samples: on_cpu,
                command: master.command.clone(),
                cwd: master.cwd.clone(),
                pids,
            })
        })
        .collect()
}

/// The finding for a pool whose worker count does not fit `cpus`.
fn finding(context: &Context<'_>, cpus: f64, pool: Pool) -> Option<Finding> {
    let recommended_max = (2.0 * cpus).floor() as usize + 1;
    let usable_cpus = cpus.floor().max(1.0) as usize;
    let workers = pool.pids.len();
    let server = pool.server;
    let (title, advice) = if workers < usable_cpus {
        (
            format!(
                "{workers} CPU-bound {server} worker{} for {usable_cpus} CPUs: requests queue while CPUs idle",
                if workers == 1 { "" } else { "s" }
            ),
            format!(
                "Run at least {usable_cpus} workers, up to {recommended_max} ((2 × CPUs) + 1): \
                 `--workers {}`.",
                (usable_cpus + 1).min(recommended_max)
            ),
        )
    } else if workers > recommended_max {
        (
            format!(
                "{workers} CPU-bound {server} workers for {usable_cpus} CPUs: they take turns on the CPUs"
            ),
            format!(
                "Run at most {recommended_max} workers ((2 × CPUs) + 1): `--workers \
                 {recommended_max}`; the others only add memory and context switches."
            ),
        )
    } else {
        return None;
    };
    let handler = busiest_handler(context, &pool.pids);
    let mut evidence = vec![
        pool.busy.clone(),
        format!("CPUs available to the server: {cpus}"),
        format!("command: {}", pool.command),
    ];
    evidence.extend(handler_evidence(&handler));
    let seconds = pool.busy_samples as f64 * context.interval_seconds();
    Some(Finding {
        code: DOCS.code,
        title,
        severity: Severity::Warning,
        cost: Cost::on_cpu(pool.share, ShareOf::WorkerTime, seconds),
        location: handler_or_command(handler, &pool.command, pool.cwd.as_deref()),
        stack: Vec::new(),
        evidence,
        fix: format!(
            "{advice} Gunicorn's documentation suggests (2 × CPUs) + 1 as the starting point, then \
             measuring under real load."
        ),
    })
}
