//! PYDX-DB001: an ORM relationship lazily loaded inside a loop, one query
//! per item (the N+1 query problem).

use pydx_libraries::{database_call, DbApi, DbCall, Orm};

use super::db_calls::calls_in_loops;
use super::request_sites::{work_sites, Site, SiteText};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Finding, Location};
use crate::source::{code_only, enclosing_loop, LoopHeader};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-DB001",
    name: "orm-n-plus-one",
    summary: "A loop loads a related object or collection lazily, one database query per item (N+1 queries)",
    detects: "Among the samples of threads serving an HTTP request (or of every thread, in a program that \
              served none while recorded: a batch job, a script, a worker), pydx finds stacks inside an ORM's lazy \
              loader (SQLAlchemy's lazy relationship loader; Django's forward foreign-key and one-to-one \
              descriptors) called from a line of the program inside a `for` loop, and Django queries \
              made through a related manager of the loop variable (`order.lines.all()`: a reverse \
              foreign key or many-to-many). When those lazy loads \
              take a noticeable share of request time, again and again, the loop line, the attribute \
              accessed on the loop variable and the endpoints are reported.",
    why: "Each lazy load is a round trip to the database: a loop over N rows makes N more queries, so the \
          request's time grows with the data, while the database could return everything in one or two \
          queries.",
    example: "for order in session.scalars(select(Order)):\n    rows.append(order.customer.name)   # one SELECT per order",
    fix: "Load the relationship with the query that fetches the rows. SQLAlchemy: \
          `.options(joinedload(Order.customer))` for a many-to-one, `.options(selectinload(Order.items))` \
          for a collection. Django: `.select_related(\"customer\")` for a foreign key or one-to-one, \
          `.prefetch_related(\"items\")` for a reverse foreign key or many-to-many.",
    thresholds: "min_share = 0.10: the lazy loads from one line take at least 10% of the request-serving \
                 samples (of the thread's samples outside requests); min_queries = 3: pydx saw them at least three separate times (Sentry's N+1 \
                 detector also needs repeated, similar queries).",
};

/// PYDX-DB001.
pub struct OrmNPlusOne;

/// What loads related objects one query at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Loader {
    /// SQLAlchemy's lazy loader.
    SqlAlchemy,
    /// A Django forward foreign key or one-to-one descriptor.
    Django,
    /// A Django related manager (reverse foreign key, many-to-many).
    DjangoRelatedManager,
}

impl Loader {
    /// The ORM whose lazy loader `function` of `file` is, if it is one.
    fn lazy_loader(function: &str, file: &str) -> Option<Loader> {
        match database_call(function, file)? {
            DbCall::LazyLoad(Orm::SqlAlchemy) => Some(Loader::SqlAlchemy),
            DbCall::LazyLoad(Orm::Django) => Some(Loader::Django),
            DbCall::Read(_) | DbCall::Write(_) => None,
        }
    }
}

impl Rule for OrmNPlusOne {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let (measured, sites) = work_sites(context, Loader::lazy_loader);
        let config = &context.config.orm;
        let django_reads = |call| match call {
            DbCall::Read(DbApi::Django) => Some(DbApi::Django),
            _ => None,
        };
        let related_managers =
            calls_in_loops(context, django_reads, config.min_share, config.min_queries)
                .into_iter()
                .filter(|call| call.related_manager().is_some())
                .map(|call| {
                    finding(
                        context,
                        Loader::DjangoRelatedManager,
                        call.location,
                        &call.header,
                        &call.site,
                        call.share,
                    )
                });
        sites
            .into_iter()
            .filter_map(|((orm, frame), site)| {
                let share = site.samples as f64 / measured as f64;
                if share < config.min_share
                    || site.episodes < config.min_queries
                    || site.samples < Context::MIN_CPU_SAMPLES / 2
                {
                    return None;
                }
                let location = context.location(frame);
                let header = enclosing_loop(context, &location.file, location.line)?;
                Some(finding(context, orm, location, &header, &site, share))
            })
            .chain(related_managers)
            .collect()
    }
}

/// The attributes of `target` read in `statement` (`order.customer` gives
/// `customer`), without repeats: first those whose value is used further
/// (`order.customer.name`: a related object), then the others.
fn attributes_of(statement: &str, target: &str) -> Vec<String> {
    let code = code_only(statement);
    let mut chained = Vec::new();
    let mut attributes = Vec::new();
    for (index, _) in code.match_indices(&format!("{target}.")) {
        let before = code[..index].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let name: String = code[index + target.len() + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || attributes.contains(&name) || chained.contains(&name) {
            continue;
        }
        let after = code[index + target.len() + 1 + name.len()..].chars().next();
        if after == Some('.') {
            chained.push(name);
        } else {
            attributes.push(name);
        }
    }
    chained.extend(attributes);
    chained
}

fn finding(
    context: &Context<'_>,
    orm: Loader,
    location: Location,
    header: &LoopHeader,
    site: &Site,
    share: f64,
) -> Finding {
    let target = header
        .target_and_iterable
        .as_ref()
        .map(|(target, _)| target.clone());
    let statement = location.source.clone().unwrap_or_default();
    let attributes = target
        .as_deref()
        .map(|t| attributes_of(&statement, t))
        .unwrap_or_default();
    let accessed = match (&target, attributes.as_slice()) {
        (Some(target), [attribute, ..]) => format!("`{target}.{attribute}`"),
        _ => "a relationship".to_string(),
    };
    let attribute = attributes
        .first()
        .cloned()
        .unwrap_or_else(|| "relationship".into());
    let seconds = site.seconds(context);
    let loop_place = format!("{}:{}", location.file, header.line);
    let mut evidence = vec![
        format!(
            "{:.0}% of {} ({seconds:.2} s of thread time) went to lazy loads of {accessed} at {}:{} (`{}`)",
            share * 100.0,
            site.scope.time_spent(),
            location.file,
            location.line,
            statement.trim()
        ),
        format!(
            "the line runs inside the loop at {loop_place} (`{}`): one query per iteration",
            header.text
        ),
        format!(
            "pydx saw the lazy loads in {} {}",
            site.episodes,
            site.scope.repeats()
        ),
    ];
    evidence.extend(site.endpoints_evidence());
    let iterable = header.target_and_iterable.as_ref().map_or_else(
        || "the query".to_string(),
        |(_, iterable)| format!("`{iterable}`"),
    );
    let fix = match orm {
        Loader::SqlAlchemy => format!(
            "Load `{attribute}` together with the rows of the loop at {loop_place}: add \
             `.options(joinedload(<Model>.{attribute}))` to the select behind {iterable} (for a \
             many-to-one such as this), or `.options(selectinload(<Model>.{attribute}))` for a \
             collection (`from sqlalchemy.orm import joinedload, selectinload`). The loop then makes \
             no queries."
        ),
        Loader::DjangoRelatedManager => format!(
            "Fetch every item's `{attribute}` in one more query instead of one per item: add \
             `.prefetch_related(\"{attribute}\")` to the queryset behind {iterable} (for the loop at \
             {loop_place}), and keep using `.all()` in the loop (a `.filter()` on the related manager \
             bypasses the prefetch; use `Prefetch(\"{attribute}\", queryset=...)` for that). The loop \
             then makes no queries."
        ),
        Loader::Django => format!(
            "Load `{attribute}` together with the rows of the loop at {loop_place}: add \
             `.select_related(\"{attribute}\")` to the queryset behind {iterable} (a foreign key or \
             one-to-one; use `.prefetch_related(\"{attribute}\")` for a reverse foreign key or \
             many-to-many). The loop then makes no queries."
        ),
    };
    site.finding(
        context,
        DOCS.code,
        share,
        SiteText {
            title: format!(
                "N+1 queries: {accessed} is loaded lazily in a loop in {} ({:.0}% of {})",
                location.function,
                share * 100.0,
                site.scope.time()
            ),
            location,
            evidence,
            fix,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_loaders_are_recognised() {
        let site = "/venv/lib/python3.12/site-packages";
        assert_eq!(
            Loader::lazy_loader(
                "_LazyLoader._load_for_state",
                &format!("{site}/sqlalchemy/orm/strategies.py")
            ),
            Some(Loader::SqlAlchemy)
        );
        assert_eq!(
            Loader::lazy_loader(
                "ForwardManyToOneDescriptor.__get__",
                &format!("{site}/django/db/models/fields/related_descriptors.py")
            ),
            Some(Loader::Django)
        );
        assert_eq!(
            Loader::lazy_loader(
                "_JoinedLoader._load_for_state",
                &format!("{site}/sqlalchemy/orm/strategies.py")
            ),
            None
        );
    }

    #[test]
    fn attributes_of_the_loop_variable_are_found() {
        assert_eq!(
            attributes_of(
                r#"rows.append({"id": order.id, "customer": order.customer.name})"#,
                "order"
            ),
            ["customer", "id"]
        );
        assert_eq!(
            attributes_of("total += border.width + order.total", "order"),
            ["total"]
        );
        assert!(attributes_of("print('order.customer')", "order").is_empty());
    }
}
