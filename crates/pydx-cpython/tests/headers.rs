//! The built-in layout tables (3.8-3.12) against each version's own
//! headers: `headers/offsets.c`, compiled with `offsetof` and `sizeof`
//! against every test interpreter's include directory, prints what the
//! headers say, and each value must be the table's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pydx_cpython::{FrameEntry, FrameRunning, Layout, PythonVersion};
use pydx_testkit::{interpreters, Interpreter};

/// What the table of `layout` says, under the names `offsets.c` prints.
fn table_values(layout: &Layout) -> BTreeMap<&'static str, u64> {
    let mut values = BTreeMap::from([
        (
            "runtime_interpreters_head",
            layout.runtime_interpreters_head,
        ),
        ("runtime_finalizing", layout.runtime_finalizing),
        ("interp_next", layout.interp_next),
        ("interp_threads_head", layout.interp_threads_head),
        ("interp_modules", layout.interp_modules),
        ("tstate_next", layout.tstate_next),
        ("tstate_thread_id", layout.tstate_thread_id),
        ("frame_previous", layout.frame_previous),
        ("frame_code", layout.frame_code),
        ("frame_instr", layout.frame_instr),
        ("frame_localsplus", layout.frame_localsplus),
        ("code_filename", layout.code_filename),
        ("code_name", layout.code_name),
        ("code_linetable", layout.code_linetable),
        ("code_firstlineno", layout.code_firstlineno),
        ("code_argcount", layout.code_argcount),
        ("code_flags", layout.code_flags),
        ("code_varnames", layout.code_varnames),
        ("type_flags", layout.type_flags),
        ("type_basicsize", layout.type_basicsize),
        ("type_dictoffset", layout.type_dictoffset),
        ("heap_type_cached_keys", layout.heap_type_cached_keys),
        ("unicode_ascii_data", layout.unicode_ascii_data),
        ("unicode_compact_data", layout.unicode_compact_data),
        ("tuple_items", layout.tuple_items),
        ("function_closure", layout.function_closure),
        ("dict_used", layout.dict_used_keys_values.0),
        ("dict_keys", layout.dict_used_keys_values.1),
        ("dict_values", layout.dict_used_keys_values.2),
        ("set_used", layout.set_used_mask_table.0),
        ("set_mask", layout.set_used_mask_table.1),
        ("set_table", layout.set_used_mask_table.2),
    ]);
    let optional = [
        ("interp_ceval_gil", layout.interp_ceval_gil),
        ("tstate_native_thread_id", layout.tstate_native_thread_id),
        ("tstate_unique_id", layout.tstate_unique_id),
        ("tstate_datastack_chunk", layout.tstate_datastack_chunk),
        ("frame_owner", layout.frame_owner),
        ("frame_is_entry", layout.frame_is_entry),
        ("code_qualname", layout.code_qualname),
        ("code_code_adaptive", layout.code_code_adaptive),
        ("code_code", layout.code_code),
        ("code_localspluskinds", layout.code_localspluskinds),
        ("code_nlocals", layout.code_nlocals),
        ("runtime_gil_locked", layout.runtime_gil.map(|gil| gil.0)),
        ("runtime_gil_holder", layout.runtime_gil.map(|gil| gil.1)),
        ("code_cellvars", layout.code_cell_free_vars.map(|v| v.0)),
        ("code_freevars", layout.code_cell_free_vars.map(|v| v.1)),
    ];
    values.extend(
        optional
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?))),
    );
    // The GIL's own fields matter once it moved into the interpreter.
    if layout.interp_ceval_gil.is_some() {
        values.insert("gil_locked", layout.gil_locked_holder.0);
        values.insert("gil_holder", layout.gil_locked_holder.1);
    }
    match layout.tstate_frame {
        FrameEntry::Direct(offset) => {
            values.insert("tstate_frame", offset);
        }
        FrameEntry::ViaCFrame {
            cframe,
            current_frame,
        } => {
            values.insert("tstate_cframe", cframe);
            values.insert("cframe_current_frame", current_frame);
        }
    }
    match layout.frame_running {
        Some(FrameRunning::ExecutingFlag(offset)) => {
            values.insert("frame_executing", offset);
        }
        Some(FrameRunning::State(offset)) => {
            values.insert("frame_state", offset);
        }
        None => {}
    }
    values
}

/// What `python`'s headers say, as `offsets.c` prints it.
fn header_values(python: &Interpreter, build: &Path) -> BTreeMap<String, u64> {
    let include = Command::new(&python.python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['include'])",
        ])
        .output()
        .expect("run the interpreter");
    let include = String::from_utf8(include.stdout).unwrap();
    let program = build.join(&python.label);
    let compiled = Command::new("gcc")
        .arg("-w")
        .arg(format!("-I{}", include.trim()))
        .arg("-o")
        .arg(&program)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/headers/offsets.c"))
        .status()
        .expect("gcc, which compiles the header check, is installed");
    assert!(
        compiled.success(),
        "offsets.c does not compile for {}",
        python.label
    );
    let output = Command::new(&program)
        .output()
        .expect("run the header check");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').expect("name value");
            (name.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn the_layout_tables_are_each_versions_headers() {
    let build = tempfile::tempdir().unwrap();
    let pythons: Vec<Interpreter> = interpreters()
        .into_iter()
        .filter(|p| p.label.starts_with("pyenv-") && p.version.1 <= 12)
        .collect();
    let minors: Vec<u8> = pythons.iter().map(|p| p.version.1).collect();
    assert_eq!(
        minors,
        [8, 9, 10, 11, 12],
        "a pyenv build of each table's version"
    );
    for python in &pythons {
        let layout = Layout::from_tables(PythonVersion::new(3, python.version.1, 0)).unwrap();
        let table = table_values(&layout);
        let headers = header_values(python, build.path());
        let differing: Vec<String> = headers
            .iter()
            .filter(|(name, value)| table.get(name.as_str()) != Some(value))
            .map(|(name, value)| {
                format!(
                    "{name}: headers {value:#x}, table {:?}",
                    table.get(name.as_str())
                )
            })
            .collect();
        assert!(differing.is_empty(), "{}: {differing:#?}", python.label);
        let unchecked: Vec<&&str> = table
            .keys()
            .filter(|name| !headers.contains_key(**name))
            .collect();
        assert!(
            unchecked.is_empty(),
            "{}: not checked {unchecked:?}",
            python.label
        );
    }
}
