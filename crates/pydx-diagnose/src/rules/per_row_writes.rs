//! PYDX-DB003: a write (save, flush, commit) per item of a loop.

use pydx_libraries::{DbApi, DbCall};

use super::db_calls::calls_in_loops;
use super::request_sites::SiteText;
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::Finding;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-DB003",
    name: "per-row-writes",
    summary: "A loop writes to the database one row at a time where a bulk write would do",
    detects: "Among the samples of threads serving an HTTP request (or of every thread, in a program that \
              served none while recorded: a batch job, a script, a worker), pydx finds stacks inside a write \
              (Django's `Model.save` / `delete`, `QuerySet.create` / `update`; SQLAlchemy's \
              `Session.flush` / `commit`) called from a line of the program inside a loop, again and \
              again, for a noticeable share of request time.",
    why: "Each write is a round trip, and each commit a transaction and a disk flush on the server: \
          writing N rows one by one costs N of each, where a bulk statement costs one.",
    example: "for item in items:\n    item.stock += 1\n    session.commit()   # one UPDATE and one transaction per item",
    fix: "Write in bulk: Django `bulk_create()`, `bulk_update()` or `QuerySet.update()`; SQLAlchemy one \
          `session.commit()` after the loop, or `session.execute(update(Model), [{...}, ...])` / \
          `insert(Model)` with a list; DB-API `executemany`.",
    thresholds: "min_share = 0.10 of the request-serving samples at one line (of the thread's samples outside requests); min_queries = 3 separate \
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
                    "Per-row writes: one per item in {} ({:.0}% of {})",
                    call.location.function,
                    call.share * 100.0,
                    call.site.scope.time()
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

#[cfg(test)]
mod tests {
    use pydx_profile::{Activity, Meta, Profile};

    use super::*;
    use crate::config::Config;
    use crate::context::SourceMap;
    use crate::test_support::add_at;

    const JOB: &str = "import_rows(rows, session):\n    for row in rows:\n        session.add(Row(**row))\n        session.commit()\n";
    const SESSION: &str = "/venv/lib/python3.12/site-packages/sqlalchemy/orm/session.py";

    /// A batch job (no request served) that commits once per row: its
    /// thread alternates between the loop and `Session.commit`, 10 ms apart.
    fn batch_job() -> (Profile, SourceMap) {
        let mut profile = Profile::new(Meta::default());
        let job = profile.frame("import_rows", "/app/job.py", 4, 1);
        let add_line = profile.frame("import_rows", "/app/job.py", 3, 1);
        let commit = profile.frame("Session.commit", SESSION, 2000, 1990);
        let committing = profile.stack_from_root([job, commit]);
        let adding = profile.stack_from_root([add_line]);
        let thread = profile.thread(7, 7, 1, Some("MainThread"));
        for i in 0..300u64 {
            let stack = if i % 3 == 2 { adding } else { committing };
            add_at(&mut profile, i * 10_000_000, thread, stack, Activity::Idle);
        }
        let mut sources = SourceMap::default();
        sources.insert("/app/job.py", &format!("def {JOB}"));
        (profile, sources)
    }

    #[test]
    fn per_row_commits_in_a_batch_job_are_found_against_the_threads_time() {
        let (profile, sources) = batch_job();
        let config = Config::default();
        let findings = PerRowWrites.check(&Context::new(&profile, &config, &sources));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let finding = &findings[0];
        assert_eq!(
            (finding.location.file.as_str(), finding.location.line),
            ("/app/job.py", 4)
        );
        assert_eq!(finding.cost.share_of, crate::finding::ShareOf::ThreadTime);
        assert!(
            (finding.cost.share - 2.0 / 3.0).abs() < 0.01,
            "{}",
            finding.cost.share
        );
        assert!(
            finding.title.ends_with("(67% of its thread's time)"),
            "{}",
            finding.title
        );
    }
}
