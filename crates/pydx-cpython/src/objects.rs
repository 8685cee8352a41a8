//! Reading Python objects: types, strings, numbers, containers, dictionaries
//! and instance attributes.

use std::fmt;
use std::sync::Arc;

use pydx_remote::{MemoryReader, ReadExt, ReadRequest};

use crate::error::WalkError;
use crate::layout::{DictKeysFormat, LongFormat, ManagedDict};
use crate::reader::{u64_at, PythonReader, TypeInfo, MAX_DICT_ENTRIES, MAX_STRING_CHARS};

/// `ob_type` in every non-free-threaded build.
const OB_TYPE: u64 = 0x8;
/// `ob_size` of variable-sized objects.
const OB_SIZE: u64 = 0x10;
/// `PyTypeObject.tp_name`.
const TP_NAME: u64 = 0x18;
/// `PyModuleObject.md_dict`.
const MODULE_DICT: u64 = 0x10;
/// `PyCellObject.ob_ref`.
const CELL_REF: u64 = 0x10;
/// `PyBytesObject.ob_sval`.
const BYTES_DATA: u64 = 0x20;
/// `PyFloatObject.ob_fval`.
const FLOAT_VALUE: u64 = 0x10;
/// `PyLongObject` digits.
const LONG_DIGITS: u64 = 0x18;
/// `PyListObject.ob_item`.
const LIST_ITEMS: u64 = 0x18;
/// `PyTypeObject.tp_members`: a class's `__slots__` as `PyMemberDef`s.
const TP_MEMBERS: u64 = 0xf0;
/// `PyTypeObject.tp_base`.
const TP_BASE: u64 = 0x100;
/// `sizeof(PyMemberDef)`: name, type, offset, flags, doc.
const MEMBER_DEF_SIZE: u64 = 40;
/// `PyMemberDef.type`.
const MEMBER_DEF_TYPE: u64 = 8;
/// `PyMemberDef.offset`.
const MEMBER_DEF_OFFSET: u64 = 16;
/// `Py_T_OBJECT_EX`, the member type of a `__slots__` entry.
const MEMBER_OBJECT_EX: u32 = 16;
/// Most members looked at per class, and classes per object.
const MAX_MEMBERS: u64 = 64;
const MAX_CLASSES: usize = 8;
/// Largest slot offset believed.
const MAX_SLOT_OFFSET: u64 = 4096;

/// `Py_TPFLAGS_INLINE_VALUES` (3.13+).
const TPFLAGS_INLINE_VALUES: u64 = 1 << 2;
/// `Py_TPFLAGS_MANAGED_DICT` (3.11+).
const TPFLAGS_MANAGED_DICT: u64 = 1 << 4;
/// `Py_TPFLAGS_LONG_SUBCLASS`.
const TPFLAGS_LONG: u64 = 1 << 24;
/// `Py_TPFLAGS_LIST_SUBCLASS`.
const TPFLAGS_LIST: u64 = 1 << 25;
/// `Py_TPFLAGS_TUPLE_SUBCLASS`.
const TPFLAGS_TUPLE: u64 = 1 << 26;
/// `Py_TPFLAGS_BYTES_SUBCLASS`.
const TPFLAGS_BYTES: u64 = 1 << 27;
/// `Py_TPFLAGS_UNICODE_SUBCLASS`.
const TPFLAGS_UNICODE: u64 = 1 << 28;
/// `Py_TPFLAGS_DICT_SUBCLASS`.
const TPFLAGS_DICT: u64 = 1 << 29;

/// Longest type name pydx reads.
const MAX_TYPE_NAME: usize = 256;
/// Most digits of an integer pydx decodes into a number.
const MAX_INT_DIGITS: u64 = 4;
/// Characters of a string or bytes value shown in a repr.
const REPR_CHARS: usize = 64;
/// Bytes read at once from the start of a `str`: its header and, for a short
/// string, all of its data and the NUL after it.
const STR_CHUNK: usize = 0x50 + 4 * (REPR_CHARS + 1);
/// The page size: a read that stays within the page of a mapped address
/// cannot fault.
const PAGE: u64 = 4096;

/// How [`Value::Unreadable`] is shown.
pub const UNREADABLE_REPR: &str = "<unreadable: changed while read>";

/// A value read out of the target, decoded as far as is safe and cheap.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits in 128 bits.
    Int(i128),
    /// An `int` too large to decode, with its digit count.
    BigInt {
        /// Number of 30-bit digits.
        digits: u64,
        /// Whether it is negative.
        negative: bool,
    },
    /// A `float`.
    Float(f64),
    /// A `str`: its first characters and its full length in characters.
    Str {
        /// The first characters (all of them for short strings).
        head: String,
        /// The full length.
        len: u64,
    },
    /// `bytes` (at most the first few).
    Bytes {
        /// The first bytes.
        head: Vec<u8>,
        /// The full length.
        len: u64,
    },
    /// A container: its type name, number of items and, when read with
    /// [`PythonReader::read_value_with_items`], its first items.
    Container {
        /// `list`, `tuple`, `dict`, `set`, or a subclass name.
        type_name: String,
        /// Number of items.
        len: u64,
        /// The first items (a `dict`'s keys and values in turn), when read.
        items: Option<Vec<Value>>,
    },
    /// A NumPy scalar (`numpy.int8`, `numpy.float64`, ...): its type name
    /// and value.
    NumpyScalar {
        /// The type's `tp_name`.
        type_name: String,
        /// Its value: an `Int`, `Float` or `Bool`.
        value: Box<Value>,
    },
    /// Any other object: its type name and address.
    Object {
        /// The type's `tp_name`.
        type_name: String,
        /// Where the object lives in the target.
        addr: u64,
    },
    /// A local that has no value yet (unbound).
    Unbound,
    /// A value that changed while it was read (the variable was assigned
    /// again, or its object freed and reused): pydx shows no value rather
    /// than a wrong one.
    Unreadable,
}

impl Value {
    /// The name of the value's type (`int`, `str`, a container's or
    /// object's `tp_name`), or `None` when it is unreadable or unbound.
    pub fn type_name(&self) -> Option<String> {
        Some(match self {
            Value::None => "NoneType".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt { .. } => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str { .. } => "str".into(),
            Value::Bytes { .. } => "bytes".into(),
            Value::Container { type_name, .. }
            | Value::Object { type_name, .. }
            | Value::NumpyScalar { type_name, .. } => type_name.clone(),
            Value::Unbound | Value::Unreadable => return None,
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt { digits, negative } => write!(
                f,
                "<int {}~{} digits>",
                if *negative { "-" } else { "" },
                digits * 9
            ),
            Value::Float(v) => f.write_str(&float_repr(*v)),
            Value::Str { head, len } => write_quoted_str(f, head, *len),
            Value::Bytes { head, len } => {
                f.write_str("b'")?;
                for &b in head.iter().take(REPR_CHARS) {
                    match b {
                        b'\'' => f.write_str("\\'")?,
                        b'\\' => f.write_str("\\\\")?,
                        b'\n' => f.write_str("\\n")?,
                        b'\t' => f.write_str("\\t")?,
                        0x20..=0x7e => write!(f, "{}", b as char)?,
                        _ => write!(f, "\\x{b:02x}")?,
                    }
                }
                f.write_str("'")?;
                if *len > head.len().min(REPR_CHARS) as u64 {
                    write!(f, "... ({len} bytes)")?;
                }
                Ok(())
            }
            Value::Container {
                type_name,
                len,
                items: Some(items),
            } => write_container(f, type_name, *len, items),
            Value::Container { type_name, len, .. } => write!(f, "<{type_name} of {len}>"),
            Value::NumpyScalar { type_name, value } => write!(
                f,
                "np.{}({value})",
                type_name.strip_prefix("numpy.").unwrap_or(type_name)
            ),
            Value::Object { type_name, addr } => write!(f, "<{type_name} at {addr:#x}>"),
            Value::Unbound => f.write_str("<unbound>"),
            Value::Unreadable => f.write_str(UNREADABLE_REPR),
        }
    }
}

/// Writes a container the way Python's `repr` does, with `...` and the
/// full count when not every item was read.
fn write_container(
    f: &mut fmt::Formatter<'_>,
    type_name: &str,
    len: u64,
    items: &[Value],
) -> fmt::Result {
    let (open, close) = match type_name {
        "list" => ("[", "]"),
        "tuple" => ("(", ")"),
        "set" if len == 0 => return f.write_str("set()"),
        "frozenset" if len == 0 => return f.write_str("frozenset()"),
        "frozenset" => ("frozenset({", "})"),
        _ => ("{", "}"),
    };
    f.write_str(open)?;
    if type_name == "dict" {
        for (index, pair) in items.chunks_exact(2).enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", pair[0], pair[1])?;
        }
    } else {
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
    }
    let shown = if type_name == "dict" {
        items.len() / 2
    } else {
        items.len()
    } as u64;
    if shown < len {
        if shown > 0 {
            f.write_str(", ")?;
        }
        write!(f, "... ({len} items)")?;
    } else if type_name == "tuple" && len == 1 {
        f.write_str(",")?;
    }
    f.write_str(close)
}

fn write_quoted_str(f: &mut fmt::Formatter<'_>, s: &str, len: u64) -> fmt::Result {
    f.write_str("'")?;
    for (count, c) in s.chars().enumerate() {
        if count == REPR_CHARS {
            break;
        }
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")?;
    if len > REPR_CHARS as u64 {
        write!(f, "... ({len} chars)")?;
    }
    Ok(())
}

/// Formats a float the way Python's `repr` does for common values.
fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let magnitude = v.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let text = format!("{v:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        return format!(
            "{mantissa}e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
    }
    let text = format!("{v}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

/// Decodes the characters of a compact or legacy string's data.
/// `kind` is 1 (Latin-1), 2 (UCS-2) or 4 (UCS-4); invalid code points
/// (lone surrogates) become U+FFFD.
pub fn decode_string_data(kind: u8, data: &[u8]) -> Option<String> {
    match kind {
        1 => Some(data.iter().map(|&b| b as char).collect()),
        2 => Some(
            data.chunks_exact(2)
                .map(|c| {
                    char::from_u32(u32::from(u16::from_le_bytes([c[0], c[1]])))
                        .unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        4 => Some(
            data.chunks_exact(4)
                .map(|c| {
                    char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Items of a container shown in a local's repr.
const REPR_ITEMS: usize = 8;
/// Largest set table read, in bytes.
const MAX_SET_TABLE: usize = MAX_DICT_ENTRIES * 16;
/// `tp_basicsize` of `set` and `frozenset` (3.8 and later): a user class
/// that happens to be named `set` has another size.
const SET_BASICSIZE: u64 = 200;
/// `tp_name` of the object that marks a deleted slot in a set's table.
const SET_DUMMY_TYPE: &str = "<dummy key> type";
/// Where a NumPy scalar's value follows its object header (`obval`).
const NUMPY_SCALAR_VALUE: u64 = 0x10;

/// What a NumPy scalar type holds, by its `tp_name`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NumpyKind {
    Bool,
    Int(u32),
    UInt(u32),
    Float(u32),
}

impl NumpyKind {
    /// Bytes of the value.
    fn size(self) -> u64 {
        match self {
            NumpyKind::Bool => 1,
            NumpyKind::Int(bits) | NumpyKind::UInt(bits) | NumpyKind::Float(bits) => {
                u64::from(bits / 8)
            }
        }
    }
}

/// The kind of a NumPy scalar type from its name (`numpy.int8`,
/// `numpy.float64`, `numpy.bool_`, ...); `None` for other types (complex,
/// long double, strings, datetimes), which are shown as objects.
fn numpy_scalar_kind(type_name: &str) -> Option<NumpyKind> {
    let name = type_name.strip_prefix("numpy.")?;
    if name == "bool" || name == "bool_" {
        return Some(NumpyKind::Bool);
    }
    let bits_of = |rest: &str, allowed: &[u32]| {
        rest.parse::<u32>()
            .ok()
            .filter(|bits| allowed.contains(bits))
    };
    if let Some(rest) = name.strip_prefix("uint") {
        bits_of(rest, &[8, 16, 32, 64]).map(NumpyKind::UInt)
    } else if let Some(rest) = name.strip_prefix("int") {
        bits_of(rest, &[8, 16, 32, 64]).map(NumpyKind::Int)
    } else if let Some(rest) = name.strip_prefix("float") {
        bits_of(rest, &[16, 32, 64]).map(NumpyKind::Float)
    } else {
        None
    }
}

/// An IEEE half-precision float's value.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// Where user space ends on x86_64 (47-bit addresses).
const USER_SPACE_END: u64 = 1 << 47;

/// `addr` if it can be the address of a Python object: 8-byte aligned and
/// in user space. Values read from the target can be anything; this keeps
/// offsets added to them from overflowing.
fn object_address(addr: u64) -> Result<u64, WalkError> {
    if addr % 8 == 0 && addr < USER_SPACE_END {
        Ok(addr)
    } else {
        Err(WalkError::invalid("object pointer", addr))
    }
}

impl<M: MemoryReader> PythonReader<M> {
    /// The type of the object at `addr` (cached by type address).
    pub fn type_of(&mut self, addr: u64) -> Result<Arc<TypeInfo>, WalkError> {
        let type_addr = self.word(object_address(addr)? + OB_TYPE)?;
        self.type_info(type_addr)
    }

    /// What pydx knows about the type object at `type_addr`.
    pub fn type_info(&mut self, type_addr: u64) -> Result<Arc<TypeInfo>, WalkError> {
        if let Some(info) = self.types.get(&type_addr) {
            return Ok(info.clone());
        }
        if type_addr == 0 || object_address(type_addr).is_err() {
            return Err(WalkError::invalid("type pointer", type_addr));
        }
        let layout = &self.layout;
        let end = [
            TP_NAME,
            layout.type_flags,
            layout.type_basicsize,
            layout.type_dictoffset,
        ]
        .into_iter()
        .max()
        .unwrap_or(TP_NAME)
            + 8;
        let header = self.memory.read_vec(type_addr, end as usize, 0x1000)?;
        let field = |offset| u64_at(&header, offset).unwrap_or(0);
        let name = self.memory.read_c_string(field(TP_NAME), MAX_TYPE_NAME)?;
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(WalkError::invalid("type name", type_addr));
        }
        let info = Arc::new(TypeInfo {
            name: String::from_utf8_lossy(&name).into_owned(),
            flags: field(layout.type_flags),
            basicsize: field(layout.type_basicsize),
            dictoffset: field(layout.type_dictoffset) as i64,
        });
        self.types.insert(type_addr, info.clone());
        Ok(info)
    }

    /// Reads the `str` object at `addr`, at most `max_chars` characters.
    pub fn read_str_limited(&mut self, addr: u64, max_chars: usize) -> Result<String, WalkError> {
        let info = self.type_of(addr)?;
        if info.flags & TPFLAGS_UNICODE == 0 {
            return Err(WalkError::invalid("str object", addr));
        }
        Ok(self.read_str_unchecked(addr, max_chars)?.0)
    }

    /// Whether the object at `addr` is a `str` (or a subclass).
    pub(crate) fn is_str(&mut self, addr: u64) -> Result<bool, WalkError> {
        Ok(self.type_of(addr)?.flags & TPFLAGS_UNICODE != 0)
    }

    /// Reads the `str` object at `addr` (cut at [`MAX_STRING_CHARS`]).
    pub fn read_str(&mut self, addr: u64) -> Result<String, WalkError> {
        self.read_str_limited(addr, MAX_STRING_CHARS)
    }

    /// Reads a string without checking its type first; returns its first
    /// `max_chars` characters and its length.
    fn read_str_unchecked(&self, addr: u64, max_chars: usize) -> Result<(String, u64), WalkError> {
        self.read_str_prefetched(addr, max_chars, &[])
    }

    /// Like [`PythonReader::read_str`] without the type check, using
    /// `prefetched` (bytes already read from `addr`) where it reaches, so a
    /// short string costs no read at all.
    pub(crate) fn read_str_prefetched(
        &self,
        addr: u64,
        max_chars: usize,
        prefetched: &[u8],
    ) -> Result<(String, u64), WalkError> {
        let layout = &self.layout;
        // Header and data in one read where they fit: a string freed and
        // its memory reused between two reads would mix two strings.
        let mut chunk = [0u8; STR_CHUNK];
        let prefetched = if prefetched.len() >= 0x28 {
            prefetched
        } else {
            let to_page_end = (PAGE - addr % PAGE) as usize;
            let mut len = STR_CHUNK.min(to_page_end).max(0x28);
            if self.memory.read_into(addr, &mut chunk[..len]).is_err() {
                // An object at the very end of a mapping: the header alone.
                len = 0x28;
                self.memory.read_into(addr, &mut chunk[..len])?;
            }
            &chunk[..len]
        };
        let header = &prefetched[..0x28];
        let length = u64_at(header, 0x10).unwrap_or(0);
        let state = u32::from_le_bytes([header[0x20], header[0x21], header[0x22], header[0x23]]);
        let kind = ((state >> 2) & 7) as u8;
        let compact = state & (1 << 5) != 0;
        let ascii = state & (1 << 6) != 0;
        if !matches!(kind, 1 | 2 | 4) || length > 1 << 40 {
            return Err(WalkError::invalid("str header", addr));
        }
        let size = (length as usize).min(max_chars) * kind as usize;
        let data_offset = if ascii {
            layout.unicode_ascii_data
        } else {
            layout.unicode_compact_data
        };
        let local = compact
            .then(|| prefetched.get(data_offset as usize..data_offset as usize + size))
            .flatten();
        // CPython ends the data of a compact string with a NUL character: a
        // length read from one string and data from another rarely does.
        let whole = size == length as usize * kind as usize;
        let terminator = data_offset as usize + size;
        if let (true, true, Some(end)) = (
            compact,
            whole,
            prefetched.get(terminator..terminator + kind as usize),
        ) {
            if end.iter().any(|&b| b != 0) {
                return Err(WalkError::invalid("str data", addr));
            }
        }
        let text = match local {
            Some(bytes) => decode_string_data(kind, bytes),
            None => {
                let data = if compact {
                    addr.wrapping_add(data_offset)
                } else {
                    // Legacy string: the data pointer follows the compact header.
                    self.word(addr.wrapping_add(layout.unicode_compact_data))?
                };
                let bytes = self.memory.read_vec(data, size, MAX_STRING_CHARS * 4)?;
                decode_string_data(kind, &bytes)
            }
        };
        Ok((text.ok_or(WalkError::invalid("str data", addr))?, length))
    }

    /// Reads an `int` (or `bool`) object's value.
    pub fn read_int(&mut self, addr: u64) -> Result<Value, WalkError> {
        self.read_int_in(addr, &[])
    }

    /// Like [`PythonReader::read_int`], from `chunk` (bytes read from
    /// `addr`) where it reaches.
    fn read_int_in(&self, addr: u64, chunk: &[u8]) -> Result<Value, WalkError> {
        let mut header = [0u8; 0x18 + 4 * MAX_INT_DIGITS as usize];
        let in_chunk = chunk.len().min(header.len());
        if in_chunk >= 0x18 {
            header[..in_chunk].copy_from_slice(&chunk[..in_chunk]);
        } else {
            self.memory.read_into(addr, &mut header[..0x18])?;
        }
        let size_word = u64_at(&header, OB_SIZE).unwrap_or(0);
        let (digits, negative) = match self.layout.long_format {
            LongFormat::SignedSize => {
                let size = size_word as i64;
                (size.unsigned_abs(), size < 0)
            }
            LongFormat::Tagged => (size_word >> 3, size_word & 3 == 2),
        };
        if digits > MAX_INT_DIGITS {
            return Ok(Value::BigInt { digits, negative });
        }
        let bytes = &mut header[0x18..0x18 + 4 * digits as usize];
        if in_chunk < 0x18 + bytes.len() {
            self.memory
                .read_into(addr.wrapping_add(LONG_DIGITS), bytes)?;
        }
        let mut value: i128 = 0;
        for (i, digit) in bytes.chunks_exact(4).enumerate() {
            let digit = u32::from_le_bytes([digit[0], digit[1], digit[2], digit[3]]) & 0x3fff_ffff;
            value |= i128::from(digit) << (30 * i);
        }
        Ok(Value::Int(if negative { -value } else { value }))
    }

    /// Reads an `int` object as an `i64`, if it fits.
    pub fn read_i64(&mut self, addr: u64) -> Result<i64, WalkError> {
        match self.read_int(addr)? {
            Value::Int(v) => i64::try_from(v).map_err(|_| WalkError::invalid("int range", addr)),
            _ => Err(WalkError::invalid("int range", addr)),
        }
    }

    /// The number of items of a `tuple` or `list` (`ob_size`).
    pub fn sequence_len(&self, addr: u64) -> Result<u64, WalkError> {
        self.word(addr.wrapping_add(OB_SIZE))
    }

    /// The item pointers of a `tuple` or `list`, at most `max` of them.
    pub fn sequence_items(&mut self, addr: u64, max: usize) -> Result<Vec<u64>, WalkError> {
        let info = self.type_of(addr)?;
        let len = self.sequence_len(addr)?;
        let items = if info.flags & TPFLAGS_TUPLE != 0 {
            addr.wrapping_add(self.layout.tuple_items)
        } else if info.flags & TPFLAGS_LIST != 0 {
            self.word(addr.wrapping_add(LIST_ITEMS))?
        } else {
            return Err(WalkError::invalid("sequence", addr));
        };
        let count = (len as usize).min(max);
        let bytes = self.memory.read_vec(items, count * 8, max * 8)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("eight bytes")))
            .collect())
    }

    /// Reads a `bytes` object's size and up to `max` of its bytes.
    pub fn read_bytes(&self, addr: u64, max: usize) -> Result<(u64, Vec<u8>), WalkError> {
        let len = self.word(addr.wrapping_add(OB_SIZE))?;
        let count = (len as usize).min(max);
        Ok((
            len,
            self.memory
                .read_vec(addr.wrapping_add(BYTES_DATA), count, max)?,
        ))
    }

    /// Decodes the object at `addr` into a [`Value`] for display.
    pub fn read_value(&mut self, addr: u64) -> Result<Value, WalkError> {
        self.read_value_in(addr, &[])
    }

    /// The first bytes of each object of `addrs`, read in one batch (each
    /// cut at the end of its page): enough for the value of a number, a
    /// short string or bytes, and the length of a container. Empty where
    /// the read failed (or for address 0), so that the object is then read
    /// on its own.
    pub(crate) fn value_chunks(&self, addrs: &[u64]) -> Vec<Vec<u8>> {
        self.memory
            .read_spans(&value_spans(addrs))
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// The word at `offset` in the object at `addr`, from `chunk` (bytes
    /// read from `addr`) where it reaches.
    fn word_in(&self, chunk: &[u8], addr: u64, offset: u64) -> Result<u64, WalkError> {
        match u64_at(chunk, offset) {
            Some(word) => Ok(word),
            None => self.word(addr.wrapping_add(offset)),
        }
    }

    /// Like [`PythonReader::read_value`], with `chunk` holding the first
    /// bytes of the object (see [`PythonReader::value_chunks`]): what lies
    /// inside it costs no read.
    pub(crate) fn read_value_in(&mut self, addr: u64, chunk: &[u8]) -> Result<Value, WalkError> {
        if addr == 0 {
            return Ok(Value::Unbound);
        }
        let type_addr = self.word_in(chunk, object_address(addr)?, OB_TYPE)?;
        let info = self.type_info(type_addr)?;
        let flags = info.flags;
        Ok(match info.name.as_str() {
            "NoneType" => Value::None,
            "bool" => Value::Bool(self.read_int_in(addr, chunk)? != Value::Int(0)),
            "float" => Value::Float(f64::from_bits(self.word_in(chunk, addr, FLOAT_VALUE)?)),
            _ if flags & TPFLAGS_LONG != 0 => self.read_int_in(addr, chunk)?,
            _ if flags & TPFLAGS_UNICODE != 0 => {
                let (head, len) = self.read_str_prefetched(addr, REPR_CHARS, chunk)?;
                Value::Str { head, len }
            }
            _ if flags & TPFLAGS_BYTES != 0 => {
                let len = self.word_in(chunk, addr, OB_SIZE)?;
                let count = (len as usize).min(REPR_CHARS);
                let start = BYTES_DATA as usize;
                let head = match chunk.get(start..start + count) {
                    Some(bytes) => bytes.to_vec(),
                    None => self.read_bytes(addr, REPR_CHARS)?.1,
                };
                Value::Bytes { head, len }
            }
            _ if flags & (TPFLAGS_LIST | TPFLAGS_TUPLE) != 0 => Value::Container {
                type_name: info.name.clone(),
                len: self.word_in(chunk, addr, OB_SIZE)?,
                items: None,
            },
            _ if flags & TPFLAGS_DICT != 0 => Value::Container {
                type_name: info.name.clone(),
                len: self.word_in(chunk, addr, self.layout.dict_used_keys_values.0)?,
                items: None,
            },
            "set" | "frozenset" if info.basicsize == SET_BASICSIZE => Value::Container {
                type_name: info.name.clone(),
                len: self.word_in(chunk, addr, self.layout.set_used_mask_table.0)?,
                items: None,
            },
            name if name.starts_with("numpy.") => match numpy_scalar_kind(name) {
                Some(kind) if info.basicsize >= NUMPY_SCALAR_VALUE + kind.size() => {
                    Value::NumpyScalar {
                        type_name: info.name.clone(),
                        value: Box::new(self.read_numpy_scalar(addr, kind)?),
                    }
                }
                _ => Value::Object {
                    type_name: info.name.clone(),
                    addr,
                },
            },
            _ => Value::Object {
                type_name: info.name.clone(),
                addr,
            },
        })
    }

    /// Like [`PythonReader::read_value`], and for a `list`, `tuple`, `dict`,
    /// `set` or `frozenset` also its first items, containers among them
    /// read `depth - 1` levels further. Items that cannot all be read leave
    /// the container without items.
    pub fn read_value_with_items(&mut self, addr: u64, depth: usize) -> Result<Value, WalkError> {
        self.read_value_with_items_in(addr, depth, &[])
    }

    /// Like [`PythonReader::read_value_with_items`], with the first bytes
    /// of the object in `chunk` (see [`PythonReader::value_chunks`]).
    pub(crate) fn read_value_with_items_in(
        &mut self,
        addr: u64,
        depth: usize,
        chunk: &[u8],
    ) -> Result<Value, WalkError> {
        let mut value = self.read_value_in(addr, chunk)?;
        let Value::Container {
            type_name, items, ..
        } = &mut value
        else {
            return Ok(value);
        };
        if depth == 0 {
            return Ok(value);
        }
        let addresses = match type_name.as_str() {
            "list" | "tuple" => self.sequence_items(addr, REPR_ITEMS),
            "dict" => self.dict_items(addr, REPR_ITEMS).map(|pairs| {
                pairs
                    .into_iter()
                    .flat_map(|(key, value)| [key, value])
                    .collect()
            }),
            "set" | "frozenset" => self.set_keys(addr, REPR_ITEMS),
            _ => return Ok(value),
        };
        *items = addresses.ok().and_then(|addresses| {
            addresses
                .into_iter()
                .map(|item| self.read_value_with_items(item, depth - 1))
                .collect::<Result<Vec<_>, _>>()
                .ok()
        });
        Ok(value)
    }

    /// The keys of a `set` or `frozenset`, at most `max` of them, skipping
    /// empty and deleted slots.
    pub(crate) fn set_keys(&mut self, set: u64, max: usize) -> Result<Vec<u64>, WalkError> {
        let (used, mask, table) = self.layout.set_used_mask_table;
        let used = self.word(set.wrapping_add(used))?;
        let mask = self.word(set.wrapping_add(mask))?;
        let table = self.word(set.wrapping_add(table))?;
        let slots = mask.saturating_add(1) as usize;
        if used as usize > MAX_DICT_ENTRIES || slots.saturating_mul(16) > MAX_SET_TABLE {
            return Err(WalkError::invalid("set size", set));
        }
        let bytes = self.memory.read_vec(table, slots * 16, MAX_SET_TABLE)?;
        let mut keys = Vec::new();
        for entry in bytes.chunks_exact(16) {
            if keys.len() >= max {
                break;
            }
            let key = u64_at(entry, 0).unwrap_or(0);
            // A key whose type cannot be read is kept for the caller to fail on.
            if key != 0 && !self.type_of(key).is_ok_and(|t| t.name == SET_DUMMY_TYPE) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// The value of a NumPy scalar of `kind` at `addr`.
    fn read_numpy_scalar(&self, addr: u64, kind: NumpyKind) -> Result<Value, WalkError> {
        let mut bytes = [0u8; 8];
        let size = kind.size() as usize;
        self.memory
            .read_into(addr.wrapping_add(NUMPY_SCALAR_VALUE), &mut bytes[..size])?;
        let unsigned = u64::from_le_bytes(bytes);
        Ok(match kind {
            NumpyKind::Bool => Value::Bool(bytes[0] != 0),
            NumpyKind::Int(bits) => {
                let shift = 64 - bits;
                Value::Int(i128::from(((unsigned << shift) as i64) >> shift))
            }
            NumpyKind::UInt(_) => Value::Int(i128::from(unsigned)),
            NumpyKind::Float(16) => Value::Float(half_to_f64(unsigned as u16)),
            NumpyKind::Float(32) => Value::Float(f64::from(f32::from_bits(unsigned as u32))),
            NumpyKind::Float(_) => Value::Float(f64::from_bits(unsigned)),
        })
    }

    /// The values inside the object at `addr`, to tell one value from
    /// another: a `dict`'s keys and values in turn, a `tuple`'s or a
    /// `list`'s items (at most `max` entries), or the object itself.
    pub fn shallow_values(&mut self, addr: u64, max: usize) -> Result<Vec<Value>, WalkError> {
        if addr == 0 {
            return Ok(vec![Value::Unbound]);
        }
        let flags = self.type_of(addr)?.flags;
        let items: Vec<u64> = if flags & TPFLAGS_DICT != 0 {
            self.dict_items(addr, max)?
                .into_iter()
                .flat_map(|(key, value)| [key, value])
                .collect()
        } else if flags & (TPFLAGS_LIST | TPFLAGS_TUPLE) != 0 {
            self.sequence_items(addr, max)?
        } else {
            vec![addr]
        };
        items
            .into_iter()
            .map(|item| self.read_value(item))
            .collect()
    }

    /// The contents of a cell object (for closure variables).
    pub fn cell_contents(&self, addr: u64) -> Result<u64, WalkError> {
        self.word(addr.wrapping_add(CELL_REF))
    }

    /// The `(key, value)` pointers of a `dict`, at most `max` of them.
    pub fn dict_items(&mut self, addr: u64, max: usize) -> Result<Vec<(u64, u64)>, WalkError> {
        let info = self.type_of(addr)?;
        if info.flags & TPFLAGS_DICT == 0 {
            return Err(WalkError::invalid("dict", addr));
        }
        let (_, keys_off, values_off) = self.layout.dict_used_keys_values;
        let keys = self.word(addr.wrapping_add(keys_off))?;
        let values = self.word(addr.wrapping_add(values_off))?;
        self.keys_items(keys, values, max)
    }

    /// Entries of a keys object, with values from `values` when the table is
    /// split (shared keys) and `values` is non-null.
    fn keys_items(&self, keys: u64, values: u64, max: usize) -> Result<Vec<(u64, u64)>, WalkError> {
        let mut header = [0u8; 0x28];
        self.memory.read_into(keys, &mut header)?;
        let (entries_at, count, entry_size) = match self.layout.dict_keys_format {
            DictKeysFormat::Sized => {
                let size = u64_at(&header, 0x8).unwrap_or(0);
                let nentries = u64_at(&header, 0x20).unwrap_or(0);
                if !size.is_power_of_two() || size > 1 << 32 {
                    return Err(WalkError::invalid("dict keys", keys));
                }
                let index_bytes = match size {
                    0..=0xff => 1,
                    0x100..=0xffff => 2,
                    _ => 4,
                };
                (keys.wrapping_add(0x28 + size * index_bytes), nentries, 24)
            }
            DictKeysFormat::Log2 => {
                let log2_index_bytes = u64::from(header[9]);
                let kind = header[10];
                let nentries = u64_at(&header, 0x18).unwrap_or(0);
                if log2_index_bytes > 40 || kind > 2 {
                    return Err(WalkError::invalid("dict keys", keys));
                }
                let entry_size = if kind == 0 { 24 } else { 16 };
                (
                    keys.wrapping_add(0x20 + (1u64 << log2_index_bytes)),
                    nentries,
                    entry_size,
                )
            }
        };
        if count > MAX_DICT_ENTRIES as u64 {
            return Err(WalkError::invalid("dict size", keys));
        }
        let count = count as usize;
        let bytes = self
            .memory
            .read_vec(entries_at, count * entry_size, MAX_DICT_ENTRIES * 24)?;
        let split_values = if values != 0 {
            let array = values.wrapping_add(self.layout.dict_values_array);
            let raw = self
                .memory
                .read_vec(array, count * 8, MAX_DICT_ENTRIES * 8)?;
            Some(raw)
        } else {
            None
        };
        let mut items = Vec::new();
        for (index, entry) in bytes.chunks_exact(entry_size).enumerate() {
            if items.len() >= max {
                break;
            }
            let key_at = if entry_size == 24 { 8 } else { 0 };
            let key = u64_at(entry, key_at).unwrap_or(0);
            let value = match &split_values {
                Some(raw) => u64_at(raw, index as u64 * 8).unwrap_or(0),
                None => u64_at(entry, key_at + 8).unwrap_or(0),
            };
            if key != 0 && value != 0 {
                items.push((key, value));
            }
        }
        Ok(items)
    }

    /// Looks up the string key `name` in the `dict` at `addr`.
    pub fn dict_get_str(&mut self, addr: u64, name: &str) -> Result<Option<u64>, WalkError> {
        let items = self.dict_items(addr, MAX_DICT_ENTRIES)?;
        self.find_str_key(&items, name)
    }

    /// The value of the entry whose key is the string `name`. All keys are
    /// compared in one batched read of their headers and first characters.
    pub(crate) fn find_str_key(
        &mut self,
        items: &[(u64, u64)],
        name: &str,
    ) -> Result<Option<u64>, WalkError> {
        if !name.is_ascii() {
            for &(key, value) in items {
                if self
                    .read_str_limited(key, name.chars().count() + 1)
                    .is_ok_and(|text| text == name)
                {
                    return Ok(Some(value));
                }
            }
            return Ok(None);
        }
        let data_at = self.layout.unicode_ascii_data as usize;
        let span = data_at + name.len();
        let mut buffers = vec![0u8; items.len() * span];
        let mut requests: Vec<ReadRequest<'_>> = buffers
            .chunks_mut(span)
            .zip(items)
            .map(|(buf, &(key, _))| ReadRequest::new(key, buf))
            .collect();
        self.memory.read_batch(&mut requests)?;
        let done: Vec<bool> = requests.iter().map(|r| r.done).collect();
        drop(requests);
        for (index, &(_, value)) in items.iter().enumerate() {
            let key = &buffers[index * span..(index + 1) * span];
            let state = u32::from_le_bytes([key[0x20], key[0x21], key[0x22], key[0x23]]);
            let compact_ascii = state & (0b111 << 2) == 1 << 2 && state & (0b11 << 5) == 0b11 << 5;
            if !done[index]
                || u64_at(key, OB_SIZE) != Some(name.len() as u64)
                || !compact_ascii
                || &key[data_at..] != name.as_bytes()
            {
                continue;
            }
            let key_type = u64_at(key, OB_TYPE).unwrap_or(0);
            if self.type_info(key_type)?.flags & TPFLAGS_UNICODE != 0 {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// The instance attribute `name` of the object at `addr`, read from its
    /// `__dict__` wherever this version keeps it (`None` if absent).
    pub fn instance_attr(&mut self, addr: u64, name: &str) -> Result<Option<u64>, WalkError> {
        let type_addr = self.word(object_address(addr)? + OB_TYPE)?;
        let info = self.type_info(type_addr)?;
        let managed = info.flags & TPFLAGS_MANAGED_DICT != 0;
        match self.layout.managed_dict {
            ManagedDict::Split311 if managed => {
                let values = self.word(addr.wrapping_sub(32))?;
                if values != 0 {
                    return self.shared_keys_lookup(type_addr, values, name);
                }
                let dict = self.word(addr.wrapping_sub(24))?;
                self.optional_dict_get(dict, name)
            }
            ManagedDict::Tagged312 if managed => {
                let word = self.word(addr.wrapping_sub(24))?;
                if word & 1 == 1 {
                    return self.shared_keys_lookup(type_addr, word.wrapping_add(1), name);
                }
                self.optional_dict_get(word, name)
            }
            ManagedDict::Inline313 if managed => {
                let dict = self.word(addr.wrapping_sub(24))?;
                if dict != 0 {
                    return self.optional_dict_get(dict, name);
                }
                if info.flags & TPFLAGS_INLINE_VALUES == 0 {
                    return Ok(None);
                }
                let values = addr.wrapping_add(info.basicsize);
                // `PyDictValues.valid` says whether the inline values are in use.
                if self.memory.read_u8(values.wrapping_add(3))? == 0 {
                    return Ok(None);
                }
                self.shared_keys_lookup(type_addr, values, name)
            }
            _ => {
                if info.dictoffset <= 0 {
                    return Ok(None);
                }
                let dict = self.word(addr.wrapping_add(info.dictoffset as u64))?;
                self.optional_dict_get(dict, name)
            }
        }
    }

    /// The `__slots__` attribute `name` of the object at `addr`, found in
    /// the member table of its class or a base class (`None` if absent or
    /// unset).
    pub fn slot_attr(&mut self, addr: u64, name: &str) -> Result<Option<u64>, WalkError> {
        let mut class = self.word(object_address(addr)? + OB_TYPE)?;
        for _ in 0..MAX_CLASSES {
            if class == 0 {
                break;
            }
            let members = self.word(class.wrapping_add(TP_MEMBERS))?;
            let count = if members == 0 { 0 } else { MAX_MEMBERS };
            for member in (0..count).map(|index| members.wrapping_add(index * MEMBER_DEF_SIZE)) {
                let name_at = self.word(member)?;
                if name_at == 0 {
                    break;
                }
                let bytes = self
                    .memory
                    .read_vec(name_at, name.len() + 1, name.len() + 1)?;
                if bytes.len() != name.len() + 1
                    || &bytes[..name.len()] != name.as_bytes()
                    || bytes[name.len()] != 0
                {
                    continue;
                }
                let kind = self.memory.read_u32(member.wrapping_add(MEMBER_DEF_TYPE))?;
                let offset = self.word(member.wrapping_add(MEMBER_DEF_OFFSET))?;
                if kind != MEMBER_OBJECT_EX || offset == 0 || offset > MAX_SLOT_OFFSET {
                    return Err(WalkError::invalid("slot member", member));
                }
                let value = self.word(addr.wrapping_add(offset))?;
                return Ok((value != 0).then_some(value));
            }
            class = self.word(class.wrapping_add(TP_BASE))?;
        }
        Ok(None)
    }

    fn optional_dict_get(&mut self, dict: u64, name: &str) -> Result<Option<u64>, WalkError> {
        if dict == 0 {
            return Ok(None);
        }
        self.dict_get_str(dict, name)
    }

    /// Looks `name` up in a type's shared keys and returns the matching
    /// entry of the instance's value array.
    fn shared_keys_lookup(
        &mut self,
        type_addr: u64,
        values: u64,
        name: &str,
    ) -> Result<Option<u64>, WalkError> {
        let keys = self.word(type_addr.wrapping_add(self.layout.heap_type_cached_keys))?;
        if keys == 0 {
            return Ok(None);
        }
        let items = self.keys_items(keys, values, MAX_DICT_ENTRIES)?;
        self.find_str_key(&items, name)
    }

    /// The `__dict__` of a module object.
    pub fn module_dict(&self, module: u64) -> Result<u64, WalkError> {
        self.word(module.wrapping_add(MODULE_DICT))
    }
}

/// The spans [`PythonReader::value_chunks`] reads: the first bytes of each
/// object, cut at the end of its page; empty for address 0.
pub(crate) fn value_spans(addrs: &[u64]) -> Vec<(u64, usize)> {
    addrs
        .iter()
        .map(|&addr| match addr {
            0 => (0, 0),
            _ => (addr, STR_CHUNK.min((PAGE - addr % PAGE) as usize)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::version::PythonVersion;
    use pydx_remote::FakeMemory;

    const STR_TYPE: u64 = 0x9000;

    /// Memory with a `str` type object at [`STR_TYPE`].
    fn memory_with_str_type(layout: &Layout) -> FakeMemory {
        let mut memory = FakeMemory::default();
        memory.insert(STR_TYPE, vec![0; 0x200]);
        memory.write_u64(STR_TYPE + TP_NAME, 0x9800);
        memory.write_u64(STR_TYPE + layout.type_flags, TPFLAGS_UNICODE);
        memory.insert(0x9800, b"str\0".to_vec());
        memory
    }

    /// Writes a compact string object at `addr` the way CPython lays it out.
    fn write_compact(memory: &mut FakeMemory, layout: &Layout, addr: u64, text: &str) {
        let chars: Vec<u32> = text.chars().map(u32::from).collect();
        let max = chars.iter().copied().max().unwrap_or(0);
        let (kind, ascii) = match max {
            0..=0x7f => (1u32, true),
            0x80..=0xff => (1, false),
            0x100..=0xffff => (2, false),
            _ => (4, false),
        };
        let data_at = if ascii {
            layout.unicode_ascii_data
        } else {
            layout.unicode_compact_data
        };
        let mut bytes = vec![0u8; data_at as usize];
        bytes[8..16].copy_from_slice(&STR_TYPE.to_le_bytes());
        bytes[0x10..0x18].copy_from_slice(&(chars.len() as u64).to_le_bytes());
        let state = (kind << 2) | (1 << 5) | (u32::from(ascii) << 6);
        bytes[0x20..0x24].copy_from_slice(&state.to_le_bytes());
        for c in chars {
            bytes.extend_from_slice(&c.to_le_bytes()[..kind as usize]);
        }
        memory.insert(addr, bytes);
    }

    #[test]
    fn reads_strings_of_every_kind_in_every_layout() {
        let mut layouts: Vec<Layout> = (8..=12)
            .map(|minor| Layout::from_tables(PythonVersion::new(3, minor, 0)).unwrap())
            .collect();
        // 3.13+ layouts take the 3.12 string offsets from the debug offsets.
        let mut modern = layouts[4].clone();
        modern.version = PythonVersion::new(3, 15, 0);
        layouts.push(modern);
        for layout in layouts {
            let mut memory = memory_with_str_type(&layout);
            let samples = ["abc", "café", "λx", "😀y", ""];
            for (i, text) in samples.iter().enumerate() {
                write_compact(&mut memory, &layout, 0x1000 * (i as u64 + 1), text);
            }
            let version = layout.version;
            let mut reader = PythonReader::new(&memory, layout);
            for (i, text) in samples.iter().enumerate() {
                let read = reader.read_str(0x1000 * (i as u64 + 1));
                assert_eq!(read.as_deref(), Ok(*text), "{version}: {text}");
            }
        }
    }

    #[test]
    fn a_legacy_string_is_read_through_its_data_pointer() {
        let layout = Layout::from_tables(PythonVersion::new(3, 10, 0)).unwrap();
        let mut memory = memory_with_str_type(&layout);
        let mut header = vec![0u8; 0x60];
        header[8..16].copy_from_slice(&STR_TYPE.to_le_bytes());
        header[0x10..0x18].copy_from_slice(&2u64.to_le_bytes());
        // Kind 2, not compact, not ASCII, ready.
        header[0x20..0x24].copy_from_slice(&((2u32 << 2) | (1 << 7)).to_le_bytes());
        let data_pointer = layout.unicode_compact_data as usize;
        header[data_pointer..data_pointer + 8].copy_from_slice(&0x5000u64.to_le_bytes());
        memory.insert(0x4000, header);
        memory.insert(0x5000, vec![0xbb, 0x03, 0xbc, 0x03]);
        let mut reader = PythonReader::new(&memory, layout);
        assert_eq!(reader.read_str(0x4000).unwrap(), "λμ");
    }

    #[test]
    fn garbage_object_pointers_are_errors_not_overflows() {
        let layout = Layout::from_tables(PythonVersion::new(3, 12, 0)).unwrap();
        let memory = memory_with_str_type(&layout);
        let mut reader = PythonReader::new(&memory, layout);
        for garbage in [u64::MAX - 3, !7u64, 1 << 47, 0x1001] {
            assert!(reader.read_value(garbage).is_err(), "{garbage:#x}");
            assert!(reader.instance_attr(garbage, "x").is_err(), "{garbage:#x}");
        }
    }

    #[test]
    fn a_non_string_is_not_read_as_one() {
        let layout = Layout::from_tables(PythonVersion::new(3, 11, 0)).unwrap();
        let mut memory = memory_with_str_type(&layout);
        memory.write_u64(STR_TYPE + layout.type_flags, 0);
        write_compact(&mut memory, &layout, 0x1000, "abc");
        let mut reader = PythonReader::new(&memory, layout);
        assert_eq!(
            reader.read_str(0x1000),
            Err(WalkError::invalid("str object", 0x1000))
        );
    }

    #[test]
    fn decodes_every_string_kind() {
        assert_eq!(decode_string_data(1, b"caf\xe9").unwrap(), "café");
        assert_eq!(decode_string_data(2, &[0xbb, 0x03, b'x', 0]).unwrap(), "λx");
        assert_eq!(
            decode_string_data(4, &[0x00, 0xf6, 0x01, 0x00, b'y', 0, 0, 0]).unwrap(),
            "😀y"
        );
        // A lone surrogate is legal in Python but not in Rust.
        assert_eq!(decode_string_data(2, &[0x00, 0xd8]).unwrap(), "\u{fffd}");
        assert_eq!(decode_string_data(3, b"abc"), None);
    }

    #[test]
    fn containers_and_numpy_scalars_read_like_python() {
        let container = |type_name: &str, len: u64, items: Vec<Value>| Value::Container {
            type_name: type_name.into(),
            len,
            items: Some(items),
        };
        let text = |s: &str| Value::Str {
            head: s.into(),
            len: s.len() as u64,
        };
        assert_eq!(
            container("list", 2, vec![Value::Int(-1234), Value::Int(5678)]).to_string(),
            "[-1234, 5678]"
        );
        assert_eq!(
            container("tuple", 3, vec![text("a"), text("b"), text("c")]).to_string(),
            "('a', 'b', 'c')"
        );
        assert_eq!(
            container("tuple", 1, vec![Value::None]).to_string(),
            "(None,)"
        );
        let inner = container(
            "tuple",
            3,
            vec![Value::Int(1), Value::Int(2), Value::Int(3)],
        );
        assert_eq!(
            container(
                "dict",
                2,
                vec![text("a"), Value::Bool(false), text("b"), inner]
            )
            .to_string(),
            "{'a': False, 'b': (1, 2, 3)}"
        );
        assert_eq!(container("set", 0, vec![]).to_string(), "set()");
        assert_eq!(
            container("frozenset", 1, vec![Value::Int(7)]).to_string(),
            "frozenset({7})"
        );
        assert_eq!(
            container("list", 1000, vec![Value::Int(0), Value::Int(1)]).to_string(),
            "[0, 1, ... (1000 items)]"
        );
        assert_eq!(container("dict", 0, vec![]).to_string(), "{}");
        let scalar = Value::NumpyScalar {
            type_name: "numpy.int8".into(),
            value: Box::new(Value::Int(-5)),
        };
        assert_eq!(scalar.to_string(), "np.int8(-5)");
        assert_eq!(scalar.type_name().as_deref(), Some("numpy.int8"));
    }

    #[test]
    fn numpy_scalar_kinds_come_from_the_type_name() {
        assert_eq!(numpy_scalar_kind("numpy.int8"), Some(NumpyKind::Int(8)));
        assert_eq!(numpy_scalar_kind("numpy.uint64"), Some(NumpyKind::UInt(64)));
        assert_eq!(
            numpy_scalar_kind("numpy.float32"),
            Some(NumpyKind::Float(32))
        );
        assert_eq!(numpy_scalar_kind("numpy.bool_"), Some(NumpyKind::Bool));
        assert_eq!(numpy_scalar_kind("numpy.bool"), Some(NumpyKind::Bool));
        assert_eq!(numpy_scalar_kind("numpy.complex128"), None);
        assert_eq!(numpy_scalar_kind("numpy.int128"), None);
        assert_eq!(numpy_scalar_kind("numpy.ndarray"), None);
        assert_eq!(numpy_scalar_kind("int8"), None);
        assert_eq!(half_to_f64(0x3c00), 1.0);
        assert_eq!(half_to_f64(0xc000), -2.0);
        assert_eq!(half_to_f64(0x3555), 0.333251953125);
        assert!(half_to_f64(0x7c00).is_infinite());
    }

    #[test]
    fn reprs_are_short_and_python_like() {
        let short = Value::Str {
            head: "it's".into(),
            len: 4,
        };
        assert_eq!(short.to_string(), r"'it\'s'");
        assert_eq!(Value::Float(1.5).to_string(), "1.5");
        assert_eq!(Value::Float(2.0).to_string(), "2.0");
        assert_eq!(Value::Float(1e20).to_string(), "1e+20");
        assert_eq!(Value::Float(1.5e-7).to_string(), "1.5e-07");
        assert_eq!(Value::Int(-42).to_string(), "-42");
        assert_eq!(Value::Bool(true).to_string(), "True");
        assert_eq!(
            Value::Bytes {
                head: b"a\x00'".to_vec(),
                len: 3
            }
            .to_string(),
            r"b'a\x00\''"
        );
        assert_eq!(
            Value::Container {
                type_name: "dict".into(),
                len: 3,
                items: None,
            }
            .to_string(),
            "<dict of 3>"
        );
        let long = Value::Str {
            head: "x".repeat(64),
            len: 100,
        }
        .to_string();
        assert_eq!(long, format!("'{}'... (100 chars)", "x".repeat(64)));
    }
}
