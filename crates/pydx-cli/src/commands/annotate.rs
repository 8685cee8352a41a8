//! `pydx annotate`: one function's source, line by line, with its time.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use pydx_profile::{read_pprof, CodeKind, FunctionTime};
use pydx_render::write_annotation;

use crate::cli::AnnotateArgs;

/// Largest source file read.
const MAX_SOURCE_BYTES: u64 = 8 << 20;
/// Functions named when the one asked for is not in the profile.
const SUGGESTED: usize = 5;

/// Runs `pydx annotate`.
pub fn run(args: &AnnotateArgs) -> anyhow::Result<ExitCode> {
    let path = &args.profile;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let profile = read_pprof(file).with_context(|| format!("cannot read {}", path.display()))?;
    let functions = profile.function_times(|key| args.idle || key.state.activity.counts_as_cpu());
    let samples_of = if args.idle { "wall" } else { "on-CPU" };
    let function = match &args.function {
        Some(name) => {
            let suffix = format!(".{name}");
            let matching: Vec<&FunctionTime> = functions
                .iter()
                .filter(|f| f.function == *name || f.function.ends_with(&suffix))
                .collect();
            let Some(best) = matching.iter().max_by_key(|f| f.total_samples).copied() else {
                let mut hottest: Vec<&FunctionTime> = functions.iter().collect();
                hottest.sort_by_key(|f| std::cmp::Reverse(f.total_samples));
                let names: Vec<&str> = hottest
                    .iter()
                    .take(SUGGESTED)
                    .map(|f| f.function.as_str())
                    .collect();
                bail!(
                    "no function {name} in the {samples_of} samples of {}; the most sampled: {}",
                    path.display(),
                    names.join(", ")
                );
            };
            if matching.len() > 1 {
                eprintln!(
                    "pydx: {} functions match {name}; showing the one with the most samples ({}:{})",
                    matching.len(),
                    best.file,
                    best.first_line
                );
            }
            best
        }
        None => match functions
            .iter()
            .filter(|f| CodeKind::of(&f.file) == CodeKind::User)
            .max_by_key(|f| f.self_samples)
        {
            Some(best) => best,
            None => bail!(
                "no {samples_of} samples of the program's own code in {}{}",
                path.display(),
                if args.idle { "" } else { " (try --idle)" }
            ),
        },
    };
    let source = read_source(&function.file);
    let mut stdout = std::io::stdout().lock();
    write_annotation(function, source.as_deref(), samples_of, &mut stdout)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The lines of `file` as it is now, if it is a readable source file.
fn read_source(file: &str) -> Option<Vec<String>> {
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_SOURCE_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    Some(text.lines().map(str::to_string).collect())
}
