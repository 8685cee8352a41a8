//! Command-line arguments.

use clap::{Args, Parser, Subcommand};

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
