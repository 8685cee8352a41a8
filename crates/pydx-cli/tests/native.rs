//! `--native`: C frames merged into the Python stacks, on real interpreters,
//! with a C extension and a ctypes library built by the test
//! (`scripts/native_probe.c`) and with `hashlib`'s libcrypto.

use std::process::Command;
use std::time::Duration;

use pydx_testkit::{
    eventually, examples_python, interpreter, marker_line, Interpreter, NativeProbe,
};
use serde_json::Value;

/// How long a program may take to be caught where a test expects it.
const SETTLE: Duration = Duration::from_secs(15);

fn pydx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
}

/// `(function, file, line)` of each frame of the main thread, innermost
/// first, from `pydx dump --native --json`.
fn main_thread_frames(pid: u32, extra: &[&str]) -> Result<Vec<(String, String, u64)>, String> {
    let output = pydx()
        .args(["dump", "--json", "--native", "--pid", &pid.to_string()])
        .args(extra)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "pydx dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let dump: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let thread = dump["threads"]
        .as_array()
        .and_then(|threads| threads.iter().find(|t| t["name"] == "MainThread"))
        .ok_or_else(|| format!("no main thread in {dump:#}"))?;
    Ok(thread["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or_default().to_string(),
                f["file"].as_str().unwrap_or_default().to_string(),
                f["line"].as_u64().unwrap_or_default(),
            )
        })
        .collect())
}

fn line(marker: &str) -> u64 {
    u64::from(marker_line("native_probe.py", marker))
}

/// Retries until the main thread's merged stack passes `check`; the program
/// spends nearly all its time where the tests look, but not all of it.
fn settled(
    python: &Interpreter,
    pid: u32,
    extra: &[&str],
    check: impl Fn(&[(String, String, u64)]) -> Result<(), String>,
) {
    let result = eventually(SETTLE, || {
        let frames = main_thread_frames(pid, extra)?;
        check(&frames).map_err(|e| format!("{e}: {frames:#?}"))
    });
    if let Err(error) = result {
        panic!("{}: {error}", python.label);
    }
}

/// The frames an extension module's call shows, innermost first: the
/// probe's C functions directly under the Python frames that called them,
/// and `inner`, which C called back, between them.
fn check_extension_stack(
    frames: &[(String, String, u64)],
    probe: &str,
    script: &str,
) -> Result<(), String> {
    let native = |name: &str| (name.to_string(), probe.to_string(), 0);
    let python = |name: &str, line: u64| (name.to_string(), script.to_string(), line);
    let expected = [
        native("probe_spin"),
        native("probe_spin_method"),
        python("inner", line("LINE:extension_spin")),
        native("probe_call_python"),
        python("outer", line("LINE:extension_call_back")),
    ];
    if frames.len() < expected.len() + 1 || frames[..expected.len()] != expected {
        return Err("the merged stack is not the expected one".into());
    }
    if frames[expected.len()].0 != "<module>" {
        return Err("the outermost frame is not <module>".into());
    }
    Ok(())
}

#[test]
fn an_extensions_functions_sit_between_the_python_frames_that_call_them() {
    for label in [
        "pyenv-3.8",
        "pyenv-3.10",
        "pyenv-3.11",
        "pyenv-3.12",
        "pyenv-3.13",
        "debian-3.11",
    ] {
        let python = interpreter(label);
        let probe = python.native_probe(NativeProbe::Extension);
        let program = python.spawn("native_probe.py", &["extension", &probe]);
        settled(&python, program.pid, &[], |frames| {
            check_extension_stack(frames, &probe, &program.script_path)
        });
    }
}

#[test]
fn a_ctypes_call_back_into_python_is_merged_on_the_newest_interpreters() {
    for label in ["pyenv-3.11", "sid-3.13", "sid-3.14", "sid-3.15"] {
        let python = interpreter(label);
        let probe = python.native_probe(NativeProbe::Library);
        let program = python.spawn("native_probe.py", &["ctypes", &probe]);
        let script = program.script_path.clone();
        settled(&python, program.pid, &[], |frames| {
            let position = |function: &str, file: &str| {
                frames
                    .iter()
                    .position(|f| f.0 == function && f.1 == file)
                    .ok_or_else(|| format!("no {function} in {file}"))
            };
            let spin = position("probe_spin", &probe)?;
            let inner = position("inner", &script)?;
            let call_back = position("probe_call_back", &probe)?;
            let outer = position("outer", &script)?;
            if spin != 0 || !(inner < call_back && call_back < outer) {
                return Err("the frames are out of order".into());
            }
            if frames[inner].2 != line("LINE:ctypes_spin")
                || frames[outer].2 != line("LINE:ctypes_call_back")
            {
                return Err("a Python frame has the wrong line".into());
            }
            // Between the Python frames only native code (ctypes, libffi and
            // the probe) runs: no Python frame is lost or repeated.
            let python_frames: Vec<&str> = frames
                .iter()
                .filter(|f| f.2 != 0)
                .map(|f| f.0.as_str())
                .collect();
            if python_frames != ["inner", "outer", "<module>"] {
                return Err(format!("Python frames {python_frames:?}"));
            }
            Ok(())
        });
    }
}

#[test]
fn a_hashlib_call_shows_the_libcrypto_function_doing_the_work() {
    for label in ["pyenv-3.12", "debian-3.11", "sid-3.15"] {
        let python = interpreter(label);
        let program = python.spawn("native_hashlib.py", &[]);
        let script = program.script_path.clone();
        let derive_line = u64::from(marker_line("native_hashlib.py", "LINE:derive"));
        settled(&python, program.pid, &[], |frames| {
            let derive = frames
                .iter()
                .position(|f| f.0 == "derive")
                .ok_or("no derive frame")?;
            if frames[derive] != ("derive".to_string(), script.clone(), derive_line) {
                return Err("derive is not at its line".into());
            }
            let pbkdf2 = frames[..derive]
                .iter()
                .position(|f| f.0 == "PKCS5_PBKDF2_HMAC")
                .ok_or("no PKCS5_PBKDF2_HMAC under derive")?;
            if !frames[pbkdf2].1.contains("libcrypto.so") {
                return Err("PKCS5_PBKDF2_HMAC is not libcrypto's".into());
            }
            if frames[..derive].iter().any(|f| f.2 != 0) {
                return Err("a Python frame sits among the native ones".into());
            }
            Ok(())
        });
    }
}

#[test]
fn numpys_sort_and_matrix_product_show_their_kernels_under_the_python_line() {
    let python = examples_python();
    let program = python.spawn("native_numpy.py", &[]);
    let script = program.script_path.clone();
    let line = |marker| u64::from(marker_line("native_numpy.py", marker));
    // Native frames only, down to the Python frame at `at`, and among them
    // a kernel of NumPy's (`kernel` in its name) in `binary`.
    let kernels_above =
        |frames: &[(String, String, u64)], at: usize, kernel: &str, binary: &str| {
            let native = &frames[..at];
            if native.iter().any(|f| f.2 != 0) {
                return Err(format!(
                    "a Python frame among the native ones above {}",
                    frames[at].0
                ));
            }
            native
                .iter()
                .find(|f| f.0.contains(kernel) && f.1.contains(binary))
                .map(|_| ())
                .ok_or_else(|| format!("no {kernel} of {binary} above {}", frames[at].0))
        };
    settled(&python, program.pid, &[], |frames| {
        let at = frames
            .iter()
            .position(|f| f.0 == "<module>" && f.1 == script && f.2 == line("LINE:matmul"))
            .ok_or("not at the matrix product")?;
        kernels_above(frames, at, "dgemm", "openblas")?;
        kernels_above(frames, at, "DOUBLE_matmul", "_multiarray_umath")
    });
    settled(&python, program.pid, &[], |frames| {
        // np.sort is Python (numpy/_core/fromnumeric.py) calling the array's
        // sort method; NumPy 2 calls it through its C dispatcher
        // (`dispatcher_vectorcall`), a native frame between it and the line
        // that called np.sort.
        let at = frames
            .iter()
            .position(|f| f.0 == "sort" && f.1.ends_with("numpy/_core/fromnumeric.py"))
            .ok_or("not in np.sort")?;
        let caller = frames[at + 1..]
            .iter()
            .find(|f| f.2 != 0)
            .ok_or("np.sort has no Python caller")?;
        if (caller.0.as_str(), caller.2) != ("<module>", line("LINE:sort")) {
            return Err("np.sort is not called from its line".into());
        }
        kernels_above(frames, at, "quicksort_double", "_multiarray_umath")
    });
}

#[test]
fn a_stripped_extension_is_named_by_offset_and_keeps_its_python_frames() {
    let python = interpreter("pyenv-3.12");
    let probe = python.native_probe(NativeProbe::StrippedExtension);
    let program = python.spawn("native_probe.py", &["extension", &probe]);
    let script = program.script_path.clone();
    let file_name = probe.rsplit('/').next().unwrap_or(&probe).to_string();
    settled(&python, program.pid, &[], |frames| {
        let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
        // Exported functions keep their names (`.dynsym`); the static ones
        // (the methods) are named by their offset in the file, never by the
        // exported function before them.
        let by_offset = |name: &str| name.starts_with(&format!("{file_name}+0x"));
        match names.as_slice() {
            ["probe_spin", method, "inner", call, "outer", "<module>"]
                if by_offset(method) && by_offset(call) =>
            {
                Ok(())
            }
            _ => Err(String::from("unexpected stack")),
        }?;
        (frames[2].1 == script && frames[4].1 == script)
            .then_some(())
            .ok_or_else(|| "the Python frames lost their file".into())
    });
}

#[test]
fn an_extension_without_unwind_information_keeps_every_python_frame() {
    let python = interpreter("pyenv-3.12");
    let probe = python.native_probe(NativeProbe::ExtensionWithoutUnwindInfo);
    let program = python.spawn("native_probe.py", &["extension", &probe]);
    let script = program.script_path.clone();
    settled(&python, program.pid, &[], |frames| {
        let python_frames: Vec<(&str, u64)> = frames
            .iter()
            .filter(|f| f.1 == script)
            .map(|f| (f.0.as_str(), f.2))
            .collect();
        let expected = [
            ("inner", line("LINE:extension_spin")),
            ("outer", line("LINE:extension_call_back")),
            ("<module>", line("LINE:start")),
        ];
        if python_frames != expected {
            return Err(format!("Python frames {python_frames:?}"));
        }
        // The unwinder cannot go through the probe: the native part stops
        // at it, and says so.
        let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
        if names
            != [
                "probe_spin",
                "<native stack cut short>",
                "inner",
                "outer",
                "<module>",
            ]
            || frames[0].1 != probe
        {
            return Err("the stack is not cut short after the probe".into());
        }
        Ok(())
    });
}

#[test]
fn an_extension_deleted_after_it_was_loaded_is_still_named_and_unwound() {
    // As after a package upgrade under a running server: the file the
    // process mapped is gone from its path.
    let python = interpreter("pyenv-3.12");
    let built = python.native_probe(NativeProbe::Extension);
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("native_probe.so");
    std::fs::copy(&built, &probe).unwrap();
    let probe = probe.to_string_lossy().into_owned();
    let program = python.spawn("native_probe.py", &["extension", &probe]);
    std::fs::remove_file(&probe).unwrap();
    let script = program.script_path.clone();
    settled(&python, program.pid, &[], |frames| {
        check_extension_stack(frames, &probe, &script)
    });
}

#[test]
fn a_stripped_library_is_named_from_its_separate_debug_file() {
    // As with a distribution's -dbgsym package: the library keeps only its
    // exported functions, the debug file (found by build id under the
    // process's root) has the rest.
    let python = interpreter("sid-3.15");
    let probe = python.native_probe(NativeProbe::StrippedLibraryWithDebugFile);
    let program = python.spawn("native_probe.py", &["ctypes-internal", &probe]);
    let script = program.script_path.clone();
    settled(&python, program.pid, &[], |frames| {
        let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
        if names.get(..2) != Some(&["probe_spin_internal", "probe_spin_hidden"][..])
            || frames[0].1 != probe
        {
            return Err("the internal function is not named".into());
        }
        let outer = frames
            .iter()
            .find(|f| f.0 == "outer")
            .ok_or("no outer frame")?;
        if (outer.1.as_str(), outer.2) != (script.as_str(), line("LINE:ctypes_internal")) {
            return Err("outer is not at its line".into());
        }
        Ok(())
    });
}

#[test]
fn a_launched_program_has_the_libraries_it_loads_later_named() {
    // Launched, the program maps libcrypto only when it imports hashlib,
    // after pydx attached.
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("native_hashlib.py");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("launched.txt");
    let output = pydx()
        .args([
            "record",
            "--native",
            "-d",
            "2",
            "--format",
            "collapsed",
            "-o",
        ])
        .arg(&out)
        .arg("--")
        .args(python.argv(&[&script]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let collapsed = std::fs::read_to_string(&out).unwrap();
    let count = |line: &str| line.rsplit(' ').next()?.parse::<u64>().ok();
    let all: u64 = collapsed.lines().filter_map(count).sum();
    let named: u64 = collapsed
        .lines()
        .filter(|l| l.contains("PKCS5_PBKDF2_HMAC (") && !l.contains(" (?)"))
        .filter_map(count)
        .sum();
    assert!(
        all > 100 && named * 10 >= all * 8,
        "{named} of {all} samples in a named libcrypto:\n{collapsed}"
    );
}

/// `pydx record --native` of process `pid` for `seconds` at `rate` Hz,
/// with `extra` arguments: the collapsed profile and pydx's summary.
fn record_native(pid: u32, seconds: &str, rate: &str, extra: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("native.txt");
    let output = pydx()
        .args(["record", "--native", "-d", seconds, "-r", rate])
        .args(extra)
        .args(["--format", "collapsed", "-o"])
        .arg(&out)
        .args(["--pid", &pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    (std::fs::read_to_string(&out).unwrap(), stderr)
}

/// Samples of a collapsed profile, in all and in the stacks that hold `part`.
fn samples_with(collapsed: &str, part: &str) -> (u64, u64) {
    let count = |line: &str| line.rsplit(' ').next()?.parse::<u64>().ok();
    let all = collapsed.lines().filter_map(count).sum();
    let with = collapsed
        .lines()
        .filter(|l| l.contains(part))
        .filter_map(count)
        .sum();
    (all, with)
}

/// The collapsed stack of the extension probe spinning, from `outer` on.
fn extension_chain(script: &str, probe: &str) -> String {
    format!(
        "outer ({script}:{});probe_call_python ({probe});inner ({script}:{});probe_spin_method ({probe});probe_spin ({probe})",
        line("LINE:extension_call_back"),
        line("LINE:extension_spin"),
    )
}

#[test]
fn record_native_writes_merged_stacks_and_counts_them() {
    let python = interpreter("pyenv-3.11");
    let probe = python.native_probe(NativeProbe::Extension);
    let program = python.spawn("native_probe.py", &["extension", &probe]);
    let (collapsed, stderr) = record_native(program.pid, "1.5", "200", &[]);
    assert!(stderr.contains("native stacks merged"), "{stderr}");
    let chain = extension_chain(&program.script_path, &probe);
    let (all, samples) = samples_with(&collapsed, &chain);
    assert!(
        all > 100 && samples * 10 >= all * 8,
        "{samples} of {all} samples in probe_spin through the callback:\n{collapsed}"
    );
}

/// Two Python functions take turns every tenth of a millisecond, each in
/// its own C function: a native stack read a moment apart from the Python
/// one would often be merged under the other function. Paused, the two are
/// read together: never.
#[test]
fn a_native_frame_is_never_merged_under_a_python_function_that_did_not_call_it() {
    let python = interpreter("pyenv-3.12");
    let probe = python.native_probe(NativeProbe::Library);
    let program = python.spawn("native_probe.py", &["ctypes-alternate", &probe]);
    let (collapsed, stderr) = record_native(program.pid, "2", "1000", &[]);
    let script = &program.script_path;
    let first = format!("first ({script}:{});", line("LINE:alternate_first"));
    let second = format!("second ({script}:{});", line("LINE:alternate_second"));
    let mut right = 0;
    for stack in collapsed.lines() {
        let (frames, count) = stack.rsplit_once(' ').unwrap();
        let count: u64 = count.parse().unwrap();
        let after = |caller: &str| frames.split_once(caller).map(|(_, rest)| rest);
        let calls =
            |called: &str, function: &str| format!(";{called}").contains(&format!(";{function} ("));
        if let Some(called) = after(&first) {
            assert!(!calls(called, "probe_spin_hidden"), "{stack}");
            right += count * u64::from(calls(called, "probe_spin"));
        }
        if let Some(called) = after(&second) {
            assert!(!calls(called, "probe_spin"), "{stack}");
            right += count * u64::from(calls(called, "probe_spin_hidden"));
        }
    }
    let (all, _) = samples_with(&collapsed, "");
    assert!(
        all > 1500 && right * 10 >= all * 9,
        "{right} of {all}: {stderr}\n{collapsed}"
    );
}

/// `--native-capture perf` (kept to measure the trade-off against pausing,
/// see bench/results/native-capture.md): the kernel's copies of a thread
/// spinning in one C function merge into the same stacks as paused reads.
#[test]
fn kernel_copied_native_stacks_merge_while_the_python_stack_stays_put() {
    let python = interpreter("pyenv-3.12");
    let probe = python.native_probe(NativeProbe::Extension);
    let program = python.spawn("native_probe.py", &["extension", &probe]);
    let (collapsed, stderr) = record_native(program.pid, "2", "500", &["--native-capture", "perf"]);
    let chain = extension_chain(&program.script_path, &probe);
    let (all, samples) = samples_with(&collapsed, &chain);
    assert!(
        all > 500 && samples * 10 >= all * 8,
        "{samples} of {all} samples merged: {stderr}\n{collapsed}"
    );
    assert!(stderr.contains("native stacks merged"), "{stderr}");
}

/// Times thread `tid` of `pid` was switched onto a CPU (the kernel's count).
fn switch_ins(pid: u32, tid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).unwrap();
    text.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A thread asleep in a system call is not paused for its native stack:
/// it is unwound from where the kernel saved its stack and instruction
/// pointers, and kept only if the thread did not run meanwhile. The main
/// thread naps in C 20 ms at a time while another thread spins in Python
/// (each nap ends with a wait for the GIL): 300 samples must not wake it
/// about 300 times more than it wakes on its own in as long, and its stack
/// must still show the C function it sleeps in under the Python line that
/// called it.
#[test]
fn a_thread_asleep_in_native_code_is_unwound_without_waking_it() {
    for label in ["pyenv-3.8", "pyenv-3.12", "debian-3.11"] {
        let python = interpreter(label);
        let probe = python.native_probe(NativeProbe::Extension);
        let program = python.spawn("native_probe.py", &["extension-nap", &probe]);
        std::thread::sleep(Duration::from_millis(300));
        let start = switch_ins(program.pid, program.pid);
        std::thread::sleep(Duration::from_millis(1500));
        let before = switch_ins(program.pid, program.pid);
        let (collapsed, stderr) = record_native(program.pid, "1.5", "200", &["--idle"]);
        let unsampled = before - start;
        let sampled = switch_ins(program.pid, program.pid) - before;
        // Pausing at every one of the 300 samples would add about 300
        // (the previous binary: 768 against 177); a busy 2-core machine
        // moves the count by up to about 110 between two windows.
        assert!(
            sampled < unsampled + 200,
            "{label}: main thread switched on {sampled} times sampled, {unsampled} not: {stderr}"
        );
        assert!(
            stderr.contains("of threads asleep in a system call, read without pausing them"),
            "{label}: {stderr}"
        );
        let script = &program.script_path;
        let method = format!(
            "outer ({script}:{});probe_nap_method ({probe});",
            line("LINE:extension_nap")
        );
        let (_, main) = samples_with(&collapsed, &format!("outer ({script}:"));
        let (_, in_method) = samples_with(&collapsed, &method);
        let (_, napping) = samples_with(&collapsed, &format!("{method}probe_nap ({probe});"));
        // Each 20 ms nap is followed by a wait for the GIL (in
        // probe_nap_method too) of up to the 5 ms switch interval.
        assert!(
            main >= 250 && in_method * 100 >= main * 95 && napping * 2 >= main,
            "{label}: of {main} main-thread samples, {in_method} in probe_nap_method, \
             {napping} in probe_nap: {stderr}\n{collapsed}"
        );
    }
}
