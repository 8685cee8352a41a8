//! pprof: pydx's saved-profile format (gzipped `profile.proto`), readable by
//! `go tool pprof`, Pyroscope, Datadog and speedscope.
//!
//! Each distinct sample becomes one pprof sample whose values are the sample
//! count and the wall time it stands for, labelled with `pid`, `thread`,
//! `thread_id`, `state` (`on_cpu`, `gil_wait`, `idle`), `gil` and any labels
//! the sampler attached (such as `endpoint`). The timeline is stored as
//! extra samples with zero values, so that every pprof tool sums them to
//! nothing, carrying `pydx.run.*` numeric labels that pydx reads back.
//! pydx's own metadata is a JSON comment.

use std::collections::HashMap;
use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use prost::Message;

use crate::model::{
    Activity, Execution, FrameId, LabelSetId, Meta, Observed, Profile, SampleKey, SampleState,
    Tally, ThreadId,
};
use crate::timeline::{Run, RunStack};

/// Largest decompressed profile pydx reads.
const MAX_DECOMPRESSED: u64 = 1 << 30;
/// Prefix of the comment that holds pydx's metadata.
const META_COMMENT: &str = "pydx.meta ";

const LABEL_PID: &str = "pid";
const LABEL_THREAD: &str = "thread";
const LABEL_THREAD_ID: &str = "thread_id";
const LABEL_THREAD_IDENT: &str = "thread_ident";
const LABEL_STATE: &str = "state";
const LABEL_GIL: &str = "gil";
const LABEL_RUN_START: &str = "pydx.run.start_ns";
const LABEL_RUN_END: &str = "pydx.run.end_ns";
const LABEL_RUN_SAMPLES: &str = "pydx.run.samples";
const LABEL_RUN_MIXED: &str = "pydx.run.mixed";
const LABEL_OBSERVATION_KIND: &str = "pydx.observation.kind";
/// Observation kinds as pprof labels name them (see [`Observed`]).
const OBSERVED_CALL_ARGS: &str = "call.args";
const OBSERVED_CALL_ARGS_AGAIN: &str = "call.args.again";
/// The prefix of a local's type observation: `local.type:NAME`.
const OBSERVED_LOCAL_TYPE: &str = "local.type:";
const OBSERVED_SQL_STATEMENT: &str = "db.statement";
const OBSERVED_SQL_SAME_CALL: &str = "db.call.same";
const OBSERVED_SQL_NEW_CALL: &str = "db.call.new";
/// How a frame ran: its value is [`EXEC_BYTECODE`] or [`EXEC_NATIVE_CALL`].
const OBSERVED_EXEC: &str = "exec";
const EXEC_BYTECODE: &str = "bytecode";
const EXEC_NATIVE_CALL: &str = "native-call";
const LABEL_OBSERVATION_VALUE: &str = "pydx.observation.value";
const LABEL_OBSERVATION_COUNT: &str = "pydx.observation.count";
const RESERVED_LABELS: [&str; 13] = [
    LABEL_PID,
    LABEL_THREAD,
    LABEL_THREAD_ID,
    LABEL_THREAD_IDENT,
    LABEL_STATE,
    LABEL_GIL,
    LABEL_RUN_START,
    LABEL_RUN_END,
    LABEL_RUN_SAMPLES,
    LABEL_RUN_MIXED,
    LABEL_OBSERVATION_KIND,
    LABEL_OBSERVATION_VALUE,
    LABEL_OBSERVATION_COUNT,
];

/// Why a profile file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Reading the file failed.
    #[error("cannot read the profile")]
    Io(#[from] std::io::Error),
    /// The file has no bytes at all.
    #[error("the file is empty, not a pprof profile")]
    Empty,
    /// The bytes are not a (gzipped) pprof protobuf.
    #[error("not a pprof profile")]
    Decode(#[from] prost::DecodeError),
    /// The protobuf decoded but is inconsistent.
    #[error("corrupt pprof profile: {0}")]
    Corrupt(String),
}

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, Message)]
struct PprofProfile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
    #[prost(int64, tag = "3")]
    num: i64,
    #[prost(int64, tag = "4")]
    num_unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Mapping {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "5")]
    filename: i64,
    #[prost(bool, tag = "7")]
    has_functions: bool,
    #[prost(bool, tag = "8")]
    has_filenames: bool,
    #[prost(bool, tag = "9")]
    has_line_numbers: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
    #[prost(int64, tag = "5")]
    start_line: i64,
}

/// Builds the string table of a pprof profile.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut strings = Self::default();
        strings.id("");
        strings
    }

    fn id(&mut self, text: &str) -> i64 {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let id = self.table.len() as i64;
        self.table.push(text.to_string());
        self.index.insert(text.to_string(), id);
        id
    }
}

/// Field number of `Profile.sample` in `profile.proto`.
const SAMPLE_FIELD: u32 = 2;

/// Writes `profile` as gzipped pprof.
///
/// The samples (the timeline's runs are most of them) are encoded and
/// compressed one at a time, then the rest of the profile: a protobuf
/// parser joins the repeated field from both parts, and a long recording
/// never sits in memory twice over while it is written.
pub fn write_pprof(profile: &Profile, out: impl Write) -> std::io::Result<()> {
    let mut gzip = GzEncoder::new(out, flate2::Compression::default());
    let mut buffer = Vec::new();
    let rest = to_pprof(profile, &mut |sample| {
        buffer.clear();
        prost::encoding::message::encode(SAMPLE_FIELD, &sample, &mut buffer);
        gzip.write_all(&buffer)
    })?;
    gzip.write_all(&rest.encode_to_vec())?;
    gzip.finish()?.flush()
}

/// The pprof form of `profile`, its samples handed to `emit` one by one
/// instead of kept in it.
fn to_pprof(
    profile: &Profile,
    emit: &mut dyn FnMut(Sample) -> std::io::Result<()>,
) -> std::io::Result<PprofProfile> {
    let mut strings = Strings::new();
    let interval = profile.meta.interval_ns() as i64;
    let mut pprof = PprofProfile {
        sample_type: vec![
            ValueType {
                r#type: strings.id("samples"),
                unit: strings.id("count"),
            },
            ValueType {
                r#type: strings.id("wall"),
                unit: strings.id("nanoseconds"),
            },
        ],
        mapping: vec![Mapping {
            id: 1,
            filename: strings.id("python"),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
        }],
        time_nanos: profile.meta.start_unix_ns as i64,
        duration_nanos: profile.meta.duration_ns as i64,
        period_type: Some(ValueType {
            r#type: strings.id("wall"),
            unit: strings.id("nanoseconds"),
        }),
        period: interval,
        default_sample_type: 1,
        ..PprofProfile::default()
    };
    let meta = serde_json::to_string(&profile.meta).expect("metadata serializes");
    pprof
        .comment
        .push(strings.id(&format!("{META_COMMENT}{meta}")));

    // One location per frame, one function per (name, file, first line).
    let mut functions: HashMap<(i64, i64, u32), u64> = HashMap::new();
    let mut locations: HashMap<FrameId, u64> = HashMap::new();
    let mut location_ids = |profile: &Profile,
                            frames: Vec<FrameId>,
                            pprof: &mut PprofProfile,
                            strings: &mut Strings| {
        frames
            .into_iter()
            .map(|frame_id| {
                *locations.entry(frame_id).or_insert_with(|| {
                    let frame = profile.frame_info(frame_id);
                    let name = strings.id(profile.str(frame.function));
                    let file = strings.id(profile.str(frame.file));
                    let next_function = functions.len() as u64 + 1;
                    let function_id = *functions
                        .entry((name, file, frame.first_line))
                        .or_insert_with(|| {
                            pprof.function.push(Function {
                                id: next_function,
                                name,
                                system_name: name,
                                filename: file,
                                start_line: i64::from(frame.first_line),
                            });
                            next_function
                        });
                    let id = pprof.location.len() as u64 + 1;
                    pprof.location.push(Location {
                        id,
                        mapping_id: 1,
                        line: vec![Line {
                            function_id,
                            line: i64::from(frame.line),
                        }],
                    });
                    id
                })
            })
            .collect::<Vec<u64>>()
    };

    // Sorted for a stable file; by reference, as a copy of every key would
    // add megabytes to the peak of a long recording.
    let mut samples: Vec<(&SampleKey, Tally)> = profile.timed_samples().collect();
    samples.sort_unstable_by_key(|&(key, _)| *key);
    for (key, tally) in samples {
        let label = sample_labels(profile, key.thread, key.state, key.labels, &mut strings);
        let location_id = location_ids(
            profile,
            profile.frames_innermost_first(key.stack),
            &mut pprof,
            &mut strings,
        );
        emit(Sample {
            location_id,
            value: vec![tally.count as i64, tally.nanos as i64],
            label,
        })?;
    }
    for run in profile.runs() {
        let mut label = sample_labels(profile, run.thread, run.state, run.labels, &mut strings);
        let mut num = |key: &str, value: u64| Label {
            key: strings.id(key),
            num: value as i64,
            ..Label::default()
        };
        label.push(num(LABEL_RUN_START, run.start_ns));
        label.push(num(LABEL_RUN_END, run.end_ns));
        label.push(num(LABEL_RUN_SAMPLES, run.samples));
        let stack = match run.stack {
            RunStack::Stack(stack) => stack,
            RunStack::Mixed => {
                label.push(num(LABEL_RUN_MIXED, 1));
                None
            }
        };
        let location_id = location_ids(
            profile,
            profile.frames_innermost_first(stack),
            &mut pprof,
            &mut strings,
        );
        emit(Sample {
            location_id,
            value: vec![0, 0],
            label,
        })?;
    }
    for (frame, what, value, count) in profile.observations() {
        let (kind, value) = observation_labels(profile, what, value);
        let location_id = location_ids(profile, vec![frame], &mut pprof, &mut strings);
        let mut text = |key: &str, value: &str| Label {
            key: strings.id(key),
            str: strings.id(value),
            ..Label::default()
        };
        let mut label = vec![
            text(LABEL_OBSERVATION_KIND, &kind),
            text(LABEL_OBSERVATION_VALUE, value),
        ];
        label.push(Label {
            key: strings.id(LABEL_OBSERVATION_COUNT),
            num: count as i64,
            ..Label::default()
        });
        emit(Sample {
            location_id,
            value: vec![0, 0],
            label,
        })?;
    }
    pprof.string_table = strings.table;
    Ok(pprof)
}

fn sample_labels(
    profile: &Profile,
    thread: ThreadId,
    state: SampleState,
    labels: LabelSetId,
    strings: &mut Strings,
) -> Vec<Label> {
    let info = profile.thread_info(thread);
    let mut text = |key: &str, value: &str| Label {
        key: strings.id(key),
        str: strings.id(value),
        ..Label::default()
    };
    let mut out = vec![
        text(LABEL_THREAD, &profile.thread_label(thread)),
        text(LABEL_STATE, state.activity.as_str()),
        text(LABEL_GIL, if state.holds_gil { "held" } else { "not_held" }),
    ];
    for (key, value) in profile.labels(labels) {
        out.push(text(key, value));
    }
    let mut num = |key: &str, value: i64| Label {
        key: strings.id(key),
        num: value,
        ..Label::default()
    };
    out.push(num(LABEL_PID, i64::from(info.pid)));
    out.push(num(LABEL_THREAD_ID, i64::from(info.tid)));
    out.push(num(LABEL_THREAD_IDENT, info.ident as i64));
    out
}

/// Reads a pprof profile (gzipped or not) written by pydx or another tool.
pub fn read_pprof(input: impl Read) -> Result<Profile, ProfileError> {
    let mut raw = Vec::new();
    input.take(MAX_DECOMPRESSED).read_to_end(&mut raw)?;
    if raw.is_empty() {
        return Err(ProfileError::Empty);
    }
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut decoded = Vec::new();
        GzDecoder::new(raw.as_slice())
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut decoded)?;
        decoded
    } else {
        raw
    };
    from_pprof(PprofProfile::decode(bytes.as_slice())?)
}

fn from_pprof(pprof: PprofProfile) -> Result<Profile, ProfileError> {
    let strings = &pprof.string_table;
    let text = |id: i64| -> Result<&str, ProfileError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| strings.get(i))
            .map(String::as_str)
            .ok_or_else(|| ProfileError::Corrupt(format!("string index {id} out of range")))
    };
    let meta = pprof
        .comment
        .iter()
        .filter_map(|&id| text(id).ok()?.strip_prefix(META_COMMENT))
        .find_map(|json| serde_json::from_str::<Meta>(json).ok())
        .unwrap_or_else(|| Meta {
            tool: "unknown".into(),
            start_unix_ns: pprof.time_nanos.max(0) as u64,
            duration_ns: pprof.duration_nanos.max(0) as u64,
            rate_hz: if pprof.period > 0 {
                1e9 / pprof.period as f64
            } else {
                0.0
            },
            ..Meta::default()
        });
    let interval = meta.interval_ns() as i64;
    let mut profile = Profile::new(meta);

    let functions: HashMap<u64, &Function> = pprof.function.iter().map(|f| (f.id, f)).collect();
    let mut frames: HashMap<u64, Vec<FrameId>> = HashMap::new();
    for location in &pprof.location {
        let mut ids = Vec::with_capacity(location.line.len());
        // pprof lists inlined functions innermost first within a location.
        for line in &location.line {
            let function = functions.get(&line.function_id).ok_or_else(|| {
                ProfileError::Corrupt(format!(
                    "location {} has no function {}",
                    location.id, line.function_id
                ))
            })?;
            ids.push(profile.frame(
                text(function.name)?,
                text(function.filename)?,
                line.line.clamp(0, i64::from(u32::MAX)) as u32,
                function.start_line.clamp(0, i64::from(u32::MAX)) as u32,
            ));
        }
        frames.insert(location.id, ids);
    }

    for sample in &pprof.sample {
        let mut innermost_first = Vec::new();
        for id in &sample.location_id {
            let location = frames.get(id).ok_or_else(|| {
                ProfileError::Corrupt(format!("sample refers to unknown location {id}"))
            })?;
            innermost_first.extend_from_slice(location);
        }
        let stack = profile.stack_from_root(innermost_first.into_iter().rev());
        let mut strs: Vec<(&str, &str)> = Vec::new();
        let mut nums: HashMap<&str, i64> = HashMap::new();
        for label in &sample.label {
            let key = text(label.key)?;
            if label.str != 0 {
                strs.push((key, text(label.str)?));
            } else {
                nums.insert(key, label.num);
            }
        }
        let str_label = |key: &str| strs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v);
        let num = |key: &str| nums.get(key).copied().unwrap_or(0).max(0) as u64;
        let thread = profile.thread(
            num(LABEL_PID) as u32,
            num(LABEL_THREAD_ID) as u32,
            num(LABEL_THREAD_IDENT),
            str_label(LABEL_THREAD).filter(|n| !n.starts_with("thread ")),
        );
        let state = SampleState {
            activity: str_label(LABEL_STATE)
                .and_then(Activity::parse)
                .unwrap_or(Activity::OnCpu),
            holds_gil: str_label(LABEL_GIL) == Some("held"),
        };
        let user_labels: Vec<(&str, &str)> = strs
            .iter()
            .filter(|(k, _)| !RESERVED_LABELS.contains(k))
            .copied()
            .collect();
        if let Some(kind) = str_label(LABEL_OBSERVATION_KIND) {
            let frame = profile
                .frames_innermost_first(stack)
                .first()
                .copied()
                .ok_or_else(|| ProfileError::Corrupt("an observation without a frame".into()))?;
            let value = str_label(LABEL_OBSERVATION_VALUE).unwrap_or_default();
            let count = num(LABEL_OBSERVATION_COUNT);
            if let Some(name) = kind.strip_prefix(OBSERVED_LOCAL_TYPE) {
                let name = profile.intern(name);
                profile.restore_observation(frame, Observed::LocalType(name), value, count);
            } else if let Some((what, value)) = observation_of(kind, value) {
                profile.restore_observation(frame, what, value, count);
            }
            // Else a kind this version does not know (a newer pydx's): no
            // rule of this one would read it.
            continue;
        }
        let labels = profile.label_set(&user_labels);
        if nums.contains_key(LABEL_RUN_START) {
            if num(LABEL_RUN_END) < num(LABEL_RUN_START) {
                return Err(ProfileError::Corrupt(format!(
                    "a timeline run that ends ({}) before it starts ({})",
                    num(LABEL_RUN_END),
                    num(LABEL_RUN_START)
                )));
            }
            profile.push_run(Run {
                thread,
                stack: if num(LABEL_RUN_MIXED) == 1 {
                    RunStack::Mixed
                } else {
                    RunStack::Stack(stack)
                },
                state,
                labels,
                start_ns: num(LABEL_RUN_START),
                end_ns: num(LABEL_RUN_END),
                samples: num(LABEL_RUN_SAMPLES),
            });
        } else {
            let count = sample.value.first().copied().unwrap_or(0);
            if count < 0 {
                return Err(ProfileError::Corrupt(format!(
                    "negative sample count {count}"
                )));
            }
            // Profiles written before samples carried times hold
            // count × period here too.
            let nanos = sample.value.get(1).copied().unwrap_or(count * interval);
            profile.add_count(
                SampleKey {
                    thread,
                    stack,
                    state,
                    labels,
                },
                count as u64,
                nanos.max(0) as u64,
            );
        }
    }
    Ok(profile)
}

/// The pprof labels (kind, value) of an observation.
fn observation_labels<'a>(profile: &Profile, what: Observed, value: &'a str) -> (String, &'a str) {
    let kind = match what {
        Observed::CallArgs => OBSERVED_CALL_ARGS,
        Observed::CallArgsAgain => OBSERVED_CALL_ARGS_AGAIN,
        Observed::LocalType(name) => {
            return (format!("{OBSERVED_LOCAL_TYPE}{}", profile.str(name)), value)
        }
        Observed::SqlStatement => OBSERVED_SQL_STATEMENT,
        Observed::SqlSameCall => OBSERVED_SQL_SAME_CALL,
        Observed::SqlNewCall => OBSERVED_SQL_NEW_CALL,
        Observed::Exec(Execution::Bytecode) => return (OBSERVED_EXEC.into(), EXEC_BYTECODE),
        Observed::Exec(Execution::NativeCall) => return (OBSERVED_EXEC.into(), EXEC_NATIVE_CALL),
    };
    (kind.into(), value)
}

/// The observation pprof labels (kind, value) stand for, with its value,
/// but for a local's type (see [`OBSERVED_LOCAL_TYPE`]); `None` for a kind
/// this version does not know.
fn observation_of<'a>(kind: &str, value: &'a str) -> Option<(Observed, &'a str)> {
    let what = match kind {
        OBSERVED_CALL_ARGS => Observed::CallArgs,
        OBSERVED_CALL_ARGS_AGAIN => Observed::CallArgsAgain,
        OBSERVED_SQL_STATEMENT => Observed::SqlStatement,
        OBSERVED_SQL_SAME_CALL => Observed::SqlSameCall,
        OBSERVED_SQL_NEW_CALL => Observed::SqlNewCall,
        OBSERVED_EXEC => match value {
            EXEC_BYTECODE => return Some((Observed::Exec(Execution::Bytecode), "")),
            EXEC_NATIVE_CALL => return Some((Observed::Exec(Execution::NativeCall), "")),
            _ => return None,
        },
        _ => return None,
    };
    Some((what, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MemoryReading, ProcessMeta, UnattachedProcess, Work};

    fn sample_profile() -> Profile {
        let mut profile = Profile::new(Meta {
            start_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 2_000_000_000,
            rate_hz: 100.0,
            snapshots: 200,
            mode: "nonblocking".into(),
            processes: vec![ProcessMeta {
                pid: 42,
                parent_pid: Some(1),
                command: "python app.py".into(),
                cwd: Some("/srv/app".into()),
                python_version: "3.12.1".into(),
                memory: vec![MemoryReading {
                    at_ns: 1_000_000_000,
                    rss_bytes: 30 << 20,
                    private_bytes: 20 << 20,
                    served_requests: Some(1_234),
                    cpu_ns: None,
                }],
                failed_memory_readings: 2,
            }],
            cpus: Some(1.5),
            unattached_processes: vec![UnattachedProcess {
                pid: 43,
                reason: "permission denied".into(),
            }],
            ..Meta::default()
        });
        let main = profile.frame("<module>", "/app.py", 30, 1);
        let work = profile.frame("Worker.run", "/app.py", 12, 10);
        let sleep = profile.frame("wait", "/usr/lib/python3.12/threading.py", 331, 300);
        let busy = profile.stack_from_root([main, work]);
        let waiting = profile.stack_from_root([main, sleep]);
        let thread = profile.thread(42, 43, 0x7f00, Some("worker-λ"));
        let endpoint = profile.work_labels(&Work {
            endpoint: Some("GET /orders"),
            request_turn: Some("1"),
            ..Work::default()
        });
        for i in 0..150u64 {
            let key = SampleKey {
                thread,
                stack: busy,
                state: SampleState {
                    activity: Activity::OnCpu,
                    holds_gil: true,
                },
                labels: endpoint,
            };
            profile.add_sample(i * 10_000_000, key);
        }
        profile.observe(work, Observed::CallArgs, "n=3", 7);
        profile.observe_local_type(work, "total", "int", 2);
        profile.observe(
            work,
            Observed::SqlStatement,
            "SELECT id\nFROM t WHERE note = 'é'",
            3,
        );
        profile.observe(work, Observed::Exec(Execution::NativeCall), "", 4);
        // Values observed after these were left out (the observations
        // written are still read back).
        profile.meta.observations_left_out = 5;
        for i in 150..200u64 {
            let key = SampleKey {
                thread,
                stack: waiting,
                state: SampleState {
                    activity: Activity::Idle,
                    holds_gil: false,
                },
                labels: LabelSetId(0),
            };
            profile.add_sample(i * 10_000_000, key);
        }
        profile
    }

    /// The pprof message [`write_pprof`] writes for `profile`, decoded as
    /// any pprof tool would.
    fn written_pprof(profile: &Profile) -> PprofProfile {
        let mut gz = Vec::new();
        write_pprof(profile, &mut gz).unwrap();
        let mut bytes = Vec::new();
        GzDecoder::new(gz.as_slice())
            .read_to_end(&mut bytes)
            .unwrap();
        PprofProfile::decode(bytes.as_slice()).unwrap()
    }

    fn round_trip(profile: &Profile) -> Profile {
        let mut bytes = Vec::new();
        write_pprof(profile, &mut bytes).unwrap();
        read_pprof(bytes.as_slice()).unwrap()
    }

    /// Samples as comparable text: stack, thread, state, labels, count.
    fn describe(profile: &Profile) -> Vec<String> {
        let mut lines: Vec<String> = profile
            .samples()
            .map(|(key, count)| {
                let stack: Vec<String> = profile
                    .frames_root_first(key.stack)
                    .into_iter()
                    .map(|f| {
                        let frame = profile.frame_info(f);
                        format!("{}:{}", profile.str(frame.function), frame.line)
                    })
                    .collect();
                let labels: Vec<String> = profile
                    .labels(key.labels)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(
                    "{} {} {:?} {} {}",
                    stack.join(";"),
                    profile.thread_label(key.thread),
                    key.state,
                    labels.join(","),
                    count
                )
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn samples_timeline_and_metadata_survive_a_round_trip() {
        let profile = sample_profile();
        let back = round_trip(&profile);
        assert_eq!(describe(&back), describe(&profile));
        assert_eq!(back.meta, profile.meta);
        let runs: Vec<(u64, u64, u64)> = back
            .runs()
            .map(|r| (r.start_ns, r.end_ns, r.samples))
            .collect();
        assert_eq!(
            runs,
            vec![(0, 1_500_000_000, 150), (1_500_000_000, 2_000_000_000, 50)]
        );
        let thread = back.threads().next().unwrap().1;
        assert_eq!((thread.pid, thread.tid, thread.ident), (42, 43, 0x7f00));
        let served: Vec<(&str, &str)> = back
            .samples()
            .filter_map(|(key, _)| {
                let endpoint = back.endpoint(key.labels)?;
                let turn = back.request_turn(key.labels)?;
                Some((back.str(endpoint), back.str(turn)))
            })
            .collect();
        assert_eq!(served, [("GET /orders", "1")]);
        let observations: Vec<(String, String, &str, u64)> = back
            .observations()
            .into_iter()
            .map(|(frame, what, value, count)| {
                let what = match what {
                    Observed::LocalType(name) => format!("local {}", back.str(name)),
                    other => format!("{other:?}"),
                };
                let function = back.str(back.frame_info(frame).function).to_string();
                (function, what, value, count)
            })
            .collect();
        let run = "Worker.run".to_string();
        assert_eq!(
            observations,
            vec![
                (run.clone(), "CallArgs".into(), "n=3", 7),
                (run.clone(), "local total".into(), "int", 2),
                (
                    run.clone(),
                    "SqlStatement".into(),
                    "SELECT id\nFROM t WHERE note = 'é'",
                    3
                ),
                (run, "Exec(NativeCall)".into(), "", 4),
            ]
        );
    }

    #[test]
    fn values_sum_to_the_samples_for_other_pprof_tools() {
        let profile = sample_profile();
        let pprof = written_pprof(&profile);
        let total: i64 = pprof.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(total, 200);
        let wall: i64 = pprof.sample.iter().map(|s| s.value[1]).sum();
        assert_eq!(wall, 2_000_000_000);
        assert!(pprof.location.iter().all(|l| l.id != 0));
        assert_eq!(pprof.string_table[0], "");
    }

    #[test]
    fn measured_sample_times_survive_a_round_trip() {
        let mut profile = sample_profile();
        let key = *profile.samples().next().unwrap().0;
        // Three samples 25 ms apart: the sampler fell behind its 10 ms.
        profile.add_timed_samples(3_000_000_000, key, 3, 75_000_000);
        let before: Vec<(SampleKey, Tally)> =
            profile.timed_samples().map(|(k, t)| (*k, t)).collect();
        let loaded = round_trip(&profile);
        let nanos = |p: &Profile| -> u64 { p.timed_samples().map(|(_, t)| t.nanos).sum() };
        assert_eq!(nanos(&loaded), 2_075_000_000);
        assert_eq!(
            nanos(&loaded),
            before.iter().map(|(_, t)| t.nanos).sum::<u64>()
        );
        assert!((loaded.mean_sample_ns() - 2_075_000_000.0 / 203.0).abs() < 1.0);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert!(matches!(
            read_pprof(&b"not a profile at all"[..]),
            Err(ProfileError::Decode(_))
        ));
        let mut gz = Vec::new();
        write_pprof(&sample_profile(), &mut gz).unwrap();
        gz.truncate(gz.len() / 2);
        assert!(read_pprof(gz.as_slice()).is_err());
        let mut broken = written_pprof(&sample_profile());
        broken.sample[0].location_id.push(999);
        let err = read_pprof(broken.encode_to_vec().as_slice()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt pprof profile: sample refers to unknown location 999"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = read_pprof(bytes.as_slice());
        }
    }
}
