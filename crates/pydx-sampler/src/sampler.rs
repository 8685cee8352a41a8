//! The sampling loop: snapshots of one or more processes at a steady rate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pydx_cpython::{AsyncioError, AsyncioTask, AttachError, PythonProcess};
use pydx_remote::{child_pids, memory_usage, parent_pid, process_alive, MemoryUsage, ProcessPause};

use crate::snapshot::{
    Consistency, NativeCapture, NativeCounts, NativeFrames, SnapshotError, Snapshotter,
    ThreadReads, ThreadSnapshot,
};

/// How long before this thread's own switch-in record a thread it takes
/// off a CPU can be recorded as switched off: the kernel records the
/// switch-out before the switch-in, a few microseconds apart. Measured on
/// five threads of a hashlib program on two CPUs: with no allowance, 1.05
/// threads on a CPU per sample where the kernel counted 1.97 CPUs used;
/// with 10 µs, 2.07; with 50 µs, 2.11.
const SWITCH_RECORD_LEAD_NS: u64 = 20_000;

/// How often child processes are looked for with `subprocesses`.
const CHILD_POLL: Duration = Duration::from_millis(100);
/// How many times a new child is tried before it is taken for not Python.
const CHILD_ATTEMPTS: u32 = 50;
/// Frames of the program's own code observed per thread.
const OBSERVED_FRAMES: usize = 3;
/// How often the progress callback is called.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often each process's memory is read (a walk of its mappings).
const MEMORY_EVERY: Duration = Duration::from_millis(500);
/// Shortest time between two readings of a process's asyncio tasks.
const TASKS_MIN_INTERVAL: Duration = Duration::from_millis(2);
/// Task readings are spaced at least this many times the time one took,
/// so that a program with thousands of tasks cannot make pydx spend more
/// than a tenth of its time on them.
const TASKS_COST_FACTOR: u32 = 10;
/// How long to wait before looking again for asyncio in a process that
/// has no tasks.
const TASKS_RETRY: Duration = Duration::from_secs(1);

/// How to sample.
#[derive(Debug, Clone)]
pub struct SamplingOptions {
    /// Snapshots per second (of every thread of every process).
    pub rate_hz: f64,
    /// Stop after this long; `None` runs until the target exits or `stop`.
    pub duration: Option<Duration>,
    /// Pause the target for each snapshot, or not.
    pub consistency: Consistency,
    /// Also sample child Python processes as they appear and go.
    pub subprocesses: bool,
    /// Read the local variables of hot frames this often (for rules that
    /// reason about values); `None` never does.
    pub observe_every: Option<Duration>,
    /// Also read every asyncio task, with the coroutines it waits in, along
    /// with the snapshots (at most every few milliseconds).
    pub async_tasks: bool,
    /// Also read the HTTP request each thread serves (WSGI environ, ASGI
    /// scope), to attribute samples to endpoints.
    pub requests: bool,
    /// Read native stacks too, and merge them with the Python ones.
    pub native: NativeFrames,
    /// How native stacks are captured.
    pub native_capture: NativeCapture,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self {
            rate_hz: 100.0,
            duration: None,
            consistency: Consistency::default(),
            subprocesses: false,
            observe_every: None,
            async_tasks: false,
            requests: false,
            native: NativeFrames::None,
            native_capture: NativeCapture::Pause,
        }
    }
}

/// Receives what the sampler reads.
pub trait SampleSink {
    /// A process is being sampled from now on.
    fn add_process(&mut self, process: &NewProcess<'_>);
    /// A reading of process `pid`'s memory, `elapsed` after the start, with
    /// the number of requests it had served by then when it is a server
    /// whose count pydx can read.
    fn add_memory(
        &mut self,
        pid: u32,
        elapsed: Duration,
        usage: MemoryUsage,
        served_requests: Option<u64>,
    ) {
        let _ = (pid, elapsed, usage, served_requests);
    }
    /// A reading of process `pid`'s memory failed while it was alive.
    fn add_memory_failure(&mut self, pid: u32) {
        let _ = pid;
    }
    /// Descendant `pid` could not be sampled, for `reason`; it is not
    /// tried again.
    fn add_unattached(&mut self, pid: u32, reason: &str) {
        let _ = (pid, reason);
    }
    /// One snapshot of every thread of process `pid`, taken `elapsed` after
    /// the start of sampling.
    fn add_snapshot(&mut self, pid: u32, elapsed: Duration, threads: &[ThreadSnapshot]);
    /// The asyncio tasks of process `pid`, read just before its snapshot at
    /// `elapsed`; they stand for the `rounds` snapshots since the previous
    /// reading, or for one when that reading found no tasks (an empty
    /// `tasks`: tasks found after one did not exist before it). Only called
    /// with [`SamplingOptions::async_tasks`].
    fn add_tasks(&mut self, pid: u32, elapsed: Duration, tasks: &[AsyncioTask], rounds: u64) {
        let _ = (pid, elapsed, tasks, rounds);
    }
}

/// What is known of a process when its sampling starts.
#[derive(Debug, Clone)]
pub struct NewProcess<'a> {
    /// Its PID.
    pub pid: u32,
    /// Its parent's PID (a gunicorn worker's master).
    pub parent: Option<u32>,
    /// Its command line.
    pub command: String,
    /// Its working directory as pydx sees it (through its root).
    pub cwd: Option<String>,
    /// The Python version it runs.
    pub python_version: &'a str,
}

impl<'a> NewProcess<'a> {
    /// Reads the facts of `pid` from /proc.
    pub fn read(pid: u32, python_version: &'a str) -> Self {
        Self {
            pid,
            parent: parent_pid(pid),
            command: pydx_remote::read_cmdline(pid).unwrap_or_default(),
            cwd: std::fs::read_link(format!("/proc/{pid}/cwd"))
                .ok()
                .map(|path| path.to_string_lossy().into_owned()),
            python_version,
        }
    }
}

/// How sampling is going, reported a few times a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time since sampling started.
    pub elapsed: Duration,
    /// Snapshot rounds taken (one round samples every process once).
    pub rounds: u64,
    /// Process snapshots that failed.
    pub errors: u64,
    /// Processes being sampled.
    pub processes: usize,
    /// Rounds per second achieved over the last report period.
    pub rate_hz: f64,
    /// Rounds the schedule had to skip because sampling fell behind.
    pub missed: u64,
}

/// Why sampling stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The requested duration elapsed.
    DurationElapsed,
    /// The caller asked to stop (Ctrl-C).
    Interrupted,
    /// The target process (and every sampled child) exited.
    TargetExited,
}

/// Two tallies of native stacks added up.
fn add_counts(a: Option<NativeCounts>, b: Option<NativeCounts>) -> Option<NativeCounts> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// What a sampling run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Native stacks merged, when they were read.
    pub native: Option<NativeCounts>,
    /// How long sampling ran.
    pub elapsed: Duration,
    /// Snapshot rounds taken.
    pub rounds: u64,
    /// Process snapshots that failed.
    pub errors: u64,
    /// Why the last failed snapshot failed.
    pub last_error: Option<String>,
    /// Thread stacks left out of the samples because they could not be
    /// read (see [`pydx_profile::Meta::unreadable_stacks`]).
    pub unreadable_stacks: u64,
    /// Why the last unreadable stack was unreadable.
    pub last_stack_error: Option<String>,
    /// Snapshots taken again with the process paused because a stack
    /// changed while it was read (see [`Consistency::PausedWhenTorn`]).
    pub paused_rereads: u64,
    /// Threads paused to be read, and read without a pause in paused
    /// reads (see [`Snapshotter::thread_reads`]).
    pub thread_reads: ThreadReads,
    /// Rounds skipped because sampling fell behind.
    pub missed: u64,
    /// Processes sampled over the whole run.
    pub processes_seen: usize,
    /// System calls made to read the targets while sampling.
    pub reads: pydx_remote::ReadStats,
    /// Where the sampling loop spent its time.
    pub stages: StageTimes,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Time the sampling loop spent in each stage, summed over the run (wall
/// time of the sampling thread, which is nearly all CPU time: the reads do
/// not block), and the CPU time of the sampling thread as the kernel
/// counted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Reading the threads' stacks and states (the snapshots).
    pub reading: Duration,
    /// Reading locals and SQL statements now and then.
    pub observing: Duration,
    /// Adding the snapshots to the profile.
    pub recording: Duration,
    /// CPU time of the sampling thread over the run (stages, bookkeeping
    /// and pacing), when the kernel's count could be read.
    pub cpu: Option<Duration>,
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat`
/// (nanoseconds on a CPU, the first field).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

impl Summary {
    /// Rounds per second achieved over the whole run.
    pub fn rate_hz(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.rounds as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Attaches to `pid` once its interpreter is up: a process just launched
/// needs a few milliseconds before `_PyRuntime` holds a thread, and a
/// launcher (chroot, a shell) may `exec` Python while its maps are being
/// read, which makes reads fail. Retries everything but a refusal and an
/// unsupported version (state that does not read is retried for
/// [`LAYOUT_SETTLE_TIME`]); gives up after `timeout`, or as soon as the
/// process exits. A process without Python is given up on once it has run
/// the same program for [`NOT_PYTHON_SETTLE_TIME`] without a child (a
/// launcher that `exec`s Python changes program; one still preparing runs
/// children).
pub fn attach_when_ready(pid: u32, timeout: Duration) -> Result<PythonProcess, AttachError> {
    let deadline = Instant::now() + timeout;
    let mut mismatch_since: Option<Instant> = None;
    let mut program = (pydx_remote::executable(pid), Instant::now());
    loop {
        match PythonProcess::attach(pid) {
            Ok(process) => return Ok(process),
            Err(error) => {
                if matches!(error, AttachError::NotPython { .. }) {
                    let now_running = pydx_remote::executable(pid);
                    if now_running != program.0 {
                        program = (now_running, Instant::now());
                    } else if program.1.elapsed() >= NOT_PYTHON_SETTLE_TIME
                        && pydx_remote::child_pids(pid).is_empty()
                    {
                        return Err(error);
                    }
                }
                // An interpreter still starting can hold half-made state
                // that does not read; one that still does not after a
                // moment is a build pydx does not know.
                let settling = matches!(error, AttachError::LayoutMismatch { .. })
                    && mismatch_since.get_or_insert_with(Instant::now).elapsed()
                        < LAYOUT_SETTLE_TIME;
                let retriable = settling
                    || !matches!(
                        error,
                        AttachError::UnsupportedVersion { .. }
                            | AttachError::LayoutMismatch { .. }
                            | AttachError::Remote(pydx_remote::Error::PermissionDenied { .. })
                    );
                if !retriable || Instant::now() >= deadline || !process_alive(pid) {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// How long a just-started interpreter whose state does not read is given
/// to finish starting before its layout is taken as unknown.
const LAYOUT_SETTLE_TIME: Duration = Duration::from_secs(1);

/// How long a launched process may run one program without Python and
/// without children before it is taken for a program that is not Python.
const NOT_PYTHON_SETTLE_TIME: Duration = Duration::from_secs(1);

/// A sampling session over a process and, optionally, its descendants.
#[derive(Debug)]
pub struct Sampler {
    options: SamplingOptions,
    root: u32,
    targets: Vec<Snapshotter>,
    /// Children that were not (yet) Python, with the attempts made.
    pending_children: HashMap<u32, u32>,
    processes_seen: usize,
    /// When each process's asyncio tasks are read next.
    task_readings: HashMap<u32, TaskReading>,
    /// Native stacks merged in the processes no longer sampled.
    native: Option<NativeCounts>,
}

/// The schedule of one process's asyncio task readings.
#[derive(Debug, Clone, Copy)]
struct TaskReading {
    /// Not before this instant.
    next: Instant,
    /// Snapshot rounds since the last reading.
    rounds: u64,
    /// The last reading found tasks.
    found: bool,
    /// The process's Python has no task list to read (before 3.11).
    unsupported: bool,
}

impl Sampler {
    /// A sampler of `root` (already attached, if it is a Python process).
    /// Fails only when native stacks are asked for and the root's binaries
    /// cannot be read.
    pub fn new(
        root_pid: u32,
        root: Option<PythonProcess>,
        options: SamplingOptions,
    ) -> Result<Self, pydx_remote::Error> {
        let consistency = options.consistency;
        let targets: Vec<Snapshotter> = root
            .into_iter()
            .map(|mut process| {
                process.set_read_requests(options.requests);
                Snapshotter::new(process, consistency)
                    .with_native(options.native, options.native_capture)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            processes_seen: targets.len(),
            options,
            root: root_pid,
            targets,
            pending_children: HashMap::new(),
            task_readings: HashMap::new(),
            native: None,
        })
    }

    /// Samples until the duration elapses, `stop` is set, or the target
    /// exits. `progress` is called a few times a second.
    pub fn run(
        &mut self,
        sink: &mut dyn SampleSink,
        stop: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Summary {
        pydx_remote::set_precise_sleep();
        for target in &mut self.targets {
            let process = target.process();
            sink.add_process(&NewProcess::read(
                process.pid(),
                &process.version().to_string(),
            ));
        }
        let interval = Duration::from_secs_f64(1.0 / self.options.rate_hz.max(0.001));
        let mut real_time =
            interval >= REAL_TIME_SHORTEST_INTERVAL && pydx_remote::take_real_time_priority();
        let mut long_rounds = 0u32;
        let reads_before = pydx_remote::ReadStats::now();
        let cpu_before = thread_cpu_time();
        let mut stages = StageTimes::default();
        let mut jitter = Jitter::new();
        let start = Instant::now();
        // When this thread gets its CPU for a round: target threads it
        // takes off their CPUs then were running (see
        // `Snapshotter::sampler_woke_at`).
        let own_switches = pydx_remote::SwitchWatcher::own();
        let mut last_round_end_ns = pydx_remote::monotonic_ns();
        let mut next_round = start;
        let mut next_child_poll = start;
        let mut next_observation = start;
        let mut next_memory_reading = start;
        let mut next_progress = start + PROGRESS_EVERY;
        let (mut rounds, mut errors, mut missed) = (0u64, 0u64, 0u64);
        let mut last_error = None;
        let (mut unreadable_stacks, mut last_stack_error) = (0u64, None);
        let mut paused_rereads = 0u64;
        let mut thread_reads = ThreadReads::default();
        let mut rounds_at_last_report = 0u64;
        let mut last_report = start;
        let stop_reason = loop {
            let now = Instant::now();
            let woke_ns = own_switches
                .as_ref()
                .and_then(pydx_remote::SwitchWatcher::switched_on_at)
                .filter(|&at| at >= last_round_end_ns)
                .map_or_else(pydx_remote::monotonic_ns, |at| {
                    at.saturating_sub(SWITCH_RECORD_LEAD_NS)
                });
            if stop.load(Ordering::Relaxed) {
                break StopReason::Interrupted;
            }
            if self.options.duration.is_some_and(|d| now - start >= d) {
                break StopReason::DurationElapsed;
            }
            if self.options.subprocesses && now >= next_child_poll {
                self.discover_children(sink);
                next_child_poll = now + CHILD_POLL;
            }
            let elapsed = now - start;
            let mut exited = Vec::new();
            let observe = self
                .options
                .observe_every
                .is_some_and(|every| now >= next_observation && every > Duration::ZERO);
            if observe {
                next_observation = now + self.options.observe_every.unwrap_or_default();
            }
            for (index, target) in self.targets.iter_mut().enumerate() {
                if self.options.async_tasks {
                    read_tasks(target, &mut self.task_readings, now, elapsed, sink);
                }
                target.sampler_woke_at(woke_ns);
                let reading = Instant::now();
                let mut observing = Duration::ZERO;
                let snapshot = if observe {
                    target
                        .snapshot_then(|target, threads| {
                            let started = Instant::now();
                            target.observe(threads, OBSERVED_FRAMES);
                            observing = started.elapsed();
                        })
                        .map(|(threads, ())| threads)
                } else {
                    target.snapshot()
                };
                stages.reading += reading.elapsed().saturating_sub(observing);
                stages.observing += observing;
                match snapshot {
                    Ok(mut threads) => {
                        // A stack that could not be read consistently is
                        // counted, not recorded as a sample without frames.
                        let read = threads.len();
                        if let Some(error) = threads.iter().find_map(|t| t.python.error) {
                            last_stack_error = Some(error.to_string());
                        }
                        threads.retain(|t| t.python.error.is_none());
                        unreadable_stacks += (read - threads.len()) as u64;
                        paused_rereads += u64::from(target.paused_again());
                        thread_reads += target.thread_reads();
                        let recording = Instant::now();
                        sink.add_snapshot(target.process().pid(), elapsed, &threads);
                        stages.recording += recording.elapsed();
                    }
                    Err(SnapshotError::ProcessExited(_)) => exited.push(index),
                    Err(error) => {
                        errors += 1;
                        last_error = Some(error.to_string());
                    }
                }
            }
            if now >= next_memory_reading {
                for target in &mut self.targets {
                    let pid = target.process().pid();
                    match memory_usage(pid) {
                        Ok(usage) => {
                            let served = if self.options.requests {
                                target.process().served_requests()
                            } else {
                                None
                            };
                            sink.add_memory(pid, elapsed, usage, served);
                        }
                        Err(_) if process_alive(pid) => sink.add_memory_failure(pid),
                        Err(_) => {}
                    }
                }
                next_memory_reading = now + MEMORY_EVERY;
            }
            for index in exited.into_iter().rev() {
                let mut gone = self.targets.remove(index);
                ProcessPause::release_exited_process(gone.process().pid());
                self.native = add_counts(self.native, gone.native_counts());
                self.task_readings.remove(&gone.process().pid());
            }
            rounds += 1;
            if self.targets.is_empty() && (!self.options.subprocesses || !process_alive(self.root))
            {
                break StopReason::TargetExited;
            }
            if now >= next_progress {
                let since = now - last_report;
                progress(&Progress {
                    elapsed,
                    rounds,
                    errors,
                    processes: self.targets.len(),
                    rate_hz: (rounds - rounds_at_last_report) as f64
                        / since.as_secs_f64().max(1e-9),
                    missed,
                });
                rounds_at_last_report = rounds;
                last_report = now;
                next_progress = now + PROGRESS_EVERY;
            }
            next_round += jitter.next(interval);
            last_round_end_ns = pydx_remote::monotonic_ns();
            let after = Instant::now();
            long_rounds = if after - now > interval / 2 {
                long_rounds + 1
            } else {
                0
            };
            if real_time && long_rounds >= REAL_TIME_LONG_ROUNDS {
                pydx_remote::leave_real_time_priority();
                real_time = false;
            }
            if after > next_round + interval {
                // Too far behind to catch up: skip the rounds that were due.
                let behind = after - next_round;
                missed += (behind.as_secs_f64() / interval.as_secs_f64()) as u64;
                next_round = after;
            } else if next_round > after {
                std::thread::sleep(next_round - after);
            }
        };
        stages.cpu = thread_cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let native = self
            .targets
            .iter()
            .fold(self.native, |sum, t| add_counts(sum, t.native_counts()));
        Summary {
            native,
            elapsed: start.elapsed(),
            rounds,
            errors,
            last_error,
            unreadable_stacks,
            paused_rereads,
            thread_reads,
            last_stack_error,
            missed,
            processes_seen: self.processes_seen,
            reads: pydx_remote::ReadStats::now().since(reads_before),
            stages,
            stop: stop_reason,
        }
    }

    /// Attaches to descendants of the root that run Python and are not
    /// sampled yet.
    fn discover_children(&mut self, sink: &mut dyn SampleSink) {
        let mut descendants = Vec::new();
        let mut queue = vec![self.root];
        while let Some(pid) = queue.pop() {
            for child in child_pids(pid) {
                if !descendants.contains(&child) {
                    descendants.push(child);
                    queue.push(child);
                }
            }
        }
        self.pending_children
            .retain(|pid, _| descendants.contains(pid));
        for pid in descendants {
            if self.targets.iter_mut().any(|t| t.process().pid() == pid) {
                continue;
            }
            let attempts = self.pending_children.entry(pid).or_insert(0);
            if *attempts >= CHILD_ATTEMPTS {
                continue;
            }
            *attempts += 1;
            match PythonProcess::attach(pid) {
                Ok(mut process) => {
                    process.set_read_requests(self.options.requests);
                    self.pending_children.remove(&pid);
                    match Snapshotter::new(process, self.options.consistency)
                        .with_native(self.options.native, self.options.native_capture)
                    {
                        Ok(mut target) => {
                            sink.add_process(&NewProcess::read(pid, &target.version()));
                            self.targets.push(target);
                            self.processes_seen += 1;
                        }
                        Err(error) => {
                            self.pending_children.insert(pid, CHILD_ATTEMPTS);
                            sink.add_unattached(pid, &format!("its native stacks: {error}"));
                        }
                    }
                }
                // A shell or a launcher between the root and its Python
                // children is not a failure.
                Err(AttachError::NotPython { .. }) => {}
                Err(error) => {
                    // Permission and version do not change with retrying;
                    // an interpreter that never finishes starting is given
                    // up on with the last try.
                    let hopeless = matches!(
                        error,
                        AttachError::Remote(pydx_remote::Error::PermissionDenied { .. })
                            | AttachError::UnsupportedVersion { .. }
                    );
                    if (hopeless || *attempts >= CHILD_ATTEMPTS) && process_alive(pid) {
                        *attempts = CHILD_ATTEMPTS;
                        sink.add_unattached(pid, &error.to_string());
                    }
                }
            }
        }
    }
}

/// Reads the asyncio tasks of `target` if they are due, and hands them to
/// `sink`.
fn read_tasks(
    target: &mut Snapshotter,
    readings: &mut HashMap<u32, TaskReading>,
    now: Instant,
    elapsed: Duration,
    sink: &mut dyn SampleSink,
) {
    let process = target.process();
    let pid = process.pid();
    let reading = readings.entry(pid).or_insert(TaskReading {
        next: now,
        rounds: 0,
        found: false,
        unsupported: false,
    });
    reading.rounds += 1;
    if reading.unsupported || now < reading.next {
        return;
    }
    let started = Instant::now();
    match process.asyncio_tasks() {
        Ok(tasks) if !tasks.is_empty() => {
            let rounds = if reading.found { reading.rounds } else { 1 };
            sink.add_tasks(pid, elapsed, &tasks, rounds);
            reading.found = true;
            reading.next = now + TASKS_MIN_INTERVAL.max(started.elapsed() * TASKS_COST_FACTOR);
        }
        Ok(_) => {
            if reading.found {
                sink.add_tasks(pid, elapsed, &[], reading.rounds);
            }
            reading.found = false;
            reading.next = now + TASKS_RETRY;
        }
        Err(AsyncioError::Unsupported(_)) => reading.unsupported = true,
        // A task list caught mid-update: try again next round.
        Err(_) => {}
    }
    reading.rounds = 0;
}

/// Sampling intervals at least this long (rates up to 1 kHz) take real-time
/// priority where allowed (see `pydx_remote::take_real_time_priority`): a
/// sample is then taken when it is due, not when a busy CPU is next given
/// up. The sampling thread returns to the normal policy for good once
/// [`REAL_TIME_LONG_ROUNDS`] rounds in a row take more than half their
/// interval, so that it never keeps a CPU from the target for long.
const REAL_TIME_SHORTEST_INTERVAL: Duration = Duration::from_millis(1);
/// See [`REAL_TIME_SHORTEST_INTERVAL`].
const REAL_TIME_LONG_ROUNDS: u32 = 10;

/// Random intervals averaging the nominal one, so that sampling cannot lock
/// onto a periodic pattern in the target (every 10 ms timer, say).
#[derive(Debug)]
struct Jitter {
    state: u64,
}

impl Jitter {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Self { state: seed | 1 }
    }

    /// An interval drawn uniformly from half to one and a half `interval`.
    fn next(&mut self, interval: Duration) -> Duration {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        interval.mul_f64(0.5 + unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_averages_the_interval_and_stays_in_range() {
        let mut jitter = Jitter::new();
        let interval = Duration::from_millis(10);
        let draws: Vec<Duration> = (0..10_000).map(|_| jitter.next(interval)).collect();
        assert!(draws
            .iter()
            .all(|d| *d >= interval / 2 && *d <= interval * 3 / 2));
        let mean = draws.iter().sum::<Duration>() / draws.len() as u32;
        let error = (mean.as_secs_f64() - 0.010).abs();
        assert!(error < 0.0002, "mean {mean:?}");
    }
}
