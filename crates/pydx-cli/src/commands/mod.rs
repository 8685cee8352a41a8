//! The subcommands.

mod annotate;
mod diff;
mod doctor;
mod dump;
mod output;
mod progress;
mod record;
mod rules;
mod sampling;
mod target;
mod top;

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dump(args) => dump::run(&args),
        Command::Record(args) => record::run(&args),
        Command::Top(args) => top::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Annotate(args) => annotate::run(&args),
        Command::Rules => rules::list(),
        Command::Explain(args) => rules::explain(&args.code),
        Command::Completions(args) => {
            let mut command = Cli::command();
            clap_complete::generate(args.shell, &mut command, "pydx", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
