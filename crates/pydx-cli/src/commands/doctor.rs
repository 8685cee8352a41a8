//! `pydx doctor`: findings with evidence and fixes, live or from a profile.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use pydx_diagnose::{diagnose, Config, Severity, SourceLines};
use pydx_profile::{read_pprof, write_pprof};
use pydx_render::{render_report, ReportFormat, ReportOptions};
use pydx_sampler::StopReason;

use super::output::{check_writable, write_atomically};
use super::record::record;
use crate::cli::{DoctorArgs, FailOnArg, ReportFormatArg, TargetArgs};

/// Exit status when a finding reaches the `--fail-on` severity.
const FINDINGS_EXIT: u8 = 3;
/// Largest source file read for the report.
const MAX_SOURCE_BYTES: u64 = 8 << 20;

/// Runs `pydx doctor`.
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_deref(), &args.thresholds)?;
    for path in [&args.output, &args.save].into_iter().flatten() {
        check_writable(path)?;
    }
    let (profile, roots, target, stop) = match &args.profile {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let profile =
                read_pprof(file).with_context(|| format!("cannot read {}", path.display()))?;
            (profile, Vec::new(), None, StopReason::TargetExited)
        }
        None => {
            if args.pid.is_none() && args.command.is_empty() {
                bail!("give a profile file, --pid PID, or a command after --");
            }
            let target_args = TargetArgs {
                pid: args.pid,
                command: args.command.clone(),
            };
            let (profile, summary, target) = record(&target_args, &args.sampling, true)?;
            let mut roots = vec![PathBuf::from(format!("/proc/{}/root", target.pid))];
            roots.extend(target.root_dir.clone());
            (profile, roots, Some(target), summary.stop)
        }
    };
    if let Some(path) = &args.save {
        write_atomically(path, |out| Ok(write_pprof(&profile, out)?))?;
    }
    let sources = SourceFiles::new(roots);
    let report = diagnose(&profile, &config, &sources);
    let format = match args.format {
        Some(ReportFormatArg::Text) => ReportFormat::Text,
        Some(ReportFormatArg::Markdown) => ReportFormat::Markdown,
        Some(ReportFormatArg::Json) => ReportFormat::Json,
        Some(ReportFormatArg::Sarif) => ReportFormat::Sarif,
        Some(ReportFormatArg::Html) => ReportFormat::Html,
        None => args
            .output
            .as_deref()
            .and_then(ReportFormat::from_path)
            .unwrap_or(ReportFormat::Text),
    };
    let mut options = ReportOptions::default();
    options.tool_version = env!("CARGO_PKG_VERSION").to_string();
    match &args.output {
        Some(path) => write_atomically(path, |out| {
            Ok(render_report(
                format, &report, &profile, &sources, &options, out,
            )?)
        })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            options.color = format == ReportFormat::Text
                && stdout.is_terminal()
                && std::env::var_os("NO_COLOR").is_none();
            render_report(format, &report, &profile, &sources, &options, &mut stdout)?;
            stdout.flush()?;
        }
    }
    // A launched program's exit status is passed through, unless a
    // `--fail-on` verdict says otherwise.
    let program_status = match target {
        Some(target) => target.end(stop)?,
        None => ExitCode::SUCCESS,
    };
    let worst = report.findings.iter().map(|f| f.severity).max();
    let threshold = args.fail_on.map(|level| match level {
        FailOnArg::Warning => Severity::Warning,
        FailOnArg::Error => Severity::Error,
    });
    Ok(match (worst, threshold) {
        (Some(worst), Some(threshold)) if worst >= threshold => ExitCode::from(FINDINGS_EXIT),
        _ => program_status,
    })
}

/// Thresholds: defaults, then `--config` (or ./pydx.toml), then `--threshold`s.
pub(super) fn load_config(path: Option<&Path>, overrides: &[String]) -> anyhow::Result<Config> {
    let default = Path::new("pydx.toml");
    let path = path.or_else(|| default.exists().then_some(default));
    let mut table: toml::Table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            text.parse()
                .with_context(|| format!("invalid {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    for setting in overrides {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("--threshold {setting}: expected SECTION.NAME=VALUE"))?;
        let (section, name) = key
            .trim()
            .split_once('.')
            .with_context(|| format!("--threshold {setting}: expected SECTION.NAME=VALUE"))?;
        let value = format!("value = {}", value.trim())
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut parsed| parsed.remove("value"))
            .filter(|v| v.is_integer() || v.is_float())
            .with_context(|| format!("--threshold {setting}: the value must be a number"))?;
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            bail!("--threshold {setting}: {section} is not a section");
        };
        section_table.insert(name.to_string(), value);
    }
    Config::from_toml(&table.to_string())
        .map_err(|message| anyhow::anyhow!("invalid thresholds: {message}"))
}

/// Source files of the profiled program, read on demand through the
/// process's root (live), the root it had, or the paths as given.
pub(super) struct SourceFiles {
    roots: Vec<PathBuf>,
    files: RefCell<HashMap<String, Option<Vec<String>>>>,
}

impl SourceFiles {
    pub(super) fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots,
            files: RefCell::new(HashMap::new()),
        }
    }

    fn read(&self, file: &str) -> Option<Vec<String>> {
        if !file.starts_with('/') {
            return None;
        }
        let candidates = self
            .roots
            .iter()
            .map(|root| root.join(file.trim_start_matches('/')))
            .chain(std::iter::once(PathBuf::from(file)));
        for path in candidates {
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            if !metadata.is_file() || metadata.len() > MAX_SOURCE_BYTES {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Some(text.lines().map(str::to_string).collect());
            }
        }
        None
    }
}

impl SourceLines for SourceFiles {
    fn line(&self, file: &str, line: u32) -> Option<String> {
        let mut files = self.files.borrow_mut();
        let lines = files
            .entry(file.to_string())
            .or_insert_with(|| self.read(file));
        lines
            .as_ref()?
            .get(usize::try_from(line).ok()?.checked_sub(1)?)
            .cloned()
    }
}
