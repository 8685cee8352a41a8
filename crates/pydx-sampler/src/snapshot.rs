//! One consistent snapshot of every Python thread of a process.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use std::sync::Arc;

use pydx_cpython::{
    CodeInfo, Frame, Local, PythonProcess, PythonThread, Value, WalkError, GIL_STATE_SIZE,
};
use pydx_libraries::statement_arguments;
use pydx_native::{merge, unwind_until, MergedFrame, NativeStack, NativeUnwinder, PythonCall};
use pydx_profile::{Activity, CodeKind};
use pydx_remote::{
    process_alive, PerfStackSampler, ProcessPause, RunState, Switch, SwitchesOver, SyscallState,
    ThreadStateReader, UserPosition,
};

/// The x86_64 `futex` system call number.
const SYS_FUTEX: i64 = 202;

/// A Python thread and its OS state at one instant.
#[derive(Debug, Clone)]
pub struct ThreadSnapshot {
    /// The Python-level view: stack, GIL, name.
    pub python: PythonThread,
    /// On a CPU, waiting for the GIL, or idle.
    pub activity: Activity,
    /// Values read from some of its frames, when the snapshot was observed
    /// (see [`Snapshotter::observe`]).
    pub observations: Vec<FrameObservation>,
    /// The SQL statement its database driver was running, when the
    /// snapshot was observed and the thread was inside a driver's execute.
    pub statement: Option<SqlStatement>,
}

/// The SQL statement of a database driver call, and the program's frame
/// that made the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStatement {
    /// The index in [`PythonThread::frames`] of the innermost frame of the
    /// program's own code outside the driver's frame: the call site.
    pub caller: usize,
    /// The statement, cut at [`MAX_STATEMENT_CHARS`] characters (and `…`
    /// added when it was longer).
    pub text: String,
    /// Tells this call from another: a hash of the statement and of the
    /// values of its parameters (which are not kept).
    pub call: u64,
}

/// Longest part of an SQL statement read from a driver's frame.
pub const MAX_STATEMENT_CHARS: usize = 300;

/// Most values of a statement's parameters read to tell calls apart.
const MAX_PARAMETER_VALUES: usize = 32;
/// Times a frame's locals are read again at once when one of its
/// arguments changed while it was read (a short call returning under the
/// reader): unread, such calls would be missing from the observations,
/// which then over-represent long calls.
const ARGUMENT_RETRIES: usize = 2;

/// What pydx read from the local variables of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameObservation {
    /// The frame's index in [`PythonThread::frames`].
    pub frame: usize,
    /// The call's arguments as `name=repr, ...`.
    pub arguments: String,
    /// Each local variable's name and type.
    pub local_types: Vec<(String, String)>,
}

/// How a snapshot treats the running target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Stop the target's threads for the duration of the read (a few
    /// microseconds per thread), so every stack is exactly as it was.
    Paused,
    /// Read while the target runs. A stack that changes while it is read
    /// is read again until it is seen whole, or left out as unreadable,
    /// never recorded torn.
    NonBlocking,
    /// Read while the target runs, and pause it only to read again the
    /// stacks that changed while they were read: exact stacks, no sample
    /// lost, and a program whose stacks stay put is never paused.
    PausedWhenTorn,
    /// [`Consistency::Paused`] for Python before 3.11, and
    /// [`Consistency::PausedWhenTorn`] from 3.11 on (where most stacks read
    /// without pausing come out whole). Before 3.11 a program that calls
    /// and returns quickly changes its frames faster than they can be read
    /// one by one: reading it without pausing loses many samples, and keeps
    /// more of the moments that are easy to read (short stacks), which
    /// skews the profile.
    #[default]
    ByVersion,
}

impl Consistency {
    /// `paused`, `nonblocking`, `paused-when-torn` or `by-version`, as
    /// recorded in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Paused => "paused",
            Consistency::NonBlocking => "nonblocking",
            Consistency::PausedWhenTorn => "paused-when-torn",
            Consistency::ByVersion => "by-version",
        }
    }

    /// The mode used for `process`: [`Consistency::ByVersion`] resolved
    /// for its Python version, except that a process another tracer holds (a
    /// debugger, strace) cannot be paused, so the default then reads it
    /// without pausing. An explicit mode is kept as it is.
    pub fn for_process(self, process: &PythonProcess) -> Consistency {
        match self {
            Consistency::ByVersion if tracer_of(process.pid()).is_some() => {
                Consistency::NonBlocking
            }
            Consistency::ByVersion if process.version().at_least(3, 11) => {
                Consistency::PausedWhenTorn
            }
            Consistency::ByVersion => Consistency::Paused,
            other => other,
        }
    }
}

/// A thread's OS state read just before a pause.
#[derive(Debug, Clone, Copy)]
struct OsState {
    tid: u32,
    run: Option<RunState>,
    /// Runnable but off its CPU, by its newest context switch: waiting for
    /// a CPU.
    waiting_for_cpu: bool,
    syscall: Option<SyscallState>,
}

/// What [`Snapshotter::read_paused`] gives back.
type PausedRead = (
    Result<Vec<PythonThread>, WalkError>,
    Vec<OsState>,
    Vec<ProcessPause>,
    HashMap<u32, NativeStack>,
);

/// How the threads of paused reads were read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadReads {
    /// Threads paused while they were read.
    pub paused: u64,
    /// Threads read without a pause, found off their CPU before and
    /// after the read.
    pub unpaused: u64,
}

impl std::ops::AddAssign for ThreadReads {
    fn add_assign(&mut self, other: Self) {
        self.paused += other.paused;
        self.unpaused += other.unpaused;
    }
}

/// A thread found asleep (or, without native stacks, waiting for a CPU) before a
/// paused read, and not paused.
struct Sleeper {
    tid: u32,
    /// Its switch count ([`ThreadStateReader::switch_count`]) when found
    /// off its CPU.
    switch_count: u64,
    /// The system call it sleeps in.
    syscall: Option<SyscallState>,
    /// Its native stack, when native stacks are read and it could be
    /// unwound without a pause.
    native: Option<NativeStack>,
}

/// What the last paused read found of a thread off its CPU that did not
/// run while it was read: while its switch count stays the same, it has
/// not run since, and all of this still holds.
#[derive(Debug)]
struct AsleepBefore {
    switch_count: u64,
    syscall: Option<SyscallState>,
    native: Option<NativeStack>,
}

/// The threads of `first`, except those whose OS id is in `again_ids`,
/// which are taken from `again` (read again, paused).
fn replace_threads(
    first: Vec<PythonThread>,
    mut again: Vec<PythonThread>,
    again_ids: &[u32],
) -> Vec<PythonThread> {
    first
        .into_iter()
        .map(|thread| {
            let read_again = thread.native_id.is_some_and(|tid| again_ids.contains(&tid));
            match again.iter().position(|t| t.thread_id == thread.thread_id) {
                Some(index) if read_again => again.swap_remove(index),
                _ => thread,
            }
        })
        .collect()
}

/// The threads of a read taken with some threads paused, where a thread
/// that was whole in the read before (`whole`) and is torn in this one
/// (it ran on while the others were paused) keeps its whole stack.
fn keep_whole(again: Vec<PythonThread>, whole: Vec<PythonThread>) -> Vec<PythonThread> {
    let mut whole: HashMap<u64, PythonThread> = whole
        .into_iter()
        .filter(|t| t.error.is_none())
        .map(|t| (t.thread_id, t))
        .collect();
    again
        .into_iter()
        .map(|thread| match thread.error {
            Some(error) if error.is_torn() => whole.remove(&thread.thread_id).unwrap_or(thread),
            _ => thread,
        })
        .collect()
}

/// Threads read while the target ran, with each stack that holds a frame
/// whose code object could not be read counted as torn: the frame returned
/// while it was read and its code object (a function created per call) was
/// freed, so what the frame pointed to is no longer its code.
fn unreadable_code_as_torn(mut threads: Vec<PythonThread>) -> Vec<PythonThread> {
    for thread in &mut threads {
        let unreadable = thread
            .frames
            .iter()
            .any(|frame| &*frame.code.name == CodeInfo::UNREADABLE);
        if thread.error.is_none() && unreadable {
            thread.frames.clear();
            thread.error = Some(WalkError::Torn { attempts: 1 });
        }
    }
    threads
}

/// Takes snapshots of one process.
#[derive(Debug)]
pub struct Snapshotter {
    process: PythonProcess,
    os_states: ThreadStateReader,
    consistency: Consistency,
    /// The GILs some thread held at the previous snapshot.
    held_before: Vec<u64>,
    /// The last snapshot was taken again, paused, after a torn read.
    paused_again: bool,
    /// Threads the last snapshot paused, and read without a pause.
    thread_reads: ThreadReads,
    /// Native stacks are read and merged into the Python ones.
    native: Option<NativeStacks>,
    /// Threads asleep at the last paused read, by id.
    asleep_before: HashMap<u32, AsleepBefore>,
    /// When the OS-state files of exited threads were last closed.
    files_checked: std::time::Instant,
    /// When the sampling thread got its CPU for the next snapshot (see
    /// [`Snapshotter::sampler_woke_at`]).
    woke_ns: Option<u64>,
}

/// How often the files and watches kept open for threads that have since
/// exited are closed (a thread pool that keeps starting threads would
/// otherwise leave a descriptor behind for each).
const FORGET_EXITED_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Which native frames a snapshot shows (see [`Snapshotter::with_native`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NativeFrames {
    /// Python stacks only.
    #[default]
    None,
    /// Native frames of extensions, libraries and built-in functions, with
    /// Python frames in place of the interpreter's evaluation loop.
    Merged,
    /// Every native frame, the interpreter's own included.
    All,
}

/// How native stacks are captured (see [`Snapshotter::with_native`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NativeCapture {
    /// Every thread is held stopped (ptrace) while its registers, native
    /// stack and Python stack are read: the two always belong together, at
    /// the price of a pause per sample.
    #[default]
    Pause,
    /// The kernel copies each thread's registers and the top of its stack
    /// every `period` of the thread's CPU time (`perf_event_open`), without
    /// stopping it; the newest copy is merged with the Python stack read
    /// afterwards. The two can be a period apart, so a stack that changed
    /// in between does not fit and keeps its Python frames only; a thread
    /// that did not run in the last two periods gets no native frames.
    Perf {
        /// CPU time of a thread between two of the kernel's copies.
        period: std::time::Duration,
    },
}

/// Bytes of stack the kernel copies with each sample in
/// [`NativeCapture::Perf`] (its limit is just under 64 KiB): a stack whose
/// frames up to the outermost Python call need more is cut short.
const PERF_STACK_BYTES: u32 = 32 * 1024;

/// How many native stacks were merged into Python ones, and how many could
/// not be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NativeCounts {
    /// Thread stacks merged.
    pub merged: u64,
    /// Thread stacks whose native stack did not fit the Python one (they
    /// are kept with their Python frames only).
    pub mismatched: u64,
    /// Thread stacks whose native part stopped early.
    pub cut_short: u64,
    /// Thread stacks with no native part: with [`NativeCapture::Perf`], the
    /// thread did not run lately (or could not be sampled).
    pub unsampled: u64,
    /// Thread stacks merged with a native stack read while the thread
    /// slept in a system call, without pausing it (included in `merged`).
    pub asleep: u64,
    /// Thread stacks with no native part: with [`NativeCapture::Perf`], the
    /// Python stack changed between the reads before and after the kernel's
    /// copy, so which Python frame the copy belongs to is not known.
    pub changed: u64,
}

impl std::ops::Add for NativeCounts {
    type Output = NativeCounts;

    fn add(self, other: NativeCounts) -> NativeCounts {
        NativeCounts {
            merged: self.merged + other.merged,
            mismatched: self.mismatched + other.mismatched,
            cut_short: self.cut_short + other.cut_short,
            unsampled: self.unsampled + other.unsampled,
            asleep: self.asleep + other.asleep,
            changed: self.changed + other.changed,
        }
    }
}

/// The native side of a snapshotter.
#[derive(Debug)]
struct NativeStacks {
    unwinder: NativeUnwinder,
    keep_all: bool,
    /// One code object per native function (by name and binary), so that
    /// frames of one function are one frame to the recorder.
    functions: HashMap<(Arc<str>, Arc<str>), Arc<CodeInfo>>,
    counts: NativeCounts,
    /// With [`NativeCapture::Perf`], the kernel's samplers by thread.
    perf: Option<PerfSamplers>,
}

/// The kernel's per-thread samplers of [`NativeCapture::Perf`].
#[derive(Debug)]
struct PerfSamplers {
    period: std::time::Duration,
    by_thread: HashMap<u32, PerfStackSampler>,
    /// Threads whose sampler could not be opened (not tried again).
    unopenable: HashSet<u32>,
    /// Each thread's last Python stack ([`stack_signature`]) and when its
    /// read began (`CLOCK_MONOTONIC` ns).
    last_reads: HashMap<u32, (u64, u64)>,
}

/// What identifies a thread's Python stack at one instant: each frame's
/// address, code and line.
fn stack_signature(thread: &PythonThread) -> u64 {
    let mut hasher = DefaultHasher::new();
    for frame in &thread.frames {
        (frame.addr, Arc::as_ptr(&frame.code), frame.line).hash(&mut hasher);
    }
    hasher.finish()
}

/// The Python calls of `thread`'s frames, as a merge matches them.
fn python_calls(thread: &PythonThread) -> Vec<PythonCall> {
    thread
        .frames
        .iter()
        .map(|f| PythonCall {
            starts_call: f.entry,
            call_frame: f.call_frame,
        })
        .collect()
}

impl NativeStacks {
    /// Replaces each paused thread's frames with its merged stack, and each
    /// thread read asleep with its stack merged with its native stack in
    /// `asleep`.
    fn merge_paused(
        &mut self,
        threads: &mut [PythonThread],
        pauses: &[ProcessPause],
        mut asleep: HashMap<u32, NativeStack>,
    ) {
        for thread in threads.iter_mut().filter(|t| t.error.is_none()) {
            let Some(tid) = thread.native_id else {
                continue;
            };
            let calls = python_calls(thread);
            if let Some(stack) = asleep.remove(&tid) {
                if self.merge_thread(thread, &stack, &calls) {
                    self.counts.asleep += 1;
                }
                continue;
            }
            let Some(registers) = pauses.iter().find_map(|pause| pause.registers(tid)) else {
                continue;
            };
            let stack = self
                .unwinder
                .unwind(registers, unwind_until(&calls, self.keep_all));
            self.merge_thread(thread, &stack, &calls);
        }
    }

    /// The native stack of `thread`, asleep in a system call at `user`,
    /// unwound without pausing it (the caller checks that it did not run
    /// meanwhile); `None` when the unwind needed the frame pointer, which
    /// the kernel does not give, or stopped early.
    fn unwind_asleep(&mut self, thread: &PythonThread, user: UserPosition) -> Option<NativeStack> {
        let calls = python_calls(thread);
        self.unwinder.unwind_without_frame_pointer(
            user.instruction,
            user.stack,
            unwind_until(&calls, self.keep_all),
        )
    }

    /// Replaces each thread's frames with its stack merged with the
    /// newest native stack the kernel copied, read at `read_started`
    /// (`CLOCK_MONOTONIC` ns; `None` without [`NativeCapture::Perf`]). The
    /// copy is merged only if it is recent and was taken while the thread's
    /// Python stack stayed as it is: the read before this one, begun before
    /// the copy was taken, found the same frames at the same lines. Otherwise the copy might belong to another
    /// Python call than the one read (a native function shown under a
    /// Python function that never calls it).
    fn merge_sampled(&mut self, threads: &mut [PythonThread], read_started: Option<u64>) {
        let Some(read_started) = read_started else {
            return;
        };
        let Some(mut perf) = self.perf.take() else {
            return;
        };
        let live: Vec<u32> = threads.iter().filter_map(|t| t.native_id).collect();
        perf.by_thread.retain(|tid, _| live.contains(tid));
        perf.unopenable.retain(|tid| live.contains(tid));
        let previous = std::mem::take(&mut perf.last_reads);
        let now = pydx_remote::monotonic_ns();
        let recent = 2 * perf.period.as_nanos() as u64;
        for thread in threads.iter_mut().filter(|t| t.error.is_none()) {
            let Some(tid) = thread.native_id else {
                continue;
            };
            let signature = stack_signature(thread);
            perf.last_reads.insert(tid, (signature, read_started));
            let sampler = match perf.by_thread.entry(tid) {
                std::collections::hash_map::Entry::Occupied(entry) => Some(entry.into_mut()),
                std::collections::hash_map::Entry::Vacant(_) if perf.unopenable.contains(&tid) => {
                    None
                }
                std::collections::hash_map::Entry::Vacant(entry) => {
                    match PerfStackSampler::open(tid, perf.period, PERF_STACK_BYTES) {
                        Ok(sampler) => Some(entry.insert(sampler)),
                        Err(_) => {
                            perf.unopenable.insert(tid);
                            None
                        }
                    }
                }
            };
            let sample = sampler
                .and_then(|s| s.latest())
                .filter(|s| now.saturating_sub(s.time_ns) <= recent);
            let Some(sample) = sample else {
                self.counts.unsampled += 1;
                continue;
            };
            let steady = previous
                .get(&tid)
                .is_some_and(|&(before, started)| before == signature && sample.time_ns >= started);
            if !steady {
                self.counts.changed += 1;
                continue;
            }
            let calls = python_calls(thread);
            let stack = self.unwinder.unwind_copied(
                sample.registers,
                sample.stack,
                unwind_until(&calls, self.keep_all),
            );
            self.merge_thread(thread, &stack, &calls);
        }
        self.perf = Some(perf);
    }

    /// Replaces `thread`'s frames with `stack` merged with them (`calls`)
    /// and says so, or counts a stack that does not fit.
    fn merge_thread(
        &mut self,
        thread: &mut PythonThread,
        stack: &NativeStack,
        calls: &[PythonCall],
    ) -> bool {
        let merged = match merge(stack, calls, self.keep_all) {
            Ok(merged) => merged,
            Err(_) => {
                self.counts.mismatched += 1;
                return false;
            }
        };
        self.counts.merged += 1;
        self.counts.cut_short += u64::from(!stack.complete && !calls.is_empty());
        let python = std::mem::take(&mut thread.frames);
        thread.frames = merged
            .into_iter()
            .map(|frame| match frame {
                MergedFrame::Python(index) => python[index].clone(),
                MergedFrame::Native(native) => {
                    let code = self
                        .functions
                        .entry((native.function.clone(), native.module.clone()))
                        .or_insert_with(|| {
                            Arc::new(CodeInfo::named(0, &native.function, &native.module, 0))
                        })
                        .clone();
                    Frame {
                        code,
                        line: 0,
                        addr: 0,
                        calling: Some(true),
                        entry: false,
                        call_frame: 0,
                    }
                }
            })
            .collect();
        true
    }
}

/// Why a snapshot could not be taken at all.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The process has exited.
    #[error("process {0} has exited")]
    ProcessExited(u32),
    /// Reading the interpreter state failed as a whole.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// Pausing the target failed for a reason other than a thread exiting.
    #[error(transparent)]
    Pause(#[from] pydx_remote::Error),
}

impl Snapshotter {
    /// Takes snapshots of `process` with the given consistency (resolved
    /// for it, see [`Consistency::for_process`]).
    pub fn new(process: PythonProcess, consistency: Consistency) -> Self {
        let pid = process.pid();
        let consistency = consistency.for_process(&process);
        Self {
            process,
            os_states: ThreadStateReader::new(pid),
            consistency,
            held_before: Vec::new(),
            paused_again: false,
            thread_reads: ThreadReads::default(),
            woke_ns: None,
            native: None,
            asleep_before: HashMap::new(),
            files_checked: std::time::Instant::now(),
        }
    }

    /// Reads each thread's native stack too, and merges it with its Python
    /// stack. With [`NativeCapture::Pause`] native stacks are read with the
    /// threads stopped, so the process is paused for every snapshot; with
    /// [`NativeCapture::Perf`] the kernel copies them (which must be
    /// allowed: the error says what is missing), and the Python stacks are
    /// read as the snapshotter's consistency says.
    pub fn with_native(
        mut self,
        frames: NativeFrames,
        capture: NativeCapture,
    ) -> Result<Self, pydx_remote::Error> {
        if frames == NativeFrames::None {
            self.native = None;
            return Ok(self);
        }
        let unwinder = NativeUnwinder::new(self.process.pid(), self.process.binary())?;
        let perf = match capture {
            NativeCapture::Pause => {
                self.consistency = Consistency::Paused;
                None
            }
            NativeCapture::Perf { period } => {
                let pid = self.process.pid();
                let main = PerfStackSampler::open(pid, period, PERF_STACK_BYTES)?;
                Some(PerfSamplers {
                    period,
                    by_thread: HashMap::from([(pid, main)]),
                    unopenable: HashSet::new(),
                    last_reads: HashMap::new(),
                })
            }
        };
        self.native = Some(NativeStacks {
            unwinder,
            keep_all: frames == NativeFrames::All,
            functions: HashMap::new(),
            counts: NativeCounts::default(),
            perf,
        });
        Ok(self)
    }

    /// The consistency snapshots are taken with (resolved for the
    /// process's version, and paused when native stacks need a pause).
    pub fn consistency(&self) -> Consistency {
        self.consistency
    }

    /// The process's Python version, as `3.12.1`.
    pub fn version(&mut self) -> String {
        self.process.version().to_string()
    }

    /// Native stacks merged so far, when native stacks are read.
    pub fn native_counts(&self) -> Option<NativeCounts> {
        self.native.as_ref().map(|n| n.counts)
    }

    /// Whether the last snapshot had to be taken again with the process
    /// paused, because a stack changed while it was read.
    pub fn paused_again(&self) -> bool {
        self.paused_again
    }

    /// How many threads the last snapshot paused, and how many it read
    /// without a pause in a paused read (asleep, or waiting for a CPU):
    /// both 0 when it paused nothing.
    pub fn thread_reads(&self) -> ThreadReads {
        self.thread_reads
    }

    /// Tells the next snapshot when the sampling thread was switched onto
    /// its CPU for it (`CLOCK_MONOTONIC`, [`pydx_remote::monotonic_ns`]).
    /// A target thread preempted from then on counts as on a CPU, not as
    /// waiting for one: on a machine with every CPU busy, the sampling
    /// thread's own wake-up takes a target thread off its CPU just before
    /// its stack is read, and counting it as waiting would leave the CPU it
    /// was using out of the profile. Without it, only threads preempted
    /// while the snapshot is taken count so.
    pub fn sampler_woke_at(&mut self, instant_ns: u64) {
        self.woke_ns = Some(instant_ns);
    }

    /// The process being sampled.
    pub fn process(&mut self) -> &mut PythonProcess {
        &mut self.process
    }

    /// Reads every Python thread with its OS state. A paused read leaves
    /// threads waiting for a CPU running (see `read_paused`): nothing is
    /// read of them after their stacks.
    pub fn snapshot(&mut self) -> Result<Vec<ThreadSnapshot>, SnapshotError> {
        self.take_snapshot(false, |_, _| ())
            .map(|(threads, ())| threads)
    }

    /// Takes a snapshot, then runs `read_more` on it (to read locals or
    /// tasks, say, with [`Snapshotter::observe`] or through
    /// [`Snapshotter::process`]) before a paused target is resumed, so that
    /// what it reads belongs to the same instant as the stacks. A paused
    /// read pauses threads waiting for a CPU too: left running, one could
    /// get a CPU while `read_more` reads it.
    pub fn snapshot_then<T>(
        &mut self,
        read_more: impl FnOnce(&mut Self, &mut [ThreadSnapshot]) -> T,
    ) -> Result<(Vec<ThreadSnapshot>, T), SnapshotError> {
        self.take_snapshot(true, read_more)
    }

    /// [`Snapshotter::snapshot_then`]; `reads_after_stacks` says whether
    /// `read_more` reads anything.
    fn take_snapshot<T>(
        &mut self,
        reads_after_stacks: bool,
        read_more: impl FnOnce(&mut Self, &mut [ThreadSnapshot]) -> T,
    ) -> Result<(Vec<ThreadSnapshot>, T), SnapshotError> {
        let mut paused = None;
        self.paused_again = false;
        self.thread_reads = ThreadReads::default();
        let woke = self
            .woke_ns
            .take()
            .unwrap_or_else(pydx_remote::monotonic_ns);
        let stacks_read_at = pydx_remote::monotonic_ns();
        let read_started = self
            .native
            .as_ref()
            .is_some_and(|native| native.perf.is_some())
            .then_some(stacks_read_at);
        // The span in which the stacks were first copied from the target,
        // without a pause (see `unpaused_read_activity`).
        let mut read_span = None;
        // After a torn read, the threads read whole then (not read again).
        let mut whole_ids: Option<Vec<u32>> = None;
        let (threads, states_before) = match self.consistency {
            Consistency::NonBlocking => {
                let read = self.process.threads().map(unreadable_code_as_torn);
                read_span = self.process.last_read_span();
                (read, None)
            }
            Consistency::PausedWhenTorn => {
                let read = self.process.threads().map(unreadable_code_as_torn);
                read_span = self.process.last_read_span();
                let torn: Vec<Option<u32>> = match &read {
                    Ok(threads) => threads
                        .iter()
                        .filter(|t| t.error.is_some_and(|e| e.is_torn()))
                        .map(|t| t.native_id)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                // Only the threads read torn are paused (all of them if one's
                // OS id is unknown); should pausing fail (a tracer came), the
                // stacks that were read whole still count.
                let only: Option<Vec<u32>> = torn.iter().copied().collect();
                match (torn.is_empty(), read) {
                    (false, Ok(whole)) => {
                        match self.read_paused(only.as_deref(), reads_after_stacks, woke) {
                            Ok((again, states, pause, _)) => {
                                paused = Some(pause);
                                self.paused_again = true;
                                whole_ids = only.map(|torn| {
                                    whole
                                        .iter()
                                        .filter_map(|t| t.native_id)
                                        .filter(|tid| !torn.contains(tid))
                                        .collect()
                                });
                                (again.map(|again| keep_whole(again, whole)), Some(states))
                            }
                            Err(SnapshotError::Pause(_)) => (Ok(whole), None),
                            Err(error) => return Err(error),
                        }
                    }
                    (_, read) => (read, None),
                }
            }
            // `ByVersion` was resolved by `new`.
            Consistency::Paused | Consistency::ByVersion => {
                let (mut threads, states, pause, asleep) =
                    self.read_paused(None, reads_after_stacks, woke)?;
                if let (Some(native), Ok(threads)) = (&mut self.native, &mut threads) {
                    if native.perf.is_none() {
                        native.merge_paused(threads, &pause, asleep);
                    }
                }
                paused = Some(pause);
                (threads, Some(states))
            }
        };
        let mut threads = threads.map_err(|e| self.walk_error(e))?;
        let read_span = read_span.filter(|&(start, _)| start >= stacks_read_at);
        if self.files_checked.elapsed() >= FORGET_EXITED_EVERY {
            self.files_checked = std::time::Instant::now();
            self.os_states.forget_exited_threads();
        }
        if let Some(native) = &mut self.native {
            native.merge_sampled(&mut threads, read_started);
        }
        // Only threads of an interpreter whose GIL is held can be waiting for
        // it. A GIL held at the previous snapshot counts too: while it is
        // handed from one thread to another nobody holds it, and the threads
        // still asleep on it are waiting for it, not idle.
        let held: Vec<u64> = threads
            .iter()
            .filter(|t| t.holds_gil)
            .filter_map(|t| t.gil_address)
            .collect();
        let mut contended = std::mem::replace(&mut self.held_before, held.clone());
        contended.extend(held);
        let mut snapshots = Vec::with_capacity(threads.len());
        for python in threads {
            let gil_contended = python
                .gil_address
                .is_some_and(|gil| contended.contains(&gil));
            let read_unpaused = |tid: &u32| {
                states_before.is_none() || whole_ids.as_ref().is_some_and(|ids| ids.contains(tid))
            };
            let activity = match (python.native_id, &states_before) {
                (None, _) => Activity::Unknown,
                // Read again paused after a torn read (or read paused): its
                // state from just before the pause, unless it slept while it
                // was first read (the sample's time) and may have been read
                // asleep.
                (Some(tid), Some(states)) if !read_unpaused(&tid) => {
                    match states.iter().find(|s| s.tid == tid) {
                        Some(state)
                            if read_span.is_some_and(|(start, end)| {
                                self.os_states
                                    .switches_over(tid, start, end)
                                    .is_some_and(|over| over.slept)
                            }) && may_be_asleep(&python) =>
                        {
                            classify(
                                &python,
                                Some(RunState::Sleeping),
                                false,
                                gil_contended,
                                || {
                                    state
                                        .syscall
                                        .filter(|s| !matches!(s, SyscallState::Running))
                                },
                            )
                        }
                        Some(state) => classify(
                            &python,
                            state.run,
                            state.waiting_for_cpu,
                            gil_contended,
                            || state.syscall,
                        ),
                        None => Activity::Unknown,
                    }
                }
                (Some(tid), _) => {
                    let span = read_span.unwrap_or((stacks_read_at, pydx_remote::monotonic_ns()));
                    self.unpaused_read_activity(&python, tid, span, woke, gil_contended)
                }
            };
            snapshots.push(ThreadSnapshot {
                python,
                activity,
                observations: Vec::new(),
                statement: None,
            });
        }
        let more = read_more(self, &mut snapshots);
        drop(paused);
        Ok((snapshots, more))
    }

    /// The activity of thread `tid`, whose stack `python` was copied without
    /// a pause in `span` (`CLOCK_MONOTONIC` nanoseconds). A thread switched
    /// onto or off its CPU in that span may have been copied before or after
    /// the switch: one asleep at some point of it (when the read began, or
    /// from some time in it) counts as running only if it was read where it
    /// cannot sleep (see [`may_be_asleep`]), else a running sample would land
    /// on the line where it sleeps. One switched only after the span is
    /// classified as it was in it; one not switched since, as it is now.
    fn unpaused_read_activity(
        &mut self,
        python: &PythonThread,
        tid: u32,
        (start, end): (u64, u64),
        woke: u64,
        gil_contended: bool,
    ) -> Activity {
        let over = self.os_states.switches_over(tid, start, end);
        let during = over.and_then(|over| state_over_read(&over, woke, may_be_asleep(python)));
        let (run, waiting_for_cpu) = match during {
            Some((run, waiting)) => (Some(run), waiting),
            None => {
                let run = self.os_states.cpu_state(tid);
                let waiting =
                    run == Some(RunState::Running) && self.os_states.waits_for_cpu(tid, woke);
                (run, waiting)
            }
        };
        // One switched since it was read and running now cannot tell what it
        // slept in then.
        let switched = over.is_some();
        classify(python, run, waiting_for_cpu, gil_contended, || {
            self.os_states
                .syscall(tid)
                .filter(|s| !switched || !matches!(s, SyscallState::Running))
        })
    }

    /// Pauses the process (with `only`, just those of its threads) and
    /// reads its threads; returns them, the OS state of each thread from
    /// just before the pause, the pauses (the threads run again when they
    /// are dropped), and the native stacks of threads read asleep.
    ///
    /// A thread asleep (on a lock, the GIL, I/O, a timer) is not paused
    /// when the kernel counts the times threads are switched onto a CPU:
    /// its count, the same before and after the read, shows that it did not
    /// run meanwhile, so its stack was read whole. Pausing it would wake it
    /// (its wait returns early, or fails with EINTR) for nothing. One that
    /// did run is read again, paused. Without native stacks, and when
    /// nothing more is read after the stacks (not `reads_after_stacks`),
    /// a thread waiting for a CPU (runnable, its newest context switch
    /// taking it off a CPU: preempted, or woken since it slept) is read the
    /// same way: pausing it would take until the scheduler gives it a CPU.
    /// With native stacks (paused capture),
    /// a sleeping thread's native stack is unwound from the stack and
    /// instruction pointers the kernel saved when it entered its system
    /// call, under the same check; when that unwind would need the frame
    /// pointer (not saved there) or stops early, the thread is paused.
    /// `woke` is when the sampling thread got its CPU (see
    /// [`Snapshotter::sampler_woke_at`]), which tells threads waiting for
    /// a CPU from those it took off one.
    fn read_paused(
        &mut self,
        only: Option<&[u32]>,
        reads_after_stacks: bool,
        woke: u64,
    ) -> Result<PausedRead, SnapshotError> {
        let pid = self.process.pid();
        let tids = self
            .os_states
            .thread_ids()
            .map_err(|_| SnapshotError::ProcessExited(pid))?;
        let wanted: Vec<u32> = match only {
            Some(only) => tids.iter().copied().filter(|t| only.contains(t)).collect(),
            None => tids.clone(),
        };
        let native_paused = self.native.as_ref().is_some_and(|n| n.perf.is_none());
        let before = std::mem::take(&mut self.asleep_before);
        let mut asleep: Vec<Sleeper> = Vec::new();
        // A stopped thread never shows as running and its system call is
        // interrupted, so the OS states are read before pausing. The switch
        // count comes first: a thread switched on between it and its state
        // counts as having run. A thread asleep with the same count as at
        // the last read has not run since: it still sleeps in the same
        // system call, with the same native stack.
        let states: Vec<OsState> = tids
            .iter()
            .map(|&tid| {
                let switch_count = wanted
                    .contains(&tid)
                    .then(|| self.os_states.switch_count(tid))
                    .flatten();
                let run = self.os_states.cpu_state(tid);
                let sleeping = matches!(run, Some(RunState::Sleeping | RunState::DiskSleep));
                let runnable = run == Some(RunState::Running);
                // Without native stacks, a thread waiting for a CPU is read
                // like a sleeper: its Python stack stands still until it
                // runs again, and pausing it would wait until it does.
                let read_unpaused = sleeping
                    || (runnable
                        && !native_paused
                        && !reads_after_stacks
                        && self.os_states.off_cpu(tid));
                let unchanged = before
                    .get(&tid)
                    .filter(|b| read_unpaused && Some(b.switch_count) == switch_count);
                let syscall = match (unchanged, run) {
                    (Some(before), _) => before.syscall,
                    (None, Some(RunState::Sleeping)) => self.os_states.syscall(tid),
                    (None, Some(RunState::DiskSleep)) if native_paused => {
                        self.os_states.syscall(tid)
                    }
                    _ => None,
                };
                let user = match syscall {
                    Some(SyscallState::InSyscall { user, .. }) => Some(user),
                    _ => None,
                };
                if let (Some(switch_count), true) = (switch_count, read_unpaused) {
                    if !native_paused || user.is_some() {
                        asleep.push(Sleeper {
                            tid,
                            switch_count,
                            syscall,
                            native: unchanged.and_then(|b| b.native.clone()),
                        });
                    }
                }
                OsState {
                    tid,
                    run,
                    waiting_for_cpu: runnable && self.os_states.waits_for_cpu(tid, woke),
                    syscall,
                }
            })
            .collect();
        let held: Vec<u32> = wanted
            .into_iter()
            .filter(|tid| !asleep.iter().any(|sleeper| sleeper.tid == *tid))
            .collect();
        let mut pauses = vec![self.pause(&held)?];
        let mut threads = self.process.threads();
        let mut woke: Vec<u32> = Vec::new();
        if let (Some(native), true, Ok(read)) = (&mut self.native, native_paused, &threads) {
            for sleeper in asleep.iter_mut().filter(|s| s.native.is_none()) {
                let python = read
                    .iter()
                    .find(|t| t.native_id == Some(sleeper.tid) && t.error.is_none());
                let user = match sleeper.syscall {
                    Some(SyscallState::InSyscall { user, .. }) => user,
                    _ => continue,
                };
                let Some(python) = python else {
                    continue;
                };
                match native.unwind_asleep(python, user) {
                    Some(stack) => sleeper.native = Some(stack),
                    None => woke.push(sleeper.tid),
                }
            }
        }
        for sleeper in &asleep {
            if !woke.contains(&sleeper.tid)
                && self.os_states.switch_count(sleeper.tid) != Some(sleeper.switch_count)
            {
                woke.push(sleeper.tid);
            }
        }
        self.thread_reads = ThreadReads {
            paused: (held.len() + woke.len()) as u64,
            unpaused: (asleep.len() - woke.len()) as u64,
        };
        let mut asleep_stacks = HashMap::new();
        for sleeper in asleep.into_iter().filter(|s| !woke.contains(&s.tid)) {
            if let Some(stack) = &sleeper.native {
                asleep_stacks.insert(sleeper.tid, stack.clone());
            }
            self.asleep_before.insert(
                sleeper.tid,
                AsleepBefore {
                    switch_count: sleeper.switch_count,
                    syscall: sleeper.syscall,
                    native: sleeper.native,
                },
            );
        }
        if !woke.is_empty() {
            pauses.push(self.pause(&woke)?);
            let again = self.process.threads();
            threads = match (threads, again) {
                (Ok(first), Ok(again)) => Ok(replace_threads(first, again, &woke)),
                (_, again) => again,
            };
        }
        Ok((threads, states, pauses, asleep_stacks))
    }

    /// Pauses threads `tids` of the process.
    fn pause(&self, tids: &[u32]) -> Result<ProcessPause, SnapshotError> {
        let pid = self.process.pid();
        // An exiting process (a zombie) cannot be paused: it is gone.
        ProcessPause::new(pid, tids).map_err(|error| {
            if process_alive(pid) {
                SnapshotError::Pause(error)
            } else {
                SnapshotError::ProcessExited(pid)
            }
        })
    }

    /// Reads the local variables of the innermost frames of the program's
    /// own code (up to `frames_per_thread` per thread) of every thread that
    /// is running or only waiting for the GIL (its frames are those it will
    /// run next), for rules that reason about values; and, for every thread
    /// inside a database driver's execute (usually waiting for the server),
    /// the SQL statement it runs. Costs a few reads per frame, so the
    /// sampler does it only now and then, inside [`Snapshotter::snapshot_then`]
    /// so that a paused target is read before it runs on: a frame read
    /// later may have returned (its arguments cleared) or been reused by
    /// another call of the same function. Threads whose stack could not be
    /// read are left alone.
    pub fn observe(&mut self, threads: &mut [ThreadSnapshot], frames_per_thread: usize) {
        for thread in threads.iter_mut().filter(|t| t.python.error.is_none()) {
            thread.statement = self.statement(&thread.python);
        }
        let busy = |t: &&mut ThreadSnapshot| t.python.error.is_none() && t.activity.is_busy();
        for thread in threads.iter_mut().filter(busy) {
            let user_frames: Vec<usize> = thread
                .python
                .frames
                .iter()
                .enumerate()
                .filter(|(_, f)| CodeKind::of(&f.code.filename) == CodeKind::User)
                .map(|(i, _)| i)
                .take(frames_per_thread)
                .collect();
            for index in user_frames {
                let frame = &thread.python.frames[index];
                let mut read = self.process.locals(frame);
                for _ in 0..ARGUMENT_RETRIES {
                    let changed = |locals: &Vec<Local>| {
                        locals
                            .iter()
                            .any(|l| l.is_arg && l.value == Value::Unreadable)
                    };
                    if !read.as_ref().is_ok_and(changed) {
                        break;
                    }
                    read = self.process.locals(frame);
                }
                let Ok(locals) = read else {
                    continue;
                };
                let arguments: Vec<String> = locals
                    .iter()
                    .filter(|l| l.is_arg)
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                let local_types = locals
                    .iter()
                    .filter(|l| l.addr != 0)
                    .filter_map(|l| Some((l.name.clone(), l.type_name.clone()?)))
                    .collect();
                thread.observations.push(FrameObservation {
                    frame: index,
                    arguments: arguments.join(", "),
                    local_types,
                });
            }
        }
    }

    /// The SQL statement of the innermost driver call on `thread`'s stack
    /// whose statement is a `str`, with the program's frame that called it.
    fn statement(&mut self, thread: &PythonThread) -> Option<SqlStatement> {
        let frames = &thread.frames;
        frames.iter().enumerate().find_map(|(index, frame)| {
            let call = statement_arguments(&frame.code.qualname, &frame.code.filename)?;
            let caller = index
                + 1
                + frames[index + 1..]
                    .iter()
                    .position(|f| CodeKind::of(&f.code.filename) == CodeKind::User)?;
            let text = self
                .process
                .str_local(frame, call.sql, MAX_STATEMENT_CHARS + 1)
                .ok()??;
            let mut hasher = DefaultHasher::new();
            text.hash(&mut hasher);
            let parameters = call.parameters.and_then(|name| {
                self.process
                    .local_values(frame, name, MAX_PARAMETER_VALUES)
                    .ok()
                    .flatten()
            });
            for value in parameters.iter().flatten() {
                value.to_string().hash(&mut hasher);
            }
            Some(SqlStatement {
                caller,
                text: cut(text, MAX_STATEMENT_CHARS),
                call: hasher.finish(),
            })
        })
    }

    fn walk_error(&self, error: WalkError) -> SnapshotError {
        if error.is_process_gone() {
            SnapshotError::ProcessExited(self.process.pid())
        } else {
            SnapshotError::Walk(error)
        }
    }
}

/// Classifies a thread: on a CPU when the scheduler says it runs, waiting
/// for a CPU when it is runnable but its newest context switch took it off
/// its CPU (`waiting_for_cpu`); waiting for the GIL when it sleeps on a futex inside the GIL's own state (its
/// mutex or condition variables) while the GIL is in use, also when the
/// GIL's last holder is the thread itself, handing it over; idle otherwise.
/// A thread found running again when its system call is read woke up
/// between the two reads and counts as on a CPU. `syscall` is only asked
/// for when it can matter.
fn classify(
    thread: &PythonThread,
    run: Option<RunState>,
    waiting_for_cpu: bool,
    gil_contended: bool,
    syscall: impl FnOnce() -> Option<SyscallState>,
) -> Activity {
    match run {
        Some(RunState::Running) if waiting_for_cpu => Activity::CpuWait,
        Some(RunState::Running) => Activity::OnCpu,
        None => Activity::Unknown,
        Some(_) => match thread.gil_address {
            Some(gil) if gil_contended => match syscall() {
                Some(SyscallState::InSyscall {
                    number: SYS_FUTEX,
                    args,
                    ..
                }) if (gil..gil + GIL_STATE_SIZE).contains(&args[0]) => Activity::GilWait,
                Some(SyscallState::Running) => Activity::OnCpu,
                _ => Activity::Idle,
            },
            _ => Activity::Idle,
        },
    }
}

/// The CPU state of a thread whose stack was read without a pause, from
/// its switches in and after the read (`over`), and whether it was waiting
/// for a CPU: asleep if it slept at some point of the read and
/// `may_be_asleep` where it was read; else as it was at the read's end
/// (preempted before `woke`, when the sampling thread got its CPU, is
/// waiting for a CPU). `None` when its switches that far back are gone.
fn state_over_read(
    over: &SwitchesOver,
    woke: u64,
    may_be_asleep: bool,
) -> Option<(RunState, bool)> {
    Some(match over.at_end? {
        _ if over.slept && may_be_asleep => (RunState::Sleeping, false),
        (Switch::Preempted, at) => (RunState::Running, at < woke),
        _ => (RunState::Running, false),
    })
}

/// Whether `thread`, asleep at some point while its stack was read, may
/// have been read asleep: its innermost Python frame is in a call to native
/// code (where a thread sleeps in I/O, on a lock or a timer), or unknown.
/// Otherwise it was read running Python code, before it slept or after it
/// woke (or where it handed the GIL over, which it held running up to
/// there).
fn may_be_asleep(thread: &PythonThread) -> bool {
    thread
        .frames
        .first()
        .is_none_or(|frame| frame.calling != Some(false))
}

/// `text` cut at `max_chars` characters, with `…` added if it was longer.
fn cut(mut text: String, max_chars: usize) -> String {
    if let Some((end, _)) = text.char_indices().nth(max_chars) {
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The process tracing `pid` (a debugger, strace, another profiler), if any.
pub fn tracer_of(pid: u32) -> Option<u32> {
    pydx_remote::read_proc_text(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("TracerPid:"))?;
            line["TracerPid:".len()..].trim().parse::<u32>().ok()
        })
        .filter(|&tracer| tracer != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_read_running_with_an_unreadable_code_object_counts_as_torn() {
        let frame = |name: &str| Frame {
            code: Arc::new(CodeInfo::named(0x10, name, "app.py", 1)),
            line: 1,
            addr: 0x20,
            calling: None,
            entry: true,
            call_frame: 0,
        };
        let thread = |frames| PythonThread {
            thread_id: 1,
            native_id: Some(2),
            name: None,
            holds_gil: false,
            gil_address: None,
            frames,
            truncated: false,
            error: None,
            request: None,
        };
        let threads = unreadable_code_as_torn(vec![
            thread(vec![frame(CodeInfo::UNREADABLE), frame("main")]),
            thread(vec![frame("work"), frame("main")]),
        ]);
        assert!(threads[0].frames.is_empty());
        assert!(threads[0].error.is_some_and(|e| e.is_torn()));
        assert_eq!(threads[1].frames.len(), 2);
        assert!(threads[1].error.is_none());
    }

    #[test]
    fn sleeping_on_the_gil_is_waiting_for_it_even_while_handing_it_over() {
        const GIL: u64 = 0x7f00_0000_1000;
        let thread = |holds_gil| PythonThread {
            thread_id: 1,
            native_id: Some(2),
            name: None,
            holds_gil,
            gil_address: Some(GIL),
            frames: Vec::new(),
            truncated: false,
            error: None,
            request: None,
        };
        let futex_on = |addr| {
            Some(SyscallState::InSyscall {
                number: SYS_FUTEX,
                args: [addr, 0, 0, 0, 0, 0],
                user: UserPosition {
                    stack: 0x7ffc_0000,
                    instruction: 0x7f00_0000,
                },
            })
        };
        let sleeping = Some(RunState::Sleeping);
        let classified = |holds, contended, syscall: Option<SyscallState>| {
            classify(&thread(holds), sleeping, false, contended, || syscall)
        };
        assert_eq!(
            classified(false, true, futex_on(GIL + 8)),
            Activity::GilWait
        );
        // The GIL's last holder waiting for the next thread to take it.
        assert_eq!(classified(true, true, futex_on(GIL + 8)), Activity::GilWait);
        assert_eq!(classified(false, true, futex_on(0x1234)), Activity::Idle);
        assert_eq!(classified(false, false, futex_on(GIL + 8)), Activity::Idle);
        // Woken between the two reads.
        assert_eq!(
            classified(false, true, Some(SyscallState::Running)),
            Activity::OnCpu
        );
        assert_eq!(
            classify(
                &thread(false),
                Some(RunState::Running),
                false,
                false,
                || None
            ),
            Activity::OnCpu
        );
        // Preempted, or woken and not yet switched on.
        assert_eq!(
            classify(&thread(true), Some(RunState::Running), true, true, || None),
            Activity::CpuWait
        );
    }

    #[test]
    fn a_thread_that_slept_while_read_is_running_only_if_read_running_python() {
        let over = |at_end, slept| SwitchesOver {
            at_end: Some(at_end),
            slept,
        };
        let woke = 1_000;
        // Woken during the read (asleep when it began): read where it slept
        // unless its stack shows Python code running.
        let woken = over((Switch::In, 1_010), true);
        assert_eq!(
            state_over_read(&woken, woke, true),
            Some((RunState::Sleeping, false))
        );
        assert_eq!(
            state_over_read(&woken, woke, false),
            Some((RunState::Running, false))
        );
        // Gone to sleep during the read.
        let slept = over((Switch::Asleep, 1_020), true);
        assert_eq!(
            state_over_read(&slept, woke, true),
            Some((RunState::Sleeping, false))
        );
        // On its CPU throughout, switched only after the read.
        let ran = over((Switch::In, 500), false);
        assert_eq!(
            state_over_read(&ran, woke, true),
            Some((RunState::Running, false))
        );
        // Preempted before the sampling thread got its CPU: waiting for one;
        // after, by the sampling thread itself: running.
        assert_eq!(
            state_over_read(&over((Switch::Preempted, 900), false), woke, true),
            Some((RunState::Running, true))
        );
        assert_eq!(
            state_over_read(&over((Switch::Preempted, 1_000), false), woke, true),
            Some((RunState::Running, false))
        );
        // Its switches before the read are gone: not settled here.
        let unknown = SwitchesOver {
            at_end: None,
            slept: true,
        };
        assert_eq!(state_over_read(&unknown, woke, true), None);
    }

    #[test]
    fn only_a_thread_read_inside_a_call_may_be_asleep() {
        let thread = |calling: Option<bool>| PythonThread {
            thread_id: 1,
            native_id: Some(2),
            name: None,
            holds_gil: false,
            gil_address: None,
            frames: vec![Frame {
                code: Arc::new(CodeInfo::named(0x1000, "handler", "app.py", 1)),
                line: 3,
                addr: 0x2000,
                calling,
                entry: false,
                call_frame: 0,
            }],
            truncated: false,
            error: None,
            request: None,
        };
        assert!(may_be_asleep(&thread(Some(true))));
        assert!(may_be_asleep(&thread(None)));
        assert!(!may_be_asleep(&thread(Some(false))));
        let mut no_frames = thread(Some(false));
        no_frames.frames.clear();
        assert!(may_be_asleep(&no_frames));
    }

    #[test]
    fn long_statements_are_cut_at_a_character_boundary() {
        assert_eq!(cut("SELECT 1".into(), 300), "SELECT 1");
        assert_eq!(cut("SELECT 'é'".into(), 9), "SELECT 'é…");
        assert_eq!(cut("abc".into(), 3), "abc");
    }
}
