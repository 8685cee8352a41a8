//! Each thread's timeline as the timeline formats draw it: consecutive
//! spans of time, each showing one stack or nothing.

use pydx_profile::{Run, ThreadId};

use crate::frames::{FrameNamer, FrameTable};

/// Two runs of a thread separated by at most this many sampling intervals
/// are drawn back to back, the earlier one lasting until the later starts:
/// such gaps come from late or missed samples, not from the thread doing
/// something else. (The profile's timeline extends a run over the same
/// gaps.)
const BRIDGED_GAP_INTERVALS: u64 = 3;

/// A stretch of one thread's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// Start, in nanoseconds since the start of the recording.
    pub(crate) start_ns: u64,
    /// End, in nanoseconds since the start of the recording.
    pub(crate) end_ns: u64,
    /// The frames shown (numbers in the [`FrameTable`]), outermost first;
    /// empty when nothing is shown (no sample, or samples filtered out).
    pub(crate) frames: Vec<usize>,
}

impl Span {
    pub(crate) fn duration_ns(&self) -> u64 {
        self.end_ns - self.start_ns
    }
}

/// The timeline of every thread that shows anything, in thread order.
///
/// Spans follow each other without gaps or overlaps, consecutive spans
/// show different frames, and the first and last span of a thread show
/// some frames.
pub(crate) fn thread_timelines(
    namer: &FrameNamer<'_>,
    table: &mut FrameTable,
) -> Vec<(ThreadId, Vec<Span>)> {
    let profile = namer.profile();
    let bridged_gap_ns = BRIDGED_GAP_INTERVALS * profile.meta.interval_ns();
    let mut timelines = Vec::new();
    let mut runs = profile.runs().peekable();
    while let Some(first) = runs.next() {
        let mut thread_runs = vec![first];
        while let Some(run) = runs.next_if(|run| run.thread == first.thread) {
            thread_runs.push(run);
        }
        let spans = thread_spans(namer, table, &thread_runs, bridged_gap_ns);
        if !spans.is_empty() {
            timelines.push((first.thread, spans));
        }
    }
    timelines
}

/// The spans of one thread's runs (in time order).
fn thread_spans(
    namer: &FrameNamer<'_>,
    table: &mut FrameTable,
    runs: &[&Run],
    bridged_gap_ns: u64,
) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (position, run) in runs.iter().enumerate() {
        let next_start_ns = runs.get(position + 1).map(|next| next.start_ns);
        let end_ns = match next_start_ns {
            Some(next_start_ns) if next_start_ns <= run.end_ns + bridged_gap_ns => next_start_ns,
            _ => run.end_ns,
        }
        .max(run.start_ns);
        let frames = if namer.keeps(run.state, run.labels) {
            table.intern_all(namer, &namer.frames(run.thread, run.labels, run.stack))
        } else {
            Vec::new()
        };
        push_span(&mut spans, run.start_ns, end_ns, frames);
        if let Some(next_start_ns) = next_start_ns {
            push_span(&mut spans, end_ns, next_start_ns, Vec::new());
        }
    }
    while spans.last().is_some_and(|span| span.frames.is_empty()) {
        spans.pop();
    }
    let leading_gaps = spans
        .iter()
        .take_while(|span| span.frames.is_empty())
        .count();
    spans.drain(..leading_gaps);
    spans
}

/// Appends a span, merging it into the last one if it shows the same frames.
fn push_span(spans: &mut Vec<Span>, start_ns: u64, end_ns: u64, frames: Vec<usize>) {
    if end_ns <= start_ns {
        return;
    }
    match spans.last_mut() {
        Some(last) if last.frames == frames => last.end_ns = end_ns,
        _ => spans.push(Span {
            start_ns,
            end_ns,
            frames,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::{add, meta, state, MS};
    use crate::RenderOptions;
    use pydx_profile::{Activity, Profile};

    fn timelines(profile: &Profile, options: &RenderOptions) -> Vec<(ThreadId, Vec<Span>)> {
        let namer = FrameNamer::new(profile, options);
        thread_timelines(&namer, &mut FrameTable::default())
    }

    fn bounds(spans: &[Span]) -> Vec<(u64, u64, bool)> {
        spans
            .iter()
            .map(|span| {
                (
                    span.start_ns / MS,
                    span.end_ns / MS,
                    !span.frames.is_empty(),
                )
            })
            .collect()
    }

    #[test]
    fn late_samples_do_not_open_gaps_and_long_gaps_do() {
        let mut profile = Profile::new(meta());
        let a = profile.frame("a", "x.py", 1, 1);
        let b = profile.frame("b", "x.py", 2, 1);
        let stack_a = profile.stack_from_root([a]);
        let stack_b = profile.stack_from_root([b]);
        let thread = profile.thread(100, 100, 1, None);
        let on_cpu = state(Activity::OnCpu, true);
        // 10 ms interval: `b` comes 5 ms late, `a` comes back 500 ms later.
        add(&mut profile, 0, thread, stack_a, on_cpu);
        add(&mut profile, 15 * MS, thread, stack_b, on_cpu);
        add(&mut profile, 525 * MS, thread, stack_a, on_cpu);

        let timelines = timelines(&profile, &RenderOptions::default());
        assert_eq!(timelines.len(), 1);
        assert_eq!(
            bounds(&timelines[0].1),
            [
                (0, 15, true),
                (15, 25, true),
                (25, 525, false),
                (525, 535, true)
            ]
        );
    }

    #[test]
    fn filtered_runs_become_gaps_and_are_trimmed_at_the_ends() {
        let mut profile = Profile::new(meta());
        let a = profile.frame("a", "x.py", 1, 1);
        let stack = profile.stack_from_root([a]);
        let thread = profile.thread(100, 100, 1, None);
        let idle_thread = profile.thread(100, 101, 2, None);
        let activities = [
            Activity::Idle,
            Activity::OnCpu,
            Activity::Idle,
            Activity::Idle,
            Activity::OnCpu,
            Activity::Idle,
        ];
        for (time, activity) in (0..).step_by(10).zip(activities) {
            add(
                &mut profile,
                time * MS,
                thread,
                stack,
                state(activity, true),
            );
            add(
                &mut profile,
                time * MS,
                idle_thread,
                stack,
                state(Activity::Idle, false),
            );
        }

        let default = timelines(&profile, &RenderOptions::default());
        assert_eq!(default.len(), 1, "the idle thread shows nothing");
        assert_eq!(
            bounds(&default[0].1),
            [(10, 20, true), (20, 40, false), (40, 50, true)]
        );

        let options = RenderOptions {
            include_idle: true,
            ..RenderOptions::default()
        };
        let all = timelines(&profile, &options);
        assert_eq!(all.len(), 2);
        assert_eq!(bounds(&all[0].1), [(0, 60, true)], "same frames merge");
        assert_eq!(bounds(&all[1].1), [(0, 60, true)]);
    }
}
