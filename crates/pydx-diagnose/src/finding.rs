//! What a rule reports.

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; small effect.
    Info,
    /// A real cost worth fixing.
    Warning,
    /// A large share of the time goes here.
    Error,
}

impl Severity {
    /// The severity for a finding that costs `share` (0–1) of the time it
    /// is measured against: error from 20 %, warning from 5 %.
    pub fn for_share(share: f64) -> Self {
        if share >= 0.20 {
            Severity::Error
        } else if share >= 0.05 {
            Severity::Warning
        } else {
            Severity::Info
        }
    }

    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a cost's share is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareOf {
    /// The on-CPU time of the recording (all threads' CPU samples).
    #[default]
    CpuTime,
    /// The busy time (running or waiting for the GIL) of the threads the
    /// finding names.
    ThreadsBusyTime,
    /// The time of the event loops concerned.
    EventLoopTime,
    /// The time threads spent serving requests.
    RequestTime,
    /// The whole time of the threads that ran the code concerned (in a
    /// program that serves no requests: a batch job, a script, a worker).
    ThreadTime,
    /// The on-CPU time spent serving the endpoint concerned.
    EndpointCpuTime,
    /// The time of the server's workers.
    WorkerTime,
}

impl ShareOf {
    /// How the share reads in a report: `42% of {this}`.
    pub fn phrase(self) -> &'static str {
        match self {
            ShareOf::CpuTime => "the CPU time",
            ShareOf::ThreadsBusyTime => "these threads' busy time",
            ShareOf::EventLoopTime => "the event loop's time",
            ShareOf::RequestTime => "the time serving requests",
            ShareOf::ThreadTime => "the time of the threads running it",
            ShareOf::EndpointCpuTime => "the endpoint's CPU time",
            ShareOf::WorkerTime => "the workers' time",
        }
    }
}

/// What a cost's seconds count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Wall-clock seconds on one thread's timeline.
    #[default]
    Seconds,
    /// Seconds summed over several threads (can exceed the recording).
    ThreadSeconds,
    /// CPU time, summed over the threads that ran.
    CpuSeconds,
}

/// What a finding costs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Cost {
    /// Share (0–1) of the time named by `share_of`.
    pub share: f64,
    /// What `share` is a share of.
    pub share_of: ShareOf,
    /// The time the problem took over the recording, in `unit`.
    pub seconds: f64,
    /// What `seconds` count.
    pub unit: TimeUnit,
    /// Of those, seconds on a CPU.
    pub cpu_seconds: f64,
    /// For episodes (a blocked event loop, slow queries): the longest one, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_ms: Option<f64>,
    /// For episodes: how many there were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<u64>,
}

impl Cost {
    /// The cost of `seconds` of CPU time, `share` of `share_of`.
    pub fn on_cpu(share: f64, share_of: ShareOf, seconds: f64) -> Self {
        Self {
            share,
            share_of,
            seconds,
            unit: TimeUnit::CpuSeconds,
            cpu_seconds: seconds,
            ..Self::default()
        }
    }
}

/// Where in the code a finding points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The function (qualified name).
    pub function: String,
    /// The source file, as the program names it.
    pub file: String,
    /// The line.
    pub line: u32,
    /// The text of that line, if the file could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One problem: what, where, how much, why we think so, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The rule's stable code, e.g. `PYDX-GIL001`.
    pub code: &'static str,
    /// A one-line summary.
    pub title: String,
    /// How much it matters.
    pub severity: Severity,
    /// What it costs.
    pub cost: Cost,
    /// The call site to change.
    pub location: Location,
    /// A representative stack, innermost frame first, as `function (file:line)`.
    pub stack: Vec<String>,
    /// The facts from the samples that support the finding.
    pub evidence: Vec<String>,
    /// The fix, written for this code.
    pub fix: String,
}
