//! The database calls the web rules recognise in stacks, shared so that
//! each stack is charged to one kind of call: its outermost recognised
//! frame (a lazy load that runs a query is a lazy load; a read that
//! autoflushes pending writes is a read).

use super::request_sites::{work_sites, Site};
use crate::context::Context;
use crate::finding::Location;
use crate::source::{code_only, enclosing_loop, LoopHeader};

/// The database API a call goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DbApi {
    /// SQLAlchemy's ORM session.
    SqlAlchemy,
    /// Django's ORM.
    Django,
    /// A driver's DB-API (PEP 249) cursor or connection.
    Driver,
}

/// A database call, as its outermost library frame shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum DbCall {
    /// An ORM lazy load of a relationship (PYDX-DB001's).
    LazyLoad,
    /// A query that reads.
    Read(DbApi),
    /// A write: saving a model, flushing or committing a session.
    Write(DbApi),
}

impl DbCall {
    /// The call `function` of `file` makes, if it is a database call.
    pub(crate) fn of(function: &str, file: &str) -> Option<DbCall> {
        let is = |suffix: &str, functions: &[&str]| {
            file.ends_with(suffix) && functions.contains(&function)
        };
        if file.ends_with("sqlalchemy/orm/strategies.py") && function.starts_with("_LazyLoader.")
            || is(
                "django/db/models/fields/related_descriptors.py",
                &[
                    "ForwardManyToOneDescriptor.__get__",
                    "ReverseOneToOneDescriptor.__get__",
                ],
            )
        {
            Some(DbCall::LazyLoad)
        } else if is(
            "sqlalchemy/orm/session.py",
            &[
                "Session.get",
                "Session.execute",
                "Session.scalars",
                "Session.scalar",
            ],
        ) {
            Some(DbCall::Read(DbApi::SqlAlchemy))
        } else if is(
            "sqlalchemy/orm/session.py",
            &["Session.flush", "Session.commit"],
        ) {
            Some(DbCall::Write(DbApi::SqlAlchemy))
        } else if is(
            "django/db/models/query.py",
            &[
                "QuerySet.get",
                "QuerySet.count",
                "QuerySet.exists",
                "QuerySet.first",
                "QuerySet.__iter__",
                "QuerySet.__len__",
                "QuerySet.__bool__",
            ],
        ) {
            Some(DbCall::Read(DbApi::Django))
        } else if is(
            "django/db/models/query.py",
            &["QuerySet.create", "QuerySet.update"],
        ) || is("django/db/models/base.py", &["Model.save", "Model.delete"])
        {
            Some(DbCall::Write(DbApi::Django))
        } else if is("psycopg/cursor.py", &["Cursor.execute"])
            || is("psycopg/connection.py", &["Connection.execute"])
        {
            Some(DbCall::Read(DbApi::Driver))
        } else {
            None
        }
    }
}

/// Whether `function` of `file` is a driver-level call that sends one
/// statement (or one batch) to the server and waits for its result: a stack
/// inside one is waiting for a query, not for a pooled connection or for
/// the ORM's own work.
pub(crate) fn is_statement_execution(function: &str, file: &str) -> bool {
    let name = function.rsplit('.').next().unwrap_or(function);
    let is = |suffix: &str, names: &[&str]| file.ends_with(suffix) && names.contains(&name);
    is("psycopg/cursor.py", &["execute", "executemany"])
        || is("psycopg/connection.py", &["execute"])
        || is("django/db/backends/utils.py", &["_execute", "_executemany"])
        || is(
            "sqlalchemy/engine/default.py",
            &["do_execute", "do_execute_no_params", "do_executemany"],
        )
        || is("pymysql/cursors.py", &["execute", "executemany"])
        || is("MySQLdb/cursors.py", &["execute", "executemany"])
}

/// A database call of one API made again and again from a line inside a
/// loop while serving requests (or anywhere, in a program that serves none).
pub(crate) struct LoopCall {
    /// The API.
    pub api: DbApi,
    /// The line's location, with its source.
    pub location: Location,
    /// The loop around it.
    pub header: LoopHeader,
    /// Its share of the request-serving samples.
    pub share: f64,
    /// What pydx saw of it.
    pub site: Site,
}

/// The calls `wanted` picks (reads or writes) made from lines inside loops,
/// taking at least `min_share` of request time (or of their thread's time,
/// in a program that serves no requests), seen at least
/// `min_calls` separate times.
pub(crate) fn calls_in_loops(
    context: &Context<'_>,
    wanted: impl Fn(DbCall) -> Option<DbApi>,
    min_share: f64,
    min_calls: u64,
) -> Vec<LoopCall> {
    let (measured, sites) = work_sites(context, DbCall::of);
    sites
        .into_iter()
        .filter_map(|((call, frame), site)| {
            let api = wanted(call)?;
            let share = site.samples as f64 / measured as f64;
            if share < min_share
                || site.episodes < min_calls
                || site.samples < Context::MIN_CPU_SAMPLES / 2
            {
                return None;
            }
            let location = context.location(frame);
            let header = enclosing_loop(context, &location.file, location.line)?;
            Some(LoopCall {
                api,
                location,
                header,
                share,
                site,
            })
        })
        .collect()
}

/// QuerySet methods a Django related manager passes on: calling one on
/// `item.lines` runs a query for that item's related rows.
const RELATED_MANAGER_METHODS: [&str; 11] = [
    "all",
    "filter",
    "exclude",
    "count",
    "exists",
    "first",
    "last",
    "order_by",
    "values",
    "values_list",
    "get",
];

impl LoopCall {
    /// The related collection a Django read goes through, when the line
    /// calls a queryset method on an attribute of the loop's target
    /// (`order.lines.all()` in `for order in ...`): a reverse foreign key or
    /// many-to-many read per item, an N+1 for PYDX-DB001.
    pub(crate) fn related_manager(&self) -> Option<String> {
        if self.api != DbApi::Django {
            return None;
        }
        let (target, _) = self.header.target_and_iterable.as_ref()?;
        let code = code_only(self.location.source.as_deref()?);
        code.match_indices(&format!("{target}."))
            .find_map(|(index, _)| {
                let before = code[..index].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    return None;
                }
                let rest = &code[index + target.len() + 1..];
                let (attribute, call) = rest.split_once('.')?;
                let is_name =
                    |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
                let method = call.split_once('(')?.0;
                (is_name(attribute) && RELATED_MANAGER_METHODS.contains(&method))
                    .then(|| attribute.to_string())
            })
    }

    /// The evidence every loop finding gives.
    pub(crate) fn evidence(&self, context: &Context<'_>, what: &str) -> Vec<String> {
        let statement = self.location.source.clone().unwrap_or_default();
        let scope = self.site.scope;
        let mut evidence = vec![
            format!(
                "{:.0}% of {} ({:.2} s of thread time) went to {what} at {}:{} (`{}`)",
                self.share * 100.0,
                scope.time_spent(),
                self.site.seconds(context),
                self.location.file,
                self.location.line,
                statement.trim()
            ),
            format!(
                "the line runs inside the loop at {}:{} (`{}`): one round trip per iteration",
                self.location.file, self.header.line, self.header.text
            ),
            format!(
                "pydx saw them in {} {}",
                self.site.episodes,
                scope.repeats()
            ),
        ];
        evidence.extend(self.site.endpoints_evidence());
        evidence
    }

    /// The loop's place, `file:line`.
    pub(crate) fn loop_place(&self) -> String {
        format!("{}:{}", self.location.file, self.header.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn django_read(statement: &str) -> LoopCall {
        LoopCall {
            api: DbApi::Django,
            location: Location {
                function: "view".into(),
                file: "/app/views.py".into(),
                line: 12,
                source: Some(statement.into()),
            },
            header: LoopHeader {
                line: 11,
                text: "for order in orders:".into(),
                target_and_iterable: Some(("order".into(), "orders".into())),
            },
            share: 0.5,
            site: Site::default(),
        }
    }

    #[test]
    fn related_manager_reads_of_the_loop_target_are_told_apart() {
        let related = |s: &str| django_read(s).related_manager();
        assert_eq!(
            related("skus = [line.sku for line in order.lines.all()]").as_deref(),
            Some("lines")
        );
        assert_eq!(related("n = order.tags.count()").as_deref(), Some("tags"));
        assert_eq!(related("name = order.customer.name"), None);
        assert_eq!(related("item = Item.objects.get(id=order.item_id)"), None);
        assert_eq!(related("x = other_order.lines.all()"), None);
    }

    #[test]
    fn database_calls_are_recognised() {
        let site = "/venv/lib/python3.12/site-packages";
        let of = |function: &str, file: &str| DbCall::of(function, &format!("{site}/{file}"));
        assert_eq!(
            of("Session.get", "sqlalchemy/orm/session.py"),
            Some(DbCall::Read(DbApi::SqlAlchemy))
        );
        assert_eq!(
            of("Session.commit", "sqlalchemy/orm/session.py"),
            Some(DbCall::Write(DbApi::SqlAlchemy))
        );
        assert_eq!(
            of("Model.save", "django/db/models/base.py"),
            Some(DbCall::Write(DbApi::Django))
        );
        assert_eq!(
            of("QuerySet.get", "django/db/models/query.py"),
            Some(DbCall::Read(DbApi::Django))
        );
        assert_eq!(
            of(
                "_LazyLoader._load_for_state",
                "sqlalchemy/orm/strategies.py"
            ),
            Some(DbCall::LazyLoad)
        );
        assert_eq!(
            of("Cursor.execute", "psycopg/cursor.py"),
            Some(DbCall::Read(DbApi::Driver))
        );
        assert_eq!(of("Session.add", "sqlalchemy/orm/session.py"), None);
    }

    #[test]
    fn statement_executions_are_recognised() {
        let site = "/venv/lib/python3.12/site-packages";
        let executes = |function: &str, file: &str| {
            is_statement_execution(function, &format!("{site}/{file}"))
        };
        assert!(executes("Cursor.execute", "psycopg/cursor.py"));
        assert!(executes(
            "DefaultDialect.do_execute",
            "sqlalchemy/engine/default.py"
        ));
        assert!(executes(
            "CursorWrapper._execute",
            "django/db/backends/utils.py"
        ));
        // Waiting for a pooled connection is not waiting for a query.
        assert!(!executes("QueuePool._do_get", "sqlalchemy/pool/impl.py"));
        assert!(!executes("Session.execute", "sqlalchemy/orm/session.py"));
        assert!(!is_statement_execution(
            "Cursor.execute",
            "/srv/app/cursor.py"
        ));
    }
}
