//! `pydx dump`: every thread's current Python stack.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use pydx_cpython::{AsyncioError, AttachError, Frame, PythonProcess};
use pydx_profile::Activity;
use pydx_sampler::{tracer_of, Consistency, NativeCapture, Snapshotter, ThreadSnapshot};
use serde::Serialize;

use crate::cli::DumpArgs;
use crate::commands::sampling::native_frames;

/// Most processes `--subprocesses` dumps.
const MAX_PROCESSES: usize = 1024;

/// The dumps of a process and its descendants, as printed with
/// `--subprocesses --json`.
#[derive(Debug, Serialize)]
struct TreeReport {
    /// Each Python process once, every child after its parent.
    processes: Vec<DumpReport>,
}

/// The whole dump of one process, as printed with `--json`.
#[derive(Debug, Serialize)]
struct DumpReport {
    pid: u32,
    /// With `--subprocesses`: the process this one is a child of, for every
    /// process but the one named by `--pid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_pid: Option<u32>,
    python_version: String,
    binary: String,
    paused: bool,
    threads: Vec<ThreadReport>,
    /// With `--async`: every asyncio task.
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<TaskReport>>,
}

/// One asyncio task of the dump.
#[derive(Debug, Serialize)]
struct TaskReport {
    /// The task object's address, as CPython's own task listings show it.
    id: u64,
    name: String,
    /// `threading.get_ident()` of the thread running it, if it is running.
    running_on: Option<u64>,
    /// What its innermost coroutine awaits, if not another coroutine.
    awaiting: Option<String>,
    /// The coroutines it is suspended in, innermost first; for a running
    /// task, its thread's frames down to the task's outermost coroutine.
    coroutines: Vec<FrameReport>,
    /// The chain was too deep to follow to its end.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    /// The ids of the tasks awaiting this one (a `gather`, a `TaskGroup`,
    /// an `await task`).
    awaited_by: Vec<u64>,
}

/// One thread of the dump.
#[derive(Debug, Serialize)]
struct ThreadReport {
    /// `threading.get_ident()`.
    thread_id: u64,
    /// The OS thread id (TID), when known.
    native_id: Option<u32>,
    name: Option<String>,
    holds_gil: bool,
    /// `on_cpu`, `gil_wait`, `idle` or `unknown`.
    activity: &'static str,
    truncated: bool,
    error: Option<String>,
    /// Innermost first.
    frames: Vec<FrameReport>,
}

/// One frame of a thread.
#[derive(Debug, Serialize)]
struct FrameReport {
    /// The qualified name (`Class.method` from 3.11 on).
    function: String,
    file: String,
    line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    locals: Option<Vec<LocalReport>>,
}

/// One local variable of a frame.
#[derive(Debug, Serialize)]
struct LocalReport {
    name: String,
    arg: bool,
    repr: String,
}

/// Runs `pydx dump`.
pub fn run(args: &DumpArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if args.subprocesses {
        let processes = dump_tree(args)?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &TreeReport { processes })?;
            writeln!(out)?;
        } else {
            for (index, report) in processes.iter().enumerate() {
                if index > 0 {
                    writeln!(out)?;
                }
                write_text(&mut out, report)?;
            }
        }
    } else {
        let report = dump_process(args.pid, args)?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else {
            write_text(&mut out, &report)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Dumps `args.pid` and each of its descendants that runs Python, parents
/// before children. A process that is not Python (a shell, a server's
/// launcher) is passed over; one that cannot be read is reported on
/// stderr and passed over; none at all is an error.
fn dump_tree(args: &DumpArgs) -> anyhow::Result<Vec<DumpReport>> {
    let mut reports = Vec::new();
    let mut first_error = None;
    let mut pending = vec![(args.pid, None)];
    let mut seen = std::collections::HashSet::new();
    while let Some((pid, parent_pid)) = pending.pop() {
        if !seen.insert(pid) || seen.len() > MAX_PROCESSES {
            continue;
        }
        match dump_process(pid, args) {
            Ok(mut report) => {
                report.parent_pid = parent_pid;
                reports.push(report);
            }
            Err(error) => {
                let not_python = matches!(
                    error.downcast_ref::<AttachError>(),
                    Some(AttachError::NotPython { .. })
                );
                // A child that exits between being listed and being read
                // is no longer part of the tree.
                let gone = parent_pid.is_some() && !pydx_remote::process_exists(pid);
                if !not_python && !gone {
                    eprintln!("pydx: process {pid} left out: {error:#}");
                }
                first_error.get_or_insert(error);
            }
        }
        // Children in pid order once popped.
        let mut children = pydx_remote::child_pids(pid);
        children.reverse();
        pending.extend(children.into_iter().map(|child| (child, Some(pid))));
    }
    if reports.is_empty() {
        return Err(first_error
            .unwrap_or_else(|| anyhow::anyhow!("process {} has no Python processes", args.pid))
            .context(format!(
                "no Python process to dump in process {} or its descendants",
                args.pid
            )));
    }
    Ok(reports)
}

/// Reads one process's threads (and locals and tasks, as asked).
fn dump_process(pid: u32, args: &DumpArgs) -> anyhow::Result<DumpReport> {
    let process = PythonProcess::attach(pid)?;
    let tracer = tracer_of(pid);
    if let (true, Some(tracer)) = (args.native, tracer) {
        anyhow::bail!(
            "--native reads stacks with the process paused, and process {pid} is traced by \
             process {tracer}, so it cannot be paused"
        );
    }
    let consistency = if args.nonblocking {
        Consistency::NonBlocking
    } else if let Some(tracer) = tracer {
        eprintln!(
            "pydx: process {pid} is traced by process {tracer}, so it cannot be paused: \
             reading it without pausing"
        );
        Consistency::NonBlocking
    } else {
        Consistency::Paused
    };
    let mut snapshotter = Snapshotter::new(process, consistency).with_native(
        native_frames(args.native, args.native_all),
        NativeCapture::Pause,
    )?;
    // Locals and tasks are read before a paused target resumes, so that
    // they belong to the same instant as the stacks.
    let (_, (threads, tasks)) = snapshotter
        .snapshot_then(|snapshotter, threads| {
            let process = snapshotter.process();
            let reports: Vec<ThreadReport> = threads
                .iter()
                .map(|t| thread_report(process, t, args.locals))
                .collect();
            let tasks = args.asyncio.then(|| task_reports(process, threads));
            (reports, tasks)
        })
        .with_context(|| format!("cannot read the threads of process {pid}"))?;
    let tasks = tasks
        .transpose()
        .with_context(|| format!("cannot read the asyncio tasks of process {pid}"))?;
    let process = snapshotter.process();
    Ok(DumpReport {
        pid,
        parent_pid: None,
        python_version: process.version().to_string(),
        binary: process.binary().to_string(),
        paused: consistency == Consistency::Paused,
        threads,
        tasks,
    })
}

/// Every asyncio task of the process, by name.
fn task_reports(
    process: &mut PythonProcess,
    threads: &[ThreadSnapshot],
) -> Result<Vec<TaskReport>, AsyncioError> {
    let mut tasks = process.asyncio_tasks()?;
    tasks.sort_by(|a, b| a.name.cmp(&b.name));
    process.link_awaiters(&mut tasks);
    for task in &mut tasks {
        let thread = task
            .running_on
            .and_then(|ident| threads.iter().find(|t| t.python.thread_id == ident));
        if let Some(thread) = thread {
            task.join_running_stack(&thread.python.frames);
        }
    }
    Ok(tasks
        .iter()
        .map(|task| TaskReport {
            id: task.addr,
            name: task.name.clone(),
            running_on: task.running_on,
            awaiting: task.awaiting.clone(),
            coroutines: task
                .coroutines
                .iter()
                .map(|f| frame_report(process, f, false))
                .collect(),
            truncated: task.truncated,
            awaited_by: task.awaited_by.clone(),
        })
        .collect())
}

fn thread_report(
    process: &mut PythonProcess,
    thread: &ThreadSnapshot,
    with_locals: bool,
) -> ThreadReport {
    let python = &thread.python;
    // `threading` names the main thread only once it is imported.
    let name = python
        .name
        .clone()
        .or_else(|| (python.native_id == Some(process.pid())).then(|| "MainThread".to_string()));
    ThreadReport {
        thread_id: python.thread_id,
        native_id: python.native_id,
        name,
        holds_gil: python.holds_gil,
        activity: thread.activity.as_str(),
        truncated: python.truncated,
        error: python.error.map(|e| e.to_string()),
        frames: python
            .frames
            .iter()
            .map(|frame| frame_report(process, frame, with_locals))
            .collect(),
    }
}

fn frame_report(process: &mut PythonProcess, frame: &Frame, with_locals: bool) -> FrameReport {
    let locals = with_locals.then(|| match process.locals_in_full(frame) {
        Ok(locals) => locals
            .into_iter()
            .map(|l| LocalReport {
                name: l.name,
                arg: l.is_arg,
                repr: l.value.to_string(),
            })
            .collect(),
        Err(e) => vec![LocalReport {
            name: "<error>".into(),
            arg: false,
            repr: e.to_string(),
        }],
    });
    FrameReport {
        function: frame.code.qualname.clone(),
        file: frame.code.filename.clone(),
        line: frame.line,
        locals,
    }
}

fn write_text(out: &mut impl Write, report: &DumpReport) -> std::io::Result<()> {
    let parent = report
        .parent_pid
        .map(|parent| format!(" (child of {parent})"))
        .unwrap_or_default();
    writeln!(
        out,
        "Process {}{parent}: Python {} ({})",
        report.pid, report.python_version, report.binary
    )?;
    for thread in &report.threads {
        writeln!(out)?;
        let id = match thread.native_id {
            Some(tid) => tid.to_string(),
            None => format!("{:#x}", thread.thread_id),
        };
        let name = thread
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let mut states = Vec::new();
        if thread.holds_gil {
            states.push("holds GIL");
        }
        states.push(match Activity::parse(thread.activity) {
            Some(Activity::OnCpu) => "on CPU",
            Some(Activity::GilWait) => "waiting for GIL",
            Some(Activity::Idle) => "idle",
            Some(Activity::CpuWait) => "waiting for a CPU",
            _ => "state unknown",
        });
        writeln!(out, "Thread {id}{name} ({})", states.join(", "))?;
        if let Some(error) = &thread.error {
            writeln!(out, "    <stack unreadable: {error}>")?;
        }
        for frame in &thread.frames {
            if frame.line == 0 {
                writeln!(out, "    {} ({})", frame.function, frame.file)?;
            } else {
                writeln!(
                    out,
                    "    {} ({}:{})",
                    frame.function, frame.file, frame.line
                )?;
            }
            for local in frame.locals.iter().flatten() {
                let marker = if local.arg { " (arg)" } else { "" };
                writeln!(out, "        {}{} = {}", local.name, marker, local.repr)?;
            }
        }
        if thread.truncated {
            writeln!(out, "    <more frames not shown>")?;
        }
    }
    if let Some(tasks) = &report.tasks {
        writeln!(out)?;
        writeln!(out, "asyncio tasks: {}", tasks.len())?;
        for task in tasks {
            writeln!(out)?;
            let awaited_by = task_names(tasks, &task.awaited_by);
            let awaited_by = if awaited_by.is_empty() {
                String::new()
            } else {
                format!(", awaited by {awaited_by}")
            };
            writeln!(
                out,
                "Task \"{}\" ({}{awaited_by})",
                task.name,
                task_state(task)
            )?;
            for frame in &task.coroutines {
                writeln!(
                    out,
                    "    {} ({}:{})",
                    frame.function, frame.file, frame.line
                )?;
            }
            if task.truncated {
                writeln!(out, "    <more coroutines not shown>")?;
            }
        }
        if tasks.iter().any(|t| !t.awaited_by.is_empty()) {
            writeln!(out)?;
            writeln!(out, "Who awaits whom:")?;
            let mut drawn = HashSet::new();
            for root in tasks.iter().filter(|t| t.awaited_by.is_empty()) {
                write_task_tree(out, tasks, root, "", "", &mut Vec::new(), &mut drawn)?;
            }
            // Tasks in a cycle of awaits have no root: draw from each cycle once.
            for task in tasks {
                if !drawn.contains(&task.id) {
                    write_task_tree(out, tasks, task, "", "", &mut Vec::new(), &mut drawn)?;
                }
            }
        }
    }
    Ok(())
}

/// What a task is doing, for its heading.
fn task_state(task: &TaskReport) -> String {
    match (task.running_on, &task.awaiting) {
        (Some(thread), _) => format!("running on thread {thread:#x}"),
        (None, Some(awaiting)) => format!("waiting for {awaiting}"),
        (None, None) => "waiting".to_string(),
    }
}

/// The quoted names of the tasks with these ids.
fn task_names(tasks: &[TaskReport], ids: &[u64]) -> String {
    ids.iter()
        .filter_map(|id| tasks.iter().find(|t| t.id == *id))
        .map(|t| format!("\"{}\"", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `task` and, under it, the tasks it awaits, like
/// `python -m asyncio pstree`: each with where its innermost coroutine is.
/// A task awaited by two is shown under both; a cycle is cut where it
/// closes. `drawn` collects the tasks written.
fn write_task_tree(
    out: &mut impl Write,
    tasks: &[TaskReport],
    task: &TaskReport,
    lead: &str,
    branch: &str,
    path: &mut Vec<u64>,
    drawn: &mut HashSet<u64>,
) -> std::io::Result<()> {
    drawn.insert(task.id);
    let place = task
        .coroutines
        .first()
        .map(|f| format!(" in {} ({}:{})", f.function, f.file, f.line))
        .unwrap_or_default();
    let cycle = if path.contains(&task.id) {
        " <a cycle: it awaits itself through the tasks above, a deadlock>"
    } else {
        ""
    };
    writeln!(
        out,
        "{lead}{branch}\"{}\" {}{place}{cycle}",
        task.name,
        task_state(task)
    )?;
    if !cycle.is_empty() {
        return Ok(());
    }
    let children: Vec<&TaskReport> = tasks
        .iter()
        .filter(|t| t.awaited_by.contains(&task.id))
        .collect();
    let child_lead = format!(
        "{lead}{}",
        match branch {
            "" => "",
            "└── " => "    ",
            _ => "│   ",
        }
    );
    path.push(task.id);
    for (index, child) in children.iter().enumerate() {
        let branch = if index + 1 == children.len() {
            "└── "
        } else {
            "├── "
        };
        write_task_tree(out, tasks, child, &child_lead, branch, path, drawn)?;
    }
    path.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64, name: &str, awaiting: Option<&str>, awaited_by: &[u64]) -> TaskReport {
        TaskReport {
            id,
            name: name.to_string(),
            running_on: None,
            awaiting: awaiting.map(str::to_string),
            coroutines: vec![FrameReport {
                function: format!("{name}_body"),
                file: "app.py".to_string(),
                line: 10 * id as u32,
                locals: None,
            }],
            truncated: false,
            awaited_by: awaited_by.to_vec(),
        }
    }

    #[test]
    fn tasks_are_drawn_under_the_tasks_awaiting_them() {
        let mut running = task(5, "running", None, &[1]);
        running.running_on = Some(0x7f00);
        let report = DumpReport {
            pid: 42,
            parent_pid: None,
            python_version: "3.12.1".to_string(),
            binary: "/usr/bin/python3.12".to_string(),
            paused: true,
            threads: Vec::new(),
            tasks: Some(vec![
                task(1, "main", Some("_GatheringFuture"), &[]),
                task(2, "child-a", Some("Task grandchild"), &[1]),
                task(3, "grandchild", Some("Future"), &[2, 4]),
                task(4, "child-b", Some("Task grandchild"), &[1]),
                running,
                task(6, "loner", None, &[]),
                task(7, "ping", Some("Task pong"), &[8]),
                task(8, "pong", Some("Task ping"), &[7]),
            ]),
        };
        let mut out = Vec::new();
        write_text(&mut out, &report).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap());
    }
}
