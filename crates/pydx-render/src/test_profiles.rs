//! Small profiles for the tests.

use pydx_profile::{
    Activity, LabelSetId, Meta, ProcessMeta, Profile, SampleKey, SampleState, StackId, ThreadId,
};

/// A millisecond in nanoseconds.
pub(crate) const MS: u64 = 1_000_000;

pub(crate) fn state(activity: Activity, holds_gil: bool) -> SampleState {
    SampleState {
        activity,
        holds_gil,
    }
}

/// Adds one sample taken at `time_ns`.
pub(crate) fn add(
    profile: &mut Profile,
    time_ns: u64,
    thread: ThreadId,
    stack: Option<StackId>,
    state: SampleState,
) {
    let key = SampleKey {
        thread,
        stack,
        state,
        labels: LabelSetId(0),
    };
    profile.add_sample(time_ns, key);
}

/// Metadata for process 100, `python app.py`, sampled every 10 ms.
pub(crate) fn meta() -> Meta {
    Meta {
        rate_hz: 100.0,
        processes: vec![ProcessMeta {
            pid: 100,
            command: "python app.py".to_string(),
            python_version: "3.12.1".to_string(),
            ..ProcessMeta::default()
        }],
        ..Meta::default()
    }
}

/// Two threads of process 100, sampled every 10 ms:
/// - `MainThread` (tid 100) on a CPU holding the GIL in `work` at 0, 10 and
///   20 ms, then idle in `wait` at 30 and 40 ms;
/// - `worker` (tid 101) on a CPU without the GIL at line 3 of `run` at 0 and
///   10 ms, waiting for the GIL at line 4 at 20 ms, then running no Python
///   code in an unknown state at 30 ms.
pub(crate) fn two_threads() -> Profile {
    let mut profile = Profile::new(meta());
    let module = profile.frame("<module>", "app.py", 10, 1);
    let module_waiting = profile.frame("<module>", "app.py", 11, 1);
    let work = profile.frame("work", "app.py", 5, 4);
    let wait = profile.frame("wait", "app.py", 20, 19);
    let run_line_3 = profile.frame("run", "worker.py", 3, 2);
    let run_line_4 = profile.frame("run", "worker.py", 4, 2);
    let working = profile.stack_from_root([module, work]);
    let waiting = profile.stack_from_root([module_waiting, wait]);
    let running = profile.stack_from_root([run_line_3]);
    let gil_waiting = profile.stack_from_root([run_line_4]);

    let main = profile.thread(100, 100, 1, Some("MainThread"));
    let worker = profile.thread(100, 101, 2, Some("worker"));
    for time in [0, 10, 20] {
        add(
            &mut profile,
            time * MS,
            main,
            working,
            state(Activity::OnCpu, true),
        );
    }
    for time in [30, 40] {
        add(
            &mut profile,
            time * MS,
            main,
            waiting,
            state(Activity::Idle, false),
        );
    }
    for time in [0, 10] {
        add(
            &mut profile,
            time * MS,
            worker,
            running,
            state(Activity::OnCpu, false),
        );
    }
    add(
        &mut profile,
        20 * MS,
        worker,
        gil_waiting,
        state(Activity::GilWait, false),
    );
    add(
        &mut profile,
        30 * MS,
        worker,
        None,
        state(Activity::Unknown, false),
    );
    profile
}
