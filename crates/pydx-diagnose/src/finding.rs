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

/// What a finding costs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Cost {
    /// Share (0–1) of the sampled time of the threads concerned.
    pub share: f64,
    /// Wall-clock seconds the problem took over the recording.
    pub seconds: f64,
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
    /// The cost of `seconds` spent on a CPU, `share` of the time concerned.
    pub fn on_cpu(share: f64, seconds: f64) -> Self {
        Self {
            share,
            seconds,
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
