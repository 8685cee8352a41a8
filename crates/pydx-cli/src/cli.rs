//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Find out where a Python program spends its time, and what to change.
#[derive(Debug, Parser)]
#[command(name = "pydx", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the current Python stack of every thread of a running process.
    Dump(DumpArgs),
    /// Sample a process and write a profile (pprof, flamegraph, speedscope, ...).
    Record(RecordArgs),
    /// A live, top-like view of the functions a process spends its time in.
    Top(TopArgs),
    /// Diagnose a process (or a saved profile): findings with evidence and fixes.
    Doctor(DoctorArgs),
    /// Compare two saved profiles: CPU time per function and findings, before and after a change.
    Diff(DiffArgs),
    /// Print a function's source with each line's samples and time, from a saved profile.
    Annotate(AnnotateArgs),
    /// List the doctor's rules.
    Rules,
    /// Explain one of the doctor's rules.
    Explain(ExplainArgs),
    /// Print a shell completion script (e.g. `pydx completions bash > /etc/bash_completion.d/pydx`).
    Completions(CompletionsArgs),
}

/// Arguments of `pydx dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The process to read.
    #[arg(short, long, value_name = "PID")]
    pub pid: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also show each frame's local variables.
    #[arg(short, long)]
    pub locals: bool,
    /// Do not pause the process while reading (a stack that changes while read shows as unreadable).
    #[arg(long)]
    pub nonblocking: bool,
    /// Also list every asyncio task, with the coroutines it is suspended in (3.11+).
    #[arg(long = "async")]
    pub asyncio: bool,
    /// Also dump every descendant process that runs Python, each once,
    /// children after their parent.
    #[arg(long)]
    pub subprocesses: bool,
    /// Also read the native (C, C++, Rust) frames of extensions, libraries and built-in functions, merged into the Python stacks; pauses the target for each sample (x86_64).
    #[arg(long, conflicts_with = "nonblocking")]
    pub native: bool,
    /// With --native, keep every native frame, the interpreter's own included (its evaluation loop, calls, thread start-up).
    #[arg(long, requires = "native")]
    pub native_all: bool,
}

/// The process to sample: a running one, or a command to launch.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Attach to this running process.
    #[arg(
        short,
        long,
        value_name = "PID",
        conflicts_with = "command",
        required_unless_present = "command"
    )]
    pub pid: Option<u32>,
    /// Launch this command and sample it (put it after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// How to sample.
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// Samples per second.
    #[arg(
        short,
        long,
        default_value_t = 100.0,
        value_name = "HZ",
        allow_negative_numbers = true
    )]
    pub rate: f64,
    /// Stop after this many seconds, a launched program too (default: when the program exits or on Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Also sample child Python processes (gunicorn/uvicorn workers, multiprocessing pools).
    #[arg(short, long)]
    pub subprocesses: bool,
    /// Pause the target for each sample (exact stacks, slower target; the default before Python 3.11).
    #[arg(long, conflicts_with = "nonblocking")]
    pub blocking: bool,
    /// Never pause the target: a stack that changes while read is left out and counted (from Python 3.11 the default pauses only to read such a stack again).
    #[arg(long)]
    pub nonblocking: bool,
    /// Also read the native (C, C++, Rust) frames of extensions, libraries and built-in functions, merged into the Python stacks; pauses the target for each sample (x86_64).
    #[arg(long, conflicts_with = "nonblocking")]
    pub native: bool,
    /// With --native, keep every native frame, the interpreter's own included (its evaluation loop, calls, thread start-up).
    #[arg(long, requires = "native")]
    pub native_all: bool,
    /// With --native, how native stacks are captured: `pause` (the default) stops each thread while its native and Python stacks are read, so they always belong together; `perf`, for measuring the trade-off only (hidden), has the kernel copy running threads' stacks without stopping them, and the copy can belong to another Python call than the one read a moment later (bench/results/native-capture.md).
    #[arg(long, value_enum, requires = "native", default_value_t = NativeCaptureArg::Pause, value_name = "HOW", hide = true)]
    pub native_capture: NativeCaptureArg,
}

/// How `--native` captures native stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NativeCaptureArg {
    /// Stop each thread while it is read (ptrace).
    Pause,
    /// The kernel copies running threads' stacks (perf_event_open), no stop.
    Perf,
}

/// Output formats of `pydx record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Gzipped pprof protobuf (go tool pprof, Pyroscope, speedscope; `pydx doctor` reads it).
    Pprof,
    /// Interactive flamegraph SVG.
    Flamegraph,
    /// speedscope JSON, one timeline per thread.
    Speedscope,
    /// Collapsed stacks: `frame;frame;frame count`.
    Collapsed,
    /// Chrome trace event JSON (Perfetto, chrome://tracing).
    Chrometrace,
    /// Python's pstats, as cProfile writes it (python -m pstats, snakeviz).
    Pstats,
    /// The Firefox Profiler's Gecko format: one track per thread, samples coloured by state.
    Gecko,
    /// The doctor's HTML report: findings, interactive flamegraph, tables, annotated source.
    Html,
}

/// Arguments of `pydx record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The process to sample.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How to sample.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Where to write the profile (the format follows the extension).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format (default: from the file extension, else flamegraph).
    #[arg(short, long, value_enum)]
    pub format: Option<FormatArg>,
    /// Only keep samples of the thread holding the GIL.
    #[arg(short, long)]
    pub gil: bool,
    /// Show idle and GIL-waiting time too (the pprof file always keeps it).
    #[arg(short, long)]
    pub idle: bool,
    /// Add a root frame per thread.
    #[arg(short, long)]
    pub threads: bool,
    /// Aggregate by function instead of by line.
    #[arg(short = 'F', long)]
    pub function: bool,
    /// Read asyncio tasks too: a root frame names the task each sample ran
    /// (with --idle, waiting tasks appear with the coroutines they wait in).
    #[arg(long = "async")]
    pub async_tasks: bool,
    /// Add a root frame per HTTP endpoint (method and route) to the samples
    /// of threads serving a request.
    #[arg(long)]
    pub endpoints: bool,
    /// Keep only the samples of threads serving this endpoint, as `pydx
    /// doctor` names it (e.g. "GET /orders/<int:order_id>").
    #[arg(long, value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// Also report the system calls and bytes read per sample.
    #[arg(long)]
    pub stats: bool,
}

/// Arguments of `pydx top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The process to sample.
    #[command(flatten)]
    pub target: TargetArgs,
    /// How to sample.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Only count samples of the thread holding the GIL.
    #[arg(short, long)]
    pub gil: bool,
    /// Count idle and GIL-waiting time too.
    #[arg(short, long)]
    pub idle: bool,
}

/// Report formats of `pydx doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// Readable text (coloured on a terminal).
    Text,
    /// Markdown.
    Markdown,
    /// JSON, schema `pydx-doctor/1`.
    Json,
    /// SARIF 2.1.0, for CI systems and code review tools.
    Sarif,
    /// One self-contained HTML page: findings, interactive flamegraph,
    /// endpoints, function table and annotated source.
    Html,
}

/// Severity levels for `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOnArg {
    /// Fail on any warning or error.
    Warning,
    /// Fail on errors only.
    Error,
}

/// Arguments of `pydx doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A profile saved by `pydx record` (pprof) to diagnose instead of a live process.
    #[arg(value_name = "PROFILE", conflicts_with_all = ["pid", "command"])]
    pub profile: Option<PathBuf>,
    /// Attach to this running process.
    #[arg(short, long, value_name = "PID", conflicts_with = "command")]
    pub pid: Option<u32>,
    /// Launch this command and diagnose it (put it after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// How to sample (live only).
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Where to write the report (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Report format (default: from the -o file's extension, else text).
    #[arg(short, long, value_enum)]
    pub format: Option<ReportFormatArg>,
    /// Exit with status 3 if a finding of this severity or worse is reported.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<FailOnArg>,
    /// Thresholds file (default: ./pydx.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one threshold, e.g. `event_loop.slow_callback_ms=50` (repeatable).
    #[arg(long = "threshold", value_name = "KEY=VALUE")]
    pub thresholds: Vec<String>,
    /// Also save the recorded profile (pprof) here, to diagnose again offline.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

/// Arguments of `pydx diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The profile before the change (pprof, from `pydx record` or `pydx doctor --save`).
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,
    /// The profile after it.
    #[arg(value_name = "AFTER")]
    pub after: PathBuf,
    /// Where to write the comparison (default: standard output); a name
    /// ending in `.html` gets one self-contained HTML page with a
    /// differential flamegraph.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print JSON (schema `pydx-diff/1`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a differential flamegraph (SVG) of the CPU samples here:
    /// frames as wide as the larger of their two times, red where AFTER
    /// spends more per unit of work, blue where less.
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,
    /// Exit with status 4 if the CPU time per unit of work (per request, or
    /// per second of recording) rose by more than PCT percent.
    #[arg(long, value_name = "PCT", allow_negative_numbers = true)]
    pub fail_on_regression: Option<f64>,
    /// Thresholds file for the findings (default: ./pydx.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `pydx annotate`.
#[derive(Debug, Args)]
pub struct AnnotateArgs {
    /// A profile saved by `pydx record` or `pydx doctor --save` (pprof).
    #[arg(value_name = "PROFILE")]
    pub profile: PathBuf,
    /// The function: its name (`tokenize`), qualified name (`Parser.feed`)
    /// or method name (`feed`). Default: the program's function with the
    /// most samples of its own.
    #[arg(value_name = "FUNCTION")]
    pub function: Option<String>,
    /// Count idle and GIL-waiting time too (wall time, as line_profiler
    /// measures); by default only time on a CPU.
    #[arg(long)]
    pub idle: bool,
}

/// Arguments of `pydx completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `pydx explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rule's code, e.g. PYDX-GIL001 (or GIL001, or its name).
    pub code: String,
}
