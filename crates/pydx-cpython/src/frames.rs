//! Walking a thread's Python frames and decoding their code objects.
//!
//! A stack is read in two steps so that many threads can share system
//! calls: [`PythonReader::raw_stack`] follows the frame chain and records
//! (frame, code object, instruction) triples, copying a 3.11+ data-stack
//! chunk in one read; [`PythonReader::resolve`] then checks every code object
//! the triples name against the cache in one batched read and decodes the
//! ones it has not seen.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use pydx_remote::{MemoryReader, ReadExt, ReadRequest, RoundCopy};

use crate::error::WalkError;
#[cfg(test)]
use crate::layout::FrameRunning;
use crate::layout::{FrameEntry, InstructionPointer};
use crate::linetable::LineTable;
use crate::locals::LocalNames;
use crate::reader::{
    i32_at, u64_at, u8_at, CodeEntry, PythonReader, MAX_LINETABLE_BYTES, MAX_STACK_DEPTH,
    MAX_STRING_CHARS,
};
use crate::requests::RequestSlot;
use crate::threads::ThreadState;

/// Largest stretch of a data-stack chunk copied in one read.
const MAX_CHUNK_COPY: u64 = 1 << 20;
/// How many reads of a thread's frames may find them changing before its
/// stack counts as torn. Few on purpose: reading a running thread until
/// its stack holds still picks the moments it spends in a loop without
/// calls (with eight, a web handler's tight loop got 20% of a worker's CPU
/// samples for the 12% of its CPU time it took; with two, 14%). A stack
/// still changing is read again paused by default.
const SETTLE_ATTEMPTS: usize = 2;
/// Most reads of the frames while settling stacks, counting those that
/// only learn where a chain leads (frames not read before).
const SETTLE_READS: usize = 8;
/// Most bytecode kept per code object.
const MAX_BYTECODE: usize = 64 * 1024;
/// Bytes read ahead at each name, file name and line table of a new code
/// object: enough for the whole object in the common case.
const PREFETCH: usize = 256;
/// `ob_type` of every object.
const OB_TYPE: u64 = 0x8;
/// `ob_size`: code units of a code object (3.11+), length of a bytes object.
const OB_SIZE: u64 = 0x10;
/// `PyBytesObject.ob_sval`.
const BYTES_DATA: u64 = 0x20;
/// `Py_TPFLAGS_UNICODE_SUBCLASS`.
const TPFLAGS_UNICODE: u64 = 1 << 28;
/// The error that marks an executable that is not a code object.
const NOT_CODE: &str = "not a code object";

/// A decoded code object: the function's names, file and line table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeInfo {
    /// Address of the code object in the target.
    pub addr: u64,
    /// `co_name`, e.g. `run`.
    pub name: String,
    /// `co_qualname` (3.11+), e.g. `Thread.run`; `co_name` on older versions.
    pub qualname: String,
    /// `co_filename` as the target sees it.
    pub filename: String,
    /// `co_firstlineno`.
    pub first_line: u32,
    /// Size of the bytecode in bytes, to reject torn instruction pointers.
    pub(crate) code_bytes: u64,
    /// The bytecode (at most [`MAX_BYTECODE`] bytes), to see which
    /// instruction a frame is at.
    pub(crate) bytecode: Vec<u8>,
    pub(crate) line_table: LineTable,
    /// Which local holds an HTTP request, once looked up.
    pub(crate) request_slot: OnceLock<Option<RequestSlot>>,
    /// The names and kinds of its locals, once read.
    pub(crate) local_names: OnceLock<Arc<LocalNames>>,
}

impl CodeInfo {
    /// The name shown for a code object that could not be read.
    pub const UNREADABLE: &'static str = "<unreadable code object>";

    /// A code object known only by its address and names, with no bytecode
    /// or line table (for frames built outside a target, as in tests of
    /// what consumes stacks).
    pub fn named(addr: u64, qualname: &str, filename: &str, first_line: u32) -> Self {
        Self {
            addr,
            name: qualname.rsplit('.').next().unwrap_or(qualname).into(),
            qualname: qualname.into(),
            filename: filename.into(),
            first_line,
            code_bytes: 0,
            bytecode: Vec::new(),
            line_table: LineTable::default(),
            request_slot: OnceLock::new(),
            local_names: OnceLock::new(),
        }
    }

    fn unreadable(addr: u64) -> Self {
        Self {
            addr,
            name: Self::UNREADABLE.into(),
            qualname: Self::UNREADABLE.into(),
            filename: "<unknown>".into(),
            first_line: 0,
            code_bytes: 0,
            bytecode: Vec::new(),
            line_table: LineTable::default(),
            request_slot: OnceLock::new(),
            local_names: OnceLock::new(),
        }
    }
}

/// One step of a frame chain before its code object is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame {
    /// Address of the frame (`PyFrameObject` or `_PyInterpreterFrame`).
    pub addr: u64,
    /// Address of its code object.
    pub code: u64,
    /// `f_lasti` (≤3.10) or the instruction pointer (3.11+).
    pub instruction: u64,
    /// The first frame its call of the evaluation loop ran, the one C code
    /// called into (every frame before 3.11); the frames between it and
    /// the next such frame inward were run by that same C-level call.
    pub entry: bool,
    /// 3.12+, on an entry frame: the address of the mark that C-level call
    /// left on the chain, a local variable of the evaluation loop, so an
    /// address inside that call's native stack frame; 0 otherwise.
    pub call_frame: u64,
}

impl RawStack {
    /// Adds the next frame outward of a walk: `frame` when it is a Python
    /// frame, and `eval_call_mark` (its address) when the frame read is the
    /// mark left on the chain where a C-level call of the evaluation loop
    /// began (a 3.12+ entry frame), so that the frame added before it is
    /// that call's first.
    fn push(&mut self, frame: Option<RawFrame>, eval_call_mark: Option<u64>) {
        // Only the first mark after a frame is its call's: 3.14+ ends every
        // chain with the thread state's base frame, after the outermost
        // call's mark.
        if let (Some(mark), Some(last)) = (eval_call_mark, self.frames.last_mut()) {
            if last.call_frame == 0 {
                last.entry = true;
                last.call_frame = mark;
            }
        }
        self.frames.extend(frame);
    }
}

/// A thread's frame chain, innermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawStack {
    /// The frames, innermost first.
    pub frames: Vec<RawFrame>,
    /// The walk stopped at [`MAX_STACK_DEPTH`] or at an unreadable frame.
    pub truncated: bool,
}

/// A thread's resolved stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    /// The frames, innermost first.
    pub frames: Vec<Frame>,
    /// The walk stopped at [`MAX_STACK_DEPTH`] or at an unreadable frame.
    pub truncated: bool,
}

/// One thread's frame walk in progress.
struct Walk {
    stack: RawStack,
    /// The next frame to visit; 0 once the walk is over.
    next: u64,
    /// Brent's cycle detection: a frame address seen earlier, and the
    /// steps taken since it was set and until it is moved again.
    cycle_mark: u64,
    steps_since_mark: usize,
    steps_until_move: usize,
    /// The copied part of the thread's data-stack chunk: (address, bytes).
    copy: Option<(u64, Vec<u8>)>,
    /// A frame on the chain said it was not running: it was read after it
    /// returned, so the chain read is not one the thread had.
    stale: bool,
    error: Option<WalkError>,
}

impl Walk {
    fn new(first: Result<u64, WalkError>, copy: Option<(u64, Vec<u8>)>) -> Self {
        let (next, error) = match first {
            Ok(first) => (first, None),
            Err(error) => (0, Some(error)),
        };
        Self {
            stack: RawStack::default(),
            next,
            cycle_mark: 0,
            steps_since_mark: 0,
            steps_until_move: 1,
            copy,
            stale: false,
            error,
        }
    }

    /// The frame to visit next, after checking the walk's bounds; `None`
    /// when the walk is over.
    fn next_address(&mut self) -> Option<u64> {
        let addr = self.next;
        if addr == 0 {
            return None;
        }
        if self.stack.frames.len() >= MAX_STACK_DEPTH {
            self.stack.truncated = true;
            self.next = 0;
            return None;
        }
        if addr % 8 != 0 || addr == self.cycle_mark {
            // A broken chain makes the whole stack suspect, not just its end.
            self.next = 0;
            self.error = Some(WalkError::invalid("frame chain", addr));
            return None;
        }
        self.steps_since_mark += 1;
        if self.steps_since_mark == self.steps_until_move {
            self.cycle_mark = addr;
            self.steps_since_mark = 0;
            self.steps_until_move *= 2;
        }
        Some(addr)
    }

    /// The bytes of the frame at `addr` if the chunk copy holds them.
    fn local_frame(&self, addr: u64, frame_size: usize) -> Option<&[u8]> {
        let (start, data) = self.copy.as_ref()?;
        let offset = usize::try_from(addr.checked_sub(*start)?).ok()?;
        data.get(offset..offset.checked_add(frame_size)?)
    }

    fn visit(&mut self, frame: Option<RawFrame>, eval_call_mark: Option<u64>, previous: u64) {
        self.stack.push(frame, eval_call_mark);
        self.next = previous;
    }

    /// Ends the walk: a failure after some frames only truncates the stack.
    fn fail(&mut self, error: WalkError) {
        self.next = 0;
        if self.stack.frames.is_empty() || error.is_process_gone() {
            self.error = Some(error);
        } else {
            self.stack.truncated = true;
        }
    }

    fn finish(self) -> Result<RawStack, WalkError> {
        match self.error {
            Some(error) => Err(error),
            None if self.stale => Err(WalkError::Torn { attempts: 1 }),
            None => Ok(self.stack),
        }
    }
}

/// What a walk over one snapshot of frames found.
enum SnapshotWalk {
    /// The whole chain was in the snapshot, every frame running.
    Whole(RawStack),
    /// The chain leads to a frame the snapshot does not hold.
    Missing(u64),
    /// A frame of the chain had returned or could not be read: the thread
    /// moved on between the reads that found the chain and this one.
    Changing,
    /// The chain itself is broken (a cycle, a misaligned address).
    Invalid(WalkError),
}

/// The largest `owner` of a 3.11+ frame (`FRAME_OWNED_BY_CSTACK` in 3.14).
const MAX_FRAME_OWNER: u8 = 4;

/// Size of a memory page.
const PAGE: u64 = 4096;

/// Largest run of pages [`frame_pages`] reads as one range.
const MAX_PAGE_RUN: u64 = 64 * 1024;
/// Most bytes [`frame_pages`] covers with whole pages.
const MAX_FRAME_PAGES_BYTES: u64 = 1 << 20;

/// The ranges (start, end) to read so as to see the heap frames at `addrs`
/// (each `frame_size` bytes long) at very nearly one instant: the whole
/// pages that hold them, neighbouring pages merged into one range. The
/// interpreter's small-object allocator keeps frames side by side in a few
/// pages, so a thread's other frames, including ones it called since its
/// chain was last seen, are in them too, and one system call copies a few
/// ranges rather than one per frame. Beyond [`MAX_FRAME_PAGES_BYTES`], or
/// without `whole_pages`, frames are read on their own (neighbours merged).
pub(crate) fn frame_pages(
    addrs: impl Iterator<Item = u64>,
    frame_size: u64,
    whole_pages: bool,
) -> Vec<(u64, u64)> {
    let mut addrs: Vec<u64> = addrs
        .filter(|&a| a % 8 == 0 && a.checked_add(frame_size + PAGE).is_some())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut paged = 0u64;
    for addr in addrs {
        let (start, end) = if whole_pages && paged < MAX_FRAME_PAGES_BYTES {
            let start = addr / PAGE * PAGE;
            (start, (addr + frame_size).div_ceil(PAGE) * PAGE)
        } else {
            (addr, addr + frame_size)
        };
        match runs.last_mut() {
            Some((run_start, run_end)) if start <= *run_end && end - *run_start <= MAX_PAGE_RUN => {
                paged += end.saturating_sub(*run_end);
                *run_end = (*run_end).max(end);
            }
            _ => {
                paged += end - start;
                runs.push((start, end));
            }
        }
    }
    runs
}

/// What [`PythonReader::walk_stacks`] found: each thread's chain, and the
/// innermost frame it started from.
type WalkedStacks = (Vec<Result<RawStack, WalkError>>, Vec<Option<u64>>);

/// Where a thread state's `_PyCFrame` pointer is, and the value it had
/// when the round read the thread state (3.11/3.12; see
/// `PythonReader::cframe_field`).
type CFrameField = Option<(u64, u64)>;

/// Frames read in one system call, as runs of memory.
struct FrameSnapshot<'a> {
    /// The words read at the thread states' frame pointers before and after
    /// the frames, if read.
    pointers: Vec<(Option<u64>, Option<u64>)>,
    /// Each run read, sorted by start.
    runs: Vec<SnapshotRun<'a>>,
    /// Some runs could not be read.
    some_runs_failed: bool,
    frame_size: usize,
}

/// A run of memory a snapshot read, and its second copy if one was taken.
struct SnapshotRun<'a> {
    start: u64,
    bytes: Cow<'a, [u8]>,
    again: Option<Cow<'a, [u8]>>,
}

impl<'a> FrameSnapshot<'a> {
    /// The ranges a round's first read copied twice, as a snapshot.
    fn of_round(copies: &[RoundCopy<'a>], frame_size: usize) -> Self {
        Self {
            pointers: Vec::new(),
            runs: copies
                .iter()
                .map(|copy| SnapshotRun {
                    start: copy.addr,
                    bytes: Cow::Borrowed(copy.first),
                    again: Some(Cow::Borrowed(copy.second)),
                })
                .collect(),
            some_runs_failed: false,
            frame_size,
        }
    }

    /// The run starting at or before `addr`, and `addr`'s offset in it.
    fn run_at(&self, addr: u64) -> Option<(&SnapshotRun<'a>, usize)> {
        let index = self.runs.partition_point(|run| run.start <= addr);
        let run = self.runs.get(index.checked_sub(1)?)?;
        Some((run, usize::try_from(addr - run.start).ok()?))
    }

    /// The word at `addr` in the second copy, if one holds it.
    fn word_again(&self, addr: u64) -> Option<u64> {
        let (run, offset) = self.run_at(addr)?;
        u64_at(run.again.as_deref()?, offset as u64)
    }

    /// The bytes of the frame at `addr` in the first copy, and in the
    /// second if one was taken, if a run holds all of them.
    fn frame(&self, addr: u64) -> Option<(&[u8], Option<&[u8]>)> {
        let (run, offset) = self.run_at(addr)?;
        let range = offset..offset.checked_add(self.frame_size)?;
        let again = run
            .again
            .as_ref()
            .and_then(|again| again.get(range.clone()));
        Some((run.bytes.get(range)?, again))
    }
}

/// One Python frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function's code object.
    pub code: Arc<CodeInfo>,
    /// The line being executed; 0 when it could not be determined.
    pub line: u32,
    /// Address of the frame in the target, for reading its locals.
    pub addr: u64,
    /// Whether the frame stopped at a call instruction, so that (as the
    /// innermost Python frame) it is inside a call to native code; `None`
    /// when the bytecode or the version's opcodes are unknown.
    pub calling: Option<bool>,
    /// The first frame its C-level call of the evaluation loop ran (see
    /// [`RawFrame::entry`]).
    pub entry: bool,
    /// Where that call's native stack frame is (see [`RawFrame::call_frame`]).
    pub call_frame: u64,
}

impl<M: MemoryReader> PythonReader<M> {
    /// Follows the frame chain of a thread whose state was read into `tstate`.
    pub fn raw_stack(&mut self, tstate: &ThreadState) -> Result<RawStack, WalkError> {
        self.raw_stacks(std::slice::from_ref(tstate))
            .pop()
            .expect("one result per thread state")
    }

    /// Follows the frame chains of several threads at once, so that each
    /// step costs one batched read for all of them: their `_PyCFrame`s
    /// (3.11/3.12), then their data-stack chunks (3.11+), then, round by
    /// round, the frames that lie outside those copies (heap frames before
    /// 3.11, generator and entry frames after).
    ///
    /// A running thread can return and call again between those reads, or
    /// while one of them copies its frames, and the chain read would then
    /// mix two stacks. Before 3.11 every frame is a heap object that says
    /// whether it runs, so a chain read whole in one read is one the thread
    /// had; from 3.11 frames are slots of a data stack, reused at once, and
    /// a chain counts only when a second copy, taken later in the same
    /// system call, shows the same calls. Chains are
    /// read again until they pass (see `settle_stacks`); one that never
    /// does counts as [`WalkError::Torn`].
    pub fn raw_stacks(&mut self, tstates: &[ThreadState]) -> Vec<Result<RawStack, WalkError>> {
        let (mut results, firsts) = self.walk_stacks(tstates);
        let addrs: Vec<u64> = tstates.iter().map(|t| t.addr).collect();
        self.recent_frames.begin_round(&addrs);
        let pointer_addrs: Vec<Option<u64>> =
            tstates.iter().map(|t| self.frame_pointer_addr(t)).collect();
        let cframe_fields: Vec<CFrameField> =
            tstates.iter().map(|t| self.cframe_field(t)).collect();
        // Heap frames that say whether they run, all from one read, are a
        // chain the thread had. Data-stack frames (3.11+) do not say: the
        // slots of frames that returned keep their old frames, linked to
        // their callers as before, and a thread that returns and calls
        // again while its frames are read leaves a mix of old and new that
        // looks like a chain. Theirs must be found again in a second copy:
        // the one the round's first read took of them, else a fresh read.
        let on_data_stack = self.layout.frame_running.is_none();
        let one_read = self.memory.round_is_one_read();
        let pending: Vec<usize> = if on_data_stack {
            let confirmed = match one_read {
                true => self.confirm_with_round_copies(&firsts, &pointer_addrs, &cframe_fields),
                false => vec![None; tstates.len()],
            };
            let mut pending = Vec::new();
            for (thread, confirmed) in confirmed.into_iter().enumerate() {
                match confirmed {
                    Some(stack) => results[thread] = Ok(stack),
                    None => pending.push(thread),
                }
            }
            pending
        } else if one_read
            && results
                .iter()
                .all(|w| w.is_ok() || matches!(w, Err(e) if e.is_process_gone()))
        {
            Vec::new()
        } else {
            (0..tstates.len()).collect()
        };
        let results = self.settle_stacks(
            tstates,
            results,
            on_data_stack,
            (&pointer_addrs, &cframe_fields),
            pending,
        );
        for (tstate, result) in addrs.iter().zip(&results) {
            if let Ok(stack) = result {
                let frames = stack.frames.iter().map(|f| f.addr);
                self.recent_frames.saw(*tstate, frames);
            }
        }
        let recent = addrs.iter().flat_map(|t| self.recent_frames.of(*t));
        let mut expected: Vec<(u64, usize)> = frame_pages(recent, self.layout.frame_size, true)
            .into_iter()
            .map(|(start, end)| (start, (end - start) as usize))
            .collect();
        if on_data_stack {
            expected.extend(pointer_addrs.iter().flatten().map(|&addr| (addr, 8)));
            expected.extend(cframe_fields.iter().flatten().map(|&(addr, _)| (addr, 8)));
            self.memory.expect_next_round_twice(&expected);
        } else {
            self.memory.expect_next_round(&expected);
        }
        results
    }

    /// The chains found whole in the two copies the round's first read took
    /// of the frames it expected (see [`PythonReader::settle_stacks`] for
    /// the check), from each thread's innermost frame as walked (`firsts`);
    /// `None` for a thread whose chain was not.
    fn confirm_with_round_copies(
        &self,
        firsts: &[Option<u64>],
        pointer_addrs: &[Option<u64>],
        cframe_fields: &[CFrameField],
    ) -> Vec<Option<RawStack>> {
        let mut confirmed = vec![None; firsts.len()];
        self.memory.with_round_copies(&mut |copies| {
            if copies.is_empty() {
                return;
            }
            let snapshot = FrameSnapshot::of_round(copies, self.layout.frame_size as usize);
            for (thread, confirmed) in confirmed.iter_mut().enumerate() {
                let (Some(first), Some(pointer)) = (firsts[thread], pointer_addrs[thread]) else {
                    continue;
                };
                if snapshot.word_again(pointer) != Some(first) {
                    continue;
                }
                if let Some((field, cframe)) = cframe_fields[thread] {
                    if snapshot.word_again(field) != Some(cframe) {
                        continue;
                    }
                }
                if let SnapshotWalk::Whole(stack) = self.walk_snapshot(first, &snapshot, true) {
                    *confirmed = Some(stack);
                }
            }
        });
        confirmed
    }

    /// One walk of every thread's chain, as [`PythonReader::raw_stacks`]
    /// describes, without the consistency checks; with the innermost frame
    /// each walk started from, where it was found.
    fn walk_stacks(&self, tstates: &[ThreadState]) -> WalkedStacks {
        let layout = &self.layout;
        let frame_size = layout.frame_size as usize;
        let tstates: Vec<&[u8]> = tstates.iter().map(|t| t.bytes.as_slice()).collect();
        let tstates = tstates.as_slice();
        let firsts = self.innermost_frames(tstates);
        let started: Vec<Option<u64>> = firsts.iter().map(|f| f.as_ref().ok().copied()).collect();
        let chunks: Vec<u64> = tstates
            .iter()
            .map(|t| {
                layout
                    .tstate_datastack_chunk
                    .and_then(|offset| u64_at(t, offset))
                    .unwrap_or(0)
            })
            .collect();
        let copies = self.copy_chunks(&chunks, &firsts);
        let mut walks: Vec<Walk> = firsts
            .into_iter()
            .zip(copies)
            .map(|(first, copy)| Walk::new(first, copy))
            .collect();
        let mut buffer = Vec::new();
        loop {
            let mut pending: Vec<(usize, u64)> = Vec::new();
            for (index, walk) in walks.iter_mut().enumerate() {
                while let Some(addr) = walk.next_address() {
                    let decoded = walk.local_frame(addr, frame_size).map(|bytes| {
                        (
                            self.decode_frame(addr, bytes),
                            self.frame_is_running(bytes),
                            self.ends_eval_call(Some(bytes)).then_some(addr),
                        )
                    });
                    match decoded {
                        Some(((frame, previous), running, ends)) => {
                            walk.stale |= !running;
                            walk.visit(frame, ends, previous)
                        }
                        None => {
                            pending.push((index, addr));
                            break;
                        }
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            buffer.clear();
            buffer.resize(pending.len() * frame_size, 0);
            let done = match self.read_all_of(pending.iter().map(|p| p.1), frame_size, &mut buffer)
            {
                Ok(done) => done,
                Err(error) => {
                    for (index, _) in &pending {
                        walks[*index].fail(error);
                    }
                    continue;
                }
            };
            for (i, &(index, addr)) in pending.iter().enumerate() {
                if done[i] {
                    let bytes = &buffer[i * frame_size..(i + 1) * frame_size];
                    let (frame, previous) = self.decode_frame(addr, bytes);
                    walks[index].stale |= !self.frame_is_running(bytes);
                    let mark = self.ends_eval_call(Some(bytes)).then_some(addr);
                    walks[index].visit(frame, mark, previous);
                } else {
                    walks[index].fail(WalkError::Read(pydx_remote::ReadError::new(
                        addr,
                        frame_size,
                        pydx_remote::ReadErrorKind::Unmapped,
                    )));
                }
            }
        }
        (walks.into_iter().map(Walk::finish).collect(), started)
    }

    /// The innermost frame of each thread (0 for a thread without Python
    /// frames); 3.11/3.12 need one batched read of the `_PyCFrame`s.
    fn innermost_frames(&self, tstates: &[&[u8]]) -> Vec<Result<u64, WalkError>> {
        match self.layout.tstate_frame {
            FrameEntry::Direct(offset) => tstates
                .iter()
                .map(|t| Ok(u64_at(t, offset).unwrap_or(0)))
                .collect(),
            FrameEntry::ViaCFrame {
                cframe,
                current_frame,
            } => {
                let cframes: Vec<u64> = tstates
                    .iter()
                    .map(|t| u64_at(t, cframe).unwrap_or(0))
                    .collect();
                let mut words = vec![0u8; cframes.len() * 8];
                let done = match self.read_all_of(
                    cframes.iter().map(|c| c.wrapping_add(current_frame)),
                    8,
                    &mut words,
                ) {
                    Ok(done) => done,
                    Err(error) => return vec![Err(error); cframes.len()],
                };
                cframes
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| match (c, done[i]) {
                        (0, _) => Ok(0),
                        (_, true) => Ok(u64_at(&words, i as u64 * 8).unwrap_or(0)),
                        (_, false) => Err(WalkError::invalid("current frame", c)),
                    })
                    .collect()
            }
        }
    }

    /// Copies, in one batched read, the part of each thread's newest
    /// data-stack chunk that holds its frames (up to and including the
    /// innermost one), where the innermost frame lies in that chunk.
    fn copy_chunks(
        &self,
        chunks: &[u64],
        firsts: &[Result<u64, WalkError>],
    ) -> Vec<Option<(u64, Vec<u8>)>> {
        let frame_size = self.layout.frame_size;
        let spans: Vec<Option<(u64, u64)>> = chunks
            .iter()
            .zip(firsts)
            .map(|(&chunk, first)| {
                let first = *first.as_ref().ok()?;
                let length = first.checked_add(frame_size)?.checked_sub(chunk)?;
                (chunk != 0 && first >= chunk && length <= MAX_CHUNK_COPY)
                    .then_some((chunk, length))
            })
            .collect();
        let reads: Vec<(u64, usize)> = spans
            .iter()
            .map(|s| s.map_or((0, 0), |(chunk, len)| (chunk, len as usize)))
            .collect();
        self.memory
            .read_spans(&reads)
            .into_iter()
            .zip(spans)
            .map(|(data, span)| {
                let (chunk, len) = span?;
                let data = data?;
                // The chunk header records its size: the frame must be inside it.
                let size = u64_at(&data, 8)?;
                (len <= size).then_some((chunk, data))
            })
            .collect()
    }

    /// The frame stored in `bytes` (read from `addr`), unless it is not a
    /// Python frame (a shim or entry frame), and the address of its caller.
    pub(crate) fn decode_frame(&self, addr: u64, bytes: &[u8]) -> (Option<RawFrame>, u64) {
        let layout = &self.layout;
        let mut code = u64_at(bytes, layout.frame_code).unwrap_or(0);
        if layout.stack_refs_tagged {
            code &= !3;
        }
        let previous = u64_at(bytes, layout.frame_previous).unwrap_or(0);
        let skipped = layout
            .frame_owner
            .and_then(|offset| u8_at(bytes, offset))
            .is_some_and(|owner| owner >= layout.frame_owner_first_skipped);
        if skipped || code == 0 {
            return (None, previous);
        }
        let instruction = match layout.instruction_pointer {
            InstructionPointer::LastiBytes | InstructionPointer::LastiUnits => {
                i64::from(i32_at(bytes, layout.frame_instr).unwrap_or(-1)) as u64
            }
            InstructionPointer::PrevInstr | InstructionPointer::InstrPtr => {
                u64_at(bytes, layout.frame_instr).unwrap_or(0)
            }
        };
        // Before 3.11 each frame has its own C-level call of the loop; 3.11
        // marks the frames C called into; from 3.12 on an entry frame
        // (skipped above) follows each such frame.
        let entry = match (layout.frame_owner, layout.frame_is_entry) {
            (None, _) => true,
            (Some(_), Some(is_entry)) => u8_at(bytes, is_entry).is_some_and(|e| e != 0),
            (Some(_), None) => false,
        };
        (
            Some(RawFrame {
                addr,
                code,
                instruction,
                entry,
                call_frame: 0,
            }),
            previous,
        )
    }

    /// Whether the frame in `bytes` is a 3.12+ entry frame: the mark left on
    /// the chain where C code called the evaluation loop.
    fn ends_eval_call(&self, bytes: Option<&[u8]>) -> bool {
        let layout = &self.layout;
        layout.frame_is_entry.is_none()
            && layout
                .frame_owner
                .zip(bytes)
                .and_then(|(offset, bytes)| u8_at(bytes, offset))
                .is_some_and(|owner| owner >= layout.frame_owner_first_skipped)
    }

    /// Whether a data-stack frame (3.11+) can be one on a thread's chain: an
    /// owner the interpreter knows, and code unless the interpreter owns it
    /// (a frame that returned may have had its code cleared).
    fn live_on_data_stack(&self, bytes: &[u8]) -> bool {
        let layout = &self.layout;
        let owner = layout.frame_owner.and_then(|offset| u8_at(bytes, offset));
        if owner.is_some_and(|owner| owner > MAX_FRAME_OWNER) {
            return false;
        }
        let mut code = u64_at(bytes, layout.frame_code).unwrap_or(0);
        if layout.stack_refs_tagged {
            code &= !3;
        }
        code != 0 || owner.is_some_and(|owner| owner >= layout.frame_owner_first_skipped)
    }

    /// Whether two copies of a frame show the same call: the same code, the
    /// same caller and, unless it is `innermost`, the same instruction.
    fn same_call(&self, first: &[u8], second: &[u8], innermost: bool) -> bool {
        let layout = &self.layout;
        let field = |offset: u64, len: usize| {
            let range = offset as usize..offset as usize + len;
            first.get(range.clone()) == second.get(range)
        };
        field(layout.frame_code, 8)
            && field(layout.frame_previous, 8)
            && (innermost || field(layout.frame_instr, 8))
            && layout.frame_owner.is_none_or(|owner| field(owner, 1))
    }

    /// Whether the frame in `bytes` is being executed (always, for versions
    /// whose frames do not say).
    fn frame_is_running(&self, bytes: &[u8]) -> bool {
        self.layout
            .frame_running
            .is_none_or(|running| running.is_running(bytes).unwrap_or(false))
    }

    /// Reads the frame chains of `tstates` again until each is found whole
    /// in one read: every frame of the chain, each one running, and (before
    /// 3.11) the thread's frame pointer unchanged from before to after, all
    /// from the same system call. `walks` are the chains walked so far,
    /// whose frames are read first.
    ///
    /// On a data stack (3.11+: `on_data_stack`), whose frames do not say
    /// whether they run, the read copies the frames twice, and each frame of
    /// the chain must show the same call in both copies: the thread did not
    /// return below it and call again while the frames were copied.
    ///
    /// Each attempt is one batched read of every unsettled thread's frame
    /// pointer and known frames; a chain that leads to a frame not in it is
    /// followed with fresh reads to learn its addresses, and read again.
    ///
    /// Only the threads in `pending` are read again; the others keep their
    /// walk.
    fn settle_stacks(
        &mut self,
        tstates: &[ThreadState],
        walks: Vec<Result<RawStack, WalkError>>,
        on_data_stack: bool,
        (pointer_addrs, cframe_fields): (&[Option<u64>], &[CFrameField]),
        pending: Vec<usize>,
    ) -> Vec<Result<RawStack, WalkError>> {
        if pending.is_empty() {
            return walks;
        }
        // A thread that moved to another `_PyCFrame` is followed there on
        // the next attempt.
        let mut pointer_addrs = pointer_addrs.to_vec();
        let mut cframe_fields = cframe_fields.to_vec();
        let mut known: Vec<Vec<u64>> = walks
            .iter()
            .zip(tstates)
            .map(|(walk, tstate)| {
                let walked = walk.iter().flat_map(|s| s.frames.iter().map(|f| f.addr));
                let mut addrs: Vec<u64> = walked.collect();
                let recent: HashSet<u64> = addrs.iter().copied().collect();
                addrs.extend(
                    self.recent_frames
                        .of(tstate.addr)
                        .filter(|a| !recent.contains(a)),
                );
                addrs
            })
            .collect();
        let mut results = walks;
        let mut unsettled: Vec<usize> = pending
            .into_iter()
            .filter(|&i| pointer_addrs[i].is_some())
            .filter(|&i| !matches!(&results[i], Err(e) if e.is_process_gone()))
            .collect();
        let mut whole_pages = true;
        // Reads of each thread's frames that found them changing.
        let mut changed = vec![0usize; tstates.len()];
        for attempt in 1..=SETTLE_READS {
            if unsettled.is_empty() {
                break;
            }
            // Each thread's frame pointer, then the `_PyCFrame` fields of
            // those that have one, all read before and after the frames.
            let mut pointers: Vec<u64> =
                unsettled.iter().filter_map(|&t| pointer_addrs[t]).collect();
            let fields: Vec<(usize, u64, u64)> = unsettled
                .iter()
                .filter_map(|&t| cframe_fields[t].map(|(addr, cframe)| (t, addr, cframe)))
                .collect();
            pointers.extend(fields.iter().map(|&(_, addr, _)| addr));
            let frames = unsettled.iter().flat_map(|&t| known[t].iter().copied());
            let snapshot = match self.read_frames_now(&pointers, frames, whole_pages, on_data_stack)
            {
                Ok(snapshot) => {
                    // A page that would not read (in an odd mapping) makes the
                    // next attempts read the frames alone.
                    whole_pages &= !snapshot.some_runs_failed;
                    snapshot
                }
                Err(error) => {
                    for &thread in &unsettled {
                        results[thread] = Err(error);
                    }
                    return results;
                }
            };
            let mut missing: Vec<(usize, u64)> = Vec::new();
            let mut still: Vec<usize> = Vec::new();
            let field_words = &snapshot.pointers[unsettled.len()..];
            for (&thread, &(before, after)) in unsettled.iter().zip(&snapshot.pointers) {
                let (Some(before), Some(after)) = (before, after) else {
                    results[thread] = Err(WalkError::invalid("thread state", tstates[thread].addr));
                    continue;
                };
                // The `_PyCFrame` the frame pointer was read through must
                // still be the thread's current one (see `cframe_field`).
                let mut cframe_kept = true;
                for ((_, addr, cframe), &(b, a)) in fields
                    .iter()
                    .zip(field_words)
                    .filter(|((t, _, _), _)| *t == thread)
                {
                    if b == Some(*cframe) && a == Some(*cframe) {
                        continue;
                    }
                    cframe_kept = false;
                    if let (Some(now), FrameEntry::ViaCFrame { current_frame, .. }) =
                        (a.filter(|&c| c != 0), self.layout.tstate_frame)
                    {
                        cframe_fields[thread] = Some((*addr, now));
                        pointer_addrs[thread] = Some(now.wrapping_add(current_frame));
                    }
                }
                // The frames were read between two reads of the pointer to
                // the innermost one: if it did not move, they show the chain
                // of that moment (data-stack frames: if they are also the
                // same in the second copy).
                let outcome = if before == after && cframe_kept {
                    self.walk_snapshot(before, &snapshot, on_data_stack)
                } else {
                    SnapshotWalk::Changing
                };
                match outcome {
                    SnapshotWalk::Whole(stack) => results[thread] = Ok(stack),
                    SnapshotWalk::Invalid(error) => results[thread] = Err(error),
                    SnapshotWalk::Missing(addr) => {
                        results[thread] = Err(WalkError::Torn { attempts: attempt });
                        missing.push((thread, addr));
                        still.push(thread);
                    }
                    SnapshotWalk::Changing => {
                        results[thread] = Err(WalkError::Torn { attempts: attempt });
                        changed[thread] += 1;
                        if changed[thread] < SETTLE_ATTEMPTS {
                            still.push(thread);
                        }
                    }
                }
            }
            if attempt < SETTLE_READS {
                for (thread, addr) in self.discover_frames(&missing, &mut known) {
                    let tstate = tstates[thread].addr;
                    self.recent_frames.saw(tstate, std::iter::once(addr));
                }
            }
            unsettled = still;
        }
        results
    }

    /// On 3.11/3.12, where the thread state's pointer to its current
    /// `_PyCFrame` is and the value the round's copy of the thread state
    /// holds there. Every C-level call of the evaluation loop (a generator
    /// resumed by `for`, a method called from C) switches to a new
    /// `_PyCFrame`, while the outer one keeps pointing to the frame that made
    /// the call: a frame pointer read through a `_PyCFrame` the thread has
    /// since left reads steady and leads to a whole but outdated chain. So
    /// the field is read again with the frame pointer and must not have
    /// moved.
    fn cframe_field(&self, tstate: &ThreadState) -> CFrameField {
        match self.layout.tstate_frame {
            FrameEntry::Direct(_) => None,
            FrameEntry::ViaCFrame { cframe, .. } => u64_at(&tstate.bytes, cframe)
                .filter(|&c| c != 0)
                .map(|c| (tstate.addr.wrapping_add(cframe), c)),
        }
    }

    /// Where the pointer to the thread's innermost frame is: in the thread
    /// state, or (3.11/3.12) in the `_PyCFrame` it points to; `None` when
    /// it points to none.
    fn frame_pointer_addr(&self, tstate: &ThreadState) -> Option<u64> {
        match self.layout.tstate_frame {
            FrameEntry::Direct(offset) => Some(tstate.addr.wrapping_add(offset)),
            FrameEntry::ViaCFrame {
                cframe,
                current_frame,
            } => u64_at(&tstate.bytes, cframe)
                .filter(|&c| c != 0)
                .map(|c| c.wrapping_add(current_frame)),
        }
    }

    /// Reads, in one system call, the words at `pointers`, then the frames
    /// at `frames` (with `whole_pages`, the pages that hold them: see
    /// [`frame_pages`]), with `twice` the same frames once more, then the
    /// words at `pointers` again.
    fn read_frames_now(
        &self,
        pointers: &[u64],
        frames: impl Iterator<Item = u64>,
        whole_pages: bool,
        twice: bool,
    ) -> Result<FrameSnapshot<'static>, WalkError> {
        let frame_size = self.layout.frame_size;
        let runs = frame_pages(frames, frame_size, whole_pages);
        let copies = if twice { 2 } else { 1 };
        let mut words = vec![[0u8; 8]; pointers.len()];
        let mut words_after = vec![[0u8; 8]; pointers.len()];
        let mut buffers: Vec<Vec<u8>> = (0..copies)
            .flat_map(|_| runs.iter())
            .map(|&(start, end)| vec![0u8; (end - start) as usize])
            .collect();
        let mut requests: Vec<ReadRequest<'_>> = words
            .iter_mut()
            .zip(pointers)
            .map(|(word, &addr)| ReadRequest::new(addr, word))
            .collect();
        requests.extend(
            buffers
                .iter_mut()
                .zip(runs.iter().cycle())
                .map(|(buf, &(start, _))| ReadRequest::new(start, buf)),
        );
        requests.extend(
            words_after
                .iter_mut()
                .zip(pointers)
                .map(|(word, &addr)| ReadRequest::new(addr, word)),
        );
        self.memory.read_batch_now(&mut requests)?;
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        drop(requests);
        let (pointers_done, rest) = done.split_at(pointers.len());
        let (runs_done, after_done) = rest.split_at(runs.len() * copies);
        let word = |word: &[u8; 8], done: bool| done.then(|| u64::from_le_bytes(*word));
        let mut buffers = buffers.into_iter().zip(runs_done.iter().copied());
        let first: Vec<_> = buffers.by_ref().take(runs.len()).collect();
        let mut second = buffers;
        Ok(FrameSnapshot {
            pointers: (0..pointers.len())
                .map(|i| {
                    (
                        word(&words[i], pointers_done[i]),
                        word(&words_after[i], after_done[i]),
                    )
                })
                .collect(),
            some_runs_failed: runs_done.contains(&false),
            runs: runs
                .into_iter()
                .zip(first)
                .filter_map(|((start, _), (bytes, done))| {
                    let again = second
                        .next()
                        .and_then(|(again, done)| done.then_some(again));
                    done.then_some(SnapshotRun {
                        start,
                        bytes: Cow::Owned(bytes),
                        again: again.map(Cow::Owned),
                    })
                })
                .collect(),
            frame_size: frame_size as usize,
        })
    }

    /// Walks a chain from `first` using only the frames of one snapshot.
    /// On a data stack (`on_data_stack`), each frame must show the same call
    /// in the snapshot's second copy.
    fn walk_snapshot(
        &self,
        first: u64,
        snapshot: &FrameSnapshot,
        on_data_stack: bool,
    ) -> SnapshotWalk {
        let mut stack = RawStack::default();
        let mut visited: HashSet<u64> = HashSet::new();
        let mut addr = first;
        while addr != 0 {
            if stack.frames.len() >= MAX_STACK_DEPTH {
                stack.truncated = true;
                break;
            }
            if addr % 8 != 0 || !visited.insert(addr) {
                if on_data_stack {
                    // Torn by a thread calling while its slots were copied.
                    return SnapshotWalk::Changing;
                }
                return SnapshotWalk::Invalid(WalkError::invalid("frame chain", addr));
            }
            let Some((bytes, again)) = snapshot.frame(addr) else {
                return SnapshotWalk::Missing(addr);
            };
            if on_data_stack {
                // The slot may have held another frame between the copies
                // (only the innermost one runs on: its instruction moves),
                // or a frame that already returned.
                let innermost = addr == first;
                if !self.live_on_data_stack(bytes)
                    || again.is_none_or(|again| !self.same_call(bytes, again, innermost))
                {
                    return SnapshotWalk::Changing;
                }
            }
            let (frame, previous) = self.decode_frame(addr, bytes);
            if !self.frame_is_running(bytes) {
                // The innermost frame may be entering or leaving: the thread
                // state points to it before it starts and until just after
                // it ends. Its caller, if still running, is then innermost.
                if visited.len() > 1 {
                    return SnapshotWalk::Changing;
                }
                addr = previous;
                continue;
            }
            stack.push(frame, self.ends_eval_call(Some(bytes)).then_some(addr));
            addr = previous;
        }
        SnapshotWalk::Whole(stack)
    }

    /// Learns the frames of chains that led outside what was read: from each
    /// missing address, follows the chain with fresh reads (all threads in
    /// one batch per step) until it meets a known frame or ends.
    fn discover_frames(
        &self,
        missing: &[(usize, u64)],
        known: &mut [Vec<u64>],
    ) -> Vec<(usize, u64)> {
        let frame_size = self.layout.frame_size as usize;
        let mut fronts: Vec<(usize, u64)> = missing.to_vec();
        let mut seen: HashMap<usize, HashSet<u64>> = HashMap::new();
        for &(thread, _) in missing {
            seen.insert(thread, known[thread].iter().copied().collect());
        }
        let mut buffer = Vec::new();
        let mut discovered = Vec::new();
        for _ in 0..MAX_STACK_DEPTH {
            fronts.retain(|&(thread, addr)| {
                addr != 0
                    && addr % 8 == 0
                    && known[thread].len() < MAX_STACK_DEPTH
                    && seen.get_mut(&thread).is_some_and(|seen| seen.insert(addr))
            });
            if fronts.is_empty() {
                break;
            }
            for &(thread, addr) in &fronts {
                known[thread].push(addr);
                discovered.push((thread, addr));
            }
            buffer.clear();
            buffer.resize(fronts.len() * frame_size, 0);
            let mut requests: Vec<ReadRequest<'_>> = buffer
                .chunks_mut(frame_size)
                .zip(&fronts)
                .map(|(buf, &(_, addr))| ReadRequest::new(addr, buf))
                .collect();
            if self.memory.read_batch_now(&mut requests).is_err() {
                break;
            }
            let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
            drop(requests);
            for (i, front) in fronts.iter_mut().enumerate() {
                front.1 = if done[i] {
                    let bytes = &buffer[i * frame_size..(i + 1) * frame_size];
                    self.decode_frame(front.1, bytes).1
                } else {
                    0
                };
            }
        }
        discovered
    }

    /// Fills in the bytecode of freshly decoded code objects, in one batch.
    fn load_bytecode(&self, codes: &mut [Result<CodeInfo, WalkError>]) -> Result<(), WalkError> {
        let layout = &self.layout;
        let mut targets: Vec<(usize, u64, usize)> = Vec::new();
        for (index, code) in codes.iter().enumerate() {
            let Ok(code) = code else { continue };
            let start = match (layout.code_code_adaptive, layout.code_code) {
                (Some(adaptive), _) => code.addr.wrapping_add(adaptive),
                (None, Some(co_code)) => self
                    .word(code.addr.wrapping_add(co_code))?
                    .wrapping_add(BYTES_DATA),
                (None, None) => continue,
            };
            targets.push((index, start, (code.code_bytes as usize).min(MAX_BYTECODE)));
        }
        let mut buffers: Vec<Vec<u8>> = targets.iter().map(|&(_, _, len)| vec![0u8; len]).collect();
        let mut requests: Vec<ReadRequest<'_>> = buffers
            .iter_mut()
            .zip(&targets)
            .map(|(buf, &(_, start, _))| ReadRequest::new(start, buf))
            .collect();
        self.memory.read_batch(&mut requests)?;
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        drop(requests);
        for ((index, _, _), (bytes, done)) in targets.into_iter().zip(buffers.into_iter().zip(done))
        {
            if let (true, Ok(code)) = (done, &mut codes[index]) {
                code.bytecode = bytes;
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at each address in one batch into consecutive
    /// slices of `out`; returns which reads succeeded.
    fn read_all_of(
        &self,
        addrs: impl Iterator<Item = u64>,
        len: usize,
        out: &mut [u8],
    ) -> Result<Vec<bool>, WalkError> {
        let mut requests: Vec<ReadRequest<'_>> = out
            .chunks_mut(len)
            .zip(addrs)
            .map(|(buf, addr)| ReadRequest::new(addr, buf))
            .collect();
        self.memory.read_batch(&mut requests)?;
        Ok(requests.iter().map(|r| r.done).collect())
    }

    /// The byte range of a code object that identifies it: the pointers to
    /// its file name, names and line table, which never change while it lives.
    fn code_fingerprint_range(&self) -> (u64, usize) {
        let layout = &self.layout;
        let start = layout.code_filename.min(layout.code_name);
        let end = layout.code_linetable.max(layout.code_qualname.unwrap_or(0)) + 8;
        (start, (end - start) as usize)
    }

    /// Makes sure the cache holds every code object in `addrs`, checking
    /// cached ones with one batched read and decoding new ones.
    pub fn refresh_code_cache(&mut self, addrs: &[u64]) -> Result<(), WalkError> {
        let (start, len) = self.code_fingerprint_range();
        let mut unique: Vec<u64> = addrs.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut buffers = vec![0u8; unique.len() * len];
        let mut requests: Vec<ReadRequest<'_>> = buffers
            .chunks_mut(len)
            .zip(&unique)
            .map(|(buf, &addr)| ReadRequest::new(addr.wrapping_add(start), buf))
            .collect();
        self.memory.read_batch(&mut requests)?;
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        drop(requests);
        let mut stale = Vec::new();
        for (i, &addr) in unique.iter().enumerate() {
            if !done[i] {
                self.code.remove(&addr);
                continue;
            }
            let fingerprint = &buffers[i * len..(i + 1) * len];
            if self
                .code
                .get(&addr)
                .is_none_or(|e| e.fingerprint != fingerprint)
            {
                stale.push((addr, fingerprint.to_vec()));
            }
        }
        let addrs: Vec<u64> = stale.iter().map(|(addr, _)| *addr).collect();
        let mut loaded = self.load_codes(&addrs)?;
        self.load_bytecode(&mut loaded)?;
        for ((addr, fingerprint), loaded) in stale.into_iter().zip(loaded) {
            let info = match loaded {
                Ok(info) => Some(Arc::new(info)),
                Err(WalkError::Invalid { what: NOT_CODE, .. }) => None,
                // A read that failed (a torn or freed object) is tried again
                // next time; until then the frame shows as unreadable.
                Err(_) => {
                    self.code.remove(&addr);
                    continue;
                }
            };
            self.code.insert(addr, CodeEntry { fingerprint, info });
        }
        Ok(())
    }

    /// Decodes the code objects at `addrs` with a few batched reads: all
    /// headers at once, then the start of every name, file name and line
    /// table at once; only long ones need a read of their own.
    fn load_codes(&mut self, addrs: &[u64]) -> Result<Vec<Result<CodeInfo, WalkError>>, WalkError> {
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        let layout = self.layout.clone();
        let header_len = layout.code_size as usize;
        let mut headers = vec![0u8; addrs.len() * header_len];
        let header_done = self.read_all_of(addrs.iter().copied(), header_len, &mut headers)?;
        let fields: Vec<u64> = [
            Some(layout.code_filename),
            Some(layout.code_name),
            layout.code_qualname,
            Some(layout.code_linetable),
            layout.code_code,
        ]
        .into_iter()
        .flatten()
        .collect();
        let pointers: Vec<u64> = headers
            .chunks(header_len)
            .flat_map(|header| {
                fields
                    .iter()
                    .map(|&offset| u64_at(header, offset).unwrap_or(0))
            })
            .collect();
        let mut objects = vec![0u8; pointers.len() * PREFETCH];
        let object_done = self.read_all_of(pointers.iter().copied(), PREFETCH, &mut objects)?;
        let mut loaded = Vec::with_capacity(addrs.len());
        for (i, &addr) in addrs.iter().enumerate() {
            if !header_done[i] {
                loaded.push(Err(WalkError::invalid("code object header", addr)));
                continue;
            }
            let header = &headers[i * header_len..(i + 1) * header_len];
            let prefetched: Vec<(u64, &[u8])> = (0..fields.len())
                .map(|field| {
                    let index = i * fields.len() + field;
                    let bytes = &objects[index * PREFETCH..(index + 1) * PREFETCH];
                    (
                        pointers[index],
                        if object_done[index] { bytes } else { &[][..] },
                    )
                })
                .collect();
            loaded.push(self.decode_code(addr, header, &prefetched));
        }
        Ok(loaded)
    }

    /// Builds a [`CodeInfo`] from a code object's header and the prefetched
    /// starts of the objects it points to: file name, name, qualified name
    /// (3.11+), line table and bytecode (≤3.10), in that order.
    fn decode_code(
        &mut self,
        addr: u64,
        header: &[u8],
        prefetched: &[(u64, &[u8])],
    ) -> Result<CodeInfo, WalkError> {
        let layout = self.layout.clone();
        if self.type_info(u64_at(header, OB_TYPE).unwrap_or(0))?.name != "code" {
            return Err(WalkError::invalid("code object", addr));
        }
        let mut objects = prefetched.iter().copied();
        let mut next = || {
            objects
                .next()
                .ok_or(WalkError::invalid("code object", addr))
        };
        let filename = self.prefetched_str(next()?)?;
        let name = self.prefetched_str(next()?)?;
        let qualname = match layout.code_qualname {
            Some(_) => self.prefetched_str(next()?)?,
            None => name.clone(),
        };
        let (table_addr, table_prefix) = next()?;
        let table = self.prefetched_bytes(table_addr, table_prefix, MAX_LINETABLE_BYTES)?;
        let code_bytes = match layout.code_code {
            Some(_) => {
                let (code_addr, code_prefix) = next()?;
                match u64_at(code_prefix, OB_SIZE) {
                    Some(size) => size,
                    None => self.word(code_addr.wrapping_add(OB_SIZE))?,
                }
            }
            None => u64_at(header, OB_SIZE).unwrap_or(0).saturating_mul(2),
        };
        let first_line = i32_at(header, layout.code_firstlineno).unwrap_or(0).max(0) as u32;
        Ok(CodeInfo {
            addr,
            name,
            qualname,
            filename,
            first_line,
            code_bytes,
            bytecode: Vec::new(),
            line_table: LineTable::decode(layout.linetable_format, &table, first_line),
            request_slot: OnceLock::new(),
            local_names: OnceLock::new(),
        })
    }

    /// A `str` object, from its prefetched start where possible.
    fn prefetched_str(&mut self, (addr, bytes): (u64, &[u8])) -> Result<String, WalkError> {
        let type_addr = match u64_at(bytes, OB_TYPE) {
            Some(type_addr) => type_addr,
            None => self.word(addr.wrapping_add(OB_TYPE))?,
        };
        if self.type_info(type_addr)?.flags & TPFLAGS_UNICODE == 0 {
            return Err(WalkError::invalid("str object", addr));
        }
        Ok(self.read_str_prefetched(addr, MAX_STRING_CHARS, bytes)?.0)
    }

    /// The contents of a `bytes` object, from its prefetched start where possible.
    fn prefetched_bytes(&self, addr: u64, bytes: &[u8], max: usize) -> Result<Vec<u8>, WalkError> {
        if let Some(size) = u64_at(bytes, OB_SIZE) {
            let start = BYTES_DATA as usize;
            if let Some(data) = bytes.get(start..start.saturating_add(size as usize)) {
                return Ok(data.to_vec());
            }
        }
        Ok(self.read_bytes(addr, max)?.1)
    }

    /// Turns raw frames into frames with code and line, using the cache
    /// (call [`PythonReader::refresh_code_cache`] first). Frames whose
    /// executable is not a code object (3.13+ shims) are left out; frames
    /// whose code object could not be read are kept as
    /// [`CodeInfo::UNREADABLE`], so the stack keeps its shape.
    pub fn resolve(&self, raw: &[RawFrame]) -> Vec<Frame> {
        let mut frames: Vec<Frame> = Vec::with_capacity(raw.len());
        for f in raw {
            let code = match self.code.get(&f.code) {
                Some(entry) => entry.info.clone(),
                None => Some(Arc::new(CodeInfo::unreadable(f.code))),
            };
            let Some(code) = code else {
                // A shim left out that began a call of the evaluation loop
                // hands that mark to the frame inward of it.
                if let (true, Some(inner)) = (f.entry, frames.last_mut()) {
                    inner.entry = true;
                    inner.call_frame = f.call_frame;
                }
                continue;
            };
            let offset = self.instruction_offset(&code, f.instruction);
            let calling = (!self.layout.call_opcodes.is_empty())
                .then(|| code.bytecode.get(usize::try_from(offset).ok()?))
                .flatten()
                .map(|opcode| self.layout.call_opcodes.contains(opcode));
            frames.push(Frame {
                line: self.line_at_offset(&code, offset),
                code,
                addr: f.addr,
                calling,
                entry: f.entry,
                call_frame: f.call_frame,
            });
        }
        frames
    }

    /// The byte offset into the bytecode of a frame's raw instruction.
    fn instruction_offset(&self, code: &CodeInfo, instruction: u64) -> i64 {
        match self.layout.instruction_pointer {
            InstructionPointer::LastiBytes => instruction as i64,
            InstructionPointer::LastiUnits => (instruction as i64).saturating_mul(2),
            InstructionPointer::PrevInstr | InstructionPointer::InstrPtr => {
                let start = code
                    .addr
                    .wrapping_add(self.layout.code_code_adaptive.unwrap_or(0));
                instruction.wrapping_sub(start) as i64
            }
        }
    }

    /// The line a frame of `code` is executing, from its bytecode offset.
    fn line_at_offset(&self, code: &CodeInfo, offset: i64) -> u32 {
        if offset >= code.code_bytes as i64 && code.code_bytes > 0 {
            return 0;
        }
        code.line_table.line_at(offset).unwrap_or(code.first_line)
    }

    /// Reads the stacks of several threads and resolves them with one shared
    /// code-cache refresh. Each thread gets its stack or its error.
    pub fn stacks(
        &mut self,
        tstates: &[ThreadState],
    ) -> Result<Vec<Result<Stack, WalkError>>, WalkError> {
        let raw = self.raw_stacks(tstates);
        if let Some(Err(e)) = raw
            .iter()
            .find(|r| matches!(r, Err(e) if e.is_process_gone()))
        {
            return Err(*e);
        }
        let codes: Vec<u64> = raw
            .iter()
            .flatten()
            .flat_map(|s| s.frames.iter().map(|f| f.code))
            .collect();
        self.refresh_code_cache(&codes)?;
        Ok(raw
            .into_iter()
            .map(|r| {
                r.map(|s| Stack {
                    frames: self.resolve(&s.frames),
                    truncated: s.truncated,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_on_neighbouring_pages_are_read_as_one_run_of_whole_pages() {
        let frames = [0x1_0010, 0x1_0200, 0x1_1fc0, 0x5_0000];
        let runs = frame_pages(frames.into_iter(), 0x78, true);
        // The third frame crosses into the page after its own.
        assert_eq!(runs, vec![(0x1_0000, 0x1_3000), (0x5_0000, 0x5_1000)]);
    }

    #[test]
    fn a_gap_of_a_page_splits_runs_and_bad_addresses_are_left_out() {
        let frames = [0x3_0000, 0x1_0000, 0x1_0000, 0x1_0003, u64::MAX - 8];
        let runs = frame_pages(frames.into_iter(), 0x78, true);
        assert_eq!(runs, vec![(0x1_0000, 0x1_1000), (0x3_0000, 0x3_1000)]);
    }

    #[test]
    fn past_the_byte_budget_frames_are_read_on_their_own() {
        let pages = MAX_FRAME_PAGES_BYTES / 4096;
        let frames = (0..pages + 2).map(|i| 0x100_0000 + i * 0x2000);
        let runs = frame_pages(frames, 0x78, true);
        let last = runs[runs.len() - 1];
        assert_eq!(last.1 - last.0, 0x78);
        assert!(runs[..runs.len() - 2].iter().all(|r| r.1 - r.0 == 4096));
    }

    #[test]
    fn the_frame_running_flags_of_each_version() {
        let mut frame = vec![0u8; 0x78];
        let flag = FrameRunning::ExecutingFlag(0x74);
        assert_eq!(flag.is_running(&frame), Some(false));
        frame[0x74] = 1;
        assert_eq!(flag.is_running(&frame), Some(true));
        let state = FrameRunning::State(0x6c);
        for (value, running) in [(0i8, true), (2, true), (-1, false), (1, false), (4, false)] {
            frame[0x6c] = value as u8;
            assert_eq!(state.is_running(&frame), Some(running), "f_state {value}");
        }
        assert_eq!(state.is_running(&frame[..0x10]), None);
    }
}
