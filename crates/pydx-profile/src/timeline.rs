//! The per-thread timeline: runs of identical consecutive samples.
//!
//! A thread that sits in the same call (a blocked event loop, a slow query)
//! costs one run however long it lasts. A thread whose stack changes at every
//! sample costs a run per sample, so when the timeline outgrows its budget,
//! runs shorter than a resolution (10 ms, then doubled as needed) are merged
//! into "mixed" runs. The exact counts are kept elsewhere; only the order of
//! very short episodes is given up.

use std::collections::HashMap;

use crate::model::{LabelSetId, SampleKey, SampleState, StackId, ThreadId};

/// Runs kept before short ones are merged: 65,536 runs of 48 bytes, 3 MB
/// (about 30 ms a run over a 30-minute recording of a thread whose stack
/// changes at every sample).
const RUN_BUDGET: usize = 1 << 16;
/// The first resolution used when merging.
const FIRST_RESOLUTION_NS: u64 = 10_000_000;
/// A gap longer than this many intervals between two samples of a thread
/// starts a new run even if the samples are identical.
const MAX_GAP_INTERVALS: u64 = 3;

/// The stack of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStack {
    /// Every sample of the run had this stack.
    Stack(Option<StackId>),
    /// Several short runs with different stacks, merged.
    Mixed,
}

/// Consecutive samples of one thread with the same stack, state and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The thread.
    pub thread: ThreadId,
    /// The stack of every sample, or [`RunStack::Mixed`].
    pub stack: RunStack,
    /// The state of every sample (of the longest part, for mixed runs).
    pub state: SampleState,
    /// The labels of every sample (of the longest part, for mixed runs).
    pub labels: LabelSetId,
    /// Time of the first sample, since the start of the recording.
    pub start_ns: u64,
    /// End of the last sample's interval.
    pub end_ns: u64,
    /// Number of samples.
    pub samples: u64,
}

impl Run {
    /// How long the run lasted.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Whether this run merges several stacks.
    pub fn is_mixed(&self) -> bool {
        self.stack == RunStack::Mixed
    }

    fn matches(&self, key: &SampleKey) -> bool {
        self.stack == RunStack::Stack(key.stack)
            && self.state == key.state
            && self.labels == key.labels
    }
}

/// Closed runs plus the open run of each thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    closed: Vec<Run>,
    open: HashMap<ThreadId, Run>,
    resolution_ns: u64,
}

impl Timeline {
    /// Records `count` samples of `key`, the last taken at `time_ns`.
    pub(crate) fn push(&mut self, time_ns: u64, key: SampleKey, count: u64, interval_ns: u64) {
        let span = interval_ns.max(1);
        if let Some(run) = self.open.get_mut(&key.thread) {
            let contiguous = time_ns <= run.end_ns + span * MAX_GAP_INTERVALS;
            if run.matches(&key) && contiguous && time_ns >= run.start_ns {
                run.samples += count;
                run.end_ns = run.end_ns.max(time_ns + span);
                return;
            }
        }
        let start_ns = time_ns.saturating_sub(span * (count - 1));
        let run = Run {
            thread: key.thread,
            stack: RunStack::Stack(key.stack),
            state: key.state,
            labels: key.labels,
            start_ns,
            end_ns: time_ns + span,
            samples: count,
        };
        if let Some(previous) = self.open.insert(key.thread, run) {
            self.closed.push(previous);
        }
    }

    /// Adds a run read back from a file.
    pub(crate) fn restore(&mut self, run: Run) {
        self.closed.push(run);
    }

    pub(crate) fn needs_compaction(&self) -> bool {
        // At the budget, not past it: the next push would double the
        // vector's capacity.
        self.closed.len() >= RUN_BUDGET
    }

    /// Merges short runs until the timeline is within half its budget;
    /// returns the resolution now in force.
    pub(crate) fn compact(&mut self) -> u64 {
        let mut resolution = self.resolution_ns.max(FIRST_RESOLUTION_NS);
        loop {
            merge_short_runs(&mut self.closed, resolution);
            if self.closed.len() <= RUN_BUDGET / 2 {
                break;
            }
            resolution *= 2;
        }
        self.resolution_ns = resolution;
        resolution
    }

    /// All runs, grouped by thread and in time order within a thread.
    pub(crate) fn runs(&self) -> impl Iterator<Item = &Run> {
        let mut all: Vec<&Run> = self.closed.iter().chain(self.open.values()).collect();
        all.sort_by_key(|r| (r.thread, r.start_ns));
        all.into_iter()
    }
}

/// Merges, per thread, consecutive runs shorter than `resolution` into
/// mixed runs of about `resolution` each; longer runs are kept as they are.
/// Done in place, without allocating: a long recording compacts many
/// times, and a new vector each time leaves the allocator's heap
/// fragmented (the process's memory grew by megabytes a minute).
fn merge_short_runs(runs: &mut Vec<Run>, resolution: u64) {
    runs.sort_unstable_by_key(|r| (r.thread, r.start_ns));
    // Runs are written back at `written`, which never passes the run being
    // read: every run goes out once at most, alone or in a merge, and a
    // merge goes out only after its first run was read.
    let mut written = 0;
    let mut emit = |runs: &mut Vec<Run>, run: Run| {
        runs[written] = run;
        written += 1;
    };
    // The pending merge and the longest run in it (whose state it keeps).
    let mut pending: Option<(Run, u64)> = None;
    for index in 0..runs.len() {
        let run = runs[index];
        let short = run.duration_ns() < resolution;
        let same_thread = pending
            .as_ref()
            .is_some_and(|(p, _)| p.thread == run.thread);
        if short && same_thread {
            let (group, longest) = pending.as_mut().expect("checked above");
            if group.stack != run.stack {
                group.stack = RunStack::Mixed;
            }
            if run.duration_ns() > *longest {
                *longest = run.duration_ns();
                group.state = run.state;
                group.labels = run.labels;
            }
            group.end_ns = group.end_ns.max(run.end_ns);
            group.samples += run.samples;
            // A merged run spans about one resolution, so that a thread that
            // is busy for minutes still has a timeline at that resolution.
            if group.duration_ns() >= resolution {
                let (group, _) = pending.take().expect("checked above");
                emit(runs, group);
            }
            continue;
        }
        if let Some((group, _)) = pending.take() {
            emit(runs, group);
        }
        if short {
            pending = Some((run, run.duration_ns()));
        } else {
            emit(runs, run);
        }
    }
    if let Some((group, _)) = pending {
        emit(runs, group);
    }
    runs.truncate(written);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Activity;

    const MS: u64 = 1_000_000;

    fn key(thread: u32, stack: u32, activity: Activity) -> SampleKey {
        SampleKey {
            thread: ThreadId(thread),
            stack: Some(StackId(stack)),
            state: SampleState {
                activity,
                holds_gil: false,
            },
            labels: LabelSetId(0),
        }
    }

    #[test]
    fn identical_consecutive_samples_extend_one_run() {
        let mut timeline = Timeline::default();
        for i in 0..30 {
            timeline.push(i * 10 * MS, key(0, 7, Activity::Idle), 1, 10 * MS);
        }
        timeline.push(300 * MS, key(0, 8, Activity::OnCpu), 1, 10 * MS);
        let runs: Vec<&Run> = timeline.runs().collect();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].start_ns, runs[0].end_ns, runs[0].samples),
            (0, 300 * MS, 30)
        );
        assert_eq!(runs[1].stack, RunStack::Stack(Some(StackId(8))));
    }

    #[test]
    fn a_gap_starts_a_new_run() {
        let mut timeline = Timeline::default();
        timeline.push(0, key(0, 1, Activity::Idle), 1, 10 * MS);
        timeline.push(500 * MS, key(0, 1, Activity::Idle), 1, 10 * MS);
        assert_eq!(timeline.runs().count(), 2);
    }

    #[test]
    fn threads_have_separate_runs() {
        let mut timeline = Timeline::default();
        for i in 0..10 {
            timeline.push(i * MS, key(0, 1, Activity::OnCpu), 1, MS);
            timeline.push(i * MS, key(1, 2, Activity::Idle), 1, MS);
        }
        let runs: Vec<&Run> = timeline.runs().collect();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.samples == 10));
    }

    #[test]
    fn merging_keeps_long_runs_and_all_samples() {
        let mut runs = Vec::new();
        // 1 ms runs alternating stacks, then one 50 ms run, then 1 ms runs.
        let mut t = 0;
        for i in 0..20 {
            runs.push(run(0, i % 2, t, t + MS, 1));
            t += MS;
        }
        runs.push(run(0, 9, t, t + 50 * MS, 50));
        t += 50 * MS;
        for i in 0..5 {
            runs.push(run(0, i % 2, t, t + MS, 1));
            t += MS;
        }
        merge_short_runs(&mut runs, 10 * MS);
        let merged = runs;
        assert_eq!(merged.len(), 4);
        assert!(
            merged[0].is_mixed() && merged[0].samples == 10 && merged[0].duration_ns() == 10 * MS
        );
        assert!(merged[1].is_mixed() && merged[1].samples == 10);
        assert_eq!(merged[2].stack, RunStack::Stack(Some(StackId(9))));
        assert_eq!(merged[3].samples, 5);
        assert_eq!(merged.iter().map(|r| r.samples).sum::<u64>(), 75);
    }

    fn run(thread: u32, stack: u32, start_ns: u64, end_ns: u64, samples: u64) -> Run {
        Run {
            thread: ThreadId(thread),
            stack: RunStack::Stack(Some(StackId(stack))),
            state: key(thread, stack, Activity::OnCpu).state,
            labels: LabelSetId(0),
            start_ns,
            end_ns,
            samples,
        }
    }

    #[test]
    fn compaction_bounds_the_timeline() {
        let mut timeline = Timeline::default();
        // A thread whose stack changes at every 1 ms sample, for 10 minutes.
        let samples = 600_000u64;
        for i in 0..samples {
            timeline.push(i * MS, key(0, (i % 3) as u32, Activity::OnCpu), 1, MS);
            if timeline.needs_compaction() {
                timeline.compact();
            }
        }
        assert!(timeline.closed.len() <= RUN_BUDGET);
        assert!(timeline.resolution_ns >= FIRST_RESOLUTION_NS);
        assert_eq!(timeline.runs().map(|r| r.samples).sum::<u64>(), samples);
    }
}
