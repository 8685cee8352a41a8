//! The diagnosis behind `pydx doctor`: rules that turn a profile into a
//! short, ranked list of findings, each naming the file and line, showing
//! the evidence and giving the fix.
//!
//! # Design constraints
//! - Rules read only the profile (samples, timeline, observations) and the
//!   program's source lines; the same profile gives the same findings,
//!   whether it was just recorded or read back from a file.
//! - Each rule lives in its own file under `rules/`, with a stable code and
//!   documentation in fixed sections, and thresholds in [`Config`].
//! - A false positive costs more trust than a miss: rules require clear
//!   evidence before they report.
//!
//! ```
//! use pydx_diagnose::{diagnose, Config, NoSources};
//! use pydx_profile::{Meta, Profile};
//! let report = diagnose(&Profile::new(Meta::default()), &Config::default(), &NoSources);
//! assert!(report.findings.is_empty());
//! ```

mod config;
mod context;
mod diff;
mod finding;
mod report;
mod rules;
mod source;
#[cfg(test)]
mod test_support;

pub use config::{
    CacheConfig, Config, ConfigError, ConnectionsConfig, EventLoopConfig, FrameworkConfig,
    GilConfig, HotSpotConfig, MemoryConfig, NumericLoopConfig, OrmConfig, SequentialAwaitsConfig,
    WorkersConfig,
};
pub use context::{Context, NoSources, SourceLines, SourceMap};
pub use diff::{
    diff, Basis, Diff, EndpointChange, FindingChanges, FindingSide, FunctionChange, Recording,
    RemainingFinding, Side,
};
pub use finding::{Cost, Finding, Location, Severity, ShareOf, TimeUnit};
pub use report::{
    diagnose, Endpoint, EndpointFunction, HotLine, HotSpot, Report, RequestsServed, Summary,
};
pub use rules::{all_rules, rule_docs, Rule, RuleDocs};
