//! [`PythonReader`]: reads interpreter state through a [`Layout`].

use std::collections::HashMap;
use std::sync::Arc;

use pydx_remote::{MemoryReader, ReadExt};

use crate::error::WalkError;
use crate::frames::CodeInfo;
use crate::layout::Layout;
use crate::threads::Topology;

/// Longest string pydx reads out of a target, in characters.
pub const MAX_STRING_CHARS: usize = 4096;
/// Largest line table pydx reads, in bytes.
pub const MAX_LINETABLE_BYTES: usize = 1 << 20;
/// Deepest stack pydx walks; deeper stacks are cut and marked truncated.
pub const MAX_STACK_DEPTH: usize = 4096;
/// Most thread states pydx walks per interpreter.
pub const MAX_THREADS: usize = 4096;
/// Most interpreters pydx walks.
pub const MAX_INTERPRETERS: usize = 256;
/// Most dictionary entries pydx visits in one dictionary.
pub const MAX_DICT_ENTRIES: usize = 1 << 16;

/// What pydx remembers about a type object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// `tp_name`, e.g. `"str"` or `"myapp.models.User"`.
    pub name: String,
    /// `tp_flags`.
    pub flags: u64,
    /// `tp_basicsize`.
    pub basicsize: u64,
    /// `tp_dictoffset`.
    pub dictoffset: i64,
}

/// Reads CPython objects, code objects and frames from a target.
///
/// It is generic over the memory source so that the same code runs on a live
/// process ([`pydx_remote::ProcessMemory`]) and on test images
/// ([`pydx_remote::FakeMemory`]). Caches of type and code objects live here,
/// keyed by address in the target.
#[derive(Debug)]
pub struct PythonReader<M> {
    pub(crate) memory: M,
    pub(crate) layout: Layout,
    pub(crate) types: HashMap<u64, Arc<TypeInfo>>,
    pub(crate) code: HashMap<u64, CodeEntry>,
    pub(crate) topology: Option<Topology>,
    /// Frame addresses seen lately on each thread's chain.
    pub(crate) recent_frames: RecentFrames,
    /// Route templates read from route objects that live as long as the app
    /// (Starlette routes, werkzeug rules), by object address.
    pub(crate) routes: HashMap<u64, String>,
}

/// Frame addresses seen lately on each thread's chain. Before 3.11 frames
/// are heap objects that the interpreter takes from a free list, so a thread
/// that calls in and out keeps landing on the same few addresses: reading
/// them all at once finds its chain whole in one read, however it moves.
#[derive(Debug, Default)]
pub(crate) struct RecentFrames {
    /// Counts the rounds of reads.
    round: u64,
    /// By thread state: each frame address and the round it was last seen.
    by_thread: HashMap<u64, HashMap<u64, u64>>,
}

impl RecentFrames {
    /// Most addresses remembered per thread (the innermost frames, which
    /// are the ones that come and go).
    const PER_THREAD: usize = 256;
    /// Rounds after which an address not seen again is forgotten.
    const ROUNDS_KEPT: u64 = 1000;

    /// Starts a round in which the threads are `tstates`: forgets the others.
    pub(crate) fn begin_round(&mut self, tstates: &[u64]) {
        self.round += 1;
        self.by_thread.retain(|tstate, _| tstates.contains(tstate));
    }

    /// The addresses remembered for the thread `tstate`.
    pub(crate) fn of(&self, tstate: u64) -> impl Iterator<Item = u64> + '_ {
        self.by_thread
            .get(&tstate)
            .into_iter()
            .flat_map(|seen| seen.keys().copied())
    }

    /// Remembers that `frames` (innermost first) were on the chain of
    /// `tstate` this round.
    pub(crate) fn saw(&mut self, tstate: u64, frames: impl Iterator<Item = u64>) {
        let round = self.round;
        let seen = self.by_thread.entry(tstate).or_default();
        for addr in frames.take(Self::PER_THREAD) {
            seen.insert(addr, round);
        }
        if seen.len() > Self::PER_THREAD || round % 64 == 0 {
            seen.retain(|_, last| round - *last <= Self::ROUNDS_KEPT);
        }
        if seen.len() > Self::PER_THREAD {
            let mut rounds: Vec<u64> = seen.values().copied().collect();
            rounds.sort_unstable_by(|a, b| b.cmp(a));
            let oldest_kept = rounds[Self::PER_THREAD - 1];
            seen.retain(|_, last| *last >= oldest_kept);
        }
    }
}

/// A cached code object and the bytes that identify it.
#[derive(Debug, Clone)]
pub(crate) struct CodeEntry {
    /// The bytes at [`PythonReader::code_fingerprint_range`]; if they change,
    /// the address now holds another object.
    pub fingerprint: Vec<u8>,
    /// `None` when the object at this address is not a code object.
    pub info: Option<Arc<CodeInfo>>,
}

impl<M: MemoryReader> PythonReader<M> {
    /// A reader of `memory` laid out as `layout`.
    pub fn new(memory: M, layout: Layout) -> Self {
        Self {
            memory,
            layout,
            types: HashMap::new(),
            code: HashMap::new(),
            routes: HashMap::new(),
            topology: None,
            recent_frames: RecentFrames::default(),
        }
    }

    /// The layout in use.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The memory being read.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Reads a pointer-sized word.
    pub(crate) fn word(&self, addr: u64) -> Result<u64, WalkError> {
        Ok(self.memory.read_u64(addr)?)
    }
}

/// Reads a little-endian `u64` out of a local copy of target memory.
pub(crate) fn u64_at(bytes: &[u8], offset: u64) -> Option<u64> {
    let start = usize::try_from(offset).ok()?;
    let chunk = bytes.get(start..start.checked_add(8)?)?;
    Some(u64::from_le_bytes(chunk.try_into().ok()?))
}

/// Reads a little-endian `i32` out of a local copy of target memory.
pub(crate) fn i32_at(bytes: &[u8], offset: u64) -> Option<i32> {
    let start = usize::try_from(offset).ok()?;
    let chunk = bytes.get(start..start.checked_add(4)?)?;
    Some(i32::from_le_bytes(chunk.try_into().ok()?))
}

/// Reads one byte out of a local copy of target memory.
pub(crate) fn u8_at(bytes: &[u8], offset: u64) -> Option<u8> {
    bytes.get(usize::try_from(offset).ok()?).copied()
}
