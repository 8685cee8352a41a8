//! Renderers for pydx profiles (pprof, flamegraph SVG, collapsed stacks,
//! speedscope and Chrome trace) and for `pydx doctor` reports (text,
//! Markdown, JSON and SARIF).
//!
//! # Profiles
//!
//! [`render`] writes a [`Profile`] in a [`Format`]; [`Format::from_path`]
//! picks the format from a file name. pprof is the saved-profile format and
//! always holds every sample; the other formats are views, and
//! [`RenderOptions`] chooses which samples they show and how frames are
//! named:
//!
//! - Idle and GIL-waiting samples are left out unless
//!   [`RenderOptions::include_idle`] is set; [`RenderOptions::gil_only`]
//!   keeps only samples whose thread held the GIL.
//! - A frame is named `function (file:line)`, or `function (file:first_line)`
//!   with [`RenderOptions::by_function`] so that the lines of a function merge.
//! - When several processes were sampled, each stack starts with a
//!   `process <pid> <command>` frame; with [`RenderOptions::per_thread`], a
//!   `thread <tid> "<name>"` frame comes next.
//! - A thread running no Python code shows as `<no Python frames>`, and a
//!   stretch of the timeline where several short stacks were merged as
//!   `[several short stacks]`.
//!
//! Collapsed stacks and the flamegraph add up sample counts. Speedscope and
//! Chrome trace draw each thread's timeline (see [`write_speedscope`] and
//! [`write_chrometrace`]).
//!
//! ```
//! use pydx_profile::{Activity, LabelSetId, Meta, Profile, SampleKey, SampleState};
//! use pydx_render::{render, Format, RenderOptions};
//!
//! let mut profile = Profile::new(Meta::default());
//! let main = profile.frame("<module>", "app.py", 3, 1);
//! let stack = profile.stack_from_root([main]);
//! let thread = profile.thread(100, 100, 1, Some("MainThread"));
//! let state = SampleState { activity: Activity::OnCpu, holds_gil: true };
//! profile.add_sample(0, SampleKey { thread, stack, state, labels: LabelSetId(0) });
//!
//! let mut out = Vec::new();
//! render(Format::Collapsed, &profile, &RenderOptions::default(), &mut out).unwrap();
//! assert_eq!(String::from_utf8(out).unwrap(), "<module> (app.py:3) 1\n");
//! ```
//!
//! # Reports
//!
//! [`render_report`] writes a [`pydx_diagnose::Report`] in a
//! [`ReportFormat`]: text for a terminal (coloured when
//! [`ReportOptions::color`] is set), Markdown, JSON (fields in
//! [`JSON_REPORT_DOC`]) or SARIF 2.1.0. [`render_rules`] and
//! [`render_rule`] write the rules' documentation for `pydx rules` and
//! `pydx explain`.
//!
//! ```
//! use pydx_diagnose::{diagnose, Config, NoSources};
//! use pydx_profile::{Meta, Profile};
//! use pydx_render::{render_report, ReportFormat, ReportOptions};
//!
//! let profile = Profile::new(Meta::default());
//! let report = diagnose(&profile, &Config::default(), &NoSources);
//! let mut out = Vec::new();
//! let options = ReportOptions::default();
//! render_report(ReportFormat::Text, &report, &profile, &NoSources, &options, &mut out).unwrap();
//! assert!(String::from_utf8(out).unwrap().contains("No problems found."));
//! ```

mod annotate;
mod chrometrace;
mod collapsed;
mod flamegraph;
mod frames;
mod gecko;
mod pstats;
mod report;
mod speedscope;
#[cfg(test)]
mod test_profiles;
mod timeline;

use std::io::Write;
use std::path::Path;

use pydx_diagnose::{diagnose, Config, NoSources};
use pydx_profile::Profile;

pub use annotate::write_annotation;
pub use chrometrace::write_chrometrace;
pub use collapsed::write_collapsed;
pub use flamegraph::{write_diff_flamegraph, write_flamegraph};
pub use gecko::write_gecko;
pub use pstats::write_pstats;
pub use report::{
    render_diff, render_diff_html, render_report, render_rule, render_rules, DocsFormat,
    ReportFormat, ReportOptions, JSON_DIFF_SCHEMA, JSON_REPORT_DOC, JSON_REPORT_SCHEMA,
};
pub use speedscope::write_speedscope;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Gzipped pprof protobuf: the saved profile, with every sample.
    Pprof,
    /// An interactive flamegraph SVG.
    Flamegraph,
    /// speedscope JSON, one timeline per thread.
    Speedscope,
    /// Collapsed (folded) stacks, one `frame;frame count` line per stack.
    Collapsed,
    /// Chrome trace event JSON, for Perfetto and `chrome://tracing`.
    ChromeTrace,
    /// Python's pstats (cProfile's format), for `python -m pstats`,
    /// snakeviz and the like.
    Pstats,
    /// The Firefox Profiler's Gecko format, one track per thread.
    Gecko,
    /// The doctor's HTML report of the profile (see
    /// [`ReportFormat::Html`]), with the default thresholds.
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 8] = [
        Format::Pprof,
        Format::Flamegraph,
        Format::Speedscope,
        Format::Collapsed,
        Format::ChromeTrace,
        Format::Pstats,
        Format::Gecko,
        Format::Html,
    ];

    /// The format a file name's extension asks for: `.pb.gz`, `.pprof` or
    /// `.pb` for pprof, `.svg` for a flamegraph, `.speedscope.json` (or plain
    /// `.json`) for speedscope, `.txt`, `.folded` or `.collapsed` for
    /// collapsed stacks, `.trace.json` or `.chrometrace.json` for Chrome
    /// trace, `.gecko.json` for the Firefox Profiler, `.pstats` or `.prof`
    /// for pstats, `.html` or `.htm` for the HTML report. Case is ignored; any other name gives `None`.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let ends_with_any = |suffixes: &[&str]| suffixes.iter().any(|s| name.ends_with(s));
        if ends_with_any(&[".pb.gz", ".pprof", ".pb"]) {
            Some(Format::Pprof)
        } else if ends_with_any(&[".svg"]) {
            Some(Format::Flamegraph)
        } else if ends_with_any(&[".txt", ".folded", ".collapsed"]) {
            Some(Format::Collapsed)
        } else if ends_with_any(&[".trace.json", ".chrometrace.json"]) {
            Some(Format::ChromeTrace)
        } else if ends_with_any(&[".gecko.json"]) {
            Some(Format::Gecko)
        } else if ends_with_any(&[".json"]) {
            Some(Format::Speedscope)
        } else if ends_with_any(&[".pstats", ".prof"]) {
            Some(Format::Pstats)
        } else if ends_with_any(&[".html", ".htm"]) {
            Some(Format::Html)
        } else {
            None
        }
    }

    /// The extension, without a leading dot, for a default file name in
    /// this format; [`Format::from_path`] maps it back to this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Pprof => "pb.gz",
            Format::Flamegraph => "svg",
            Format::Speedscope => "speedscope.json",
            Format::Collapsed => "txt",
            Format::ChromeTrace => "trace.json",
            Format::Pstats => "pstats",
            Format::Gecko => "gecko.json",
            Format::Html => "html",
        }
    }
}

/// Which samples the text formats show and how they name frames.
///
/// pprof ignores these options: it always holds every sample.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RenderOptions {
    /// Also show samples of threads that were idle or waiting for the GIL
    /// (by default only samples on a CPU, or in an unknown state, are shown).
    pub include_idle: bool,
    /// Show only samples whose thread held the GIL.
    pub gil_only: bool,
    /// Start every stack with a frame naming its thread.
    pub per_thread: bool,
    /// Name frames by function rather than by line, so that the lines of a
    /// function merge into one frame.
    pub by_function: bool,
    /// Start the stacks of samples that ran (or waited in) an asyncio task
    /// with a frame naming the task.
    pub per_task: bool,
    /// Start the stacks of samples of a thread serving an HTTP request with
    /// a frame naming the endpoint.
    pub per_endpoint: bool,
    /// Show only the samples of threads serving this endpoint.
    pub only_endpoint: Option<String>,
    /// The flamegraph's title and the speedscope file's name.
    pub title: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            include_idle: false,
            gil_only: false,
            per_thread: false,
            by_function: false,
            per_task: false,
            per_endpoint: false,
            only_endpoint: None,
            title: "pydx".to_string(),
        }
    }
}

/// Why a profile could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
    /// No sample passed the filters, and the format cannot show nothing
    /// (flamegraphs and speedscope files need at least one sample).
    #[error("no samples to show (idle samples are only shown when asked for)")]
    NoSamples,
}

/// Writes `profile` to `out` in `format`.
///
/// The output is buffered here, so `out` can be a plain file. pprof holds
/// every sample whatever the options; the other formats apply them.
pub fn render(
    format: Format,
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    match format {
        Format::Pprof => Ok(pydx_profile::write_pprof(profile, out)?),
        Format::Flamegraph => write_flamegraph(profile, options, out),
        Format::Speedscope => write_speedscope(profile, options, out),
        Format::Collapsed => write_collapsed(profile, options, out),
        Format::ChromeTrace => write_chrometrace(profile, options, out),
        Format::Pstats => write_pstats(profile, options, out),
        Format::Gecko => write_gecko(profile, options, out),
        Format::Html => {
            let report = diagnose(profile, &Config::default(), &NoSources);
            let report_options = ReportOptions::default();
            Ok(render_report(
                ReportFormat::Html,
                &report,
                profile,
                &NoSources,
                &report_options,
                out,
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_file_extensions() {
        let cases = [
            ("profile.pb.gz", Some(Format::Pprof)),
            ("profile.pprof", Some(Format::Pprof)),
            ("profile.pb", Some(Format::Pprof)),
            ("out/flame.SVG", Some(Format::Flamegraph)),
            ("run.speedscope.json", Some(Format::Speedscope)),
            ("run.json", Some(Format::Speedscope)),
            ("run.gecko.json", Some(Format::Gecko)),
            ("stacks.txt", Some(Format::Collapsed)),
            ("stacks.folded", Some(Format::Collapsed)),
            ("stacks.collapsed", Some(Format::Collapsed)),
            ("run.trace.json", Some(Format::ChromeTrace)),
            ("run.chrometrace.json", Some(Format::ChromeTrace)),
            ("run.pstats", Some(Format::Pstats)),
            ("cprofile.prof", Some(Format::Pstats)),
            ("report.html", Some(Format::Html)),
            ("report.HTM", Some(Format::Html)),
            ("profile.gz", None),
            ("profile", None),
            ("json", None),
            ("", None),
        ];
        for (name, format) in cases {
            assert_eq!(Format::from_path(Path::new(name)), format, "{name}");
        }
    }

    #[test]
    fn default_extensions_map_back_to_their_format() {
        for format in Format::ALL {
            let name = format!("pydx.{}", format.extension());
            assert_eq!(Format::from_path(Path::new(&name)), Some(format));
        }
    }

    #[test]
    fn pprof_keeps_every_sample_whatever_the_options() {
        let profile = test_profiles::two_threads();
        let options = RenderOptions {
            gil_only: true,
            ..RenderOptions::default()
        };
        let mut out = Vec::new();
        render(Format::Pprof, &profile, &options, &mut out).unwrap();
        let read = pydx_profile::read_pprof(out.as_slice()).unwrap();
        assert_eq!(read.total_samples(), profile.total_samples());
    }
}
