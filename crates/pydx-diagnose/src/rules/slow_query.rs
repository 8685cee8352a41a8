//! PYDX-DB004: one database call that keeps requests waiting, call after
//! call (a slow query).

use std::collections::{BTreeMap, HashMap};

use pydx_profile::{Activity, FrameId, Observed, Run, RunStack, StackId, ThreadId};

use super::request_sites::{operation, Site, SiteText};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Finding, Location};
use crate::source::enclosing_loop;
use pydx_libraries::{database_call, DbCall, Role};

/// Two runs of a thread this many sampling intervals apart or closer are
/// one stretch (the timeline's own gap tolerance).
const CONTIGUOUS_INTERVALS: u64 = 3;
/// Of the successive observations of a line's calls made while the
/// thread's stack did not change, the largest share that may have found a
/// different call (another statement, other parameter values) for the
/// line's long stretches to be taken for single calls rather than quick
/// calls following one another.
const MAX_NEW_CALL_SHARE: f64 = 0.25;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-DB004",
    name: "slow-query",
    summary: "Requests wait a long time on one database query, call after call",
    detects: "On the timeline of each thread serving an HTTP request, pydx finds the stretches during which \
              its stack stayed exactly the same inside a driver's execution of a statement, reached from \
              a database call (SQLAlchemy's session, Django's querysets and model writes, psycopg's \
              `execute`): one call waiting for the server, not a loop of quick ones, whose stacks change \
              between calls. Now and then pydx also reads the statement and its parameter values from \
              the driver's frame (psycopg's `Cursor.execute`, Django's `CursorWrapper.execute`, \
              SQLAlchemy's `do_execute`); when successive readings of an unchanged stack find other \
              values, the stretch is quick calls following one another, and is left alone. A line whose \
              calls stay that long, again and again, for a noticeable share of request time, is reported \
              with the longest and total wait, the endpoints, and the SQL (parameter values are not \
              kept). Lines inside a loop are left to PYDX-DB001/DB002/DB003, which report the loop.",
    why: "The request cannot answer before the query does: its latency is at least the query's time, and \
          while the database reads a whole table for each request, every other query waits for the same \
          disks and CPUs. Such queries usually scan a table for lack of an index, or return far more rows \
          than the page shows.",
    example: "user = session.scalars(\n    select(User).where(func.lower(User.email) == email.lower())\n).one()   # no index on lower(email): reads the whole table",
    fix: "Run `EXPLAIN (ANALYZE, BUFFERS)` on the statement. A `Seq Scan` with a `Filter` on a large table \
          wants an index on the filtered, joined or sorted columns (on the expression itself, such as \
          `lower(email)`, when the query filters on one); a query that returns many rows wants \
          pagination (`LIMIT` with keyset pagination) and only the columns it uses. A slow write is \
          usually waiting for a lock: keep transactions short.",
    thresholds: "slow_query_ms = 100: a call is slow when the thread stays in it 100 ms or more, measured \
                 between the first and last samples in it (Laravel Telescope's query watcher marks queries \
                 slow from 100 ms; Django Debug Toolbar's SQL_WARNING_THRESHOLD and Sentry's slow DB query \
                 detector use 500 ms for single spans, where pydx also requires repetition and a share of \
                 request time); min_queries = 3 slow calls seen at the line; min_share = 0.10 of the \
                 request-serving samples spent in them (the [orm] thresholds of pydx.toml). Fixed: at \
                 most a quarter of the successive readings of an unchanged stack may find another call.",
};

/// PYDX-DB004.
pub struct SlowQuery;

/// The slow calls made from one line of the program.
#[derive(Default)]
struct SlowCalls {
    /// Each call's length, in nanoseconds.
    lengths: Vec<u64>,
    /// What the site looks like to the shared finding code: the samples
    /// and the number of the slow calls, their endpoints, a stack.
    site: Site,
    /// Of the calls' time, how much the thread was on a CPU.
    cpu_ns: u64,
    /// The kind of database call.
    call: Option<DbCall>,
}

/// A stretch of one thread's timeline with one stack.
struct Stretch<'a> {
    stack: Option<StackId>,
    runs: Vec<&'a Run>,
}

impl Rule for SlowQuery {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let config = &context.config.orm;
        let slow_ns = (config.slow_query_ms * 1e6) as u64;
        let (request_samples, sites) = slow_calls(context, slow_ns);
        sites
            .into_iter()
            .filter_map(|(frame, calls)| {
                let share = calls.site.samples as f64 / request_samples.max(1) as f64;
                if share < config.min_share || (calls.lengths.len() as u64) < config.min_queries {
                    return None;
                }
                let location = context.location(frame);
                if enclosing_loop(context, &location.file, location.line).is_some() {
                    return None;
                }
                let readings = Readings::of(context, frame);
                let compared = readings.same + readings.new;
                if compared > 0 && readings.new as f64 / compared as f64 > MAX_NEW_CALL_SHARE {
                    return None;
                }
                Some(finding(context, location, &calls, &readings, share))
            })
            .collect()
    }
}

/// The request-serving samples, and the slow database calls (a stack
/// inside one, unchanged for at least `slow_ns`) by the program's line
/// that made them.
fn slow_calls(context: &Context<'_>, slow_ns: u64) -> (u64, BTreeMap<FrameId, SlowCalls>) {
    let profile = context.profile;
    let interval = profile.meta.interval_ns();
    let mut request_samples = 0;
    let mut sites: BTreeMap<FrameId, SlowCalls> = BTreeMap::new();
    let mut kinds = HashMap::new();
    let mut open: HashMap<ThreadId, Stretch<'_>> = HashMap::new();
    for run in profile.runs() {
        let serving = profile.endpoint(run.labels).is_some();
        if serving {
            request_samples += run.samples;
        }
        let stack = match (run.stack, serving) {
            (RunStack::Stack(stack @ Some(_)), true) => Some(stack),
            _ => None,
        };
        if let Some(stretch) = open.get_mut(&run.thread) {
            let contiguous = stretch
                .runs
                .last()
                .is_some_and(|last| run.start_ns <= last.end_ns + interval * CONTIGUOUS_INTERVALS);
            if contiguous && Some(stretch.stack) == stack {
                stretch.runs.push(run);
                continue;
            }
        }
        if let Some(stretch) = open.remove(&run.thread) {
            record(context, slow_ns, &stretch, &mut kinds, &mut sites);
        }
        if let Some(stack) = stack {
            let runs = vec![run];
            open.insert(run.thread, Stretch { stack, runs });
        }
    }
    let mut rest: Vec<(ThreadId, Stretch<'_>)> = open.into_iter().collect();
    rest.sort_by_key(|(thread, _)| *thread);
    for (_, stretch) in rest {
        record(context, slow_ns, &stretch, &mut kinds, &mut sites);
    }
    (request_samples, sites)
}

/// Charges a stretch with one stack to the program's line that made the
/// database call it is in, if it is in one and lasted at least `slow_ns`.
fn record(
    context: &Context<'_>,
    slow_ns: u64,
    stretch: &Stretch<'_>,
    kinds: &mut HashMap<FrameId, Option<DbCall>>,
    sites: &mut BTreeMap<FrameId, SlowCalls>,
) {
    let (Some(first), Some(last)) = (stretch.runs.first(), stretch.runs.last()) else {
        return;
    };
    // From the first sample to the last: the least the call lasted.
    let interval = context.profile.meta.interval_ns();
    if last.end_ns.saturating_sub(first.start_ns + interval) < slow_ns {
        return;
    }
    let executing = context
        .profile
        .frames_innermost_first(stretch.stack)
        .into_iter()
        .any(|f| context.plays(f, Role::StatementExecution));
    if !executing {
        return;
    }
    let Some((call, frame)) = operation(context, stretch.stack, &database_call, kinds) else {
        return;
    };
    let calls = sites.entry(frame).or_default();
    calls.call = calls.call.or(Some(call));
    calls.lengths.push(last.end_ns - first.start_ns);
    calls.site.episodes += 1;
    calls.site.stack = calls.site.stack.or(stretch.stack);
    for run in &stretch.runs {
        calls.site.samples += run.samples;
        if run.state.activity == Activity::OnCpu {
            calls.cpu_ns += run.duration_ns();
        }
        if let Some(endpoint) = context.profile.endpoint(run.labels) {
            let endpoint = context.profile.str(endpoint).to_string();
            calls.site.endpoints.insert(endpoint);
        }
    }
}

/// What pydx read from the driver's frames of the calls made from a line.
struct Readings {
    /// The SQL statements with their whitespace collapsed, most often seen
    /// first, leaving out those seen less than a tenth as often as the
    /// first (one-time set-up queries of a new connection, say).
    statements: Vec<String>,
    /// Successive readings of an unchanged stack that found the same call.
    same: u64,
    /// Successive readings of an unchanged stack that found another call.
    new: u64,
}

impl Readings {
    /// The readings of the calls made from `frame`.
    fn of(context: &Context<'_>, frame: FrameId) -> Self {
        let mut statements: Vec<(u64, String)> = Vec::new();
        let (mut same, mut new) = (0, 0);
        for (_, kind, text, count) in context
            .profile
            .observations()
            .into_iter()
            .filter(|(f, _, _, _)| *f == frame)
        {
            match kind {
                Observed::SqlStatement => statements.push((count, collapse_whitespace(text))),
                Observed::SqlSameCall => same += count,
                Observed::SqlNewCall => new += count,
                _ => {}
            }
        }
        statements.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let most = statements.first().map_or(0, |(count, _)| *count);
        Self {
            statements: statements
                .into_iter()
                .filter(|(count, _)| count * 10 >= most)
                .map(|(_, text)| text)
                .collect(),
            same,
            new,
        }
    }
}

/// `text` on one line: each run of whitespace made one space.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The finding for the slow calls made from the line at `location`, which
/// take `share` of the request-serving samples.
fn finding(
    context: &Context<'_>,
    location: Location,
    calls: &SlowCalls,
    readings: &Readings,
    share: f64,
) -> Finding {
    let ms = |ns: u64| ns as f64 / 1e6;
    let longest = calls.lengths.iter().copied().max().unwrap_or(0);
    let total: u64 = calls.lengths.iter().sum();
    let place = format!("{}:{}", location.file, location.line);
    let source = location.source.clone().unwrap_or_default();
    let call = if source.is_empty() {
        format!("the call at {place}")
    } else {
        format!("`{source}`")
    };
    let statements = &readings.statements;
    let mut evidence = vec![
        format!(
            "{} calls from {place} ({call}) each kept a request waiting {} ms or more in one database call: \
             longest {:.0} ms, {:.2} s in total",
            calls.lengths.len(),
            context.config.orm.slow_query_ms,
            ms(longest),
            total as f64 / 1e9
        ),
        format!(
            "{:.0}% of the time spent serving requests went to these slow calls",
            share * 100.0
        ),
    ];
    let on_cpu = (calls.cpu_ns as f64 / total.max(1) as f64).min(1.0);
    evidence.push(if on_cpu <= 0.5 {
        format!(
            "during them the thread was off the CPU {:.0}% of the time: waiting for the database server",
            (1.0 - on_cpu) * 100.0
        )
    } else {
        format!(
            "during them the thread was on a CPU {:.0}% of the time: the driver was busy receiving \
             the results",
            on_cpu * 100.0
        )
    });
    match statements.as_slice() {
        [] => {}
        [statement] => evidence.push(format!("the statement (read from the driver): `{statement}`")),
        [statement, others @ ..] => evidence.push(format!(
            "the statement (read from the driver): `{statement}` (and {} other statement{} from this line)",
            others.len(),
            if others.len() == 1 { "" } else { "s" }
        )),
    }
    if readings.same > 0 {
        evidence.push(format!(
            "pydx found the same statement with the same parameter values still running in {} \
             successive readings of unchanged stacks ({} found another call): single calls, not \
             quick ones following one another",
            readings.same, readings.new
        ));
    }
    evidence.extend(calls.site.endpoints_evidence());
    let is_write = matches!(calls.call, Some(DbCall::Write(_)));
    let fix = fix_text(
        &call,
        &place,
        statements.first().map(String::as_str),
        is_write,
    );
    let title = format!(
        "Slow query: requests wait up to {:.0} ms on one database call in {} ({:.0}% of request time)",
        ms(longest),
        location.function,
        share * 100.0
    );
    let mut finding = calls.site.finding(
        context,
        DOCS.code,
        share,
        SiteText {
            title,
            location,
            evidence,
            fix,
        },
    );
    finding.cost.longest_ms = Some(ms(longest));
    finding
}

/// The fix for the slow call `call` at `place`, running `statement` if
/// pydx read it.
fn fix_text(call: &str, place: &str, statement: Option<&str>, is_write: bool) -> String {
    let explain = match statement {
        Some(statement) => format!("`EXPLAIN (ANALYZE, BUFFERS) {statement}`"),
        None => "`EXPLAIN (ANALYZE, BUFFERS)` on its statement".to_string(),
    };
    if is_write {
        return format!(
            "{call} at {place} waits for the database. A write that waits this long is usually waiting \
             for a lock: look at `pg_stat_activity.wait_event` and `pg_locks` while it runs, keep the \
             transactions that touch these rows short, and write by indexed keys; run {explain} inside \
             a transaction you roll back to see how it finds its rows."
        );
    }
    let index = match statement.and_then(index_hint) {
        Some(create) => format!(
            "A `Seq Scan` with a `Filter` reads the whole table for each request: index what the WHERE \
             clause filters on, `{create}` (with SQLAlchemy an `Index(...)` in the model's \
             `__table_args__`, with Django `Meta.indexes`), and check that the new plan uses it."
        ),
        None => "A `Seq Scan` with a `Filter` reads the whole table for each request: index the columns \
                 (or the expression) it filters, joins or sorts on, and check that the new plan uses it."
            .to_string(),
    };
    format!(
        "{call} at {place} waits for the database. Run {explain} to see where the time goes. {index} \
         If it returns many rows, paginate (`LIMIT` with keyset pagination on an indexed column) and \
         select only the columns the endpoint uses."
    )
}

/// `CREATE INDEX ON table (expressions);` for a simple `SELECT ... FROM
/// table WHERE a = ... AND b > ...` statement: one table, conditions joined
/// by `AND` that compare a column or an expression of the table's columns
/// with a value. `None` for anything else (joins, `OR`, `LIKE`, ...), which
/// wants a person reading the plan.
fn index_hint(statement: &str) -> Option<String> {
    let upper = statement.to_ascii_uppercase();
    if !upper.starts_with("SELECT ") {
        return None;
    }
    let from = upper.find(" FROM ")? + " FROM ".len();
    let where_at = upper[from..].find(" WHERE ")? + from;
    let table_clause = statement[from..where_at].trim();
    let mut table_words = table_clause.split_whitespace();
    let table = table_words.next()?;
    // An alias at most: a join or a list of tables is not simple.
    if table_words.count() > 2 || table_clause.contains(',') || !is_name(table) {
        return None;
    }
    let conditions_at = where_at + " WHERE ".len();
    let end = [" GROUP BY ", " ORDER BY ", " LIMIT ", " OFFSET ", " FOR "]
        .iter()
        .filter_map(|keyword| upper[conditions_at..].find(keyword))
        .min()
        .map_or(statement.len(), |at| at + conditions_at);
    let conditions = &statement[conditions_at..end];
    let upper_conditions = conditions.to_ascii_uppercase();
    if upper_conditions.contains(" OR ") || upper_conditions.contains("LIKE ") {
        return None;
    }
    let mut expressions = Vec::new();
    let mut rest = conditions;
    loop {
        let upper_rest = rest.to_ascii_uppercase();
        let (condition, next) = match upper_rest.find(" AND ") {
            Some(at) => (&rest[..at], Some(&rest[at + " AND ".len()..])),
            None => (rest, None),
        };
        let expression = compared_expression(condition, table)?;
        if !expressions.contains(&expression) {
            expressions.push(expression);
        }
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    let table = table.trim_matches('"');
    Some(format!(
        "CREATE INDEX ON {table} ({});",
        expressions.join(", ")
    ))
}

/// The left side of `condition` (`expression OP value`) without the
/// table's name before its columns, in parentheses unless it is a column or
/// a function call; `None` if the left side holds a parameter or the
/// operator is not a plain comparison.
fn compared_expression(condition: &str, table: &str) -> Option<String> {
    let condition = condition
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    let upper = condition.to_ascii_uppercase();
    let at = [" = ", " < ", " > ", " <= ", " >= ", " IN ", " BETWEEN "]
        .iter()
        .filter_map(|op| upper.find(op))
        .min()?;
    let left = condition[..at].trim();
    // `:name` is a parameter; `::type` a cast, part of the expression.
    let parameter =
        left.contains('%') || left.contains('$') || left.replace("::", "").contains(':');
    if left.is_empty() || parameter {
        return None;
    }
    let unquoted = table.trim_matches('"');
    let expression = left
        .replace(&format!("\"{unquoted}\"."), "")
        .replace(&format!("{unquoted}."), "");
    let is_call = expression
        .split_once('(')
        .is_some_and(|(name, args)| is_name(name) && args.ends_with(')') && !args.contains('('));
    Some(if is_name(&expression) || is_call {
        expression
    } else {
        format!("({expression})")
    })
}

/// Whether `text` is an SQL name, plain or quoted.
fn is_name(text: &str) -> bool {
    let plain = text.trim_matches('"');
    !plain.is_empty() && plain.chars().all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use pydx_profile::{Meta, Profile, SampleKey, SampleState, Work};

    use super::*;
    use crate::config::Config;
    use crate::context::SourceMap;

    const MS: u64 = 1_000_000;
    const SITE: &str = "/venv/lib/python3.12/site-packages";

    /// A profile of one request thread serving `GET /users`, at 100 Hz:
    /// for each `(milliseconds, stacks)` of `calls`, that long inside
    /// `session.scalars` from `app.py:line` (the stack changing at every
    /// sample among `stacks` variants, as in a loop of quick queries), then
    /// 20 ms in the handler's own code. Inside `session.scalars`, the thread
    /// is `executing` a statement, or else waiting for a pooled connection.
    fn profile_of(line: u32, calls: &[(u64, u32)], executing: bool) -> Profile {
        let mut profile = Profile::new(Meta::default());
        let thread = profile.thread(1, 1, 1, Some("MainThread"));
        let labels = profile.work_labels(&Work {
            endpoint: Some("GET /users"),
            ..Work::default()
        });
        let handler = profile.frame("find_user", "app.py", line, 30);
        let own = profile.frame("find_user", "app.py", 40, 30);
        let scalars = profile.frame(
            "Session.scalars",
            &format!("{SITE}/sqlalchemy/orm/session.py"),
            2676,
            2650,
        );
        let inside = if executing {
            profile.frame(
                "DefaultDialect.do_execute",
                &format!("{SITE}/sqlalchemy/engine/default.py"),
                1192,
                1191,
            )
        } else {
            profile.frame(
                "QueuePool._do_get",
                &format!("{SITE}/sqlalchemy/pool/impl.py"),
                170,
                160,
            )
        };
        let waits: Vec<FrameId> = (0..4)
            .map(|n| {
                profile.frame(
                    "Connection.wait",
                    &format!("{SITE}/psycopg/connection.py"),
                    495 + n,
                    480,
                )
            })
            .collect();
        profile.observe(
            handler,
            Observed::SqlStatement,
            "SELECT users.id\nFROM users\nWHERE lower(users.email) = %(lower_1)s::VARCHAR",
            12,
        );
        let idle = SampleState {
            activity: Activity::Idle,
            holds_gil: false,
        };
        let mut time = 0;
        for &(ms, variants) in calls {
            for sample in 0..ms / 10 {
                let wait = waits[(sample % u64::from(variants)) as usize];
                let stack = profile.stack_from_root([handler, scalars, inside, wait]);
                profile.add_sample(
                    time,
                    SampleKey {
                        thread,
                        stack,
                        state: idle,
                        labels,
                    },
                );
                time += 10 * MS;
            }
            let stack = profile.stack_from_root([own]);
            for _ in 0..2 {
                let state = SampleState {
                    activity: Activity::OnCpu,
                    holds_gil: true,
                };
                profile.add_sample(
                    time,
                    SampleKey {
                        thread,
                        stack,
                        state,
                        labels,
                    },
                );
                time += 10 * MS;
            }
        }
        profile
    }

    fn profile(line: u32, calls: &[(u64, u32)]) -> Profile {
        profile_of(line, calls, true)
    }

    fn check(profile: &Profile, sources: &SourceMap) -> Vec<Finding> {
        SlowQuery.check(&Context::new(profile, &Config::default(), sources))
    }

    fn sources() -> SourceMap {
        let mut sources = SourceMap::default();
        let mut text = String::new();
        for n in 1..=60 {
            text.push_str(match n {
                30 => "def find_user(email):\n",
                35 => "    user = session.scalars(query).one()\n",
                36 => "    for email in emails:\n",
                37 => "        user = session.scalars(query).one()\n",
                _ => "    pass\n",
            });
        }
        sources.insert("app.py", &text);
        sources
    }

    /// Adds to `profile` what successive readings of the driver's frames
    /// of the calls from `app.py:line` found.
    fn readings(mut profile: Profile, line: u32, same: u64, new: u64) -> Profile {
        let handler = profile.frame("find_user", "app.py", line, 30);
        profile.observe(handler, Observed::SqlSameCall, "", same);
        profile.observe(handler, Observed::SqlNewCall, "", new);
        // A new connection's set-up query, once.
        profile.observe(
            handler,
            Observed::SqlStatement,
            "show transaction isolation level",
            1,
        );
        profile
    }

    #[test]
    fn long_unchanged_waits_in_one_call_are_slow_queries() {
        let calls = profile(35, &[(200, 1), (300, 1), (150, 1), (200, 1)]);
        let findings = check(&readings(calls, 35, 30, 1), &sources());
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.code, "PYDX-DB004");
        assert_eq!(
            (finding.location.file.as_str(), finding.location.line),
            ("app.py", 35)
        );
        assert_eq!(finding.cost.occurrences, Some(4));
        assert_eq!(finding.cost.longest_ms, Some(300.0));
        let evidence = finding.evidence.join("\n");
        assert!(evidence.contains("4 calls from app.py:35"), "{evidence}");
        assert!(
            evidence.contains(
                "`SELECT users.id FROM users WHERE lower(users.email) = %(lower_1)s::VARCHAR`"
            ),
            "{evidence}"
        );
        assert!(evidence.contains("GET /users"), "{evidence}");
        assert!(
            evidence.contains("still running in 30 successive readings"),
            "{evidence}"
        );
        assert!(evidence.contains("off the CPU 100%"), "{evidence}");
        assert!(!evidence.contains("other statement"), "{evidence}");
        assert!(
            finding
                .fix
                .contains("CREATE INDEX ON users (lower(email));"),
            "{}",
            finding.fix
        );
    }

    #[test]
    fn quick_queries_whose_stacks_change_are_not() {
        let findings = check(
            &profile(35, &[(400, 2), (400, 3), (400, 2), (400, 4)]),
            &sources(),
        );
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn quick_queries_with_alike_stacks_are_told_apart_by_their_parameters() {
        // Twenty-millisecond queries one after another look like one long
        // wait on the timeline; the readings found other values each time.
        let calls = profile(35, &[(200, 1), (300, 1), (150, 1), (200, 1)]);
        let findings = check(&readings(calls, 35, 2, 30), &sources());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn short_calls_lines_in_loops_and_pool_waits_are_left_alone() {
        let short = profile(35, &[(90, 1), (90, 1), (90, 1), (90, 1), (90, 1)]);
        assert!(check(&short, &sources()).is_empty());
        let twice = profile(35, &[(300, 1), (300, 1)]);
        assert!(check(&twice, &sources()).is_empty());
        let in_a_loop = profile(37, &[(200, 1), (300, 1), (150, 1), (200, 1)]);
        assert!(check(&in_a_loop, &sources()).is_empty());
        let waiting_for_a_connection =
            profile_of(35, &[(200, 1), (300, 1), (150, 1), (200, 1)], false);
        assert!(check(&waiting_for_a_connection, &sources()).is_empty());
    }

    #[test]
    fn index_hints_are_given_for_simple_filters_only() {
        assert_eq!(
            index_hint("SELECT users.id, users.email FROM users WHERE lower(users.email) = %(lower_1)s::VARCHAR")
                .as_deref(),
            Some("CREATE INDEX ON users (lower(email));")
        );
        assert_eq!(
            index_hint(
                "SELECT \"shop_order\".\"id\" FROM \"shop_order\" WHERE (\"shop_order\".\"status\" = %s AND \
                 \"shop_order\".\"total\" > %s) ORDER BY \"shop_order\".\"id\" DESC LIMIT 21"
            )
            .as_deref(),
            Some("CREATE INDEX ON shop_order (\"status\", \"total\");")
        );
        // Django's `iexact`.
        assert_eq!(
            index_hint(
                "SELECT \"users\".\"id\" FROM \"users\" WHERE UPPER(\"users\".\"email\"::text) = UPPER(%s) \
                 LIMIT 21"
            )
            .as_deref(),
            Some("CREATE INDEX ON users (UPPER(\"email\"::text));")
        );
        assert_eq!(
            index_hint("SELECT * FROM events WHERE amount * 2 > %s").as_deref(),
            Some("CREATE INDEX ON events ((amount * 2));")
        );
        for statement in [
            "SELECT * FROM a JOIN b ON a.id = b.a_id WHERE b.x = %s",
            "SELECT * FROM a WHERE x = %s OR y = %s",
            "SELECT * FROM a WHERE name ILIKE %s",
            "SELECT * FROM a",
            "UPDATE a SET x = 1 WHERE id = %s",
        ] {
            assert_eq!(index_hint(statement), None, "{statement}");
        }
    }
}
