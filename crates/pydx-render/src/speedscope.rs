//! speedscope JSON (<https://www.speedscope.app/file-format-schema.json>).

use std::io::{BufWriter, Write};

use pydx_profile::Profile;
use serde::Serialize;

use crate::frames::{FrameNamer, FrameTable};
use crate::timeline::thread_timelines;
use crate::{RenderError, RenderOptions};

const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";
const NS_PER_SECOND: f64 = 1e9;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: Shared<'a>,
    profiles: Vec<SampledProfile>,
    name: &'a str,
    active_profile_index: usize,
    exporter: &'static str,
}

#[derive(Serialize)]
struct Shared<'a> {
    frames: Vec<Frame<'a>>,
}

#[derive(Serialize)]
struct Frame<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampledProfile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    start_value: f64,
    end_value: f64,
    samples: Vec<Vec<usize>>,
    weights: Vec<f64>,
}

/// Writes speedscope JSON: one sampled profile per thread that shows
/// anything, drawn from the profile's timeline so that speedscope's "Time
/// Order" view shows what the thread did when.
///
/// Each stretch of time a thread spent in one stack is one sample (frames
/// outermost first) weighing its duration in seconds; `startValue` and
/// `endValue` are seconds since the start of the recording. Time when the
/// thread showed nothing (no sample, or samples left out by the options) is
/// an empty sample, so that weights add up to `endValue - startValue`.
/// Profiles are named by the thread's label, with its PID when several
/// processes were sampled; the file is named [`RenderOptions::title`].
///
/// Fails with [`RenderError::NoSamples`], before writing anything, when no
/// sample passes the filters (speedscope cannot open a file without
/// profiles).
pub fn write_speedscope(
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    let namer = FrameNamer::new(profile, options);
    let mut table = FrameTable::default();
    let timelines = thread_timelines(&namer, &mut table);
    if timelines.is_empty() {
        return Err(RenderError::NoSamples);
    }
    let profiles = timelines
        .into_iter()
        .map(|(thread, spans)| {
            let label = profile.thread_label(thread);
            let name = if namer.several_processes() {
                format!("{label} (pid {})", profile.thread_info(thread).pid)
            } else {
                label
            };
            let seconds = |ns: u64| ns as f64 / NS_PER_SECOND;
            SampledProfile {
                kind: "sampled",
                name,
                unit: "seconds",
                start_value: spans.first().map_or(0.0, |span| seconds(span.start_ns)),
                end_value: spans.last().map_or(0.0, |span| seconds(span.end_ns)),
                weights: spans
                    .iter()
                    .map(|span| seconds(span.duration_ns()))
                    .collect(),
                samples: spans.into_iter().map(|span| span.frames).collect(),
            }
        })
        .collect();
    let frames = table
        .iter()
        .map(|(key, name)| {
            let location = namer.location(key);
            Frame {
                name,
                file: location.map(|(file, _)| file),
                line: location.map(|(_, line)| line).filter(|&line| line != 0),
            }
        })
        .collect();
    let file = File {
        schema: SCHEMA,
        shared: Shared { frames },
        profiles,
        name: &options.title,
        active_profile_index: 0,
        exporter: concat!("pydx ", env!("CARGO_PKG_VERSION")),
    };
    let mut out = BufWriter::new(out);
    serde_json::to_writer(&mut out, &file).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::{add, meta, state, two_threads, MS};
    use pydx_profile::{Activity, Meta, ProcessMeta};
    use serde_json::Value;

    fn speedscope(profile: &Profile, options: &RenderOptions) -> Value {
        let mut out = Vec::new();
        write_speedscope(profile, options, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    /// Checks the shape of a speedscope file; returns its profiles.
    fn check_shape(file: &Value) -> &Vec<Value> {
        assert_eq!(file["$schema"], SCHEMA);
        assert_eq!(file["activeProfileIndex"], 0);
        assert!(file["exporter"].as_str().unwrap().starts_with("pydx "));
        let frame_count = file["shared"]["frames"].as_array().unwrap().len();
        for frame in file["shared"]["frames"].as_array().unwrap() {
            assert!(frame["name"].is_string());
        }
        let profiles = file["profiles"].as_array().unwrap();
        for profile in profiles {
            assert_eq!(profile["type"], "sampled");
            assert_eq!(profile["unit"], "seconds");
            let samples = profile["samples"].as_array().unwrap();
            let weights = profile["weights"].as_array().unwrap();
            assert_eq!(samples.len(), weights.len());
            for sample in samples {
                for index in sample.as_array().unwrap() {
                    assert!((index.as_u64().unwrap() as usize) < frame_count);
                }
            }
            let total: f64 = weights.iter().map(|w| w.as_f64().unwrap()).sum();
            let duration =
                profile["endValue"].as_f64().unwrap() - profile["startValue"].as_f64().unwrap();
            assert!((total - duration).abs() < 1e-9, "{total} != {duration}");
        }
        profiles
    }

    /// The frame names of each sample of a profile, with their weights.
    fn samples(file: &Value, profile: &Value) -> Vec<(Vec<String>, f64)> {
        let frames = file["shared"]["frames"].as_array().unwrap();
        let samples = profile["samples"].as_array().unwrap();
        let weights = profile["weights"].as_array().unwrap();
        samples
            .iter()
            .zip(weights)
            .map(|(sample, weight)| {
                let names = sample
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|index| {
                        let frame = &frames[index.as_u64().unwrap() as usize];
                        frame["name"].as_str().unwrap().to_string()
                    })
                    .collect();
                (names, (weight.as_f64().unwrap() * 1000.0).round() / 1000.0)
            })
            .collect()
    }

    #[test]
    fn each_thread_gets_a_sampled_timeline() {
        let file = speedscope(&two_threads(), &RenderOptions::default());
        assert_eq!(file["name"], "pydx");
        let profiles = check_shape(&file);
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0]["name"], "MainThread");
        assert_eq!(profiles[1]["name"], "worker");
        assert_eq!(
            samples(&file, &profiles[0]),
            [(
                vec![
                    "<module> (app.py:10)".to_string(),
                    "work (app.py:5)".to_string()
                ],
                0.03
            )]
        );
        assert_eq!(
            samples(&file, &profiles[1]),
            [
                (vec!["run (worker.py:3)".to_string()], 0.02),
                (vec![], 0.01),
                (vec!["<no Python frames>".to_string()], 0.01),
            ]
        );
        assert_eq!(profiles[1]["startValue"], 0.0);
        assert_eq!(profiles[1]["endValue"], 0.04);
        let work = &file["shared"]["frames"][1];
        assert_eq!(work["file"], "app.py");
        assert_eq!(work["line"], 5);
    }

    #[test]
    fn a_long_idle_run_is_one_sample() {
        let mut profile = Profile::new(meta());
        let main = profile.frame("main", "app.py", 1, 1);
        let sleep = profile.frame("sleep", "app.py", 2, 1);
        let compute = profile.frame("compute", "app.py", 3, 1);
        let sleeping = profile.stack_from_root([main, sleep]);
        let computing = profile.stack_from_root([main, compute]);
        let thread = profile.thread(100, 100, 1, Some("MainThread"));
        for time in (0..300).step_by(10) {
            let idle = state(Activity::Idle, false);
            add(&mut profile, time * MS, thread, sleeping, idle);
        }
        for time in (300..350).step_by(10) {
            let on_cpu = state(Activity::OnCpu, true);
            add(&mut profile, time * MS, thread, computing, on_cpu);
        }
        let main_sleep = vec![
            "main (app.py:1)".to_string(),
            "sleep (app.py:2)".to_string(),
        ];
        let main_compute = vec![
            "main (app.py:1)".to_string(),
            "compute (app.py:3)".to_string(),
        ];

        let options = RenderOptions {
            include_idle: true,
            ..RenderOptions::default()
        };
        let file = speedscope(&profile, &options);
        let profiles = check_shape(&file);
        assert_eq!(
            samples(&file, &profiles[0]),
            [(main_sleep, 0.3), (main_compute.clone(), 0.05)]
        );

        let file = speedscope(&profile, &RenderOptions::default());
        let profiles = check_shape(&file);
        assert_eq!(samples(&file, &profiles[0]), [(main_compute, 0.05)]);
        assert_eq!(profiles[0]["startValue"], 0.3);
    }

    #[test]
    fn threads_of_several_processes_name_their_pid() {
        let mut profile = Profile::new(Meta {
            processes: vec![ProcessMeta {
                pid: 1,
                command: "python a.py".to_string(),
                python_version: "3.13.0".to_string(),
                ..ProcessMeta::default()
            }],
            ..Meta::default()
        });
        let first = profile.thread(1, 11, 1, Some("MainThread"));
        let second = profile.thread(2, 22, 2, Some("MainThread"));
        for thread in [first, second] {
            add(&mut profile, 0, thread, None, state(Activity::OnCpu, true));
        }
        let file = speedscope(&profile, &RenderOptions::default());
        let profiles = check_shape(&file);
        assert_eq!(profiles[0]["name"], "MainThread (pid 1)");
        assert_eq!(profiles[1]["name"], "MainThread (pid 2)");
        assert_eq!(
            samples(&file, &profiles[0])[0].0,
            ["process 1 python a.py", "<no Python frames>"]
        );
    }

    #[test]
    fn nothing_to_show_is_an_error() {
        let mut profile = Profile::new(meta());
        let thread = profile.thread(100, 100, 1, None);
        add(&mut profile, 0, thread, None, state(Activity::Idle, false));
        let mut out = Vec::new();
        let result = write_speedscope(&profile, &RenderOptions::default(), &mut out);
        assert!(matches!(result, Err(RenderError::NoSamples)));
        assert!(out.is_empty());
    }
}
