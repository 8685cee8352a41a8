//! Turning snapshots into a [`Profile`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pydx_cpython::{CodeInfo, Frame};
use pydx_profile::{
    Activity, FrameId, LabelSetId, Meta, ProcessMeta, Profile, SampleKey, SampleState, StackId,
    EXEC_BYTECODE, EXEC_NATIVE_CALL, OBSERVED_CALL_ARGS, OBSERVED_CALL_ARGS_AGAIN, OBSERVED_EXEC,
    OBSERVED_LOCAL_TYPE,
};

use crate::sampler::{SampleSink, Summary};
use crate::snapshot::{FrameObservation, ThreadSnapshot};

/// Identifies a frame cheaply: the code object (kept alive by the cache, so
/// its address cannot be reused) and the line.
type FrameKey = (usize, u32);

/// Builds a [`Profile`] from snapshots.
///
/// Interning is cached twice: each (code object, line) maps to its profile
/// frame, and each thread remembers its last stack, so a thread that has
/// not moved since the previous sample costs one comparison.
#[derive(Debug)]
pub struct ProfileRecorder {
    profile: Profile,
    frames: HashMap<FrameKey, (Arc<CodeInfo>, FrameId)>,
    last_stacks: HashMap<(u32, u64), (Vec<FrameKey>, Option<StackId>)>,
    /// Per thread, the frames seen at its last observation.
    last_observed: HashMap<(u32, u64), Vec<ObservedCall>>,
}

/// One frame's call as an observation saw it: frame address, code object
/// and argument text.
type ObservedCall = (u64, usize, String);

impl ProfileRecorder {
    /// A recorder whose profile starts with `meta`.
    pub fn new(meta: Meta) -> Self {
        Self {
            profile: Profile::new(meta),
            frames: HashMap::new(),
            last_stacks: HashMap::new(),
            last_observed: HashMap::new(),
        }
    }

    /// The profile so far.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Completes the profile with the run's summary.
    pub fn finish(mut self, summary: &Summary) -> Profile {
        self.profile.meta.duration_ns = summary.elapsed.as_nanos() as u64;
        self.profile.meta.snapshots = summary.rounds;
        self.profile.meta.errors = summary.errors;
        self.profile
    }

    fn frame_id(&mut self, frame: &Frame) -> (FrameKey, FrameId) {
        let key = (Arc::as_ptr(&frame.code) as usize, frame.line);
        if let Some((_, id)) = self.frames.get(&key) {
            return (key, *id);
        }
        let code = &frame.code;
        let id = self
            .profile
            .frame(&code.qualname, &code.filename, frame.line, code.first_line);
        self.frames.insert(key, (code.clone(), id));
        (key, id)
    }

    fn stack_id(&mut self, pid: u32, ident: u64, frames: &[Frame]) -> Option<StackId> {
        let mut keys = Vec::with_capacity(frames.len());
        let mut ids = Vec::with_capacity(frames.len());
        for frame in frames {
            let (key, id) = self.frame_id(frame);
            keys.push(key);
            ids.push(id);
        }
        if let Some((last_keys, stack)) = self.last_stacks.get(&(pid, ident)) {
            if *last_keys == keys {
                return *stack;
            }
        }
        // Snapshot frames are innermost first; the stack tree is built from the root.
        let stack = self.profile.stack_from_root(ids.into_iter().rev());
        self.last_stacks.insert((pid, ident), (keys, stack));
        stack
    }
}

impl SampleSink for ProfileRecorder {
    fn add_process(&mut self, pid: u32, command: &str, python_version: &str) {
        self.profile.meta.processes.push(ProcessMeta {
            pid,
            command: command.to_string(),
            python_version: python_version.to_string(),
        });
    }

    fn add_snapshot(&mut self, pid: u32, elapsed: Duration, threads: &[ThreadSnapshot]) {
        let time_ns = elapsed.as_nanos() as u64;
        for thread in threads {
            let python = &thread.python;
            let stack = self.stack_id(pid, python.thread_id, &python.frames);
            let thread_id = self.profile.thread(
                pid,
                python.native_id.unwrap_or(0),
                python.thread_id,
                python.name.as_deref(),
            );
            let key = SampleKey {
                thread: thread_id,
                stack,
                state: SampleState {
                    activity: thread.activity,
                    holds_gil: python.holds_gil,
                },
                labels: LabelSetId(0),
            };
            self.profile.add_sample(time_ns, key);
            if let (Activity::OnCpu, Some(innermost)) = (thread.activity, python.frames.first()) {
                if let Some(calling) = innermost.calling {
                    let (_, frame_id) = self.frame_id(innermost);
                    let how = if calling {
                        EXEC_NATIVE_CALL
                    } else {
                        EXEC_BYTECODE
                    };
                    self.profile.observe(frame_id, OBSERVED_EXEC, how, 1);
                }
            }
            if !thread.observations.is_empty() {
                self.add_observations(pid, python, &thread.observations);
            }
        }
    }
}

impl ProfileRecorder {
    /// Stores observed arguments (once per call) and local types.
    fn add_observations(
        &mut self,
        pid: u32,
        python: &pydx_cpython::PythonThread,
        observations: &[FrameObservation],
    ) {
        let previous = self
            .last_observed
            .remove(&(pid, python.thread_id))
            .unwrap_or_default();
        let mut current = Vec::with_capacity(observations.len());
        for observation in observations {
            let Some(frame) = python.frames.get(observation.frame) else {
                continue;
            };
            let (_, frame_id) = self.frame_id(frame);
            let identity = (
                frame.addr,
                Arc::as_ptr(&frame.code) as usize,
                observation.arguments.clone(),
            );
            // Whether the last observation of this thread saw the same frame
            // with the same arguments: either the same call still running or
            // a new call that repeats it; the rules weigh these separately.
            if previous.contains(&identity) {
                self.profile
                    .observe(frame_id, OBSERVED_CALL_ARGS_AGAIN, "", 1);
            }
            self.profile
                .observe(frame_id, OBSERVED_CALL_ARGS, &observation.arguments, 1);
            current.push(identity);
            for (name, type_name) in &observation.local_types {
                self.profile.observe(
                    frame_id,
                    &format!("{OBSERVED_LOCAL_TYPE}{name}"),
                    type_name,
                    1,
                );
            }
        }
        self.last_observed.insert((pid, python.thread_id), current);
    }
}
