//! Interpreters, thread states, the GIL holder and `threading` names.

use std::collections::HashMap;

use pydx_remote::{MemoryReader, ReadExt};

use crate::error::WalkError;
use crate::reader::{
    i32_at, u64_at, PythonReader, MAX_DICT_ENTRIES, MAX_INTERPRETERS, MAX_THREADS,
};

/// Size of `struct _gil_runtime_state` (3.8 to 3.15): a thread blocked on a
/// futex inside it is waiting for the GIL.
pub const GIL_STATE_SIZE: u64 = 0xd0;
/// The leading fields of the GIL state pydx reads: `interval`,
/// `last_holder`, `locked`.
const GIL_FIELDS: usize = 0x18;

/// An interpreter's GIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gil {
    /// Address of its `_gil_runtime_state`.
    pub address: u64,
    /// The thread state holding it, if it is locked.
    pub holder: Option<u64>,
}

/// A thread state read out of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadState {
    /// Address of the `PyThreadState`.
    pub addr: u64,
    /// Address of its interpreter.
    pub interp: u64,
    /// `thread_id`: the `pthread_t`, which `threading.get_ident()` returns.
    pub thread_id: u64,
    /// `native_thread_id` (3.11+): the OS thread id in the target's namespace.
    pub native_thread_id: Option<u32>,
    /// The bytes of the thread state, for walking its frames.
    pub bytes: Vec<u8>,
}

/// Every interpreter and thread state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Threads {
    /// Each interpreter (newest first, main last) and its GIL.
    pub interpreters: Vec<(u64, Option<Gil>)>,
    /// Every thread state, interpreter by interpreter, newest first.
    pub states: Vec<ThreadState>,
}

/// Where the interpreters, GILs and thread states were at the last read, so
/// that the next read can fetch them all in one batch and check the links.
#[derive(Debug, Clone, Default)]
pub(crate) struct Topology {
    /// Each interpreter, its GIL's address, and its thread states.
    interpreters: Vec<(u64, Option<u64>, Vec<u64>)>,
}

impl Topology {
    fn of(threads: &Threads) -> Self {
        Self {
            interpreters: threads
                .interpreters
                .iter()
                .map(|&(interp, gil)| {
                    let states = threads
                        .states
                        .iter()
                        .filter(|s| s.interp == interp)
                        .map(|s| s.addr)
                        .collect();
                    (interp, gil.map(|g| g.address), states)
                })
                .collect(),
        }
    }
}

impl<M: MemoryReader> PythonReader<M> {
    /// Every interpreter, its GIL and its thread states. When nothing was
    /// created or destroyed since the last call, this is one batched read
    /// whose every link is checked; otherwise the lists are walked again.
    pub fn threads(&mut self, runtime: u64) -> Result<Threads, WalkError> {
        if let Some(topology) = self.topology.take() {
            if let Some(threads) = self.read_known_threads(runtime, &topology)? {
                self.topology = Some(topology);
                return Ok(threads);
            }
        }
        let mut threads = Threads::default();
        for interp in self.interpreters(runtime)? {
            threads
                .interpreters
                .push((interp, self.gil(runtime, interp)?));
            threads.states.extend(self.thread_states(interp)?);
        }
        self.topology = Some(Topology::of(&threads));
        Ok(threads)
    }

    /// Reads the structures named in `topology` in one batch; `None` if the
    /// lists no longer link up as they did (threads came or went).
    fn read_known_threads(
        &self,
        runtime: u64,
        topology: &Topology,
    ) -> Result<Option<Threads>, WalkError> {
        let layout = &self.layout;
        let tstate_size = layout.tstate_size as usize;
        let mut spans: Vec<(u64, usize)> =
            vec![(runtime.wrapping_add(layout.runtime_interpreters_head), 8)];
        for (interp, gil, states) in &topology.interpreters {
            spans.push((interp.wrapping_add(layout.interp_next), 8));
            spans.push((interp.wrapping_add(layout.interp_threads_head), 8));
            if let Some(gil) = gil {
                spans.push((*gil, GIL_FIELDS));
            }
            spans.extend(states.iter().map(|&s| (s, tstate_size)));
        }
        let mut buffers: Vec<Vec<u8>> = spans.iter().map(|&(_, len)| vec![0u8; len]).collect();
        let mut requests: Vec<pydx_remote::ReadRequest<'_>> = buffers
            .iter_mut()
            .zip(&spans)
            .map(|(buf, &(addr, _))| pydx_remote::ReadRequest::new(addr, buf))
            .collect();
        self.memory.read_batch(&mut requests)?;
        if requests.iter().any(|r| !r.done) {
            return Ok(None);
        }
        drop(requests);
        let mut buffers = buffers.into_iter();
        let next_word =
            |buffers: &mut std::vec::IntoIter<Vec<u8>>| buffers.next().and_then(|b| u64_at(&b, 0));
        let first_interp = topology.interpreters.first().map_or(0, |i| i.0);
        if next_word(&mut buffers) != Some(first_interp) {
            return Ok(None);
        }
        let mut threads = Threads::default();
        for (index, (interp, gil, states)) in topology.interpreters.iter().enumerate() {
            let expected_next = topology.interpreters.get(index + 1).map_or(0, |i| i.0);
            let expected_head = states.first().copied().unwrap_or(0);
            if next_word(&mut buffers) != Some(expected_next)
                || next_word(&mut buffers) != Some(expected_head)
            {
                return Ok(None);
            }
            let gil =
                gil.map(|address| self.parse_gil(address, &buffers.next().unwrap_or_default()));
            threads.interpreters.push((*interp, gil));
            for (position, &addr) in states.iter().enumerate() {
                let bytes = buffers.next().unwrap_or_default();
                let expected = states.get(position + 1).copied().unwrap_or(0);
                if u64_at(&bytes, layout.tstate_next) != Some(expected) {
                    return Ok(None);
                }
                threads
                    .states
                    .push(self.parse_thread_state(addr, *interp, bytes));
            }
        }
        Ok(Some(threads))
    }

    fn parse_thread_state(&self, addr: u64, interp: u64, bytes: Vec<u8>) -> ThreadState {
        let layout = &self.layout;
        ThreadState {
            addr,
            interp,
            thread_id: u64_at(&bytes, layout.tstate_thread_id).unwrap_or(0),
            native_thread_id: layout
                .tstate_native_thread_id
                .and_then(|offset| u64_at(&bytes, offset))
                .map(|tid| tid as u32),
            bytes,
        }
    }

    fn parse_gil(&self, address: u64, fields: &[u8]) -> Gil {
        let (locked, holder) = self.layout.gil_locked_holder;
        // `last_holder` stays set after a release, so `locked` decides.
        let is_locked = i32_at(fields, locked).unwrap_or(0) != 0;
        let holder = u64_at(fields, holder).filter(|&h| is_locked && h != 0);
        Gil { address, holder }
    }

    /// Addresses of all interpreters, main interpreter last.
    pub fn interpreters(&self, runtime: u64) -> Result<Vec<u64>, WalkError> {
        let mut interpreters = Vec::new();
        let mut interp = self.word(runtime.wrapping_add(self.layout.runtime_interpreters_head))?;
        while interp != 0 {
            if interpreters.len() >= MAX_INTERPRETERS || interpreters.contains(&interp) {
                return Err(WalkError::invalid("interpreter list", interp));
            }
            interpreters.push(interp);
            interp = self.word(interp.wrapping_add(self.layout.interp_next))?;
        }
        Ok(interpreters)
    }

    /// The thread states of interpreter `interp`, newest first.
    pub fn thread_states(&self, interp: u64) -> Result<Vec<ThreadState>, WalkError> {
        let layout = &self.layout;
        let mut states: Vec<ThreadState> = Vec::new();
        let mut addr = self.word(interp.wrapping_add(layout.interp_threads_head))?;
        while addr != 0 {
            if states.len() >= MAX_THREADS || states.iter().any(|s| s.addr == addr) {
                return Err(WalkError::invalid("thread list", addr));
            }
            let bytes = self
                .memory
                .read_vec(addr, layout.tstate_size as usize, 0x10000)?;
            let next = u64_at(&bytes, layout.tstate_next).unwrap_or(0);
            states.push(self.parse_thread_state(addr, interp, bytes));
            addr = next;
        }
        Ok(states)
    }

    /// The GIL of interpreter `interp`: where it is and which thread state
    /// holds it. `None` if the interpreter has no GIL in use.
    pub fn gil(&self, runtime: u64, interp: u64) -> Result<Option<Gil>, WalkError> {
        let holder = self.layout.gil_locked_holder.1;
        let address = match (self.layout.runtime_gil, self.layout.interp_ceval_gil) {
            // ≤3.11: one GIL in the runtime; `last_holder` is its second word.
            (Some((_, holder_in_runtime)), _) => runtime + holder_in_runtime - holder,
            (None, Some(gil_pointer)) => self.word(interp.wrapping_add(gil_pointer))?,
            (None, None) => 0,
        };
        if address == 0 {
            return Ok(None);
        }
        let mut fields = [0u8; GIL_FIELDS];
        self.memory.read_into(address, &mut fields)?;
        Ok(Some(self.parse_gil(address, &fields)))
    }

    /// Whether the interpreter runtime is shutting down.
    pub fn finalizing(&self, runtime: u64) -> Result<bool, WalkError> {
        Ok(self.word(runtime.wrapping_add(self.layout.runtime_finalizing))? != 0)
    }

    /// The module object `name` from the interpreter's `sys.modules`.
    pub fn module(&mut self, interp: u64, name: &str) -> Result<Option<u64>, WalkError> {
        let modules = self.word(interp.wrapping_add(self.layout.interp_modules))?;
        if modules == 0 {
            return Ok(None);
        }
        self.dict_get_str(modules, name)
    }

    /// Names of the threads the `threading` module knows, by `thread_id`.
    /// Empty if `threading` was never imported.
    pub fn thread_names(&mut self, interp: u64) -> Result<HashMap<u64, String>, WalkError> {
        let mut names = HashMap::new();
        let Some(threading) = self.module(interp, "threading")? else {
            return Ok(names);
        };
        let globals = self.module_dict(threading)?;
        let Some(active) = self.dict_get_str(globals, "_active")? else {
            return Ok(names);
        };
        for (ident, thread) in self.dict_items(active, MAX_DICT_ENTRIES)? {
            let Ok(ident) = self.read_i64(ident) else {
                continue;
            };
            if let Some(name) = self.instance_attr(thread, "_name")? {
                if let Ok(name) = self.read_str(name) {
                    names.insert(ident as u64, name);
                }
            }
        }
        Ok(names)
    }

    /// Finds the offset of the kernel thread id inside the C library's
    /// thread descriptor (`struct pthread`), which pre-3.11 thread states
    /// point to only through `thread_id`. An offset is accepted when it gives
    /// a distinct, live TID for every thread.
    pub fn find_pthread_tid_offset(&self, pthreads: &[u64], tids: &[u32]) -> Option<u64> {
        /// glibc on x86_64 (2.26 and later); tried first.
        const GLIBC_TID_OFFSET: u64 = 0x2d0;
        const SEARCHED: usize = 0x800;
        let descriptors: Vec<Vec<u8>> = pthreads
            .iter()
            .map(|&p| self.memory.read_vec(p, SEARCHED, SEARCHED))
            .collect::<Result<_, _>>()
            .ok()?;
        let fits = |offset: u64| {
            let mut seen = Vec::with_capacity(descriptors.len());
            descriptors.iter().all(|d| {
                let start = offset as usize;
                let tid = u32::from_le_bytes(d[start..start + 4].try_into().expect("four bytes"));
                let fresh = !seen.contains(&tid);
                seen.push(tid);
                fresh && tids.contains(&tid)
            })
        };
        if descriptors.is_empty() {
            return None;
        }
        std::iter::once(GLIBC_TID_OFFSET)
            .chain((0..SEARCHED as u64 - 4).step_by(4))
            .find(|&offset| fits(offset))
    }
}
