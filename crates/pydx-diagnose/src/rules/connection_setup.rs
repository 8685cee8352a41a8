//! PYDX-CONN001: database, Redis or HTTP connections opened while serving
//! requests, instead of being kept in a pool.

use pydx_profile::FrameId;

use super::request_sites::{request_sites, Site, SiteText};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::Finding;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-CONN001",
    name: "connection-per-request",
    summary: "Requests spend their time opening database, Redis or HTTP connections instead of reusing pooled ones",
    detects: "Among the samples of threads serving an HTTP request (see the Endpoints section), pydx counts \
              those inside a driver's connection set-up: psycopg and psycopg2 `connect`, Django's \
              `BaseDatabaseWrapper.connect`, SQLAlchemy's pool opening a new connection, redis-py's \
              `Connection.connect`, urllib3's and http.client's and httpcore's new connections. A call site \
              whose requests open connections again and again, and spend a noticeable share of their time \
              doing it, is reported with the endpoints concerned.",
    why: "Opening a connection costs a TCP handshake, often TLS, authentication and, for PostgreSQL, a new \
          server process: milliseconds per request, and load on the server. A pool opens each connection \
          once and lends it to request after request.",
    example: "@app.get(\"/orders/<int:order_id>\")\ndef order(order_id):\n    with psycopg.connect(DSN) as conn:   # a new connection per request\n        ...",
    fix: "Keep connections for the life of the worker: a `psycopg_pool.ConnectionPool` (psycopg 3) or \
          `psycopg2.pool.ThreadedConnectionPool`; Django's `CONN_MAX_AGE` (with `CONN_HEALTH_CHECKS`); one \
          SQLAlchemy engine per process with its default QueuePool (not NullPool); one `redis.Redis` client \
          (it pools its connections) created at import time; one `requests.Session` or `httpx.Client` \
          reused across requests.",
    thresholds: "min_share = 0.05: opening connections at one call site takes at least 5% of the \
                 request-serving samples; min_connects = 3: pydx saw at least three separate openings \
                 (one-time lazy set-up is not a problem).",
};

/// PYDX-CONN001.
pub struct ConnectionSetup;

/// What kind of connection a driver frame opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Psycopg,
    Psycopg2,
    Django,
    SqlAlchemy,
    Redis,
    Http,
}

impl Kind {
    /// The driver frame that opens a connection, if `function` of `file` is one.
    fn of(function: &str, file: &str) -> Option<Kind> {
        let is = |suffix: &str, functions: &[&str]| {
            file.ends_with(suffix) && functions.contains(&function)
        };
        if is("psycopg/connection.py", &["Connection.connect"]) {
            Some(Kind::Psycopg)
        } else if is("psycopg2/__init__.py", &["connect"]) {
            Some(Kind::Psycopg2)
        } else if is(
            "django/db/backends/base/base.py",
            &["BaseDatabaseWrapper.connect"],
        ) {
            Some(Kind::Django)
        } else if is("sqlalchemy/pool/base.py", &["_ConnectionRecord.__connect"]) {
            Some(Kind::SqlAlchemy)
        } else if is(
            "redis/connection.py",
            &["AbstractConnection.connect", "Connection.connect"],
        ) {
            Some(Kind::Redis)
        } else if is("urllib3/connection.py", &["HTTPConnection._new_conn"])
            || is("http/client.py", &["HTTPConnection.connect"])
            || is("httpcore/_sync/connection.py", &["HTTPConnection._connect"])
        {
            Some(Kind::Http)
        } else {
            None
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Psycopg | Kind::Psycopg2 | Kind::Django => "PostgreSQL connections",
            Kind::SqlAlchemy => "database connections (SQLAlchemy's pool)",
            Kind::Redis => "Redis connections",
            Kind::Http => "HTTP connections",
        }
    }

    fn fix(self, call: &str, place: &str) -> String {
        match self {
            Kind::Psycopg => format!(
                "`{call}` at {place} opens a new PostgreSQL connection for every request. Create a \
                 `psycopg_pool.ConnectionPool(DSN)` once per worker (at import time) and borrow from it \
                 with `with pool.connection() as conn:`; size it with `max_size` near the worker's threads."
            ),
            Kind::Psycopg2 => format!(
                "`{call}` at {place} opens a new PostgreSQL connection for every request. Create a \
                 `psycopg2.pool.ThreadedConnectionPool` once per worker and use `getconn()` / `putconn()`."
            ),
            Kind::Django => format!(
                "Django opens a new database connection for every request (reached from {place}). Set \
                 `CONN_MAX_AGE` (e.g. 60 seconds) in the database settings so connections persist across \
                 requests, with `CONN_HEALTH_CHECKS = True`; or put PgBouncer in front."
            ),
            Kind::SqlAlchemy => format!(
                "SQLAlchemy's pool opens new connections during requests (reached from {place}). Create the \
                 engine once per process and keep its default QueuePool (not `NullPool`), with \
                 `pool_size` / `max_overflow` covering the worker's concurrency and `pool_pre_ping=True`."
            ),
            Kind::Redis => format!(
                "A new Redis connection is opened for every request (reached from {place}): the client is \
                 created per request. Create one `redis.Redis(...)` (or a `redis.ConnectionPool`) at import \
                 time and reuse it; it keeps its connections open."
            ),
            Kind::Http => format!(
                "A new HTTP connection is opened for every outgoing request (reached from {place}). Reuse \
                 one `requests.Session()` or `httpx.Client()` per worker so connections stay alive \
                 between requests."
            ),
        }
    }
}

impl Rule for ConnectionSetup {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let (request_samples, sites) = request_sites(context, Kind::of);
        let config = &context.config.connections;
        let sqlite = django_connects_to_sqlite(context);
        sites
            .into_iter()
            // Opening an SQLite file is local: there is no server
            // connection to pool.
            .filter(|((kind, _), _)| !(*kind == Kind::Django && sqlite))
            .filter_map(|((kind, frame), site)| {
                let share = site.samples as f64 / request_samples as f64;
                (share >= config.min_share
                    && site.episodes >= config.min_connects
                    && site.samples >= Context::MIN_CPU_SAMPLES / 2)
                    .then(|| finding(context, kind, frame, &site, share))
            })
            .collect()
    }
}

/// Whether the Django connections the program opens are SQLite's: a stack
/// inside `BaseDatabaseWrapper.connect` reaches Django's sqlite3 backend.
fn django_connects_to_sqlite(context: &Context<'_>) -> bool {
    context.profile.samples().any(|(key, _)| {
        let frames = context.profile.frames_innermost_first(key.stack);
        frames
            .iter()
            .any(|&f| context.file(f).contains("django/db/backends/sqlite3/"))
            && frames
                .iter()
                .any(|&f| Kind::of(context.function(f), context.file(f)) == Some(Kind::Django))
    })
}

fn finding(context: &Context<'_>, kind: Kind, frame: FrameId, site: &Site, share: f64) -> Finding {
    let location = context.location(frame);
    let place = format!("{}:{}", location.file, location.line);
    let call = location
        .source
        .clone()
        .unwrap_or_else(|| location.function.clone());
    let seconds = site.seconds(context);
    let mut evidence = vec![
        format!(
            "{:.0}% of the time spent serving requests ({seconds:.2} s of thread time) went to opening \
             {} from {} at {place}",
            share * 100.0,
            kind.what(),
            location.function
        ),
        format!(
            "pydx saw {} separate connection openings there: they happen request after request, not once",
            site.episodes
        ),
    ];
    evidence.extend(site.endpoints_evidence());
    site.finding(
        context,
        DOCS.code,
        share,
        SiteText {
            title: format!(
                "Requests open new {} in {} ({:.0}% of request time)",
                kind.what(),
                location.function,
                share * 100.0
            ),
            location,
            evidence,
            fix: kind.fix(call.trim(), &place),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_frames_are_recognised_by_function_and_file() {
        let site = "/srv/venv/lib/python3.12/site-packages";
        assert_eq!(
            Kind::of(
                "Connection.connect",
                &format!("{site}/psycopg/connection.py")
            ),
            Some(Kind::Psycopg)
        );
        assert_eq!(
            Kind::of(
                "AbstractConnection.connect",
                &format!("{site}/redis/connection.py")
            ),
            Some(Kind::Redis)
        );
        assert_eq!(
            Kind::of(
                "HTTPConnection._new_conn",
                &format!("{site}/urllib3/connection.py")
            ),
            Some(Kind::Http)
        );
        assert_eq!(
            Kind::of(
                "Connection.execute",
                &format!("{site}/psycopg/connection.py")
            ),
            None
        );
        assert_eq!(
            Kind::of("Connection.connect", "/srv/app/connection.py"),
            None
        );
    }
}
