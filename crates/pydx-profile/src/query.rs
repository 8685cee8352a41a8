//! Per-function and per-line totals of a profile: the query that `pydx
//! top`, the doctor's hot-spot table and its PYDX-CPU002 rule, the HTML
//! report, `pydx diff` and `pydx annotate` share.

use std::collections::{BTreeMap, HashMap};

use crate::model::{FrameId, Profile, SampleKey, StackId, StrId};

/// One function's samples and time in a profile (a function is its name
/// and file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTime {
    /// The function's name.
    pub function: String,
    /// Its file.
    pub file: String,
    /// The line it starts at (`co_firstlineno`; 0 when unknown).
    pub first_line: u32,
    /// Samples in which it was the innermost frame.
    pub self_samples: u64,
    /// Samples in which it was anywhere on the stack (once per sample,
    /// however deep it recursed).
    pub total_samples: u64,
    /// The measured time the self samples stand for, in nanoseconds.
    pub self_ns: u64,
    /// The measured time the total samples stand for, in nanoseconds.
    pub total_ns: u64,
    /// Its samples and time by line.
    pub lines: BTreeMap<u32, LineTime>,
}

/// One line's samples and time in a function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineTime {
    /// Samples in which the line was running (the innermost frame).
    pub self_samples: u64,
    /// The measured time of those samples, in nanoseconds.
    pub self_ns: u64,
    /// Samples in which the line was running or calling (anywhere on the
    /// stack, once per sample).
    pub total_samples: u64,
    /// The measured time of those samples, in nanoseconds.
    pub total_ns: u64,
    /// The line's frame (the first seen, should code objects of the same
    /// name, file and line start at different lines).
    pub frame: Option<FrameId>,
    /// A stack on which the line was running: the first sample's.
    pub running_stack: Option<StackId>,
}

impl FunctionTime {
    /// The line with the most self samples (the lowest of equals; 0 when
    /// it has none).
    pub fn hottest_line(&self) -> u32 {
        self.lines
            .iter()
            .filter(|(_, time)| time.self_samples > 0)
            .max_by_key(|&(&line, time)| (time.self_samples, std::cmp::Reverse(line)))
            .map_or(0, |(&line, _)| line)
    }
}

impl Profile {
    /// Every function on the stacks of the samples `include` keeps, with
    /// its self and total samples and time, most self samples first (then
    /// most total samples, then by name and file).
    pub fn function_times(&self, include: impl Fn(&SampleKey) -> bool) -> Vec<FunctionTime> {
        let mut by_function: HashMap<(StrId, StrId), FunctionTime> = HashMap::new();
        for (key, tally) in self.timed_samples().filter(|(key, _)| include(key)) {
            let mut seen: Vec<(StrId, StrId)> = Vec::new();
            let mut lines_seen: Vec<(StrId, StrId, u32)> = Vec::new();
            for (depth, frame_id) in self
                .frames_innermost_first(key.stack)
                .into_iter()
                .enumerate()
            {
                let frame = self.frame_info(frame_id);
                let id = (frame.function, frame.file);
                let entry = by_function.entry(id).or_insert_with(|| FunctionTime {
                    function: self.str(frame.function).to_string(),
                    file: self.str(frame.file).to_string(),
                    first_line: frame.first_line,
                    self_samples: 0,
                    total_samples: 0,
                    self_ns: 0,
                    total_ns: 0,
                    lines: BTreeMap::new(),
                });
                if depth == 0 {
                    entry.self_samples += tally.count;
                    entry.self_ns += tally.nanos;
                }
                let line_key = (id.0, id.1, frame.line);
                let line_first_seen = !lines_seen.contains(&line_key);
                if line_first_seen {
                    lines_seen.push(line_key);
                }
                let line = entry.lines.entry(frame.line).or_default();
                line.frame.get_or_insert(frame_id);
                if depth == 0 {
                    line.self_samples += tally.count;
                    line.self_ns += tally.nanos;
                    if line.running_stack.is_none() {
                        line.running_stack = key.stack;
                    }
                }
                if line_first_seen {
                    line.total_samples += tally.count;
                    line.total_ns += tally.nanos;
                }
                if !seen.contains(&id) {
                    seen.push(id);
                    entry.total_samples += tally.count;
                    entry.total_ns += tally.nanos;
                }
            }
        }
        let mut functions: Vec<FunctionTime> = by_function.into_values().collect();
        functions.sort_by(|a, b| {
            (b.self_samples, b.total_samples, &a.function, &a.file).cmp(&(
                a.self_samples,
                a.total_samples,
                &b.function,
                &b.file,
            ))
        });
        functions
    }

    /// Samples `include` keeps that have no frames (a thread running no
    /// Python code), and the measured time they stand for in nanoseconds.
    pub fn frameless_samples(&self, include: impl Fn(&SampleKey) -> bool) -> (u64, u64) {
        self.timed_samples()
            .filter(|(key, _)| key.stack.is_none() && include(key))
            .fold((0, 0), |(count, nanos), (_, tally)| {
                (count + tally.count, nanos + tally.nanos)
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Activity, LabelSetId, Meta, SampleState, ThreadId};

    use super::*;

    /// A sample of `thread` at `stack` in `activity`, holding the GIL.
    fn key(thread: ThreadId, stack: Option<StackId>, activity: Activity) -> SampleKey {
        SampleKey {
            thread,
            stack,
            state: SampleState {
                activity,
                holds_gil: true,
            },
            labels: LabelSetId(0),
        }
    }

    #[test]
    fn self_and_total_time_count_a_recursive_function_once_per_sample() {
        let mut profile = Profile::new(Meta::default());
        let main = profile.frame("main", "app.py", 9, 8);
        let walk = profile.frame("walk", "app.py", 3, 2);
        let walk_deeper = profile.frame("walk", "app.py", 4, 2);
        let deep = profile.stack_from_root([main, walk, walk_deeper]);
        let shallow = profile.stack_from_root([main, walk]);
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        profile.add_timed_samples(0, key(thread, deep, Activity::OnCpu), 3, 30_000_000);
        profile.add_timed_samples(0, key(thread, shallow, Activity::OnCpu), 1, 25_000_000);
        profile.add_timed_samples(0, key(thread, shallow, Activity::Idle), 5, 50_000_000);
        let on_cpu = profile.function_times(|key| key.state.activity == Activity::OnCpu);
        let summary: Vec<(&str, u64, u64, u64, u64, u32)> = on_cpu
            .iter()
            .map(|f| {
                let line = f.hottest_line();
                (
                    f.function.as_str(),
                    f.self_samples,
                    f.total_samples,
                    f.self_ns,
                    f.total_ns,
                    line,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("walk", 4, 4, 55_000_000, 55_000_000, 4),
                ("main", 0, 4, 0, 55_000_000, 0)
            ]
        );
        // Line 3 of walk runs in one sample and calls in three more.
        let walk_lines: Vec<(u32, u64, u64)> = on_cpu[0]
            .lines
            .iter()
            .map(|(&line, time)| (line, time.self_samples, time.total_samples))
            .collect();
        assert_eq!(walk_lines, [(3, 1, 4), (4, 3, 3)]);
        assert_eq!(on_cpu[0].first_line, 2);
        // Each line names its frame, and a stack it ran on.
        let line_3 = on_cpu[0].lines[&3];
        assert_eq!((line_3.frame, line_3.running_stack), (Some(walk), shallow));
        let line_9 = on_cpu[1].lines[&9];
        assert_eq!((line_9.frame, line_9.running_stack), (Some(main), None));
    }

    #[test]
    fn samples_without_frames_are_counted_apart() {
        let mut profile = Profile::new(Meta::default());
        let main = profile.frame("main", "app.py", 9, 8);
        let stack = profile.stack_from_root([main]);
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        profile.add_timed_samples(0, key(thread, None, Activity::OnCpu), 2, 20_000_000);
        profile.add_timed_samples(0, key(thread, None, Activity::Idle), 7, 70_000_000);
        profile.add_timed_samples(0, key(thread, stack, Activity::OnCpu), 5, 50_000_000);
        let on_cpu = |key: &SampleKey| key.state.activity == Activity::OnCpu;
        assert_eq!(profile.frameless_samples(on_cpu), (2, 20_000_000));
        assert_eq!(profile.frameless_samples(|_| true), (9, 90_000_000));
    }
}
