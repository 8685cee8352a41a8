//! `_Py_DebugOffsets`: the layout description CPython 3.13+ keeps at the start
//! of `_PyRuntime` for out-of-process readers.
//!
//! The struct is a cookie, the version, a free-threaded flag, and then groups
//! of `u64` offsets. Its own shape changes between minor versions, so the
//! field list of each known shape is kept here as data; a minor version newer
//! than the newest known one is read with the newest shape and then checked.

use crate::version::PythonVersion;

/// The eight bytes `_Py_DebugOffsets` starts with.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Fields of the 3.13 struct after the cookie, in order.
const FIELDS_3_13: &[&str] = &[
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size",
    "gc.collecting",
];

/// Fields of the 3.14 struct after the cookie, in order.
const FIELDS_3_14: &[&str] = &[
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.threads_main",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "interpreter_state.code_object_generation",
    "interpreter_state.tlbc_generation",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "interpreter_frame.stackpointer",
    "interpreter_frame.tlbc_index",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "code_object.co_tlbc",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "set_object.size",
    "set_object.used",
    "set_object.table",
    "set_object.mask",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size",
    "gc.collecting",
    "gen_object.size",
    "gen_object.gi_name",
    "gen_object.gi_iframe",
    "gen_object.gi_frame_state",
    "llist_node.next",
    "llist_node.prev",
    "debugger_support.eval_breaker",
    "debugger_support.remote_debugger_support",
    "debugger_support.remote_debugging_enabled",
    "debugger_support.debugger_pending_call",
    "debugger_support.debugger_script_path",
    "debugger_support.debugger_script_path_size",
];

/// Fields of the 3.15 struct after the cookie, in order.
const FIELDS_3_15: &[&str] = &[
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.threads_main",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "interpreter_state.code_object_generation",
    "interpreter_state.tlbc_generation",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.base_frame",
    "thread_state.last_profiled_frame",
    "thread_state.last_profiled_frame_seq",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "thread_state.holds_gil",
    "thread_state.gil_requested",
    "thread_state.current_exception",
    "thread_state.exc_state",
    "err_stackitem.exc_value",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "interpreter_frame.stackpointer",
    "interpreter_frame.tlbc_index",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "code_object.co_tlbc",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "type_object.tp_basicsize",
    "type_object.tp_dictoffset",
    "heap_type_object.size",
    "heap_type_object.ht_cached_keys",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "set_object.size",
    "set_object.used",
    "set_object.table",
    "set_object.mask",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "unicode_object.compactunicodeobject_size",
    "gc.size",
    "gc.collecting",
    "gc.frame",
    "gc.generation_stats_size",
    "gc.generation_stats",
    "gen_object.size",
    "gen_object.gi_name",
    "gen_object.gi_iframe",
    "gen_object.gi_frame_state",
    "llist_node.next",
    "llist_node.prev",
    "debugger_support.eval_breaker",
    "debugger_support.remote_debugger_support",
    "debugger_support.remote_debugging_enabled",
    "debugger_support.debugger_pending_call",
    "debugger_support.debugger_script_path",
    "debugger_support.debugger_script_path_size",
];

/// Number of bytes to read at `_PyRuntime` to cover every known shape.
pub const MAX_SIZE: usize = 8 + 8 * 128;

/// Why a `_Py_DebugOffsets` block could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebugOffsetsError {
    /// The block does not start with `xdebugpy`.
    #[error("no _Py_DebugOffsets cookie at _PyRuntime")]
    NoCookie,
    /// The version field is not a CPython 3 version.
    #[error("_Py_DebugOffsets holds an invalid version {0:#x}")]
    BadVersion(u64),
    /// The block is older than 3.13 (which cannot happen in a real process).
    #[error("_Py_DebugOffsets claims version {0}, which predates them")]
    TooOld(PythonVersion),
    /// The values fail the consistency checks, so the shape is not the one assumed.
    #[error("_Py_DebugOffsets of Python {version} do not match any layout pydx knows ({reason})")]
    UnknownShape {
        /// The version the block claims.
        version: PythonVersion,
        /// The first failed check.
        reason: String,
    },
}

/// A decoded `_Py_DebugOffsets` block: field name to value.
#[derive(Debug, Clone)]
pub struct DebugOffsets {
    /// The version the block describes.
    pub version: PythonVersion,
    /// Whether the target is a free-threaded (no-GIL) build.
    pub free_threaded: bool,
    /// Whether the shape was assumed (a minor version newer than pydx knows).
    pub shape_assumed: bool,
    values: Vec<(&'static str, u64)>,
}

impl DebugOffsets {
    /// Decodes the bytes at `_PyRuntime`. `runtime_size` is the size of the
    /// `_PyRuntime` symbol or section when known, used as a cross-check.
    pub fn parse(bytes: &[u8], runtime_size: Option<u64>) -> Result<Self, DebugOffsetsError> {
        if bytes.len() < 24 || &bytes[..8] != COOKIE {
            return Err(DebugOffsetsError::NoCookie);
        }
        let word = |i: usize| -> Option<u64> {
            let start = 8 + i * 8;
            bytes
                .get(start..start + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("eight bytes")))
        };
        let hex = word(0).unwrap_or(0);
        let version = PythonVersion::from_hex(hex).ok_or(DebugOffsetsError::BadVersion(hex))?;
        let (fields, shape_assumed) = match version.minor {
            0..=12 => return Err(DebugOffsetsError::TooOld(version)),
            13 => (FIELDS_3_13, false),
            14 => (FIELDS_3_14, false),
            15 => (FIELDS_3_15, false),
            _ => (FIELDS_3_15, true),
        };
        let values = fields
            .iter()
            .enumerate()
            .map(|(i, &name)| Some((name, word(i)?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| DebugOffsetsError::UnknownShape {
                version,
                reason: "block is truncated".into(),
            })?;
        let offsets = Self {
            version,
            free_threaded: word(1) == Some(1),
            shape_assumed,
            values,
        };
        offsets.check(runtime_size)?;
        Ok(offsets)
    }

    /// The value of field `name` (e.g. `"thread_state.current_frame"`).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }

    /// Facts that hold on every CPython build; a block that breaks one was
    /// read with the wrong shape.
    fn check(&self, runtime_size: Option<u64>) -> Result<(), DebugOffsetsError> {
        let ob_type = if self.free_threaded { 0x18 } else { 0x8 };
        let expectations: [(&str, Option<u64>); 6] = [
            ("pyobject.ob_type", Some(ob_type)),
            (
                "thread_state.next",
                self.get("thread_state.prev").map(|p| p + 8),
            ),
            ("type_object.tp_name", Some(ob_type + 0x10)),
            ("unicode_object.length", Some(ob_type + 0x8)),
            ("runtime_state.size", runtime_size),
            ("list_object.ob_size", Some(ob_type + 0x8)),
        ];
        for (name, expected) in expectations {
            let Some(expected) = expected else { continue };
            let actual = self.get(name);
            if actual != Some(expected) {
                return Err(DebugOffsetsError::UnknownShape {
                    version: self.version,
                    reason: format!("{name} is {actual:#x?}, expected {expected:#x}"),
                });
            }
        }
        // Every struct size must be plausible and every offset inside it.
        for (name, value) in &self.values {
            if let Some(group) = name.strip_suffix(".size") {
                if *value == 0 || *value > 1 << 24 {
                    return Err(DebugOffsetsError::UnknownShape {
                        version: self.version,
                        reason: format!("{group} has size {value:#x}"),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The 3.13 field list, for building test blocks elsewhere.
    pub(crate) fn fields_3_13() -> &'static [&'static str] {
        FIELDS_3_13
    }

    /// Builds a block of the given shape with plausible values.
    pub(crate) fn block(hex: u64, fields: &[&str], overrides: &[(&str, u64)]) -> Vec<u8> {
        let mut bytes = COOKIE.to_vec();
        for &name in fields {
            let value = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, v)| v)
                .unwrap_or(match name {
                    "version" => hex,
                    "free_threaded" => 0,
                    "pyobject.ob_type" => 8,
                    "thread_state.prev" => 0,
                    "thread_state.next" => 8,
                    "type_object.tp_name" => 0x18,
                    "unicode_object.length" => 0x10,
                    "list_object.ob_size" => 0x10,
                    n if n.ends_with(".size") => 0x100,
                    _ => 0x20,
                });
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn decodes_each_known_shape() {
        for (hex, fields) in [
            (0x030d00f0, FIELDS_3_13),
            (0x030e0af0, FIELDS_3_14),
            (0x030f02f0, FIELDS_3_15),
        ] {
            let bytes = block(hex, fields, &[("thread_state.current_frame", 0x48)]);
            let offsets = DebugOffsets::parse(&bytes, None).unwrap();
            assert_eq!(offsets.get("thread_state.current_frame"), Some(0x48));
            assert!(!offsets.shape_assumed);
            assert!(!offsets.free_threaded);
        }
    }

    #[test]
    fn a_newer_minor_version_is_read_with_the_newest_shape_but_flagged() {
        let bytes = block(0x031000a1, FIELDS_3_15, &[]);
        let offsets = DebugOffsets::parse(&bytes, None).unwrap();
        assert_eq!(offsets.version.to_string(), "3.16.0a1");
        assert!(offsets.shape_assumed);
    }

    #[test]
    fn a_shifted_block_fails_the_checks() {
        // A 3.14 block read as 3.13 puts every later field in the wrong place.
        let bytes = block(0x030d00f0, FIELDS_3_14, &[("version", 0x030d00f0)]);
        let err = DebugOffsets::parse(&bytes, None).unwrap_err();
        assert!(
            matches!(err, DebugOffsetsError::UnknownShape { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_runtime_size_cross_check_is_applied() {
        let bytes = block(0x030d00f0, FIELDS_3_13, &[("runtime_state.size", 0x452b8)]);
        assert!(DebugOffsets::parse(&bytes, Some(0x452b8)).is_ok());
        assert!(DebugOffsets::parse(&bytes, Some(0x1000)).is_err());
    }

    #[test]
    fn rejects_missing_cookie_and_bad_versions() {
        assert_eq!(
            DebugOffsets::parse(&[0; 64], None).unwrap_err(),
            DebugOffsetsError::NoCookie
        );
        let mut bytes = block(0x030d00f0, FIELDS_3_13, &[]);
        bytes[8..16].copy_from_slice(&0x0207_00f0u64.to_le_bytes());
        assert!(matches!(
            DebugOffsets::parse(&bytes, None).unwrap_err(),
            DebugOffsetsError::BadVersion(_)
        ));
        let truncated = &block(0x030d00f0, FIELDS_3_13, &[])[..100];
        assert!(DebugOffsets::parse(truncated, None).is_err());
    }
}
