//! PYDX-WORKER002: CPU-bound gunicorn workers whose number does not fit
//! the CPUs.

use super::server_processes::{
    busiest_handler, handler_evidence, handler_or_command, saturated_sync_workers,
};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WORKER002",
    name: "worker-count",
    summary: "Saturated CPU-bound gunicorn workers, fewer than the CPUs or far more than 2 × CPUs + 1",
    detects: "The sync workers of a gunicorn master serve requests nearly all the time, mostly on a \
              CPU, and their number is below the CPUs the server may use (affinity and cgroup quota \
              of the master, so containers count right) or above gunicorn's rule of thumb of \
              (2 × CPUs) + 1.",
    why: "A sync worker runs Python on one CPU at a time. With fewer workers than CPUs, requests \
          queue while CPUs sit idle; with many more than 2 × CPUs + 1, the workers only take turns \
          on the CPUs, each costing its own memory, and latency rises with the context switches.",
    example: "gunicorn --workers 1 app:app   # on a 4-CPU machine, CPU-bound requests",
    fix: "Set `--workers` to between the number of CPUs and (2 × CPUs) + 1 (gunicorn's documented \
          starting point), then measure; for CPU-heavy endpoints also consider moving the work out \
          of the request (a task queue) or into native code.",
    thresholds: "min_busy_share = 0.8 of the workers' samples busy with a connection; min_cpu_share = 0.6 of \
                 the request samples on a CPU (the [workers] thresholds of pydx.toml); the worker \
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
        let recommended_max = (2.0 * cpus).floor() as usize + 1;
        let usable_cpus = cpus.floor().max(1.0) as usize;
        saturated_sync_workers(context)
            .into_iter()
            .filter(|group| 1.0 - group.waiting_share() >= config.min_cpu_share)
            .filter_map(|group| {
                let workers = group.pids.len();
                let (title, advice) = if workers < usable_cpus {
                    (
                        format!(
                            "{workers} CPU-bound gunicorn worker{} for {usable_cpus} CPUs: requests queue while CPUs idle",
                            if workers == 1 { "" } else { "s" }
                        ),
                        format!(
                            "Run at least {usable_cpus} workers, up to {recommended_max} \
                             ((2 × CPUs) + 1): `--workers {}`.",
                            (usable_cpus + 1).min(recommended_max)
                        ),
                    )
                } else if workers > recommended_max {
                    (
                        format!(
                            "{workers} CPU-bound gunicorn workers for {usable_cpus} CPUs: they take turns on the CPUs"
                        ),
                        format!(
                            "Run at most {recommended_max} workers ((2 × CPUs) + 1): `--workers \
                             {recommended_max}`; the others only add memory and context switches."
                        ),
                    )
                } else {
                    return None;
                };
                let on_cpu = 1.0 - group.waiting_share();
                let handler = busiest_handler(context, &group.pids);
                let mut evidence = vec![
                    format!(
                        "{workers} sync workers were busy with a connection in {:.0}% of their samples; requests ran on a CPU {:.0}% of the time",
                        group.busy_share() * 100.0,
                        on_cpu * 100.0
                    ),
                    format!("CPUs available to the server: {cpus}"),
                    format!("command: {}", group.command),
                ];
                evidence.extend(handler_evidence(&handler));
                let share = group.busy_share() * on_cpu;
                Some(Finding {
                    code: DOCS.code,
                    title,
                    severity: Severity::Warning,
                    cost: Cost {
                        share,
                        seconds: group.request_busy_samples as f64 * context.interval_seconds(),
                        cpu_seconds: group.request_busy_samples as f64
                            * context.interval_seconds(),
                        longest_ms: None,
                        occurrences: None,
                    },
                    location: handler_or_command(handler, &group.command, group.cwd.as_deref()),
                    stack: Vec::new(),
                    evidence,
                    fix: format!(
                        "{advice} Gunicorn suggests (2 × CPUs) + 1 as the starting point, then \
                         measuring under real load."
                    ),
                })
            })
            .collect()
    }
}
