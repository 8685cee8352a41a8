//! What the text formats share: which samples they keep, the frames a
//! sample or run is drawn with, and the names of those frames.

use std::collections::HashMap;

use pydx_profile::{FrameId, LabelSetId, Profile, RunStack, SampleState, StrId, ThreadId};

use crate::RenderOptions;

/// The name of the frame drawn for a thread running no Python code.
const NO_PYTHON_FRAMES: &str = "<no Python frames>";
/// The name of the frame drawn for a merged stretch of short stacks.
const SEVERAL_SHORT_STACKS: &str = "[several short stacks]";

/// A frame as drawn: a Python frame, or one pydx adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FrameKey {
    /// The root frame of a process's samples, when several were sampled.
    Process(u32),
    /// The root frame of a thread's samples (with `per_thread`).
    Thread(ThreadId),
    /// The frame naming the asyncio task a sample ran (with `per_task`).
    Task(StrId),
    /// The frame naming the endpoint a thread served (with `per_endpoint`).
    Endpoint(StrId),
    /// A Python frame; `line` is the line shown (the first line of the
    /// function with `by_function`).
    Python {
        function: StrId,
        file: StrId,
        line: u32,
    },
    /// A thread running no Python code.
    NoPythonFrames,
    /// A stretch of the timeline where several short stacks were merged.
    SeveralShortStacks,
}

/// Applies the [`RenderOptions`] to samples and runs of one profile.
pub(crate) struct FrameNamer<'a> {
    profile: &'a Profile,
    options: &'a RenderOptions,
    several_processes: bool,
}

impl<'a> FrameNamer<'a> {
    pub(crate) fn new(profile: &'a Profile, options: &'a RenderOptions) -> Self {
        let mut pids = profile
            .samples()
            .map(|(key, _)| profile.thread_info(key.thread).pid);
        let first_pid = pids.next();
        let several_processes = pids.any(|pid| Some(pid) != first_pid);
        Self {
            profile,
            options,
            several_processes,
        }
    }

    pub(crate) fn profile(&self) -> &'a Profile {
        self.profile
    }

    /// Whether the samples come from more than one process.
    pub(crate) fn several_processes(&self) -> bool {
        self.several_processes
    }

    /// Whether samples (or runs) in this state, with these labels, are
    /// shown. A thread whose event loop was stuck in a call is shown even
    /// when it slept: every task waited for it.
    pub(crate) fn keeps(&self, state: SampleState, labels: LabelSetId) -> bool {
        let activity_shown = self.options.include_idle
            || state.activity.counts_as_cpu()
            || self.profile.is_blocked_event_loop(labels);
        let endpoint_shown = self.options.only_endpoint.as_deref().is_none_or(|wanted| {
            self.profile
                .endpoint(labels)
                .is_some_and(|endpoint| self.profile.str(endpoint) == wanted)
        });
        activity_shown && endpoint_shown && (!self.options.gil_only || state.holds_gil)
    }

    /// The frames drawn for `stack` on `thread`, outermost first.
    pub(crate) fn frames(
        &self,
        thread: ThreadId,
        labels: LabelSetId,
        stack: RunStack,
    ) -> Vec<FrameKey> {
        let mut frames = Vec::new();
        if self.several_processes {
            frames.push(FrameKey::Process(self.profile.thread_info(thread).pid));
        }
        if self.options.per_thread {
            frames.push(FrameKey::Thread(thread));
        }
        if self.options.per_endpoint {
            if let Some(endpoint) = self.profile.endpoint(labels) {
                frames.push(FrameKey::Endpoint(endpoint));
            }
        }
        if self.options.per_task {
            if let Some(task) = self.profile.task(labels) {
                frames.push(FrameKey::Task(task));
            }
        }
        match stack {
            RunStack::Mixed => frames.push(FrameKey::SeveralShortStacks),
            RunStack::Stack(None) => frames.push(FrameKey::NoPythonFrames),
            RunStack::Stack(Some(stack)) => frames.extend(
                self.profile
                    .frames_root_first(Some(stack))
                    .into_iter()
                    .map(|id| self.python_frame(id)),
            ),
        }
        frames
    }

    fn python_frame(&self, id: FrameId) -> FrameKey {
        let frame = self.profile.frame_info(id);
        FrameKey::Python {
            function: frame.function,
            file: frame.file,
            line: if self.options.by_function {
                frame.first_line
            } else {
                frame.line
            },
        }
    }

    /// The name of a frame: `function (file:line)` for Python frames.
    pub(crate) fn name(&self, key: FrameKey) -> String {
        let profile = self.profile;
        match key {
            FrameKey::Process(pid) => match self.command(pid) {
                Some(command) => format!("process {pid} {command}"),
                None => format!("process {pid}"),
            },
            FrameKey::Thread(thread) => {
                let info = profile.thread_info(thread);
                match info.name {
                    Some(name) if info.tid != 0 => {
                        format!("thread {} \"{}\"", info.tid, profile.str(name))
                    }
                    Some(name) => format!("thread {:#x} \"{}\"", info.ident, profile.str(name)),
                    None => profile.thread_label(thread),
                }
            }
            FrameKey::Task(name) => format!("task \"{}\"", profile.str(name)),
            FrameKey::Endpoint(name) => format!("endpoint {}", profile.str(name)),
            FrameKey::Python {
                function,
                file,
                line,
            } => {
                let (function, file) = (profile.str(function), profile.str(file));
                if line == 0 {
                    format!("{function} ({file})")
                } else {
                    format!("{function} ({file}:{line})")
                }
            }
            FrameKey::NoPythonFrames => NO_PYTHON_FRAMES.to_string(),
            FrameKey::SeveralShortStacks => SEVERAL_SHORT_STACKS.to_string(),
        }
    }

    /// The source file and line (0 if unknown) of a Python frame.
    pub(crate) fn location(&self, key: FrameKey) -> Option<(&'a str, u32)> {
        match key {
            FrameKey::Python { file, line, .. } => Some((self.profile.str(file), line)),
            _ => None,
        }
    }

    /// The command line of process `pid`, if the profile knows it.
    pub(crate) fn command(&self, pid: u32) -> Option<&'a str> {
        self.profile
            .meta
            .processes
            .iter()
            .find(|process| process.pid == pid)
            .map(|process| process.command.as_str())
            .filter(|command| !command.is_empty())
    }
}

/// The distinct frames an output uses, numbered in order of first use, with
/// their names.
#[derive(Default)]
pub(crate) struct FrameTable {
    index: HashMap<FrameKey, usize>,
    keys: Vec<FrameKey>,
    names: Vec<String>,
}

impl FrameTable {
    /// The number of `key`, adding it if it is new.
    pub(crate) fn intern(&mut self, namer: &FrameNamer<'_>, key: FrameKey) -> usize {
        if let Some(&index) = self.index.get(&key) {
            return index;
        }
        let index = self.keys.len();
        self.keys.push(key);
        self.names.push(namer.name(key));
        self.index.insert(key, index);
        index
    }

    /// The numbers of `keys`, adding the new ones.
    pub(crate) fn intern_all(&mut self, namer: &FrameNamer<'_>, keys: &[FrameKey]) -> Vec<usize> {
        keys.iter().map(|&key| self.intern(namer, key)).collect()
    }

    pub(crate) fn key(&self, index: usize) -> FrameKey {
        self.keys[index]
    }

    pub(crate) fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Every frame in order: its key and its name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (FrameKey, &str)> {
        self.keys
            .iter()
            .zip(&self.names)
            .map(|(&key, name)| (key, name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_profiles::{add, state};
    use pydx_profile::{Activity, Meta, ProcessMeta, Work};

    #[test]
    fn filters_follow_the_options() {
        let profile = Profile::new(Meta::default());
        let cases = [
            (false, false, Activity::OnCpu, false, true),
            (false, false, Activity::Unknown, false, true),
            (false, false, Activity::Idle, false, false),
            (false, false, Activity::GilWait, false, false),
            (true, false, Activity::Idle, false, true),
            (true, false, Activity::GilWait, false, true),
            (false, false, Activity::CpuWait, false, false),
            (true, false, Activity::CpuWait, false, true),
            (false, true, Activity::OnCpu, false, false),
            (false, true, Activity::OnCpu, true, true),
            (true, true, Activity::Idle, true, true),
        ];
        for (include_idle, gil_only, activity, holds_gil, kept) in cases {
            let options = RenderOptions {
                include_idle,
                gil_only,
                ..RenderOptions::default()
            };
            let namer = FrameNamer::new(&profile, &options);
            assert_eq!(
                namer.keeps(state(activity, holds_gil), LabelSetId(0)),
                kept,
                "{include_idle} {gil_only} {activity:?} {holds_gil}"
            );
        }
    }

    #[test]
    fn a_stuck_event_loop_is_kept_even_when_it_slept() {
        let mut profile = Profile::new(Meta::default());
        let stuck = profile.work_labels(&Work {
            event_loop_blocked: true,
            ..Work::default()
        });
        let task = profile.work_labels(&Work {
            task: Some("Task-1"),
            ..Work::default()
        });
        let options = RenderOptions::default();
        let namer = FrameNamer::new(&profile, &options);
        let idle = state(Activity::Idle, false);
        assert!(namer.keeps(idle, stuck));
        assert!(!namer.keeps(idle, task));
        assert!(!namer.keeps(idle, LabelSetId(0)));
    }

    #[test]
    fn endpoints_get_a_root_frame_or_select_the_samples() {
        let mut profile = Profile::new(Meta::default());
        let thread = profile.thread(1, 11, 0x11, Some("MainThread"));
        let endpoint = |profile: &mut Profile, endpoint| {
            profile.work_labels(&Work {
                endpoint: Some(endpoint),
                ..Work::default()
            })
        };
        let orders = endpoint(&mut profile, "GET /orders/{id}");
        let report = endpoint(&mut profile, "GET /report");
        let on_cpu = state(Activity::OnCpu, true);
        let per_endpoint = RenderOptions {
            per_endpoint: true,
            ..RenderOptions::default()
        };
        let namer = FrameNamer::new(&profile, &per_endpoint);
        let roots = |labels| {
            namer
                .frames(thread, labels, RunStack::Stack(None))
                .into_iter()
                .map(|key| namer.name(key))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            roots(orders),
            ["endpoint GET /orders/{id}", "<no Python frames>"]
        );
        assert_eq!(roots(LabelSetId(0)), ["<no Python frames>"]);
        let only_orders = RenderOptions {
            only_endpoint: Some("GET /orders/{id}".to_string()),
            ..RenderOptions::default()
        };
        let namer = FrameNamer::new(&profile, &only_orders);
        assert!(namer.keeps(on_cpu, orders));
        assert!(!namer.keeps(on_cpu, report));
        assert!(!namer.keeps(on_cpu, LabelSetId(0)));
    }

    #[test]
    fn root_frames_name_processes_and_threads() {
        let mut profile = Profile::new(Meta {
            processes: vec![ProcessMeta {
                pid: 1,
                command: "python a.py".to_string(),
                python_version: "3.12".to_string(),
                ..ProcessMeta::default()
            }],
            ..Meta::default()
        });
        let named = profile.thread(1, 11, 0x11, Some("MainThread"));
        let unnamed = profile.thread(2, 22, 0x22, None);
        let unknown_tid = profile.thread(2, 0, 0x33, Some("worker"));
        for thread in [named, unnamed, unknown_tid] {
            add(&mut profile, 0, thread, None, state(Activity::OnCpu, true));
        }
        let options = RenderOptions {
            per_thread: true,
            ..RenderOptions::default()
        };
        let namer = FrameNamer::new(&profile, &options);
        assert!(namer.several_processes());
        let names = |thread| {
            namer
                .frames(thread, LabelSetId(0), RunStack::Stack(None))
                .into_iter()
                .map(|key| namer.name(key))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(named),
            [
                "process 1 python a.py",
                "thread 11 \"MainThread\"",
                "<no Python frames>"
            ]
        );
        assert_eq!(
            names(unnamed),
            ["process 2", "thread 22", "<no Python frames>"]
        );
        assert_eq!(
            names(unknown_tid),
            ["process 2", "thread 0x33 \"worker\"", "<no Python frames>"]
        );
        let mixed = namer.frames(named, LabelSetId(0), RunStack::Mixed);
        assert_eq!(namer.name(mixed[mixed.len() - 1]), "[several short stacks]");
    }

    #[test]
    fn python_frames_name_their_line_or_their_function() {
        let mut profile = Profile::new(Meta::default());
        let frame = profile.frame("work", "app.py", 12, 10);
        let unknown_line = profile.frame("other", "lib.py", 0, 0);
        let stack = profile.stack_from_root([frame, unknown_line]);
        let thread = profile.thread(1, 1, 1, None);
        let by_line = RenderOptions::default();
        let by_function = RenderOptions {
            by_function: true,
            ..RenderOptions::default()
        };
        let names = |options: &RenderOptions| {
            let namer = FrameNamer::new(&profile, options);
            namer
                .frames(thread, LabelSetId(0), RunStack::Stack(stack))
                .into_iter()
                .map(|key| {
                    let location = namer.location(key);
                    (
                        namer.name(key),
                        location.map(|(file, line)| (file.to_string(), line)),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&by_line),
            [
                (
                    "work (app.py:12)".to_string(),
                    Some(("app.py".to_string(), 12))
                ),
                (
                    "other (lib.py)".to_string(),
                    Some(("lib.py".to_string(), 0))
                ),
            ]
        );
        assert_eq!(names(&by_function)[0].0, "work (app.py:10)");
    }
}
