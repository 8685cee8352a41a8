//! Every format through the public API, on generated and long recordings.

use std::path::Path;

use proptest::prelude::*;
use pydx_profile::{
    Activity, LabelSetId, Meta, Profile, SampleKey, SampleState, StackId, ThreadId,
};
use pydx_render::{render, Format, RenderError, RenderOptions};
use serde_json::Value;

const MS: u64 = 1_000_000;
const ACTIVITIES: [Activity; 5] = [
    Activity::OnCpu,
    Activity::GilWait,
    Activity::Idle,
    Activity::Unknown,
    Activity::CpuWait,
];

/// One generated sample: thread, stack (an index into [`stacks`] or none),
/// activity, whether it held the GIL, and milliseconds since the last one.
type GeneratedSample = (usize, Option<usize>, usize, bool, u64);

fn rendered(format: Format, profile: &Profile, options: &RenderOptions) -> Vec<u8> {
    let mut out = Vec::new();
    render(format, profile, options, &mut out).unwrap();
    out
}

fn json(format: Format, profile: &Profile, options: &RenderOptions) -> Value {
    serde_json::from_slice(&rendered(format, profile, options)).unwrap()
}

/// Three stacks sharing a `main` frame.
fn stacks(profile: &mut Profile) -> Vec<Option<StackId>> {
    let main = profile.frame("main", "app.py", 3, 1);
    let parse = profile.frame("parse", "app.py", 12, 10);
    let parse_later = profile.frame("parse", "app.py", 14, 10);
    let query = profile.frame("query", "/venv/site-packages/db.py", 40, 38);
    vec![
        profile.stack_from_root([main, parse]),
        profile.stack_from_root([main, parse_later]),
        profile.stack_from_root([main, query]),
    ]
}

fn generated_profile(samples: &[GeneratedSample]) -> Profile {
    let mut profile = Profile::new(Meta::default());
    let stacks = stacks(&mut profile);
    let threads: Vec<ThreadId> = [(10, 100), (10, 101), (20, 200)]
        .into_iter()
        .map(|(pid, tid)| profile.thread(pid, tid, u64::from(tid), None))
        .collect();
    let mut time_ns = 0;
    for &(thread, stack, activity, holds_gil, gap_ms) in samples {
        time_ns += gap_ms * MS;
        let key = SampleKey {
            thread: threads[thread],
            stack: stack.and_then(|index| stacks[index]),
            state: SampleState {
                activity: ACTIVITIES[activity],
                holds_gil,
            },
            labels: LabelSetId(0),
        };
        profile.add_sample(time_ns, key);
    }
    profile
}

/// Checks that every `B` has a matching `E` on the same thread, in stack
/// order, and that each thread's timestamps never go back; returns the
/// number of `B` events.
fn check_trace(trace: &Value) -> usize {
    let mut threads: Vec<(u64, Vec<String>, f64)> = Vec::new();
    let mut begins = 0;
    for event in trace["traceEvents"].as_array().unwrap() {
        if event["ph"] == "M" {
            continue;
        }
        let tid = event["tid"].as_u64().unwrap();
        let ts = event["ts"].as_f64().unwrap();
        let position = match threads.iter().position(|(t, _, _)| *t == tid) {
            Some(position) => position,
            None => {
                threads.push((tid, Vec::new(), ts));
                threads.len() - 1
            }
        };
        let (_, open, last_ts) = &mut threads[position];
        assert!(ts >= *last_ts);
        *last_ts = ts;
        let name = event["name"].as_str().unwrap().to_string();
        if event["ph"] == "B" {
            begins += 1;
            open.push(name);
        } else {
            assert_eq!(event["ph"], "E");
            assert_eq!(open.pop(), Some(name));
        }
    }
    assert!(threads.iter().all(|(_, open, _)| open.is_empty()));
    begins
}

/// Checks a speedscope file's shape; returns its profiles.
fn check_speedscope(file: &Value) -> Vec<Value> {
    let frame_count = file["shared"]["frames"].as_array().unwrap().len();
    let profiles = file["profiles"].as_array().unwrap();
    for profile in profiles {
        let samples = profile["samples"].as_array().unwrap();
        let weights = profile["weights"].as_array().unwrap();
        assert_eq!(samples.len(), weights.len());
        assert!(samples
            .iter()
            .flat_map(|sample| sample.as_array().unwrap())
            .all(|index| (index.as_u64().unwrap() as usize) < frame_count));
        assert!(weights.iter().all(|weight| weight.as_f64().unwrap() > 0.0));
        let total: f64 = weights.iter().map(|weight| weight.as_f64().unwrap()).sum();
        let span = profile["endValue"].as_f64().unwrap() - profile["startValue"].as_f64().unwrap();
        assert!((total - span).abs() < 1e-6);
    }
    profiles.clone()
}

fn options(
    include_idle: bool,
    gil_only: bool,
    per_thread: bool,
    by_function: bool,
) -> RenderOptions {
    let mut options = RenderOptions::default();
    options.include_idle = include_idle;
    options.gil_only = gil_only;
    options.per_thread = per_thread;
    options.by_function = by_function;
    options
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_format_is_consistent(
        samples in prop::collection::vec(
            (0..3usize, prop::option::of(0..3usize), 0..5usize, any::<bool>(), 1..60u64),
            0..80,
        ),
        include_idle in any::<bool>(),
        gil_only in any::<bool>(),
        per_thread in any::<bool>(),
        by_function in any::<bool>(),
    ) {
        let profile = generated_profile(&samples);
        let options = options(include_idle, gil_only, per_thread, by_function);
        let shown = samples
            .iter()
            .filter(|&&(_, _, activity, holds_gil, _)| {
                (include_idle || ACTIVITIES[activity].counts_as_cpu())
                    && (!gil_only || holds_gil)
            })
            .count();

        let collapsed = String::from_utf8(rendered(Format::Collapsed, &profile, &options)).unwrap();
        let lines: Vec<&str> = collapsed.lines().collect();
        let mut sorted = lines.clone();
        sorted.sort();
        prop_assert_eq!(&lines, &sorted);
        let total: usize = lines
            .iter()
            .map(|line| line.rsplit_once(' ').unwrap().1.parse::<usize>().unwrap())
            .sum();
        prop_assert_eq!(total, shown);
        let several_processes = samples.iter().any(|sample| sample.0 == 2)
            && samples.iter().any(|sample| sample.0 != 2);
        prop_assert!(lines.iter().all(|line| line.starts_with("process ") == several_processes));

        let trace = json(Format::ChromeTrace, &profile, &options);
        let begins = check_trace(&trace);
        prop_assert_eq!(begins == 0, shown == 0);

        let mut out = Vec::new();
        let speedscope = render(Format::Speedscope, &profile, &options, &mut out);
        let mut svg = Vec::new();
        let flamegraph = render(Format::Flamegraph, &profile, &options, &mut svg);
        if shown == 0 {
            prop_assert!(matches!(speedscope, Err(RenderError::NoSamples)));
            prop_assert!(matches!(flamegraph, Err(RenderError::NoSamples)));
        } else {
            speedscope.unwrap();
            flamegraph.unwrap();
            let file: Value = serde_json::from_slice(&out).unwrap();
            let profiles = check_speedscope(&file);
            prop_assert!(!profiles.is_empty() && profiles.len() <= 3);
        }
    }
}

#[test]
fn default_file_names_render_in_their_format() {
    let samples: Vec<GeneratedSample> =
        (0..30).map(|i| (i % 2, Some(i % 3), 0, true, 10)).collect();
    let profile = generated_profile(&samples);
    for format in Format::ALL {
        let name = format!("profile.{}", format.extension());
        let format = Format::from_path(Path::new(&name)).unwrap();
        let out = rendered(format, &profile, &RenderOptions::default());
        assert!(!out.is_empty(), "{name}");
    }
}

/// A thread whose stack changes at every 1 ms sample for long enough that
/// the profile merges its short runs.
#[test]
fn merged_short_runs_show_as_several_short_stacks() {
    let mut profile = Profile::new(Meta {
        rate_hz: 1000.0,
        ..Meta::default()
    });
    let stacks = stacks(&mut profile);
    let thread = profile.thread(10, 100, 100, Some("MainThread"));
    let sample_count = 300_000;
    for i in 0..sample_count {
        let key = SampleKey {
            thread,
            stack: stacks[(i % 3) as usize],
            state: SampleState {
                activity: Activity::OnCpu,
                holds_gil: true,
            },
            labels: LabelSetId(0),
        };
        profile.add_sample(i * MS, key);
    }
    assert!(profile.runs().any(|run| run.is_mixed()));
    let options = RenderOptions::default();

    let file = json(Format::Speedscope, &profile, &options);
    let profiles = check_speedscope(&file);
    assert_eq!(profiles.len(), 1);
    let frames = file["shared"]["frames"].as_array().unwrap();
    let mixed = frames
        .iter()
        .position(|frame| frame["name"] == "[several short stacks]")
        .unwrap();
    let weights = profiles[0]["weights"].as_array().unwrap();
    let mixed_seconds: f64 = profiles[0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .zip(weights)
        .filter(|(sample, _)| {
            sample.as_array().unwrap().last().and_then(Value::as_u64) == Some(mixed as u64)
        })
        .map(|(_, weight)| weight.as_f64().unwrap())
        .sum();
    assert!(mixed_seconds > 1.0);

    let trace = json(Format::ChromeTrace, &profile, &options);
    check_trace(&trace);

    // The counts are exact whatever the timeline keeps.
    let collapsed = String::from_utf8(rendered(Format::Collapsed, &profile, &options)).unwrap();
    assert_eq!(
        collapsed,
        "main (app.py:3);parse (app.py:12) 100000\n\
         main (app.py:3);parse (app.py:14) 100000\n\
         main (app.py:3);query (/venv/site-packages/db.py:40) 100000\n"
    );
}
