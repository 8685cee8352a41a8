//! [`PythonProcess`]: a live CPython process, attached for reading.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pydx_remote::{
    thread_ids, MemoryMaps, NamespaceTids, PrefetchingMemory, ProcessInfo, ProcessMemory,
};

use crate::asyncio::{AsyncioDebugOffsets, AsyncioTask};
use crate::error::{AttachError, WalkError};
use crate::frames::{Frame, Stack};
use crate::layout::Layout;
use crate::locals::Local;
use crate::locate::{locate, Location};
use crate::objects::Value;
use crate::reader::PythonReader;
use crate::requests::{HttpRequest, RequestCount};
use crate::threads::{ThreadState, Threads};
use crate::version::PythonVersion;

/// One Python thread of a snapshot.
#[derive(Debug, Clone)]
pub struct PythonThread {
    /// `threading.get_ident()` of the thread (its `pthread_t`).
    pub thread_id: u64,
    /// The OS thread id in pydx's PID namespace, when known.
    pub native_id: Option<u32>,
    /// The name `threading` gave it, if any.
    pub name: Option<String>,
    /// Whether it held the GIL when read.
    pub holds_gil: bool,
    /// Address of its interpreter's GIL state, to recognise threads that
    /// are blocked waiting for it (see [`crate::GIL_STATE_SIZE`]).
    pub gil_address: Option<u64>,
    /// Its frames, innermost first.
    pub frames: Vec<Frame>,
    /// The stack was cut (too deep, or an outer frame was unreadable).
    pub truncated: bool,
    /// Why its stack could not be read, if it could not.
    pub error: Option<WalkError>,
    /// The HTTP request it is serving, when requests are read (see
    /// [`PythonProcess::set_read_requests`]) and it serves one.
    pub request: Option<HttpRequest>,
}

/// A CPython process pydx has attached to (read-only).
#[derive(Debug)]
pub struct PythonProcess {
    pid: u32,
    location: Location,
    reader: PythonReader<PrefetchingMemory<ProcessMemory>>,
    /// ≤3.10: where the TID is in glibc's thread descriptor.
    pthread_tid_offset: Option<u64>,
    /// Thread names by `thread_id`.
    names: HashMap<u64, String>,
    /// Host TID and name of each thread state seen, so that a snapshot of
    /// known threads needs no reads beyond their stacks.
    identities: HashMap<ThreadKey, (Option<u32>, Option<String>)>,
    /// When the identities were last read afresh.
    identities_read: Instant,
    /// Target TIDs to pydx TIDs when the target is in another PID namespace.
    namespace: Option<NamespaceTids>,
    /// 3.14+: the `_asyncio` module's `.AsyncioDebug` offsets, once found.
    asyncio_debug: Option<AsyncioDebugOffsets>,
    /// Whether [`PythonProcess::threads`] also reads each thread's request.
    read_requests: bool,
    /// Where the server's request count is, once found.
    request_count: Option<RequestCount>,
}

/// Why asyncio tasks could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum AsyncioError {
    /// pydx does not know the task layout of this interpreter.
    #[error("pydx does not know where asyncio keeps its tasks in Python {0}")]
    Unsupported(String),
    /// Reading the tasks failed.
    #[error(transparent)]
    Walk(#[from] WalkError),
}

/// Finds the `.AsyncioDebug` section in the files the process maps: the
/// `_asyncio` extension module, or the interpreter itself when the module
/// is built in.
fn find_asyncio_debug(pid: u32) -> Option<AsyncioDebugOffsets> {
    let info = ProcessInfo::read(pid).ok()?;
    let maps = MemoryMaps::read(pid).ok()?;
    let mut files: Vec<&pydx_remote::MemoryMap> = maps
        .iter()
        .filter(|m| {
            m.offset == 0
                && m.file_name().is_some_and(|n| {
                    n.starts_with("_asyncio")
                        || n.starts_with("libpython")
                        || n.starts_with("python")
                })
        })
        .collect();
    files.dedup_by(|a, b| a.path == b.path);
    files.into_iter().find_map(|map| {
        let path = info.mapped_file(map)?;
        let image = pydx_remote::ElfImage::open(path).ok()?;
        let data = image.section_data(".AsyncioDebug").ok()??;
        AsyncioDebugOffsets::parse(data.get(..AsyncioDebugOffsets::SIZE)?)
    })
}

impl PythonProcess {
    /// Attaches to process `pid`: finds its interpreter, checks the version
    /// and reads its layout. Nothing is written to the process.
    ///
    /// When the process maps more than one interpreter binary, the first
    /// whose runtime is running is used.
    pub fn attach(pid: u32) -> Result<Self, AttachError> {
        let info = ProcessInfo::read(pid)?;
        let maps = MemoryMaps::read(pid)?;
        let memory = ProcessMemory::new(pid);
        let locations = locate(&info, &maps, &memory)?;
        let namespace = if in_other_pid_namespace(pid) {
            Some(NamespaceTids::read(pid)?)
        } else {
            None
        };
        let mut first_error = None;
        for location in locations {
            match Self::attach_at(pid, location, namespace.clone()) {
                Ok(process) => return Ok(process),
                // Another copy cannot help when the process itself is gone
                // or cannot be read.
                Err(error @ AttachError::Remote(_)) => return Err(error),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.expect("locate returns at least one location"))
    }

    /// Attaches to the interpreter at `location`.
    fn attach_at(
        pid: u32,
        location: Location,
        namespace: Option<NamespaceTids>,
    ) -> Result<Self, AttachError> {
        let version = location.version;
        if version.minor_version() < PythonVersion::OLDEST_SUPPORTED {
            return Err(AttachError::unsupported(pid, version));
        }
        let layout = match &location.debug_offsets {
            Some(offsets) if offsets.free_threaded => {
                return Err(AttachError::UnsupportedVersion {
                    pid,
                    version: format!("{version} (free-threaded)"),
                    reason: "free-threaded builds of CPython are not supported yet".into(),
                })
            }
            Some(offsets) => Layout::from_debug_offsets(offsets).map_err(|reason| {
                AttachError::UnsupportedVersion {
                    pid,
                    version: version.to_string(),
                    reason,
                }
            })?,
            None => Layout::from_tables(version)
                .ok_or_else(|| AttachError::unsupported(pid, version))?,
        };
        let mut process = Self {
            pid,
            location,
            reader: PythonReader::new(PrefetchingMemory::new(ProcessMemory::new(pid)), layout),
            pthread_tid_offset: None,
            names: HashMap::new(),
            identities: HashMap::new(),
            identities_read: Instant::now(),
            namespace,
            asyncio_debug: None,
            read_requests: false,
            request_count: None,
        };
        process.check_running()?;
        process.refresh_thread_names();
        Ok(process)
    }

    /// Checks that the interpreter is initialised and readable, with a
    /// clear error if the version's layout does not fit the process.
    fn check_running(&mut self) -> Result<(), AttachError> {
        let runtime = self.location.runtime;
        let interpreters = self
            .reader
            .interpreters(runtime)
            .map_err(|e| self.walk_to_attach(e))?;
        let Some(&main) = interpreters.last() else {
            return Err(AttachError::NotRunning {
                pid: self.pid,
                reason: "the interpreter has not started yet or has shut down".into(),
            });
        };
        let states = self
            .reader
            .thread_states(main)
            .map_err(|e| self.walk_to_attach(e))?;
        if states.is_empty() {
            return Err(AttachError::NotRunning {
                pid: self.pid,
                reason: "the interpreter has no threads".into(),
            });
        }
        // A layout that does not fit shows as unreadable stacks every time;
        // a process busy starting up may tear one read, so a few are tried.
        // A stack that only ever reads torn (it changed under every read, as
        // a deep recursion's does) was read with a layout that fits: the
        // frames were found, twice, and differed. The sampler reads such
        // stacks again paused.
        let mut first_error = None;
        let mut only_torn = true;
        for _ in 0..STACK_CHECK_ATTEMPTS {
            let states = self
                .reader
                .thread_states(main)
                .map_err(|e| self.walk_to_attach(e))?;
            let stacks = self
                .reader
                .stacks(&states)
                .map_err(|e| self.walk_to_attach(e))?;
            if stacks.iter().any(|s| s.is_ok()) {
                return Ok(());
            }
            only_torn &= stacks
                .iter()
                .all(|s| s.as_ref().is_err_and(WalkError::is_torn));
            first_error = first_error.or(stacks.into_iter().find_map(Result::err));
            std::thread::sleep(Duration::from_millis(1));
        }
        if only_torn {
            return Ok(());
        }
        Err(AttachError::LayoutMismatch {
            pid: self.pid,
            version: self.location.version.to_string(),
            reason: format!(
                "its thread stacks do not read with the {} layout ({})",
                self.location.version,
                first_error.map(|e| e.to_string()).unwrap_or_default()
            ),
        })
    }

    fn walk_to_attach(&self, error: WalkError) -> AttachError {
        if error.is_process_gone() {
            AttachError::Remote(pydx_remote::Error::NoSuchProcess(self.pid))
        } else if error.is_permission_denied() {
            AttachError::Remote(pydx_remote::Error::PermissionDenied {
                pid: self.pid,
                hint: pydx_remote::permission_hint(self.pid),
            })
        } else {
            AttachError::LayoutMismatch {
                pid: self.pid,
                version: self.location.version.to_string(),
                reason: format!(
                    "its interpreter state does not read with the known layout ({error})"
                ),
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The interpreter's version.
    pub fn version(&self) -> PythonVersion {
        self.location.version
    }

    /// The file holding the interpreter (libpython or the executable).
    pub fn binary(&self) -> &str {
        &self.location.binary
    }

    /// The address of the interpreter's `_PyRuntime`, where its walks start.
    pub fn runtime(&self) -> u64 {
        self.location.runtime
    }

    /// 3.14+: the asyncio task layout the `_asyncio` module publishes, if
    /// it is loaded.
    pub fn asyncio_debug_offsets(&mut self) -> Option<AsyncioDebugOffsets> {
        if self.asyncio_debug.is_none() && self.location.version.at_least(3, 14) {
            self.asyncio_debug = find_asyncio_debug(self.pid);
        }
        self.asyncio_debug
    }

    /// Makes [`PythonProcess::threads`] also read the HTTP request each
    /// thread serves (a few more reads per serving thread, read ahead with
    /// the rest of the snapshot once the program settles).
    pub fn set_read_requests(&mut self, read: bool) {
        self.read_requests = read;
        // 3.14+: the task layout needed to follow work handed to a thread
        // pool back to its request comes from the `_asyncio` module.
        if read && self.location.version.at_least(3, 14) && self.asyncio_debug.is_none() {
            self.asyncio_debug = find_asyncio_debug(self.pid);
        }
    }

    /// The reader, for lower-level access (objects, dictionaries, ...).
    pub fn reader(&mut self) -> &mut PythonReader<PrefetchingMemory<ProcessMemory>> {
        &mut self.reader
    }

    /// Re-reads thread names from `threading._active`. Names are cached
    /// because they rarely change; call this when new threads appear.
    pub fn refresh_thread_names(&mut self) {
        let Ok(interpreters) = self.reader.interpreters(self.location.runtime) else {
            return;
        };
        let mut names = HashMap::new();
        for interp in interpreters {
            if let Ok(found) = self.reader.thread_names(interp) {
                names.extend(found);
            }
        }
        self.names = names;
    }

    /// When the last [`PythonProcess::threads`] read the target, from the
    /// start of its first read to the end of its last (`CLOCK_MONOTONIC`
    /// nanoseconds): what it returned was copied from the target then.
    pub fn last_read_span(&self) -> Option<(u64, u64)> {
        self.reader.memory.round_reads_span()
    }

    /// Reads every Python thread of every interpreter: stack, GIL, name.
    /// Fails only if the process is gone or access is lost; a thread whose
    /// stack cannot be read carries the error instead.
    pub fn threads(&mut self) -> Result<Vec<PythonThread>, WalkError> {
        // One round of reads: in steady state the thread states, frames and
        // code-object checks all come in the round's first system call.
        self.reader.memory.begin_round();
        let read_requests = self.read_requests;
        let read = self
            .reader
            .threads(self.location.runtime)
            .and_then(|threads| {
                let stacks = self.reader.stacks(&threads.states)?;
                let debug = self.asyncio_debug.as_ref();
                let requests: Vec<Option<HttpRequest>> = stacks
                    .iter()
                    .map(|stack| match stack {
                        Ok(stack) if read_requests => self
                            .reader
                            .http_request(&stack.frames)
                            .or_else(|| self.reader.offloaded_request(&stack.frames, debug)),
                        _ => None,
                    })
                    .collect();
                Ok((threads, stacks, requests))
            });
        self.reader.memory.end_round();
        let (
            Threads {
                interpreters: gils,
                states,
            },
            stacks,
            requests,
        ) = read?;
        let layout = self.reader.layout();
        let keys: Vec<ThreadKey> = states.iter().map(|s| ThreadKey::of(s, layout)).collect();
        let stale = self.identities_read.elapsed() > IDENTITY_REFRESH;
        if stale || keys.iter().any(|k| !self.identities.contains_key(k)) {
            self.read_identities(&states);
        }
        Ok(states
            .into_iter()
            .zip(stacks)
            .zip(keys)
            .zip(requests)
            .map(|(((state, stack), key), request)| {
                let (stack, error) = match stack {
                    Ok(stack) => (stack, None),
                    Err(e) => (Stack::default(), Some(e)),
                };
                let gil = gils
                    .iter()
                    .find(|(interp, _)| *interp == state.interp)
                    .and_then(|(_, gil)| *gil);
                let (native_id, name) = self.identities.get(&key).cloned().unwrap_or_default();
                PythonThread {
                    name,
                    holds_gil: gil.is_some_and(|g| g.holder == Some(state.addr)),
                    gil_address: gil.map(|g| g.address),
                    thread_id: state.thread_id,
                    native_id,
                    frames: stack.frames,
                    truncated: stack.truncated,
                    error,
                    request,
                }
            })
            .collect())
    }

    /// Reads the names and OS thread ids of `states` afresh.
    fn read_identities(&mut self, states: &[ThreadState]) {
        self.refresh_thread_names();
        let native_ids = self.native_ids(states);
        self.identities = states
            .iter()
            .zip(native_ids)
            .map(|(state, native_id)| {
                let name = self.names.get(&state.thread_id).cloned();
                (
                    ThreadKey::of(state, self.reader.layout()),
                    (native_id, name),
                )
            })
            .collect();
        self.identities_read = Instant::now();
    }

    /// OS thread ids (in pydx's namespace) of the given thread states.
    fn native_ids(&mut self, states: &[ThreadState]) -> Vec<Option<u32>> {
        let host_tids = thread_ids(self.pid).unwrap_or_default();
        if self.namespace.is_some() {
            if let Ok(namespace) = NamespaceTids::read(self.pid) {
                self.namespace = Some(namespace);
            }
        }
        let from_tstate = self.reader.layout().tstate_native_thread_id.is_some();
        let inner: Vec<Option<u32>> = if from_tstate {
            states.iter().map(|s| s.native_thread_id).collect()
        } else {
            self.pthread_tids(states, &host_tids)
        };
        inner
            .into_iter()
            .map(|tid| {
                let tid = tid?;
                match &self.namespace {
                    Some(ns) => ns.to_host(tid),
                    // The thread wrote its own id into its thread state; it
                    // holds even for a thread that has exited since (gone
                    // from the task list), which would otherwise be taken
                    // for any later thread reusing its `pthread_t`.
                    None if from_tstate => (tid != 0).then_some(tid),
                    None => host_tids.contains(&tid).then_some(tid),
                }
            })
            .collect()
    }

    /// ≤3.10: TIDs read from glibc's thread descriptors.
    fn pthread_tids(&mut self, states: &[ThreadState], host_tids: &[u32]) -> Vec<Option<u32>> {
        let pthreads: Vec<u64> = states.iter().map(|s| s.thread_id).collect();
        let inner_tids: Vec<u32> = match &self.namespace {
            Some(namespace) => namespace.inner_ids(),
            None => host_tids.to_vec(),
        };
        if self.pthread_tid_offset.is_none() {
            self.pthread_tid_offset = self.reader.find_pthread_tid_offset(&pthreads, &inner_tids);
        }
        let Some(offset) = self.pthread_tid_offset else {
            return vec![None; states.len()];
        };
        pthreads
            .iter()
            .map(|&p| {
                let tid =
                    pydx_remote::ReadExt::read_u32(self.reader.memory(), p.wrapping_add(offset))
                        .ok()?;
                inner_tids.contains(&tid).then_some(tid)
            })
            .collect()
    }

    /// Every asyncio task of the process with its coroutine chain (3.11+).
    /// Empty when asyncio was never imported.
    pub fn asyncio_tasks(&mut self) -> Result<Vec<AsyncioTask>, AsyncioError> {
        let version = self.location.version;
        if version.at_least(3, 14) && self.asyncio_debug.is_none() {
            self.asyncio_debug = find_asyncio_debug(self.pid);
            if self.asyncio_debug.is_none() {
                // No `_asyncio` module mapped: asyncio was never imported.
                return Ok(Vec::new());
            }
        }
        if !crate::asyncio::task_layout_known(version, self.asyncio_debug.as_ref()) {
            return Err(AsyncioError::Unsupported(version.to_string()));
        }
        let threads = self.reader.threads(self.location.runtime)?;
        let mut tasks = Vec::new();
        for &(interp, _) in &threads.interpreters {
            let states: Vec<ThreadState> = threads
                .states
                .iter()
                .filter(|s| s.interp == interp)
                .cloned()
                .collect();
            tasks.extend(self.reader.asyncio_tasks(
                interp,
                &states,
                self.asyncio_debug.as_ref(),
            )?);
        }
        Ok(tasks)
    }

    /// Fills in who awaits whom: each task's `awaited_by`.
    pub fn link_awaiters(&mut self, tasks: &mut [AsyncioTask]) {
        self.reader
            .link_awaiters(tasks, self.asyncio_debug.as_ref());
    }

    /// How many requests this process has served, when it is a gunicorn
    /// worker or a uvicorn server (see [`PythonReader::find_request_count`]).
    /// The count is looked for on the stacks until found, then read
    /// directly from the object that keeps it.
    pub fn served_requests(&mut self) -> Option<u64> {
        if let Some(count) = self.request_count {
            if let Some(served) = self.reader.read_request_count(count) {
                return Some(served);
            }
            self.request_count = None;
        }
        for _ in 0..COUNT_SEARCH_ATTEMPTS {
            let Ok(threads) = self.threads() else {
                continue;
            };
            let found = threads
                .iter()
                .find_map(|thread| self.reader.find_request_count(&thread.frames));
            if let Some(count) = found {
                self.request_count = Some(count);
                return self.reader.read_request_count(count);
            }
            if threads.iter().all(|t| t.error.is_none()) {
                return None;
            }
        }
        None
    }

    /// The local variables of a frame from [`PythonProcess::threads`].
    pub fn locals(&mut self, frame: &Frame) -> Result<Vec<Local>, WalkError> {
        self.reader.locals(frame)
    }

    /// The local variables of a frame with the first items of containers
    /// (see [`PythonReader::locals_in_full`]).
    pub fn locals_in_full(&mut self, frame: &Frame) -> Result<Vec<Local>, WalkError> {
        self.reader.locals_in_full(frame)
    }

    /// The local `name` of a frame from [`PythonProcess::threads`] if it
    /// holds a `str`, cut at `max_chars` characters.
    pub fn str_local(
        &mut self,
        frame: &Frame,
        name: &str,
        max_chars: usize,
    ) -> Result<Option<String>, WalkError> {
        self.reader.str_local(frame, name, max_chars)
    }

    /// The values inside the local `name` of a frame from
    /// [`PythonProcess::threads`]: a container's items (a `dict`'s keys and
    /// values), at most `max_items`, or the value itself.
    pub fn local_values(
        &mut self,
        frame: &Frame,
        name: &str,
        max_items: usize,
    ) -> Result<Option<Vec<Value>>, WalkError> {
        self.reader.local_values(frame, name, max_items)
    }
}

/// How many times [`PythonProcess::served_requests`] reads the stacks
/// while some of them cannot be read (a running thread's stack can change
/// under the reader).
const COUNT_SEARCH_ATTEMPTS: usize = 3;

/// How many times attaching tries to read the stacks before it concludes
/// that the layout does not fit the process.
const STACK_CHECK_ATTEMPTS: usize = 20;

/// How often thread names and ids are read again even if no new thread
/// appeared (a thread state and `pthread_t` can be reused by a new thread).
const IDENTITY_REFRESH: Duration = Duration::from_secs(2);

/// Identifies a thread state between snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ThreadKey {
    tstate: u64,
    thread_id: u64,
    native_thread_id: Option<u32>,
    /// Up to 3.10, the thread state's unique id: a new thread often reuses
    /// both an old one's thread state memory and its `pthread_t`.
    unique_id: Option<u64>,
}

impl ThreadKey {
    fn of(state: &ThreadState, layout: &Layout) -> Self {
        Self {
            tstate: state.addr,
            thread_id: state.thread_id,
            native_thread_id: state.native_thread_id,
            unique_id: layout
                .tstate_unique_id
                .and_then(|offset| crate::reader::u64_at(&state.bytes, offset)),
        }
    }
}

/// Whether `pid` lives in a PID namespace other than pydx's.
fn in_other_pid_namespace(pid: u32) -> bool {
    let namespace = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    match (namespace("self"), namespace(&pid.to_string())) {
        (Some(mine), Some(theirs)) => mine != theirs,
        _ => false,
    }
}
