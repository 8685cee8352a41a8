//! `pydx diff`: two saved profiles compared, to verify a fix.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use pydx_diagnose::{diagnose, diff, Recording};
use pydx_profile::{read_pprof, Profile};
use pydx_render::{
    render_diff, render_diff_html, write_diff_flamegraph, RenderOptions, ReportFormat,
    ReportOptions,
};

use super::doctor::{load_config, SourceFiles};
use super::output::{check_writable, write_atomically};
use crate::cli::DiffArgs;

/// Exit status when `--fail-on-regression` finds a regression.
const REGRESSION_EXIT: u8 = 4;

/// Runs `pydx diff`.
pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    if let Some(percent) = args.fail_on_regression {
        if !(percent.is_finite() && percent >= 0.0) {
            bail!("--fail-on-regression takes a percentage of 0 or more, not {percent}");
        }
    }
    for path in [&args.output, &args.flamegraph].into_iter().flatten() {
        check_writable(path)?;
    }
    let config = load_config(args.config.as_deref(), &[])?;
    let before = load(&args.before)?;
    let after = load(&args.after)?;
    // Source lines come from the files as they are now: the findings only
    // show them, the comparison does not depend on them.
    let sources = SourceFiles::new(Vec::new());
    let before_report = diagnose(&before, &config, &sources);
    let after_report = diagnose(&after, &config, &sources);
    let comparison = diff(
        &Recording {
            file: &args.before.display().to_string(),
            profile: &before,
            report: &before_report,
        },
        &Recording {
            file: &args.after.display().to_string(),
            profile: &after,
            report: &after_report,
        },
    );
    let mut options = ReportOptions::default();
    options.tool_version = env!("CARGO_PKG_VERSION").to_string();
    let html = !args.json
        && args
            .output
            .as_deref()
            .and_then(ReportFormat::from_path)
            .is_some_and(|format| format == ReportFormat::Html);
    match &args.output {
        Some(path) if html => write_atomically(path, |out| {
            Ok(render_diff_html(
                &comparison,
                &before,
                &after,
                &options,
                out,
            )?)
        })?,
        Some(path) => write_atomically(path, |out| {
            Ok(render_diff(&comparison, args.json, &options, out)?)
        })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            render_diff(&comparison, args.json, &options, &mut stdout)?;
            stdout.flush()?;
        }
    }
    if let Some(path) = &args.flamegraph {
        // Sample counts to time, then to the second recording's unit of work.
        let before_units = comparison.before.units(comparison.basis);
        let after_units = comparison.after.units(comparison.basis);
        let scale = (before.mean_sample_ns() / after.mean_sample_ns().max(1.0))
            * (after_units / before_units.max(f64::MIN_POSITIVE));
        let mut render = RenderOptions::default();
        render.title = format!("{} -> {}", args.before.display(), args.after.display());
        write_atomically(path, |out| {
            Ok(write_diff_flamegraph(&before, &after, scale, &render, out)?)
        })?;
    }
    let regressed = args
        .fail_on_regression
        .is_some_and(|percent| comparison.regressed_by_more_than(percent));
    if regressed {
        eprintln!(
            "pydx: the CPU time per {} rose by {:.0}%, more than --fail-on-regression {}",
            match comparison.basis {
                pydx_diagnose::Basis::PerRequest => "request",
                pydx_diagnose::Basis::PerSecond => "second of recording",
            },
            comparison.cpu_change().unwrap_or(0.0) * 100.0,
            args.fail_on_regression.unwrap_or(0.0)
        );
        return Ok(ExitCode::from(REGRESSION_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> anyhow::Result<Profile> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_pprof(file).with_context(|| format!("cannot read {}", path.display()))
}
