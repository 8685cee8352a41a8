//! The doctor's report as one self-contained HTML page: the summary, the
//! findings, an interactive flamegraph (on-CPU, GIL wait or wall time,
//! filtered by thread, endpoint and asyncio task), the endpoints, a
//! function table sortable like `pstats`, and the hottest functions' source
//! line by line. It loads nothing: the style, the script and the data are
//! in the file.
//!
//! Every name from the target travels as JSON data inside the page and is
//! put on it as text by the script (never as markup), so a function called
//! `<script>` is shown, not run.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use pydx_diagnose::{Report, SourceLines};
use pydx_profile::{Activity, CodeKind, FrameId, FunctionTime, Profile, RunStack, StackId};
use serde::Serialize;

use super::ReportOptions;

/// The style both HTML pages share.
pub(super) const STYLE: &str = include_str!("html/report.css");
/// What both HTML pages' scripts share.
pub(super) const COMMON_SCRIPT: &str = include_str!("html/common.js");
/// The pages' content security policy: their own inline script and style,
/// nothing fetched, framed or submitted, whatever a name from the target
/// holds.
pub(super) const SECURITY_POLICY: &str = "<meta http-equiv=\"Content-Security-Policy\" \
     content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     form-action 'none'; base-uri 'none'\">";
const SCRIPT: &str = include_str!("html/report.js");

/// Functions whose source is shown line by line.
const ANNOTATED_FUNCTIONS: usize = 5;
/// Rows of the function table.
const FUNCTION_ROWS: usize = 1000;
/// Longest name or source line kept; a longer one is cut and ends with `…`.
const MAX_TEXT_CHARS: usize = 2000;
/// Most source lines shown for one function.
const MAX_ANNOTATED_LINES: u32 = 400;
/// Sample keys (distinct stack, thread, state and labels) whose frames
/// are drawn, the most time first: enough for any recording with a
/// bounded set of stacks, and a page of a few MB for one without.
const MAX_DRAWN_SAMPLES: usize = 40_000;
/// Equal parts the timeline cuts the recording into, per thread.
const TIMELINE_BUCKETS: u64 = 800;

/// Everything the page's script draws, as it is embedded in the page.
#[derive(Serialize)]
struct PageData {
    tool: String,
    /// The report, its strings cut to [`MAX_TEXT_CHARS`].
    report: serde_json::Value,
    /// Every name, once; the other tables refer to them by index.
    strings: Vec<String>,
    /// `[function, file, line]`.
    frames: Vec<[u32; 3]>,
    /// `[frame, parent stack or -1]`.
    stacks: Vec<[i64; 2]>,
    /// `[name, pid]`.
    threads: Vec<(u32, u32)>,
    /// Each sampled process's command line, by PID.
    processes: BTreeMap<u32, u32>,
    /// `[stack or -1, thread, state, endpoint or -1, task or -1, samples,
    /// nanoseconds]`; state 0 on a CPU, 1 waiting for the GIL, 2 idle, 3
    /// an asyncio task waiting in an await, 5 waiting for a CPU.
    samples: Vec<[i64; 7]>,
    functions: Vec<FunctionRow>,
    annotated: Vec<AnnotatedFunction>,
    /// The sample keys whose frames are not drawn.
    omitted: Omitted,
    /// Length of one timeline bucket, in nanoseconds.
    timeline_bucket_ns: u64,
    /// What each thread did when: `[thread, [[first bucket, buckets,
    /// state, frame or -1], ...]]`, the recording cut into
    /// [`TIMELINE_BUCKETS`] equal buckets; state as in `samples`, or 4 for
    /// an asyncio event loop stuck in a call; the frame is the innermost
    /// one that took most of the bucket.
    timeline: Vec<TimelineRow>,
}

/// One thread's timeline: `(thread, [[first bucket, buckets, state,
/// frame], ...])`.
type TimelineRow = (i64, Vec<[i64; 4]>);

/// Sample keys (distinct stack, thread, state and labels) whose frames
/// the page leaves out beyond [`MAX_DRAWN_SAMPLES`], and their time.
#[derive(Serialize, Default)]
struct Omitted {
    sample_keys: u64,
    nanos: u64,
}

/// Adds up samples that only differ by their counts (those left without
/// frames), `samples` being sorted.
fn merge_samples(samples: Vec<[i64; 7]>) -> Vec<[i64; 7]> {
    let mut merged: Vec<[i64; 7]> = Vec::with_capacity(samples.len());
    for sample in samples {
        match merged.last_mut() {
            Some(last) if last[..5] == sample[..5] => {
                last[5] += sample[5];
                last[6] += sample[6];
            }
            _ => merged.push(sample),
        }
    }
    merged
}

/// A row of the function table (on-CPU time).
#[derive(Serialize)]
struct FunctionRow {
    function: u32,
    file: u32,
    line: u32,
    self_ns: u64,
    total_ns: u64,
    self_samples: u64,
    total_samples: u64,
}

impl FunctionRow {
    fn of(function: &FunctionTime, strings: &mut Strings) -> Self {
        Self {
            function: strings.id(&function.function),
            file: strings.id(&function.file),
            line: function.first_line,
            self_ns: function.self_ns,
            total_ns: function.total_ns,
            self_samples: function.self_samples,
            total_samples: function.total_samples,
        }
    }
}

/// A function's source with the time of each line.
#[derive(Serialize)]
struct AnnotatedFunction {
    #[serde(flatten)]
    function: FunctionRow,
    /// Whether the source file was read.
    source_found: bool,
    /// `[line, text, samples, total ns, own ns]`.
    lines: Vec<(u32, u32, u64, u64, u64)>,
}

/// Interns the page's strings.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, u32>,
}

impl Strings {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let kept = cut(text);
        let id = self.list.len() as u32;
        self.list.push(kept);
        self.index.insert(text.to_string(), id);
        id
    }
}

/// `text`, cut to [`MAX_TEXT_CHARS`] characters.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Writes the page for `report`, drawn from `profile` (the recording it
/// was made from), with source lines read by `sources`.
pub(crate) fn write_report(
    report: &Report,
    profile: &Profile,
    sources: &dyn SourceLines,
    options: &ReportOptions,
    out: &mut impl Write,
) -> io::Result<()> {
    let data = page_data(report, profile, sources, options);
    let json = serde_json::to_string(&data)?;
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{SECURITY_POLICY}\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pydx doctor report</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <noscript>This report is drawn by its script: allow JavaScript to see it.</noscript>\n\
         <main id=\"report\"></main>\n\
         <script type=\"application/json\" id=\"pydx-data\">{}</script>\n\
         <script>\n{COMMON_SCRIPT}{SCRIPT}</script>\n</body>\n</html>\n",
        script_safe(&json)
    )
}

/// JSON made safe inside a `<script>` element: no `<`, `>` or `&` that
/// could end it or open a comment, and no line separators.
pub(super) fn script_safe(json: &str) -> String {
    let mut safe = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            '\u{2028}' => safe.push_str("\\u2028"),
            '\u{2029}' => safe.push_str("\\u2029"),
            c => safe.push(c),
        }
    }
    safe
}

fn page_data(
    report: &Report,
    profile: &Profile,
    sources: &dyn SourceLines,
    options: &ReportOptions,
) -> PageData {
    let mut strings = Strings::default();
    let mut frames: Vec<[u32; 3]> = Vec::new();
    let mut frame_index: HashMap<usize, u32> = HashMap::new();
    let mut stacks: Vec<[i64; 2]> = Vec::new();
    let mut stack_index: HashMap<StackId, i64> = HashMap::new();
    let mut threads: Vec<(u32, u32)> = Vec::new();
    let mut thread_index: HashMap<usize, i64> = HashMap::new();
    let mut samples = Vec::new();
    // The most time-consuming stacks are drawn; the time of the others is
    // kept, without their frames, so that totals stay right.
    let mut keys: Vec<_> = profile.timed_samples().collect();
    keys.sort_unstable_by(|a, b| b.1.nanos.cmp(&a.1.nanos).then(a.0.cmp(b.0)));
    let mut omitted = Omitted::default();
    for (rank, (key, tally)) in keys.into_iter().enumerate() {
        let drawn = rank < MAX_DRAWN_SAMPLES;
        if !drawn {
            omitted.sample_keys += 1;
            omitted.nanos += tally.nanos;
        }
        let stack = key.stack.filter(|_| drawn).map_or(-1, |stack| {
            page_stack(
                profile,
                stack,
                &mut strings,
                &mut frames,
                &mut frame_index,
                &mut stacks,
                &mut stack_index,
            )
        });
        let thread = *thread_index.entry(key.thread.index()).or_insert_with(|| {
            let info = profile.thread_info(key.thread);
            let name = strings.id(&profile.thread_label(key.thread));
            threads.push((name, info.pid));
            threads.len() as i64 - 1
        });
        let state = if profile.is_waiting_task(key.labels) {
            3
        } else {
            activity_code(key.state.activity)
        };
        let label = |id: Option<pydx_profile::StrId>, strings: &mut Strings| {
            id.map_or(-1, |id| i64::from(strings.id(profile.str(id))))
        };
        let endpoint = label(profile.endpoint(key.labels), &mut strings);
        let task = label(profile.task(key.labels), &mut strings);
        samples.push([
            stack,
            thread,
            state,
            endpoint,
            task,
            tally.count as i64,
            tally.nanos as i64,
        ]);
    }
    samples.sort_unstable();
    let samples = merge_samples(samples);
    let mut on_cpu = profile.function_times(|key| {
        key.state.activity.counts_as_cpu() && !profile.is_waiting_task(key.labels)
    });
    on_cpu.sort_by(|a, b| {
        b.total_ns
            .cmp(&a.total_ns)
            .then(a.function.cmp(&b.function))
    });
    let functions = on_cpu
        .iter()
        .take(FUNCTION_ROWS)
        .map(|f| FunctionRow::of(f, &mut strings))
        .collect();
    let mut hottest: Vec<&FunctionTime> = on_cpu
        .iter()
        .filter(|f| CodeKind::of(&f.file) == CodeKind::User && f.self_samples > 0)
        .collect();
    hottest.sort_by(|a, b| b.self_ns.cmp(&a.self_ns).then(a.function.cmp(&b.function)));
    let annotated = hottest
        .into_iter()
        .take(ANNOTATED_FUNCTIONS)
        .map(|f| annotate(f, |line| sources.line(&f.file, line), &mut strings))
        .collect();
    let (timeline_bucket_ns, timeline) = timeline(
        profile,
        &thread_index,
        &mut strings,
        &mut frames,
        &mut frame_index,
    );
    let processes = profile
        .meta
        .processes
        .iter()
        .filter(|process| !process.command.is_empty())
        .map(|process| (process.pid, strings.id(&process.command)))
        .collect();
    let mut report = serde_json::to_value(report).unwrap_or_default();
    cut_strings(&mut report);
    PageData {
        tool: format!("pydx {}", options.tool_version),
        report,
        strings: strings.list,
        frames,
        stacks,
        threads,
        processes,
        samples,
        functions,
        annotated,
        omitted,
        timeline_bucket_ns,
        timeline,
    }
}

/// What each sampled thread did in each [`TIMELINE_BUCKETS`]th of the
/// recording: the state and innermost frame that took most of it, runs of
/// equal buckets merged; with the length of a bucket.
fn timeline(
    profile: &Profile,
    thread_index: &HashMap<usize, i64>,
    strings: &mut Strings,
    frames: &mut Vec<[u32; 3]>,
    frame_index: &mut HashMap<usize, u32>,
) -> (u64, Vec<TimelineRow>) {
    let end = profile
        .runs()
        .map(|run| run.end_ns)
        .max()
        .unwrap_or(0)
        .max(profile.meta.duration_ns)
        .max(1);
    let width = end.div_ceil(TIMELINE_BUCKETS).max(1);
    // Per thread and bucket, nanoseconds by (state, frame).
    let mut time: BTreeMap<i64, BTreeMap<u64, BucketTime>> = BTreeMap::new();
    for run in profile.runs() {
        let Some(&thread) = thread_index.get(&run.thread.index()) else {
            continue;
        };
        if profile.is_waiting_task(run.labels) {
            continue;
        }
        let state = if profile.is_blocked_event_loop(run.labels) {
            4
        } else {
            activity_code(run.state.activity)
        };
        let frame = match run.stack {
            RunStack::Stack(Some(stack)) => {
                let innermost = profile.stack_node(stack).frame;
                i64::from(page_frame(profile, innermost, strings, frames, frame_index))
            }
            _ => -1,
        };
        let buckets = time.entry(thread).or_default();
        let mut at = run.start_ns;
        while at < run.end_ns {
            let bucket = at / width;
            let until = ((bucket + 1) * width).min(run.end_ns);
            *buckets
                .entry(bucket)
                .or_default()
                .entry((state, frame))
                .or_default() += until - at;
            at = until;
        }
    }
    let rows = time
        .into_iter()
        .map(|(thread, buckets)| {
            let mut segments: Vec<[i64; 4]> = Vec::new();
            for (bucket, spent) in buckets {
                let Some((&(state, frame), _)) =
                    spent.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                else {
                    continue;
                };
                let bucket = bucket as i64;
                match segments.last_mut() {
                    Some(last)
                        if last[0] + last[1] == bucket && last[2] == state && last[3] == frame =>
                    {
                        last[1] += 1;
                    }
                    _ => segments.push([bucket, 1, state, frame]),
                }
            }
            (thread, segments)
        })
        .collect();
    (width, rows)
}

/// Nanoseconds of one timeline bucket by (state, frame).
type BucketTime = HashMap<(i64, i64), u64>;

/// How the page codes an activity: 0 on a CPU (or unknown), 1 waiting for
/// the GIL, 2 idle, 5 waiting for a CPU (3 and 4 are for tasks waiting and
/// blocked event loops).
fn activity_code(activity: Activity) -> i64 {
    match activity {
        Activity::OnCpu | Activity::Unknown => 0,
        Activity::GilWait => 1,
        Activity::Idle => 2,
        Activity::CpuWait => 5,
    }
}

/// The page's index of `frame`, adding it if it is new.
fn page_frame(
    profile: &Profile,
    frame: FrameId,
    strings: &mut Strings,
    frames: &mut Vec<[u32; 3]>,
    frame_index: &mut HashMap<usize, u32>,
) -> u32 {
    *frame_index.entry(frame.index()).or_insert_with(|| {
        let info = profile.frame_info(frame);
        frames.push([
            strings.id(profile.str(info.function)),
            strings.id(profile.str(info.file)),
            info.line,
        ]);
        frames.len() as u32 - 1
    })
}

/// Cuts every string in `value` to [`MAX_TEXT_CHARS`].
pub(super) fn cut_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.len() > MAX_TEXT_CHARS => *text = cut(text),
        serde_json::Value::Array(items) => items.iter_mut().for_each(cut_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(cut_strings),
        _ => {}
    }
}

/// The page's index of `stack`, adding it and the stacks it was called
/// from first.
fn page_stack(
    profile: &Profile,
    stack: StackId,
    strings: &mut Strings,
    frames: &mut Vec<[u32; 3]>,
    frame_index: &mut HashMap<usize, u32>,
    stacks: &mut Vec<[i64; 2]>,
    stack_index: &mut HashMap<StackId, i64>,
) -> i64 {
    // The stacks not yet added, innermost first, then added outermost first
    // so that a parent always comes before its children.
    let mut missing = Vec::new();
    let mut next = Some(stack);
    while let Some(id) = next {
        if stack_index.contains_key(&id) {
            break;
        }
        missing.push(id);
        next = profile.stack_node(id).parent;
    }
    for &id in missing.iter().rev() {
        let node = profile.stack_node(id);
        let frame = page_frame(profile, node.frame, strings, frames, frame_index);
        let parent = node.parent.map_or(-1, |p| stack_index[&p]);
        stacks.push([i64::from(frame), parent]);
        stack_index.insert(id, stacks.len() as i64 - 1);
    }
    stack_index[&stack]
}

/// `function`'s lines from its `def` to its last line with samples.
fn annotate(
    function: &FunctionTime,
    source: impl Fn(u32) -> Option<String>,
    strings: &mut Strings,
) -> AnnotatedFunction {
    let last = function.lines.keys().copied().max().unwrap_or(0);
    let first = match function.first_line {
        0 => function.lines.keys().copied().find(|&l| l > 0).unwrap_or(0),
        line => line.min(last),
    };
    let source_found = source(last.max(1)).is_some();
    let numbers: Vec<u32> = if source_found && last.saturating_sub(first) < MAX_ANNOTATED_LINES {
        (first.max(1)..=last).collect()
    } else {
        function.lines.keys().copied().filter(|&l| l > 0).collect()
    };
    let lines = numbers
        .into_iter()
        .map(|number| {
            let text = source(number).unwrap_or_default();
            let time = function.lines.get(&number);
            (
                number,
                strings.id(&text),
                time.map_or(0, |t| t.total_samples),
                time.map_or(0, |t| t.total_ns),
                time.map_or(0, |t| t.self_ns),
            )
        })
        .collect();
    AnnotatedFunction {
        function: FunctionRow::of(function, strings),
        source_found,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_end_its_script_element() {
        let hostile = "</script><script>alert(1)</script>&amp;\u{2028}<!--";
        let json = serde_json::json!({ "f": hostile }).to_string();
        let safe = script_safe(&json);
        assert!(!safe.contains(['<', '>', '&', '\u{2028}']), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["f"], hostile);
    }

    #[test]
    fn samples_left_without_frames_are_added_up() {
        let merged = merge_samples(vec![
            [-1, 0, 0, -1, -1, 2, 20],
            [-1, 0, 0, -1, -1, 3, 30],
            [-1, 0, 2, -1, -1, 1, 10],
            [4, 0, 0, -1, -1, 1, 10],
        ]);
        assert_eq!(
            merged,
            [
                [-1, 0, 0, -1, -1, 5, 50],
                [-1, 0, 2, -1, -1, 1, 10],
                [4, 0, 0, -1, -1, 1, 10]
            ]
        );
    }

    #[test]
    fn long_names_are_cut() {
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        let kept = cut(&long);
        assert_eq!(kept.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(cut("short"), "short");
    }
}
