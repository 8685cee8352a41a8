//! Chrome trace event JSON, for Perfetto (<https://ui.perfetto.dev>) and
//! `chrome://tracing`.

use std::io::{BufWriter, Write};

use pydx_profile::{Profile, ThreadId};
use serde::Serialize;

use crate::frames::{FrameNamer, FrameTable};
use crate::timeline::{thread_timelines, Span};
use crate::{RenderError, RenderOptions};

/// The category of every frame event.
const CATEGORY: &str = "python";

/// One trace event.
#[derive(Serialize)]
struct Event<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'static str>,
    ph: &'static str,
    /// Microseconds since the start of the recording.
    ts: f64,
    pid: u32,
    tid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<Args<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Args<'a> {
    /// Where a Python frame's code is.
    Location {
        file: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
    },
    /// The name of a process or thread, in a metadata event.
    Name { name: &'a str },
}

/// Writes Chrome trace event JSON: each thread's timeline as nested
/// duration events (`B`/`E`), one per frame, with `process_name` and
/// `thread_name` metadata events.
///
/// Events carry the thread's PID and OS thread id (its `threading` ident
/// when the OS id is unknown), timestamps in microseconds since the start
/// of the recording, the frame's name, category `python`, and for Python
/// frames `args.file` and `args.line`. When a thread moves to another
/// stack, the frames the two stacks share stay open, so a long-running
/// function is one slice. Time when the thread showed nothing (no sample,
/// or samples left out by the options) closes every frame.
pub fn write_chrometrace(
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    let namer = FrameNamer::new(profile, options);
    let mut table = FrameTable::default();
    let timelines = thread_timelines(&namer, &mut table);
    let mut events = EventWriter::new(BufWriter::new(out))?;

    let mut named_pids = Vec::new();
    for &(thread, _) in &timelines {
        let pid = profile.thread_info(thread).pid;
        if named_pids.contains(&pid) {
            continue;
        }
        named_pids.push(pid);
        let fallback_name = format!("process {pid}");
        let name = namer.command(pid).unwrap_or(&fallback_name);
        events.write(&metadata("process_name", pid, 0, name))?;
    }
    for &(thread, _) in &timelines {
        let info = profile.thread_info(thread);
        let label = profile.thread_label(thread);
        events.write(&metadata(
            "thread_name",
            info.pid,
            trace_tid(profile, thread),
            &label,
        ))?;
    }
    for (thread, spans) in &timelines {
        write_thread(&mut events, &namer, &table, *thread, spans)?;
    }
    events.finish()
}

/// Writes the duration events of one thread's timeline.
fn write_thread(
    events: &mut EventWriter<impl Write>,
    namer: &FrameNamer<'_>,
    table: &FrameTable,
    thread: ThreadId,
    spans: &[Span],
) -> Result<(), RenderError> {
    let profile = namer.profile();
    let pid = profile.thread_info(thread).pid;
    let tid = trace_tid(profile, thread);
    let frame_event = |phase: &'static str, frame: usize, time_ns: u64| {
        let args = (phase == "B")
            .then(|| namer.location(table.key(frame)))
            .flatten()
            .map(|(file, line)| Args::Location {
                file,
                line: (line != 0).then_some(line),
            });
        Event {
            name: table.name(frame),
            cat: Some(CATEGORY),
            ph: phase,
            ts: micros(time_ns),
            pid,
            tid,
            args,
        }
    };
    let mut open: Vec<usize> = Vec::new();
    for span in spans {
        let shared = open
            .iter()
            .zip(&span.frames)
            .take_while(|(open, shown)| open == shown)
            .count();
        while open.len() > shared {
            let frame = open.pop().expect("more open frames than shared");
            events.write(&frame_event("E", frame, span.start_ns))?;
        }
        for &frame in &span.frames[shared..] {
            events.write(&frame_event("B", frame, span.start_ns))?;
            open.push(frame);
        }
    }
    let end_ns = spans.last().map_or(0, |span| span.end_ns);
    while let Some(frame) = open.pop() {
        events.write(&frame_event("E", frame, end_ns))?;
    }
    Ok(())
}

/// A metadata event naming a process or thread.
fn metadata<'a>(kind: &'a str, pid: u32, tid: u64, name: &'a str) -> Event<'a> {
    Event {
        name: kind,
        cat: None,
        ph: "M",
        ts: 0.0,
        pid,
        tid,
        args: Some(Args::Name { name }),
    }
}

/// The `tid` of a thread's events: its OS thread id, else its ident.
fn trace_tid(profile: &Profile, thread: ThreadId) -> u64 {
    let info = profile.thread_info(thread);
    if info.tid != 0 {
        u64::from(info.tid)
    } else {
        info.ident
    }
}

fn micros(time_ns: u64) -> f64 {
    time_ns as f64 / 1000.0
}

/// Writes the events of a trace one at a time.
struct EventWriter<W: Write> {
    out: W,
    empty: bool,
}

impl<W: Write> EventWriter<W> {
    fn new(mut out: W) -> Result<Self, RenderError> {
        out.write_all(b"{\"traceEvents\":[")?;
        Ok(Self { out, empty: true })
    }

    fn write(&mut self, event: &Event<'_>) -> Result<(), RenderError> {
        let separator: &[u8] = if self.empty { b"\n" } else { b",\n" };
        self.out.write_all(separator)?;
        self.empty = false;
        serde_json::to_writer(&mut self.out, event).map_err(std::io::Error::from)?;
        Ok(())
    }

    fn finish(mut self) -> Result<(), RenderError> {
        self.out.write_all(b"\n],\"displayTimeUnit\":\"ms\"}\n")?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::{add, meta, state, two_threads, MS};
    use pydx_profile::{Activity, Meta};
    use serde_json::Value;

    fn trace(profile: &Profile, options: &RenderOptions) -> Vec<Value> {
        let mut out = Vec::new();
        write_chrometrace(profile, options, &mut out).unwrap();
        let file: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(file["displayTimeUnit"], "ms");
        file["traceEvents"].as_array().unwrap().clone()
    }

    /// Checks that every `B` has a matching `E` on the same thread, in stack
    /// order, and that each thread's timestamps never go back.
    fn check_nesting(events: &[Value]) {
        let mut threads: Vec<(u64, Vec<&str>, f64)> = Vec::new();
        for event in events.iter().filter(|e| e["ph"] != "M") {
            let tid = event["tid"].as_u64().unwrap();
            let ts = event["ts"].as_f64().unwrap();
            let position = threads.iter().position(|(t, _, _)| *t == tid);
            let position = position.unwrap_or_else(|| {
                threads.push((tid, Vec::new(), 0.0));
                threads.len() - 1
            });
            let (_, open, last_ts) = &mut threads[position];
            assert!(ts >= *last_ts, "time goes back on thread {tid}");
            *last_ts = ts;
            let name = event["name"].as_str().unwrap();
            match event["ph"].as_str().unwrap() {
                "B" => open.push(name),
                "E" => assert_eq!(open.pop(), Some(name)),
                phase => panic!("unexpected phase {phase}"),
            }
            assert_eq!(event["cat"], "python");
        }
        for (tid, open, _) in threads {
            assert!(open.is_empty(), "frames left open on thread {tid}");
        }
    }

    /// `(phase, name, ts in ms)` of the duration events of thread `tid`.
    fn slices(events: &[Value], tid: u64) -> Vec<(String, String, f64)> {
        events
            .iter()
            .filter(|e| e["ph"] != "M" && e["tid"] == tid)
            .map(|e| {
                (
                    e["ph"].as_str().unwrap().to_string(),
                    e["name"].as_str().unwrap().to_string(),
                    e["ts"].as_f64().unwrap() / 1000.0,
                )
            })
            .collect()
    }

    #[test]
    fn threads_have_nested_slices_and_names() {
        let events = trace(&two_threads(), &RenderOptions::default());
        check_nesting(&events);
        let metadata: Vec<(&str, u64, &str)> = events
            .iter()
            .filter(|e| e["ph"] == "M")
            .map(|e| {
                assert_eq!(e["pid"], 100);
                (
                    e["name"].as_str().unwrap(),
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            metadata,
            [
                ("process_name", 0, "python app.py"),
                ("thread_name", 100, "MainThread"),
                ("thread_name", 101, "worker"),
            ]
        );
        let begin_work = events
            .iter()
            .find(|e| e["ph"] == "B" && e["name"] == "work (app.py:5)")
            .unwrap();
        assert_eq!(begin_work["args"]["file"], "app.py");
        assert_eq!(begin_work["args"]["line"], 5);
        assert_eq!(begin_work["pid"], 100);
        assert_eq!(
            slices(&events, 101),
            [
                ("B".into(), "run (worker.py:3)".into(), 0.0),
                ("E".into(), "run (worker.py:3)".into(), 20.0),
                ("B".into(), "<no Python frames>".into(), 30.0),
                ("E".into(), "<no Python frames>".into(), 40.0),
            ]
        );
    }

    #[test]
    fn shared_outer_frames_stay_open() {
        let mut profile = Profile::new(meta());
        let main = profile.frame("main", "app.py", 1, 1);
        let read = profile.frame("read", "app.py", 2, 1);
        let parse = profile.frame("parse", "app.py", 3, 1);
        let reading = profile.stack_from_root([main, read]);
        let parsing = profile.stack_from_root([main, parse]);
        let thread = profile.thread(100, 100, 1, None);
        let on_cpu = state(Activity::OnCpu, true);
        add(&mut profile, 0, thread, reading, on_cpu);
        add(&mut profile, 10 * MS, thread, parsing, on_cpu);
        add(&mut profile, 20 * MS, thread, reading, on_cpu);
        // A second later, after a gap.
        add(&mut profile, 1020 * MS, thread, reading, on_cpu);

        let events = trace(&profile, &RenderOptions::default());
        check_nesting(&events);
        let slice = |phase: &str, name: &str, ms: f64| (phase.into(), name.into(), ms);
        assert_eq!(
            slices(&events, 100),
            [
                slice("B", "main (app.py:1)", 0.0),
                slice("B", "read (app.py:2)", 0.0),
                slice("E", "read (app.py:2)", 10.0),
                slice("B", "parse (app.py:3)", 10.0),
                slice("E", "parse (app.py:3)", 20.0),
                slice("B", "read (app.py:2)", 20.0),
                slice("E", "read (app.py:2)", 30.0),
                slice("E", "main (app.py:1)", 30.0),
                slice("B", "main (app.py:1)", 1020.0),
                slice("B", "read (app.py:2)", 1020.0),
                slice("E", "read (app.py:2)", 1030.0),
                slice("E", "main (app.py:1)", 1030.0),
            ]
        );
    }

    #[test]
    fn filtered_runs_close_every_frame() {
        let mut profile = Profile::new(meta());
        let main = profile.frame("main", "app.py", 1, 1);
        let stack = profile.stack_from_root([main]);
        let thread = profile.thread(100, 0, 0x7f00, Some("MainThread"));
        add(&mut profile, 0, thread, stack, state(Activity::OnCpu, true));
        add(
            &mut profile,
            10 * MS,
            thread,
            stack,
            state(Activity::Idle, false),
        );
        add(
            &mut profile,
            20 * MS,
            thread,
            stack,
            state(Activity::OnCpu, true),
        );

        let events = trace(&profile, &RenderOptions::default());
        check_nesting(&events);
        let phases: Vec<String> = slices(&events, 0x7f00)
            .into_iter()
            .map(|(phase, _, ms)| format!("{phase}{ms}"))
            .collect();
        assert_eq!(phases, ["B0", "E10", "B20", "E30"]);

        let options = RenderOptions {
            include_idle: true,
            per_thread: true,
            ..RenderOptions::default()
        };
        let events = trace(&profile, &options);
        check_nesting(&events);
        let names: Vec<String> = slices(&events, 0x7f00)
            .into_iter()
            .map(|(phase, name, ms)| format!("{phase} {name} {ms}"))
            .collect();
        assert_eq!(
            names,
            [
                "B thread 0x7f00 \"MainThread\" 0",
                "B main (app.py:1) 0",
                "E main (app.py:1) 30",
                "E thread 0x7f00 \"MainThread\" 30",
            ]
        );
    }

    #[test]
    fn an_empty_profile_is_an_empty_trace() {
        let events = trace(&Profile::new(Meta::default()), &RenderOptions::default());
        assert!(events.is_empty());
    }
}
