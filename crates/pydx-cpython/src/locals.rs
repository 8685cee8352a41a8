//! Reading the local variables of a frame.

use std::sync::Arc;

use pydx_remote::{MemoryReader, ReadError, ReadErrorKind, ReadExt, ReadStats};

use crate::error::WalkError;
use crate::frames::{CodeInfo, Frame};
use crate::objects::{value_spans, Value};
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

/// Containers nested this deep in a local's value show their items, when
/// asked for ([`PythonReader::locals_in_full`]).
const REPR_DEPTH: usize = 2;

/// What two reads of one object agree on: the value, when equal; for a
/// container whose items changed between the reads (a list being filled),
/// its type and length without the items; `None` when they disagree.
fn agreed(first: &Value, second: Value) -> Option<Value> {
    match (first, second) {
        (Value::Unreadable, _) | (_, Value::Unreadable) => None,
        (
            Value::Container {
                type_name: a,
                items: first_items,
                ..
            },
            Value::Container {
                type_name: b,
                len,
                items,
            },
        ) if *a == b => Some(Value::Container {
            type_name: b,
            len,
            items: items.filter(|items| Some(items) == first_items.as_ref()),
        }),
        (first, second) => (*first == second).then_some(second),
    }
}

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
    /// The type of the object it held, when two reads of that object agreed
    /// on it, even if the value itself could not be read consistently (a
    /// variable assigned a new number on every iteration of a tight loop
    /// keeps its type while its value changes under the reader).
    pub type_name: Option<String>,
}

/// The locals of a code object: their names, each one's kind byte
/// (`co_localspluskinds`; before 3.11, a mark for cell and free
/// variables), and how many of them are parameters. Read once per code
/// object (see [`CodeInfo`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LocalNames {
    names: Vec<String>,
    kinds: Vec<u8>,
    parameters: usize,
}

/// A frame's local slots, the first bytes of the objects they held, and
/// the slots again, read in that order (see
/// [`PythonReader::slots_values_slots`]).
type SlotsAroundValues = (Vec<u8>, Vec<Vec<u8>>, Vec<u8>);

/// What a local's slot holds.
enum Slot {
    /// The address of an object (0 when unbound).
    Object(u64),
    /// A small integer tagged into the slot itself (3.14+).
    TaggedInt(i128),
}

impl<M: MemoryReader> PythonReader<M> {
    /// The local variables of `frame`, parameters first, in definition order.
    ///
    /// A running thread changes its locals while they are read: a variable
    /// is assigned again and its old object freed, and the memory reused by
    /// another object, even between reading an object's header and its data.
    /// So every value is read twice, with the frame's slots read again in
    /// between, and kept only if nothing changed; otherwise it is
    /// [`Value::Unreadable`]. A value shown is one the variable held.
    pub fn locals(&mut self, frame: &Frame) -> Result<Vec<Local>, WalkError> {
        self.locals_to_depth(frame, 0)
    }

    /// Like [`PythonReader::locals`], with the first items of containers
    /// (two levels deep) in their values: more reads, for a one-off dump
    /// rather than a sampler.
    pub fn locals_in_full(&mut self, frame: &Frame) -> Result<Vec<Local>, WalkError> {
        self.locals_to_depth(frame, REPR_DEPTH)
    }

    fn locals_to_depth(&mut self, frame: &Frame, depth: usize) -> Result<Vec<Local>, WalkError> {
        let local_names = self.cached_local_names(&frame.code)?;
        let LocalNames {
            names,
            kinds,
            parameters,
        } = &*local_names;
        let parameters = *parameters;
        let count = names.len().min(kinds.len()).min(MAX_LOCALS);
        if count == 0 {
            return Ok(Vec::new());
        }
        let slots = self.frame_slots(frame, count)?;
        let mut shown = Vec::with_capacity(count);
        for (index, name) in names.iter().take(count).enumerate() {
            let kind = kinds[index];
            if kind & FAST_HIDDEN != 0 {
                continue;
            }
            let raw = u64_at(&slots, index as u64 * 8).unwrap_or(0);
            shown.push((index, name, raw, self.slot(raw, kind)?));
        }
        // Every object's first bytes in one read, then each value from them.
        let objects: Vec<u64> = shown
            .iter()
            .map(|(_, _, _, slot)| match slot {
                Slot::Object(addr) if *addr != 0 => *addr,
                _ => 0,
            })
            .collect();
        let chunks = self.value_chunks(&objects);
        let mut locals = Vec::with_capacity(shown.len());
        for ((index, name, raw, slot), chunk) in shown.into_iter().zip(&chunks) {
            let (addr, value) = match slot {
                Slot::TaggedInt(value) => (0, Value::Int(value)),
                Slot::Object(addr) => (
                    addr,
                    self.read_value_with_items_in(addr, depth, chunk)
                        .unwrap_or(Value::Unreadable),
                ),
            };
            let name = name.clone();
            locals.push((
                index,
                raw,
                Local {
                    name,
                    is_arg: index < parameters,
                    addr,
                    value,
                    type_name: None,
                },
            ));
        }
        // Still the same function, and each variable still the same object
        // with the same value, once the values are read: the slots, the
        // objects' first bytes and the slots again, in one batch (copied in
        // that order).
        let objects: Vec<u64> = locals.iter().map(|(_, _, local)| local.addr).collect();
        let (slots_between, chunks, slots_after) =
            self.slots_values_slots(frame, count, &objects)?;
        let reads_before = ReadStats::now().memory_reads;
        let checked: Vec<(usize, u64, Local)> = locals
            .into_iter()
            .zip(&chunks)
            .map(|((index, raw, mut local), chunk)| {
                let again = match local.addr {
                    0 => Some(local.value.clone()),
                    addr => self.read_value_with_items_in(addr, depth, chunk).ok(),
                };
                local.type_name = again
                    .as_ref()
                    .and_then(Value::type_name)
                    .filter(|again| local.value.type_name().as_ref() == Some(again));
                let slot_kept = u64_at(&slots_between, index as u64 * 8) == Some(raw);
                local.value = again
                    .filter(|_| slot_kept)
                    .and_then(|again| agreed(&local.value, again))
                    .unwrap_or(Value::Unreadable);
                (index, raw, local)
            })
            .collect();
        // And the variables still hold those objects after the second read:
        // if decoding a value read more than its first bytes, the slots are
        // read again after it.
        let slots_after = if ReadStats::now().memory_reads == reads_before {
            slots_after
        } else {
            self.frame_slots(frame, count)?
        };
        // A variable that kept its object while another one changed may
        // still be wrong: a loop that frees and allocates objects in the
        // same order puts a new object at the old address, the same each
        // time round (w = 'iota' then x = 'IOTA' at one address), and the
        // reads can each land on the same phase. So when any of the
        // function's own variables changed during the reads, none of their
        // objects is shown; parameters, which a call rarely reassigns, are
        // judged each on its own.
        let locals_changed = (parameters..count).any(|index| {
            let at = |slots: &[u8]| u64_at(slots, index as u64 * 8);
            at(&slots) != at(&slots_between) || at(&slots_between) != at(&slots_after)
        });
        Ok(checked
            .into_iter()
            .map(|(index, raw, mut local)| {
                let changed_under = locals_changed && !local.is_arg && local.addr != 0;
                if u64_at(&slots_after, index as u64 * 8) != Some(raw) || changed_under {
                    local.value = Value::Unreadable;
                }
                local
            })
            .collect())
    }

    /// The first `count` local slots of the frame, once its code pointer
    /// shows it still runs `frame`'s code: a running thread may have
    /// returned and reused the frame for another function since its stack
    /// was read, and the slots then hold other values.
    fn frame_slots(&mut self, frame: &Frame, count: usize) -> Result<Vec<u8>, WalkError> {
        let slots_start = self.layout.frame_localsplus as usize;
        let bytes = self.memory.read_vec(
            frame.addr,
            slots_start + count * 8,
            slots_start.wrapping_add(MAX_LOCALS * 8),
        )?;
        self.slots_in(frame, bytes)
    }

    /// [`PythonReader::frame_slots`], the first bytes of each object of
    /// `objects` (see [`PythonReader::value_chunks`]), and the slots again,
    /// in one batch of reads made in that order.
    fn slots_values_slots(
        &mut self,
        frame: &Frame,
        count: usize,
        objects: &[u64],
    ) -> Result<SlotsAroundValues, WalkError> {
        let slots = (
            frame.addr,
            self.layout.frame_localsplus as usize + count * 8,
        );
        let mut spans = Vec::with_capacity(objects.len() + 2);
        spans.push(slots);
        spans.extend(value_spans(objects));
        spans.push(slots);
        let mut read = self.memory.read_spans(&spans);
        let unread = || WalkError::Read(ReadError::new(slots.0, slots.1, ReadErrorKind::Unmapped));
        let after = read.pop().flatten().ok_or_else(unread)?;
        let mut read = read.into_iter();
        let between = read.next().flatten().ok_or_else(unread)?;
        let chunks = read.map(Option::unwrap_or_default).collect();
        Ok((
            self.slots_in(frame, between)?,
            chunks,
            self.slots_in(frame, after)?,
        ))
    }

    /// The local slots in `bytes`, read from the start of `frame`, if its
    /// code pointer there is still `frame`'s code.
    fn slots_in(&self, frame: &Frame, mut bytes: Vec<u8>) -> Result<Vec<u8>, WalkError> {
        let slots_start = self.layout.frame_localsplus as usize;
        let mut code = u64_at(&bytes, self.layout.frame_code).unwrap_or(0);
        if self.layout.stack_refs_tagged {
            code &= !3;
        }
        if code != frame.code.addr {
            return Err(WalkError::Invalid {
                what: "frame reused by another function",
                addr: frame.addr,
            });
        }
        Ok(bytes.split_off(slots_start.min(bytes.len())))
    }

    /// The local `name` of `frame` if it holds a `str`: its first
    /// `max_chars` characters. `None` when the frame has no such local, or
    /// it is unbound or holds anything else.
    pub fn str_local(
        &mut self,
        frame: &Frame,
        name: &str,
        max_chars: usize,
    ) -> Result<Option<String>, WalkError> {
        match self.local_slot(frame, name)? {
            Some(Slot::Object(addr)) if addr != 0 && self.is_str(addr)? => {
                self.read_str_limited(addr, max_chars).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The values inside the local `name` of `frame` (see
    /// [`PythonReader::shallow_values`]), at most `max_items`; `None` when
    /// the frame has no such local.
    pub fn local_values(
        &mut self,
        frame: &Frame,
        name: &str,
        max_items: usize,
    ) -> Result<Option<Vec<Value>>, WalkError> {
        match self.local_slot(frame, name)? {
            Some(Slot::Object(addr)) => self.shallow_values(addr, max_items).map(Some),
            Some(Slot::TaggedInt(value)) => Ok(Some(vec![Value::Int(value)])),
            None => Ok(None),
        }
    }

    /// The object in local slot `index` of `frame` (through its cell, if it
    /// holds one); `None` when the slot is empty or holds a tagged integer.
    pub(crate) fn object_in_slot(
        &mut self,
        frame: &Frame,
        index: usize,
    ) -> Result<Option<u64>, WalkError> {
        let slots = self.frame_slots(frame, index + 1)?;
        let raw = u64_at(&slots, index as u64 * 8).unwrap_or(0);
        Ok(match self.slot(raw, FAST_CELL_OR_FREE)? {
            Slot::Object(0) | Slot::TaggedInt(_) => None,
            Slot::Object(addr) => Some(addr),
        })
    }

    /// The object the local `name` of `frame` holds; `None` when the frame
    /// has no such local, or it is unbound or holds a tagged integer.
    pub(crate) fn object_local(
        &mut self,
        frame: &Frame,
        name: &str,
    ) -> Result<Option<u64>, WalkError> {
        Ok(match self.local_slot(frame, name)? {
            Some(Slot::Object(addr)) if addr != 0 => Some(addr),
            _ => None,
        })
    }

    /// What the slot of the local `name` of `frame` holds; `None` when the
    /// frame has no such (visible) local.
    fn local_slot(&mut self, frame: &Frame, name: &str) -> Result<Option<Slot>, WalkError> {
        let local_names = self.cached_local_names(&frame.code)?;
        let LocalNames { names, kinds, .. } = &*local_names;
        let Some(index) = names.iter().position(|n| n == name) else {
            return Ok(None);
        };
        let kind = kinds.get(index).copied().unwrap_or(0);
        if kind & FAST_HIDDEN != 0 {
            return Ok(None);
        }
        let slots = self.frame_slots(frame, index + 1)?;
        let raw = u64_at(&slots, index as u64 * 8).unwrap_or(0);
        self.slot(raw, kind).map(Some)
    }

    /// The names and kinds of the locals of `code`, read on first use.
    fn cached_local_names(&mut self, code: &CodeInfo) -> Result<Arc<LocalNames>, WalkError> {
        if let Some(names) = code.local_names.get() {
            return Ok(names.clone());
        }
        let names = Arc::new(self.local_names(code.addr)?);
        let _ = code.local_names.set(names.clone());
        Ok(names)
    }

    /// The names and kinds of the locals of the code object at `code`.
    fn local_names(&mut self, code: u64) -> Result<LocalNames, WalkError> {
        let layout = self.layout.clone();
        let header = self
            .memory
            .read_vec(code, layout.code_size as usize, 0x400)?;
        let pointer = |offset| u64_at(&header, offset).unwrap_or(0);
        let mut names = self.str_tuple(pointer(layout.code_varnames))?;
        // Parameters come first: positional, keyword-only, *args, **kwargs.
        let flags = i32_at(&header, layout.code_flags).unwrap_or(0);
        let count = |offset| i64::from(i32_at(&header, offset).unwrap_or(0));
        let parameters = count(layout.code_argcount)
            + count(layout.code_argcount + KWONLYARGCOUNT_AFTER_ARGCOUNT)
            + i64::from(flags & CO_VARARGS != 0)
            + i64::from(flags & CO_VARKEYWORDS != 0);
        let parameters = parameters.clamp(0, MAX_LOCALS as i64) as usize;
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
        Ok(LocalNames {
            names,
            kinds,
            parameters,
        })
    }

    /// What the raw slot word `raw` of a local of kind `kind` refers to:
    /// untagged, and through the cell for cell and free variables.
    fn slot(&mut self, raw: u64, kind: u8) -> Result<Slot, WalkError> {
        let mut addr = raw;
        if self.layout.stack_refs_tagged {
            if addr & 3 == 3 {
                return Ok(Slot::TaggedInt(i128::from((addr as i64) >> 2)));
            }
            addr &= !3;
        }
        if kind & FAST_CELL_OR_FREE != 0 && addr != 0 && self.type_of(addr)?.name == "cell" {
            addr = self.cell_contents(addr)?;
        }
        Ok(Slot::Object(addr))
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
