//! Walking a thread's Python frames and decoding their code objects.
//!
//! A stack is read in two steps so that many threads can share system
//! calls: [`PythonReader::raw_stack`] follows the frame chain and records
//! (frame, code object, instruction) triples, copying a 3.11+ data-stack
//! chunk in one read; [`PythonReader::resolve`] then checks every code object
//! the triples name against the cache in one batched read and decodes the
//! ones it has not seen.

use std::collections::HashSet;
use std::sync::Arc;

use pydx_remote::{MemoryReader, ReadExt, ReadRequest};

use crate::error::WalkError;
use crate::layout::{FrameEntry, InstructionPointer};
use crate::linetable::LineTable;
use crate::reader::{
    i32_at, u64_at, u8_at, CodeEntry, PythonReader, MAX_LINETABLE_BYTES, MAX_STACK_DEPTH,
    MAX_STRING_CHARS,
};

/// Largest stretch of a data-stack chunk copied in one read.
const MAX_CHUNK_COPY: u64 = 1 << 20;
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
    pub(crate) line_table: LineTable,
}

impl CodeInfo {
    /// The name shown for a code object that could not be read.
    pub const UNREADABLE: &'static str = "<unreadable code object>";

    fn unreadable(addr: u64) -> Self {
        Self {
            addr,
            name: Self::UNREADABLE.into(),
            qualname: Self::UNREADABLE.into(),
            filename: "<unknown>".into(),
            first_line: 0,
            code_bytes: 0,
            line_table: LineTable::default(),
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

/// One Python frame of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function's code object.
    pub code: Arc<CodeInfo>,
    /// The line being executed; 0 when it could not be determined.
    pub line: u32,
    /// Address of the frame in the target, for reading its locals.
    pub addr: u64,
}

impl<M: MemoryReader> PythonReader<M> {
    /// The address of the innermost frame of the thread whose state was read
    /// into `tstate` (0 if the thread runs no Python code).
    pub(crate) fn current_frame(&self, tstate: &[u8]) -> Result<u64, WalkError> {
        match self.layout.tstate_frame {
            FrameEntry::Direct(offset) => Ok(u64_at(tstate, offset).unwrap_or(0)),
            FrameEntry::ViaCFrame {
                cframe,
                current_frame,
            } => {
                let cframe = u64_at(tstate, cframe).unwrap_or(0);
                if cframe == 0 {
                    return Ok(0);
                }
                self.word(cframe + current_frame)
            }
        }
    }

    /// Follows the frame chain of a thread whose state was read into `tstate`.
    pub fn raw_stack(&self, tstate: &[u8]) -> Result<RawStack, WalkError> {
        let first = self.current_frame(tstate)?;
        if first == 0 {
            return Ok(RawStack::default());
        }
        let chunk = self
            .layout
            .tstate_datastack_chunk
            .and_then(|offset| u64_at(tstate, offset))
            .unwrap_or(0);
        self.walk_from(first, chunk)
    }

    /// Walks the chain starting at frame `first`. `chunk` is the thread's
    /// newest data-stack chunk (3.11+), copied in one read when `first` is in it.
    fn walk_from(&self, first: u64, chunk: u64) -> Result<RawStack, WalkError> {
        let layout = &self.layout;
        let frame_size = layout.frame_size as usize;
        let copy = self.copy_chunk(chunk, first);
        let mut stack = RawStack::default();
        let mut seen = HashSet::with_capacity(64);
        let mut scratch = vec![0u8; frame_size];
        let mut addr = first;
        while addr != 0 {
            if stack.frames.len() >= MAX_STACK_DEPTH {
                stack.truncated = true;
                break;
            }
            if addr % 8 != 0 || !seen.insert(addr) {
                return Err(WalkError::invalid("frame chain", addr));
            }
            let bytes: &[u8] = match copy.as_ref().and_then(|(start, data)| {
                let offset = usize::try_from(addr.checked_sub(*start)?).ok()?;
                data.get(offset..offset.checked_add(frame_size)?)
            }) {
                Some(bytes) => bytes,
                None => match self.memory.read_into(addr, &mut scratch) {
                    Ok(()) => &scratch,
                    Err(_) if !stack.frames.is_empty() => {
                        // A torn outer frame: keep what was read.
                        stack.truncated = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            let mut code = u64_at(bytes, layout.frame_code).unwrap_or(0);
            if layout.stack_refs_tagged {
                code &= !3;
            }
            let previous = u64_at(bytes, layout.frame_previous).unwrap_or(0);
            let skipped = layout
                .frame_owner
                .and_then(|offset| u8_at(bytes, offset))
                .is_some_and(|owner| owner >= layout.frame_owner_first_skipped);
            if !skipped && code != 0 {
                let instruction = match layout.instruction_pointer {
                    InstructionPointer::LastiBytes | InstructionPointer::LastiUnits => {
                        i64::from(i32_at(bytes, layout.frame_instr).unwrap_or(-1)) as u64
                    }
                    InstructionPointer::PrevInstr | InstructionPointer::InstrPtr => {
                        u64_at(bytes, layout.frame_instr).unwrap_or(0)
                    }
                };
                stack.frames.push(RawFrame {
                    addr,
                    code,
                    instruction,
                });
            }
            addr = previous;
        }
        Ok(stack)
    }

    /// Copies the part of a data-stack chunk that holds frames up to and
    /// including `innermost`, if `innermost` lies in that chunk.
    fn copy_chunk(&self, chunk: u64, innermost: u64) -> Option<(u64, Vec<u8>)> {
        if chunk == 0 || innermost < chunk {
            return None;
        }
        let end = innermost.checked_add(self.layout.frame_size)?;
        if end - chunk > MAX_CHUNK_COPY {
            return None;
        }
        let data = self
            .memory
            .read_vec(chunk, (end - chunk) as usize, MAX_CHUNK_COPY as usize)
            .ok()?;
        // The chunk header records its size: the frame must be inside it.
        let size = u64_at(&data, 8)?;
        (end - chunk <= size).then_some((chunk, data))
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
            .map(|(buf, &addr)| ReadRequest::new(addr + start, buf))
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
        let loaded = self.load_codes(&addrs)?;
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
        let header_done = self.read_all(addrs, header_len, &mut headers)?;
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
        let object_done = self.read_all(&pointers, PREFETCH, &mut objects)?;
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

    /// Reads `len` bytes at each address into consecutive slices of `out`;
    /// returns which reads succeeded.
    fn read_all(&self, addrs: &[u64], len: usize, out: &mut [u8]) -> Result<Vec<bool>, WalkError> {
        let mut requests: Vec<ReadRequest<'_>> = out
            .chunks_mut(len)
            .zip(addrs)
            .map(|(buf, &addr)| ReadRequest::new(addr, buf))
            .collect();
        self.memory.read_batch(&mut requests)?;
        Ok(requests.iter().map(|r| r.done).collect())
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
                    None => self.word(code_addr + OB_SIZE)?,
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
            line_table: LineTable::decode(layout.linetable_format, &table, first_line),
        })
    }

    /// A `str` object, from its prefetched start where possible.
    fn prefetched_str(&mut self, (addr, bytes): (u64, &[u8])) -> Result<String, WalkError> {
        let type_addr = match u64_at(bytes, OB_TYPE) {
            Some(type_addr) => type_addr,
            None => self.word(addr + OB_TYPE)?,
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
        raw.iter()
            .filter_map(|f| {
                let code = match self.code.get(&f.code) {
                    Some(entry) => entry.info.clone()?,
                    None => Arc::new(CodeInfo::unreadable(f.code)),
                };
                Some(Frame {
                    line: self.line_of(&code, f.instruction),
                    code,
                    addr: f.addr,
                })
            })
            .collect()
    }

    /// The line a frame of `code` is executing, from its raw instruction.
    fn line_of(&self, code: &CodeInfo, instruction: u64) -> u32 {
        let offset: i64 = match self.layout.instruction_pointer {
            InstructionPointer::LastiBytes => instruction as i64,
            InstructionPointer::LastiUnits => (instruction as i64).saturating_mul(2),
            InstructionPointer::PrevInstr | InstructionPointer::InstrPtr => {
                let start = code.addr + self.layout.code_code_adaptive.unwrap_or(0);
                instruction.wrapping_sub(start) as i64
            }
        };
        if offset >= code.code_bytes as i64 && code.code_bytes > 0 {
            return 0;
        }
        code.line_table.line_at(offset).unwrap_or(code.first_line)
    }

    /// Reads the stacks of several threads and resolves them with one shared
    /// code-cache refresh. Each thread gets its stack or its error.
    pub fn stacks(
        &mut self,
        tstates: &[Vec<u8>],
    ) -> Result<Vec<Result<Stack, WalkError>>, WalkError> {
        let raw: Vec<Result<RawStack, WalkError>> =
            tstates.iter().map(|t| self.raw_stack(t)).collect();
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
