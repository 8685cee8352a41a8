//! `pydx top`: a live view of where a process spends its time.

use std::process::ExitCode;

use crate::cli::TopArgs;

/// Runs `pydx top`.
pub fn run(_args: &TopArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("pydx top is not written yet")
}
