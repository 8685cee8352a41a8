//! Reading the local variables of a frame.

use pydx_remote::{MemoryReader, ReadExt};

use crate::error::WalkError;
use crate::frames::Frame;
use crate::objects::Value;
use crate::reader::{i32_at, u64_at, PythonReader};

/// Most locals pydx reads from one frame.
const MAX_LOCALS: usize = 512;
/// `CO_FAST_HIDDEN` (3.12+): comprehension temporaries.
const FAST_HIDDEN: u8 = 0x10;
/// `CO_FAST_CELL` and `CO_FAST_FREE`: the slot holds a cell.
const FAST_CELL_OR_FREE: u8 = 0x40 | 0x80;
/// `co_kwonlyargcount` follows `co_argcount` (and `co_posonlyargcount`).
const KWONLYARGCOUNT_AFTER_ARGCOUNT: u64 = 8;
/// `CO_VARARGS` in `co_flags`.
const CO_VARARGS: i32 = 0x4;
/// `CO_VARKEYWORDS` in `co_flags`.
const CO_VARKEYWORDS: i32 = 0x8;

/// A local variable of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    /// The variable's name.
    pub name: String,
    /// Whether it is a parameter of the function.
    pub is_arg: bool,
    /// Address of the object it refers to (0 when unbound), for further reads.
    pub addr: u64,
    /// Its value, decoded for display.
    pub value: Value,
}

impl<M: MemoryReader> PythonReader<M> {
    /// The local variables of `frame`, parameters first, in definition order.
    pub fn locals(&mut self, frame: &Frame) -> Result<Vec<Local>, WalkError> {
        let layout = self.layout.clone();
        let code = frame.code.addr;
        let header = self
            .memory
            .read_vec(code, layout.code_size as usize, 0x400)?;
        let pointer = |offset| u64_at(&header, offset).unwrap_or(0);
        let mut names = self.str_tuple(pointer(layout.code_varnames))?;
        // Parameters come first: positional, keyword-only, *args, **kwargs.
        let flags = i32_at(&header, layout.code_flags).unwrap_or(0);
        let parameters = i32_at(&header, layout.code_argcount).unwrap_or(0)
            + i32_at(
                &header,
                layout.code_argcount + KWONLYARGCOUNT_AFTER_ARGCOUNT,
            )
            .unwrap_or(0)
            + i32::from(flags & CO_VARARGS != 0)
            + i32::from(flags & CO_VARKEYWORDS != 0);
        let parameters = parameters.clamp(0, MAX_LOCALS as i32) as usize;
        let kinds: Vec<u8> = match layout.code_localspluskinds {
            Some(offset) => self.read_bytes(pointer(offset), MAX_LOCALS)?.1,
            None => {
                // ≤3.10: plain locals, then cell variables, then free variables.
                let nlocals = layout
                    .code_nlocals
                    .and_then(|o| i32_at(&header, o))
                    .unwrap_or(0)
                    .clamp(0, MAX_LOCALS as i32) as usize;
                names.truncate(nlocals);
                let mut kinds = vec![0u8; names.len()];
                if let Some((cells, frees)) = layout.code_cell_free_vars {
                    for offset in [cells, frees] {
                        let extra = self.str_tuple(pointer(offset))?;
                        kinds.extend(std::iter::repeat_n(FAST_CELL_OR_FREE, extra.len()));
                        names.extend(extra);
                    }
                }
                kinds
            }
        };
        let count = names.len().min(kinds.len()).min(MAX_LOCALS);
        // The frame's code pointer and its slots in one read: a running
        // thread may have returned and reused the frame for another function
        // since the stack was read, and its slots then hold other values.
        let slots_start = layout.frame_localsplus;
        let frame_bytes = self.memory.read_vec(
            frame.addr,
            slots_start as usize + count * 8,
            slots_start as usize + MAX_LOCALS * 8,
        )?;
        self.check_frame_code(frame, &frame_bytes)?;
        let slots = &frame_bytes[slots_start as usize..];
        let mut locals = Vec::with_capacity(count);
        for (index, name) in names.into_iter().take(count).enumerate() {
            let kind = kinds[index];
            if kind & FAST_HIDDEN != 0 {
                continue;
            }
            let mut addr = u64_at(slots, index as u64 * 8).unwrap_or(0);
            let value = if layout.stack_refs_tagged && addr & 3 == 3 {
                // A tagged small integer, not a pointer.
                let value = Value::Int(i128::from((addr as i64) >> 2));
                addr = 0;
                value
            } else {
                if layout.stack_refs_tagged {
                    addr &= !3;
                }
                if kind & FAST_CELL_OR_FREE != 0 && addr != 0 && self.type_of(addr)?.name == "cell"
                {
                    addr = self.cell_contents(addr)?;
                }
                self.read_value(addr)?
            };
            locals.push(Local {
                name,
                is_arg: index < parameters,
                addr,
                value,
            });
        }
        // Still the same function once the values are read.
        let code_pointer = self
            .memory
            .read_vec(frame.addr, slots_start as usize, 0x400)?;
        self.check_frame_code(frame, &code_pointer)?;
        Ok(locals)
    }

    /// Fails unless the frame read into `bytes` still runs `frame`'s code.
    fn check_frame_code(&self, frame: &Frame, bytes: &[u8]) -> Result<(), WalkError> {
        let mut code = u64_at(bytes, self.layout.frame_code).unwrap_or(0);
        if self.layout.stack_refs_tagged {
            code &= !3;
        }
        if code == frame.code.addr {
            Ok(())
        } else {
            Err(WalkError::Invalid {
                what: "frame reused by another function",
                addr: frame.addr,
            })
        }
    }

    /// The strings of a tuple of strings (such as `co_varnames`).
    fn str_tuple(&mut self, tuple: u64) -> Result<Vec<String>, WalkError> {
        if tuple == 0 {
            return Ok(Vec::new());
        }
        let items = self.sequence_items(tuple, MAX_LOCALS)?;
        items.into_iter().map(|item| self.read_str(item)).collect()
    }
}
