//! Per-request attribution: samples of a thread serving an HTTP request
//! carry its endpoint, read from the WSGI environ on the thread's stack,
//! and `pydx doctor` reports time per endpoint. Checked on a real Flask
//! app served by a real gunicorn under load, whose endpoints have a known
//! relative cost.

use std::process::Command;
use std::time::{Duration, Instant};

use pydx_testkit::{marker_line, Gunicorn};
use serde_json::Value;

#[test]
fn doctor_reports_time_per_endpoint_of_a_flask_app_under_gunicorn() {
    let server = Gunicorn::start("flask_app.py", "flask_app:app", 2);
    let doctor = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args([
            "doctor",
            "--subprocesses",
            "--duration",
            "4",
            "--format",
            "json",
            "--pid",
            &server.master.id().to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The load: as many orders as reports, one after the other.
    let until = Instant::now() + Duration::from_millis(3800);
    let (mut orders, mut reports) = (0, 0);
    while Instant::now() < until {
        if server.get(&format!("/orders/{}", 1000 + orders)).is_some() {
            orders += 1;
        }
        if server.get("/report").is_some() {
            reports += 1;
        }
    }
    let output = doctor.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        orders > 20 && reports > 20,
        "{orders} orders, {reports} reports"
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let endpoints = json["report"]["endpoints"].as_array().unwrap().clone();
    let find = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["endpoint"] == name)
            .unwrap_or_else(|| panic!("no endpoint {name}: {endpoints:#?}"))
            .clone()
    };
    let (order, report) = (find("GET /orders/{id}"), find("GET /report"));
    let samples = |e: &Value| e["samples"].as_u64().unwrap_or(0);
    // A report is five orders' worth of work; with the framework's own
    // per-request cost on top, its share is well over twice an order's.
    assert!(
        samples(&report) > 2 * samples(&order),
        "report {} vs order {} samples",
        samples(&report),
        samples(&order)
    );
    let burn_line = u64::from(marker_line("flask_app.py", "LINE:burn"));
    for endpoint in [&order, &report] {
        let top = &endpoint["top_functions"][0];
        assert_eq!(top["function"], "burn", "{endpoint:#}");
        assert_eq!(top["line"], burn_line, "{endpoint:#}");
        assert!(top["file"].as_str().unwrap().ends_with("flask_app.py"));
    }
}
