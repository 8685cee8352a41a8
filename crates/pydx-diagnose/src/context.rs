//! What every rule needs to read a profile: its samples, the code they
//! name, and the source lines of that code.

use std::collections::HashMap;

use pydx_libraries::{is_array_type, plays, roles, Role};
use pydx_profile::{
    is_native_binary, CodeKind, Execution, FrameId, Observed, Profile, SampleKey, StackId,
};

use crate::config::Config;
use crate::finding::Location;

/// Source code of the profiled program, read on demand.
pub trait SourceLines {
    /// The text of `line` (1-based) of `file`, without its line end.
    fn line(&self, file: &str, line: u32) -> Option<String>;
}

/// No source code available (rules then work from the samples alone).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSources;

impl SourceLines for NoSources {
    fn line(&self, _file: &str, _line: u32) -> Option<String> {
        None
    }
}

/// Source lines kept in memory: file name to lines.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: HashMap<String, Vec<String>>,
}

impl SourceMap {
    /// Adds the text of `file`.
    pub fn insert(&mut self, file: &str, text: &str) {
        self.files
            .insert(file.to_string(), text.lines().map(str::to_string).collect());
    }
}

impl SourceLines for SourceMap {
    fn line(&self, file: &str, line: u32) -> Option<String> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        self.files.get(file)?.get(index).cloned()
    }
}

/// Lines of decorators looked through to find a function's `def`.
const MAX_DECORATOR_LINES: u32 = 40;

/// Everything a rule reads.
pub struct Context<'a> {
    /// The samples.
    pub profile: &'a Profile,
    /// The whole recording, with the samples taken while modules were
    /// imported (left out of `profile` for the rules): for the rules about
    /// what the program builds at import.
    pub recorded: &'a Profile,
    /// The thresholds.
    pub config: &'a Config,
    sources: &'a dyn SourceLines,
}

impl<'a> Context<'a> {
    /// A context over `profile`.
    pub fn new(profile: &'a Profile, config: &'a Config, sources: &'a dyn SourceLines) -> Self {
        Self {
            profile,
            recorded: profile,
            config,
            sources,
        }
    }

    /// The same context, with `recorded` as the whole recording that
    /// `profile` was taken from (same frames and stacks).
    pub fn with_recorded(self, recorded: &'a Profile) -> Self {
        Self { recorded, ..self }
    }

    /// Seconds one sample stands for: the measured mean time between a
    /// thread's samples (not the requested interval, which a sampler that
    /// falls behind does not keep).
    pub fn interval_seconds(&self) -> f64 {
        self.profile.mean_sample_ns() / 1e9
    }

    /// Whether `frame` is the program's own code.
    pub fn is_user_frame(&self, frame: FrameId) -> bool {
        let file = self.profile.str(self.profile.frame_info(frame).file);
        CodeKind::of(file) == CodeKind::User
    }

    /// Whether `frame` is a native frame (recorded with `--native`).
    pub fn is_native_frame(&self, frame: FrameId) -> bool {
        is_native_binary(self.profile.str(self.profile.frame_info(frame).file))
    }

    /// The innermost Python frame of `stack`: its innermost frame, past the
    /// native frames `--native` puts below it (a selector's `epoll_wait`,
    /// a built-in's C function), which are what that Python frame is doing.
    pub fn innermost_python_frame(&self, stack: Option<StackId>) -> Option<FrameId> {
        self.profile
            .frames_innermost_first(stack)
            .into_iter()
            .find(|&f| !self.is_native_frame(f))
    }

    /// The function name of a frame.
    pub fn function(&self, frame: FrameId) -> &str {
        self.profile.str(self.profile.frame_info(frame).function)
    }

    /// Whether the function of `frame` plays `role` in well-known code
    /// (see [`pydx_libraries::KNOWN_CODE`]).
    pub fn plays(&self, frame: FrameId, role: Role) -> bool {
        plays(self.function(frame), self.file(frame), role)
    }

    /// The roles the function of `frame` plays in well-known code.
    pub fn roles(&self, frame: FrameId) -> impl Iterator<Item = Role> + '_ {
        roles(self.function(frame), self.file(frame))
    }

    /// The file of a frame.
    pub fn file(&self, frame: FrameId) -> &str {
        self.profile.str(self.profile.frame_info(frame).file)
    }

    /// `function (file:line)`.
    pub fn frame_text(&self, frame: FrameId) -> String {
        let info = self.profile.frame_info(frame);
        format!(
            "{} ({}:{})",
            self.function(frame),
            self.file(frame),
            info.line
        )
    }

    /// A stack as text, innermost frame first.
    pub fn stack_text(&self, stack: Option<StackId>) -> Vec<String> {
        self.profile
            .frames_innermost_first(stack)
            .into_iter()
            .map(|f| self.frame_text(f))
            .collect()
    }

    /// The source text of a line, trimmed.
    pub fn source_line(&self, file: &str, line: u32) -> Option<String> {
        self.sources.line(file, line).map(|l| l.trim().to_string())
    }

    /// The source text of a line as written (with its indentation).
    pub fn raw_source_line(&self, file: &str, line: u32) -> Option<String> {
        self.sources.line(file, line)
    }

    /// The line of the `def` of a function whose code starts at
    /// `first_line` (for a decorated function, CPython's first line is its
    /// first decorator's): the first line from there that starts with
    /// `def` or `async def`, or `first_line` without the source.
    pub fn def_line(&self, file: &str, first_line: u32) -> u32 {
        (first_line..first_line.saturating_add(MAX_DECORATOR_LINES))
            .map_while(|line| Some((line, self.source_line(file, line)?)))
            .find(|(_, text)| text.starts_with("def ") || text.starts_with("async def "))
            .map_or(first_line, |(line, _)| line)
    }

    /// Where a frame points, with its source line.
    pub fn location(&self, frame: FrameId) -> Location {
        let info = self.profile.frame_info(frame);
        let file = self.file(frame).to_string();
        Location {
            function: self.function(frame).to_string(),
            source: self.source_line(&file, info.line),
            file,
            line: info.line,
        }
    }

    /// The innermost frame of a stack that is the program's own code.
    pub fn innermost_user_frame(&self, stack: Option<StackId>) -> Option<FrameId> {
        self.profile
            .frames_innermost_first(stack)
            .into_iter()
            .find(|&f| self.is_user_frame(f))
    }

    /// How many on-CPU samples of the frames `matches` accepts were taken
    /// running bytecode and how many inside a call to native code, from the
    /// [`Observed::Exec`] observations, if any were recorded.
    pub fn execution_split(&self, matches: impl Fn(FrameId) -> bool) -> Option<(u64, u64)> {
        let (mut bytecode, mut native) = (0u64, 0u64);
        for (frame, what, _, count) in self.profile.observations() {
            match what {
                Observed::Exec(Execution::Bytecode) if matches(frame) => bytecode += count,
                Observed::Exec(Execution::NativeCall) if matches(frame) => native += count,
                _ => {}
            }
        }
        (bytecode + native > 0).then_some((bytecode, native))
    }

    /// `(name, type)` of the variables used in `statement`, from the types
    /// of locals observed in the frames of `frame`'s function.
    pub fn observed_types(&self, frame: FrameId, statement: &str) -> Vec<(String, String)> {
        let function = self.function(frame);
        let file = self.file(frame);
        let mut types: Vec<(String, String)> = self
            .profile
            .observations()
            .into_iter()
            .filter(|(f, _, _, _)| self.function(*f) == function && self.file(*f) == file)
            .filter_map(|(_, what, value, _)| match what {
                Observed::LocalType(name) => {
                    Some((self.profile.str(name).to_string(), value.to_string()))
                }
                _ => None,
            })
            .filter(|(name, _)| crate::source::contains_name(statement, name))
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Whether the line `frame` runs works on whole arrays (a variable it
    /// uses was seen holding a NumPy array or a pandas object): its time is
    /// inside the array library's native code, whatever the interpreter's
    /// current instruction (`a @ b` is one bytecode).
    pub fn works_on_arrays(&self, frame: FrameId) -> bool {
        let line = self.profile.frame_info(frame).line;
        self.source_line(self.file(frame), line)
            .is_some_and(|statement| {
                self.observed_types(frame, &statement)
                    .iter()
                    .any(|(_, t)| is_array_type(t))
            })
    }

    /// Fewest samples a CPU rule needs in the code it reports (0.2 s at the
    /// default 100 Hz): below that a share is noise, and a mostly idle
    /// program's few busy moments are not worth a finding.
    pub const MIN_CPU_SAMPLES: u64 = 20;

    /// Samples on a CPU (or of unknown state, counted as running), which is
    /// what CPU rules measure against.
    pub fn on_cpu(key: &SampleKey) -> bool {
        key.state.activity.counts_as_cpu()
    }

    /// Each kind of on-CPU sample with Python frames: its innermost frame,
    /// its stack and its count (what a function's own time is made of).
    pub fn on_cpu_innermost(&self) -> impl Iterator<Item = (FrameId, Option<StackId>, u64)> + '_ {
        self.profile
            .samples()
            .filter(|(key, _)| Self::on_cpu(key))
            .filter_map(|(key, count)| {
                let frame = *self.profile.frames_innermost_first(key.stack).first()?;
                Some((frame, key.stack, count))
            })
    }

    /// The total of on-CPU samples.
    pub fn on_cpu_samples(&self) -> u64 {
        self.profile
            .samples()
            .filter(|(key, _)| Self::on_cpu(key))
            .map(|(_, count)| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sorted_into_user_library_and_stdlib_code() {
        let kind = CodeKind::of;
        assert_eq!(kind("/srv/app/views.py"), CodeKind::User);
        assert_eq!(kind("/usr/lib/python3.12/threading.py"), CodeKind::Stdlib);
        assert_eq!(
            kind("/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/base_events.py"),
            CodeKind::Stdlib
        );
        assert_eq!(kind("<frozen importlib._bootstrap>"), CodeKind::Stdlib);
        assert_eq!(
            kind("/venv/lib/python3.12/site-packages/django/db/models/query.py"),
            CodeKind::Library
        );
        assert_eq!(
            kind("/usr/lib/python3/dist-packages/requests/api.py"),
            CodeKind::Library
        );
        assert_eq!(kind("/srv/venv/bin/gunicorn"), CodeKind::Library);
        assert_eq!(kind("/srv/app/bin/manage.py"), CodeKind::User);
        // The binaries of native frames (`--native`).
        assert_eq!(
            kind("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"),
            CodeKind::Native
        );
        assert_eq!(
            kind("/usr/lib/python3.11/lib-dynload/_hashlib.cpython-311-x86_64-linux-gnu.so"),
            CodeKind::Native
        );
        assert_eq!(kind("/usr/bin/python3.11"), CodeKind::Native);
        assert_eq!(kind("?"), CodeKind::Native);
        assert_eq!(kind("/srv/app/bin/python_tools.py"), CodeKind::User);
    }

    #[test]
    fn a_decorated_function_is_located_at_its_def() {
        let mut sources = SourceMap::default();
        sources.insert(
            "app.py",
            "@app.get(\n    \"/quotes\",\n)\n@login_required\nasync def quotes():\n    pass\n",
        );
        let profile = Profile::default();
        let config = Config::default();
        let context = Context::new(&profile, &config, &sources);
        assert_eq!(context.def_line("app.py", 1), 5);
        assert_eq!(context.def_line("app.py", 5), 5);
        assert_eq!(context.def_line("other.py", 3), 3);
    }

    #[test]
    fn source_maps_return_lines_by_number() {
        let mut sources = SourceMap::default();
        sources.insert("app.py", "import time\n    time.sleep(1)\n");
        assert_eq!(
            sources.line("app.py", 2).as_deref(),
            Some("    time.sleep(1)")
        );
        assert_eq!(sources.line("app.py", 3), None);
        assert_eq!(sources.line("app.py", 0), None);
    }
}
