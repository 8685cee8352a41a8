//! `pydx dump` against real interpreters: exact functions, files, lines,
//! thread names, GIL and CPU states on every supported CPython.

use std::process::Command;
use std::time::Duration;

use pydx_testkit::{eventually, interpreter, marker_line, Interpreter};
use serde_json::Value;

/// How long a test program may take to reach the state a test expects.
const SETTLE: Duration = Duration::from_secs(15);

fn pydx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pydx"))
}

fn dump_json(pid: u32, extra: &[&str]) -> Result<Value, String> {
    let output = pydx()
        .args(["dump", "--json", "--pid", &pid.to_string()])
        .args(extra)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "pydx dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

fn thread_named<'a>(dump: &'a Value, name: &str) -> Result<&'a Value, String> {
    dump["threads"]
        .as_array()
        .and_then(|threads| threads.iter().find(|t| t["name"] == name))
        .ok_or_else(|| format!("no thread named {name} in {dump:#}"))
}

/// `(function, file, line)` of each frame, innermost first.
fn frames(thread: &Value) -> Vec<(String, String, u64)> {
    thread["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or_default().to_string(),
                        f["file"].as_str().unwrap_or_default().to_string(),
                        f["line"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn expect(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(what())
    }
}

/// Checks the three-thread program's dump; `Err` says what did not match.
fn check_threads_dump(
    python: &Interpreter,
    script: &str,
    pid: u32,
    dump: &Value,
) -> Result<(), String> {
    let line = |marker| u64::from(marker_line("threads.py", marker));
    let own = |function: &str, marker| (function.to_string(), script.to_string(), line(marker));
    let qualified = |plain: &str, qualname: &str| {
        if python.at_least(11) {
            qualname.to_string()
        } else {
            plain.to_string()
        }
    };

    let deep = thread_named(dump, "deep-λ")?;
    let deep_frames = frames(deep);
    expect(deep_frames.len() >= 42, || {
        format!("deep stack too short: {deep_frames:?}")
    })?;
    expect(deep_frames[0] == own("recurse_λ", "LINE:bottom"), || {
        format!("deep[0]: {:?}", deep_frames[0])
    })?;
    for (depth, frame) in deep_frames[1..41].iter().enumerate() {
        expect(*frame == own("recurse_λ", "LINE:recurse"), || {
            format!("deep[{}]: {frame:?}", depth + 1)
        })?;
    }
    expect(deep_frames[41] == own("deep", "LINE:deep"), || {
        format!("deep[41]: {:?}", deep_frames[41])
    })?;
    expect(deep_frames[42].0 == qualified("run", "Thread.run"), || {
        format!("deep[42]: {:?}", deep_frames[42])
    })?;
    expect(deep_frames[42].1.ends_with("threading.py"), || {
        format!("deep[42]: {:?}", deep_frames[42])
    })?;
    expect(
        deep["activity"] == "idle" && deep["holds_gil"] == false,
        || format!("deep state: {deep}"),
    )?;

    let napper = thread_named(dump, "napper")?;
    let nap_frames = frames(napper);
    expect(nap_frames.first() == Some(&own("nap", "LINE:nap")), || {
        format!("napper: {nap_frames:?}")
    })?;
    expect(napper["activity"] == "idle", || {
        format!("napper state: {napper}")
    })?;

    let busy = thread_named(dump, "busy")?;
    let busy_frames = frames(busy);
    let spin = qualified("spin", "Outer.Inner.spin");
    expect(
        busy_frames.first() == Some(&(spin, script.to_string(), line("LINE:spin"))),
        || format!("busy: {busy_frames:?}"),
    )?;
    expect(
        busy_frames.get(1) == Some(&own("busy", "LINE:busy")),
        || format!("busy: {busy_frames:?}"),
    )?;
    expect(
        busy["holds_gil"] == true && busy["activity"] == "on_cpu",
        || format!("busy state: {busy}"),
    )?;

    let main = thread_named(dump, "MainThread")?;
    let main_frames = frames(main);
    expect(
        main_frames.last() == Some(&own("<module>", "LINE:main")),
        || format!("main: {main_frames:?}"),
    )?;
    expect(main["native_id"] == pid, || {
        format!("main thread id: {main}")
    })?;
    expect(main["activity"] == "idle", || format!("main state: {main}"))?;

    let threads = dump["threads"].as_array().map(Vec::len).unwrap_or(0);
    expect(threads == 4, || {
        format!("expected 4 threads, got {threads}")
    })?;
    expect(
        dump["python_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("{}.{}.", python.version.0, python.version.1))),
        || format!("version: {}", dump["python_version"]),
    )
}

fn dump_shows_exact_stacks(label: &str) {
    let python = interpreter(label);
    let child = python.spawn("threads.py", &[]);
    let outcome = eventually(SETTLE, || {
        let dump = dump_json(child.pid, &[])?;
        check_threads_dump(&python, &child.script_path, child.pid, &dump)
    });
    if let Err(reason) = outcome {
        panic!("{label}: {reason}");
    }
}

fn dump_shows_locals(label: &str) {
    let python = interpreter(label);
    let child = python.spawn("locals.py", &[]);
    let line = u64::from(marker_line("locals.py", "LINE:sleep"));
    let outcome = eventually(SETTLE, || {
        let dump = dump_json(child.pid, &["--locals"])?;
        let main = thread_named(&dump, "MainThread")?;
        let frame = &main["frames"][0];
        expect(frame["function"] == "show" && frame["line"] == line, || {
            format!("frame: {frame}")
        })?;
        let locals: Vec<(String, bool, String)> = frame["locals"]
            .as_array()
            .ok_or("no locals")?
            .iter()
            .map(|l| {
                (
                    l["name"].as_str().unwrap_or_default().to_string(),
                    l["arg"].as_bool().unwrap_or_default(),
                    l["repr"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let find = |name: &str| locals.iter().find(|l| l.0 == name).cloned();
        let expected: [(&str, bool, String); 24] = [
            ("count", true, "7".into()),
            ("ratio", true, "2.5".into()),
            ("rest", true, "('extra',)".into()),
            ("label", true, "'tag'".into()),
            ("options", true, "{'color': 'red'}".into()),
            ("text", false, "'héllo wörld'".into()),
            ("wide", false, "'λ😀'".into()),
            ("big", false, "1267650600228229401496703205376".into()),
            ("negative", false, "-12345678901234".into()),
            ("flag", false, "True".into()),
            ("nothing", false, "None".into()),
            ("items", false, "[1, 2, 3]".into()),
            ("mapping", false, "{'k': 1, 'j': 2}".into()),
            ("raw", false, r"b'\x00ab'".into()),
            ("pair", false, "(1, 2)".into()),
            ("numbers", false, "[-1234, 5678]".into()),
            ("letters", false, "('a', 'b', 'c')".into()),
            ("nested", false, "{'a': False, 'b': (1, 2, 3)}".into()),
            ("deep", false, "[[<list of 1>]]".into()),
            (
                "many",
                false,
                "[0, 1, 2, 3, 4, 5, 6, 7, ... (100 items)]".into(),
            ),
            ("thinned", false, "{1, 3}".into()),
            ("pruned", false, "{'kept': 2}".into()),
            ("empty", false, "set()".into()),
            (
                "long_text",
                false,
                format!("'{}'... (1000 chars)", "y".repeat(64)),
            ),
        ];
        for (name, arg, repr) in expected {
            let found = find(name);
            expect(found == Some((name.to_string(), arg, repr.clone())), || {
                format!("local {name}: expected {repr:?} (arg {arg}), got {found:?}")
            })?;
        }
        let closure = find("closure").ok_or("no local closure")?;
        expect(closure.2.starts_with("<function at 0x"), || {
            format!("closure: {closure:?}")
        })
    });
    if let Err(reason) = outcome {
        panic!("{label}: {reason}");
    }
}

/// NumPy scalars are read as values, through their type's name and the
/// value stored after the object header (no code runs in the target).
fn dump_shows_numpy_scalars(python: Interpreter) {
    let label = python.label.clone();
    let child = python.spawn("numpy_locals.py", &[]);
    let dump = dump_json(child.pid, &["--locals"]).unwrap();
    let frame = &thread_named(&dump, "MainThread").unwrap()["frames"][0];
    assert_eq!(frame["function"], "show", "{label}: {frame}");
    let shown = |name: &str| {
        frame["locals"]
            .as_array()
            .and_then(|locals| locals.iter().find(|l| l["name"] == name))
            .map(|l| l["repr"].as_str().unwrap_or_default().to_string())
    };
    for (name, repr) in [
        ("small", "np.int8(-5)"),
        ("wide", "np.uint64(18446744073709551615)"),
        ("ratio", "np.float64(0.25)"),
        ("single", "np.float32(1.5)"),
        ("half", "np.float16(-2.0)"),
        ("yes", "np.bool(True)"),
        ("pair", "[np.int32(7), np.int32(-7)]"),
    ] {
        assert_eq!(shown(name).as_deref(), Some(repr), "{label}: {name}");
    }
}

#[test]
fn numpy_scalars_on_3_11() {
    dump_shows_numpy_scalars(pydx_testkit::examples_python());
}

#[test]
fn numpy_scalars_on_3_15() {
    dump_shows_numpy_scalars(interpreter("sid-3.15"));
}

/// Checks `dump --async` on the tasks program: three named workers waiting
/// in `asyncio.sleep` through `fetch` and `worker`, and the main task
/// waiting on the gathering future.
fn dump_shows_asyncio_tasks(label: &str) {
    let python = interpreter(label);
    let child = python.spawn("tasks.py", &[]);
    let script = child.script_path.clone();
    let line = |marker| u64::from(marker_line("tasks.py", marker));
    let outcome = eventually(SETTLE, || {
        let dump = dump_json(child.pid, &["--async"])?;
        let tasks = dump["tasks"].as_array().ok_or("no tasks in the dump")?;
        let names: Vec<&str> = tasks.iter().filter_map(|t| t["name"].as_str()).collect();
        expect(
            names == ["Task-1", "worker-0", "worker-1", "worker-2"],
            || format!("task names: {names:?}"),
        )?;
        let main = &tasks[0];
        expect(
            frames_of(&main["coroutines"])
                == [("main".to_string(), script.clone(), line("LINE:main"))]
                && main["awaiting"] == "_GatheringFuture"
                && main["running_on"].is_null(),
            || format!("main task: {main}"),
        )?;
        for worker in &tasks[1..] {
            let chain = frames_of(&worker["coroutines"]);
            let own: Vec<(String, String, u64)> = chain.iter().skip(1).cloned().collect();
            expect(
                chain.first().is_some_and(|f| f.0 == "sleep")
                    && own
                        == [
                            ("fetch".to_string(), script.clone(), line("LINE:fetch")),
                            ("worker".to_string(), script.clone(), line("LINE:worker")),
                        ]
                    && worker["awaiting"] == "Future",
                || format!("worker task: {worker}"),
            )?;
        }
        Ok(())
    });
    if let Err(reason) = outcome {
        panic!("{label}: {reason}");
    }
}

/// A running task's chain is its thread's frames down to its outermost
/// coroutine (the links between coroutines stop at the one running); a
/// chain deeper than pydx follows is marked as cut.
fn dump_shows_a_running_task_whole(label: &str) {
    let python = interpreter(label);
    let child = python.spawn("running_task.py", &[]);
    let outcome = eventually(SETTLE, || {
        let dump = dump_json(child.pid, &["--async"])?;
        let tasks = dump["tasks"].as_array().ok_or("no tasks")?;
        let task = |name: &str| {
            tasks
                .iter()
                .find(|t| t["name"] == name)
                .ok_or(format!("no task {name}: {dump:#}"))
        };
        let running = task("running")?;
        let chain: Vec<String> = frames_of(&running["coroutines"])
            .into_iter()
            .map(|f| f.0)
            .collect();
        expect(
            chain == ["c5", "c4", "c3", "c2"] && !running["running_on"].is_null(),
            || format!("running task: {running}"),
        )?;
        let deep = task("deep")?;
        let depth = deep["coroutines"].as_array().map_or(0, Vec::len);
        expect(deep["truncated"] == true && depth >= 1000, || {
            format!(
                "deep task: {depth} coroutines, truncated {}",
                deep["truncated"]
            )
        })
    });
    if let Err(reason) = outcome {
        panic!("{label}: {reason}");
    }
}

#[test]
fn a_running_task_is_shown_whole_on_3_8() {
    dump_shows_a_running_task_whole("pyenv-3.8");
}

#[test]
fn a_running_task_is_shown_whole_on_3_12() {
    dump_shows_a_running_task_whole("pyenv-3.12");
}

#[test]
fn a_running_task_is_shown_whole_on_3_15() {
    dump_shows_a_running_task_whole("sid-3.15");
}

/// `dump --async` on the scenarios of CPython's remote-debugging tests:
/// who awaits whom (gather, an awaited task, `wait_for`, `shield`, a TaskGroup, a
/// staggered race, a loop on another thread with the eager task factory),
/// a recursive coroutine kept whole, and an async generator's frames in
/// the chain of the task iterating it.
fn dump_shows_who_awaits_whom(label: &str) {
    let python = interpreter(label);
    let child = python.spawn("task_tree.py", &[]);
    let version = python.version;
    let outcome = eventually(SETTLE, || {
        let dump = dump_json(child.pid, &["--async"])?;
        let tasks = dump["tasks"].as_array().ok_or("no tasks in the dump")?;
        let by_id = |id: &Value| {
            tasks
                .iter()
                .find(|t| t["id"] == *id)
                .and_then(|t| t["name"].as_str())
                .unwrap_or("?")
                .to_string()
        };
        let awaiters = |name: &str| -> Result<Vec<String>, String> {
            let task = tasks
                .iter()
                .find(|t| t["name"] == name)
                .ok_or(format!("no task {name}"))?;
            let mut names: Vec<String> = task["awaited_by"]
                .as_array()
                .ok_or("no awaited_by")?
                .iter()
                .map(by_id)
                .collect();
            names.sort();
            Ok(names)
        };
        let mut expected: Vec<(&str, &str)> = vec![
            ("gathered-0", "gatherer"),
            ("gathered-1", "gatherer"),
            ("awaited", "awaiter"),
            ("timed", "timed-waiter"),
            ("shielded", "shielder"),
            ("shielder", "Task-1"),
            ("eager-child", "thread-task"),
            ("gatherer", "Task-1"),
            ("awaiter", "Task-1"),
            ("timed-waiter", "Task-1"),
            ("recursive", "Task-1"),
            ("iterator", "Task-1"),
            ("racer", "Task-1"),
        ];
        if version >= (3, 11) {
            expected.extend([
                ("group-child-0", "group-parent"),
                ("group-child-1", "group-parent"),
                ("group-parent", "Task-1"),
            ]);
        }
        for (task, awaiter) in expected {
            let found = awaiters(task)?;
            expect(found == [awaiter], || {
                format!("{task} awaited by {found:?}, expected {awaiter}")
            })?;
        }
        let thread_task = awaiters("thread-task")?;
        expect(thread_task.len() == 1 && thread_task[0] != "Task-1", || {
            format!("thread-task awaited by {thread_task:?}")
        })?;
        // Both tasks of the race are awaited by the racer.
        let racers = tasks
            .iter()
            .filter(|t| {
                t["awaited_by"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|id| by_id(id) == "racer"))
            })
            .count();
        expect(racers == 2, || format!("{racers} tasks awaited by racer"))?;
        let chain = |name: &str| -> Vec<String> {
            tasks
                .iter()
                .find(|t| t["name"] == name)
                .map(|t| frames_of(&t["coroutines"]))
                .unwrap_or_default()
                .into_iter()
                .skip(1)
                .map(|f| format!("{}:{}", f.0, f.2))
                .collect()
        };
        let line = |marker| marker_line("task_tree.py", marker);
        let rec = format!("rec:{}", line("LINE:rec"));
        let iterator = chain("iterator");
        expect(
            iterator
                == [
                    format!("gen_nested_call:{}", line("LINE:nested")),
                    format!("gen:{}", line("LINE:agen")),
                    format!("iterate:{}", line("LINE:iterate")),
                ],
            || format!("iterator chain: {iterator:?}"),
        )?;
        let recursive = chain("recursive");
        expect(
            recursive.len() == 4 && recursive[1..].iter().all(|f| *f == rec),
            || format!("recursive chain: {recursive:?}"),
        )
    });
    if let Err(reason) = outcome {
        panic!("{label}: {reason}");
    }
}

/// `(function, file, line)` of each frame of a JSON frame list.
fn frames_of(list: &Value) -> Vec<(String, String, u64)> {
    frames(&serde_json::json!({ "frames": list }))
}

macro_rules! async_per_interpreter {
    ($($name:ident => $label:literal),* $(,)?) => {
        mod asyncio_tasks {
            $(#[test] fn $name() { super::dump_shows_asyncio_tasks($label); })*
        }
        mod who_awaits_whom {
            $(#[test] fn $name() { super::dump_shows_who_awaits_whom($label); })*
        }
    };
}

async_per_interpreter! {
    pyenv_3_8 => "pyenv-3.8",
    pyenv_3_9 => "pyenv-3.9",
    pyenv_3_10 => "pyenv-3.10",
    pyenv_3_11 => "pyenv-3.11",
    pyenv_3_12 => "pyenv-3.12",
    pyenv_3_13 => "pyenv-3.13",
    debian_3_11_static => "debian-3.11",
    sid_3_13 => "sid-3.13",
    sid_3_14 => "sid-3.14",
    sid_3_15 => "sid-3.15",
}

macro_rules! per_interpreter {
    ($($name:ident => $label:literal),* $(,)?) => {
        mod stacks {
            $(#[test] fn $name() { super::dump_shows_exact_stacks($label); })*
        }
        mod locals {
            $(#[test] fn $name() { super::dump_shows_locals($label); })*
        }
    };
}

per_interpreter! {
    pyenv_3_8 => "pyenv-3.8",
    pyenv_3_9 => "pyenv-3.9",
    pyenv_3_10 => "pyenv-3.10",
    pyenv_3_11 => "pyenv-3.11",
    pyenv_3_12 => "pyenv-3.12",
    pyenv_3_13 => "pyenv-3.13",
    debian_3_11_static => "debian-3.11",
    sid_3_13 => "sid-3.13",
    sid_3_14 => "sid-3.14",
    sid_3_15 => "sid-3.15",
}

#[test]
fn text_output_names_threads_states_and_frames() {
    let python = interpreter("pyenv-3.12");
    let child = python.spawn("threads.py", &[]);
    let line = marker_line("threads.py", "LINE:nap");
    let outcome = eventually(SETTLE, || {
        let output = pydx()
            .args(["dump", "--pid", &child.pid.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let header = format!("Process {}: Python 3.12.", child.pid);
        expect(text.starts_with(&header), || format!("header: {text}"))?;
        let napper = text
            .split("\n\n")
            .find(|block| block.contains("\"napper\""))
            .ok_or_else(|| format!("no napper block: {text}"))?;
        let mut lines = napper.lines();
        let head = lines.next().unwrap_or_default();
        expect(
            head.starts_with("Thread ") && head.ends_with("\"napper\" (idle)"),
            || format!("head: {head}"),
        )?;
        let top = lines.next().unwrap_or_default();
        expect(
            top == format!("    nap ({}:{line})", child.script_path),
            || format!("top frame: {top}"),
        )?;
        let busy = text
            .lines()
            .find(|l| l.contains("\"busy\""))
            .unwrap_or_default();
        expect(busy.ends_with("\"busy\" (holds GIL, on CPU)"), || {
            format!("busy: {busy}")
        })
    });
    if let Err(reason) = outcome {
        panic!("{reason}");
    }
}

/// A process in its own PID namespace (as in a container) knows its threads
/// by other ids than pydx does; the dump must show pydx's ids, on both the
/// pre-3.11 path (glibc's thread descriptor) and the 3.11+ one
/// (`native_thread_id`).
fn dump_in_pid_namespace(label: &str) {
    let python = interpreter(label);
    let child = python.spawn_wrapped(
        &["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"],
        "threads.py",
        &[],
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.pid)).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().count(),
        3,
        "not in a nested PID namespace: {nspid}"
    );
    let outcome = eventually(SETTLE, || {
        let dump = dump_json(child.pid, &[])?;
        check_threads_dump(&python, &child.script_path, child.pid, &dump)?;
        let host_tids: Vec<u64> = std::fs::read_dir(format!("/proc/{}/task", child.pid))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for thread in dump["threads"].as_array().into_iter().flatten() {
            let tid = thread["native_id"]
                .as_u64()
                .ok_or("thread without native id")?;
            expect(host_tids.contains(&tid), || {
                format!("{tid} is not a host TID: {host_tids:?}")
            })?;
        }
        Ok(())
    });
    if let Err(reason) = outcome {
        panic!("{label}: {reason}");
    }
}

#[test]
fn pid_namespace_before_3_11() {
    dump_in_pid_namespace("pyenv-3.9");
}

#[test]
fn pid_namespace_from_3_11() {
    dump_in_pid_namespace("pyenv-3.12");
}

/// A process that holds `pid` with `PTRACE_SEIZE` (without stopping it), as
/// a debugger or `strace` would; it lets go when killed.
fn trace(pid: u32) -> std::process::Child {
    let tracer = "import ctypes, sys, time\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:\n    \
                      sys.exit('seize failed: %d' % ctypes.get_errno())\n\
                  print('ready', flush=True)\n\
                  time.sleep(3600)\n";
    let mut child = Command::new("python3")
        .args(["-c", tracer, &pid.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the tracer");
    let mut line = String::new();
    let stdout = child.stdout.as_mut().expect("piped");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the tracer could not seize {pid}");
    child
}

/// A target already traced cannot be paused: `dump` (which pauses by
/// default) and `record` (which pauses by default before 3.11) say so in one
/// line and read it without pausing.
#[test]
fn a_traced_target_is_read_without_pausing() {
    let python = interpreter("pyenv-3.9");
    let child = python.spawn("threads.py", &[]);
    let mut tracer = trace(child.pid);
    let note = format!("is traced by process {}", tracer.id());
    let dump = pydx()
        .args(["dump", "--json", "--pid", &child.pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dump.stderr);
    assert!(dump.status.success(), "{stderr}");
    assert!(stderr.contains(&note), "{stderr}");
    let json: Value = serde_json::from_slice(&dump.stdout).unwrap();
    assert_eq!(json["paused"], false);
    let nap = thread_named(&json, "napper").unwrap();
    assert_eq!(frames(nap)[0].0, "nap", "{nap}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("traced.txt");
    let record = pydx()
        .args(["record", "--duration", "1", "-o"])
        .arg(&out)
        .args(["--pid", &child.pid.to_string()])
        .output()
        .unwrap();
    let _ = tracer.kill();
    let _ = tracer.wait();
    let stderr = String::from_utf8_lossy(&record.stderr);
    assert!(record.status.success(), "{stderr}");
    assert!(stderr.contains(&note), "{stderr}");
    assert!(stderr.contains(", 0 errors"), "{stderr}");
    let collapsed = std::fs::read_to_string(&out).unwrap();
    assert!(collapsed.contains(";spin ("), "{collapsed}");
}

/// A process that maps a second, never started copy of libpython (loaded
/// through `ctypes`, mapped below the real one) is read through the copy
/// that runs.
fn a_second_libpython_is_passed_over(label: &str) {
    let python = interpreter(label);
    let target = python.spawn("libpython_twice.py", &[]);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid)).unwrap();
    let files: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|f| f.contains("libpython"))
        .collect();
    let copy = files
        .iter()
        .find(|f| f.ends_with("libpython-copy.so"))
        .expect("the copy is mapped")
        .to_string();
    let copy_dir = std::path::Path::new(&copy).parent().unwrap().to_path_buf();
    let result = dump_json(target.pid, &[]);
    drop(target);
    let _ = std::fs::remove_dir_all(copy_dir);
    assert!(
        files[0].ends_with("libpython-copy.so"),
        "{label}: the copy should come first in the maps: {files:?}"
    );
    let dump = result.unwrap();
    let binary = dump["binary"].as_str().unwrap_or_default();
    assert!(
        binary.contains("libpython3.") && !binary.contains("copy"),
        "{label}: read through {binary}"
    );
    assert_eq!(frames(&dump["threads"][0])[0].0, "spin", "{dump:#}");
}

#[test]
fn a_second_libpython_is_passed_over_on_3_8() {
    a_second_libpython_is_passed_over("pyenv-3.8");
}

#[test]
fn a_second_libpython_is_passed_over_on_3_11() {
    a_second_libpython_is_passed_over("pyenv-3.11");
}

#[test]
fn a_second_libpython_is_passed_over_on_3_13() {
    a_second_libpython_is_passed_over("pyenv-3.13");
}

/// 200 dumps of a loop that reassigns string locals as fast as it can
/// (`words.py`): every value shown is one the variable held (a word of the
/// list, that word in upper case, a word's length), never a mix of freed
/// and reused memory.
fn locals_of_a_tight_string_loop_are_never_impossible(label: &str) {
    let python = interpreter(label);
    let target = python.spawn("words.py", &[]);
    let words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu";
    let allowed = |name: &str, shown: &str| -> bool {
        words.split(' ').any(|w| match name {
            "w" => shown == format!("'{w}'"),
            "x" => shown == format!("'{}'", w.to_uppercase()),
            "y" => shown == w.len().to_string(),
            _ => true,
        })
    };
    let mut shown = 0;
    for _ in 0..200 {
        let dump = dump_json(target.pid, &["--locals"]).unwrap();
        let frames = dump["threads"][0]["frames"].as_array().unwrap();
        let churn = frames
            .iter()
            .find(|f| f["function"] == "churn")
            .expect("churn's frame");
        for local in churn["locals"].as_array().unwrap() {
            let (name, text) = (
                local["name"].as_str().unwrap(),
                local["repr"].as_str().unwrap(),
            );
            if text.starts_with("<unreadable") {
                continue;
            }
            shown += 1;
            // Before the loop's first round the variables are not bound yet.
            assert!(
                text == "<unbound>" || allowed(name, text),
                "{label}: {name} = {text}, a value it never held"
            );
        }
    }
    // The default dump pauses the thread: every value is read.
    assert_eq!(shown, 600, "{label}: values left unread");
}

#[test]
fn string_locals_are_exact_on_3_8() {
    locals_of_a_tight_string_loop_are_never_impossible("pyenv-3.8");
}

#[test]
fn string_locals_are_exact_on_3_11() {
    locals_of_a_tight_string_loop_are_never_impossible("pyenv-3.11");
}

#[test]
fn string_locals_are_exact_on_3_15() {
    locals_of_a_tight_string_loop_are_never_impossible("sid-3.15");
}
