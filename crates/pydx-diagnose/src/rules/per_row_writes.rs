//! PYDX-DB003: a write (save, flush, commit) per item of a loop.

use super::db_calls::{calls_in_loops, DbApi, DbCall};
use super::request_sites::SiteText;
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::Finding;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-DB003",
    name: "per-row-writes",
    summary: "A loop writes to the database one row at a time where a bulk write would do",
    detects: "Among the samples of threads serving an HTTP request, pydx finds stacks inside a write \
              (Django's `Model.save` / `delete`, `QuerySet.create` / `update`; SQLAlchemy's \
              `Session.flush` / `commit`) called from a line of the program inside a loop, again and \
              again, for a noticeable share of request time.",
    why: "Each write is a round trip, and each commit a transaction and a disk flush on the server: \
          writing N rows one by one costs N of each, where a bulk statement costs one.",
    example: "for item in items:\n    item.stock += 1\n    session.commit()   # one UPDATE and one transaction per item",
    fix: "Write in bulk: Django `bulk_create()`, `bulk_update()` or `QuerySet.update()`; SQLAlchemy one \
          `session.commit()` after the loop, or `session.execute(update(Model), [{...}, ...])` / \
          `insert(Model)` with a list; DB-API `executemany`.",
    thresholds: "min_share = 0.10 of the request-serving samples at one line; min_queries = 3 separate \
                 stretches seen (the [orm] thresholds of pydx.toml).",
};

/// PYDX-DB003.
pub struct PerRowWrites;

impl Rule for PerRowWrites {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.orm;
        let writes = |call| match call {
            DbCall::Write(api) => Some(api),
            _ => None,
        };
        calls_in_loops(context, writes, config.min_share, config.min_queries)
            .into_iter()
            .map(|call| {
                let evidence = call.evidence(context, "writes");
                let place = call.loop_place();
                let statement = call.location.source.clone().unwrap_or_default();
                let fix = match call.api {
                    DbApi::SqlAlchemy => format!(
                        "`{}` runs for every item of the loop at {place}. Make the changes in the loop \
                         and commit once after it; for many rows use a bulk statement: \
                         `session.execute(update(Model), [{{\"id\": ..., ...}}, ...])` or \
                         `session.execute(insert(Model), rows)`.",
                        statement.trim()
                    ),
                    DbApi::Django | DbApi::Driver => format!(
                        "`{}` writes one row per item of the loop at {place}. Collect the objects and \
                         write them at once: `Model.objects.bulk_create(objs)`, \
                         `Model.objects.bulk_update(objs, [fields])`, or one `QuerySet.update(...)`; \
                         with DB-API, `executemany`.",
                        statement.trim()
                    ),
                };
                let title = format!(
                    "Per-row writes: one per item in {} ({:.0}% of request time)",
                    call.location.function,
                    call.share * 100.0
                );
                call.site.finding(
                    context,
                    DOCS.code,
                    call.share,
                    SiteText {
                        title,
                        location: call.location.clone(),
                        evidence,
                        fix,
                    },
                )
            })
            .collect()
    }
}
