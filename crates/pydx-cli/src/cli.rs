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
    /// Do not pause the process while reading (faster, but a stack may be torn).
    #[arg(long)]
    pub nonblocking: bool,
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
    #[arg(short, long, default_value_t = 100.0, value_name = "HZ")]
    pub rate: f64,
    /// Stop after this many seconds (default: when the program exits or on Ctrl-C).
    #[arg(short, long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Also sample child Python processes (gunicorn/uvicorn workers, multiprocessing pools).
    #[arg(short, long)]
    pub subprocesses: bool,
    /// Pause the target for each sample (exact stacks, slower target).
    #[arg(long, conflicts_with = "nonblocking")]
    pub blocking: bool,
    /// Never pause the target (the default).
    #[arg(long)]
    pub nonblocking: bool,
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
