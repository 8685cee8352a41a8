//! Profiles built by hand for the rules' unit tests.

use pydx_profile::{Activity, LabelSetId, Profile, SampleKey, SampleState, StackId, ThreadId};

/// Adds `count` samples of `thread` at `stack` in `activity`, holding the
/// GIL when on a CPU.
pub fn add(
    profile: &mut Profile,
    thread: ThreadId,
    stack: Option<StackId>,
    activity: Activity,
    count: u64,
) {
    let key = SampleKey {
        thread,
        stack,
        state: SampleState {
            activity,
            holds_gil: activity == Activity::OnCpu,
        },
        labels: LabelSetId(0),
    };
    profile.add_samples(0, key, count);
}
