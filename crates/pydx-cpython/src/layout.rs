//! One version-neutral description of the CPython structures pydx reads.
//!
//! Every read of interpreter state is driven by a [`Layout`]. For 3.8–3.12 it
//! comes from the tables in this file (checked against each version's
//! internal headers with `offsetof`); for 3.13 and later it is filled from the
//! target's own `_Py_DebugOffsets`, and only what that block does not
//! describe (dictionary internals, tagging, owner numbers) comes from here.

use crate::debug_offsets::DebugOffsets;
use crate::version::PythonVersion;

/// How a thread state leads to its innermost frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEntry {
    /// A pointer to the frame in the thread state (`frame`, `current_frame`).
    Direct(u64),
    /// 3.11/3.12: `tstate->cframe` points to a `_PyCFrame` whose
    /// `current_frame` field points to the frame.
    ViaCFrame {
        /// Offset of `cframe` in the thread state.
        cframe: u64,
        /// Offset of `current_frame` in `_PyCFrame`.
        current_frame: u64,
    },
}

/// How a frame records the instruction it is executing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionPointer {
    /// 3.8/3.9: `f_lasti`, an `int` byte offset into `co_code`.
    LastiBytes,
    /// 3.10: `f_lasti`, an `int` index of 2-byte code units.
    LastiUnits,
    /// 3.11/3.12: `prev_instr`, a pointer to the last started code unit.
    PrevInstr,
    /// 3.13+: `instr_ptr`, a pointer to the code unit being executed.
    InstrPtr,
}

/// How a heap frame (≤3.10) says that it is being executed, which every
/// frame on a thread's chain is; a frame that returned and waits on a free
/// list for reuse is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRunning {
    /// 3.8/3.9: `f_executing`, a `char` that is 1 while the frame runs.
    ExecutingFlag(u64),
    /// 3.10: `f_state`, a `signed char`: `FRAME_EXECUTING` (0), or
    /// `FRAME_UNWINDING` (2) while an exception passes through it.
    State(u64),
}

impl FrameRunning {
    /// Whether the frame whose first bytes are `frame` is running; `None`
    /// when `frame` is too short to tell.
    pub fn is_running(self, frame: &[u8]) -> Option<bool> {
        match self {
            FrameRunning::ExecutingFlag(offset) => {
                frame.get(offset as usize).map(|&flag| flag == 1)
            }
            FrameRunning::State(offset) => frame
                .get(offset as usize)
                .map(|&state| matches!(state as i8, 0 | 2)),
        }
    }
}

/// The line number table format of code objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTableFormat {
    /// 3.8/3.9 `co_lnotab`.
    Lnotab,
    /// 3.10 `co_linetable`.
    LineTable310,
    /// 3.11+ location table.
    Locations,
}

/// How instances keep their attributes when the type manages their dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedDict {
    /// ≤3.10: only `tp_dictoffset`.
    None,
    /// 3.11: values pointer at `obj - 32`, dict pointer at `obj - 24`.
    Split311,
    /// 3.12: a tagged dict-or-values word at `obj - 24` (low bit set = values).
    Tagged312,
    /// 3.13+: dict pointer at `obj - 24`, inline values after the object
    /// when the type has `Py_TPFLAGS_INLINE_VALUES`.
    Inline313,
}

/// The layout of `PyDictKeysObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictKeysFormat {
    /// ≤3.10: `dk_size` (ssize) at 8, `dk_nentries` at 0x20, indices at 0x28,
    /// 24-byte entries.
    Sized,
    /// 3.11+: `dk_log2_size` at 8, `dk_log2_index_bytes` at 9, `dk_kind` at
    /// 10, `dk_nentries` at 0x18, indices at 0x20; 16-byte entries when the
    /// keys are all strings, 24-byte entries otherwise.
    Log2,
}

/// How an integer records its size and sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongFormat {
    /// ≤3.11: `ob_size` holds the signed digit count.
    SignedSize,
    /// 3.12+: `lv_tag` holds the digit count shifted by 3 and the sign in
    /// the low two bits.
    Tagged,
}

/// Offsets and formats of every CPython structure pydx reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The version this layout describes.
    pub version: PythonVersion,

    /// `_PyRuntime.interpreters.head`.
    pub runtime_interpreters_head: u64,
    /// `_PyRuntime._finalizing`.
    pub runtime_finalizing: u64,
    /// ≤3.11: offsets of the GIL's `locked` and `last_holder` in `_PyRuntime`.
    pub runtime_gil: Option<(u64, u64)>,

    /// `PyInterpreterState.next`.
    pub interp_next: u64,
    /// `PyInterpreterState.threads.head` (`tstate_head` before 3.11).
    pub interp_threads_head: u64,
    /// `PyInterpreterState.modules` / `imports.modules` (`sys.modules`).
    pub interp_modules: u64,
    /// 3.12+: `PyInterpreterState.ceval.gil`, a pointer to the GIL in use.
    pub interp_ceval_gil: Option<u64>,
    /// 3.12+: offsets of `locked` and `last_holder` in `_gil_runtime_state`.
    pub gil_locked_holder: (u64, u64),

    /// Bytes of `PyThreadState` to read in one go.
    pub tstate_size: u64,
    /// `PyThreadState.next`.
    pub tstate_next: u64,
    /// `PyThreadState.thread_id` (the `pthread_t`).
    pub tstate_thread_id: u64,
    /// 3.11+: `PyThreadState.native_thread_id` (the TID).
    pub tstate_native_thread_id: Option<u64>,
    /// Up to 3.10: `PyThreadState.id`, unique per thread state of an
    /// interpreter, which tells a new thread from an old one whose thread
    /// state memory and `pthread_t` it reuses.
    pub tstate_unique_id: Option<u64>,
    /// How to reach the innermost frame.
    pub tstate_frame: FrameEntry,
    /// 3.11+: `PyThreadState.datastack_chunk`.
    pub tstate_datastack_chunk: Option<u64>,

    /// Bytes of a frame to read: `PyFrameObject` up to `f_localsplus`
    /// (≤3.10), or `_PyInterpreterFrame` (3.11+).
    pub frame_size: u64,
    /// `f_back` (≤3.10) or `previous` (3.11+).
    pub frame_previous: u64,
    /// `f_code` / `f_executable`.
    pub frame_code: u64,
    /// `f_lasti` / `prev_instr` / `instr_ptr`.
    pub frame_instr: u64,
    /// What [`Layout::frame_instr`] holds.
    pub instruction_pointer: InstructionPointer,
    /// ≤3.10: where a frame says it is being executed.
    pub frame_running: Option<FrameRunning>,
    /// 3.11+: `owner` (a `char`).
    pub frame_owner: Option<u64>,
    /// 3.11: `is_entry`; frames above an entry frame belong to an outer
    /// evaluation loop.
    pub frame_is_entry: Option<u64>,
    /// Owners at or above this value are not Python frames (3.12+ shims,
    /// 3.14+ interpreter-owned entry frames).
    pub frame_owner_first_skipped: u8,
    /// `f_localsplus` / `localsplus`.
    pub frame_localsplus: u64,
    /// 3.14+: `f_executable` and locals are tagged `_PyStackRef`s whose low
    /// two bits must be masked off.
    pub stack_refs_tagged: bool,

    /// Bytes of `PyCodeObject` to read (up to the bytecode).
    pub code_size: u64,
    /// `co_filename`.
    pub code_filename: u64,
    /// `co_name`.
    pub code_name: u64,
    /// 3.11+: `co_qualname`.
    pub code_qualname: Option<u64>,
    /// `co_lnotab` / `co_linetable`.
    pub code_linetable: u64,
    /// Format of that table.
    pub linetable_format: LineTableFormat,
    /// `co_firstlineno` (an `int`).
    pub code_firstlineno: u64,
    /// `co_argcount` (an `int`); `co_kwonlyargcount` follows 8 bytes later.
    pub code_argcount: u64,
    /// `co_flags` (an `int`).
    pub code_flags: u64,
    /// 3.11+: `co_code_adaptive`, where the bytecode starts.
    pub code_code_adaptive: Option<u64>,
    /// ≤3.10: `co_code`, the bytecode as a bytes object.
    pub code_code: Option<u64>,
    /// `co_varnames` (≤3.10) or `co_localsplusnames` (3.11+): names of locals.
    pub code_varnames: u64,
    /// 3.11+: `co_localspluskinds`.
    pub code_localspluskinds: Option<u64>,
    /// ≤3.10: `co_nlocals` (an `int`).
    pub code_nlocals: Option<u64>,
    /// ≤3.10: `co_cellvars` and `co_freevars`, named after the locals.
    pub code_cell_free_vars: Option<(u64, u64)>,

    /// `PyTypeObject.tp_flags`.
    pub type_flags: u64,
    /// `PyTypeObject.tp_basicsize`.
    pub type_basicsize: u64,
    /// `PyTypeObject.tp_dictoffset`.
    pub type_dictoffset: u64,
    /// `PyHeapTypeObject.ht_cached_keys`.
    pub heap_type_cached_keys: u64,
    /// Where compact ASCII string data starts.
    pub unicode_ascii_data: u64,
    /// Where compact non-ASCII string data starts.
    pub unicode_compact_data: u64,
    /// `PyTupleObject.ob_item`.
    pub tuple_items: u64,
    /// `PyFunctionObject.func_closure`: the tuple of cells a nested
    /// function reads its free variables from.
    pub function_closure: u64,
    /// How integers store size and sign.
    pub long_format: LongFormat,
    /// `PyDictObject.ma_used`, `ma_keys`, `ma_values`.
    pub dict_used_keys_values: (u64, u64, u64),
    /// Layout of `PyDictKeysObject`.
    pub dict_keys_format: DictKeysFormat,
    /// Offset of the value array inside `PyDictValues`.
    pub dict_values_array: u64,
    /// How instance attributes are stored.
    pub managed_dict: ManagedDict,
    /// `PySetObject` fields `used`, `mask`, `table`.
    pub set_used_mask_table: (u64, u64, u64),
    /// Opcodes that call a callable (all their specialised forms too): a
    /// frame stopped at one of them, with no frame above it, is inside a
    /// call to native code. Empty when the version's opcodes are unknown.
    pub call_opcodes: &'static [u8],
}

/// Call opcodes of 3.8-3.10: CALL_FUNCTION, _KW, _EX and CALL_METHOD.
const CALL_OPCODES_3_8: &[u8] = &[131, 141, 142, 161];
/// Call opcodes of 3.11: CALL, PRECALL, CALL_FUNCTION_EX and their specialisations.
const CALL_OPCODES_3_11: &[u8] = &[
    142, 166, 171, 22, 23, 24, 64, 65, 66, 67, 72, 73, 76, 77, 78, 79, 80, 81, 113, 121, 127, 141,
    143,
];
/// Call opcodes of 3.12.
const CALL_OPCODES_3_12: &[u8] = &[
    142, 171, 173, 174, 23, 24, 28, 29, 34, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 56,
];
/// Call opcodes of 3.13 (CALL 53 to CALL_KW 57, specialisations 162-181).
const CALL_OPCODES_3_13: &[u8] = &[
    53, 54, 55, 56, 57, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 173, 174, 175, 176,
    177, 178, 179, 180, 181,
];
/// Call opcodes of 3.14 (CALL_FUNCTION_EX 4, CALL 52 to CALL_KW 55, specialisations 143-165).
const CALL_OPCODES_3_14: &[u8] = &[
    4, 52, 53, 54, 55, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157,
    158, 159, 160, 161, 162, 163, 164, 165,
];
/// Call opcodes of 3.15 (CALL_FUNCTION_EX 4, CALL 50 to CALL_KW 53, specialisations 144-168).
const CALL_OPCODES_3_15: &[u8] = &[
    4, 50, 51, 52, 53, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158,
    159, 160, 161, 162, 163, 164, 165, 166, 167, 168,
];

/// The call opcodes of a minor version (empty if unknown).
fn call_opcodes(version: PythonVersion) -> &'static [u8] {
    match version.minor_version() {
        (3, 8..=10) => CALL_OPCODES_3_8,
        (3, 11) => CALL_OPCODES_3_11,
        (3, 12) => CALL_OPCODES_3_12,
        (3, 13) => CALL_OPCODES_3_13,
        (3, 14) => CALL_OPCODES_3_14,
        (3, 15) => CALL_OPCODES_3_15,
        _ => &[],
    }
}

impl Layout {
    /// The built-in layout for a minor version, or `None` if pydx has no
    /// table for it (3.13+ needs the target's debug offsets).
    pub fn from_tables(version: PythonVersion) -> Option<Self> {
        let mut layout = Self::base_3_8(version);
        match version.minor_version() {
            (3, 8) => {}
            (3, 9) => layout.apply_3_9(),
            (3, 10) => {
                layout.apply_3_9();
                layout.apply_3_10();
            }
            (3, 11) => layout.apply_3_11(),
            (3, 12) => {
                layout.apply_3_11();
                layout.apply_3_12();
            }
            _ => return None,
        }
        Some(layout)
    }

    /// The layout of a 3.13+ target, from its `_Py_DebugOffsets` plus what
    /// those do not cover. Fails if a field the reader needs is missing.
    pub fn from_debug_offsets(offsets: &DebugOffsets) -> Result<Self, String> {
        let get = |name: &str| {
            offsets
                .get(name)
                .ok_or_else(|| format!("no {name} in _Py_DebugOffsets"))
        };
        let version = offsets.version;
        let mut layout = Self::base_3_8(version);
        layout.apply_3_11();
        layout.apply_3_12();

        layout.runtime_interpreters_head = get("runtime_state.interpreters_head")?;
        layout.runtime_finalizing = get("runtime_state.finalizing")?;
        layout.interp_next = get("interpreter_state.next")?;
        layout.interp_threads_head = get("interpreter_state.threads_head")?;
        layout.interp_modules = get("interpreter_state.imports_modules")?;
        layout.interp_ceval_gil = Some(get("interpreter_state.ceval_gil")?);
        let gil_base = get("interpreter_state.gil_runtime_state")?;
        let locked = get("interpreter_state.gil_runtime_state_locked")?;
        let holder = get("interpreter_state.gil_runtime_state_holder")?;
        layout.gil_locked_holder = (
            locked
                .checked_sub(gil_base)
                .ok_or("GIL offsets out of order")?,
            holder
                .checked_sub(gil_base)
                .ok_or("GIL offsets out of order")?,
        );

        layout.tstate_size = get("thread_state.size")?;
        layout.tstate_next = get("thread_state.next")?;
        layout.tstate_thread_id = get("thread_state.thread_id")?;
        layout.tstate_native_thread_id = Some(get("thread_state.native_thread_id")?);
        layout.tstate_frame = FrameEntry::Direct(get("thread_state.current_frame")?);
        layout.tstate_datastack_chunk = Some(get("thread_state.datastack_chunk")?);

        layout.frame_size = get("interpreter_frame.size")?;
        layout.frame_previous = get("interpreter_frame.previous")?;
        layout.frame_code = get("interpreter_frame.executable")?;
        layout.frame_instr = get("interpreter_frame.instr_ptr")?;
        layout.instruction_pointer = InstructionPointer::InstrPtr;
        layout.frame_owner = Some(get("interpreter_frame.owner")?);
        layout.frame_localsplus = get("interpreter_frame.localsplus")?;
        layout.stack_refs_tagged = version.at_least(3, 14);

        layout.code_size = get("code_object.size")?;
        layout.code_filename = get("code_object.filename")?;
        layout.code_name = get("code_object.name")?;
        layout.code_qualname = Some(get("code_object.qualname")?);
        layout.code_linetable = get("code_object.linetable")?;
        layout.code_firstlineno = get("code_object.firstlineno")?;
        layout.code_argcount = get("code_object.argcount")?;
        layout.code_code_adaptive = Some(get("code_object.co_code_adaptive")?);
        layout.code_varnames = get("code_object.localsplusnames")?;
        layout.code_localspluskinds = Some(get("code_object.localspluskinds")?);

        layout.type_flags = get("type_object.tp_flags")?;
        if let Some(basicsize) = offsets.get("type_object.tp_basicsize") {
            layout.type_basicsize = basicsize;
        }
        if let Some(dictoffset) = offsets.get("type_object.tp_dictoffset") {
            layout.type_dictoffset = dictoffset;
        }
        if let Some(cached_keys) = offsets.get("heap_type_object.ht_cached_keys") {
            layout.heap_type_cached_keys = cached_keys;
        }
        let ascii_size = get("unicode_object.asciiobject_size")?;
        layout.unicode_ascii_data = ascii_size;
        // The compact header adds `utf8_length` and `utf8` to the ASCII one.
        layout.unicode_compact_data = offsets
            .get("unicode_object.compactunicodeobject_size")
            .unwrap_or(ascii_size + 16);
        layout.tuple_items = get("tuple_object.ob_item")?;
        layout.dict_used_keys_values.1 = get("dict_object.ma_keys")?;
        layout.dict_used_keys_values.2 = get("dict_object.ma_values")?;
        if let (Some(used), Some(mask), Some(table)) = (
            offsets.get("set_object.used"),
            offsets.get("set_object.mask"),
            offsets.get("set_object.table"),
        ) {
            layout.set_used_mask_table = (used, mask, table);
        }

        // Not described by the debug offsets; stable from 3.13 to 3.15.
        layout.dict_values_array = 8;
        layout.managed_dict = ManagedDict::Inline313;
        layout.frame_owner_first_skipped = 3;
        Ok(layout)
    }

    /// 3.8, the base every later table modifies.
    fn base_3_8(version: PythonVersion) -> Self {
        Self {
            version,
            runtime_interpreters_head: 0x20,
            runtime_finalizing: 0x10,
            runtime_gil: Some((0x490, 0x488)),
            interp_next: 0,
            interp_threads_head: 0x8,
            interp_modules: 0x38,
            interp_ceval_gil: None,
            gil_locked_holder: (0x10, 0x8),
            tstate_size: 0x108,
            tstate_next: 0x8,
            tstate_thread_id: 0xb0,
            tstate_native_thread_id: None,
            tstate_unique_id: Some(0x100),
            tstate_frame: FrameEntry::Direct(0x18),
            tstate_datastack_chunk: None,
            frame_size: 0x78,
            frame_previous: 0x18,
            frame_code: 0x20,
            frame_instr: 0x68,
            instruction_pointer: InstructionPointer::LastiBytes,
            frame_running: Some(FrameRunning::ExecutingFlag(0x74)),
            frame_owner: None,
            frame_is_entry: None,
            frame_owner_first_skipped: u8::MAX,
            frame_localsplus: 0x168,
            stack_refs_tagged: false,
            code_size: 0xb0,
            code_filename: 0x68,
            code_name: 0x70,
            code_qualname: None,
            code_linetable: 0x78,
            linetable_format: LineTableFormat::Lnotab,
            code_firstlineno: 0x28,
            code_argcount: 0x10,
            code_flags: 0x24,
            code_code_adaptive: None,
            code_code: Some(0x30),
            code_varnames: 0x48,
            code_localspluskinds: None,
            code_nlocals: Some(0x1c),
            code_cell_free_vars: Some((0x58, 0x50)),
            type_flags: 0xa8,
            type_basicsize: 0x20,
            type_dictoffset: 0x120,
            heap_type_cached_keys: 0x368,
            unicode_ascii_data: 0x30,
            unicode_compact_data: 0x48,
            tuple_items: 0x18,
            // 3.10 put the fields functions share with frames first.
            function_closure: if version.at_least(3, 10) { 0x48 } else { 0x30 },
            long_format: LongFormat::SignedSize,
            dict_used_keys_values: (0x10, 0x20, 0x28),
            dict_keys_format: DictKeysFormat::Sized,
            dict_values_array: 0,
            managed_dict: ManagedDict::None,
            set_used_mask_table: (0x18, 0x20, 0x28),
            call_opcodes: call_opcodes(version),
        }
    }

    fn apply_3_9(&mut self) {
        self.runtime_gil = Some((0x170, 0x168));
        self.interp_modules = 0x358;
        self.heap_type_cached_keys = 0x360;
    }

    fn apply_3_10(&mut self) {
        self.frame_size = 0x70;
        self.frame_instr = 0x60;
        self.frame_running = Some(FrameRunning::State(0x6c));
        self.frame_localsplus = 0x160;
        self.instruction_pointer = InstructionPointer::LastiUnits;
        self.linetable_format = LineTableFormat::LineTable310;
        self.heap_type_cached_keys = 0x368;
    }

    fn apply_3_11(&mut self) {
        self.runtime_interpreters_head = 0x28;
        self.runtime_finalizing = 0x18;
        self.runtime_gil = Some((0x178, 0x170));
        self.interp_threads_head = 0x10;
        self.interp_modules = 0x378;
        self.heap_type_cached_keys = 0x368;
        self.tstate_size = 0x168;
        self.tstate_thread_id = 0x98;
        self.tstate_native_thread_id = Some(0xa0);
        self.tstate_unique_id = None;
        self.tstate_frame = FrameEntry::ViaCFrame {
            cframe: 0x38,
            current_frame: 0x8,
        };
        self.tstate_datastack_chunk = Some(0x128);
        self.frame_size = 0x50;
        self.frame_previous = 0x30;
        self.frame_code = 0x20;
        self.frame_instr = 0x38;
        self.instruction_pointer = InstructionPointer::PrevInstr;
        self.frame_owner = Some(0x45);
        self.frame_running = None;
        self.frame_is_entry = Some(0x44);
        self.frame_localsplus = 0x48;
        self.code_size = 0xb8;
        self.code_filename = 0x70;
        self.code_name = 0x78;
        self.code_qualname = Some(0x80);
        self.code_linetable = 0x88;
        self.linetable_format = LineTableFormat::Locations;
        self.code_firstlineno = 0x48;
        self.code_argcount = 0x38;
        self.code_flags = 0x30;
        self.code_code_adaptive = Some(0xb8);
        self.code_code = None;
        self.code_varnames = 0x60;
        self.code_localspluskinds = Some(0x68);
        self.code_nlocals = None;
        self.code_cell_free_vars = None;
        self.dict_keys_format = DictKeysFormat::Log2;
        self.managed_dict = ManagedDict::Split311;
    }

    fn apply_3_12(&mut self) {
        self.runtime_gil = None;
        self.interp_threads_head = 0x48;
        self.interp_modules = 0x3b0;
        self.interp_ceval_gil = Some(0x180);
        self.heap_type_cached_keys = 0x370;
        self.tstate_size = 0x120;
        self.tstate_thread_id = 0x88;
        self.tstate_native_thread_id = Some(0x90);
        self.tstate_frame = FrameEntry::ViaCFrame {
            cframe: 0x38,
            current_frame: 0,
        };
        self.tstate_datastack_chunk = Some(0xe8);
        self.frame_previous = 0x8;
        self.frame_code = 0;
        self.frame_owner = Some(0x46);
        self.frame_is_entry = None;
        self.frame_owner_first_skipped = 3;
        self.code_size = 0xc0;
        self.code_firstlineno = 0x44;
        self.code_argcount = 0x34;
        self.code_code_adaptive = Some(0xc0);
        self.unicode_ascii_data = 0x28;
        self.unicode_compact_data = 0x38;
        self.long_format = LongFormat::Tagged;
        self.managed_dict = ManagedDict::Tagged312;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug_offsets::tests::block;

    #[test]
    fn tables_exist_for_3_8_to_3_12_only() {
        for minor in 8..=12 {
            assert!(Layout::from_tables(PythonVersion::new(3, minor, 0)).is_some());
        }
        assert!(Layout::from_tables(PythonVersion::new(3, 13, 0)).is_none());
        assert!(Layout::from_tables(PythonVersion::new(3, 7, 0)).is_none());
    }

    #[test]
    fn debug_offsets_drive_the_3_13_layout() {
        let fields = crate::debug_offsets::tests::fields_3_13();
        let bytes = block(
            0x030d00f0,
            fields,
            &[
                ("thread_state.current_frame", 0x48),
                ("interpreter_state.gil_runtime_state", 0x1e48),
                ("interpreter_state.gil_runtime_state_locked", 0x1e58),
                ("interpreter_state.gil_runtime_state_holder", 0x1e50),
                ("unicode_object.asciiobject_size", 0x28),
            ],
        );
        let offsets = DebugOffsets::parse(&bytes, None).unwrap();
        let layout = Layout::from_debug_offsets(&offsets).unwrap();
        assert_eq!(layout.tstate_frame, FrameEntry::Direct(0x48));
        assert_eq!(layout.gil_locked_holder, (0x10, 0x8));
        assert_eq!(layout.unicode_compact_data, 0x38);
        assert!(!layout.stack_refs_tagged);
        assert_eq!(layout.instruction_pointer, InstructionPointer::InstrPtr);
    }
}
