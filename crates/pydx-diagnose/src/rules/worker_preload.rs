//! PYDX-WORKER003: gunicorn workers each holding a large private copy of
//! the app, without `--preload`.

use std::collections::HashMap;

use pydx_profile::{FrameId, MemoryReading, ProcessMeta};

use super::server_processes::{busiest_handler, handler_or_command, server_kind};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity};

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
    thresholds: "min_private_mib = 64: the median worker's smallest private memory reading once it \
                 has started (the second half of its readings: a worker may import the app after the \
                 recording began); at least two workers, none of whose resident memory grew by more than \
                 10% over those readings (that is PYDX-MEM001's) (the [workers] thresholds of pydx.toml).",
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

/// The readings once a worker has started: the second half of them (from
/// four readings on). A worker that imports the app after the recording
/// began builds its memory in the first readings; memory still rising in
/// the second half is PYDX-MEM001's.
fn settled(readings: &[MemoryReading]) -> &[MemoryReading] {
    if readings.len() >= 4 {
        &readings[readings.len() / 2..]
    } else {
        readings
    }
}

/// Where the workers built what they hold, if pydx saw them import the
/// app: the line of the program's module body (`<module>`) most often on
/// their stacks while they imported it.
fn import_line(context: &Context<'_>, pids: &[u32]) -> Option<Location> {
    let recorded = context.recorded;
    let mut lines: HashMap<FrameId, u64> = HashMap::new();
    for (key, count) in recorded.samples() {
        if !pids.contains(&recorded.thread_info(key.thread).pid) {
            continue;
        }
        let module_body = recorded
            .frames_innermost_first(key.stack)
            .into_iter()
            .find(|&f| {
                recorded.str(recorded.frame_info(f).function) == "<module>"
                    && context.is_user_frame(f)
            });
        if let Some(frame) = module_body {
            *lines.entry(frame).or_default() += count;
        }
    }
    let (&frame, _) = lines
        .iter()
        .max_by_key(|(f, n)| (**n, std::cmp::Reverse(**f)))?;
    Some(context.location(frame))
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
                // Memory that keeps growing once the workers have started is
                // not the app's footprint (PYDX-MEM001 speaks of it);
                // --preload would not share it.
                if workers.len() < 2 || workers.iter().any(|w| grows(settled(&w.memory))) {
                    return None;
                }
                let mut private: Vec<(u32, f64)> = workers
                    .iter()
                    .filter_map(|w| {
                        let least = settled(&w.memory).iter().map(|r| r.private_bytes).min()?;
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
                    // Where the copies are built, when the workers were seen
                    // importing the app; else the app's busiest handler.
                    location: import_line(context, &pids).unwrap_or_else(|| {
                        handler_or_command(handler, &master.command, master.cwd.as_deref())
                    }),
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
            cpu_ns: None,
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
