//! PYDX-GIL001: CPU-bound Python threads taking turns on the GIL.

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{Activity, CodeKind, FrameId, ThreadId};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity, ShareOf, TimeUnit};

/// A thread counts as contending once this share of its busy samples were
/// spent waiting for the GIL.
const CONTENDING_WAIT_SHARE: f64 = 0.05;
/// Fewest busy samples (on CPU or waiting for the GIL) a thread needs to count.
const MIN_BUSY_SAMPLES: u64 = 10;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-GIL001",
    name: "gil-contention",
    summary: "CPU-bound Python threads take turns on the GIL instead of running in parallel",
    detects: "Threads of one process that run Python on a CPU and spend a large share of their busy time \
              blocked waiting for the GIL. pydx tells a GIL wait from any other wait by the futex the \
              sleeping thread is blocked on (read from /proc/PID/task/TID/syscall), which lies inside the \
              interpreter's GIL state; frame names are not used. When one thread that hardly waits holds \
              the GIL most of the time (a long `sorted`, `json.dumps` or regular expression keeps it), \
              the finding names that thread and its code, the holder, instead of the waiters. Threads \
              that only wake briefly (queue consumers, pollers) and samples taken while modules are \
              imported do not count.",
    why: "Only the thread holding the GIL runs Python code. Several CPU-bound threads therefore run no \
          faster than one, and every thread, including those serving requests, queues behind them.",
    example: "threads = [threading.Thread(target=price_orders, args=(chunk,)) for chunk in chunks]\n\
              # price_orders loops over orders in pure Python: four threads, one core's worth of work",
    fix: "Run CPU-bound work in processes (concurrent.futures.ProcessPoolExecutor, multiprocessing.Pool, \
          or more worker processes), or move the hot loop into native code that releases the GIL \
          (NumPy, Cython `with nogil`, a PyO3 function using `allow_threads`). A free-threaded build \
          (python3.13t and later) removes the GIL altogether. When one holder keeps the GIL, move its \
          work to a process or split it into smaller pieces.",
    thresholds: "min_threads = 2: at least two CPU-bound threads must wait for the GIL; min_wait_share = \
                 0.20: they spend at least 20% of their busy time waiting for it; a thread counts from 5% \
                 of its busy samples waiting, and as CPU-bound when it also runs Python code holding the GIL \
                 min_running_share = 0.10 of its busy time and min_running_seconds = 0.2 s in all (a \
                 thread that only wakes now and then, takes the GIL and sleeps again, is not, however \
                 long it waits for the GIL once awake; on a loaded machine such threads also show as \
                 running while they wait for a CPU, which holding the GIL tells apart). CPython asks the holder to drop \
                 the GIL every 5 ms (sys.getswitchinterval()), so contending threads show waits within a \
                 few samples.",
};

/// PYDX-GIL001.
pub struct GilContention;

/// Per-thread counts of busy samples.
#[derive(Default, Clone, Copy)]
struct ThreadBusy {
    on_cpu: u64,
    gil_wait: u64,
    /// On-CPU samples in which the thread held the GIL.
    holding: u64,
}

impl ThreadBusy {
    fn busy(&self) -> u64 {
        self.on_cpu + self.gil_wait
    }

    fn wait_share(&self) -> f64 {
        self.gil_wait as f64 / self.busy().max(1) as f64
    }
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
                // A thread waiting for a CPU was running and will run again:
                // busy, and still holding the GIL if it held it.
                Activity::OnCpu | Activity::CpuWait => {
                    busy.on_cpu += count;
                    if key.state.holds_gil {
                        busy.holding += count;
                    }
                }
                Activity::GilWait => busy.gil_wait += count,
                _ => {}
            }
        }
        let interval = context.interval_seconds();
        let mut by_process: BTreeMap<u32, Vec<(ThreadId, ThreadBusy)>> = BTreeMap::new();
        for (&thread, &busy) in &threads {
            by_process
                .entry(profile.thread_info(thread).pid)
                .or_default()
                .push((thread, busy));
        }
        let mut findings = Vec::new();
        for (pid, all) in by_process {
            let contending: Vec<(ThreadId, ThreadBusy)> = all
                .iter()
                .filter(|(_, b)| {
                    b.busy() >= MIN_BUSY_SAMPLES
                        && b.wait_share() >= CONTENDING_WAIT_SHARE
                        && b.holding as f64 >= b.busy() as f64 * config.min_running_share
                        && b.holding as f64 * interval >= config.min_running_seconds
                })
                .copied()
                .collect();
            let holder = holder(&all, &contending);
            let waiters: Vec<(ThreadId, ThreadBusy)> = contending
                .into_iter()
                .filter(|(thread, _)| Some(*thread) != holder)
                .collect();
            // At least two CPU-bound threads wait, holder or not: one thread
            // now and then held up behind a busy one is not contention.
            if waiters.len() < config.min_threads {
                continue;
            }
            let waited: u64 = waiters.iter().map(|(_, b)| b.gil_wait).sum();
            let busy: u64 = waiters.iter().map(|(_, b)| b.busy()).sum();
            let wait_share = waited as f64 / busy as f64;
            if wait_share < config.min_wait_share {
                continue;
            }
            let contention = Contention {
                pid,
                holder,
                waiters,
                waited,
                busy,
            };
            findings.extend(self.finding(context, &contention));
        }
        findings
    }
}

/// Threads of one process found contending for the GIL.
struct Contention {
    pid: u32,
    /// CPU-bound threads that waited for the GIL (the holder aside).
    waiters: Vec<(ThreadId, ThreadBusy)>,
    /// A thread that held the GIL longer than all the waiters together
    /// while hardly waiting for it itself, if there is one.
    holder: Option<ThreadId>,
    /// Their GIL-wait samples.
    waited: u64,
    /// Their busy samples.
    busy: u64,
}

/// The thread that kept the GIL from the contending threads, if one did:
/// it held the GIL in more samples than all the others together and waited
/// for it less than half as much as any of them.
fn holder(
    all: &[(ThreadId, ThreadBusy)],
    contending: &[(ThreadId, ThreadBusy)],
) -> Option<ThreadId> {
    let (thread, busy) = all
        .iter()
        .max_by_key(|(thread, busy)| (busy.holding, std::cmp::Reverse(*thread)))?;
    let others = || contending.iter().filter(|(t, _)| t != thread);
    let held_by_others: u64 = others().map(|(_, b)| b.holding).sum();
    let waits_less = others().all(|(_, b)| busy.wait_share() < b.wait_share() / 2.0);
    (others().next().is_some() && waits_less && busy.holding > held_by_others).then_some(*thread)
}

impl GilContention {
    fn finding(&self, context: &Context<'_>, contention: &Contention) -> Option<Finding> {
        let profile = context.profile;
        let Contention {
            pid,
            holder,
            waiters,
            waited,
            busy,
        } = contention;
        // Whose GIL-holding code the finding is about: the holder's, or
        // else the contending threads' own.
        let running: Vec<ThreadId> = match holder {
            Some(thread) => vec![*thread],
            None => waiters.iter().map(|(t, _)| *t).collect(),
        };
        let mut holding_frames: HashMap<FrameId, u64> = HashMap::new();
        // Where the threads' own code hands out that work: the outermost
        // frame of the program's code on their stacks.
        let mut calling_frames: HashMap<FrameId, u64> = HashMap::new();
        // With native frames (`--native`): the native function innermost
        // while the GIL was held.
        let mut native_frames: HashMap<FrameId, u64> = HashMap::new();
        let mut holding_samples = 0;
        for (key, count) in profile.samples() {
            if !running.contains(&key.thread)
                || key.state.activity != Activity::OnCpu
                || !key.state.holds_gil
            {
                continue;
            }
            holding_samples += count;
            if let Some(frame) = context.innermost_user_frame(key.stack) {
                *holding_frames.entry(frame).or_insert(0) += count;
            }
            let frames = profile.frames_root_first(key.stack);
            if let Some(&frame) = frames.iter().find(|&&f| context.is_user_frame(f)) {
                *calling_frames.entry(frame).or_insert(0) += count;
            }
            if let Some(&innermost) = frames.last() {
                if CodeKind::of(context.file(innermost)) == CodeKind::Native {
                    *native_frames.entry(innermost).or_insert(0) += count;
                }
            }
        }
        let native_samples: u64 = native_frames.values().sum();
        let (&hot_frame, &hot_count) = holding_frames
            .iter()
            .max_by_key(|&(f, n)| (*n, std::cmp::Reverse(*f)))?;
        let hot_stack = profile
            .samples()
            .filter(|(key, _)| {
                running.contains(&key.thread) && key.state.activity == Activity::OnCpu
            })
            .filter(|(key, _)| context.innermost_user_frame(key.stack) == Some(hot_frame))
            .max_by_key(|(key, count)| (*count, std::cmp::Reverse(**key)))
            .and_then(|(key, _)| key.stack);
        let interval = context.interval_seconds();
        let wait_share = *waited as f64 / *busy as f64;
        let hot = context.location(hot_frame);
        let site = format!("{} ({}:{})", hot.function, hot.file, hot.line);
        // The holder is fixed where it holds the GIL; contending threads
        // where their own code calls the CPU-bound work, which is what goes
        // to processes.
        let location = match (
            holder,
            calling_frames
                .iter()
                .max_by_key(|&(f, n)| (*n, std::cmp::Reverse(*f))),
        ) {
            (None, Some((&calling, _))) => context.location(calling),
            _ => hot.clone(),
        };
        // Native frames, when recorded, say exactly where the time went.
        let native = if native_samples > 0 {
            native_samples * 2 >= holding_samples
        } else {
            context
                .execution_split(|frame| frame == hot_frame)
                .is_some_and(|(bytecode, native)| native >= bytecode)
        };
        let native_function = native_frames
            .iter()
            .max_by_key(|&(f, n)| (*n, std::cmp::Reverse(*f)))
            .map(|(&frame, &count)| {
                let location = context.location(frame);
                let binary = location.file.rsplit('/').next().unwrap_or(&location.file);
                format!(
                    "native code was innermost in {:.0}% of the samples holding the GIL; most often \
                     {} ({binary}), in {:.0}%",
                    native_samples as f64 / holding_samples.max(1) as f64 * 100.0,
                    location.function,
                    count as f64 / holding_samples.max(1) as f64 * 100.0
                )
            });
        let what_runs = if native {
            "a call into native code that keeps the GIL"
        } else {
            "pure Python that keeps the GIL"
        };
        let mut evidence = vec![format!(
            "{} CPU-bound thread{} of process {pid} spent {:.0}% of their busy time waiting for the GIL \
             ({:.2} of {:.2} thread-seconds)",
            waiters.len(),
            if waiters.len() == 1 { "" } else { "s" },
            wait_share * 100.0,
            *waited as f64 * interval,
            *busy as f64 * interval
        )];
        for (thread, counts) in waiters {
            let total = counts.busy() as f64;
            evidence.push(format!(
                "{}: waiting for the GIL {:.0}% of its busy time, running {:.0}%",
                profile.thread_label(*thread),
                counts.gil_wait as f64 / total * 100.0,
                counts.on_cpu as f64 / total * 100.0
            ));
        }
        let (title, fix) = match holder {
            Some(thread) => {
                let name = profile.thread_label(*thread);
                let held: u64 = waiters.iter().map(|(_, b)| b.holding).sum();
                evidence.push(format!(
                    "{name} held the GIL in {:.2} thread-seconds, the waiting threads in {:.2}; it ran {site} \
                     {:.0}% of that time: {what_runs}",
                    holding_samples as f64 * interval,
                    held as f64 * interval,
                    hot_count as f64 / holding_samples.max(1) as f64 * 100.0
                ));
                let title = format!(
                    "{name} holds the GIL in {} while {} thread{} wait for it ({:.0}% of their busy time)",
                    hot.function,
                    waiters.len(),
                    if waiters.len() == 1 { "" } else { "s" },
                    wait_share * 100.0
                );
                let fix = format!(
                    "Thread {name} keeps the GIL at {site} for long stretches, and the other threads cannot \
                     run Python meanwhile. Move this work out of the threads' process (a \
                     `concurrent.futures.ProcessPoolExecutor` or `multiprocessing` worker), or do it in \
                     smaller pieces so the GIL changes hands between them{native_note}. The waiting \
                     threads need no change.",
                    native_note = if native {
                        " (a native call holds the GIL for its whole length: split its input, or use a \
                         library function that releases the GIL)"
                    } else {
                        ""
                    }
                );
                (title, fix)
            }
            None => {
                evidence.push(format!(
                    "while holding the GIL they ran {site} {:.0}% of the time: {what_runs}",
                    hot_count as f64 / holding_samples.max(1) as f64 * 100.0
                ));
                let title = format!(
                    "{} threads contend for the GIL in {} ({:.0}% of their time waiting)",
                    waiters.len(),
                    hot.function,
                    wait_share * 100.0
                );
                let fix = format!(
                    "`{function}` ({hot_file}:{hot_line}) is CPU-bound Python run by {count} threads, which \
                     take turns on the GIL and so run no faster than one. Run it in processes instead: \
                     submit the work the threads do at {file}:{line} (`{source}`) to a \
                     `concurrent.futures.ProcessPoolExecutor` (or a `multiprocessing.Pool`, or more worker \
                     processes) in place of the threads. If the loop can be vectorised with NumPy or moved \
                     to a native extension that releases the GIL (Cython `with nogil`, PyO3 \
                     `allow_threads`), the threads can run in parallel as they are. A free-threaded CPython \
                     (3.13t and later) also removes the contention.",
                    function = hot.function,
                    hot_file = hot.file,
                    hot_line = hot.line,
                    file = location.file,
                    line = location.line,
                    source = location.source.as_deref().unwrap_or_default(),
                    count = waiters.len()
                );
                (title, fix)
            }
        };
        evidence.extend(native_function);
        Some(Finding {
            code: DOCS.code,
            title,
            severity: Severity::for_share(wait_share),
            cost: Cost {
                share: wait_share,
                share_of: ShareOf::ThreadsBusyTime,
                unit: TimeUnit::ThreadSeconds,
                seconds: *waited as f64 * interval,
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

#[cfg(test)]
mod tests {
    use pydx_profile::{LabelSetId, Meta, Profile, SampleKey, SampleState, StackId};

    use super::*;
    use crate::config::Config;
    use crate::context::NoSources;
    use crate::test_support::add;

    fn stack(profile: &mut Profile, function: &str, file: &str, line: u32) -> Option<StackId> {
        let frame = profile.frame(function, file, line, 1);
        profile.stack_from_root([frame])
    }

    fn check(profile: &Profile) -> Vec<Finding> {
        let config = Config::default();
        GilContention.check(&Context::new(profile, &config, &NoSources))
    }

    #[test]
    fn cpu_bound_threads_taking_turns_are_reported_where_they_call_the_work() {
        let mut profile = Profile::new(Meta::default());
        let work = profile.frame("price_all", "/app/pricing.py", 30, 28);
        let inner = profile.frame("price", "/app/pricing.py", 12, 10);
        let price = profile.stack_from_root([work, inner]);
        for tid in 1..=3 {
            let thread = profile.thread(7, tid, u64::from(tid), None);
            add(&mut profile, thread, price, Activity::OnCpu, 40);
            add(&mut profile, thread, price, Activity::GilWait, 60);
        }
        let findings = check(&profile);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].location.line, 30);
        assert!(
            findings[0]
                .title
                .starts_with("3 threads contend for the GIL in price "),
            "{}",
            findings[0].title
        );
        assert!((findings[0].cost.seconds - 1.8).abs() < 1e-9);
    }

    #[test]
    fn light_threads_waiting_behind_a_busy_one_are_not_a_finding() {
        let mut profile = Profile::new(Meta::default());
        let sort = stack(&mut profile, "refresh", "/app/report.py", 20);
        let take = stack(&mut profile, "consume", "/app/report.py", 40);
        let main = profile.thread(7, 1, 1, Some("MainThread"));
        add(&mut profile, main, sort, Activity::OnCpu, 600);
        for tid in 2..=9 {
            let thread = profile.thread(7, tid, u64::from(tid), None);
            add(&mut profile, thread, take, Activity::OnCpu, 3);
            add(&mut profile, thread, take, Activity::GilWait, 50);
            add(&mut profile, thread, take, Activity::Idle, 500);
        }
        assert_eq!(check(&profile), []);
    }

    #[test]
    fn light_threads_seen_running_without_the_gil_are_not_cpu_bound() {
        // On a loaded machine, threads woken to wait for the GIL show as
        // running while they wait for a CPU: on a CPU, not holding the GIL.
        let mut profile = Profile::new(Meta::default());
        let sort = stack(&mut profile, "refresh", "/app/report.py", 20);
        let take = stack(&mut profile, "consume", "/app/report.py", 40);
        let main = profile.thread(7, 1, 1, Some("MainThread"));
        add(&mut profile, main, sort, Activity::OnCpu, 600);
        let woken = SampleState {
            activity: Activity::OnCpu,
            holds_gil: false,
        };
        for tid in 2..=9 {
            let thread = profile.thread(7, tid, u64::from(tid), None);
            let key = SampleKey {
                thread,
                stack: take,
                state: woken,
                labels: LabelSetId(0),
            };
            profile.add_samples(0, key, 40);
            add(&mut profile, thread, take, Activity::OnCpu, 1);
            add(&mut profile, thread, take, Activity::GilWait, 200);
        }
        assert_eq!(check(&profile), []);
    }

    #[test]
    fn a_thread_keeping_the_gil_from_cpu_bound_ones_is_named_as_the_holder() {
        let mut profile = Profile::new(Meta::default());
        let sort = stack(&mut profile, "refresh", "/app/report.py", 20);
        let work = stack(&mut profile, "handle", "/app/worker.py", 5);
        let main = profile.thread(7, 1, 1, Some("MainThread"));
        add(&mut profile, main, sort, Activity::OnCpu, 600);
        for tid in 2..=3 {
            let thread = profile.thread(7, tid, u64::from(tid), Some(&format!("worker-{tid}")));
            add(&mut profile, thread, work, Activity::OnCpu, 60);
            add(&mut profile, thread, work, Activity::GilWait, 200);
        }
        let findings = check(&profile);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(
            (finding.location.file.as_str(), finding.location.line),
            ("/app/report.py", 20)
        );
        assert!(
            finding
                .title
                .starts_with("MainThread holds the GIL in refresh while 2 threads wait"),
            "{}",
            finding.title
        );
        assert!((finding.cost.seconds - 4.0).abs() < 1e-9);
    }

    #[test]
    fn a_holder_in_native_code_is_named_with_its_native_function() {
        // Recorded with --native: the holder keeps the GIL inside a C
        // extension's function called from refresh.
        let mut profile = Profile::new(Meta::default());
        let refresh = profile.frame("refresh", "/app/report.py", 20, 18);
        let spin = profile.frame("probe_spin", "/app/ext/native_probe.so", 0, 0);
        let in_native = profile.stack_from_root([refresh, spin]);
        let sort = stack(&mut profile, "refresh", "/app/report.py", 20);
        let work = stack(&mut profile, "handle", "/app/worker.py", 5);
        let main = profile.thread(7, 1, 1, Some("MainThread"));
        add(&mut profile, main, in_native, Activity::OnCpu, 450);
        add(&mut profile, main, sort, Activity::OnCpu, 150);
        for tid in 2..=3 {
            let thread = profile.thread(7, tid, u64::from(tid), Some(&format!("worker-{tid}")));
            add(&mut profile, thread, work, Activity::OnCpu, 60);
            add(&mut profile, thread, work, Activity::GilWait, 200);
        }
        let findings = check(&profile);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.location.line, 20);
        assert!(
            finding.evidence.iter().any(|e| e
                == "native code was innermost in 75% of the samples holding the GIL; most often \
                    probe_spin (native_probe.so), in 75%"),
            "{:#?}",
            finding.evidence
        );
        assert!(
            finding.fix.contains("a native call holds the GIL"),
            "{}",
            finding.fix
        );
    }
}
