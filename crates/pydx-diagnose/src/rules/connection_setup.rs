//! PYDX-CONN001: database, Redis or HTTP connections opened while serving
//! requests, instead of being kept in a pool.

use std::collections::BTreeMap;

use pydx_profile::FrameId;

use pydx_libraries::{find_role, Connection as Kind, Role};

use super::request_sites::{request_sites, Site, SiteText};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Finding, Location};

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

/// The kind of connection `function` of `file` opens, if it opens one.
fn opened(function: &str, file: &str) -> Option<Kind> {
    find_role(function, file, |role| match role {
        Role::ConnectionOpen(kind) => Some(kind),
        _ => None,
    })
}

/// What a connection of `kind` is, for titles and evidence.
fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Psycopg | Kind::Psycopg2 | Kind::Django => "PostgreSQL connections",
        Kind::SqlAlchemy => "database connections (SQLAlchemy's pool)",
        Kind::Redis => "Redis connections",
        Kind::Http => "HTTP connections",
    }
}

/// The fix for connections of `kind` opened by `call` at `place`.
fn fix(kind: Kind, call: &str, place: &str) -> String {
    match kind {
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

impl Rule for ConnectionSetup {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let (request_samples, sites) = request_sites(context, opened);
        let config = &context.config.connections;
        let sqlite = django_connects_to_sqlite(context);
        // redis-py connects at a client's first command, so the stacks show
        // the command; a client made per request is fixed where it is made,
        // and every command it serves is one site.
        let mut merged: BTreeMap<(Kind, FrameId), (Site, Option<Location>)> = BTreeMap::new();
        for ((kind, frame), site) in sites {
            // Opening an SQLite file is local: there is no server
            // connection to pool.
            if kind == Kind::Django && sqlite {
                continue;
            }
            let creation = (kind == Kind::Redis)
                .then(|| redis_client_creation(context, context.file(frame)))
                .flatten();
            let key = match merged
                .iter()
                .find(|((k, _), (_, made))| *k == kind && creation.is_some() && *made == creation)
            {
                Some((&key, _)) => key,
                None => (kind, frame),
            };
            let (entry, made) = merged
                .entry(key)
                .or_insert_with(|| (Site::default(), creation.clone()));
            *made = creation;
            entry.samples += site.samples;
            entry.episodes += site.episodes;
            entry.endpoints.extend(site.endpoints);
            entry.stack = entry.stack.or(site.stack);
            entry.scope = site.scope;
        }
        merged
            .into_iter()
            .filter_map(|((kind, frame), (site, creation))| {
                let share = site.samples as f64 / request_samples as f64;
                (share >= config.min_share
                    && site.episodes >= config.min_connects
                    && site.samples >= Context::MIN_CPU_SAMPLES / 2)
                    .then(|| finding(context, kind, frame, creation, &site, share))
            })
            .collect()
    }
}

/// Lines of a program file searched for where a Redis client is made.
const MAX_SOURCE_LINES: u32 = 5_000;

/// Where `file` makes a Redis client inside a function (`redis.Redis(...)`,
/// `Redis.from_url(...)`), if it does so at exactly one line and not from
/// a shared pool: made per call, each client opens its own connection.
fn redis_client_creation(context: &Context<'_>, file: &str) -> Option<Location> {
    let mut made = Vec::new();
    for line in 1..MAX_SOURCE_LINES {
        let Some(text) = context.raw_source_line(file, line) else {
            break;
        };
        let code = text.split('#').next().unwrap_or_default();
        let in_function = text.starts_with(' ') || text.starts_with('\t');
        let makes_client = ["Redis(", "Redis.from_url(", "StrictRedis("]
            .iter()
            .any(|call| code.contains(call));
        if in_function && makes_client && !code.contains("connection_pool") {
            made.push(line);
        }
    }
    let [line] = made[..] else {
        return None;
    };
    let text = context.raw_source_line(file, line)?;
    let indent = text.len() - text.trim_start().len();
    // The function it is in: the nearest `def` above, indented less.
    let function = (1..line).rev().find_map(|above| {
        let header = context.raw_source_line(file, above)?;
        let trimmed = header.trim_start();
        let name = trimmed
            .strip_prefix("def ")
            .or_else(|| trimmed.strip_prefix("async def "))?;
        (header.len() - trimmed.len() < indent)
            .then(|| name.split('(').next().unwrap_or(name).to_string())
    })?;
    Some(Location {
        function,
        file: file.to_string(),
        line,
        source: Some(text.trim().to_string()),
    })
}

/// Whether the Django connections the program opens are SQLite's: a stack
/// inside `BaseDatabaseWrapper.connect` reaches Django's sqlite3 backend.
fn django_connects_to_sqlite(context: &Context<'_>) -> bool {
    context.profile.samples().any(|(key, _)| {
        let frames = context.profile.frames_innermost_first(key.stack);
        frames.iter().any(|&f| context.plays(f, Role::DjangoSqlite))
            && frames
                .iter()
                .any(|&f| context.plays(f, Role::ConnectionOpen(Kind::Django)))
    })
}

fn finding(
    context: &Context<'_>,
    kind: Kind,
    frame: FrameId,
    creation: Option<Location>,
    site: &Site,
    share: f64,
) -> Finding {
    let opened_at = context.location(frame);
    let location = creation.clone().unwrap_or_else(|| opened_at.clone());
    let place = format!("{}:{}", location.file, location.line);
    let call = location
        .source
        .clone()
        .unwrap_or_else(|| location.function.clone());
    let seconds = site.seconds(context);
    let mut evidence = vec![format!(
        "{:.0}% of the time spent serving requests ({seconds:.2} s of thread time) went to opening \
         {} from {} at {}:{}",
        share * 100.0,
        what(kind),
        opened_at.function,
        opened_at.file,
        opened_at.line
    )];
    if creation.is_some() {
        evidence.push(format!(
            "the client is made at {place} (`{}`), inside {}: every call makes a new client, and \
             redis-py opens a client's connection at its first command",
            call.trim(),
            location.function
        ));
    }
    evidence.push(format!(
        "pydx saw {} separate connection openings: they happen request after request, not once",
        site.episodes
    ));
    evidence.extend(site.endpoints_evidence());
    site.finding(
        context,
        DOCS.code,
        share,
        SiteText {
            title: format!(
                "Requests open new {} in {} ({:.0}% of request time)",
                what(kind),
                location.function,
                share * 100.0
            ),
            location,
            evidence,
            fix: fix(kind, call.trim(), &place),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_client_made_inside_a_function_is_found_where_it_is_made() {
        let profile = pydx_profile::Profile::default();
        let config = crate::config::Config::default();
        let mut sources = crate::context::SourceMap::default();
        sources.insert(
            "/app/views.py",
            "import redis\nPOOL = redis.ConnectionPool()\n\ndef counters():\n    # one per call\n    \
             return redis.Redis(host=\"cache\")\n\ndef shared():\n    return redis.Redis(connection_pool=POOL)\n",
        );
        sources.insert(
            "/app/two.py",
            "def a():\n    return redis.Redis()\ndef b():\n    return redis.Redis()\n",
        );
        let context = Context::new(&profile, &config, &sources);
        let made = redis_client_creation(&context, "/app/views.py").unwrap();
        assert_eq!((made.function.as_str(), made.line), ("counters", 6));
        // Two places make clients: which one a request used cannot be told.
        assert_eq!(redis_client_creation(&context, "/app/two.py"), None);
    }

    #[test]
    fn driver_frames_are_recognised_by_function_and_file() {
        let site = "/srv/venv/lib/python3.12/site-packages";
        assert_eq!(
            opened(
                "Connection.connect",
                &format!("{site}/psycopg/connection.py")
            ),
            Some(Kind::Psycopg)
        );
        assert_eq!(
            opened(
                "AbstractConnection.connect",
                &format!("{site}/redis/connection.py")
            ),
            Some(Kind::Redis)
        );
        assert_eq!(
            opened(
                "HTTPConnection._new_conn",
                &format!("{site}/urllib3/connection.py")
            ),
            Some(Kind::Http)
        );
        assert_eq!(
            opened(
                "Connection.execute",
                &format!("{site}/psycopg/connection.py")
            ),
            None
        );
        assert_eq!(opened("Connection.connect", "/srv/app/connection.py"), None);
    }
}
