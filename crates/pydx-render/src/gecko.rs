//! The Firefox Profiler's Gecko profile format
//! (<https://github.com/firefox-devtools/profiler/blob/main/docs-developer/gecko-profile-format.md>).
//!
//! Written at format version 24, the version the Firefox Profiler's own
//! importers write (it upgrades older versions on load), with the table
//! schemas of that version.

use std::collections::HashMap;
use std::io::{BufWriter, Write};

use pydx_profile::{Activity, Profile, Run, SampleState, ThreadId};
use serde::Serialize;
use serde_json::{json, Value};

use crate::frames::{FrameKey, FrameNamer};
use crate::{RenderError, RenderOptions};

/// The Gecko profile format version written.
const VERSION: u32 = 24;
const NS_PER_MS: f64 = 1e6;

/// The categories samples are drawn in, by what the thread was doing: the
/// Firefox Profiler colours the activity graph and the call tree with them.
/// On-CPU samples are split by whether the thread held the GIL.
const CATEGORIES: [(&str, &str, &[&str]); 5] = [
    ("On CPU", "yellow", &["Holding the GIL", "Without the GIL"]),
    ("Waiting for the GIL", "orange", &["Other"]),
    ("Idle", "transparent", &["Other"]),
    ("Other", "grey", &["Other"]),
    ("Waiting for a CPU", "red", &["Other"]),
];

/// A sample's category and subcategory (indexes into [`CATEGORIES`]).
fn category(state: SampleState) -> (usize, usize) {
    match state.activity {
        Activity::OnCpu if state.holds_gil => (0, 0),
        Activity::OnCpu => (0, 1),
        Activity::GilWait => (1, 0),
        Activity::Idle => (2, 0),
        Activity::Unknown => (3, 0),
        Activity::CpuWait => (4, 0),
    }
}

/// One thread's tables, as the format lays them out.
#[derive(Default)]
struct ThreadTables {
    strings: Vec<String>,
    string_index: HashMap<String, usize>,
    /// Rows `[location, relevantForJS, innerWindowID, implementation,
    /// optimizations, line, column, category, subcategory]`.
    frames: Vec<Value>,
    frame_index: HashMap<(FrameKey, usize, usize), usize>,
    /// Rows `[prefix, frame]`.
    stacks: Vec<[Option<usize>; 2]>,
    stack_index: HashMap<(Option<usize>, usize), usize>,
    /// Rows `[stack, time, responsiveness]`.
    samples: Vec<(usize, f64)>,
}

impl ThreadTables {
    fn string(&mut self, text: String) -> usize {
        if let Some(&index) = self.string_index.get(&text) {
            return index;
        }
        self.strings.push(text.clone());
        self.string_index.insert(text, self.strings.len() - 1);
        self.strings.len() - 1
    }

    /// The frame of `key`, named as `function_key` (the same frame named
    /// by its function's first line: the profiler takes a Python frame's
    /// location for its function's, and the line column for the line).
    fn frame(
        &mut self,
        namers: &Namers<'_>,
        (key, function_key): (FrameKey, FrameKey),
        category: (usize, usize),
    ) -> usize {
        if let Some(&index) = self.frame_index.get(&(key, category.0, category.1)) {
            return index;
        }
        let location = self.string(namers.by_function.name(function_key));
        let line = namers
            .by_line
            .location(key)
            .map(|(_, line)| line)
            .filter(|&line| line != 0);
        self.frames.push(json!([
            location, false, 0, null, null, line, null, category.0, category.1
        ]));
        let index = self.frames.len() - 1;
        self.frame_index
            .insert((key, category.0, category.1), index);
        index
    }

    /// The stack of `frames` (outermost first, each with its function's
    /// key), each frame in `category`.
    fn stack(
        &mut self,
        namers: &Namers<'_>,
        frames: impl Iterator<Item = (FrameKey, FrameKey)>,
        category: (usize, usize),
    ) -> Option<usize> {
        let mut prefix = None;
        for keys in frames {
            let frame = self.frame(namers, keys, category);
            let next = self.stacks.len();
            let stack = *self.stack_index.entry((prefix, frame)).or_insert(next);
            if stack == next {
                self.stacks.push([prefix, Some(frame)]);
            }
            prefix = Some(stack);
        }
        prefix
    }
}

/// The options' frames, and the same frames named by function.
struct Namers<'a> {
    by_line: FrameNamer<'a>,
    by_function: FrameNamer<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeckoThread {
    name: String,
    process_type: &'static str,
    process_name: String,
    register_time: f64,
    unregister_time: Option<f64>,
    tid: u32,
    pid: u32,
    markers: Value,
    samples: Value,
    frame_table: Value,
    stack_table: Value,
    string_table: Vec<String>,
}

/// Writes a Gecko profile for the Firefox Profiler (profiler.firefox.com,
/// "Load a profile from file"): one track per thread that shows anything,
/// grouped by process, each sample at its time, coloured by what the
/// thread was doing (on a CPU holding the GIL or not, waiting for the GIL,
/// idle: the profile's categories).
///
/// Samples come from the profile's timeline: a run of identical samples
/// is written as that many samples spread evenly over the run. Samples in
/// every state are written, idle ones too (the profiler tells states apart
/// by category); the other options filter and name frames as for the
/// other formats.
///
/// Fails with [`RenderError::NoSamples`], before writing anything, when the
/// profile has no samples at all.
pub fn write_gecko(
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    if profile.total_samples() == 0 {
        return Err(RenderError::NoSamples);
    }
    // Every state is written: the profiler tells them apart by category.
    let options = RenderOptions {
        include_idle: true,
        ..options.clone()
    };
    let function_options = RenderOptions {
        by_function: true,
        ..options.clone()
    };
    let namers = Namers {
        by_line: FrameNamer::new(profile, &options),
        by_function: FrameNamer::new(profile, &function_options),
    };
    let namer = &namers.by_line;
    let mut tables: Vec<(ThreadId, ThreadTables)> = Vec::new();
    let runs: Vec<&Run> = profile.runs().collect();
    for (index, run) in runs.iter().enumerate() {
        if !namer.keeps(run.state, run.labels) || run.samples == 0 {
            continue;
        }
        if tables
            .last()
            .is_none_or(|(thread, _)| *thread != run.thread)
        {
            tables.push((run.thread, ThreadTables::default()));
        }
        let Some((_, thread)) = tables.last_mut() else {
            continue;
        };
        let frames = namer.frames(run.thread, run.labels, run.stack);
        let functions = namers.by_function.frames(run.thread, run.labels, run.stack);
        let keys = frames.into_iter().zip(functions);
        let Some(stack) = thread.stack(&namers, keys, category(run.state)) else {
            continue;
        };
        // A run ends an interval after its last sample, but the sampler may
        // have caught up early: the samples are spread no further than the
        // start of the thread's next run, so the track stays in time order.
        let next_start = runs
            .get(index + 1)
            .filter(|next| next.thread == run.thread)
            .map_or(run.end_ns, |next| next.start_ns);
        let end_ns = run.end_ns.min(next_start).max(run.start_ns);
        let step = (end_ns - run.start_ns) as f64 / run.samples as f64;
        for sample in 0..run.samples {
            let time_ns = run.start_ns as f64 + step * sample as f64;
            thread.samples.push((stack, time_ns / NS_PER_MS));
        }
    }
    let threads: Vec<GeckoThread> = tables
        .into_iter()
        .map(|(thread, tables)| gecko_thread(namer, thread, tables))
        .collect();
    let categories: Vec<Value> = CATEGORIES
        .iter()
        .map(|(name, color, subcategories)| {
            json!({"name": name, "color": color, "subcategories": subcategories})
        })
        .collect();
    let file = json!({
        "meta": {
            "version": VERSION,
            "interval": profile.meta.interval_ns() as f64 / NS_PER_MS,
            "startTime": profile.meta.start_unix_ns as f64 / NS_PER_MS,
            "shutdownTime": null,
            "processType": 0,
            "product": options.title,
            "platform": "Linux",
            "oscpu": "",
            "abi": "",
            "misc": "",
            "toolkit": "",
            "stackwalk": 0,
            "debug": 0,
            "gcpoison": 0,
            "asyncstack": 0,
            "presymbolicated": true,
            "categories": categories,
            "markerSchema": [],
            "extensions": {"schema": {"id": 0, "name": 1, "baseURL": 2}, "data": []},
        },
        "libs": [],
        "threads": threads,
        "processes": [],
        "pausedRanges": [],
    });
    let mut out = BufWriter::new(out);
    serde_json::to_writer(&mut out, &file).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// A thread's entry: its name, process and tables.
fn gecko_thread(namer: &FrameNamer<'_>, thread: ThreadId, tables: ThreadTables) -> GeckoThread {
    let profile = namer.profile();
    let info = profile.thread_info(thread);
    GeckoThread {
        name: profile.thread_label(thread),
        process_type: "default",
        process_name: namer
            .command(info.pid)
            .map_or_else(|| format!("pid {}", info.pid), str::to_string),
        register_time: 0.0,
        unregister_time: None,
        tid: info.tid,
        pid: info.pid,
        markers: json!({
            "schema": {"name": 0, "startTime": 1, "endTime": 2, "phase": 3, "category": 4, "data": 5},
            "data": [],
        }),
        samples: json!({
            "schema": {"stack": 0, "time": 1, "responsiveness": 2},
            "data": tables
                .samples
                .iter()
                .map(|&(stack, time)| json!([stack, time, 0]))
                .collect::<Vec<_>>(),
        }),
        frame_table: json!({
            "schema": {
                "location": 0, "relevantForJS": 1, "innerWindowID": 2, "implementation": 3,
                "optimizations": 4, "line": 5, "column": 6, "category": 7, "subcategory": 8,
            },
            "data": tables.frames,
        }),
        stack_table: json!({
            "schema": {"prefix": 0, "frame": 1},
            "data": tables.stacks,
        }),
        string_table: tables.strings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::{two_threads, MS};

    fn gecko(profile: &Profile) -> Value {
        let mut out = Vec::new();
        write_gecko(profile, &RenderOptions::default(), &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    /// Each sample of a thread as (time in ms, category name, frame
    /// locations outermost first, the innermost frame's line).
    fn samples(file: &Value, thread: &Value) -> Vec<(f64, String, Vec<String>, Value)> {
        let categories = file["meta"]["categories"].as_array().unwrap();
        let strings = thread["stringTable"].as_array().unwrap();
        let frames = thread["frameTable"]["data"].as_array().unwrap();
        let stacks = thread["stackTable"]["data"].as_array().unwrap();
        thread["samples"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let mut locations = Vec::new();
                let mut stack = sample[0].as_u64();
                let innermost =
                    &frames[stacks[stack.unwrap() as usize][1].as_u64().unwrap() as usize];
                while let Some(index) = stack {
                    let frame = &frames[stacks[index as usize][1].as_u64().unwrap() as usize];
                    locations.push(
                        strings[frame[0].as_u64().unwrap() as usize]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    );
                    stack = stacks[index as usize][0].as_u64();
                }
                locations.reverse();
                let category = categories[innermost[7].as_u64().unwrap() as usize]["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                (
                    sample[1].as_f64().unwrap(),
                    category,
                    locations,
                    innermost[5].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn every_sample_of_every_thread_with_its_state_and_line() {
        let file = gecko(&two_threads());
        assert_eq!(file["meta"]["version"], VERSION);
        assert_eq!(file["meta"]["interval"], 10.0);
        let threads = file["threads"].as_array().unwrap();
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[0]["name"], "MainThread");
        assert_eq!(threads[0]["processName"], "python app.py");
        assert_eq!(
            (threads[0]["pid"].as_u64(), threads[0]["tid"].as_u64()),
            (Some(100), Some(100))
        );
        let main = samples(&file, &threads[0]);
        let working = vec![
            "<module> (app.py:1)".to_string(),
            "work (app.py:4)".to_string(),
        ];
        let waiting = vec![
            "<module> (app.py:1)".to_string(),
            "wait (app.py:19)".to_string(),
        ];
        assert_eq!(
            main,
            [
                (0.0, "On CPU".into(), working.clone(), json!(5)),
                (10.0, "On CPU".into(), working.clone(), json!(5)),
                (20.0, "On CPU".into(), working, json!(5)),
                (30.0, "Idle".into(), waiting.clone(), json!(20)),
                (40.0, "Idle".into(), waiting, json!(20)),
            ]
        );
        let worker = samples(&file, &threads[1]);
        let categories: Vec<&str> = worker.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(
            categories,
            ["On CPU", "On CPU", "Waiting for the GIL", "Other"]
        );
        assert_eq!(worker[2].2, ["run (worker.py:2)"]);
        assert_eq!(worker[2].3, json!(4));
    }

    /// A sampler that caught up after a delay takes samples closer than
    /// the interval; a run's samples then end before its nominal end, and
    /// the next run's first sample still comes after them.
    #[test]
    fn samples_taken_early_stay_in_time_order() {
        let mut profile = Profile::new(crate::test_profiles::meta());
        let module = profile.frame("<module>", "app.py", 10, 1);
        let work = profile.frame("work", "app.py", 5, 4);
        let first = profile.stack_from_root([module]);
        let second = profile.stack_from_root([module, work]);
        let main = profile.thread(100, 100, 1, Some("MainThread"));
        let on_cpu = crate::test_profiles::state(Activity::OnCpu, true);
        for (time, stack) in [(0, first), (2, first), (4, first), (6, second)] {
            crate::test_profiles::add(&mut profile, time * MS, main, stack, on_cpu);
        }
        let file = gecko(&profile);
        let times: Vec<f64> = samples(&file, &file["threads"][0])
            .iter()
            .map(|sample| sample.0)
            .collect();
        assert_eq!(times, [0.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn a_profile_without_samples_is_not_written() {
        let profile = Profile::new(crate::test_profiles::meta());
        let result = write_gecko(&profile, &RenderOptions::default(), Vec::new());
        assert!(matches!(result, Err(RenderError::NoSamples)));
    }
}
