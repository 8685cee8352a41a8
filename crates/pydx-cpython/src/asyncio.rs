//! asyncio tasks: every task of a process, running or waiting, with the
//! chain of coroutines it is suspended in and what it awaits.
//!
//! From 3.14 the `_asyncio` module publishes the offsets of its task
//! objects and task lists in an ELF section, `.AsyncioDebug`, and keeps its
//! tasks in intrusive lists hanging off each thread state. Before that
//! (3.8–3.13), tasks are found through `asyncio.tasks`' own registries (a
//! `WeakSet` of scheduled tasks and a set of eager ones) and the task
//! layout comes from tables. Up to 3.10 a coroutine's frame is a separate
//! frame object, and what it awaits is on top of that frame's value stack.

use std::collections::HashSet;

use pydx_libraries::{find_role, plays, Role};
use pydx_remote::{MemoryReader, ReadExt};

use crate::error::WalkError;
use crate::frames::{Frame, RawFrame};
use crate::reader::{i32_at, u64_at, PythonReader, MAX_DICT_ENTRIES};
use crate::requests::HttpRequest;
use crate::threads::ThreadState;
use crate::version::PythonVersion;

/// Most tasks read from one list.
const MAX_TASKS: usize = 1 << 16;
/// Deepest chain of awaited coroutines followed.
const MAX_AWAIT_DEPTH: usize = 1024;
/// `PyWeakReference.wr_object`.
const WEAKREF_OBJECT: u64 = 0x10;
/// `futureiterobject.future`.
const FUTURE_ITER_FUTURE: u64 = 0x10;
/// `PyAsyncGenASend.ags_gen` and `PyAsyncGenAThrow.agt_gen`: the async
/// generator an `__anext__()`, `asend()` or `athrow()` awaitable drives.
const ASYNC_GEN_AWAITABLE_GEN: u64 = 0x10;
/// `FutureObj.fut_callback0` and `fut_callbacks` (3.8–3.13): the first
/// done callback, and a list of `(callback, context)` for the others.
const FUTURE_CALLBACK0: u64 = 0x18;
const FUTURE_CALLBACKS: u64 = 0x28;
/// `PyMethodObject.im_self`: the object a bound method is bound to.
const METHOD_SELF: u64 = 0x18;
/// Most done callbacks of one future looked at.
const MAX_CALLBACKS: usize = 64;
/// Most tasks one task is awaited by, or one gather awaits.
const MAX_AWAITERS: usize = 1024;

/// The `.AsyncioDebug` section of 3.14+: where task fields and task lists are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncioDebugOffsets {
    /// `TaskObj.task_name`.
    pub task_name: u64,
    /// `TaskObj.task_awaited_by`: the task awaiting it, or a set of them.
    pub task_awaited_by: u64,
    /// `TaskObj.task_awaited_by_is_set`, a byte: whether that is a set.
    pub task_awaited_by_is_set: u64,
    /// `TaskObj.task_coro`.
    pub task_coro: u64,
    /// `TaskObj.task_node`, its link in a task list.
    pub task_node: u64,
    /// The list of tasks of threads that exited, in the interpreter state.
    pub interpreter_tasks_head: u64,
    /// `_PyThreadStateImpl.asyncio_running_task`.
    pub thread_running_task: u64,
    /// `_PyThreadStateImpl.asyncio_tasks_head`.
    pub thread_tasks_head: u64,
}

impl AsyncioDebugOffsets {
    /// Size of the section's struct: 13 `u64`s.
    pub const SIZE: usize = 13 * 8;

    /// Decodes the section's bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let word = |i: u64| u64_at(bytes, i * 8);
        // task_object: size, name, awaited_by, is_task, awaited_by_is_set, coro, node;
        // interpreter_state: size, tasks_head; thread_state: size, running_loop, running_task, tasks_head.
        let offsets = Self {
            task_name: word(1)?,
            task_awaited_by: word(2)?,
            task_awaited_by_is_set: word(4)?,
            task_coro: word(5)?,
            task_node: word(6)?,
            interpreter_tasks_head: word(8)?,
            thread_running_task: word(11)?,
            thread_tasks_head: word(12)?,
        };
        let task_size = word(0)?;
        let plausible = [
            offsets.task_name,
            offsets.task_awaited_by,
            offsets.task_awaited_by_is_set,
            offsets.task_coro,
            offsets.task_node,
        ]
        .iter()
        .all(|&o| o > 0 && o < task_size && task_size < 0x1000);
        plausible.then_some(offsets)
    }
}

/// One asyncio task.
#[derive(Debug, Clone)]
pub struct AsyncioTask {
    /// Address of the task object.
    pub addr: u64,
    /// Its name (`Task-3` for unnamed tasks).
    pub name: String,
    /// The coroutines it is suspended in, innermost (most deeply awaited) first.
    pub coroutines: Vec<Frame>,
    /// What the innermost coroutine awaits, when that is not a coroutine:
    /// `Future`, `Task <name>`, or a type name.
    pub awaiting: Option<String>,
    /// `threading.get_ident()` of the thread running it right now, if any.
    pub running_on: Option<u64>,
    /// The chain of awaited coroutines was cut (at 1,024 coroutines).
    pub truncated: bool,
    /// The addresses of the tasks awaiting this one (see
    /// [`PythonReader::link_awaiters`]); empty until linked.
    pub awaited_by: Vec<u64>,
    /// The object the innermost coroutine awaits, when not a coroutine.
    awaited_object: Option<u64>,
}

impl AsyncioTask {
    /// A task suspended in `coroutines` (innermost first), running on no
    /// thread and linked to no other task.
    pub fn suspended(addr: u64, name: &str, coroutines: Vec<Frame>) -> Self {
        Self {
            addr,
            name: name.to_string(),
            coroutines,
            awaiting: None,
            running_on: None,
            truncated: false,
            awaited_by: Vec::new(),
            awaited_object: None,
        }
    }

    /// For a task running on a thread whose frames (innermost first) are
    /// `frames`: its whole chain, the thread's frames from the innermost up
    /// to the task's outermost coroutine. The links between coroutines only
    /// reach the one running; the coroutines it called since, and what they
    /// called, are on the thread's stack.
    pub fn join_running_stack(&mut self, frames: &[Frame]) {
        let Some(outermost) = self.coroutines.last() else {
            return;
        };
        if let Some(index) = frames
            .iter()
            .position(|f| f.addr == outermost.addr && f.code.addr == outermost.code.addr)
        {
            self.coroutines = frames[..=index].to_vec();
        }
    }
}

/// What a task's coroutines show.
#[derive(Debug, Default)]
struct CoroutineChain {
    /// Their frames, innermost first.
    frames: Vec<RawFrame>,
    /// What the innermost awaits, when not a coroutine.
    awaiting: Option<String>,
    /// The object it awaits, when not a coroutine.
    awaited_object: Option<u64>,
    /// Cut at [`MAX_AWAIT_DEPTH`].
    truncated: bool,
}

/// What a task awaits, before 3.14.
#[derive(Debug, Default)]
struct AwaitedTasks {
    /// The future (or task) its innermost coroutine awaits.
    future: Option<u64>,
    /// The tasks that future stands for: itself when it is a task, a
    /// `gather`'s children.
    tasks: Vec<u64>,
}

/// How a coroutine's frame is found, up to 3.10: `gi_frame` points at a
/// frame object (null once the coroutine has returned).
#[derive(Debug, Clone, Copy)]
struct FrameObjectCoroutine {
    /// `gi_frame` (`cr_frame`).
    gen_frame: u64,
    /// `f_valuestack`, the bottom of the frame's value stack.
    value_stack: u64,
    /// Where the top of the value stack is.
    stack_top: StackTop,
}

/// How a frame object says how full its value stack is.
#[derive(Debug, Clone, Copy)]
enum StackTop {
    /// 3.8, 3.9: `f_stacktop`, a pointer, null while the frame runs.
    Pointer(u64),
    /// 3.10: `f_stackdepth`, a count, valid when `f_state` (a byte) says
    /// the frame is suspended.
    Depth { depth: u64, state: u64 },
}

/// `FRAME_SUSPENDED` of 3.10's `f_state`.
const FRAME_SUSPENDED_3_10: i8 = -1;

/// Where task and coroutine fields are, for one CPython version.
#[derive(Debug, Clone, Copy)]
struct TaskLayout {
    task_name: u64,
    task_coro: u64,
    /// Up to 3.10: the coroutine's frame is a frame object.
    frame_object: Option<FrameObjectCoroutine>,
    /// From 3.11: the frame is inside the coroutine, at this offset.
    gen_frame: u64,
    gen_frame_state: u64,
    /// 3.11–3.13: the value stack's depth is an index at this frame offset.
    stack_top_index: Option<u64>,
    /// 3.14+: the value stack's top is a pointer at this frame offset.
    stack_pointer: Option<u64>,
}

impl TaskLayout {
    fn for_version(version: PythonVersion, debug: Option<&AsyncioDebugOffsets>) -> Option<Self> {
        // Measured on CPython's builds: the offsets of `task_coro` and
        // `task_name` in `_asyncio.Task`, and of the frame object fields.
        let frame_object = |task_coro: u64, stack_top: StackTop| Self {
            task_name: task_coro + 8,
            task_coro,
            frame_object: Some(FrameObjectCoroutine {
                gen_frame: 0x10,
                value_stack: 0x40,
                stack_top,
            }),
            gen_frame: 0,
            gen_frame_state: 0,
            stack_top_index: None,
            stack_pointer: None,
        };
        Some(match version.minor_version() {
            (3, 8) => frame_object(0x70, StackTop::Pointer(0x48)),
            (3, 9) => frame_object(0x98, StackTop::Pointer(0x48)),
            (3, 10) => frame_object(
                0xa0,
                StackTop::Depth {
                    depth: 0x50,
                    state: 0x6c,
                },
            ),
            (3, 11) => Self {
                task_name: 0x90,
                task_coro: 0x88,
                frame_object: None,
                gen_frame: 0x50,
                gen_frame_state: 0x4b,
                stack_top_index: Some(0x40),
                stack_pointer: None,
            },
            (3, 12) => Self {
                task_name: 0x90,
                task_coro: 0x88,
                frame_object: None,
                gen_frame: 0x48,
                gen_frame_state: 0x43,
                stack_top_index: Some(0x40),
                stack_pointer: None,
            },
            (3, 13) => Self {
                task_name: 0x80,
                task_coro: 0x78,
                frame_object: None,
                gen_frame: 0x48,
                gen_frame_state: 0x43,
                stack_top_index: Some(0x40),
                stack_pointer: None,
            },
            (3, minor) if minor >= 14 => {
                let debug = debug?;
                Self {
                    task_name: debug.task_name,
                    task_coro: debug.task_coro,
                    frame_object: None,
                    gen_frame: 0x48,
                    gen_frame_state: 0x43,
                    stack_top_index: None,
                    stack_pointer: Some(0x40),
                }
            }
            _ => return None,
        })
    }
}

impl<M: MemoryReader> PythonReader<M> {
    /// Every asyncio task of the interpreter. `debug` is the `.AsyncioDebug`
    /// section (3.14+); `states` are the interpreter's thread states, used
    /// to find the running task of each thread. Returns an empty list when
    /// asyncio is not in use.
    pub fn asyncio_tasks(
        &mut self,
        interp: u64,
        states: &[ThreadState],
        debug: Option<&AsyncioDebugOffsets>,
    ) -> Result<Vec<AsyncioTask>, WalkError> {
        let version = self.layout.version;
        let Some(layout) = TaskLayout::for_version(version, debug) else {
            return Err(WalkError::invalid("asyncio task layout", 0));
        };
        let mut addresses: Vec<u64> = Vec::new();
        let mut running: Vec<(u64, u64)> = Vec::new();
        match debug.filter(|_| version.at_least(3, 14)) {
            Some(debug) => {
                for state in states {
                    let head = state.addr.wrapping_add(debug.thread_tasks_head);
                    addresses.extend(self.linked_tasks(head, debug.task_node)?);
                    let task = self.word(state.addr.wrapping_add(debug.thread_running_task))?;
                    if task != 0 {
                        running.push((task, state.thread_id));
                    }
                }
                addresses.extend(self.linked_tasks(
                    interp.wrapping_add(debug.interpreter_tasks_head),
                    debug.task_node,
                )?);
            }
            None => {
                let Some(module) = self.module(interp, "asyncio.tasks")? else {
                    return Ok(Vec::new());
                };
                let globals = self.module_dict(module)?;
                for registry in ["_scheduled_tasks", "_all_tasks", "_eager_tasks"] {
                    if let Some(collection) = self.dict_get_str(globals, registry)? {
                        addresses.extend(self.registry_tasks(collection)?);
                    }
                }
                if let Some(current) = self.dict_get_str(globals, "_current_tasks")? {
                    running = self.running_tasks(current)?;
                }
            }
        }
        let mut seen = HashSet::new();
        addresses.retain(|a| *a != 0 && seen.insert(*a));
        let mut tasks = Vec::with_capacity(addresses.len());
        for addr in addresses {
            let Ok(name) = self.task_name(addr, &layout) else {
                continue;
            };
            let coro = self.word(addr.wrapping_add(layout.task_coro))?;
            let chain = self.coroutine_chain(coro, &layout)?;
            // Nothing left to run: the task has finished.
            if chain.frames.is_empty() && chain.awaiting.is_none() {
                continue;
            }
            tasks.push((addr, name, chain));
        }
        let codes: Vec<u64> = tasks
            .iter()
            .flat_map(|t| t.2.frames.iter().map(|f| f.code))
            .collect();
        self.refresh_code_cache(&codes)?;
        Ok(tasks
            .into_iter()
            .map(|(addr, name, chain)| AsyncioTask {
                running_on: running
                    .iter()
                    .find(|(t, _)| *t == addr)
                    .map(|&(_, thread)| thread),
                addr,
                name,
                coroutines: self.resolve(&chain.frames),
                awaiting: chain.awaiting,
                truncated: chain.truncated,
                awaited_by: Vec::new(),
                awaited_object: chain.awaited_object,
            })
            .collect())
    }

    /// Fills in who awaits whom: each task's `awaited_by`, from the tasks
    /// in `tasks`. From 3.14 asyncio records it in each task (gather,
    /// TaskGroup, shield, staggered races and plain awaits). Before, it is
    /// found from both ends: a task awaiting another task or a `gather`'s
    /// future (its `_children`); a task whose done callback is a
    /// `TaskGroup`'s (its `_parent_task`) or a nested function holding a
    /// future another task awaits (`shield`). On every version, the tasks
    /// given to asyncio's waiting functions are read from their locals
    /// (`wait`, staggered races, `wait_for` up to 3.11). A link that cannot
    /// be read is left out.
    pub fn link_awaiters(
        &mut self,
        tasks: &mut [AsyncioTask],
        debug: Option<&AsyncioDebugOffsets>,
    ) {
        let known: HashSet<u64> = tasks.iter().map(|t| t.addr).collect();
        let mut links: Vec<(u64, u64)> = Vec::new();
        match debug.filter(|_| self.layout.version.at_least(3, 14)) {
            Some(debug) => {
                for task in tasks.iter() {
                    for awaiter in self.recorded_awaiters(task.addr, debug).unwrap_or_default() {
                        links.push((task.addr, awaiter));
                    }
                }
            }
            None => {
                let mut future_awaiters = Vec::new();
                for task in tasks.iter() {
                    let Ok(awaited) = self.awaited_tasks(task) else {
                        continue;
                    };
                    future_awaiters.extend(awaited.future.map(|f| (f, task.addr)));
                    links.extend(awaited.tasks.into_iter().map(|a| (a, task.addr)));
                }
                for task in tasks.iter() {
                    let awaiters = self.callback_awaiters(task.addr, &future_awaiters);
                    links.extend(
                        awaiters
                            .unwrap_or_default()
                            .into_iter()
                            .map(|a| (task.addr, a)),
                    );
                }
            }
        }
        for task in tasks.iter() {
            for awaited in self.waited_in_frames(task).unwrap_or_default() {
                links.push((awaited, task.addr));
            }
        }
        for task in tasks.iter_mut() {
            let mut awaiters: Vec<u64> = links
                .iter()
                .filter(|&&(awaited, awaiter)| {
                    awaited == task.addr && awaiter != task.addr && known.contains(&awaiter)
                })
                .map(|&(_, awaiter)| awaiter)
                .collect();
            awaiters.sort_unstable();
            awaiters.dedup();
            task.awaited_by = awaiters;
        }
    }

    /// 3.14+: the tasks a task records as awaiting it.
    fn recorded_awaiters(
        &mut self,
        task: u64,
        debug: &AsyncioDebugOffsets,
    ) -> Result<Vec<u64>, WalkError> {
        let awaited_by = self.word(task.wrapping_add(debug.task_awaited_by))?;
        if awaited_by == 0 {
            return Ok(Vec::new());
        }
        if self
            .memory
            .read_u8(task.wrapping_add(debug.task_awaited_by_is_set))?
            != 0
        {
            return self.set_keys(awaited_by, MAX_AWAITERS);
        }
        Ok(vec![awaited_by])
    }

    /// Before 3.14: what a task awaits, seen from its side.
    fn awaited_tasks(&mut self, task: &AsyncioTask) -> Result<AwaitedTasks, WalkError> {
        let mut awaited = AwaitedTasks::default();
        let Some(object) = task.awaited_object else {
            return Ok(awaited);
        };
        let type_name = self.type_of(object)?.name.clone();
        let (target, target_type) = self.awaited_future(object, &type_name)?;
        awaited.future = Some(target);
        if target_type.ends_with("Task") {
            awaited.tasks.push(target);
        } else if target_type == "_GatheringFuture" {
            if let Some(children) = self.instance_attr(target, "_children")? {
                awaited.tasks = self.sequence_items(children, MAX_AWAITERS)?;
            }
        }
        Ok(awaited)
    }

    /// The tasks a task waits for inside asyncio's own waiting functions
    /// ([`Role::TaskWaiting`]).
    fn waited_in_frames(&mut self, task: &AsyncioTask) -> Result<Vec<u64>, WalkError> {
        let mut awaited = Vec::new();
        for frame in &task.coroutines {
            let Some(local) =
                find_role(
                    &frame.code.qualname,
                    &frame.code.filename,
                    |role| match role {
                        Role::TaskWaiting { tasks } => Some(tasks),
                        _ => None,
                    },
                )
            else {
                continue;
            };
            let Some(value) = self.object_local(frame, local)? else {
                continue;
            };
            match self.type_of(value)?.name.as_str() {
                "set" | "frozenset" => awaited.extend(self.set_keys(value, MAX_AWAITERS)?),
                "list" | "tuple" => awaited.extend(self.sequence_items(value, MAX_AWAITERS)?),
                _ => awaited.push(value),
            }
        }
        Ok(awaited)
    }

    /// Before 3.14: the tasks a task's done callbacks lead to. A
    /// `TaskGroup`'s callback (a bound method of the group) leads to the
    /// group's parent task; a nested function's (`shield`'s, `gather`'s)
    /// leads, through a future among its free variables, to the tasks
    /// awaiting that future (`future_awaiters`: future -> task).
    fn callback_awaiters(
        &mut self,
        task: u64,
        future_awaiters: &[(u64, u64)],
    ) -> Result<Vec<u64>, WalkError> {
        let mut callbacks = vec![self.word(task.wrapping_add(FUTURE_CALLBACK0))?];
        let list = self.word(task.wrapping_add(FUTURE_CALLBACKS))?;
        if list != 0 {
            for entry in self.sequence_items(list, MAX_CALLBACKS)? {
                callbacks.extend(self.sequence_items(entry, 1)?);
            }
        }
        let mut awaiters = Vec::new();
        for callback in callbacks.into_iter().filter(|&c| c != 0) {
            match self.type_of(callback)?.name.as_str() {
                "method" => {
                    let group = self.word(callback.wrapping_add(METHOD_SELF))?;
                    if group != 0 && self.type_of(group)?.name == "TaskGroup" {
                        awaiters.extend(self.instance_attr(group, "_parent_task")?);
                    }
                }
                "function" => {
                    let closure = self.word(callback.wrapping_add(self.layout.function_closure))?;
                    if closure == 0 {
                        continue;
                    }
                    for cell in self.sequence_items(closure, MAX_CALLBACKS)? {
                        let value = self.cell_contents(cell)?;
                        awaiters.extend(
                            future_awaiters
                                .iter()
                                .filter(|(future, _)| *future == value && value != 0)
                                .map(|&(_, awaiter)| awaiter),
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(awaiters)
    }

    /// The HTTP request an anyio worker thread is running a job for (a
    /// FastAPI or Starlette `def` endpoint, `run_in_threadpool`, a
    /// middleware's offloaded work), when `frames` (innermost first) are such
    /// a thread's: the job's cancel scope names the task that handed it
    /// over, and that task's coroutines hold the ASGI `scope`.
    pub fn offloaded_request(
        &mut self,
        frames: &[Frame],
        debug: Option<&AsyncioDebugOffsets>,
    ) -> Option<HttpRequest> {
        let position = frames
            .iter()
            .position(|f| plays(&f.code.qualname, &f.code.filename, Role::OffloadedJobs))?;
        // Between jobs the worker waits in `Queue.get`, and its locals still
        // name the previous job.
        let job = &frames[position.checked_sub(1)?];
        if plays(&job.code.qualname, &job.code.filename, Role::QueueWait) {
            return None;
        }
        let layout = TaskLayout::for_version(self.layout.version, debug)?;
        let cancel_scope = self
            .object_local(&frames[position], "cancel_scope")
            .ok()??;
        if self.type_of(cancel_scope).ok()?.name != "CancelScope" {
            return None;
        }
        let task = self.slot_attr(cancel_scope, "_host_task").ok()??;
        if !self.type_of(task).ok()?.name.ends_with("Task") {
            return None;
        }
        let coro = self.word(task.wrapping_add(layout.task_coro)).ok()?;
        let chain = self.coroutine_chain(coro, &layout).ok()?;
        let codes: Vec<u64> = chain.frames.iter().map(|f| f.code).collect();
        self.refresh_code_cache(&codes).ok()?;
        let coroutines = self.resolve(&chain.frames);
        self.http_request(&coroutines)
    }

    /// Tasks on a circular intrusive list whose head node is at `head`.
    fn linked_tasks(&self, head: u64, node_offset: u64) -> Result<Vec<u64>, WalkError> {
        let mut tasks = Vec::new();
        let mut node = self.word(head)?;
        while node != head && node != 0 {
            if tasks.len() >= MAX_TASKS {
                return Err(WalkError::invalid("asyncio task list", head));
            }
            tasks.push(node.wrapping_sub(node_offset));
            node = self.word(node)?;
        }
        Ok(tasks)
    }

    /// The tasks of a `WeakSet` (through its `data` set of weak
    /// references) or of a plain `set`.
    fn registry_tasks(&mut self, collection: u64) -> Result<Vec<u64>, WalkError> {
        let type_name = self.type_of(collection)?.name.clone();
        let (set, weak) = if type_name == "set" {
            (collection, false)
        } else {
            match self.instance_attr(collection, "data")? {
                Some(data) => (data, true),
                None => return Ok(Vec::new()),
            }
        };
        let keys = self.set_keys(set, MAX_DICT_ENTRIES)?;
        let mut tasks = Vec::with_capacity(keys.len());
        for key in keys {
            let task = if weak {
                self.word(key.wrapping_add(WEAKREF_OBJECT))?
            } else {
                key
            };
            if task != 0 && self.type_of(task).is_ok_and(|t| t.name.ends_with("Task")) {
                tasks.push(task);
            }
        }
        Ok(tasks)
    }

    /// `(task, thread ident)` for each running task in `_current_tasks`
    /// (event loop -> task), using the loop's `_thread_id`.
    fn running_tasks(&mut self, current: u64) -> Result<Vec<(u64, u64)>, WalkError> {
        let mut running = Vec::new();
        for (event_loop, task) in self.dict_items(current, MAX_TASKS)? {
            if let Some(thread) = self.instance_attr(event_loop, "_thread_id")? {
                if let Ok(ident) = self.read_i64(thread) {
                    running.push((task, ident as u64));
                }
            }
        }
        Ok(running)
    }

    /// A task's name: its `str` name, or `Task-N` for an integer one.
    fn task_name(&mut self, task: u64, layout: &TaskLayout) -> Result<String, WalkError> {
        let name = self.word(task.wrapping_add(layout.task_name))?;
        if name == 0 {
            return Ok(format!("Task at {task:#x}"));
        }
        match self.read_str(name) {
            Ok(text) => Ok(text),
            Err(_) => Ok(format!("Task-{}", self.read_i64(name)?)),
        }
    }

    /// The frames of a coroutine and of every coroutine it awaits, innermost
    /// first, and what the innermost one awaits when it is not a coroutine.
    fn coroutine_chain(
        &mut self,
        coro: u64,
        layout: &TaskLayout,
    ) -> Result<CoroutineChain, WalkError> {
        let frame_layout = self.layout.clone();
        let mut frames = Vec::new();
        let mut current = coro;
        let mut awaiting = None;
        let mut awaited_object = None;
        let mut truncated = false;
        for depth in 0..=MAX_AWAIT_DEPTH {
            if current == 0 {
                break;
            }
            if depth == MAX_AWAIT_DEPTH {
                truncated = true;
                break;
            }
            let type_name = self.type_of(current)?.name.clone();
            if is_async_generator_awaitable(&type_name) {
                current = self.word(current.wrapping_add(ASYNC_GEN_AWAITABLE_GEN))?;
                continue;
            }
            if !matches!(
                type_name.as_str(),
                "coroutine" | "generator" | "async_generator"
            ) {
                awaiting = Some(self.describe_awaitable(current, &type_name, layout)?);
                awaited_object = Some(current);
                break;
            }
            if let Some(legacy) = layout.frame_object {
                match self.frame_object_step(current, &legacy)? {
                    FrameStep::Returned if depth == 0 => return Ok(CoroutineChain::default()),
                    FrameStep::Returned => break,
                    FrameStep::Running(frame) => {
                        frames.extend(frame);
                        break;
                    }
                    FrameStep::Awaiting(frame, awaited) => {
                        frames.extend(frame);
                        current = awaited;
                        continue;
                    }
                }
            }
            let state =
                self.memory
                    .read_u8(current.wrapping_add(layout.gen_frame_state))? as i8;
            // A task whose coroutine has returned is done, not waiting: it
            // stays in the task registry until it is collected.
            if depth == 0 && self.is_finished(state) {
                return Ok(CoroutineChain::default());
            }
            let frame = current.wrapping_add(layout.gen_frame);
            let bytes = self
                .memory
                .read_vec(frame, frame_layout.frame_size as usize, 0x400)?;
            let mut code = u64_at(&bytes, frame_layout.frame_code).unwrap_or(0);
            if frame_layout.stack_refs_tagged {
                code &= !3;
            }
            frames.push(RawFrame {
                addr: frame,
                code,
                instruction: u64_at(&bytes, frame_layout.frame_instr).unwrap_or(0),
                entry: false,
                call_frame: 0,
            });
            if !self.is_suspended(state) {
                break;
            }
            current = self.awaited_object(frame, &bytes, layout)?;
        }
        frames.reverse();
        Ok(CoroutineChain {
            frames,
            awaiting,
            awaited_object,
            truncated,
        })
    }

    /// One coroutine of a chain up to 3.10: its frame object's frame, and
    /// what it awaits when it is suspended in an `await`.
    fn frame_object_step(
        &mut self,
        coroutine: u64,
        layout: &FrameObjectCoroutine,
    ) -> Result<FrameStep, WalkError> {
        let frame = self.word(coroutine.wrapping_add(layout.gen_frame))?;
        if frame == 0 {
            return Ok(FrameStep::Returned);
        }
        let size = self.layout.frame_size as usize;
        let bytes = self.memory.read_vec(frame, size, 0x400)?;
        let (raw, _) = self.decode_frame(frame, &bytes);
        let base = u64_at(&bytes, layout.value_stack).unwrap_or(0);
        let top = match layout.stack_top {
            StackTop::Pointer(offset) => u64_at(&bytes, offset).unwrap_or(0),
            StackTop::Depth { depth, state } => {
                let suspended =
                    bytes.get(state as usize).map(|&b| b as i8) == Some(FRAME_SUSPENDED_3_10);
                let depth = i32_at(&bytes, depth).unwrap_or(0);
                if suspended && depth > 0 {
                    base.wrapping_add(depth as u64 * 8)
                } else {
                    0
                }
            }
        };
        // Running (no stack top), or not started yet (an empty stack).
        if top <= base || top - base > MAX_VALUE_STACK {
            return Ok(FrameStep::Running(raw));
        }
        // On top of the stack of a coroutine suspended in `await` (a
        // `yield` leaves something else there, or nothing).
        let awaited = self.word(top.wrapping_sub(8))? & !3;
        if awaited == 0
            || !self
                .type_of(awaited)
                .is_ok_and(|t| is_awaitable_type(&t.name))
        {
            return Ok(FrameStep::Running(raw));
        }
        Ok(FrameStep::Awaiting(raw, awaited))
    }

    /// Whether a generator frame state means its code has returned (or was
    /// cleared) in this version: `FRAME_COMPLETED` and after, 3.11–3.14.
    /// From 3.15 on, tasks are read from lists a finished task leaves.
    fn is_finished(&self, state: i8) -> bool {
        match self.layout.version.minor_version() {
            (3, 11) | (3, 12) | (3, 13) | (3, 14) => state >= 1,
            _ => false,
        }
    }

    /// Whether a generator frame state means "suspended" in this version.
    fn is_suspended(&self, state: i8) -> bool {
        match self.layout.version.minor_version() {
            (3, 11) | (3, 12) => state == -1,
            (3, 13) | (3, 14) => state == -2 || state == -1,
            _ => (1..=3).contains(&state),
        }
    }

    /// The object on top of a suspended frame's value stack: what it awaits.
    fn awaited_object(
        &mut self,
        frame: u64,
        bytes: &[u8],
        layout: &TaskLayout,
    ) -> Result<u64, WalkError> {
        let slot = if let Some(index) = layout.stack_top_index {
            let top = i32_at(bytes, index).unwrap_or(0);
            if top <= 0 {
                return Ok(0);
            }
            frame
                .wrapping_add(self.layout.frame_localsplus)
                .wrapping_add((top as u64 - 1) * 8)
        } else if let Some(pointer) = layout.stack_pointer {
            u64_at(bytes, pointer).unwrap_or(0)
        } else {
            return Ok(0);
        };
        if layout.stack_pointer.is_some() {
            // 3.14 keeps the awaited object just below the stack pointer,
            // 3.15 one slot further down: take the first that is awaitable.
            for back in [8, 16] {
                let candidate = self.word(slot.wrapping_sub(back))? & !3;
                if candidate != 0
                    && self
                        .type_of(candidate)
                        .is_ok_and(|t| is_awaitable_type(&t.name))
                {
                    return Ok(candidate);
                }
            }
            return Ok(0);
        }
        Ok(self.word(slot)? & !3)
    }

    /// The object awaited through `object` (of type `type_name`): the
    /// future behind a future's iterator, else the object itself; and the
    /// name of its type.
    fn awaited_future(&mut self, object: u64, type_name: &str) -> Result<(u64, String), WalkError> {
        let target = if type_name.ends_with("FutureIter") {
            self.word(object.wrapping_add(FUTURE_ITER_FUTURE))?
        } else {
            object
        };
        let target_type = self.type_of(target)?.name.clone();
        Ok((target, target_type))
    }

    /// `Future`, `Task <name>` or the type name of an awaited object.
    fn describe_awaitable(
        &mut self,
        object: u64,
        type_name: &str,
        layout: &TaskLayout,
    ) -> Result<String, WalkError> {
        let (target, target_type) = self.awaited_future(object, type_name)?;
        if target_type.ends_with("Task") {
            return Ok(format!("Task {}", self.task_name(target, layout)?));
        }
        Ok(target_type
            .rsplit('.')
            .next()
            .unwrap_or(&target_type)
            .to_string())
    }
}

/// Whether pydx knows where asyncio tasks and their coroutines are in
/// `version` (with the `.AsyncioDebug` section `debug`, from 3.14).
pub(crate) fn task_layout_known(
    version: PythonVersion,
    debug: Option<&AsyncioDebugOffsets>,
) -> bool {
    TaskLayout::for_version(version, debug).is_some()
}

/// Largest value stack believed, in bytes.
const MAX_VALUE_STACK: u64 = 0x10000;

/// One coroutine of a chain read through its frame object.
enum FrameStep {
    /// It has returned: no frame.
    Returned,
    /// It runs, or is suspended other than in an `await`: the end of the chain.
    Running(Option<RawFrame>),
    /// It is suspended awaiting the object.
    Awaiting(Option<RawFrame>, u64),
}

/// The awaitables an async generator's `__anext__()`, `asend()` and
/// `athrow()` return: awaiting one runs the generator.
fn is_async_generator_awaitable(name: &str) -> bool {
    matches!(name, "async_generator_asend" | "async_generator_athrow")
}

/// Types a suspended coroutine can be awaiting.
fn is_awaitable_type(name: &str) -> bool {
    matches!(name, "coroutine" | "generator" | "async_generator")
        || is_async_generator_awaitable(name)
        || name.ends_with("Future")
        || name.ends_with("FutureIter")
        || name.ends_with("Task")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_asyncio_debug_section_of_3_14() {
        // The bytes of CPython 3.14.10's `.AsyncioDebug` section.
        let words: [u64; 13] = [
            0xa8, 0x88, 0x60, 0x6c, 0x6d, 0x80, 0x98, 0x37248, 0x2a80, 0x3a8, 0x360, 0x368, 0x370,
        ];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let offsets = AsyncioDebugOffsets::parse(&bytes).unwrap();
        assert_eq!(
            offsets,
            AsyncioDebugOffsets {
                task_name: 0x88,
                task_awaited_by: 0x60,
                task_awaited_by_is_set: 0x6d,
                task_coro: 0x80,
                task_node: 0x98,
                interpreter_tasks_head: 0x2a80,
                thread_running_task: 0x368,
                thread_tasks_head: 0x370,
            }
        );
        assert!(AsyncioDebugOffsets::parse(&[0; 104]).is_none());
    }
}
