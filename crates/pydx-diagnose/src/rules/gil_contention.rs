//! PYDX-GIL001: CPU-bound Python threads taking turns on the GIL.

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{Activity, FrameId, ThreadId};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity};

/// A thread counts as contending once this share of its busy samples were
/// spent waiting for the GIL.
const CONTENDING_WAIT_SHARE: f64 = 0.05;
/// Fewest busy samples (on CPU or waiting for the GIL) a thread needs to count.
const MIN_BUSY_SAMPLES: u64 = 10;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-GIL001",
    name: "gil-contention",
    summary: "CPU-bound Python threads take turns on the GIL instead of running in parallel",
    detects: "Threads of one process that spend a large share of their time blocked waiting for the GIL \
              while another thread of the process holds it. pydx tells a GIL wait from any other wait by \
              the futex the sleeping thread is blocked on (read from /proc/PID/task/TID/syscall), which \
              lies inside the interpreter's GIL state; frame names are not used.",
    why: "Only the thread holding the GIL runs Python code. Several CPU-bound threads therefore run no \
          faster than one, and every thread, including those serving requests, queues behind them.",
    example: "threads = [threading.Thread(target=price_orders, args=(chunk,)) for chunk in chunks]\n\
              # price_orders loops over orders in pure Python: four threads, one core's worth of work",
    fix: "Run CPU-bound work in processes (concurrent.futures.ProcessPoolExecutor, multiprocessing.Pool, \
          or more worker processes), or move the hot loop into native code that releases the GIL \
          (NumPy, Cython `with nogil`, a PyO3 function using `allow_threads`). A free-threaded build \
          (python3.13t and later) removes the GIL altogether.",
    thresholds: "min_threads = 2: at least two threads must wait for the GIL; min_wait_share = 0.20: \
                 those threads spend at least 20% of their busy time waiting for it. A thread counts as \
                 waiting from 5% of its busy samples. CPython asks the holder to drop the GIL every \
                 5 ms (sys.getswitchinterval()), so contending threads show waits within a few samples.",
};

/// PYDX-GIL001.
pub struct GilContention;

/// Per-thread counts of busy samples.
#[derive(Default)]
struct ThreadBusy {
    on_cpu: u64,
    gil_wait: u64,
}

impl Rule for GilContention {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let profile = context.profile;
        let config = &context.config.gil;
        let mut threads: BTreeMap<ThreadId, ThreadBusy> = BTreeMap::new();
        for (key, count) in profile.samples() {
            let busy = threads.entry(key.thread).or_default();
            match key.state.activity {
                Activity::OnCpu => busy.on_cpu += count,
                Activity::GilWait => busy.gil_wait += count,
                _ => {}
            }
        }
        let mut by_process: BTreeMap<u32, Vec<(ThreadId, ThreadBusy)>> = BTreeMap::new();
        for (thread, busy) in threads {
            let total = busy.on_cpu + busy.gil_wait;
            if total >= MIN_BUSY_SAMPLES
                && busy.gil_wait as f64 >= total as f64 * CONTENDING_WAIT_SHARE
            {
                by_process
                    .entry(profile.thread_info(thread).pid)
                    .or_default()
                    .push((thread, busy));
            }
        }
        let mut findings = Vec::new();
        for (pid, contending) in by_process {
            if contending.len() < config.min_threads {
                continue;
            }
            let waited: u64 = contending.iter().map(|(_, b)| b.gil_wait).sum();
            let busy: u64 = contending.iter().map(|(_, b)| b.on_cpu + b.gil_wait).sum();
            let wait_share = waited as f64 / busy as f64;
            if wait_share < config.min_wait_share {
                continue;
            }
            findings.extend(self.finding(context, pid, &contending, waited, busy));
        }
        findings
    }
}

impl GilContention {
    fn finding(
        &self,
        context: &Context<'_>,
        pid: u32,
        contending: &[(ThreadId, ThreadBusy)],
        waited: u64,
        busy: u64,
    ) -> Option<Finding> {
        let profile = context.profile;
        let threads: Vec<ThreadId> = contending.iter().map(|(t, _)| *t).collect();
        // Where the contending threads run while they hold the GIL.
        let mut holder_frames: HashMap<FrameId, u64> = HashMap::new();
        let mut holder_samples = 0;
        for (key, count) in profile.samples() {
            if !threads.contains(&key.thread)
                || key.state.activity != Activity::OnCpu
                || !key.state.holds_gil
            {
                continue;
            }
            holder_samples += count;
            if let Some(frame) = context.innermost_user_frame(key.stack) {
                *holder_frames.entry(frame).or_insert(0) += count;
            }
        }
        let (&hot_frame, &hot_count) = holder_frames
            .iter()
            .max_by_key(|&(f, n)| (*n, std::cmp::Reverse(*f)))?;
        let hot_stack = profile
            .samples()
            .filter(|(key, _)| {
                threads.contains(&key.thread) && key.state.activity == Activity::OnCpu
            })
            .filter(|(key, _)| context.innermost_user_frame(key.stack) == Some(hot_frame))
            .max_by_key(|(key, count)| (*count, std::cmp::Reverse(**key)))
            .and_then(|(key, _)| key.stack);
        let interval = context.interval_seconds();
        let wait_share = waited as f64 / busy as f64;
        let location = context.location(hot_frame);
        let mut evidence = vec![format!(
            "{} threads of process {pid} wanted the GIL at the same time and spent {:.0}% of their busy time \
             waiting for it ({:.2} s of {:.2} s)",
            contending.len(),
            wait_share * 100.0,
            waited as f64 * interval,
            busy as f64 * interval
        )];
        for (thread, counts) in contending {
            let total = (counts.on_cpu + counts.gil_wait) as f64;
            evidence.push(format!(
                "{}: waiting for the GIL {:.0}% of its busy time, running {:.0}%",
                profile.thread_label(*thread),
                counts.gil_wait as f64 / total * 100.0,
                counts.on_cpu as f64 / total * 100.0
            ));
        }
        evidence.push(format!(
            "while holding the GIL they ran {} ({}:{}) {:.0}% of the time: pure Python that keeps the GIL",
            location.function,
            location.file,
            location.line,
            hot_count as f64 / holder_samples.max(1) as f64 * 100.0
        ));
        let fix = format!(
            "`{function}` ({file}:{line}) is CPU-bound Python run by {count} threads, which take turns on the \
             GIL and so run no faster than one. Run it in processes instead: submit the work to a \
             `concurrent.futures.ProcessPoolExecutor` (or a `multiprocessing.Pool`, or more worker \
             processes) in place of the threads. If the loop can be vectorised with NumPy or moved to a \
             native extension that releases the GIL (Cython `with nogil`, PyO3 `allow_threads`), the \
             threads can run in parallel as they are. A free-threaded CPython (3.13t and later) also \
             removes the contention.",
            function = location.function,
            file = location.file,
            line = location.line,
            count = contending.len()
        );
        Some(Finding {
            code: DOCS.code,
            title: format!(
                "{} threads contend for the GIL in {} ({:.0}% of their time waiting)",
                contending.len(),
                location.function,
                wait_share * 100.0
            ),
            severity: Severity::for_share(wait_share),
            cost: Cost {
                share: wait_share,
                seconds: waited as f64 * interval,
                cpu_seconds: 0.0,
                longest_ms: None,
                occurrences: None,
            },
            stack: context.stack_text(hot_stack),
            location,
            evidence,
            fix,
        })
    }
}
