//! The queries every view of a profile shares, each over the samples a
//! filter keeps (by thread, process, endpoint, task or state, through the
//! sample key): per-function and per-line totals (`pydx top`, the doctor's
//! hot-spot table and its PYDX-CPU002 rule, the HTML report, `pydx diff`
//! and `pydx annotate`) and the call tree (`pydx diff`'s flamegraph).

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

/// One node of a call tree: a function (by name and file) called along
/// one path from the outermost frame, the lines of each frame merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallNode {
    /// The function's name (`all` for the root).
    pub function: String,
    /// Its file (empty for the root).
    pub file: String,
    /// Samples whose stack ends here.
    pub self_samples: u64,
    /// The measured time of those samples, in nanoseconds.
    pub self_ns: u64,
    /// Samples whose stack passes through here.
    pub total_samples: u64,
    /// The measured time of those samples, in nanoseconds.
    pub total_ns: u64,
    /// The functions called from here, most total time first (then by
    /// name and file).
    pub children: Vec<CallNode>,
}

/// A function's name and file, as interned in the profile.
type FunctionKey = (StrId, StrId);

/// A call tree being built: nodes in an arena, with each one's children
/// by function.
struct CallTreeBuilder {
    nodes: Vec<(CallNode, HashMap<FunctionKey, usize>)>,
}

impl CallTreeBuilder {
    fn new() -> Self {
        let root = CallNode {
            function: "all".to_string(),
            ..CallNode::default()
        };
        Self {
            nodes: vec![(root, HashMap::new())],
        }
    }

    /// The child of node `parent` for `function` of `file`, made if new.
    fn child(&mut self, profile: &Profile, parent: usize, key: FunctionKey) -> usize {
        if let Some(&index) = self.nodes[parent].1.get(&key) {
            return index;
        }
        let index = self.nodes.len();
        let node = CallNode {
            function: profile.str(key.0).to_string(),
            file: profile.str(key.1).to_string(),
            ..CallNode::default()
        };
        self.nodes.push((node, HashMap::new()));
        self.nodes[parent].1.insert(key, index);
        index
    }

    /// The tree rooted at node `index`, children sorted; takes the nodes
    /// out of the arena.
    fn take_tree(&mut self, index: usize) -> CallNode {
        let children = std::mem::take(&mut self.nodes[index].1);
        let mut node = std::mem::take(&mut self.nodes[index].0);
        node.children = children
            .into_values()
            .map(|child| self.take_tree(child))
            .collect();
        node.children.sort_by(|a, b| {
            (b.total_ns, &a.function, &a.file).cmp(&(a.total_ns, &b.function, &b.file))
        });
        node
    }
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

    /// The call tree of the samples `include` keeps: from a root named
    /// `all`, one node per function along each call path (a function
    /// calling itself is a child of itself, as in a flamegraph).
    pub fn call_tree(&self, include: impl Fn(&SampleKey) -> bool) -> CallNode {
        let mut tree = CallTreeBuilder::new();
        for (key, tally) in self.timed_samples().filter(|(key, _)| include(key)) {
            let mut node = 0;
            let credit = |node: &mut CallNode| {
                node.total_samples += tally.count;
                node.total_ns += tally.nanos;
            };
            credit(&mut tree.nodes[node].0);
            for frame_id in self.frames_root_first(key.stack) {
                let frame = self.frame_info(frame_id);
                node = tree.child(self, node, (frame.function, frame.file));
                credit(&mut tree.nodes[node].0);
            }
            tree.nodes[node].0.self_samples += tally.count;
            tree.nodes[node].0.self_ns += tally.nanos;
        }
        tree.take_tree(0)
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
    fn the_call_tree_follows_each_path_with_lines_merged() {
        let mut profile = Profile::new(Meta::default());
        let main = profile.frame("main", "app.py", 9, 8);
        let main_later = profile.frame("main", "app.py", 10, 8);
        let walk = profile.frame("walk", "app.py", 3, 2);
        let load = profile.frame("load", "db.py", 5, 4);
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        let walking = profile.stack_from_root([main, walk]);
        let walking_later = profile.stack_from_root([main_later, walk]);
        let loading = profile.stack_from_root([main, walk, load]);
        profile.add_timed_samples(0, key(thread, walking, Activity::OnCpu), 2, 20_000_000);
        profile.add_timed_samples(
            0,
            key(thread, walking_later, Activity::OnCpu),
            1,
            10_000_000,
        );
        profile.add_timed_samples(0, key(thread, loading, Activity::OnCpu), 4, 40_000_000);
        profile.add_timed_samples(0, key(thread, None, Activity::OnCpu), 1, 10_000_000);
        profile.add_timed_samples(0, key(thread, loading, Activity::Idle), 9, 90_000_000);
        let tree = profile.call_tree(|key| key.state.activity == Activity::OnCpu);
        let line = |node: &CallNode| {
            (
                node.function.clone(),
                node.self_samples,
                node.total_samples,
                node.total_ns,
            )
        };
        assert_eq!(line(&tree), ("all".into(), 1, 8, 80_000_000));
        let main_node = &tree.children[0];
        assert_eq!(tree.children.len(), 1);
        assert_eq!(line(main_node), ("main".into(), 0, 7, 70_000_000));
        let walk_node = &main_node.children[0];
        assert_eq!(line(walk_node), ("walk".into(), 3, 7, 70_000_000));
        assert_eq!(
            line(&walk_node.children[0]),
            ("load".into(), 4, 4, 40_000_000)
        );
        assert_eq!(walk_node.children[0].file, "db.py");
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
        let on_cpu = |key: &SampleKey| key.state.activity.counts_as_cpu();
        assert_eq!(profile.frameless_samples(on_cpu), (2, 20_000_000));
        assert_eq!(profile.frameless_samples(|_| true), (9, 90_000_000));
    }
}
