//! The in-memory profile: interned strings, frames, stacks and threads,
//! exact sample counts, and a per-thread timeline.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

use pydx_libraries::{plays, Role};
use serde::{Deserialize, Serialize};

use crate::timeline::{Run, Timeline};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The position of this id in its table.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// An interned string.
    StrId
);
id_type!(
    /// An interned frame (function, file, line).
    FrameId
);
id_type!(
    /// A node of the stack tree: a frame and the stack it was called from.
    StackId
);
id_type!(
    /// A thread of a sampled process.
    ThreadId
);
id_type!(
    /// An interned set of labels (such as the HTTP endpoint being served).
    LabelSetId
);

/// Label carrying the asyncio task a sample belongs to (its name).
const LABEL_TASK: &str = "pydx.task";
/// Stack tree nodes kept before new stacks are cut short (see
/// [`Profile::stack`]): about 3.5 MB with their index, and about as much
/// again for the counts of the stacks they end. A web service's recordings
/// hold far fewer (the corpus's: 300 to 2,100 nodes in 8 s); a program whose
/// every sample is a new stack fills it in under a minute at 1 kHz, and
/// memory stays flat from there.
pub const STACK_BUDGET: usize = 1 << 17;

/// Stack tree nodes, the cut-short ends included, past which a new stack
/// is cut short at the nearest known node that already ends one (or at
/// the root): the tree's index then never grows past the size it took on
/// to hold [`STACK_BUDGET`] nodes.
const STACK_NODE_LIMIT: usize = STACK_BUDGET + STACK_BUDGET / 2;

/// Distinct sample keys counted before a new key's stack is cut short to
/// one already counted (see [`Profile::add_timed_samples`]): three
/// quarters of a 65,536-slot table (about 2.6 MB), leaving room for the
/// cut-short keys themselves below the load at which the table doubles
/// (57,344 keys). A program whose every sample is a new stack counts
/// about 38,000 keys when the stack tree fills (about 0.3 per node) and
/// reaches this budget some minutes later, without the table growing.
pub const SAMPLE_KEY_BUDGET: usize = (1 << 16) / 4 * 3;

/// The function name of the frame that ends a stack cut short because the
/// profile already holds [`STACK_BUDGET`] stack nodes.
pub const OTHER_STACKS: &str = "<more distinct stacks than pydx keeps>";

/// Distinct observations of values (arguments, local variables' types,
/// SQL statements; see [`Profile::observe`]) a profile keeps: three
/// quarters of a 32,768-slot table, with their texts a few MB at most.
/// Once a new one would pass it, values stop being observed for the rest of
/// the recording, so that what was kept is the first part of it, not a
/// selection of the values seen earliest (which would look repeated).
pub const OBSERVATION_BUDGET: usize = (1 << 15) / 4 * 3;

/// The function name of a frame whose code object could not be read when
/// it was sampled (the reader's own marker, kept as is).
pub const UNREADABLE_CODE: &str = "<unreadable code object>";
/// Label set on samples of a task that was waiting (suspended in an await),
/// recorded on a pseudo-thread per task.
const LABEL_TASK_STATE: &str = "pydx.task.state";
/// The value of [`LABEL_TASK_STATE`] for a waiting task.
const TASK_WAITING: &str = "waiting";

/// Label carrying the HTTP endpoint a thread was serving, as
/// `METHOD /path/{id}` (identifiers in the path replaced).
const LABEL_ENDPOINT: &str = "endpoint";

/// Label telling one request of a thread from the next: `0` to `3`, moved
/// on each time the thread is found serving another request object, so
/// that samples of two requests in a row (of one endpoint) are told apart.
const LABEL_REQUEST_TURN: &str = "pydx.request";

/// Label set on samples of a thread whose asyncio event loop was stuck in
/// a call rather than waiting for events: that time blocks every task, so
/// profiles show it even when the thread slept (in `time.sleep`, say).
const LABEL_EVENT_LOOP: &str = "pydx.event_loop";
/// The value of [`LABEL_EVENT_LOOP`] for a stuck loop.
const EVENT_LOOP_BLOCKED: &str = "blocked";

/// What pydx knew of the work a sample was part of, beyond its stack. It
/// is kept as the sample's labels (see [`Profile::work_labels`]), under
/// names other pprof tools show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work<'a> {
    /// The HTTP endpoint the thread was serving, as `METHOD /path/{id}`
    /// (identifiers in the path replaced).
    pub endpoint: Option<&'a str>,
    /// Tells one request of a thread from the next: `0` to `3`, moved on
    /// each time the thread is found serving another request object, so
    /// that samples of two requests in a row (of one endpoint) are told
    /// apart.
    pub request_turn: Option<&'a str>,
    /// The asyncio task the sample belongs to (its name).
    pub task: Option<&'a str>,
    /// The task was waiting, suspended in an await (recorded on a
    /// pseudo-thread per task).
    pub task_waiting: bool,
    /// The thread's asyncio event loop was stuck in a call rather than
    /// waiting for events: that time blocks every task, so profiles show
    /// it even when the thread slept (in `time.sleep`, say).
    pub event_loop_blocked: bool,
}

/// What an observation of a frame records (see [`Profile::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Observed {
    /// The arguments of one call: the value is `name=repr, ...`.
    CallArgs,
    /// An observation of a frame that found the same frame with the same
    /// arguments at the thread's previous observation (the same call still
    /// running, or an identical call); the value is the arguments (empty in
    /// profiles written before it was recorded).
    CallArgsAgain,
    /// The type of the local variable with this name: the value is the
    /// type's name.
    LocalType(StrId),
    /// The SQL statement a database driver call was running (its first
    /// characters, the value), recorded on the program's frame that made
    /// the call, so that a slow call site can be shown with its SQL.
    SqlStatement,
    /// Counted on the program's frame that made a database call when two
    /// successive observations of a thread, whose stack did not change in
    /// between, found the same call running: the same statement with the
    /// same parameter values (the values themselves are not kept).
    SqlSameCall,
    /// Like [`Observed::SqlSameCall`], when they found another call:
    /// another statement, or other parameter values. Quick calls made one
    /// after another with identical stacks (in a loop) show as these.
    SqlNewCall,
    /// How a sample's innermost frame was running.
    Exec(Execution),
}

/// How a sample's innermost frame was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Execution {
    /// The interpreter ran its bytecode.
    Bytecode,
    /// It was inside a call to native code.
    NativeCall,
}

/// Whose code a source file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// The program's own code.
    User,
    /// An installed package (site-packages, dist-packages).
    Library,
    /// The standard library, or code without a file (`<frozen ...>`).
    Stdlib,
    /// Compiled code: a native frame (recorded with `--native`), whose file
    /// is the binary that holds it.
    Native,
}

impl CodeKind {
    /// Whose code `file` (a `co_filename`, or a native frame's binary) is.
    pub fn of(file: &str) -> Self {
        if is_native_binary(file) {
            CodeKind::Native
        } else if file.contains("/site-packages/")
            || file.contains("/dist-packages/")
            || is_console_script(file)
        {
            CodeKind::Library
        } else if file.starts_with('<') || is_stdlib_path(file) {
            CodeKind::Stdlib
        } else {
            CodeKind::User
        }
    }
}

/// Whether `file` is the binary of a native frame rather than Python
/// source: a shared object (`libcrypto.so.3`, `_hashlib.cpython-311-….so`),
/// a Python executable (`/usr/bin/python3.11`, a static build's frames), or
/// `?` (code outside every mapped binary).
pub fn is_native_binary(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    file == "?"
        || name.ends_with(".so")
        || name.contains(".so.")
        || (file.contains("/bin/") && name.starts_with("python") && !name.ends_with(".py"))
}

/// A package's console-script launcher, such as `venv/bin/gunicorn`: a
/// file without the `.py` extension in a `bin` folder.
fn is_console_script(file: &str) -> bool {
    file.rsplit_once("/bin/")
        .is_some_and(|(_, name)| !name.contains('/') && !name.ends_with(".py"))
}

/// `…/lib/python3.X/…` outside site-packages: the standard library.
fn is_stdlib_path(file: &str) -> bool {
    file.contains("/lib/")
        && file.split('/').any(|part| {
            part.strip_prefix("python3.")
                .is_some_and(|minor| !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit()))
        })
}

/// One frame: a line of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The qualified function name (`Class.method` from Python 3.11 on).
    pub function: StrId,
    /// The source file as the target names it.
    pub file: StrId,
    /// The line being executed; 0 if unknown.
    pub line: u32,
    /// The line where the function starts (`co_firstlineno`).
    pub first_line: u32,
}

/// A node of the stack tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackNode {
    /// The innermost frame of this stack.
    pub frame: FrameId,
    /// The stack this frame was called from; `None` for an outermost frame.
    pub parent: Option<StackId>,
}

/// A sampled thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The process it belongs to.
    pub pid: u32,
    /// Its OS thread id (0 if unknown).
    pub tid: u32,
    /// `threading.get_ident()`.
    pub ident: u64,
    /// The name `threading` gave it.
    pub name: Option<StrId>,
}

/// What a thread was doing in a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Running on a CPU (or runnable, when pydx could not tell whether it
    /// had one).
    OnCpu,
    /// Blocked waiting for the GIL, which another thread holds.
    GilWait,
    /// Sleeping or blocked on anything else (I/O, locks, timers).
    Idle,
    /// Not known (the thread was exiting).
    Unknown,
    /// Runnable but off its CPU, waiting for the scheduler to give it one
    /// (preempted, or woken and not yet running): more runnable threads
    /// than CPUs. Its stack is where the thread stopped, which is no
    /// measure of where its CPU time goes.
    CpuWait,
}

impl Activity {
    /// The label value used in files: `on_cpu`, `gil_wait`, `idle`,
    /// `unknown`, `cpu_wait`.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::OnCpu => "on_cpu",
            Activity::GilWait => "gil_wait",
            Activity::Idle => "idle",
            Activity::Unknown => "unknown",
            Activity::CpuWait => "cpu_wait",
        }
    }

    /// Parses [`Activity::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "on_cpu" => Activity::OnCpu,
            "gil_wait" => Activity::GilWait,
            "idle" => Activity::Idle,
            "unknown" => Activity::Unknown,
            "cpu_wait" => Activity::CpuWait,
            _ => return None,
        })
    }

    /// Whether the thread had work to do: on a CPU, or waiting for one or
    /// for the GIL (not idle, not of unknown state).
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            Activity::OnCpu | Activity::GilWait | Activity::CpuWait
        )
    }

    /// Whether a sample in this state counts as CPU time: on a CPU, or of
    /// unknown state (counted as running). Not a thread waiting for a CPU.
    pub fn counts_as_cpu(self) -> bool {
        matches!(self, Activity::OnCpu | Activity::Unknown)
    }
}

/// A thread's state in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleState {
    /// On a CPU, waiting for the GIL, or idle.
    pub activity: Activity,
    /// Whether it held the GIL.
    pub holds_gil: bool,
}

/// What identifies a group of identical samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleKey {
    /// The thread.
    pub thread: ThreadId,
    /// Its stack; `None` when it ran no Python code.
    pub stack: Option<StackId>,
    /// Its state.
    pub state: SampleState,
    /// Labels attached to the sample; [`LabelSetId`] 0 is the empty set.
    pub labels: LabelSetId,
}

/// A sampled process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessMeta {
    /// Its PID.
    pub pid: u32,
    /// Its parent's PID, when it was known (a gunicorn worker's master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
    /// Its command line.
    pub command: String,
    /// Its working directory, when it was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The Python version it runs.
    pub python_version: String,
    /// Its memory, read about twice a second while it was sampled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<MemoryReading>,
    /// Readings of its memory that failed while it was alive.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_memory_readings: u64,
}

/// A descendant process that was not sampled although it may run Python.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnattachedProcess {
    /// Its PID.
    pub pid: u32,
    /// Why it could not be sampled.
    pub reason: String,
}

/// The requests a process served between two readings of its own count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedRequests {
    /// The first reading used, in nanoseconds since the start.
    pub start_ns: u64,
    /// The last reading used.
    pub end_ns: u64,
    /// Requests served between them.
    pub count: u64,
}

impl ProcessMeta {
    /// The requests this process served while its count was read (see
    /// [`ServedRequests::from_readings`]).
    pub fn served_requests(&self) -> Option<ServedRequests> {
        ServedRequests::from_readings(&self.memory)
    }

    /// The CPUs the process kept busy on average between its first and last
    /// reading of its CPU time (1.0 = one CPU all the time), by its own
    /// count; `None` without two readings a moment apart.
    pub fn measured_cpus(&self) -> Option<f64> {
        let mut timed = self
            .memory
            .iter()
            .filter_map(|r| Some((r.at_ns, r.cpu_ns?)));
        let (start_ns, start_cpu) = timed.next()?;
        let (end_ns, end_cpu) = timed.next_back()?;
        (end_ns > start_ns && end_cpu >= start_cpu)
            .then(|| (end_cpu - start_cpu) as f64 / (end_ns - start_ns) as f64)
    }
}

impl ServedRequests {
    /// The requests served between the first and the last of `readings`
    /// that agree with the order of the others (a count only grows, so a
    /// reading above most later ones or below most earlier ones was misread
    /// and is left out). `None` without two such readings.
    pub fn from_readings(readings: &[MemoryReading]) -> Option<Self> {
        let counts: Vec<(u64, u64)> = readings
            .iter()
            .filter_map(|r| Some((r.at_ns, r.served_requests?)))
            .collect();
        let agrees = |i: usize| {
            let (_, count) = counts[i];
            let in_order = counts[..i].iter().filter(|(_, c)| *c <= count).count()
                + counts[i + 1..].iter().filter(|(_, c)| *c >= count).count();
            in_order * 2 >= counts.len() - 1
        };
        let kept: Vec<(u64, u64)> = (0..counts.len())
            .filter(|&i| agrees(i))
            .map(|i| counts[i])
            .collect();
        let (&(start_ns, first), &(end_ns, last)) = (kept.first()?, kept.last()?);
        (end_ns > start_ns && last >= first).then_some(ServedRequests {
            start_ns,
            end_ns,
            count: last - first,
        })
    }
}

/// One reading of a process's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReading {
    /// When, in nanoseconds since the start of the recording.
    pub at_ns: u64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// Resident memory not shared with any other process, in bytes.
    pub private_bytes: u64,
    /// How many requests the process had served by then, from the count a
    /// gunicorn worker or uvicorn server keeps, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_requests: Option<u64>,
    /// CPU time the process had used by then (all threads, user and
    /// system), in nanoseconds, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<u64>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Facts about a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The tool and version that recorded it.
    pub tool: String,
    /// Wall-clock start, in nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// How long the recording lasted.
    pub duration_ns: u64,
    /// The sampling rate asked for.
    pub rate_hz: f64,
    /// Snapshots taken (each covers every thread of every process).
    pub snapshots: u64,
    /// Snapshots that failed.
    pub errors: u64,
    /// Thread stacks left out of the samples because they could not be
    /// read consistently (they kept changing while read).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unreadable_stacks: u64,
    /// Snapshots taken again with the process paused, because a stack
    /// changed while it was read (mode `paused-when-torn`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_rereads: u64,
    /// `paused`, `nonblocking` or `paused-when-torn`.
    pub mode: String,
    /// The processes sampled.
    pub processes: Vec<ProcessMeta>,
    /// Timeline runs shorter than this were merged (0: the timeline is exact).
    pub timeline_resolution_ns: u64,
    /// CPUs the sampled program could use (affinity and cgroup quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Descendant processes that could not be sampled (with
    /// `--subprocesses`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattached_processes: Vec<UnattachedProcess>,
    /// Observations of values left out once the profile held
    /// [`OBSERVATION_BUDGET`] of them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observations_left_out: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Self {
            tool: concat!("pydx ", env!("CARGO_PKG_VERSION")).to_string(),
            start_unix_ns: 0,
            duration_ns: 0,
            rate_hz: 100.0,
            snapshots: 0,
            errors: 0,
            unreadable_stacks: 0,
            paused_rereads: 0,
            mode: String::new(),
            processes: Vec::new(),
            timeline_resolution_ns: 0,
            cpus: None,
            unattached_processes: Vec::new(),
            observations_left_out: 0,
        }
    }
}

impl Meta {
    /// The nominal time between samples, in nanoseconds.
    pub fn interval_ns(&self) -> u64 {
        if self.rate_hz > 0.0 {
            (1e9 / self.rate_hz) as u64
        } else {
            0
        }
    }
}

/// How many samples of one kind were taken and how much time they stand for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Samples.
    pub count: u64,
    /// Nanoseconds of the thread's time the samples stand for.
    pub nanos: u64,
}

impl Tally {
    fn add(&mut self, count: u64, nanos: u64) {
        self.count += count;
        self.nanos = self.nanos.saturating_add(nanos);
    }
}

/// Values interned into a table with an index for lookup.
///
/// The index holds ids only (each value is stored once, in `items`): a
/// profile of a program whose every sample is a new stack holds a million
/// stack nodes, and a map from node to id would more than double what
/// each costs.
#[derive(Debug, Clone)]
struct Table<T: Hash + Eq + Clone> {
    items: Vec<T>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<T: Hash + Eq + Clone> Default for Table<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T: Hash + Eq + Clone> Table<T> {
    /// The id of a value equal to `item`, if one was interned.
    fn get<Q>(&self, item: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(item);
        self.index
            .find(hash, |&id| self.items[id as usize].borrow() == item)
            .copied()
    }

    fn intern(&mut self, item: T) -> u32 {
        let hash = self.hasher.hash_one(&item);
        let items = &self.items;
        if let Some(&id) = self.index.find(hash, |&id| items[id as usize] == item) {
            return id;
        }
        let id = u32::try_from(self.items.len()).expect("fewer than 2^32 interned values");
        self.items.push(item);
        let (items, hasher) = (&self.items, &self.hasher);
        self.index
            .insert_unique(hash, id, |&id| hasher.hash_one(&items[id as usize]));
        id
    }

    /// Changes the value of `id`; if another id already holds the new
    /// value, lookups keep finding that one.
    fn replace(&mut self, id: u32, item: T) {
        let old_hash = self.hasher.hash_one(&self.items[id as usize]);
        if let Ok(entry) = self.index.find_entry(old_hash, |&other| other == id) {
            entry.remove();
        }
        self.items[id as usize] = item;
        if self.get(&self.items[id as usize]).is_none() {
            let hash = self.hasher.hash_one(&self.items[id as usize]);
            let (items, hasher) = (&self.items, &self.hasher);
            self.index
                .insert_unique(hash, id, |&id| hasher.hash_one(&items[id as usize]));
        }
    }
}

/// The sizes of a profile's tables (see [`Profile::footprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Distinct strings.
    pub strings: usize,
    /// The bytes of those strings.
    pub string_bytes: usize,
    /// Distinct frames (function and line).
    pub frames: usize,
    /// Distinct stack nodes.
    pub stacks: usize,
    /// Threads seen.
    pub threads: usize,
    /// Distinct label sets.
    pub label_sets: usize,
    /// Distinct (thread, stack, state, labels) keys counted.
    pub sample_keys: usize,
    /// Timeline runs.
    pub runs: usize,
    /// Distinct observations of values.
    pub observations: usize,
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} stack nodes, {} frames, {} strings ({} kB), {} threads, {} label sets, \
             {} sample keys, {} timeline runs, {} observations",
            self.stacks,
            self.frames,
            self.strings,
            self.string_bytes / 1024,
            self.threads,
            self.label_sets,
            self.sample_keys,
            self.runs,
            self.observations
        )
    }
}

/// A profile: what was sampled, how often, and when.
///
/// Memory grows with the number of distinct stacks (the exact counts) and
/// with the number of times a thread changed what it was doing (the
/// timeline, which is merged to a coarser resolution if it grows past a
/// budget), not with the number of samples.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Facts about the recording.
    pub meta: Meta,
    strings: Table<String>,
    frames: Table<Frame>,
    stacks: Table<StackNode>,
    threads: Vec<ThreadInfo>,
    thread_index: HashMap<(u32, u64, u32), ThreadId>,
    label_sets: Table<Vec<(StrId, StrId)>>,
    counts: HashMap<SampleKey, Tally>,
    timeline: Timeline,
    observations: HashMap<(FrameId, Observed, StrId), u64>,
}

impl Profile {
    /// An empty profile with the given metadata.
    pub fn new(meta: Meta) -> Self {
        let mut profile = Self {
            meta,
            ..Self::default()
        };
        // Label set 0 is the empty set.
        profile.label_sets.intern(Vec::new());
        profile
    }

    /// Interns a string.
    pub fn intern(&mut self, text: &str) -> StrId {
        if let Some(id) = self.strings.get(text) {
            return StrId(id);
        }
        StrId(self.strings.intern(text.to_string()))
    }

    /// The text of an interned string.
    pub fn str(&self, id: StrId) -> &str {
        &self.strings.items[id.index()]
    }

    /// Interns a frame.
    pub fn frame(&mut self, function: &str, file: &str, line: u32, first_line: u32) -> FrameId {
        let frame = Frame {
            function: self.intern(function),
            file: self.intern(file),
            line,
            first_line,
        };
        FrameId(self.frames.intern(frame))
    }

    /// The frame with this id.
    pub fn frame_info(&self, id: FrameId) -> &Frame {
        &self.frames.items[id.index()]
    }

    /// The number of distinct frames.
    pub fn frame_count(&self) -> usize {
        self.frames.items.len()
    }

    /// Interns the stack made of `frame` called from `parent`.
    ///
    /// The stack tree is bounded: once it holds [`STACK_BUDGET`] nodes, a
    /// stack not seen before is kept as far as it is known and ends in the
    /// frame [`OTHER_STACKS`] (at most one such node under each known
    /// one; past [`STACK_NODE_LIMIT`] nodes, only under those that have
    /// one already, else at the root), so that a program whose every sample is a new stack cannot
    /// grow the profile, or pydx's memory, without end. Counts stay exact.
    pub fn stack(&mut self, parent: Option<StackId>, frame: FrameId) -> StackId {
        let node = StackNode { frame, parent };
        if let Some(id) = self.stacks.get(&node) {
            return StackId(id);
        }
        if self.stacks.items.len() < STACK_BUDGET {
            return StackId(self.stacks.intern(node));
        }
        let other = self.frame(OTHER_STACKS, "", 0, 0);
        match parent {
            Some(parent) if self.stack_node(parent).frame == other => parent,
            _ if self.stacks.items.len() < STACK_NODE_LIMIT => {
                StackId(self.stacks.intern(StackNode {
                    frame: other,
                    parent,
                }))
            }
            _ => {
                let nearest = self.ancestors(parent).find_map(|ancestor| {
                    self.stacks.get(&StackNode {
                        frame: other,
                        parent: Some(ancestor),
                    })
                });
                StackId(nearest.unwrap_or_else(|| {
                    self.stacks.intern(StackNode {
                        frame: other,
                        parent: None,
                    })
                }))
            }
        }
    }

    /// `stack` and the stacks it was called from, innermost first.
    fn ancestors(&self, stack: Option<StackId>) -> impl Iterator<Item = StackId> + '_ {
        std::iter::successors(stack, |&id| self.stack_node(id).parent)
    }

    /// The key to count a sample under: `key` itself if it is counted
    /// already, has no stack or the table has room, else `key` with its stack cut short
    /// at the nearest caller whose cut-short stack is counted for the same
    /// thread, state and labels (the thread's root cut-short stack if
    /// none is).
    fn key_within_budget(&mut self, key: SampleKey) -> SampleKey {
        if key.stack.is_none()
            || self.counts.len() < SAMPLE_KEY_BUDGET
            || self.counts.contains_key(&key)
        {
            return key;
        }
        let other = self.frame(OTHER_STACKS, "", 0, 0);
        let cut_short = |stack: StackId| SampleKey {
            stack: Some(stack),
            ..key
        };
        let counted = self.ancestors(key.stack).find_map(|ancestor| {
            let end = if self.stack_node(ancestor).frame == other {
                ancestor
            } else {
                StackId(self.stacks.get(&StackNode {
                    frame: other,
                    parent: Some(ancestor),
                })?)
            };
            self.counts
                .contains_key(&cut_short(end))
                .then_some(cut_short(end))
        });
        counted.unwrap_or_else(|| {
            cut_short(StackId(self.stacks.intern(StackNode {
                frame: other,
                parent: None,
            })))
        })
    }

    /// Interns a whole stack given outermost frame first.
    pub fn stack_from_root(
        &mut self,
        frames: impl IntoIterator<Item = FrameId>,
    ) -> Option<StackId> {
        frames
            .into_iter()
            .fold(None, |parent, frame| Some(self.stack(parent, frame)))
    }

    /// The node of a stack.
    pub fn stack_node(&self, id: StackId) -> &StackNode {
        &self.stacks.items[id.index()]
    }

    /// The number of distinct stacks (nodes of the stack tree).
    pub fn stack_count(&self) -> usize {
        self.stacks.items.len()
    }

    /// Samples whose stack was cut short because the stack tree was full
    /// (see [`STACK_BUDGET`]).
    pub fn samples_cut_short(&self) -> u64 {
        let Some(other) = self.strings.get(OTHER_STACKS) else {
            return 0;
        };
        let ends_short = |stack: Option<StackId>| {
            stack.is_some_and(|id| self.frame_info(self.stack_node(id).frame).function.0 == other)
        };
        self.counts
            .iter()
            .filter(|(key, _)| ends_short(key.stack))
            .map(|(_, tally)| tally.count)
            .sum()
    }

    /// The frames of a stack, innermost first.
    pub fn frames_innermost_first(&self, stack: Option<StackId>) -> Vec<FrameId> {
        let mut frames = Vec::new();
        let mut next = stack;
        while let Some(id) = next {
            let node = self.stack_node(id);
            frames.push(node.frame);
            next = node.parent;
        }
        frames
    }

    /// The frames of a stack, outermost first.
    pub fn frames_root_first(&self, stack: Option<StackId>) -> Vec<FrameId> {
        let mut frames = self.frames_innermost_first(stack);
        frames.reverse();
        frames
    }

    /// Registers a thread (or finds it again) and updates its name.
    pub fn thread(&mut self, pid: u32, tid: u32, ident: u64, name: Option<&str>) -> ThreadId {
        let name = name.map(|n| self.intern(n));
        if let Some(&id) = self.thread_index.get(&(pid, ident, tid)) {
            if name.is_some() {
                self.threads[id.index()].name = name;
            }
            return id;
        }
        let id = ThreadId(u32::try_from(self.threads.len()).expect("fewer than 2^32 threads"));
        self.threads.push(ThreadInfo {
            pid,
            tid,
            ident,
            name,
        });
        self.thread_index.insert((pid, ident, tid), id);
        id
    }

    /// The thread with this id.
    pub fn thread_info(&self, id: ThreadId) -> &ThreadInfo {
        &self.threads[id.index()]
    }

    /// Every thread, in the order they were first seen.
    pub fn threads(&self) -> impl Iterator<Item = (ThreadId, &ThreadInfo)> {
        self.threads
            .iter()
            .enumerate()
            .map(|(i, t)| (ThreadId(i as u32), t))
    }

    /// A readable name for a thread: its `threading` name, else its TID.
    pub fn thread_label(&self, id: ThreadId) -> String {
        let thread = self.thread_info(id);
        match thread.name {
            Some(name) => self.str(name).to_string(),
            None if thread.tid != 0 => format!("thread {}", thread.tid),
            None => format!("thread {:#x}", thread.ident),
        }
    }

    /// Interns a set of labels, given as `(key, value)` pairs.
    pub fn label_set(&mut self, labels: &[(&str, &str)]) -> LabelSetId {
        let mut pairs: Vec<(StrId, StrId)> = labels
            .iter()
            .map(|(k, v)| (self.intern(k), self.intern(v)))
            .collect();
        pairs.sort();
        LabelSetId(self.label_sets.intern(pairs))
    }

    /// The `(key, value)` pairs of a label set.
    pub fn labels(&self, id: LabelSetId) -> impl Iterator<Item = (&str, &str)> {
        self.label_sets.items[id.index()]
            .iter()
            .map(|&(k, v)| (self.str(k), self.str(v)))
    }

    /// The labels standing for `work`.
    pub fn work_labels(&mut self, work: &Work<'_>) -> LabelSetId {
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(4);
        if let Some(endpoint) = work.endpoint {
            labels.push((LABEL_ENDPOINT, endpoint));
        }
        if let Some(turn) = work.request_turn {
            labels.push((LABEL_REQUEST_TURN, turn));
        }
        if let Some(task) = work.task {
            labels.push((LABEL_TASK, task));
        }
        if work.task_waiting {
            labels.push((LABEL_TASK_STATE, TASK_WAITING));
        }
        if work.event_loop_blocked {
            labels.push((LABEL_EVENT_LOOP, EVENT_LOOP_BLOCKED));
        }
        if labels.is_empty() {
            LabelSetId(0)
        } else {
            self.label_set(&labels)
        }
    }

    /// Relabels the samples of every endpoint that `renamed` maps to
    /// another, with the timeline, as if they had been recorded with it.
    pub fn rename_endpoints(&mut self, renamed: &HashMap<String, String>) {
        for id in 0..self.label_sets.items.len() {
            let pairs = &self.label_sets.items[id];
            let Some(new) = pairs.iter().find_map(|&(key, value)| {
                (self.str(key) == LABEL_ENDPOINT)
                    .then(|| renamed.get(self.str(value)))
                    .flatten()
            }) else {
                continue;
            };
            let new = self.intern(&new.clone());
            let old = self.label_sets.items[id].clone();
            let mut pairs: Vec<(StrId, StrId)> = old
                .iter()
                .map(|&(key, value)| {
                    if self.str(key) == LABEL_ENDPOINT {
                        (key, new)
                    } else {
                        (key, value)
                    }
                })
                .collect();
            pairs.sort();
            self.label_sets.replace(id as u32, pairs);
        }
    }

    /// The HTTP endpoint samples with these labels were serving.
    pub fn endpoint(&self, labels: LabelSetId) -> Option<StrId> {
        self.label_value(labels, LABEL_ENDPOINT)
    }

    /// Which of its thread's requests in a row samples with these labels
    /// were serving (see [`Work::request_turn`]).
    pub fn request_turn(&self, labels: LabelSetId) -> Option<StrId> {
        self.label_value(labels, LABEL_REQUEST_TURN)
    }

    /// The asyncio task samples with these labels belong to.
    pub fn task(&self, labels: LabelSetId) -> Option<StrId> {
        self.label_value(labels, LABEL_TASK)
    }

    /// The value of label `key` in a label set, if it has one.
    fn label_value(&self, labels: LabelSetId, key: &str) -> Option<StrId> {
        self.label_sets.items[labels.index()]
            .iter()
            .find(|&&(k, _)| self.str(k) == key)
            .map(|&(_, v)| v)
    }

    /// Whether samples with these labels are of a thread whose event loop
    /// was stuck in a call.
    pub fn is_blocked_event_loop(&self, labels: LabelSetId) -> bool {
        labels != LabelSetId(0)
            && self
                .labels(labels)
                .any(|(key, value)| key == LABEL_EVENT_LOOP && value == EVENT_LOOP_BLOCKED)
    }

    /// Whether samples with these labels are of an asyncio task waiting in
    /// an await (recorded on a pseudo-thread), not of a real thread.
    pub fn is_waiting_task(&self, labels: LabelSetId) -> bool {
        labels != LabelSetId(0)
            && self
                .labels(labels)
                .any(|(key, value)| key == LABEL_TASK_STATE && value == TASK_WAITING)
    }

    /// Adds one sample taken at `time_ns` (since the start of the recording).
    pub fn add_sample(&mut self, time_ns: u64, key: SampleKey) {
        self.add_samples(time_ns, key, 1);
    }

    /// Adds `count` identical samples, the last one taken at `time_ns`,
    /// each standing for the nominal interval.
    pub fn add_samples(&mut self, time_ns: u64, key: SampleKey, count: u64) {
        let nanos = count.saturating_mul(self.meta.interval_ns());
        self.add_timed_samples(time_ns, key, count, nanos);
    }

    /// Adds `count` identical samples, the last one taken at `time_ns`,
    /// standing together for `nanos` of the thread's time (measured: the
    /// time since the thread's previous sample, so seconds stay right when
    /// the sampler falls behind its rate).
    ///
    /// Once [`SAMPLE_KEY_BUDGET`] keys are counted, a sample with a new key
    /// is counted under its stack cut short (see [`OTHER_STACKS`]), so the
    /// count of every thread, state and label set stays exact while the
    /// table stops growing.
    pub fn add_timed_samples(&mut self, time_ns: u64, key: SampleKey, count: u64, nanos: u64) {
        let key = self.key_within_budget(key);
        self.counts.entry(key).or_default().add(count, nanos);
        self.timeline
            .push(time_ns, key, count, self.meta.interval_ns());
        if self.timeline.needs_compaction() {
            self.meta.timeline_resolution_ns = self.timeline.compact();
        }
    }

    /// The exact count of every distinct sample.
    pub fn samples(&self) -> impl Iterator<Item = (&SampleKey, u64)> {
        self.counts.iter().map(|(k, t)| (k, t.count))
    }

    /// Every distinct sample with its count and the time it stands for.
    pub fn timed_samples(&self) -> impl Iterator<Item = (&SampleKey, Tally)> {
        self.counts.iter().map(|(k, &t)| (k, t))
    }

    /// Every distinct sample, in a stable order (for deterministic output).
    pub fn samples_sorted(&self) -> Vec<(SampleKey, u64)> {
        let mut samples: Vec<(SampleKey, u64)> =
            self.counts.iter().map(|(k, t)| (*k, t.count)).collect();
        samples.sort();
        samples
    }

    /// Drops every sample (not the timeline) for which `keep` is false.
    pub fn retain_samples(&mut self, mut keep: impl FnMut(&Self, &SampleKey) -> bool) {
        let dropped: Vec<SampleKey> = self
            .counts
            .keys()
            .filter(|key| !keep(self, key))
            .copied()
            .collect();
        for key in dropped {
            self.counts.remove(&key);
        }
    }

    /// Whether a sample's stack shows a module being imported.
    pub fn is_importing(&self, stack: Option<StackId>) -> bool {
        self.frames_innermost_first(stack).into_iter().any(|frame| {
            let frame = self.frame_info(frame);
            plays(
                self.str(frame.function),
                self.str(frame.file),
                Role::ImportMachinery,
            )
        })
    }

    /// The total number of thread samples.
    pub fn total_samples(&self) -> u64 {
        self.counts.values().map(|t| t.count).sum()
    }

    /// The time one sample stands for on average, in nanoseconds: measured
    /// (the samples' total time over their number) when the samples carry
    /// times, else the nominal interval.
    pub fn mean_sample_ns(&self) -> f64 {
        let (count, nanos) = self.counts.values().fold((0u64, 0u64), |(c, n), t| {
            (c + t.count, n.saturating_add(t.nanos))
        });
        if count > 0 && nanos > 0 {
            nanos as f64 / count as f64
        } else {
            self.meta.interval_ns() as f64
        }
    }

    /// The timeline: for each thread, what it did from when to when, in order.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.timeline.runs()
    }

    /// How many entries each of the profile's tables holds: what its
    /// memory grows with.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            strings: self.strings.items.len(),
            string_bytes: self.strings.items.iter().map(String::len).sum(),
            frames: self.frames.items.len(),
            stacks: self.stacks.items.len(),
            threads: self.threads.len(),
            label_sets: self.label_sets.items.len(),
            sample_keys: self.counts.len(),
            runs: self.timeline.runs().count(),
            observations: self.observations.len(),
        }
    }

    /// Restores a timeline run read from a file.
    pub(crate) fn push_run(&mut self, run: Run) {
        self.timeline.restore(run);
    }

    /// Records that `frame` was seen with a fact about its values (`what`,
    /// with `value`): the arguments of one call, the type of a local
    /// variable. Rules read these to reason about values, which stacks
    /// alone do not show.
    ///
    /// How a frame ran ([`Observed::Exec`], one per sample) is always
    /// counted. Values stop being counted at all once the profile holds
    /// [`OBSERVATION_BUDGET`] distinct observations and a new one comes
    /// (they are counted in [`Meta::observations_left_out`]).
    pub fn observe(&mut self, frame: FrameId, what: Observed, value: &str, count: u64) {
        let carries_value = !matches!(what, Observed::Exec(_));
        if carries_value && self.meta.observations_left_out > 0 {
            self.meta.observations_left_out += count;
            return;
        }
        let known = self
            .strings
            .get(value)
            .is_some_and(|id| self.observations.contains_key(&(frame, what, StrId(id))));
        if carries_value && !known && self.observations.len() >= OBSERVATION_BUDGET {
            self.meta.observations_left_out += count;
            return;
        }
        let key = (frame, what, self.intern(value));
        *self.observations.entry(key).or_insert(0) += count;
    }

    /// Records the type `type_name` of local `name` seen in `frame`.
    pub fn observe_local_type(&mut self, frame: FrameId, name: &str, type_name: &str, count: u64) {
        let name = self.intern(name);
        self.observe(frame, Observed::LocalType(name), type_name, count);
    }

    /// Every observation: frame, what, value and how often it was seen, in
    /// a stable order (by frame, then what, then value; local variables by
    /// name).
    pub fn observations(&self) -> Vec<(FrameId, Observed, &str, u64)> {
        let mut all: Vec<(FrameId, Observed, &str, u64)> = self
            .observations
            .iter()
            .map(|(&(frame, what, value), &count)| (frame, what, self.str(value), count))
            .collect();
        let order = |what: Observed| match what {
            Observed::LocalType(name) => (Observed::LocalType(StrId(0)), self.str(name)),
            other => (other, ""),
        };
        all.sort_by(|a, b| (a.0, order(a.1), a.2, a.3).cmp(&(b.0, order(b.1), b.2, b.3)));
        all
    }

    /// Restores an observation read from a file, whatever the budget (the
    /// file holds what was kept).
    pub(crate) fn restore_observation(
        &mut self,
        frame: FrameId,
        what: Observed,
        value: &str,
        count: u64,
    ) {
        let key = (frame, what, self.intern(value));
        *self.observations.entry(key).or_insert(0) += count;
    }

    /// Adds to a sample count without touching the timeline (when loading).
    pub(crate) fn add_count(&mut self, key: SampleKey, count: u64, nanos: u64) {
        self.counts.entry(key).or_default().add(count, nanos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(counts: &[u64]) -> Vec<MemoryReading> {
        counts
            .iter()
            .enumerate()
            .map(|(second, &count)| MemoryReading {
                at_ns: second as u64 * 1_000_000_000,
                rss_bytes: 0,
                private_bytes: 0,
                served_requests: Some(count),
                cpu_ns: None,
            })
            .collect()
    }

    /// Which states count as CPU time and which as busy, and their labels
    /// read back.
    #[test]
    fn activities_are_told_apart_and_read_back() {
        let all = [
            (Activity::OnCpu, "on_cpu", true, true),
            (Activity::GilWait, "gil_wait", false, true),
            (Activity::Idle, "idle", false, false),
            (Activity::Unknown, "unknown", true, false),
            (Activity::CpuWait, "cpu_wait", false, true),
        ];
        for (activity, label, cpu, busy) in all {
            assert_eq!(activity.as_str(), label);
            assert_eq!(Activity::parse(label), Some(activity));
            assert_eq!(
                (activity.counts_as_cpu(), activity.is_busy()),
                (cpu, busy),
                "{label}"
            );
        }
        assert_eq!(Activity::parse("running"), None);
    }

    #[test]
    fn a_table_finds_each_value_by_its_id_after_a_replace() {
        let mut table: Table<String> = Table::default();
        let a = table.intern("a".to_string());
        let b = table.intern("b".to_string());
        assert_eq!(table.intern("a".to_string()), a);
        assert_eq!(
            (table.get("a"), table.get("b"), table.get("c")),
            (Some(a), Some(b), None)
        );
        table.replace(a, "c".to_string());
        assert_eq!((table.get("a"), table.get("c")), (None, Some(a)));
        // A value another id holds keeps being found under that id.
        table.replace(a, "b".to_string());
        assert_eq!((table.get("b"), table.get("c")), (Some(b), None));
        assert_eq!(table.items, ["b", "b"]);
        assert_eq!(table.intern("d".to_string()), 2);
    }

    #[test]
    fn new_stacks_past_the_budget_end_in_one_frame_under_what_is_known() {
        let mut profile = Profile::new(Meta::default());
        let frame = profile.frame("f", "app.py", 1, 1);
        // A chain of distinct nodes up to the budget.
        let mut deepest = None;
        for _ in 0..STACK_BUDGET {
            deepest = Some(profile.stack(deepest, frame));
        }
        let known = profile.stack_from_root([frame, frame]);
        let (g, h) = (
            profile.frame("g", "app.py", 5, 5),
            profile.frame("h", "app.py", 9, 9),
        );
        let new = profile.stack_from_root([frame, g, h, g]);
        let other = profile.frame(OTHER_STACKS, "", 0, 0);
        assert_eq!(profile.frames_innermost_first(new), [other, frame]);
        assert_eq!(profile.stack_from_root([frame, h]), new);
        assert_eq!(profile.stack_from_root([frame, frame]), known);
        let unknown_root = profile.stack_from_root([h]);
        assert_eq!(profile.frames_innermost_first(unknown_root), [other]);
        assert_eq!(profile.stack_count(), STACK_BUDGET + 2);
        let thread = profile.thread(1, 1, 1, None);
        let state = SampleState {
            activity: Activity::OnCpu,
            holds_gil: true,
        };
        for (stack, count) in [(known, 2), (new, 3), (unknown_root, 4)] {
            let key = SampleKey {
                thread,
                stack,
                state,
                labels: LabelSetId(0),
            };
            profile.add_samples(0, key, count);
        }
        assert_eq!(profile.samples_cut_short(), 7);
    }

    #[test]
    fn past_the_node_limit_new_stacks_end_under_the_nearest_cut_short_caller() {
        let mut profile = Profile::new(Meta::default());
        let (f, g, h) = (
            profile.frame("f", "app.py", 1, 1),
            profile.frame("g", "app.py", 5, 5),
            profile.frame("h", "app.py", 9, 9),
        );
        let mut chain = Vec::with_capacity(STACK_BUDGET);
        for _ in 0..STACK_BUDGET {
            let deepest = chain.last().copied();
            chain.push(profile.stack(deepest, f));
        }
        // Cut-short ends under the first known nodes, up to the limit.
        for &known in &chain[..STACK_NODE_LIMIT - STACK_BUDGET] {
            profile.stack(Some(known), g);
        }
        assert_eq!(profile.stack_count(), STACK_NODE_LIMIT);
        let other = profile.frame(OTHER_STACKS, "", 0, 0);
        let nearest = chain[STACK_NODE_LIMIT - STACK_BUDGET - 1];
        let cut = profile.stack(Some(chain[100_000]), g);
        assert_eq!(profile.stack_node(cut).parent, Some(nearest));
        assert_eq!(profile.stack_node(cut).frame, other);
        assert_eq!(profile.stack(Some(cut), h), cut);
        assert_eq!(profile.stack_count(), STACK_NODE_LIMIT);
        let unknown_root = profile.stack(None, h);
        assert_eq!(profile.frames_innermost_first(Some(unknown_root)), [other]);
        assert_eq!(profile.stack(None, g), unknown_root);
        assert_eq!(profile.stack_count(), STACK_NODE_LIMIT + 1);
    }

    #[test]
    fn values_stop_being_observed_once_the_budget_is_full() {
        let mut profile = Profile::new(Meta::default());
        let frame = profile.frame("f", "app.py", 1, 1);
        for n in 0..OBSERVATION_BUDGET {
            profile.observe(frame, Observed::CallArgs, &format!("n={n}"), 1);
        }
        // Values seen before keep counting until a new one comes.
        profile.observe(frame, Observed::CallArgs, "n=0", 1);
        profile.observe(frame, Observed::Exec(Execution::Bytecode), "", 1);
        assert_eq!(profile.meta.observations_left_out, 0);
        profile.observe(frame, Observed::CallArgs, "n=new", 2);
        // From then on no value counts, not even one seen before; how
        // frames ran still does.
        profile.observe(frame, Observed::CallArgs, "n=0", 3);
        profile.observe(frame, Observed::Exec(Execution::Bytecode), "", 1);
        assert_eq!(profile.meta.observations_left_out, 5);
        let count = |what: Observed, value: &str| {
            profile
                .observations()
                .into_iter()
                .find(|o| o.1 == what && o.2 == value)
                .map_or(0, |o| o.3)
        };
        assert_eq!(count(Observed::CallArgs, "n=0"), 2);
        assert_eq!(count(Observed::CallArgs, "n=new"), 0);
        assert_eq!(count(Observed::Exec(Execution::Bytecode), ""), 2);
        assert_eq!(profile.footprint().observations, OBSERVATION_BUDGET + 1);
    }

    #[test]
    fn past_the_key_budget_new_keys_count_under_a_counted_cut_short_stack() {
        let mut profile = Profile::new(Meta::default());
        let f = profile.frame("f", "app.py", 1, 1);
        let g = profile.frame("g", "app.py", 5, 5);
        let other = profile.frame(OTHER_STACKS, "", 0, 0);
        let (first, second) = (profile.thread(1, 1, 1, None), profile.thread(1, 2, 2, None));
        let state = SampleState {
            activity: Activity::OnCpu,
            holds_gil: true,
        };
        let key = |thread, stack| SampleKey {
            thread,
            stack,
            state,
            labels: LabelSetId(0),
        };
        let mut chain = Vec::new();
        for _ in 0..SAMPLE_KEY_BUDGET {
            let deepest = chain.last().copied();
            chain.push(profile.stack(deepest, f));
        }
        let counted_end = profile.stack(Some(chain[50]), other);
        profile.add_sample(0, key(first, Some(counted_end)));
        for &stack in &chain[1..] {
            profile.add_sample(0, key(first, Some(stack)));
        }
        assert_eq!(profile.footprint().sample_keys, SAMPLE_KEY_BUDGET);
        // A new key past the budget: counted under the nearest caller whose
        // cut-short stack is counted for the thread.
        let new = profile.stack(Some(chain[100]), g);
        profile.add_samples(0, key(first, Some(new)), 3);
        // A known key keeps counting; a stackless one keeps no stack.
        profile.add_sample(0, key(first, Some(chain[7])));
        profile.add_sample(0, key(second, None));
        // Another thread has no counted cut-short stack: its root one.
        profile.add_samples(0, key(second, Some(new)), 2);
        let root_end = profile.stack(None, other);
        let count = |wanted: SampleKey| {
            profile
                .samples()
                .find(|(k, _)| **k == wanted)
                .map_or(0, |(_, c)| c)
        };
        assert_eq!(count(key(first, Some(counted_end))), 4);
        assert_eq!(count(key(first, Some(new))), 0);
        assert_eq!(count(key(first, Some(chain[7]))), 2);
        assert_eq!(count(key(second, None)), 1);
        assert_eq!(count(key(second, Some(root_end))), 2);
        assert_eq!(
            profile.total_samples(),
            SAMPLE_KEY_BUDGET as u64 - 1 + 1 + 3 + 1 + 1 + 2
        );
        assert_eq!(profile.footprint().sample_keys, SAMPLE_KEY_BUDGET + 2);
        assert_eq!(profile.samples_cut_short(), 4 + 2);
    }

    #[test]
    fn served_requests_leave_out_misread_counts() {
        let served = ServedRequests::from_readings(&counts(&[0, 700, 1_400, 35_600, 2_800, 3_500]));
        assert_eq!(
            served,
            Some(ServedRequests {
                start_ns: 0,
                end_ns: 5_000_000_000,
                count: 3_500
            })
        );
        let low_start = ServedRequests::from_readings(&counts(&[9_000, 100, 200, 300, 400]));
        assert_eq!(
            low_start.map(|s| (s.start_ns, s.count)),
            Some((1_000_000_000, 300))
        );
        assert_eq!(ServedRequests::from_readings(&counts(&[5])), None);
        assert_eq!(ServedRequests::from_readings(&[]), None);
    }
}
