//! PYDX-DB002: a query run once per item of a loop.

use pydx_libraries::{DbApi, DbCall};

use super::db_calls::calls_in_loops;
use super::request_sites::SiteText;
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::Finding;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-DB002",
    name: "queries-in-a-loop",
    summary: "A loop runs a database query per item where one query for all items would do",
    detects: "Among the samples of threads serving an HTTP request (or of every thread, in a program that \
              served none while recorded: a batch job, a script, a worker), pydx finds stacks inside a query \
              (SQLAlchemy's `Session.get` / `execute` / `scalars` / `scalar`, Django's `QuerySet.get` / \
              `count` / `exists` / `first` and queryset evaluation, psycopg's `execute`) called from a line \
              of the program inside a `for` or `while` loop, again and again, for a noticeable share of \
              request time. Lazy loads of relationships are PYDX-DB001's.",
    why: "Every query is a round trip to the database: in a loop the request's time grows with the number \
          of items, although one query with `IN (...)` returns them all.",
    example: "for item_id in item_ids:\n    item = session.get(Item, item_id)   # one SELECT per item",
    fix: "Fetch everything before the loop with one query and look rows up in a dict: SQLAlchemy \
          `session.scalars(select(Item).where(Item.id.in_(ids)))`, Django `Item.objects.in_bulk(ids)` \
          or `filter(id__in=ids)`, SQL `WHERE id = ANY(%s)` with the list as one parameter.",
    thresholds: "min_share = 0.10 of the request-serving samples at one line (of the thread's samples outside requests); min_queries = 3 separate \
                 stretches seen (the [orm] thresholds of pydx.toml).",
};

/// PYDX-DB002.
pub struct RepeatedQueries;

impl Rule for RepeatedQueries {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.orm;
        let reads = |call| match call {
            DbCall::Read(api) => Some(api),
            _ => None,
        };
        calls_in_loops(context, reads, config.min_share, config.min_queries)
            .into_iter()
            // Reads through a related manager are N+1s: PYDX-DB001's.
            .filter(|call| call.related_manager().is_none())
            .map(|call| {
                let evidence = call.evidence(context, "queries");
                let place = call.loop_place();
                let fix = match call.api {
                    DbApi::SqlAlchemy => format!(
                        "Query all the rows the loop at {place} needs at once, before it: \
                         `rows = {{r.id: r for r in session.scalars(select(Model).where(Model.id.in_(ids)))}}`, \
                         then look each one up in `rows` inside the loop."
                    ),
                    DbApi::Django => format!(
                        "Query all the rows the loop at {place} needs at once, before it: \
                         `rows = Model.objects.in_bulk(ids)` (or `.filter(id__in=ids)`), then look each \
                         one up inside the loop."
                    ),
                    DbApi::Driver => format!(
                        "Replace the query per iteration of the loop at {place} with one query for all \
                         the items (`WHERE id = ANY(%s)` with the list as one parameter, or `IN (...)`), \
                         and index the rows by key."
                    ),
                };
                let title = format!(
                    "Queries in a loop: one per item in {} ({:.0}% of {})",
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
