//! Turning snapshots into a [`Profile`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use pydx_cpython::{AsyncioTask, CodeInfo, Frame, UNREADABLE_REPR};
use pydx_libraries::{find_role, route_matches, Role};
use pydx_profile::{
    Activity, Execution, FrameId, LabelSetId, MemoryReading, Meta, Observed, ProcessMeta, Profile,
    SampleKey, SampleState, StackId, UnattachedProcess, Work,
};
use pydx_remote::MemoryUsage;

use crate::sampler::{NewProcess, SampleSink, Summary};
use crate::snapshot::{FrameObservation, SqlStatement, ThreadSnapshot};

/// Identifies a frame cheaply: the code object (kept alive by the cache, so
/// its address cannot be reused) and the line.
type FrameKey = (usize, u32);

/// Builds a [`Profile`] from snapshots.
///
/// Interning is cached twice: each (code object, line) maps to its profile
/// frame, and each thread remembers its last stack, so a thread that has
/// not moved since the previous sample costs one comparison.
#[derive(Debug)]
pub struct ProfileRecorder {
    profile: Profile,
    frames: HashMap<FrameKey, (Arc<CodeInfo>, FrameId)>,
    last_stacks: HashMap<(u32, u64), (Vec<FrameKey>, Option<StackId>)>,
    /// Per thread, the frames seen at its last observation.
    last_observed: HashMap<(u32, u64), Vec<ObservedCall>>,
    /// asyncio tasks and what they are labelled with.
    tasks: TaskTracker,
    /// What each code object is to an asyncio event loop.
    code_roles: HashMap<usize, CodeRole>,
    /// Endpoints used as labels so far.
    endpoints: HashSet<String>,
    /// Route-template endpoints by the path endpoint of the requests they
    /// were seen on, for samples taken before the framework routed one.
    routes: HashMap<String, String>,
    /// Endpoints named from the route the framework matched (the others
    /// are named from the request's path).
    routed: HashSet<String>,
    /// Per thread, the request object it last served and its turn.
    request_turns: HashMap<(u32, u64), (u64, u8)>,
    /// The distinct SQL statements recorded so far per call site.
    statements: HashMap<FrameId, Vec<String>>,
    /// Per thread, the database call its last observation found running:
    /// the thread's stack then, the program's frame that made the call and
    /// the call's identity. Forgotten as soon as the thread's stack changes.
    calls_in_flight: HashMap<(u32, u64), (Option<StackId>, FrameId, u64)>,
    /// Per sampled thread (and per process, for its asyncio task reading),
    /// when it was last sampled, so each sample stands for the time since.
    last_sampled: HashMap<(u32, u64), u64>,
}

/// The most time one sample stands for: a thread unseen for longer (a
/// stopped process, a long gap in sampling) has its gap counted only up to
/// this.
const MAX_SAMPLE_NS: u64 = 1_000_000_000;

/// Distinct SQL statements recorded per call site; past this (statements
/// with their values written in), further ones are left out, so that the
/// profile does not grow with every query.
const MAX_STATEMENTS_PER_SITE: usize = 16;

/// Distinct endpoints kept as labels; past this (paths with identifiers
/// pydx does not recognise), further ones are labelled `METHOD <other>`.
const MAX_ENDPOINTS: usize = 1000;

/// What a code object is to an asyncio event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeRole {
    /// The function the loop runs in (`run_forever`).
    LoopRun,
    /// Other code of the loop itself (its runner, its selector).
    LoopMachinery,
    /// Anything else.
    Other,
}

impl CodeRole {
    fn of(code: &CodeInfo) -> Self {
        find_role(&code.qualname, &code.filename, |role| match role {
            Role::EventLoopRun => Some(CodeRole::LoopRun),
            Role::EventLoopMachinery => Some(CodeRole::LoopMachinery),
            _ => None,
        })
        .unwrap_or(CodeRole::Other)
    }
}

/// Distinct task names kept as labels; past this, tasks are labelled with
/// their outermost coroutine, so that a server making a task per request
/// cannot grow the profile without bound.
const MAX_TASK_NAMES: usize = 4096;
/// How many values [`Work::request_turn`] cycles through.
const REQUEST_TURNS: u8 = 4;
const TURN_NAMES: [&str; REQUEST_TURNS as usize] = ["0", "1", "2", "3"];

/// What the recorder knows of asyncio tasks.
///
/// A waiting task is recorded on a pseudo-thread of its process (TID 0,
/// ident = a slot number). Slots are reused first-in first-out once their
/// task is gone, so the number of pseudo-threads follows the number of
/// tasks alive at once, not the number ever created.
#[derive(Debug, Default)]
struct TaskTracker {
    /// (pid, task address) -> slot.
    slots: HashMap<(u32, u64), u64>,
    /// Per process, slots free for reuse, oldest first.
    free: HashMap<u32, VecDeque<u64>>,
    /// Per process, the next slot never used.
    next_slot: HashMap<u32, u64>,
    /// (pid, thread ident) -> the name of the task that thread runs, and
    /// the code of the task's outermost coroutine.
    running: HashMap<(u32, u64), (String, usize)>,
    /// Task names used as labels so far.
    names: HashSet<String>,
}

impl TaskTracker {
    /// The slot of the task at `addr`, taking one if it has none.
    fn slot(&mut self, pid: u32, addr: u64) -> u64 {
        if let Some(&slot) = self.slots.get(&(pid, addr)) {
            return slot;
        }
        let slot = match self.free.get_mut(&pid).and_then(VecDeque::pop_front) {
            Some(slot) => slot,
            None => {
                let next = self.next_slot.entry(pid).or_insert(1);
                *next += 1;
                *next - 1
            }
        };
        self.slots.insert((pid, addr), slot);
        slot
    }

    /// Frees the slots of tasks of `pid` not in `alive`.
    fn release_gone(&mut self, pid: u32, alive: &HashSet<u64>) {
        let free = self.free.entry(pid).or_default();
        self.slots.retain(|&(p, addr), slot| {
            let keep = p != pid || alive.contains(&addr);
            if !keep {
                free.push_back(*slot);
            }
            keep
        });
    }

    /// The name a task is labelled with.
    fn label_name(&mut self, task: &AsyncioTask) -> String {
        if self.names.contains(&task.name) {
            return task.name.clone();
        }
        if self.names.len() < MAX_TASK_NAMES {
            self.names.insert(task.name.clone());
            return task.name.clone();
        }
        match task.coroutines.last() {
            Some(outermost) => format!("<{}>", outermost.code.qualname),
            None => "<task>".to_string(),
        }
    }
}

/// One frame's call as an observation saw it: frame address, code object
/// and argument text.
type ObservedCall = (u64, usize, String);

impl ProfileRecorder {
    /// A recorder whose profile starts with `meta`.
    pub fn new(meta: Meta) -> Self {
        Self {
            profile: Profile::new(meta),
            frames: HashMap::new(),
            last_stacks: HashMap::new(),
            last_observed: HashMap::new(),
            tasks: TaskTracker::default(),
            code_roles: HashMap::new(),
            endpoints: HashSet::new(),
            request_turns: HashMap::new(),
            routes: HashMap::new(),
            routed: HashSet::new(),
            statements: HashMap::new(),
            calls_in_flight: HashMap::new(),
            last_sampled: HashMap::new(),
        }
    }

    /// The time a sample of `key` taken at `time_ns` stands for: the time
    /// since the previous one (at most [`MAX_SAMPLE_NS`]), or `rounds`
    /// nominal intervals for the first.
    fn sample_nanos(&mut self, key: (u32, u64), time_ns: u64, rounds: u64) -> u64 {
        let nominal = rounds.saturating_mul(self.profile.meta.interval_ns());
        match self.last_sampled.insert(key, time_ns) {
            Some(previous) if previous < time_ns => (time_ns - previous).min(MAX_SAMPLE_NS),
            _ => nominal,
        }
    }

    /// The profile so far.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Forgets every sample taken so far (not the timeline, nor what it
    /// knows of processes, threads and code), to count afresh.
    pub fn forget_samples(&mut self) {
        self.profile.retain_samples(|_, _| false);
    }

    /// The latest process sampled with id `pid`.
    fn process_meta(&mut self, pid: u32) -> Option<&mut ProcessMeta> {
        self.profile
            .meta
            .processes
            .iter_mut()
            .rev()
            .find(|p| p.pid == pid)
    }

    /// Completes the profile with the run's summary, and gives samples
    /// labelled with a request's path the endpoint of the route that serves
    /// it (see [`ProfileRecorder::routes_of_paths`]).
    pub fn finish(mut self, summary: &Summary) -> Profile {
        let renamed = self.routes_of_paths();
        self.profile.rename_endpoints(&renamed);
        self.profile.meta.duration_ns = summary.elapsed.as_nanos() as u64;
        self.profile.meta.snapshots = summary.rounds;
        self.profile.meta.errors = summary.errors;
        self.profile.meta.unreadable_stacks = summary.unreadable_stacks;
        self.profile.meta.paused_rereads = summary.paused_rereads;
        self.profile
    }

    /// Samples taken before the framework routed their request (in
    /// middleware, say) were labelled with the request's path: the route
    /// endpoint each such path endpoint belongs to, when exactly one route
    /// seen serves it, so that one endpoint is not split into its route and
    /// its many paths.
    fn routes_of_paths(&self) -> HashMap<String, String> {
        self.endpoints
            .iter()
            .filter(|endpoint| !self.routed.contains(*endpoint))
            .filter_map(|endpoint| {
                let (method, path) = endpoint.split_once(' ')?;
                let mut serving = self.routed.iter().filter(|routed| {
                    routed
                        .split_once(' ')
                        .is_some_and(|(routed_method, template)| {
                            routed_method == method && route_matches(template, path)
                        })
                });
                let route = serving.next()?;
                serving
                    .next()
                    .is_none()
                    .then(|| (endpoint.clone(), route.clone()))
            })
            .collect()
    }

    fn frame_id(&mut self, frame: &Frame) -> (FrameKey, FrameId) {
        let key = (Arc::as_ptr(&frame.code) as usize, frame.line);
        if let Some((_, id)) = self.frames.get(&key) {
            return (key, *id);
        }
        let code = &frame.code;
        let id = self
            .profile
            .frame(&code.qualname, &code.filename, frame.line, code.first_line);
        self.frames.insert(key, (code.clone(), id));
        (key, id)
    }

    fn stack_id(&mut self, pid: u32, ident: u64, frames: &[Frame]) -> Option<StackId> {
        let mut keys = Vec::with_capacity(frames.len());
        let mut ids = Vec::with_capacity(frames.len());
        for frame in frames {
            let (key, id) = self.frame_id(frame);
            keys.push(key);
            ids.push(id);
        }
        if let Some((last_keys, stack)) = self.last_stacks.get(&(pid, ident)) {
            if *last_keys == keys {
                return *stack;
            }
        }
        // Snapshot frames are innermost first; the stack tree is built from the root.
        let stack = self.profile.stack_from_root(ids.into_iter().rev());
        self.last_stacks.insert((pid, ident), (keys, stack));
        stack
    }
}

impl SampleSink for ProfileRecorder {
    fn add_process(&mut self, process: &NewProcess<'_>) {
        self.profile.meta.processes.push(ProcessMeta {
            pid: process.pid,
            parent_pid: process.parent,
            command: process.command.clone(),
            cwd: process.cwd.clone(),
            python_version: process.python_version.to_string(),
            memory: Vec::new(),
            failed_memory_readings: 0,
        });
    }

    fn add_memory_failure(&mut self, pid: u32) {
        if let Some(process) = self.process_meta(pid) {
            process.failed_memory_readings += 1;
        }
    }

    fn add_unattached(&mut self, pid: u32, reason: &str) {
        self.profile
            .meta
            .unattached_processes
            .push(UnattachedProcess {
                pid,
                reason: reason.to_string(),
            });
    }

    fn add_memory(
        &mut self,
        pid: u32,
        elapsed: Duration,
        usage: MemoryUsage,
        served_requests: Option<u64>,
    ) {
        if let Some(process) = self.process_meta(pid) {
            process.memory.push(MemoryReading {
                at_ns: elapsed.as_nanos() as u64,
                rss_bytes: usage.rss_bytes,
                private_bytes: usage.private_bytes,
                served_requests,
                cpu_ns: usage.cpu_ns,
            });
        }
    }

    fn add_snapshot(&mut self, pid: u32, elapsed: Duration, threads: &[ThreadSnapshot]) {
        let time_ns = elapsed.as_nanos() as u64;
        for thread in threads {
            let python = &thread.python;
            let stack = self.stack_id(pid, python.thread_id, &python.frames);
            let thread_id = self.profile.thread(
                pid,
                python.native_id.unwrap_or(0),
                python.thread_id,
                python.name.as_deref(),
            );
            let key = SampleKey {
                thread: thread_id,
                stack,
                state: SampleState {
                    activity: thread.activity,
                    holds_gil: python.holds_gil,
                },
                labels: self.thread_labels(pid, python),
            };
            let nanos = self.sample_nanos((pid, python.thread_id), time_ns, 1);
            self.profile.add_timed_samples(time_ns, key, 1, nanos);
            self.forget_ended_calls(pid, python);
            if let (Activity::OnCpu, Some(innermost)) = (thread.activity, python.frames.first()) {
                if let Some(calling) = innermost.calling {
                    let (_, frame_id) = self.frame_id(innermost);
                    let how = if calling {
                        Execution::NativeCall
                    } else {
                        Execution::Bytecode
                    };
                    self.profile.observe(frame_id, Observed::Exec(how), "", 1);
                }
            }
            if !thread.observations.is_empty() {
                self.add_observations(pid, python, &thread.observations);
            }
            self.track_call(pid, python, stack, thread.statement.as_ref());
        }
    }

    fn add_tasks(&mut self, pid: u32, elapsed: Duration, tasks: &[AsyncioTask], rounds: u64) {
        let time_ns = elapsed.as_nanos() as u64;
        if tasks.is_empty() {
            // Tasks found by the next reading did not exist at this one.
            self.last_sampled.remove(&(pid, u64::MAX));
            self.tasks.running.retain(|&(p, _), _| p != pid);
            self.tasks.release_gone(pid, &HashSet::new());
            return;
        }
        // Keyed by the process alone (no thread has ident u64::MAX): every
        // task of one reading stands for the time since the last reading.
        let nanos = self.sample_nanos((pid, u64::MAX), time_ns, rounds.max(1));
        self.tasks.running.retain(|&(p, _), _| p != pid);
        let alive: HashSet<u64> = tasks.iter().map(|t| t.addr).collect();
        self.tasks.release_gone(pid, &alive);
        for task in tasks {
            let name = self.tasks.label_name(task);
            if let Some(ident) = task.running_on {
                let outermost = task
                    .coroutines
                    .last()
                    .map_or(0, |c| Arc::as_ptr(&c.code) as usize);
                self.tasks.running.insert((pid, ident), (name, outermost));
                continue;
            }
            if task.coroutines.is_empty() {
                continue;
            }
            let slot = self.tasks.slot(pid, task.addr);
            let stack = self.stack_id(pid, slot, &task.coroutines);
            let thread = self
                .profile
                .thread(pid, 0, slot, Some(&format!("asyncio task {name}")));
            let labels = self.profile.work_labels(&Work {
                task: Some(&name),
                task_waiting: true,
                ..Work::default()
            });
            let key = SampleKey {
                thread,
                stack,
                state: SampleState {
                    activity: Activity::Idle,
                    holds_gil: false,
                },
                labels,
            };
            self.profile
                .add_timed_samples(time_ns, key, rounds.max(1), nanos);
        }
    }
}

impl ProfileRecorder {
    /// The labels of a thread's sample: the endpoint it serves (by the
    /// framework's route template once one was seen for its path), which
    /// request it is on, the asyncio task it runs (the one the last task
    /// reading saw it run, if that task's outermost coroutine is still on
    /// the stack), and whether its event loop is stuck in a call.
    fn thread_labels(&mut self, pid: u32, python: &pydx_cpython::PythonThread) -> LabelSetId {
        let blocked = self.event_loop_stuck(&python.frames);
        let task = match self.tasks.running.get(&(pid, python.thread_id)) {
            Some((name, outermost))
                if python
                    .frames
                    .iter()
                    .any(|f| Arc::as_ptr(&f.code) as usize == *outermost) =>
            {
                Some(name.as_str())
            }
            _ => None,
        };
        let endpoint = python.request.as_ref().map(|request| {
            let by_path = request.path_endpoint();
            let endpoint = match &request.route {
                Some(_) => {
                    let endpoint = request.endpoint();
                    if self.routed.len() < MAX_ENDPOINTS {
                        self.routed.insert(endpoint.clone());
                    }
                    if self.routes.len() < MAX_ENDPOINTS {
                        self.routes
                            .entry(by_path)
                            .or_insert_with(|| endpoint.clone());
                    }
                    endpoint
                }
                None => self.routes.get(&by_path).cloned().unwrap_or(by_path),
            };
            if self.endpoints.contains(&endpoint) {
                endpoint
            } else if self.endpoints.len() < MAX_ENDPOINTS {
                self.endpoints.insert(endpoint.clone());
                endpoint
            } else {
                format!("{} <other>", request.method)
            }
        });
        let turn = python.request.as_ref().map(|request| {
            let entry = self
                .request_turns
                .entry((pid, python.thread_id))
                .or_insert((request.object, 0));
            if entry.0 != request.object {
                *entry = (request.object, (entry.1 + 1) % REQUEST_TURNS);
            }
            TURN_NAMES[entry.1 as usize]
        });
        self.profile.work_labels(&Work {
            endpoint: endpoint.as_deref(),
            request_turn: turn,
            task,
            task_waiting: false,
            event_loop_blocked: blocked,
        })
    }

    /// Whether `frames` (innermost first) are an asyncio event loop stuck in
    /// a call: the loop runs further out, and the innermost Python frame is
    /// not the loop's own (its selector wait, say; native frames below it,
    /// such as `epoll_wait`, are what that frame does).
    fn event_loop_stuck(&mut self, frames: &[Frame]) -> bool {
        let Some(innermost) = frames
            .iter()
            .find(|f| !pydx_profile::is_native_binary(&f.code.filename))
        else {
            return false;
        };
        let mut role = |frame: &Frame| -> CodeRole {
            *self
                .code_roles
                .entry(Arc::as_ptr(&frame.code) as usize)
                .or_insert_with(|| CodeRole::of(&frame.code))
        };
        role(innermost) == CodeRole::Other && frames.iter().any(|f| role(f) == CodeRole::LoopRun)
    }

    /// Follows the database call a thread runs: stores the SQL statement an
    /// observation found, on the program's frame that made the call, and
    /// whether the thread's previous observation, with the same stack since,
    /// found the same call or another one.
    fn track_call(
        &mut self,
        pid: u32,
        python: &pydx_cpython::PythonThread,
        stack: Option<StackId>,
        statement: Option<&SqlStatement>,
    ) {
        let thread = (pid, python.thread_id);
        if self
            .calls_in_flight
            .get(&thread)
            .is_some_and(|&(seen, _, _)| seen != stack)
        {
            self.calls_in_flight.remove(&thread);
        }
        let Some(statement) = statement else {
            return;
        };
        let Some(caller) = python.frames.get(statement.caller) else {
            return;
        };
        let (_, frame_id) = self.frame_id(caller);
        if let Some(&(_, previous_frame, previous_call)) = self.calls_in_flight.get(&thread) {
            if previous_frame == frame_id {
                let kind = if previous_call == statement.call {
                    Observed::SqlSameCall
                } else {
                    Observed::SqlNewCall
                };
                self.profile.observe(frame_id, kind, "", 1);
            }
        }
        self.calls_in_flight
            .insert(thread, (stack, frame_id, statement.call));
        let seen = self.statements.entry(frame_id).or_default();
        if !seen.contains(&statement.text) {
            if seen.len() >= MAX_STATEMENTS_PER_SITE {
                return;
            }
            seen.push(statement.text.clone());
        }
        self.profile
            .observe(frame_id, Observed::SqlStatement, &statement.text, 1);
    }

    /// Forgets the observed calls of `python` whose frame is not on its
    /// stack in this sample: a frame that left the stack, even if another
    /// call has taken its place at the same address since (a recursion
    /// reuses its frames within microseconds), is a call that ended.
    fn forget_ended_calls(&mut self, pid: u32, python: &pydx_cpython::PythonThread) {
        let Some(calls) = self.last_observed.get_mut(&(pid, python.thread_id)) else {
            return;
        };
        calls.retain(|&(addr, code, _)| {
            python
                .frames
                .iter()
                .any(|f| f.addr == addr && Arc::as_ptr(&f.code) as usize == code)
        });
    }

    /// Stores observed arguments (once per call) and local types.
    ///
    /// A call is known by its frame's address, its code and its arguments.
    /// A call whose frame is still on the stack stays the same call when
    /// this observation could not read its arguments (a value changed while
    /// read, or its locals could not be read at all), so that a long call
    /// is never taken for several calls with the same arguments.
    fn add_observations(
        &mut self,
        pid: u32,
        python: &pydx_cpython::PythonThread,
        observations: &[FrameObservation],
    ) {
        let previous = self
            .last_observed
            .remove(&(pid, python.thread_id))
            .unwrap_or_default();
        let mut current: Vec<ObservedCall> = Vec::with_capacity(observations.len());
        for observation in observations {
            let Some(frame) = python.frames.get(observation.frame) else {
                continue;
            };
            let (_, frame_id) = self.frame_id(frame);
            let code = Arc::as_ptr(&frame.code) as usize;
            for (name, type_name) in &observation.local_types {
                self.profile
                    .observe_local_type(frame_id, name, type_name, 1);
            }
            if observation.arguments.contains(UNREADABLE_REPR) {
                continue;
            }
            let identity = (frame.addr, code, observation.arguments.clone());
            // Whether the last observation of this thread saw the same frame
            // with the same arguments: either the same call still running or
            // a new call that repeats it; the rules weigh these separately.
            if previous.contains(&identity) {
                self.profile
                    .observe(frame_id, Observed::CallArgsAgain, &observation.arguments, 1);
            }
            self.profile
                .observe(frame_id, Observed::CallArgs, &observation.arguments, 1);
            current.push(identity);
        }
        let on_stack = |addr: u64, code: usize| {
            python
                .frames
                .iter()
                .any(|f| f.addr == addr && Arc::as_ptr(&f.code) as usize == code)
        };
        for call in previous {
            let superseded = current.iter().any(|c| c.0 == call.0 && c.1 == call.1);
            if !superseded && on_stack(call.0, call.1) {
                current.push(call);
            }
        }
        self.last_observed.insert((pid, python.thread_id), current);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pydx_cpython::{HttpRequest, PythonThread};
    use pydx_profile::Activity;

    use super::*;

    #[test]
    fn the_reader_and_the_renderers_name_unreadable_code_alike() {
        assert_eq!(CodeInfo::UNREADABLE, pydx_profile::UNREADABLE_CODE);
    }

    fn thread(frames: Vec<Frame>) -> PythonThread {
        PythonThread {
            thread_id: 1,
            native_id: Some(10),
            name: None,
            holds_gil: true,
            gil_address: None,
            frames,
            truncated: false,
            error: None,
            request: None,
        }
    }

    fn snapshot(frames: &[Frame], arguments: Option<&str>) -> ThreadSnapshot {
        ThreadSnapshot {
            python: thread(frames.to_vec()),
            activity: Activity::OnCpu,
            observations: arguments
                .map(|arguments| FrameObservation {
                    frame: 0,
                    arguments: arguments.into(),
                    local_types: Vec::new(),
                })
                .into_iter()
                .collect(),
            statement: None,
        }
    }

    /// (argument observations, of which seen again in the same call).
    fn calls_seen(recorder: &ProfileRecorder) -> (u64, u64) {
        let profile = recorder.profile();
        let mut seen = (0, 0);
        for (_, kind, _, count) in profile.observations() {
            match kind {
                Observed::CallArgs => seen.0 += count,
                Observed::CallArgsAgain => seen.1 += count,
                _ => {}
            }
        }
        seen
    }

    /// A recorder that has started sampling process 5.
    fn recorder_of_process_5(meta: Meta) -> ProfileRecorder {
        let mut recorder = ProfileRecorder::new(meta);
        recorder.add_process(&NewProcess {
            pid: 5,
            parent: None,
            command: "python app.py".into(),
            cwd: None,
            python_version: "3.12.1",
        });
        recorder
    }

    /// The start of the first timeline run of each asyncio task, by name.
    fn task_starts(recorder: &ProfileRecorder) -> BTreeMap<String, u64> {
        let profile = recorder.profile();
        let mut starts = BTreeMap::new();
        for run in profile.runs() {
            if let Some(task) = profile.task(run.labels) {
                let start = starts
                    .entry(profile.str(task).to_string())
                    .or_insert(u64::MAX);
                *start = (*start).min(run.start_ns);
            }
        }
        starts
    }

    #[test]
    fn samples_of_a_path_take_the_endpoint_of_the_route_serving_it() {
        let frame = Frame {
            code: Arc::new(CodeInfo::named(0x1000, "player", "/app/board.py", 10)),
            line: 12,
            addr: 0x7000,
            calling: None,
            entry: true,
            call_frame: 0,
        };
        let mut recorder = recorder_of_process_5(Meta::default());
        let requests = [
            ("/boards/galaxy/players/p1658", None, 1),
            (
                "/boards/galaxy/players/p1658",
                Some("/boards/{board}/players/{player}"),
                1,
            ),
            ("/boards/mars/players/p9", None, 2),
            ("/users/me", Some("/users/me"), 3),
            ("/users/17", Some("/users/{user_id}"), 4),
            ("/health", None, 5),
        ];
        for (n, &(path, route, object)) in requests.iter().enumerate() {
            let mut sample = snapshot(std::slice::from_ref(&frame), None);
            sample.python.request = Some(HttpRequest {
                method: "GET".into(),
                path: path.into(),
                object,
                route: route.map(String::from),
            });
            recorder.add_snapshot(5, Duration::from_millis(10 * n as u64), &[sample]);
        }
        let renamed = recorder.routes_of_paths();
        recorder.profile.rename_endpoints(&renamed);
        let profile = recorder.profile();
        let mut served: BTreeMap<&str, u64> = BTreeMap::new();
        for (key, count) in profile.samples() {
            if let Some(endpoint) = profile.endpoint(key.labels) {
                *served.entry(profile.str(endpoint)).or_default() += count;
            }
        }
        let mut timeline: BTreeMap<&str, u64> = BTreeMap::new();
        for run in profile.runs() {
            if let Some(endpoint) = profile.endpoint(run.labels) {
                *timeline.entry(profile.str(endpoint)).or_default() += run.samples;
            }
        }
        let expected = BTreeMap::from([
            ("GET /boards/{board}/players/{player}", 3),
            ("GET /health", 1),
            ("GET /users/me", 1),
            ("GET /users/{user_id}", 1),
        ]);
        assert_eq!(served, expected);
        assert_eq!(timeline, expected);
    }

    #[test]
    fn tasks_found_after_a_reading_without_tasks_are_not_dated_before_it() {
        let coroutine = |addr| Frame {
            code: Arc::new(CodeInfo::named(0x1000, "serve", "/app/serve.py", 10)),
            line: 12,
            addr,
            calling: None,
            entry: true,
            call_frame: 0,
        };
        let mut recorder = recorder_of_process_5(Meta {
            rate_hz: 100.0,
            ..Meta::default()
        });
        let first = AsyncioTask::suspended(0x10, "first", vec![coroutine(0x7000)]);
        let later = AsyncioTask::suspended(0x20, "later", vec![coroutine(0x8000)]);
        let ms = Duration::from_millis;
        recorder.add_tasks(5, ms(100), std::slice::from_ref(&first), 1);
        recorder.add_tasks(5, ms(110), std::slice::from_ref(&first), 1);
        // The tasks ended; the next reading a second later finds a new one.
        recorder.add_tasks(5, ms(200), &[], 9);
        recorder.add_tasks(5, ms(1200), std::slice::from_ref(&later), 1);
        let starts = task_starts(&recorder);
        assert_eq!(starts["first"], 100_000_000);
        assert_eq!(starts["later"], 1_200_000_000);
        let later_ns: u64 = recorder
            .profile()
            .timed_samples()
            .filter(|(key, _)| {
                recorder
                    .profile()
                    .task(key.labels)
                    .is_some_and(|t| recorder.profile().str(t) == "later")
            })
            .map(|(_, tally)| tally.nanos)
            .sum();
        assert_eq!(
            later_ns, 10_000_000,
            "one interval, not the second since the last tasks"
        );
    }

    #[test]
    fn a_long_call_stays_one_call_when_an_observation_misses_its_arguments() {
        let code = Arc::new(CodeInfo::named(0x1000, "route", "/app/route.py", 10));
        let frame = Frame {
            code,
            line: 12,
            addr: 0x7000,
            calling: None,
            entry: true,
            call_frame: 0,
        };
        let frames = [frame];
        let mut recorder = recorder_of_process_5(Meta::default());
        let unreadable = format!("a={UNREADABLE_REPR}, b=2");
        let sequence = [
            Some("a=1, b=2"),
            // The locals could not be read at all this time.
            None,
            Some(unreadable.as_str()),
            Some("a=1, b=2"),
        ];
        for (index, arguments) in sequence.into_iter().enumerate() {
            let elapsed = Duration::from_millis(10 * index as u64);
            recorder.add_snapshot(5, elapsed, &[snapshot(&frames, arguments)]);
        }
        // The same call seen twice, not two calls with equal arguments.
        assert_eq!(calls_seen(&recorder), (2, 1));
        // Once the frame has left the stack, the same arguments are a new call.
        recorder.add_snapshot(5, Duration::from_millis(50), &[snapshot(&[], None)]);
        let other = Frame {
            code: Arc::new(CodeInfo::named(0x2000, "main", "/app/main.py", 1)),
            line: 3,
            addr: 0x6000,
            calling: None,
            entry: true,
            call_frame: 0,
        };
        recorder.add_snapshot(
            5,
            Duration::from_millis(60),
            &[ThreadSnapshot {
                observations: vec![FrameObservation {
                    frame: 0,
                    arguments: String::new(),
                    local_types: Vec::new(),
                }],
                ..snapshot(&[other], None)
            }],
        );
        recorder.add_snapshot(
            5,
            Duration::from_millis(70),
            &[snapshot(&frames, Some("a=1, b=2"))],
        );
        assert_eq!(calls_seen(&recorder), (4, 1));
    }

    #[test]
    fn a_frame_reused_by_a_new_call_between_reads_is_a_new_call() {
        // A recursion: the innermost call's frame slot is taken by the next
        // call of the same function within microseconds, so two reads 25 ms
        // apart can find the same address, code and arguments.
        let code = Arc::new(CodeInfo::named(
            0x1000,
            "edit_distance",
            "/app/match.py",
            11,
        ));
        let frame = |addr| Frame {
            code: code.clone(),
            line: 17,
            addr,
            calling: None,
            entry: false,
            call_frame: 0,
        };
        let deep = [frame(0x7100), frame(0x7000)];
        let shallow = [frame(0x7000)];
        let mut recorder = recorder_of_process_5(Meta::default());
        let reads = [
            (&deep[..], Some("typed='ID', label='MID'")),
            // A sample between the reads: the inner call has returned.
            (&shallow[..], None),
            (&deep[..], Some("typed='ID', label='MID'")),
        ];
        for (index, (frames, arguments)) in reads.into_iter().enumerate() {
            let elapsed = Duration::from_millis(10 * index as u64);
            recorder.add_snapshot(5, elapsed, &[snapshot(frames, arguments)]);
        }
        assert_eq!(
            calls_seen(&recorder),
            (2, 0),
            "two calls with equal arguments"
        );
        // A frame on the stack at every sample between two reads stays one call.
        recorder.add_snapshot(5, Duration::from_millis(30), &[snapshot(&deep, None)]);
        recorder.add_snapshot(
            5,
            Duration::from_millis(40),
            &[snapshot(&deep, Some("typed='ID', label='MID'"))],
        );
        assert_eq!(calls_seen(&recorder), (3, 1));
    }
}
