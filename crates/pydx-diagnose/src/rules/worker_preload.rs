//! PYDX-WORKER003: gunicorn workers each holding a large private copy of
//! the app, without `--preload`.

use pydx_profile::{MemoryReading, ProcessMeta};

use super::server_processes::{busiest_handler, handler_or_command, server_kind};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity};

const MIB: f64 = 1024.0 * 1024.0;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WORKER003",
    name: "worker-private-memory",
    summary: "Every gunicorn worker holds a large private copy of the app: --preload would share it",
    detects: "The workers of a gunicorn master started without `--preload` (so each worker imports \
              the app itself) each keep a large amount of private memory (resident pages shared with \
              no other process, read from /proc/PID/smaps_rollup while sampling).",
    why: "Without --preload, every worker builds its own copy of everything the app creates at import \
          (modules, lookup tables, models loaded into memory): the server needs workers × that much \
          memory, which limits how many workers fit on the machine. With --preload the master builds \
          it once and the forked workers share its pages copy-on-write.",
    example: "gunicorn --workers 4 app:app\n# app.py loads a 100 MB lookup table at import: 400 MB in all",
    fix: "Start gunicorn with `--preload` (or `preload_app = True`). Open database connections and \
          threads after the fork, not at import (gunicorn's `post_fork` hook), since forked workers must \
          not share them. CPython's reference counting writes to objects it touches, which copies their \
          pages over time; `gc.freeze()` at the end of the import (Python 3.7+) keeps the garbage \
          collector from touching them. Code changes then need a master restart rather than `HUP`.",
    thresholds: "min_private_mib = 64: the median worker's smallest private memory reading; at least \
                 two workers, none of whose resident memory grew by more than 10% while sampled (that \
                 is PYDX-MEM001's) (the [workers] thresholds of pydx.toml).",
};

/// PYDX-WORKER003.
pub struct WorkerPreload;

/// Resident memory rising by more than this share between the first and the
/// last reading counts as growing.
const GROWING_SHARE: f64 = 0.10;

/// Whether the readings' resident memory grew while sampled.
fn grows(readings: &[MemoryReading]) -> bool {
    match (readings.first(), readings.last()) {
        (Some(first), Some(last)) => {
            last.rss_bytes as f64 > first.rss_bytes as f64 * (1.0 + GROWING_SHARE)
        }
        _ => false,
    }
}

impl Rule for WorkerPreload {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.workers;
        let processes = &context.profile.meta.processes;
        processes
            .iter()
            .filter(|master| {
                server_kind(&master.command) == Some("gunicorn")
                    && !master.command.contains("--preload")
            })
            .filter_map(|master| {
                let workers: Vec<&ProcessMeta> = processes
                    .iter()
                    .filter(|p| p.parent_pid == Some(master.pid) && !p.memory.is_empty())
                    .collect();
                // Memory that grows while sampled is not the app's footprint
                // (PYDX-MEM001 speaks of it); --preload would not share it.
                if workers.len() < 2 || workers.iter().any(|w| grows(&w.memory)) {
                    return None;
                }
                let mut private: Vec<(u32, f64)> = workers
                    .iter()
                    .filter_map(|w| {
                        let least = w.memory.iter().map(|r| r.private_bytes).min()?;
                        Some((w.pid, least as f64))
                    })
                    .collect();
                private.sort_by(|a, b| a.1.total_cmp(&b.1));
                let median = private[private.len() / 2].1;
                if median < config.min_private_mib * MIB {
                    return None;
                }
                let total: f64 = private.iter().map(|(_, bytes)| bytes).sum();
                let pids: Vec<u32> = private.iter().map(|(pid, _)| *pid).collect();
                let handler = busiest_handler(context, &pids);
                let workers = private.len();
                let evidence = vec![
                    format!(
                        "{workers} workers of gunicorn {} hold {:.0} MiB of private memory each (median), \
                         {:.0} MiB in all",
                        master.pid,
                        median / MIB,
                        total / MIB
                    ),
                    format!(
                        "per worker: {}",
                        private
                            .iter()
                            .map(|(pid, bytes)| format!("pid {pid} {:.0} MiB", bytes / MIB))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!("command (no --preload): {}", master.command),
                    "private memory counts pages no other process shares; memory built at import is \
                     private in every worker when each worker imports the app itself"
                        .to_string(),
                ];
                Some(Finding {
                    code: DOCS.code,
                    title: format!(
                        "{workers} gunicorn workers each hold {:.0} MiB of private memory; --preload would share the app's",
                        median / MIB
                    ),
                    severity: Severity::Warning,
                    cost: Cost::default(),
                    location: handler_or_command(handler, &master.command, master.cwd.as_deref()),
                    stack: Vec::new(),
                    evidence,
                    fix: format!(
                        "Add `--preload` to the gunicorn command so that the master imports the app once \
                         and the {workers} workers share its memory copy-on-write instead of holding \
                         {:.0} MiB each. Open connections after the fork (a `post_fork` hook), and call \
                         `gc.freeze()` after the app is loaded so that the garbage collector does not \
                         copy the shared pages back.",
                        median / MIB
                    ),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rss_mib: u64) -> MemoryReading {
        MemoryReading {
            at_ns: 0,
            rss_bytes: rss_mib << 20,
            private_bytes: rss_mib << 19,
            served_requests: None,
        }
    }

    #[test]
    fn growth_beyond_a_tenth_is_not_a_footprint() {
        assert!(grows(&[reading(100), reading(105), reading(120)]));
        assert!(!grows(&[reading(100), reading(108)]));
        assert!(!grows(&[reading(100)]));
        assert!(!grows(&[]));
    }
}
