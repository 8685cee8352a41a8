//! PYDX-ASYNC001: a synchronous call blocks the asyncio event loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pydx_libraries::{Role, Service, CLIENT_MODULES};
use pydx_profile::{Activity, FrameId, RunStack, StackId, ThreadId};

use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Severity, ShareOf, TimeUnit};

/// Two runs of the loop thread this close belong to one episode.
const CONTIGUOUS_NS: u64 = 5_000_000;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-ASYNC001",
    name: "event-loop-blocked",
    summary: "A synchronous call keeps the asyncio event loop from running other tasks",
    detects: "On each thread that runs an asyncio event loop, the stretches of time during which the loop \
              was running one callback instead of waiting in its selector, taken from the per-thread \
              timeline, ended when the loop goes back to its selector or moves on to another \
              request (read from the request object on its stack). A stretch longer than the \
              threshold is a blocked loop, and so is a shorter one spent mostly waiting off CPU \
              (a synchronous sleep or I/O) when it recurs; it is charged to the \
              program's own frame that was running, and the frames above it tell what blocked: time.sleep, \
              a blocking HTTP client, a synchronous database driver, file I/O, or plain CPU work.",
    why: "While one coroutine runs synchronous code, no other task on the loop makes progress: every \
          request being served on that loop waits, and latency grows with the longest block.",
    example: "async def handler(request):\n    data = requests.get(url).json()   # blocks the loop\n    time.sleep(0.2)                    # blocks the loop",
    fix: "Use the async form of the call (await asyncio.sleep, httpx.AsyncClient or aiohttp, an async \
          database driver), or move the blocking call off the loop with `await asyncio.to_thread(...)` / \
          `loop.run_in_executor(...)`; CPU-heavy work belongs in a process pool.",
    thresholds: "slow_callback_ms = 100: asyncio's own debug mode (loop.slow_callback_duration) reports \
                 callbacks that run 100 ms or longer; pydx uses the same bound. At the default 100 Hz, \
                 that is about ten consecutive samples. A line must block the loop that long at least \
                 twice, or once for ten times as long (1 s): a single callback just past the bound is as \
                 likely a busy machine that preempted the worker. blocking_wait_ms = 20: a block spent \
                 mostly off CPU (waiting in a synchronous call, which a coroutine should never do) counts \
                 from 20 ms when the same line blocks at least 3 times. One request after another keeping \
                 a saturated loop busy is not one block.",
};

/// PYDX-ASYNC001.
pub struct BlockedEventLoop;

/// How long a block must last to count.
struct Thresholds {
    /// Any block (asyncio's slow callback).
    slow_ns: u64,
    /// A block spent mostly waiting off CPU, when it recurs.
    wait_ns: u64,
}

/// Fewest blocks a site needs when none reaches the slow-callback bound.
const MIN_SHORT_BLOCKS: usize = 3;
/// Fewest blocks past the slow-callback bound a site needs...
const MIN_SLOW_BLOCKS: usize = 2;
/// ...unless one lasted this many times the bound: a single callback just
/// past it is as likely a busy machine that preempted the worker as code
/// that blocks.
const LONE_BLOCK_FACTOR: u64 = 10;

/// What a blocking call site did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocker {
    Sleep,
    Http,
    Database,
    Redis,
    File,
    Cpu,
    Other,
}

/// The blocking episodes charged to one call site.
#[derive(Default)]
struct SiteEpisodes {
    episodes: Vec<u64>,
    stack: Option<StackId>,
    cpu_ns: u64,
    idle_ns: u64,
    callers_seen: Vec<FrameId>,
    /// Names of the asyncio tasks the blocks ran in, when tasks were read.
    tasks_seen: Vec<String>,
    /// The loop threads it blocked (one per worker process of a server).
    threads: BTreeSet<ThreadId>,
}

impl SiteEpisodes {
    /// Whether the site blocked the loop often enough, or long enough, to
    /// be more than one unlucky callback.
    fn recurs(&self, thresholds: &Thresholds) -> bool {
        let slow = self
            .episodes
            .iter()
            .filter(|&&length| length >= thresholds.slow_ns)
            .count();
        self.episodes.len() >= MIN_SHORT_BLOCKS
            || slow >= MIN_SLOW_BLOCKS
            || self
                .episodes
                .iter()
                .any(|&length| length >= thresholds.slow_ns * LONE_BLOCK_FACTOR)
    }
}

impl Rule for BlockedEventLoop {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.event_loop;
        let thresholds = Thresholds {
            slow_ns: (config.slow_callback_ms * 1e6) as u64,
            wait_ns: (config.blocking_wait_ms * 1e6) as u64,
        };
        let waits = TaskWaits::of(context);
        let mut sites: BTreeMap<FrameId, SiteEpisodes> = BTreeMap::new();
        let mut loop_time: HashMap<ThreadId, u64> = HashMap::new();
        for thread in loop_threads(context) {
            let runs: Vec<_> = context
                .profile
                .runs()
                .filter(|r| r.thread == thread)
                .collect();
            loop_time.insert(thread, runs.iter().map(|r| r.duration_ns()).sum());
            let mut episode: Vec<&pydx_profile::Run> = Vec::new();
            for run in runs
                .iter()
                .copied()
                .chain(std::iter::once_with(|| None).flatten())
            {
                let busy = match run.stack {
                    RunStack::Stack(stack) => is_busy(context, stack),
                    RunStack::Mixed => false,
                };
                // A loop busy with one request after another is saturated
                // rather than blocked: another request than the episode's
                // ends the episode.
                let request = |run: &pydx_profile::Run| context.profile.request_turn(run.labels);
                let episode_request = episode.iter().find_map(|run| request(run));
                let contiguous = episode.last().is_some_and(|last| {
                    run.start_ns <= last.end_ns + CONTIGUOUS_NS
                        && match (episode_request, request(run)) {
                            (Some(before), Some(now)) => before == now,
                            _ => true,
                        }
                });
                if busy && (episode.is_empty() || contiguous) {
                    episode.push(run);
                    continue;
                }
                record_episode(context, thread, &episode, &thresholds, &waits, &mut sites);
                episode.clear();
                if busy {
                    episode.push(run);
                }
            }
            record_episode(context, thread, &episode, &thresholds, &waits, &mut sites);
        }
        let mut findings: Vec<Finding> = sites
            .into_iter()
            // A module body runs once, when it is imported (a server loading
            // the app inside its loop at start-up): not a recurring block.
            .filter(|(frame, _)| context.function(*frame) != "<module>")
            .filter(|(_, site)| site.recurs(&thresholds))
            .map(|(frame, site)| {
                let loop_ns = site.threads.iter().map(|t| loop_time[t]).sum();
                finding(context, frame, &site, loop_ns)
            })
            .collect();
        findings.sort_by(|a, b| b.cost.seconds.total_cmp(&a.cost.seconds));
        findings
    }
}

/// Threads whose stacks show an asyncio event loop.
fn loop_threads(context: &Context<'_>) -> Vec<ThreadId> {
    let mut threads: Vec<ThreadId> = context
        .profile
        .samples()
        .filter(|(key, _)| {
            context
                .profile
                .frames_innermost_first(key.stack)
                .iter()
                .any(|&f| context.plays(f, Role::EventLoopRun))
        })
        .map(|(key, _)| key.thread)
        .collect();
    threads.sort();
    threads.dedup();
    threads
}

/// Frames of the event loop itself and of its selector.
fn is_loop_machinery(context: &Context<'_>, frame: FrameId) -> bool {
    context.plays(frame, Role::EventLoopMachinery)
}

/// Whether the loop is running a callback (rather than waiting for I/O)
/// in a sample with this stack: the loop is on the stack, and the innermost
/// Python frame is not the loop's own (native frames below it, such as the
/// selector's `epoll_wait`, are what that frame does). (Before and after
/// the loop runs, the thread is not serving it at all.)
fn is_busy(context: &Context<'_>, stack: Option<StackId>) -> bool {
    let frames = context.profile.frames_innermost_first(stack);
    let loop_running = frames.iter().any(|&f| context.plays(f, Role::EventLoopRun));
    loop_running
        && context
            .innermost_python_frame(stack)
            .is_some_and(|frame| !is_loop_machinery(context, frame))
}

/// When asyncio tasks waited, per process, as far as pydx read them.
struct TaskWaits {
    /// Processes whose tasks were read (a sample names its task).
    read: BTreeSet<u32>,
    /// Per process, the stretches in which some task waited.
    waiting: HashMap<u32, Vec<(u64, u64)>>,
}

impl TaskWaits {
    fn of(context: &Context<'_>) -> Self {
        let profile = context.profile;
        let mut read = BTreeSet::new();
        let mut waiting: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
        for run in profile.runs() {
            let pid = profile.thread_info(run.thread).pid;
            if profile.task(run.labels).is_some() {
                read.insert(pid);
            }
            if profile.is_waiting_task(run.labels) {
                waiting
                    .entry(pid)
                    .or_default()
                    .push((run.start_ns, run.end_ns));
            }
        }
        Self { read, waiting }
    }

    /// Whether other tasks of process `pid` waited through most of the
    /// stretch from `start_ns` to `end_ns` (a task seen waiting just as the
    /// stretch began may have finished then); true when its tasks were not
    /// read (before Python 3.11).
    fn others_waited(&self, pid: u32, start_ns: u64, end_ns: u64) -> bool {
        if !self.read.contains(&pid) {
            return true;
        }
        let Some(stretches) = self.waiting.get(&pid) else {
            return false;
        };
        // Time covered by some waiting task, counting overlaps once.
        let mut covered = 0;
        let mut reached = start_ns;
        let mut overlapping: Vec<(u64, u64)> = stretches
            .iter()
            .filter(|&&(start, end)| start < end_ns && end > start_ns)
            .map(|&(start, end)| (start.max(start_ns), end.min(end_ns)))
            .collect();
        overlapping.sort_unstable();
        for (start, end) in overlapping {
            let from = start.max(reached);
            if end > from {
                covered += end - from;
                reached = end;
            }
        }
        covered * 2 >= end_ns.saturating_sub(start_ns)
    }
}

/// Charges one episode of busy runs, if it lasted long enough, to the
/// program's frame that ran longest in it.
fn record_episode(
    context: &Context<'_>,
    thread: ThreadId,
    episode: &[&pydx_profile::Run],
    thresholds: &Thresholds,
    waits: &TaskWaits,
    sites: &mut BTreeMap<FrameId, SiteEpisodes>,
) {
    let (Some(first), Some(last)) = (episode.first(), episode.last()) else {
        return;
    };
    // A loop with no other task to run loses nothing while it is blocked
    // (the last task closing down after the others finished).
    let pid = context.profile.thread_info(thread).pid;
    if !waits.others_waited(pid, first.start_ns, last.end_ns) {
        return;
    }
    let length = last.end_ns.saturating_sub(first.start_ns);
    let waiting_ns: u64 = episode
        .iter()
        .filter(|run| run.state.activity == Activity::Idle)
        .map(|run| run.duration_ns())
        .sum();
    // A synchronous wait (sleep, I/O) has no place in a coroutine at all: a
    // shorter one counts, when it recurs (see `check`).
    let threshold_ns = if waiting_ns * 2 >= length {
        thresholds.slow_ns.min(thresholds.wait_ns)
    } else {
        thresholds.slow_ns
    };
    if length < threshold_ns {
        return;
    }
    let mut weight: HashMap<FrameId, (u64, Option<StackId>)> = HashMap::new();
    for run in episode {
        if let RunStack::Stack(stack) = run.stack {
            if let Some(frame) = context.innermost_user_frame(stack) {
                let entry = weight.entry(frame).or_insert((0, stack));
                entry.0 += run.duration_ns();
            }
        }
    }
    let Some((&frame, &(_, stack))) = weight
        .iter()
        .max_by_key(|(f, (w, _))| (*w, std::cmp::Reverse(**f)))
    else {
        return;
    };
    let site = sites.entry(frame).or_default();
    site.threads.insert(thread);
    site.episodes.push(length);
    if site.episodes.len() == 1 {
        site.stack = stack;
    }
    for run in episode {
        if let Some(task) = context.profile.task(run.labels) {
            let task = context.profile.str(task);
            if !site.tasks_seen.iter().any(|seen| seen == task) {
                site.tasks_seen.push(task.to_string());
            }
        }
        // Waiting for a CPU is computing held up by other threads.
        if matches!(run.state.activity, Activity::OnCpu | Activity::CpuWait) {
            site.cpu_ns += run.duration_ns();
        } else {
            site.idle_ns += run.duration_ns();
        }
    }
    if let Some(caller) = coroutine_of(context, stack) {
        if !site.callers_seen.contains(&caller) {
            site.callers_seen.push(caller);
        }
    }
}

/// The loop threads a site blocked, as evidence: the thread, or how many
/// processes' loops.
fn loops_text(context: &Context<'_>, threads: &BTreeSet<ThreadId>) -> String {
    match threads.iter().next() {
        Some(&thread) if threads.len() == 1 => context.profile.thread_label(thread),
        _ => {
            let processes: BTreeSet<u32> = threads
                .iter()
                .map(|&t| context.profile.thread_info(t).pid)
                .collect();
            format!("{} threads in {} processes", threads.len(), processes.len())
        }
    }
}

/// The outermost frame of the program's code that the event loop called
/// (above the loop's own frames) in a loop-thread stack: the coroutine
/// (task) that was running.
fn coroutine_of(context: &Context<'_>, stack: Option<StackId>) -> Option<FrameId> {
    let frames = context.profile.frames_root_first(stack);
    let inside_loop = frames
        .iter()
        .rposition(|&f| is_loop_machinery(context, f))
        .map_or(0, |last| last + 1);
    frames[inside_loop..]
        .iter()
        .copied()
        .find(|&f| context.is_user_frame(f))
}

/// What blocked, from the frames above the program's frame, the source line
/// and whether the thread was on a CPU.
fn classify(
    context: &Context<'_>,
    stack: Option<StackId>,
    frame: FrameId,
    source: &str,
    cpu_ns: u64,
    idle_ns: u64,
) -> Blocker {
    let above: Vec<FrameId> = context
        .profile
        .frames_innermost_first(stack)
        .into_iter()
        .take_while(|&f| f != frame)
        .collect();
    let talks_to = |service: Service| {
        above
            .iter()
            .any(|&f| context.plays(f, Role::Client(service)))
            || CLIENT_MODULES
                .iter()
                .any(|&(module, s)| s == service && source.contains(module))
    };
    if source.contains("time.sleep") || source.trim_start().starts_with("sleep(") {
        Blocker::Sleep
    } else if talks_to(Service::Http) {
        Blocker::Http
    } else if talks_to(Service::Database) {
        Blocker::Database
    } else if talks_to(Service::Redis) {
        Blocker::Redis
    } else if source.contains("open(") || source.contains(".read(") || source.contains(".write(") {
        Blocker::File
    } else if cpu_ns > idle_ns {
        Blocker::Cpu
    } else {
        Blocker::Other
    }
}

fn finding(context: &Context<'_>, frame: FrameId, site: &SiteEpisodes, loop_ns: u64) -> Finding {
    let location = context.location(frame);
    let source = location.source.clone().unwrap_or_default();
    let blocker = classify(
        context,
        site.stack,
        frame,
        &source,
        site.cpu_ns,
        site.idle_ns,
    );
    let total_ns: u64 = site.episodes.iter().sum();
    let longest_ns = site.episodes.iter().copied().max().unwrap_or(0);
    let share = total_ns as f64 / loop_ns.max(1) as f64;
    let call = if source.is_empty() {
        format!("the call at {}:{}", location.file, location.line)
    } else {
        format!("`{source}`")
    };
    let what = match blocker {
        Blocker::Sleep => "a time.sleep",
        Blocker::Http => "a blocking HTTP request",
        Blocker::Database => "a synchronous database call",
        Blocker::Redis => "a synchronous Redis call",
        Blocker::File => "blocking file I/O",
        Blocker::Cpu => "CPU-bound Python",
        Blocker::Other => "a blocking call",
    };
    let place = format!("{}:{}", location.file, location.line);
    let fix = match blocker {
        Blocker::Sleep => format!(
            "Replace {call} at {place} with `await asyncio.sleep(...)` (same argument): time.sleep stops the \
             whole event loop, asyncio.sleep only the current task."
        ),
        Blocker::Http => format!(
            "Make the request at {place} asynchronous: use `httpx.AsyncClient` (`await client.get(url)`) or \
             aiohttp, or keep the synchronous client off the loop with `await asyncio.to_thread(...)` \
             wrapped around {call}."
        ),
        Blocker::Database => format!(
            "Use an async driver for the query at {place} (asyncpg, psycopg's AsyncConnection, SQLAlchemy's \
             AsyncSession, aiosqlite), or run {call} in a thread: `await asyncio.to_thread(...)`."
        ),
        Blocker::Redis => format!(
            "Use redis.asyncio (`await r.get(...)`) instead of the synchronous client at {place}, or run \
             {call} with `await asyncio.to_thread(...)`."
        ),
        Blocker::File => format!(
            "Move the file I/O at {place} off the loop: `await asyncio.to_thread(...)` around {call}, or \
             anyio/aiofiles for async file access."
        ),
        Blocker::Cpu => format!(
            "The coroutine computes in Python for up to {:.0} ms at {place}. Run that work in a process \
             pool: `await loop.run_in_executor(process_pool, function, *args)` with a \
             concurrent.futures.ProcessPoolExecutor (threads do not help CPU-bound Python), or split it \
             with `await asyncio.sleep(0)` between chunks.",
            longest_ns as f64 / 1e6
        ),
        Blocker::Other => format!(
            "Run {call} at {place} off the event loop with `await asyncio.to_thread(...)` \
             (or loop.run_in_executor), or use the library's async API."
        ),
    };
    let mut evidence = vec![
        format!(
            "the event loop on {} was blocked {} time{} for {} ms or more, by {what} at {place}",
            loops_text(context, &site.threads),
            site.episodes.len(),
            if site.episodes.len() == 1 { "" } else { "s" },
            context.config.event_loop.slow_callback_ms
        ),
        format!(
            "longest block {:.0} ms, {:.2} s blocked in total ({:.0}% of the loop's time)",
            longest_ns as f64 / 1e6,
            total_ns as f64 / 1e9,
            share * 100.0
        ),
        format!(
            "during the blocks the thread was {} {:.0}% of the time",
            if site.cpu_ns >= site.idle_ns {
                "on a CPU"
            } else {
                "off the CPU (waiting)"
            },
            site.cpu_ns.max(site.idle_ns) as f64 / (site.cpu_ns + site.idle_ns).max(1) as f64
                * 100.0
        ),
    ];
    if !site.callers_seen.is_empty() {
        let tasks: Vec<String> = site
            .callers_seen
            .iter()
            .map(|&f| context.function(f).to_string())
            .collect();
        evidence.push(format!(
            "the blocking code ran in coroutine {}",
            tasks.join(", ")
        ));
    }
    if !site.tasks_seen.is_empty() {
        const SHOWN: usize = 5;
        let mut names = site.tasks_seen[..site.tasks_seen.len().min(SHOWN)].join(", ");
        if site.tasks_seen.len() > SHOWN {
            names.push_str(&format!(" and {} more", site.tasks_seen.len() - SHOWN));
        }
        evidence.push(format!(
            "asyncio task{} stuck: {names}",
            if site.tasks_seen.len() == 1 { "" } else { "s" }
        ));
    }
    Finding {
        code: DOCS.code,
        title: format!(
            "Event loop blocked by {what} in {} (longest {:.0} ms)",
            location.function,
            longest_ns as f64 / 1e6
        ),
        severity: if longest_ns >= 1_000_000_000 {
            Severity::Error
        } else {
            Severity::for_share(share).max(Severity::Warning)
        },
        cost: Cost {
            share,
            share_of: ShareOf::EventLoopTime,
            unit: TimeUnit::Seconds,
            seconds: total_ns as f64 / 1e9,
            cpu_seconds: site.cpu_ns as f64 / 1e9,
            longest_ms: Some(longest_ns as f64 / 1e6),
            occurrences: Some(site.episodes.len() as u64),
        },
        stack: context.stack_text(site.stack),
        location,
        evidence,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn site(episodes_ms: &[u64]) -> SiteEpisodes {
        SiteEpisodes {
            episodes: episodes_ms.iter().map(|ms| ms * MS).collect(),
            ..SiteEpisodes::default()
        }
    }

    #[test]
    fn a_loop_waiting_in_native_code_under_its_selector_is_not_busy() {
        use pydx_profile::{Meta, Profile};

        use crate::config::Config;
        use crate::context::SourceMap;

        let mut profile = Profile::new(Meta::default());
        let base = "/usr/lib/python3.12/asyncio/base_events.py";
        let run = profile.frame("BaseEventLoop.run_forever", base, 640, 600);
        let select = profile.frame(
            "EpollSelector.select",
            "/usr/lib/python3.12/selectors.py",
            468,
            450,
        );
        let handler = profile.frame("leaderboard", "/srv/app/main.py", 50, 48);
        let epoll = profile.frame("epoll_wait", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, 0);
        let sleep = profile.frame(
            "clock_nanosleep",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            0,
            0,
        );
        let waiting = profile.stack_from_root([run, select, epoll]);
        let blocked = profile.stack_from_root([run, handler, sleep]);
        let (config, sources) = (Config::default(), SourceMap::default());
        let context = Context::new(&profile, &config, &sources);
        assert!(!is_busy(&context, waiting));
        assert!(is_busy(&context, blocked));
    }

    #[test]
    fn one_callback_just_past_the_bound_is_not_a_blocked_loop() {
        let thresholds = Thresholds {
            slow_ns: 100 * MS,
            wait_ns: 20 * MS,
        };
        assert!(!site(&[128]).recurs(&thresholds));
        assert!(!site(&[128, 30]).recurs(&thresholds));
        assert!(site(&[128, 101]).recurs(&thresholds));
        assert!(site(&[25, 30, 40]).recurs(&thresholds));
        assert!(site(&[1_000]).recurs(&thresholds));
        assert!(!site(&[999]).recurs(&thresholds));
    }
}
