//! What the frames of well-known Python code mean, in one table.
//!
//! pydx recognises the code of the standard library and of popular
//! packages on the stacks it samples: an ORM's lazy loader, a driver
//! running a statement, a connection being opened, asyncio's event loop,
//! a server's worker loop, a framework's request handling. Every such
//! piece of knowledge is a row of [`KNOWN_CODE`]: the library, the file
//! (how its path ends, or a folder it is in), the functions and the
//! [`Role`] they play. The sampler, the CPython reader and the doctor's
//! rules all ask [`roles`] (or a helper built on it) instead of matching
//! path strings of their own.
//!
//! ```
//! use pydx_libraries::{roles, DbApi, DbCall, Role};
//!
//! let file = "/srv/venv/lib/python3.12/site-packages/sqlalchemy/orm/session.py";
//! assert!(roles("Session.flush", file).any(|r| r == Role::Database(DbCall::Write(DbApi::SqlAlchemy))));
//! // Before Python 3.11 frames carry no class: the method's name is enough.
//! assert!(roles("flush", file).any(|r| r == Role::Database(DbCall::Write(DbApi::SqlAlchemy))));
//! assert_eq!(roles("flush", "/srv/app/session.py").count(), 0);
//! ```

/// Where a function's file must be for a row of [`KNOWN_CODE`] to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The path ends with this (`"sqlalchemy/orm/session.py"`).
    FileEnd(&'static str),
    /// The path starts with this (`"<frozen importlib"`).
    FileStart(&'static str),
    /// The path contains this (`"/sqlite3/"`).
    Within(&'static str),
    /// The file belongs to this installed package: its path goes on with
    /// `NAME/` right after `site-packages/` or `dist-packages/`.
    Package(&'static str),
}

impl Place {
    /// Whether `file` (a `co_filename`) is in this place.
    pub fn contains(self, file: &str) -> bool {
        match self {
            Place::FileEnd(end) => file.ends_with(end),
            Place::FileStart(start) => file.starts_with(start),
            Place::Within(part) => file.contains(part),
            Place::Package(name) => installed_package(file) == Some(name),
        }
    }
}

/// The top-level package an installed file belongs to: the folder right
/// after `site-packages/` or `dist-packages/`.
pub fn installed_package(file: &str) -> Option<&str> {
    ["/site-packages/", "/dist-packages/"]
        .iter()
        .find_map(|root| file.split_once(root))
        .and_then(|(_, inside)| inside.split_once('/'))
        .map(|(package, _)| package)
}

/// Which functions of a file a row of [`KNOWN_CODE`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Functions {
    /// Every function of the file.
    All,
    /// These qualified names (`Class.method`). A name without a dot (as
    /// frames before Python 3.11 give, or `co_name`) matches a qualified
    /// name by its last part, so that `flush` matches `Session.flush`.
    Named(&'static [&'static str]),
}

impl Functions {
    /// Whether `function` (a qualified name, or a bare name) is one of these.
    pub fn contains(self, function: &str) -> bool {
        match self {
            Functions::All => true,
            Functions::Named(names) => names.iter().any(|name| {
                *name == function
                    || !function.contains('.')
                        && name.rsplit('.').next().is_some_and(|last| last == function)
            }),
        }
    }
}

/// The database API a call goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DbApi {
    /// SQLAlchemy's ORM session.
    SqlAlchemy,
    /// Django's ORM.
    Django,
    /// A driver's DB-API (PEP 249) cursor or connection.
    Driver,
}

/// A database call, as the library function making it shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DbCall {
    /// An ORM lazy load of a relationship.
    LazyLoad(Orm),
    /// A query that reads.
    Read(DbApi),
    /// A write: saving a model, flushing or committing a session.
    Write(DbApi),
}

/// An ORM that loads related objects lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Orm {
    /// SQLAlchemy's lazy loader.
    SqlAlchemy,
    /// Django's forward foreign key or one-to-one descriptor.
    Django,
}

/// What a connection being opened connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Connection {
    /// psycopg 3's `Connection.connect`.
    Psycopg,
    /// psycopg2's `connect`.
    Psycopg2,
    /// Django's database wrapper connecting.
    Django,
    /// SQLAlchemy's pool making a new connection.
    SqlAlchemy,
    /// redis-py connecting.
    Redis,
    /// An HTTP client connecting (urllib3, http.client, httpcore).
    Http,
}

/// A service a blocking client library talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// An HTTP server.
    Http,
    /// A database server (or SQLite's file).
    Database,
    /// Redis.
    Redis,
}

/// A web framework, by the name its users know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Framework {
    /// Django.
    Django,
    /// Flask.
    Flask,
    /// FastAPI.
    FastApi,
    /// Starlette.
    Starlette,
}

impl Framework {
    /// The name users know.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Django => "Django",
            Framework::Flask => "Flask",
            Framework::FastApi => "FastAPI",
            Framework::Starlette => "Starlette",
        }
    }
}

/// What kind of worker a server's worker loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkerClass {
    /// gunicorn's sync worker: one request at a time.
    Sync,
    /// A worker serving several requests at once (threads, gevent, asyncio).
    Concurrent,
}

/// Where a server counts the requests it has served: the `self` local of
/// a frame that stays on a thread's stack while the server runs, and the
/// attributes leading from it to the `int` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestCounter {
    /// Attribute names from `self` to the count.
    pub attributes: &'static [&'static str],
    /// Classes of `self` that never update the count.
    pub not_counting: &'static [&'static str],
}

/// The parameters of a driver function that runs one SQL statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatementArguments {
    /// The parameter holding the SQL.
    pub sql: &'static str,
    /// The parameter holding the statement's parameters, if it has one.
    pub parameters: Option<&'static str>,
}

/// What a function of well-known code does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Part of the import system or of the interpreter's start-up: a stack
    /// with such a frame was sampled while a module was being imported.
    ImportMachinery,
    /// Part of asyncio's event loop itself (the loop, its runner, its
    /// selector), not code it runs.
    EventLoopMachinery,
    /// The frame an asyncio event loop runs in (`run_forever`).
    EventLoopRun,
    /// An asyncio function that waits for tasks through a future their done
    /// callbacks complete, so that they are not what the caller awaits: the
    /// local holding the task or the collection of tasks.
    TaskWaiting {
        /// The local's name.
        tasks: &'static str,
    },
    /// An anyio worker thread running jobs handed over by async code (a
    /// FastAPI or Starlette `def` endpoint); its `cancel_scope` local names
    /// the task that handed the job over.
    OffloadedJobs,
    /// Waiting for the next item of a `queue.Queue`.
    QueueWait,
    /// A server's loop, whose `self` counts the requests served.
    CountsRequests(RequestCounter),
    /// Django's handler of one request: its `request` local knows the
    /// route once URLs are resolved.
    DjangoRequest,
    /// A server's worker loop.
    Worker {
        /// What kind of worker.
        class: WorkerClass,
        /// Whether it serves WSGI applications (gunicorn's sync and
        /// gthread workers).
        wsgi: bool,
    },
    /// A gunicorn sync worker waiting for the next connection.
    IdleSyncWorker,
    /// asgiref's `AsyncToSync.__call__`: sync code running async code on
    /// an event loop of its own.
    AsyncToSync,
    /// The coroutine asgiref's `async_to_sync` runs its work in, on its
    /// event loop thread.
    AsyncToSyncLoop,
    /// Django's ASGI handler.
    DjangoAsgi,
    /// Code of a web framework.
    Framework(Framework),
    /// A database call of an ORM or a driver.
    Database(DbCall),
    /// A driver-level call that sends one statement (or one batch) to the
    /// server and waits for its result.
    StatementExecution,
    /// A driver function whose arguments hold the SQL it runs.
    Statement(StatementArguments),
    /// Opening a new connection.
    ConnectionOpen(Connection),
    /// Django's SQLite backend: its connections open a local file, with
    /// no server to pool connections to.
    DjangoSqlite,
    /// A client library that blocks until a service answers.
    Client(Service),
}

/// One row of the table: the functions of a file that play a role.
#[derive(Debug, Clone, Copy)]
pub struct KnownCode {
    /// The library, as its users name it.
    pub library: &'static str,
    /// Where its file is.
    pub place: Place,
    /// Which of the file's functions.
    pub functions: Functions,
    /// What they do.
    pub role: Role,
}

const fn row(library: &'static str, place: Place, functions: Functions, role: Role) -> KnownCode {
    KnownCode {
        library,
        place,
        functions,
        role,
    }
}

use Functions::{All, Named};
use Place::{FileEnd, FileStart, Package, Within};

const STATEMENT: StatementArguments = StatementArguments {
    sql: "query",
    parameters: Some("params"),
};

/// Everything pydx knows about the code of the standard library and of
/// installed packages.
pub const KNOWN_CODE: &[KnownCode] = &[
    // The interpreter's start-up and imports.
    row(
        "importlib",
        FileStart("<frozen importlib"),
        All,
        Role::ImportMachinery,
    ),
    row(
        "importlib",
        FileEnd("/importlib/__init__.py"),
        All,
        Role::ImportMachinery,
    ),
    row(
        "importlib",
        FileEnd("/importlib/_bootstrap.py"),
        All,
        Role::ImportMachinery,
    ),
    row(
        "importlib",
        FileEnd("/importlib/_bootstrap_external.py"),
        All,
        Role::ImportMachinery,
    ),
    row("site", FileEnd("/site.py"), All, Role::ImportMachinery),
    // asyncio.
    row(
        "asyncio",
        FileEnd("asyncio/base_events.py"),
        Named(&["BaseEventLoop.run_forever"]),
        Role::EventLoopRun,
    ),
    row(
        "asyncio",
        FileEnd("asyncio/base_events.py"),
        All,
        Role::EventLoopMachinery,
    ),
    row(
        "asyncio",
        FileEnd("asyncio/runners.py"),
        All,
        Role::EventLoopMachinery,
    ),
    row(
        "asyncio",
        FileEnd("asyncio/unix_events.py"),
        All,
        Role::EventLoopMachinery,
    ),
    row(
        "selectors",
        FileEnd("/selectors.py"),
        All,
        Role::EventLoopMachinery,
    ),
    // `wait_for` up to 3.11 (from 3.12 it awaits the task itself), `wait`
    // and what is built on it, and staggered races (whose later tasks are
    // started by the earlier ones).
    row(
        "asyncio",
        FileEnd("asyncio/tasks.py"),
        Named(&["wait_for"]),
        Role::TaskWaiting { tasks: "fut" },
    ),
    row(
        "asyncio",
        FileEnd("asyncio/tasks.py"),
        Named(&["_wait"]),
        Role::TaskWaiting { tasks: "fs" },
    ),
    row(
        "asyncio",
        FileEnd("asyncio/staggered.py"),
        Named(&["staggered_race"]),
        Role::TaskWaiting {
            tasks: "running_tasks",
        },
    ),
    row(
        "anyio",
        FileEnd("anyio/_backends/_asyncio.py"),
        Named(&["WorkerThread.run"]),
        Role::OffloadedJobs,
    ),
    row(
        "queue",
        FileEnd("/queue.py"),
        Named(&["Queue.get"]),
        Role::QueueWait,
    ),
    // Servers. A gunicorn worker runs its loop from `Worker.init_process`
    // and counts requests in `self.nr` for `--max-requests`; the uvicorn
    // worker classes leave that to uvicorn and keep 0. uvicorn's
    // `Server.run` runs the event loop; its protocols count requests in
    // `server_state.total_requests` for `--limit-max-requests`.
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/base.py"),
        Named(&["Worker.init_process"]),
        Role::CountsRequests(RequestCounter {
            attributes: &["nr"],
            not_counting: &["UvicornWorker", "UvicornH11Worker"],
        }),
    ),
    row(
        "uvicorn",
        FileEnd("uvicorn/server.py"),
        Named(&["Server.run"]),
        Role::CountsRequests(RequestCounter {
            attributes: &["server_state", "total_requests"],
            not_counting: &[],
        }),
    ),
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/sync.py"),
        Named(&["SyncWorker.wait"]),
        Role::IdleSyncWorker,
    ),
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/sync.py"),
        All,
        Role::Worker {
            class: WorkerClass::Sync,
            wsgi: true,
        },
    ),
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/gthread.py"),
        All,
        Role::Worker {
            class: WorkerClass::Concurrent,
            wsgi: true,
        },
    ),
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/ggevent.py"),
        All,
        Role::Worker {
            class: WorkerClass::Concurrent,
            wsgi: false,
        },
    ),
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/geventlet.py"),
        All,
        Role::Worker {
            class: WorkerClass::Concurrent,
            wsgi: false,
        },
    ),
    row(
        "gunicorn",
        FileEnd("gunicorn/workers/gtornado.py"),
        All,
        Role::Worker {
            class: WorkerClass::Concurrent,
            wsgi: false,
        },
    ),
    row(
        "uvicorn",
        FileEnd("uvicorn/workers.py"),
        All,
        Role::Worker {
            class: WorkerClass::Concurrent,
            wsgi: false,
        },
    ),
    // Frameworks.
    row(
        "asgiref",
        FileEnd("asgiref/sync.py"),
        Named(&["AsyncToSync.__call__"]),
        Role::AsyncToSync,
    ),
    row(
        "asgiref",
        FileEnd("asgiref/sync.py"),
        Named(&["AsyncToSync.main_wrap"]),
        Role::AsyncToSyncLoop,
    ),
    row(
        "Django",
        FileEnd("django/core/handlers/base.py"),
        Named(&[
            "BaseHandler._get_response",
            "BaseHandler._get_response_async",
        ]),
        Role::DjangoRequest,
    ),
    row(
        "Django",
        FileEnd("django/core/handlers/asgi.py"),
        All,
        Role::DjangoAsgi,
    ),
    row(
        "Django",
        Package("django"),
        All,
        Role::Framework(Framework::Django),
    ),
    row(
        "Flask",
        Package("flask"),
        All,
        Role::Framework(Framework::Flask),
    ),
    row(
        "FastAPI",
        Package("fastapi"),
        All,
        Role::Framework(Framework::FastApi),
    ),
    row(
        "Starlette",
        Package("starlette"),
        All,
        Role::Framework(Framework::Starlette),
    ),
    // ORMs.
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/orm/strategies.py"),
        Named(&["_LazyLoader._load_for_state", "LazyLoader._load_for_state"]),
        Role::Database(DbCall::LazyLoad(Orm::SqlAlchemy)),
    ),
    row(
        "Django",
        FileEnd("django/db/models/fields/related_descriptors.py"),
        Named(&[
            "ForwardManyToOneDescriptor.__get__",
            "ReverseOneToOneDescriptor.__get__",
        ]),
        Role::Database(DbCall::LazyLoad(Orm::Django)),
    ),
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/orm/session.py"),
        Named(&[
            "Session.get",
            "Session.execute",
            "Session.scalars",
            "Session.scalar",
        ]),
        Role::Database(DbCall::Read(DbApi::SqlAlchemy)),
    ),
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/orm/session.py"),
        Named(&["Session.flush", "Session.commit"]),
        Role::Database(DbCall::Write(DbApi::SqlAlchemy)),
    ),
    row(
        "Django",
        FileEnd("django/db/models/query.py"),
        Named(&[
            "QuerySet.get",
            "QuerySet.count",
            "QuerySet.exists",
            "QuerySet.first",
            "QuerySet.__iter__",
            "QuerySet.__len__",
            "QuerySet.__bool__",
        ]),
        Role::Database(DbCall::Read(DbApi::Django)),
    ),
    row(
        "Django",
        FileEnd("django/db/models/query.py"),
        Named(&["QuerySet.create", "QuerySet.update"]),
        Role::Database(DbCall::Write(DbApi::Django)),
    ),
    row(
        "Django",
        FileEnd("django/db/models/base.py"),
        Named(&["Model.save", "Model.delete"]),
        Role::Database(DbCall::Write(DbApi::Django)),
    ),
    // Drivers.
    row(
        "psycopg",
        FileEnd("psycopg/cursor.py"),
        Named(&["Cursor.execute"]),
        Role::Database(DbCall::Read(DbApi::Driver)),
    ),
    row(
        "psycopg",
        FileEnd("psycopg/connection.py"),
        Named(&["Connection.execute"]),
        Role::Database(DbCall::Read(DbApi::Driver)),
    ),
    row(
        "psycopg",
        FileEnd("psycopg/cursor.py"),
        Named(&["Cursor.execute", "Cursor.executemany"]),
        Role::StatementExecution,
    ),
    row(
        "psycopg",
        FileEnd("psycopg/connection.py"),
        Named(&["Connection.execute"]),
        Role::StatementExecution,
    ),
    row(
        "Django",
        FileEnd("django/db/backends/utils.py"),
        Named(&["CursorWrapper._execute", "CursorWrapper._executemany"]),
        Role::StatementExecution,
    ),
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/engine/default.py"),
        Named(&[
            "DefaultDialect.do_execute",
            "DefaultDialect.do_execute_no_params",
            "DefaultDialect.do_executemany",
        ]),
        Role::StatementExecution,
    ),
    row(
        "PyMySQL",
        FileEnd("pymysql/cursors.py"),
        Named(&["Cursor.execute", "Cursor.executemany"]),
        Role::StatementExecution,
    ),
    row(
        "mysqlclient",
        FileEnd("MySQLdb/cursors.py"),
        Named(&["BaseCursor.execute", "BaseCursor.executemany"]),
        Role::StatementExecution,
    ),
    row(
        "psycopg",
        FileEnd("psycopg/cursor.py"),
        Named(&["Cursor.execute"]),
        Role::Statement(STATEMENT),
    ),
    row(
        "psycopg",
        FileEnd("psycopg/connection.py"),
        Named(&["Connection.execute"]),
        Role::Statement(STATEMENT),
    ),
    row(
        "Django",
        FileEnd("django/db/backends/utils.py"),
        Named(&["CursorWrapper.execute", "CursorDebugWrapper.execute"]),
        Role::Statement(StatementArguments {
            sql: "sql",
            parameters: Some("params"),
        }),
    ),
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/engine/default.py"),
        Named(&["DefaultDialect.do_execute"]),
        Role::Statement(StatementArguments {
            sql: "statement",
            parameters: Some("parameters"),
        }),
    ),
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/engine/default.py"),
        Named(&["DefaultDialect.do_execute_no_params"]),
        Role::Statement(StatementArguments {
            sql: "statement",
            parameters: None,
        }),
    ),
    // Opening connections.
    row(
        "psycopg",
        FileEnd("psycopg/connection.py"),
        Named(&["Connection.connect"]),
        Role::ConnectionOpen(Connection::Psycopg),
    ),
    row(
        "psycopg2",
        FileEnd("psycopg2/__init__.py"),
        Named(&["connect"]),
        Role::ConnectionOpen(Connection::Psycopg2),
    ),
    row(
        "Django",
        FileEnd("django/db/backends/base/base.py"),
        Named(&["BaseDatabaseWrapper.connect"]),
        Role::ConnectionOpen(Connection::Django),
    ),
    row(
        "SQLAlchemy",
        FileEnd("sqlalchemy/pool/base.py"),
        Named(&["_ConnectionRecord.__connect"]),
        Role::ConnectionOpen(Connection::SqlAlchemy),
    ),
    row(
        "redis-py",
        FileEnd("redis/connection.py"),
        Named(&["AbstractConnection.connect", "Connection.connect"]),
        Role::ConnectionOpen(Connection::Redis),
    ),
    row(
        "urllib3",
        FileEnd("urllib3/connection.py"),
        Named(&["HTTPConnection._new_conn"]),
        Role::ConnectionOpen(Connection::Http),
    ),
    row(
        "http.client",
        FileEnd("http/client.py"),
        Named(&["HTTPConnection.connect"]),
        Role::ConnectionOpen(Connection::Http),
    ),
    row(
        "httpcore",
        FileEnd("httpcore/_sync/connection.py"),
        Named(&["HTTPConnection._connect"]),
        Role::ConnectionOpen(Connection::Http),
    ),
    row(
        "Django",
        FileEnd("django/db/backends/sqlite3/base.py"),
        All,
        Role::DjangoSqlite,
    ),
    // Clients that block until their service answers.
    row(
        "requests",
        Package("requests"),
        All,
        Role::Client(Service::Http),
    ),
    row(
        "urllib3",
        Package("urllib3"),
        All,
        Role::Client(Service::Http),
    ),
    row(
        "http.client",
        FileEnd("/http/client.py"),
        All,
        Role::Client(Service::Http),
    ),
    row(
        "urllib.request",
        FileEnd("/urllib/request.py"),
        All,
        Role::Client(Service::Http),
    ),
    row(
        "psycopg",
        Package("psycopg"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "psycopg2",
        Package("psycopg2"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "psycopg",
        Package("psycopg_pool"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "sqlite3",
        Within("/sqlite3/"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "PyMySQL",
        Package("pymysql"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "mysqlclient",
        Package("MySQLdb"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "SQLAlchemy",
        Package("sqlalchemy"),
        All,
        Role::Client(Service::Database),
    ),
    row(
        "redis-py",
        Package("redis"),
        All,
        Role::Client(Service::Redis),
    ),
];

/// The servers whose processes pydx recognises by their command line
/// (a master and the workers it forks).
pub const SERVERS: &[&str] = &["gunicorn", "uvicorn", "hypercorn", "daphne", "celery"];

/// The modules a program imports to use each blocking client of
/// [`Role::Client`], as they appear in its source (`requests.get(...)`).
pub const CLIENT_MODULES: &[(&str, Service)] = &[
    ("requests", Service::Http),
    ("urllib3", Service::Http),
    ("http.client", Service::Http),
    ("urllib.request", Service::Http),
    ("psycopg", Service::Database),
    ("sqlite3", Service::Database),
    ("pymysql", Service::Database),
    ("MySQLdb", Service::Database),
    ("sqlalchemy", Service::Database),
    ("redis", Service::Redis),
];

/// The roles `function` (a qualified name, or a bare name before Python
/// 3.11) of `file` (a `co_filename`) plays, in the table's order.
pub fn roles<'a>(function: &'a str, file: &'a str) -> impl Iterator<Item = Role> + 'a {
    KNOWN_CODE
        .iter()
        .filter(move |known| known.matches(function, file))
        .map(|known| known.role)
}

/// The first role `function` of `file` plays that `pick` keeps. `pick`
/// sees each row's role before the row's names are compared, so that a
/// search for one kind of role (called for every frame of every sample,
/// by the reader) compares names only on the rows of that kind.
pub fn find_role<T>(
    function: &str,
    file: &str,
    mut pick: impl FnMut(Role) -> Option<T>,
) -> Option<T> {
    KNOWN_CODE.iter().find_map(|known| {
        let picked = pick(known.role)?;
        known.matches(function, file).then_some(picked)
    })
}

/// Whether `function` of `file` plays `role`.
pub fn plays(function: &str, file: &str, role: Role) -> bool {
    find_role(function, file, |r| (r == role).then_some(())).is_some()
}

impl KnownCode {
    /// Whether this row is about `function` of `file`: the cheap name test
    /// first, the file's place after.
    fn matches(&self, function: &str, file: &str) -> bool {
        self.functions.contains(function) && self.place.contains(file)
    }
}

/// The database call `function` of `file` makes, if it is one.
pub fn database_call(function: &str, file: &str) -> Option<DbCall> {
    find_role(function, file, |role| match role {
        Role::Database(call) => Some(call),
        _ => None,
    })
}

/// The parameters holding the SQL of `function` of `file`, if it is a
/// driver function that runs one statement.
pub fn statement_arguments(function: &str, file: &str) -> Option<StatementArguments> {
    find_role(function, file, |role| match role {
        Role::Statement(arguments) => Some(arguments),
        _ => None,
    })
}

/// Whether the request path `path` is one a web framework's route
/// `template` serves: Flask and Django (`/orders/<int:order_id>`),
/// FastAPI and Starlette (`/orders/{order_id}`), a parameter matching one
/// non-empty part of a segment (`/tiles/<int:y>.png`). pydx's own `{id}`
/// placeholder in `path` matches a segment that is one parameter. Templates
/// whose parameters span segments (`<path:p>`, `{p:path}`) match nothing.
pub fn route_matches(template: &str, path: &str) -> bool {
    if template.contains("path:") || template.contains(":path}") {
        return false;
    }
    let template: Vec<&str> = template.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(&t, &p)| segment_matches(t, p))
}

/// A route parameter's delimiters, by framework family.
const PARAMETERS: [(char, char); 2] = [('<', '>'), ('{', '}')];

/// Whether one segment of a request path matches one of a route template.
fn segment_matches(template: &str, segment: &str) -> bool {
    let is_parameter = |text: &str| {
        PARAMETERS
            .iter()
            .any(|&(open, close)| text.starts_with(open) && text.ends_with(close))
    };
    if segment == "{id}" {
        return is_parameter(template) && !template[1..].contains(['<', '{']);
    }
    // The template's literal parts, in order; a parameter between two of
    // them matches at least one character.
    let mut rest = segment;
    let mut pending_parameter = false;
    let mut text = template;
    while !text.is_empty() {
        let next = PARAMETERS
            .iter()
            .filter_map(|&(open, close)| {
                let start = text.find(open)?;
                let end = start + text[start..].find(close)?;
                Some((start, end))
            })
            .min();
        let (literal, after) = match next {
            Some((start, end)) => (&text[..start], &text[end + 1..]),
            None => (text, ""),
        };
        if !literal.is_empty() {
            let found = if pending_parameter {
                rest.get(1..)
                    .and_then(|tail| tail.find(literal))
                    .map(|at| at + 1)
            } else {
                rest.starts_with(literal).then_some(0)
            };
            let Some(at) = found else {
                return false;
            };
            rest = &rest[at + literal.len()..];
        }
        pending_parameter = next.is_some();
        text = after;
    }
    if pending_parameter {
        !rest.is_empty()
    } else {
        rest.is_empty()
    }
}

/// Whether a value's type name (`module.Class`) is a whole array's: a
/// NumPy array or a pandas object, whose operations run in compiled code.
/// (A NumPy scalar is not: arithmetic on one is a step of the interpreter.)
pub fn is_array_type(type_name: &str) -> bool {
    type_name == "numpy.ndarray" || type_name.starts_with("pandas.")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "/srv/venv/lib/python3.12/site-packages";

    fn roles_of(function: &str, file: &str) -> Vec<Role> {
        roles(function, &format!("{SITE}/{file}")).collect()
    }

    #[test]
    fn bare_names_match_the_last_part_of_a_qualified_name() {
        assert!(Named(&["Session.flush"]).contains("Session.flush"));
        assert!(Named(&["Session.flush"]).contains("flush"));
        assert!(!Named(&["Session.flush"]).contains("Other.flush"));
        assert!(!Named(&["Session.flush"]).contains("Session.flush_all"));
        assert!(Named(&["connect"]).contains("connect"));
        assert!(!Named(&["connect"]).contains("Pool.connect"));
    }

    #[test]
    fn packages_are_the_folder_after_site_packages() {
        assert_eq!(
            installed_package(&format!("{SITE}/django/db/models/query.py")),
            Some("django")
        );
        assert_eq!(
            installed_package("/usr/lib/python3/dist-packages/flask/app.py"),
            Some("flask")
        );
        assert_eq!(installed_package(&format!("{SITE}/six.py")), None);
        assert_eq!(installed_package("/srv/app/django/views.py"), None);
        assert!(!Package("django").contains("/srv/app/django/views.py"));
    }

    #[test]
    fn a_function_plays_every_role_of_its_rows() {
        assert_eq!(
            roles_of("Cursor.execute", "psycopg/cursor.py"),
            [
                Role::Database(DbCall::Read(DbApi::Driver)),
                Role::StatementExecution,
                Role::Statement(STATEMENT),
                Role::Client(Service::Database),
            ]
        );
        assert_eq!(
            roles_of("BaseEventLoop.run_forever", "../asyncio/base_events.py"),
            [Role::EventLoopRun, Role::EventLoopMachinery]
        );
        assert_eq!(roles_of("Session.flush", "app/session.py"), []);
        assert_eq!(
            roles("Cursor.execute", "/srv/app/psycopg_cursor.py").count(),
            0
        );
    }

    #[test]
    fn lazy_loads_are_the_loaders_entry_only() {
        let file = "sqlalchemy/orm/strategies.py";
        let lazy = Some(DbCall::LazyLoad(Orm::SqlAlchemy));
        assert_eq!(
            database_call("_LazyLoader._load_for_state", &format!("{SITE}/{file}")),
            lazy
        );
        assert_eq!(
            database_call("_load_for_state", &format!("{SITE}/{file}")),
            lazy
        );
        assert_eq!(
            database_call("_LazyLoader._emit_lazyload", &format!("{SITE}/{file}")),
            None
        );
        assert_eq!(
            database_call(
                "ColumnLoader.create_row_processor",
                &format!("{SITE}/{file}")
            ),
            None
        );
    }

    #[test]
    fn request_paths_match_the_routes_serving_them() {
        assert!(route_matches(
            "/boards/{board}/players/{player}",
            "/boards/galaxy/players/p1658"
        ));
        assert!(route_matches("/claims/<int:claim_id>", "/claims/{id}"));
        assert!(route_matches(
            "/adjusters/<int:id>/queue",
            "/adjusters/{id}/queue"
        ));
        assert!(route_matches(
            "/tiles/<int:z>/<int:x>/<int:y>.png",
            "/tiles/{id}/{id}/21441.png"
        ));
        assert!(route_matches(
            "/articles/<slug:slug>",
            "/articles/story-178"
        ));
        assert!(route_matches("/orders", "/orders"));
        assert!(!route_matches("/tiles/<int:y>.png", "/tiles/21441.jpg"));
        assert!(!route_matches("/tiles/<int:y>.png", "/tiles/.png"));
        assert!(!route_matches("/tiles/<int:y>.png", "/tiles/{id}"));
        assert!(!route_matches(
            "/boards/{board}/top",
            "/boards/galaxy/players/p1"
        ));
        assert!(!route_matches("/users/me", "/users/{id}"));
        assert!(!route_matches("/users/{id}", "/orders/7"));
        assert!(!route_matches("/files/<path:name>", "/files/a"));
        assert!(!route_matches("/files/{name:path}", "/files/a"));
    }

    #[test]
    fn frameworks_are_told_by_their_package() {
        let framework = |file: &str| {
            find_role("anything", file, |role| match role {
                Role::Framework(framework) => Some(framework.name()),
                _ => None,
            })
        };
        assert_eq!(
            framework(&format!("{SITE}/fastapi/encoders.py")),
            Some("FastAPI")
        );
        assert_eq!(
            framework(&format!("{SITE}/django/core/handlers/base.py")),
            Some("Django")
        );
        assert_eq!(framework(&format!("{SITE}/pydantic/main.py")), None);
        assert_eq!(framework("/srv/app/django/views.py"), None);
    }

    #[test]
    fn worker_classes_come_from_gunicorn_and_uvicorn_files() {
        let class = |file: &str| {
            find_role("anything", &format!("{SITE}/{file}"), |role| match role {
                Role::Worker { class, wsgi } => Some((class, wsgi)),
                _ => None,
            })
        };
        assert_eq!(
            class("gunicorn/workers/sync.py"),
            Some((WorkerClass::Sync, true))
        );
        assert_eq!(
            class("gunicorn/workers/gthread.py"),
            Some((WorkerClass::Concurrent, true))
        );
        assert_eq!(
            class("gunicorn/workers/ggevent.py"),
            Some((WorkerClass::Concurrent, false))
        );
        assert_eq!(
            class("uvicorn/workers.py"),
            Some((WorkerClass::Concurrent, false))
        );
        assert_eq!(class("gunicorn/workers/base.py"), None);
        assert_eq!(class("gunicorn/workers/workertmp.py"), None);
        assert_eq!(class("gunicorn/arbiter.py"), None);
    }

    #[test]
    fn database_calls_are_recognised() {
        let of = |function: &str, file: &str| database_call(function, &format!("{SITE}/{file}"));
        let sqlalchemy = "sqlalchemy/orm/session.py";
        assert_eq!(
            of("Session.get", sqlalchemy),
            Some(DbCall::Read(DbApi::SqlAlchemy))
        );
        assert_eq!(
            of("Session.commit", sqlalchemy),
            Some(DbCall::Write(DbApi::SqlAlchemy))
        );
        assert_eq!(of("Session.add", sqlalchemy), None);
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
                "ForwardManyToOneDescriptor.__get__",
                "django/db/models/fields/related_descriptors.py"
            ),
            Some(DbCall::LazyLoad(Orm::Django))
        );
        assert_eq!(
            of("Cursor.execute", "psycopg/cursor.py"),
            Some(DbCall::Read(DbApi::Driver))
        );
    }

    #[test]
    fn statement_executions_are_recognised() {
        let executes = |function: &str, file: &str| {
            plays(
                function,
                &format!("{SITE}/{file}"),
                Role::StatementExecution,
            )
        };
        assert!(executes("Cursor.execute", "psycopg/cursor.py"));
        assert!(executes("executemany", "psycopg/cursor.py"));
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
        assert!(!plays(
            "Cursor.execute",
            "/srv/app/cursor.py",
            Role::StatementExecution
        ));
    }

    #[test]
    fn statement_arguments_name_the_sql_parameter() {
        let arguments = |function: &str, file: &str| {
            statement_arguments(function, &format!("{SITE}/{file}")).map(|a| (a.sql, a.parameters))
        };
        assert_eq!(
            arguments("Cursor.execute", "psycopg/cursor.py"),
            Some(("query", Some("params")))
        );
        assert_eq!(
            arguments("execute", "psycopg/cursor.py"),
            Some(("query", Some("params")))
        );
        assert_eq!(
            arguments("CursorWrapper.execute", "django/db/backends/utils.py"),
            Some(("sql", Some("params")))
        );
        assert_eq!(
            arguments(
                "DefaultDialect.do_execute_no_params",
                "sqlalchemy/engine/default.py"
            ),
            Some(("statement", None))
        );
        assert_eq!(arguments("Cursor.fetchall", "psycopg/cursor.py"), None);
        assert_eq!(arguments("Cursor.executemany", "psycopg/cursor.py"), None);
        assert_eq!(
            statement_arguments("Cursor.execute", "/srv/app/cursor.py"),
            None
        );
    }

    #[test]
    fn every_row_is_reachable() {
        for known in KNOWN_CODE {
            if let Place::FileEnd(end) = known.place {
                let file = format!("{SITE}/{}", end.trim_start_matches('/'));
                let function = match known.functions {
                    All => "anything",
                    Named(names) => names[0],
                };
                assert!(
                    roles(function, &file).any(|role| role == known.role),
                    "{} {:?} is shadowed",
                    known.library,
                    known.role
                );
            }
        }
    }
}
