//! The rules, one per file, each with a stable code and its documentation.

mod async_views_under_wsgi;
mod blocked_loop;
mod connection_setup;
mod db_calls;
mod framework_overhead;
mod gil_contention;
mod hot_spot;
mod memory_growth;
mod middleware_overhead;
mod numeric_loop;
mod orm_n_plus_one;
mod per_row_writes;
mod repeated_computation;
mod repeated_queries;
mod request_sites;
mod sequential_awaits;
mod server_processes;
mod slow_query;
mod sync_workers_waiting;
mod worker_count;
mod worker_preload;

use crate::context::Context;
use crate::finding::Finding;

/// What a rule's documentation says, section by section (for `pydx rules`
/// and `pydx explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDocs {
    /// The stable code, e.g. `PYDX-GIL001`.
    pub code: &'static str,
    /// A short name, e.g. `gil-contention`.
    pub name: &'static str,
    /// One line: what the rule reports.
    pub summary: &'static str,
    /// What it detects, and how, from the samples.
    pub detects: &'static str,
    /// Why it matters.
    pub why: &'static str,
    /// A small example of code it reports.
    pub example: &'static str,
    /// How to fix it.
    pub fix: &'static str,
    /// Its thresholds, their defaults and where they come from.
    pub thresholds: &'static str,
}

/// A diagnosis rule.
pub trait Rule: Send + Sync {
    /// The rule's documentation, code and name.
    fn docs(&self) -> &'static RuleDocs;
    /// The findings in a profile.
    fn check(&self, context: &Context<'_>) -> Vec<Finding>;
}

/// Every rule, in code order.
pub fn all_rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(gil_contention::GilContention),
        Box::new(blocked_loop::BlockedEventLoop),
        Box::new(sequential_awaits::SequentialAwaits),
        Box::new(numeric_loop::NumericLoop),
        Box::new(hot_spot::HotSpot),
        Box::new(repeated_computation::RepeatedComputation),
        Box::new(connection_setup::ConnectionSetup),
        Box::new(orm_n_plus_one::OrmNPlusOne),
        Box::new(repeated_queries::RepeatedQueries),
        Box::new(per_row_writes::PerRowWrites),
        Box::new(slow_query::SlowQuery),
        Box::new(middleware_overhead::MiddlewareOverhead),
        Box::new(framework_overhead::FrameworkOverhead),
        Box::new(memory_growth::MemoryGrowth),
        Box::new(sync_workers_waiting::SyncWorkersWaiting),
        Box::new(worker_count::WorkerCount),
        Box::new(worker_preload::WorkerPreload),
        Box::new(async_views_under_wsgi::AsyncViewsUnderWsgi),
    ]
}

/// The documentation of the rule with this code (case-insensitive; the
/// `PYDX-` prefix may be left out).
pub fn rule_docs(code: &str) -> Option<&'static RuleDocs> {
    let wanted = code.to_ascii_uppercase();
    let wanted = wanted.strip_prefix("PYDX-").unwrap_or(&wanted).to_string();
    all_rules()
        .into_iter()
        .map(|r| r.docs())
        .find(|d| d.code.strip_prefix("PYDX-") == Some(wanted.as_str()) || d.name == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_stable_and_documented() {
        let docs: Vec<&RuleDocs> = all_rules().iter().map(|r| r.docs()).collect();
        let mut codes: Vec<&str> = docs.iter().map(|d| d.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), docs.len());
        for doc in docs {
            assert!(doc.code.starts_with("PYDX-"), "{}", doc.code);
            for (section, text) in [
                ("summary", doc.summary),
                ("detects", doc.detects),
                ("why", doc.why),
                ("example", doc.example),
                ("fix", doc.fix),
                ("thresholds", doc.thresholds),
            ] {
                assert!(!text.trim().is_empty(), "{} has no {section}", doc.code);
            }
        }
    }

    #[test]
    fn rules_are_found_by_code_with_or_without_prefix() {
        assert_eq!(rule_docs("PYDX-GIL001").unwrap().code, "PYDX-GIL001");
        assert_eq!(rule_docs("gil001").unwrap().code, "PYDX-GIL001");
        assert_eq!(rule_docs("gil-contention").unwrap().code, "PYDX-GIL001");
        assert!(rule_docs("PYDX-NOPE001").is_none());
    }
}
