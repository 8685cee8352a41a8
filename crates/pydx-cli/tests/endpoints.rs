//! Per-request attribution: samples of a thread serving an HTTP request
//! carry its endpoint, read from the WSGI environ on the thread's stack,
//! and `pydx doctor` reports time per endpoint. Checked on a real Flask
//! app served by a real gunicorn under load, whose endpoints have a known
//! relative cost.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pydx_testkit::{examples_dir, marker_line, web_python, Postgres, Redis, WebServer};
use serde_json::Value;

#[test]
fn doctor_reports_time_per_endpoint_of_a_flask_app_under_gunicorn() {
    let server = WebServer::gunicorn("flask_app.py", "flask_app:app", 2);
    // The load: as many orders as reports, one after the other.
    let (mut orders, mut reports) = (0, 0);
    let report = doctor_under_load(&server, || {
        if server.get(&format!("/orders/{}", 1000 + orders)).is_some() {
            orders += 1;
        }
        if server.get("/report").is_some() {
            reports += 1;
        }
    });
    assert!(
        orders > 20 && reports > 20,
        "{orders} orders, {reports} reports"
    );
    let endpoints = report["endpoints"].as_array().unwrap().clone();
    let find = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["endpoint"] == name)
            .unwrap_or_else(|| panic!("no endpoint {name}: {endpoints:#?}"))
            .clone()
    };
    let (order, report) = (find("GET /orders/<int:order_id>"), find("GET /report"));
    let samples = |e: &Value| e["samples"].as_u64().unwrap_or(0);
    // A report is five orders' worth of work; with the framework's own
    // per-request cost on top, its share is well over twice an order's.
    assert!(
        samples(&report) > 2 * samples(&order),
        "report {} vs order {} samples",
        samples(&report),
        samples(&order)
    );
    // The loop's two lines (its header and its body) share the time.
    let body = u64::from(marker_line("flask_app.py", "LINE:burn"));
    for endpoint in [&order, &report] {
        let top = &endpoint["top_functions"][0];
        assert_eq!(top["function"], "burn", "{endpoint:#}");
        let line = top["line"].as_u64().unwrap_or(0);
        assert!(line == body || line == body - 1, "{endpoint:#}");
        assert!(top["file"].as_str().unwrap().ends_with("flask_app.py"));
    }
}

/// Runs `pydx doctor` on a gunicorn serving `app` from examples/web with a
/// real PostgreSQL and Redis, under a load of `/orders/N` requests.
fn doctor_connections_app(app: &str) -> Value {
    let postgres = Postgres::start();
    let redis = Redis::start();
    let file = examples_dir().join("web").join(format!("{app}.py"));
    let server = WebServer::gunicorn_with(
        &file,
        &format!("{app}:app"),
        &["--workers", "2"],
        &[
            ("PYDX_PG_DSN", postgres.dsn()),
            ("PYDX_REDIS_PORT", redis.port.to_string()),
        ],
    );
    let mut served = 0;
    let report = doctor_under_load(&server, || {
        if server.get(&format!("/orders/{served}")).is_some() {
            served += 1;
        }
    });
    assert!(served > 50, "{app}: only {served} requests served");
    report
}

/// Runs `pydx doctor --subprocesses` on the server for four seconds while
/// calling `load` again and again, and returns the JSON report.
fn doctor_under_load(server: &WebServer, load: impl FnMut()) -> Value {
    doctor_under_load_for(4, server, load)
}

/// [`doctor_under_load`] for `seconds`.
fn doctor_under_load_for(seconds: u64, server: &WebServer, mut load: impl FnMut()) -> Value {
    let doctor = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args([
            "doctor",
            "--subprocesses",
            "--duration",
            &seconds.to_string(),
        ])
        .args(["--format", "json", "--pid", &server.master.id().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(seconds) - Duration::from_millis(200);
    while Instant::now() < until {
        load();
    }
    let output = doctor.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Value>(&output.stdout).unwrap()["report"].clone()
}

#[test]
fn connections_opened_per_request_are_found_and_a_pool_fixes_them() {
    let report = doctor_connections_app("connections");
    let findings: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "PYDX-CONN001")
        .collect();
    let source = std::fs::read_to_string(examples_dir().join("web/connections.py")).unwrap();
    let line_of = |snippet: &str| {
        source
            .lines()
            .position(|l| l.contains(snippet))
            .map(|i| i as u64 + 1)
            .unwrap()
    };
    let postgres = findings
        .iter()
        .find(|f| f["title"].as_str().unwrap().contains("PostgreSQL"))
        .unwrap_or_else(|| panic!("no PostgreSQL finding: {report:#}"));
    assert_eq!(
        postgres["location"]["line"],
        line_of("with psycopg.connect(DSN) as conn:")
    );
    assert!(postgres["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("examples/web/connections.py"));
    assert!(postgres["fix"]
        .as_str()
        .unwrap()
        .contains("psycopg_pool.ConnectionPool"));
    assert!(
        postgres["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("GET /orders/<int:order_id>")),
        "{postgres:#}"
    );

    // redis-py connects at the client's first command; the finding points
    // where the client is made, once per request.
    let redis = findings
        .iter()
        .find(|f| f["title"].as_str().unwrap().contains("Redis"))
        .unwrap_or_else(|| panic!("no Redis finding: {report:#}"));
    assert_eq!(
        redis["location"]["line"],
        line_of("cache = redis.Redis(port=REDIS_PORT)")
    );
    assert!(redis["fix"].as_str().unwrap().contains("at import"));

    let fixed = doctor_connections_app("connections_fixed");
    let codes: Vec<&Value> = fixed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["code"])
        .collect();
    assert!(
        codes.is_empty(),
        "the pooled app still gets {codes:?}: {fixed:#}"
    );
}

/// The line of `examples/web/<app>.py` that contains `snippet`.
fn web_line(app: &str, snippet: &str) -> u64 {
    let source = std::fs::read_to_string(examples_dir().join(format!("web/{app}.py"))).unwrap();
    source
        .lines()
        .position(|l| l.contains(snippet))
        .map(|i| i as u64 + 1)
        .unwrap_or_else(|| panic!("{snippet:?} not in {app}.py"))
}

/// Seeds the database with `<app>.py seed` and serves the app with gunicorn.
fn serve_db_app(postgres: &Postgres, app: &str) -> WebServer {
    serve_db_app_with(postgres, app, &[])
}

/// [`serve_db_app`] with more environment variables for the app.
fn serve_db_app_with(postgres: &Postgres, app: &str, extra_env: &[(&str, String)]) -> WebServer {
    serve_db_app_on(WebServer::gunicorn_with, postgres, app, extra_env)
}

/// Seeds the database with `<app>.py seed` and serves the app with two
/// workers of the server `start` starts.
fn serve_db_app_on(
    start: StartServer,
    postgres: &Postgres,
    app: &str,
    extra_env: &[(&str, String)],
) -> WebServer {
    let file = examples_dir().join("web").join(format!("{app}.py"));
    let mut env = vec![
        ("PYDX_PG_URL", postgres.sqlalchemy_url()),
        ("PYDX_PG_PORT", postgres.port.to_string()),
    ];
    env.extend_from_slice(extra_env);
    let seeded = web_python()
        .command(&[file.to_str().unwrap(), "seed"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .unwrap();
    assert!(seeded.success(), "{app} seed failed");
    start(&file, &format!("{app}:app"), &["--workers", "2"], &env)
}

/// Seeds the database with `<app>.py seed`, serves the app with gunicorn
/// and runs `pydx doctor` under a load of `GET route`.
fn doctor_db_app(postgres: &Postgres, app: &str, route: &str) -> Value {
    doctor_on_route(&serve_db_app(postgres, app), app, route)
}

/// Runs `pydx doctor` on `server` (serving `app`) under a load of `GET
/// route`, one request after another.
fn doctor_on_route(server: &WebServer, app: &str, route: &str) -> Value {
    let mut served = 0;
    let report = doctor_under_load(server, || {
        if server.get(route).is_some() {
            served += 1;
        }
    });
    assert!(served > 20, "{app}: only {served} requests served");
    report
}

#[test]
fn lazy_loads_in_a_loop_are_found_and_joinedload_fixes_them() {
    let postgres = Postgres::start();
    let report = doctor_db_app(&postgres, "orders_sqlalchemy", "/orders");
    check_lazy_customer_loads(&report, "orders_sqlalchemy");

    let fixed = doctor_db_app(&postgres, "orders_sqlalchemy_fixed", "/orders");
    assert!(
        fixed["findings"].as_array().unwrap().is_empty(),
        "the fixed app still gets findings: {fixed:#}"
    );
}

#[test]
fn lazy_loads_in_a_fastapi_thread_pool_endpoint_are_found_and_joinedload_fixes_them() {
    let postgres = Postgres::start();
    let doctor = |app: &str| {
        let server = serve_db_app_on(WebServer::uvicorn_with, &postgres, app, &[]);
        doctor_on_route(&server, app, "/orders")
    };
    // The `def` endpoint runs in anyio's worker threads: its samples are
    // still charged to GET /orders.
    check_lazy_customer_loads(
        &doctor("orders_fastapi_sqlalchemy"),
        "orders_fastapi_sqlalchemy",
    );

    let fixed = doctor("orders_fastapi_sqlalchemy_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

/// Checks that `report` has one finding, the lazy loads of `order.customer`
/// in the loop of `examples/web/<app>.py`, with joinedload as the fix.
fn check_lazy_customer_loads(report: &Value, app: &str) {
    assert_eq!(codes(report), ["PYDX-DB001"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["location"]["line"],
        web_line(app, "order.customer.name")
    );
    assert!(
        finding["title"]
            .as_str()
            .unwrap()
            .contains("`order.customer`"),
        "{finding:#}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(fix.contains("joinedload(<Model>.customer)"), "{fix}");
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("GET /orders"), "{evidence}");
    assert!(
        evidence.contains(&format!(
            "{app}.py:{}",
            web_line(app, "for order in session.scalars(")
        )),
        "{evidence}"
    );
}

#[test]
fn queries_and_writes_per_item_are_found_and_bulk_access_fixes_them() {
    let postgres = Postgres::start();
    let report = doctor_db_app(&postgres, "stock_sqlalchemy", "/restock");
    let mut codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["PYDX-DB002", "PYDX-DB003"], "{report:#}");
    let line_of = |code: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code)
            .map(|f| f["location"]["line"].as_u64().unwrap_or(0))
    };
    assert_eq!(
        line_of("PYDX-DB002"),
        Some(web_line(
            "stock_sqlalchemy",
            "item = session.get(Item, item_id)"
        ))
    );
    assert_eq!(
        line_of("PYDX-DB003"),
        Some(web_line("stock_sqlalchemy", "session.commit()"))
    );

    let fixed = doctor_db_app(&postgres, "stock_sqlalchemy_fixed", "/restock");
    assert!(
        fixed["findings"].as_array().unwrap().is_empty(),
        "the fixed app still gets findings: {fixed:#}"
    );
}

/// The codes of a report's findings.
fn codes(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

/// Serves `<app>.py` with two gunicorn workers and runs `pydx doctor` for
/// ten seconds (memory is read twice a second) under a load of reports;
/// returns the report and the number of requests the load got answers to.
fn doctor_report_history(app: &str) -> (Value, u64) {
    let file = examples_dir().join("web").join(format!("{app}.py"));
    let server = WebServer::gunicorn_with(&file, &format!("{app}:app"), &["--workers", "2"], &[]);
    let mut served = 0;
    let report = doctor_under_load_for(10, &server, || {
        if server.get(&format!("/report/{served}")).is_some() {
            served += 1;
        }
    });
    assert!(served > 200, "{app}: only {served} requests served");
    (report, served)
}

#[test]
fn worker_memory_growing_with_requests_is_found_and_a_bounded_history_fixes_it() {
    let (report, served) = doctor_report_history("report_history");
    assert_eq!(codes(&report), ["PYDX-MEM001"], "{report:#}");
    let finding = &report["findings"][0];
    // Each request keeps a list of 600 floats (32 bytes each in pymalloc's
    // size classes, plus 8 for the list's pointer): at least 24 MiB per
    // 1,000 requests, measured against the workers' own request counts.
    let mut counted = 0;
    for line in finding["evidence"].as_array().unwrap() {
        let line = line.as_str().unwrap();
        let Some((before, after)) = line.split_once(" MiB per 1,000 requests (") else {
            continue;
        };
        let per_thousand: f64 = before.rsplit(", ").next().unwrap().parse().unwrap();
        assert!((20.0..50.0).contains(&per_thousand), "{line}");
        let requests: u64 = after.split(' ').next().unwrap().parse().unwrap();
        assert!(
            requests > 0 && requests <= served,
            "{line}: {served} served"
        );
        counted += 1;
    }
    assert!(counted > 0, "no growth per request: {finding:#}");
    // One worker or both, as gunicorn's workers happened to share the load.
    let title = finding["title"].as_str().unwrap();
    assert!(
        title.starts_with("memory of a gunicorn worker grows by")
            || title.starts_with("memory of 2 of 2 gunicorn workers grows by"),
        "{finding:#}"
    );
    let location = &finding["location"];
    assert_eq!(location["function"], "report", "{finding:#}");
    assert!(location["file"]
        .as_str()
        .unwrap()
        .ends_with("web/report_history.py"));
    // The handler's busiest line (memory is not attributed to lines: the
    // finding names the process and where its requests spend their time).
    let line = location["line"].as_u64().unwrap();
    let def = web_line("report_history", "def report(customer):");
    assert!((def + 1..=def + 3).contains(&line), "{finding:#}");
    assert!(finding["fix"].as_str().unwrap().contains("--max-requests"));

    let (fixed, _) = doctor_report_history("report_history_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

/// Serves `examples/web/<app>.py` with gunicorn `options` and runs `pydx
/// doctor` while `clients` clients request `path` concurrently, enough to
/// keep every sync worker busy.
fn doctor_saturated(app: &str, options: &[&str], clients: usize, path: &str) -> Value {
    let file = examples_dir().join("web").join(format!("{app}.py"));
    let server = WebServer::gunicorn_with(&file, &format!("{app}:app"), options, &[]);
    doctor_with_clients(&server, clients, |_| path.to_string())
}

/// Runs `pydx doctor` on `server` while `clients` clients request, each
/// again and again, the path `path_of(client)`.
fn doctor_with_clients(
    server: &WebServer,
    clients: usize,
    path_of: impl Fn(usize) -> String + Sync,
) -> Value {
    let stop = AtomicBool::new(false);
    let served = AtomicUsize::new(0);
    let start = Instant::now();
    let report = std::thread::scope(|scope| {
        for client in 0..clients {
            let (stop, served, path_of) = (&stop, &served, &path_of);
            scope.spawn(move || {
                let path = path_of(client);
                while !stop.load(Ordering::Relaxed) {
                    if server.get(&path).is_some() {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let report = doctor_under_load(server, || std::thread::sleep(Duration::from_millis(20)));
        stop.store(true, Ordering::Relaxed);
        report
    });
    let served = served.into_inner();
    assert!(served > 40, "only {served} requests served");
    // The workers' own count, read while sampling, goes at the rate the
    // clients got answers (measured over a longer time: the clients also
    // ran while pydx attached and wrote its report).
    let client_rate = served as f64 / start.elapsed().as_secs_f64();
    let counted_rate = report["summary"]["requests"]["per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no request count: {:#}", report["summary"]));
    assert!(
        (0.5..2.0).contains(&(counted_rate / client_rate)),
        "counted {counted_rate:.0} requests/s, clients got {client_rate:.0}/s"
    );
    report
}

#[test]
fn saturated_sync_workers_waiting_on_io_are_found_and_threads_fix_them() {
    let report = doctor_saturated("quotes", &["--workers", "2"], 8, "/quote/7");
    assert_eq!(codes(&report), ["PYDX-WORKER001"], "{report:#}");
    let finding = &report["findings"][0];
    assert!(
        finding["title"]
            .as_str()
            .unwrap()
            .starts_with("2 gunicorn sync workers are saturated but wait on I/O"),
        "{finding:#}"
    );
    // Where the workers wait: the program's innermost line in the requests
    // served off CPU (the stand-in for the upstream call).
    assert_eq!(finding["location"]["function"], "fetch_rate", "{finding:#}");
    assert_eq!(
        finding["location"]["line"],
        web_line("quotes", "time.sleep(0.04)")
    );
    assert!(finding["fix"]
        .as_str()
        .unwrap()
        .contains("--workers 2 --worker-class gthread --threads 8"));

    let fixed = doctor_saturated(
        "quotes",
        &[
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "8",
        ],
        8,
        "/quote/7",
    );
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn too_few_cpu_bound_workers_are_found_and_more_workers_fix_it() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(cpus >= 2, "the check needs a machine with two CPUs or more");
    let report = doctor_saturated("pricing", &["--workers", "1"], 4, "/price/3");
    check_one_worker_for_the_cpus(&report, "gunicorn", cpus);

    let enough = (cpus + 1).to_string();
    let fixed = doctor_saturated("pricing", &["--workers", &enough], 4, "/price/3");
    assert_eq!(worker_count_findings(&fixed).len(), 0, "{fixed:#}");
}

#[test]
fn record_draws_a_root_frame_per_endpoint_or_one_endpoint_alone() {
    let server = WebServer::gunicorn("flask_app.py", "flask_app:app", 2);
    let master = server.master.id().to_string();
    let record = |options: &[&str]| {
        let output = tempfile::NamedTempFile::new().unwrap();
        let recorder = Command::new(env!("CARGO_BIN_EXE_pydx"))
            .args([
                "record",
                "--subprocesses",
                "--duration",
                "3",
                "-f",
                "collapsed",
            ])
            .args(options)
            .args(["--pid", &master, "-o"])
            .arg(output.path())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_millis(2800);
        let mut served = 0;
        while Instant::now() < until {
            served += usize::from(server.get("/report").is_some());
            served += usize::from(server.get("/orders/7").is_some());
        }
        assert!(recorder.wait_with_output().unwrap().status.success());
        assert!(served > 20, "only {served} requests served");
        std::fs::read_to_string(output.path()).unwrap()
    };
    let per_endpoint = record(&["--endpoints"]);
    let roots: std::collections::BTreeSet<&str> = per_endpoint
        .lines()
        .filter_map(|line| line.split(';').nth(1))
        .filter(|frame| frame.starts_with("endpoint "))
        .collect();
    for endpoint in [
        "endpoint GET /orders/<int:order_id>",
        "endpoint GET /report",
    ] {
        assert!(roots.contains(endpoint), "{endpoint} in {roots:?}");
    }
    // The report's own code, and the server's part of serving it; never
    // the other endpoint's code.
    let report_only = record(&["--endpoint", "GET /report"]);
    assert!(
        report_only
            .lines()
            .any(|l| l.contains(";report (") && l.contains(";burn (")),
        "{report_only}"
    );
    // Without pausing the target, a sample's stack and the request read
    // from it are read microseconds apart; a worker that has just moved on
    // to the next request can pair the two, rarely.
    let samples = |pick: &dyn Fn(&str) -> bool| -> u64 {
        report_only
            .lines()
            .filter(|l| pick(l))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let other = samples(&|l| l.contains(";order ("));
    let all = samples(&|_| true);
    assert!(other * 50 <= all, "{other} of {all} samples: {report_only}");
}

/// Seeds and serves `app` and runs `pydx doctor` while users are looked up
/// one after another by different emails.
fn doctor_user_lookups(postgres: &Postgres, app: &str) -> Value {
    let server = serve_db_app(postgres, app);
    let mut served = 0;
    let report = doctor_under_load(&server, || {
        let email = format!("User{}@Example.com", 1 + served * 7919 % 1_000_000);
        if server.get(&format!("/users?email={email}")).is_some() {
            served += 1;
        }
    });
    assert!(served > 5, "{app}: only {served} requests served");
    report
}

#[test]
fn a_slow_query_is_found_with_its_sql_and_an_index_fixes_it() {
    let postgres = Postgres::start();
    let doctor = |app: &str| doctor_user_lookups(&postgres, app);
    let report = doctor("slow_query");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(codes, ["PYDX-DB004"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["location"]["line"],
        web_line("slow_query", "user = session.scalars(")
    );
    assert!(finding["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("examples/web/slow_query.py"));
    assert!(
        finding["cost"]["longest_ms"].as_f64().unwrap() >= 100.0,
        "{finding:#}"
    );
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("GET /users"), "{evidence}");
    // The SQL, as SQLAlchemy sent it to psycopg, read from the driver's frame.
    assert!(
        evidence.contains("FROM users WHERE lower(users.email) = %(lower_1)s"),
        "{evidence}"
    );
    // Each long wait is one call: the readings found the same parameters.
    assert!(evidence.contains("still running in"), "{evidence}");
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains("CREATE INDEX ON users (lower(email));"),
        "{fix}"
    );

    let fixed = doctor("slow_query_fixed");
    assert!(
        fixed["findings"].as_array().unwrap().is_empty(),
        "the fixed app still gets findings: {fixed:#}"
    );
}

/// Seeds and serves the Django example `app` with PostgreSQL and Redis, and
/// runs `pydx doctor` under a load of `GET route`.
fn doctor_django(postgres: &Postgres, redis: &Redis, app: &str, route: &str) -> Value {
    let server = serve_db_app_with(
        postgres,
        app,
        &[("PYDX_REDIS_PORT", redis.port.to_string())],
    );
    doctor_on_route(&server, app, route)
}

#[test]
fn django_relations_read_in_a_loop_are_found_and_select_or_prefetch_related_fixes_them() {
    let postgres = Postgres::start();
    let redis = Redis::start();
    let doctor = |app: &str, route: &str| doctor_django(&postgres, &redis, app, route);
    // A forward foreign key: select_related.
    let report = doctor("orders_django", "/orders");
    assert_eq!(codes(&report), ["PYDX-DB001"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["location"]["line"],
        web_line("orders_django", "order.customer.name")
    );
    assert!(finding["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("examples/web/orders_django.py"));
    let fix = finding["fix"].as_str().unwrap();
    assert!(fix.contains("select_related(\"customer\")"), "{fix}");
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("GET /orders"), "{evidence}");

    // A reverse foreign key's related manager: prefetch_related.
    let report = doctor("orders_django", "/orders/lines");
    assert_eq!(codes(&report), ["PYDX-DB001"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["location"]["line"],
        web_line("orders_django", "order.lines.all()")
    );
    assert!(
        finding["title"].as_str().unwrap().contains("`order.lines`"),
        "{finding:#}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(fix.contains("prefetch_related(\"lines\")"), "{fix}");

    for route in ["/orders", "/orders/lines"] {
        let fixed = doctor("orders_django_fixed", route);
        assert_eq!(codes(&fixed), Vec::<&str>::new(), "{route}: {fixed:#}");
    }
}

/// Serves `examples/web/<app>.py` with two uvicorn workers and runs `pydx
/// doctor` while four clients request `/quote/N` concurrently.
fn doctor_fastapi(app: &str) -> Value {
    doctor_uvicorn(app, &["--workers", "2"], "/quote")
}

/// Serves `examples/web/<app>.py` with uvicorn `options` and runs `pydx
/// doctor` while four clients request `<route>/N` concurrently.
fn doctor_uvicorn(app: &str, options: &[&str], route: &str) -> Value {
    let file = examples_dir().join("web").join(format!("{app}.py"));
    let server = WebServer::uvicorn_with(&file, &format!("{app}:app"), options, &[]);
    doctor_with_clients(&server, 4, |client| format!("{route}/{client}"))
}

#[test]
fn a_blocking_call_in_a_fastapi_coroutine_is_found_and_awaiting_fixes_it() {
    let report = doctor_fastapi("quotes_fastapi");
    // The endpoint is read from the ASGI scope on the coroutine's stack.
    assert_eq!(
        report["endpoints"][0]["endpoint"], "GET /quote/{product}",
        "{report:#}"
    );
    assert_eq!(codes(&report), ["PYDX-ASYNC001"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["location"]["line"],
        web_line("quotes_fastapi", "time.sleep(0.04)"),
        "{finding:#}"
    );
    assert!(finding["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("examples/web/quotes_fastapi.py"));
    // One finding for the call site, from both workers' event loops.
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("2 threads in 2 processes"), "{evidence}");
    assert!(evidence.contains("ran in coroutine quote"), "{evidence}");

    let fixed = doctor_fastapi("quotes_fastapi_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

/// How a test starts a web server: [`WebServer::gunicorn_with`] or
/// [`WebServer::uvicorn_with`].
type StartServer = fn(&Path, &str, &[&str], &[(&str, String)]) -> WebServer;

/// Serves `examples/web/<app>.py` with two workers started by `start`, and
/// runs `pydx doctor` while a client fetches `/catalog`, accepting gzip.
fn doctor_catalog(start: StartServer, app: &str) -> Value {
    let file = examples_dir().join("web").join(format!("{app}.py"));
    let server = start(&file, &format!("{app}:app"), &["--workers", "2"], &[]);
    let server = &server;
    let mut served = 0;
    let report = doctor_under_load(server, || {
        let response = server.request_with("/catalog", &["Accept-Encoding: gzip"]);
        if response.is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"))
        {
            served += 1;
        }
    });
    assert!(served > 20, "only {served} requests served");
    report
}

/// Checks that `report` has one finding, GZipMiddleware's cost on `GET
/// /catalog`, pointing at the line of `examples/web/<app>.py` that holds
/// `enabling`.
fn check_gzip_middleware_finding(report: &Value, app: &str, enabling: &str) {
    assert_eq!(codes(report), ["PYDX-WEB001"], "{report:#}");
    let finding = &report["findings"][0];
    let title = finding["title"].as_str().unwrap();
    assert!(title.starts_with("GZipMiddleware takes"), "{finding:#}");
    assert!(
        title.ends_with("of the CPU serving GET /catalog"),
        "{finding:#}"
    );
    // The finding points at the line that enables the middleware.
    assert_eq!(
        finding["location"]["line"],
        web_line(app, enabling),
        "{finding:#}"
    );
    assert!(finding["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with(&format!("examples/web/{app}.py")));
}

#[test]
fn a_middleware_costing_more_than_the_view_is_found_and_removing_it_fixes_it() {
    let doctor = |app| doctor_catalog(WebServer::gunicorn_with, app);
    let report = doctor("catalog_django");
    check_gzip_middleware_finding(
        &report,
        "catalog_django",
        "\"django.middleware.gzip.GZipMiddleware\"",
    );

    let fixed = doctor("catalog_django_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn a_pure_asgi_middleware_working_in_the_thread_pool_is_charged_to_its_endpoint() {
    let doctor = |app| doctor_catalog(WebServer::uvicorn_with, app);
    // Starlette's GZipMiddleware compresses in anyio's worker threads, whose
    // stacks hold no request: the job's task leads back to GET /catalog.
    let report = doctor("catalog_fastapi");
    check_gzip_middleware_finding(
        &report,
        "catalog_fastapi",
        "app.add_middleware(GZipMiddleware",
    );
    let stack = report["findings"][0]["stack"].to_string();
    assert!(stack.contains("GZipResponder._compress_body"), "{stack}");
    assert!(stack.contains("WorkerThread.run"), "{stack}");
    assert_eq!(
        report["endpoints"][0]["endpoint"], "GET /catalog",
        "{report:#}"
    );

    let fixed = doctor("catalog_fastapi_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn large_private_worker_memory_without_preload_is_found_and_preload_fixes_it() {
    let doctor = |options: &[&str]| {
        let file = examples_dir().join("web/postcodes.py");
        let server = WebServer::gunicorn_with(&file, "postcodes:app", options, &[]);
        let mut served = 0;
        let report = doctor_under_load(&server, || {
            if server
                .get(&format!("/postcode/{}", served * 7919))
                .is_some()
            {
                served += 1;
            }
        });
        assert!(served > 20, "only {served} requests served");
        report
    };
    let report = doctor(&["--workers", "2"]);
    assert_eq!(codes(&report), ["PYDX-WORKER003"], "{report:#}");
    let finding = &report["findings"][0];
    assert!(
        finding["title"]
            .as_str()
            .unwrap()
            .starts_with("2 gunicorn workers each hold"),
        "{finding:#}"
    );
    // The app's module: its handler, or its import when no request was
    // caught in a sample.
    assert!(
        finding["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("examples/web/postcodes.py"),
        "{finding:#}"
    );
    assert!(finding["fix"].as_str().unwrap().contains("--preload"));

    let fixed = doctor(&["--workers", "2", "--preload"]);
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn django_reads_and_saves_per_item_are_found_and_bulk_queries_fix_them() {
    let postgres = Postgres::start();
    let redis = Redis::start();
    let report = doctor_django(&postgres, &redis, "orders_django", "/restock");
    let mut found = codes(&report);
    found.sort_unstable();
    assert_eq!(found, ["PYDX-DB002", "PYDX-DB003"], "{report:#}");
    for finding in report["findings"].as_array().unwrap() {
        let (line, fix) = match finding["code"].as_str().unwrap() {
            "PYDX-DB002" => ("item = Item.objects.get(id=item_id)", "in_bulk"),
            _ => ("item.save()", "bulk_update"),
        };
        assert_eq!(
            finding["location"]["line"],
            web_line("orders_django", line),
            "{finding:#}"
        );
        assert!(
            finding["fix"].as_str().unwrap().contains(fix),
            "{finding:#}"
        );
    }

    let fixed = doctor_django(&postgres, &redis, "orders_django_fixed", "/restock");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn too_few_cpu_bound_uvicorn_workers_are_found_and_more_workers_fix_it() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(cpus >= 2, "the check needs a machine with two CPUs or more");
    let report = doctor_uvicorn("pricing_fastapi", &["--workers", "1"], "/price");
    check_one_worker_for_the_cpus(&report, "uvicorn", cpus);

    let enough = (cpus + 1).to_string();
    let fixed = doctor_uvicorn("pricing_fastapi", &["--workers", &enough], "/price");
    assert_eq!(worker_count_findings(&fixed).len(), 0, "{fixed:#}");
}

/// The PYDX-WORKER002 findings of a report.
fn worker_count_findings(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "PYDX-WORKER002")
        .collect()
}

/// Checks that a report says one CPU-bound `server` worker is too few for
/// `cpus`, pointing at the `price` handler.
fn check_one_worker_for_the_cpus(report: &Value, server: &str, cpus: usize) {
    let findings = worker_count_findings(report);
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(
        findings[0]["title"],
        format!("1 CPU-bound {server} worker for {cpus} CPUs: requests queue while CPUs idle")
    );
    assert_eq!(findings[0]["location"]["function"], "price", "{report:#}");
}

#[test]
fn framework_work_far_above_an_empty_handler_is_found_and_a_finished_response_fixes_it() {
    let doctor = |app: &str| {
        let file = examples_dir().join("web").join(format!("{app}.py"));
        let server =
            WebServer::uvicorn_with(&file, &format!("{app}:app"), &["--workers", "2"], &[]);
        doctor_with_clients(&server, 4, |_| "/orders".to_string())
    };
    let report = doctor("orders_fastapi");
    assert_eq!(codes(&report), ["PYDX-WEB002"], "{report:#}");
    let finding = &report["findings"][0];
    let title = finding["title"].as_str().unwrap();
    assert!(
        title.starts_with("FastAPI takes") && title.contains("(GET /orders: "),
        "{finding:#}"
    );
    // What the route's handler returns, which FastAPI converts object by
    // object, and jsonable_encoder as the heaviest part.
    assert_eq!(
        finding["location"]["line"],
        web_line("orders_fastapi", "return ORDERS"),
        "{finding:#}"
    );
    assert_eq!(
        finding["location"]["function"], "list_orders",
        "{finding:#}"
    );
    assert!(finding["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("examples/web/orders_fastapi.py"));
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("in jsonable_encoder ("), "{evidence}");
    assert!(finding["fix"].as_str().unwrap().contains("orjson.dumps"));

    // The fixed handler encodes on the event loop, request after request:
    // a saturated loop, not a blocked one (no PYDX-ASYNC001).
    let fixed = doctor("orders_fastapi_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn async_views_behind_wsgi_workers_are_found_and_serving_them_through_asgi_fixes_it() {
    let report = doctor_saturated("reviews_django", &["--workers", "2"], 4, "/reviews/7");
    assert_eq!(codes(&report), ["PYDX-WORKER004"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["title"],
        "async views behind WSGI workers: GET /reviews/<int:product> runs each request through async_to_sync"
    );
    // The async view, found on the event loop thread async_to_sync started.
    assert_eq!(finding["location"]["function"], "reviews", "{finding:#}");
    assert_eq!(
        finding["location"]["line"],
        web_line("reviews_django", "async def reviews(request, product):")
    );
    assert!(finding["fix"]
        .as_str()
        .unwrap()
        .contains("uvicorn --workers 2 reviews_django:app"));

    let file = examples_dir().join("web/reviews_django_fixed.py");
    let server =
        WebServer::uvicorn_with(&file, "reviews_django_fixed:app", &["--workers", "2"], &[]);
    let fixed = doctor_with_clients(&server, 4, |_| "/reviews/7".to_string());
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn a_slow_django_query_is_found_with_its_sql_and_an_index_fixes_it() {
    let postgres = Postgres::start();
    let report = doctor_user_lookups(&postgres, "users_django");
    assert_eq!(codes(&report), ["PYDX-DB004"], "{report:#}");
    let finding = &report["findings"][0];
    assert_eq!(
        finding["location"]["line"],
        web_line("users_django", "user = User.objects.get("),
        "{finding:#}"
    );
    assert!(finding["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("examples/web/users_django.py"));
    let evidence = finding["evidence"].to_string();
    assert!(evidence.contains("GET /users"), "{evidence}");
    // The SQL as Django's cursor wrapper sent it, read from its frame.
    assert!(
        evidence.contains(r#"FROM \"users\" WHERE UPPER(\"users\".\"email\"::text) = UPPER(%s)"#),
        "{evidence}"
    );
    let fix = finding["fix"].as_str().unwrap();
    assert!(
        fix.contains(r#"CREATE INDEX ON users (UPPER("email"::text));"#),
        "{fix}"
    );

    let fixed = doctor_user_lookups(&postgres, "users_django_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}

#[test]
fn django_connecting_per_request_is_found_and_conn_max_age_fixes_it() {
    let postgres = Postgres::start();
    let doctor = |app: &str| {
        let server = serve_db_app(&postgres, app);
        let mut served = 0;
        let report = doctor_under_load(&server, || {
            if server
                .get(&format!("/customers/{}", 1 + served % 100))
                .is_some()
            {
                served += 1;
            }
        });
        assert!(served > 50, "{app}: only {served} requests served");
        report
    };
    let report = doctor("profile_django");
    assert_eq!(codes(&report), ["PYDX-CONN001"], "{report:#}");
    let finding = &report["findings"][0];
    assert!(
        finding["title"].as_str().unwrap().contains("PostgreSQL"),
        "{finding:#}"
    );
    // Django connects inside the ORM call: the program's line is the query.
    assert_eq!(
        finding["location"]["line"],
        web_line(
            "profile_django",
            "customer = Customer.objects.get(pk=customer_id)"
        ),
        "{finding:#}"
    );
    assert!(finding["fix"].as_str().unwrap().contains("CONN_MAX_AGE"));
    let evidence = finding["evidence"].to_string();
    assert!(
        evidence.contains("GET /customers/<int:customer_id>"),
        "{evidence}"
    );

    let fixed = doctor("profile_django_fixed");
    assert_eq!(codes(&fixed), Vec::<&str>::new(), "{fixed:#}");
}
