//! Profiles built by hand for the rules' unit tests.

use pydx_profile::{Activity, LabelSetId, Profile, SampleKey, SampleState, StackId, ThreadId};

/// A sample of `thread` at `stack` in `activity`, holding the GIL when on
/// a CPU, without labels.
fn key(thread: ThreadId, stack: Option<StackId>, activity: Activity) -> SampleKey {
    SampleKey {
        thread,
        stack,
        state: SampleState {
            activity,
            holds_gil: activity == Activity::OnCpu,
        },
        labels: LabelSetId(0),
    }
}

/// Adds `count` samples of `thread` at `stack` in `activity`.
pub fn add(
    profile: &mut Profile,
    thread: ThreadId,
    stack: Option<StackId>,
    activity: Activity,
    count: u64,
) {
    profile.add_samples(0, key(thread, stack, activity), count);
}

/// Adds one sample of `thread` at `stack` in `activity`, taken at `time_ns`.
pub fn add_at(
    profile: &mut Profile,
    time_ns: u64,
    thread: ThreadId,
    stack: Option<StackId>,
    activity: Activity,
) {
    profile.add_sample(time_ns, key(thread, stack, activity));
}
