//! `pydx doctor --format html` opened in a real browser (headless
//! Chromium): the page draws itself offline, its flamegraph zooms, resets,
//! searches and switches views, its tables and annotated source are there,
//! and names from the target render as text, never as markup.

use std::path::{Path, PathBuf};
use std::process::Command;

use pydx_profile::{
    write_pprof, Activity, LabelSetId, Meta, ProcessMeta, Profile, SampleKey, SampleState, Work,
};
use pydx_testkit::{examples_python, interpreter};
use serde_json::Value;

/// The browser: Debian's `chromium`.
fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("chromium is installed (scripts/setup-test-env.sh installs it)")
}

/// Headless Chromium, without anything of its own reaching the network.
const CHROMIUM_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// Runs headless Chromium with a fresh profile and `args`; its output.
fn run_chromium(args: &[String]) -> Vec<u8> {
    let user_data = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", user_data.path().display()))
        .args(args)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The page's DOM after its script ran, opened at `page#fragment`.
fn rendered_dom(page: &Path, fragment: &str) -> String {
    let url = format!("file://{}#{fragment}", page.display());
    String::from_utf8(run_chromium(&["--dump-dom".into(), url])).unwrap()
}

/// What the page's self-test saw (see `report.js`).
fn self_test(dom: &str) -> Value {
    let start = dom
        .find("<pre id=\"pydx-selftest\">")
        .unwrap_or_else(|| panic!("the page's script did not finish:\n{dom:.3000}"));
    let text = &dom[start + "<pre id=\"pydx-selftest\">".len()..];
    let end = text.find("</pre>").unwrap();
    let unescaped = text[..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&unescaped).unwrap_or_else(|e| panic!("{e}: {}", &text[..end]))
}

/// Runs `pydx ARGS` and fails the test if it fails.
fn pydx<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_pydx"))
        .args(args)
        .output()
        .expect("run pydx");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The page opened at `#selftest=NEEDLE`: its DOM and what its self-test saw.
fn opened(page: &Path, needle: &str) -> (String, Value) {
    let dom = rendered_dom(page, &format!("selftest={needle}"));
    let seen = self_test(&dom);
    // No script error while the page drew itself and the self-test drove
    // it (requests are the content security policy's to block).
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    (dom, seen)
}

/// Saves a screenshot of `page` as a test artifact, `NAME.png` in the
/// target's temporary folder, and checks that something was drawn.
fn screenshot(page: &Path, name: &str) {
    let artifact = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    run_chromium(&[
        "--window-size=1280,1600".into(),
        format!("--screenshot={}", artifact.display()),
        format!("file://{}", page.display()),
    ]);
    let size = std::fs::metadata(&artifact).map_or(0, |m| m.len());
    assert!(size > 20_000, "{} is {size} bytes", artifact.display());
}

#[test]
fn a_real_report_draws_itself_in_a_browser() {
    let python = examples_python();
    let script = python.install_example("hot_spot.py");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let saved = dir.path().join("hot.pprof");
    let mut args = vec!["doctor".to_string(), "-o".into()];
    args.extend([page.display().to_string(), "--save".into()]);
    args.extend([saved.display().to_string(), "--".into()]);
    args.extend(python.argv(&[&script, "2"]));
    pydx(&args);

    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched.
    for outside in ["src=\"http", "href=\"http", "<link", "import(", "fetch("] {
        assert!(!html.contains(outside), "the page loads {outside}");
    }

    let json = pydx(["doctor", saved.to_str().unwrap(), "-f", "json"]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let findings = report["report"]["findings"].as_array().unwrap().len();

    let (dom, seen) = opened(&page, "tokenize");
    let drawn = seen["drawn"].as_u64().unwrap();
    assert!(drawn >= 4, "{seen}");
    assert!(!seen["zoomedInto"].as_str().unwrap().is_empty(), "{seen}");
    assert!(seen["drawnZoomed"].as_u64().unwrap() < drawn, "{seen}");
    assert_eq!(seen["drawnAfterReset"].as_u64(), Some(drawn), "{seen}");
    assert!(seen["matched"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["views"]["cpu"].as_u64().unwrap() >= 4, "{seen}");
    assert!(
        seen["views"]["wall"].as_u64() >= seen["views"]["cpu"].as_u64(),
        "{seen}"
    );
    assert_eq!(seen["findings"].as_u64(), Some(findings as u64), "{seen}");
    // A finding's location shows its function in the flamegraph.
    assert!(findings >= 1, "{report:#}");
    assert!(seen["findingLinkMatched"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(seen["firstBySelf"], "tokenize", "{seen}");
    assert!(seen["timelineRows"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["timelineOnCpu"].as_u64().unwrap() >= 1, "{seen}");
    // The hottest function's source, line by line, with the line the
    // hot-spot finding names among its rows.
    assert!(dom.contains("def tokenize(text):"), "no annotated source");
    let hot_line = report["report"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "PYDX-CPU002")
        .and_then(|f| f["location"]["source"].as_str())
        .unwrap_or_else(|| panic!("no hot-spot finding with its source: {report:#}"));
    let shown = hot_line
        .trim()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        dom.contains(&shown),
        "the hot line `{hot_line}` is not shown"
    );
    assert!(dom.contains("Hottest functions, line by line"));
    assert!(html.contains("Content-Security-Policy"));
    screenshot(&page, "html-report");
}

#[test]
fn record_writes_the_page_too() {
    let python = examples_python();
    let script = python.install_example("hot_spot.py");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("profile.html");
    let mut args = vec![
        "record".to_string(),
        "-o".into(),
        page.display().to_string(),
    ];
    args.push("--".into());
    args.extend(python.argv(&[&script, "2"]));
    pydx(&args);
    let (dom, seen) = opened(&page, "tokenize");
    assert!(seen["drawn"].as_u64().unwrap() >= 4, "{seen}");
    assert_eq!(seen["firstBySelf"], "tokenize", "{seen}");
    assert!(dom.contains("def tokenize(text):"), "no annotated source");
}

/// A recording of two processes: the flamegraph can show either alone.
#[test]
fn the_flamegraph_shows_one_process_at_a_time() {
    let python = interpreter("pyenv-3.12");
    let script = python.install_script("parent_and_child.py");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("processes.html");
    let mut args = vec!["record".to_string(), "--subprocesses".into(), "-o".into()];
    args.extend([page.display().to_string(), "--".into()]);
    args.extend(python.argv(&[&script, "2"]));
    pydx(&args);
    let (_, seen) = opened(&page, "child_work");
    let processes = seen["processes"]
        .as_object()
        .unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(processes.len(), 3, "all and two processes: {seen}");
    let all = &processes["all"];
    assert!(all["matched"].as_u64().unwrap() >= 1, "{seen}");
    let (mut with_child, mut without_child) = (0, 0);
    for (name, view) in processes.iter().filter(|(name, _)| *name != "all") {
        assert!(name.contains("parent_and_child.py"), "{name}");
        let drawn = view["drawn"].as_u64().unwrap();
        assert!(
            drawn >= 3 && drawn < all["drawn"].as_u64().unwrap(),
            "{seen}"
        );
        match view["matched"].as_u64().unwrap() {
            0 => without_child += 1,
            _ => with_child += 1,
        }
    }
    assert_eq!((with_child, without_child), (1, 1), "{seen}");
}

#[test]
fn a_diff_page_shows_the_fix() {
    let python = examples_python();
    let dir = tempfile::tempdir().unwrap();
    let mut saved = Vec::new();
    for example in ["repeated_computation.py", "repeated_computation_fixed.py"] {
        let script = python.install_example(example);
        let to = dir.path().join(format!("{example}.pb.gz"));
        let mut args = vec!["doctor".to_string(), "--save".into()];
        args.extend([to.display().to_string(), "--".into()]);
        args.extend(python.argv(&[&script, "3"]));
        pydx(&args);
        saved.push(to.display().to_string());
    }
    let page = dir.path().join("diff.html");
    let page_name = page.display().to_string();
    pydx(["diff", &saved[0], &saved[1], "-o", &page_name]);
    let (_, seen) = opened(&page, "shipping_quote");
    assert!(seen["drawn"].as_u64().unwrap() >= 3, "{seen}");
    assert!(seen["shrank"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["matched"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(seen["matchShrank"], true, "{seen}");
    assert_eq!(seen["zoomedInto"], "shipping_quote", "{seen}");
    assert_eq!(seen["drawnAfterReset"], seen["drawn"], "{seen}");
    assert_eq!(seen["gone"], 1, "{seen}");
    assert!(
        seen["cpuChange"].as_str().unwrap().starts_with('-'),
        "{seen}"
    );
}

/// Names a hostile or broken target could give its code and threads.
const HOSTILE: [&str; 4] = [
    "<script>alert(1)</script>",
    "\"quoted\" 'name' </pre></script>",
    "ünïcödé ✓ \u{2028} name",
    "<img src=x onerror=alert(2)>",
];

#[test]
fn names_from_the_target_render_as_text() {
    let mut profile = Profile::new(Meta {
        rate_hz: 100.0,
        processes: vec![ProcessMeta {
            pid: 7,
            command: "python <b>app</b>.py".into(),
            python_version: "3.12.1".into(),
            ..ProcessMeta::default()
        }],
        ..Meta::default()
    });
    let long = "x".repeat(1 << 20);
    let root = profile.frame("<module>", "/app/<main>.py", 1, 1);
    let thread = profile.thread(7, 7, 1, Some("<i>thread</i>"));
    let endpoint = profile.work_labels(&Work {
        endpoint: Some("GET /<img src=x onerror=alert(3)>"),
        ..Work::default()
    });
    for (n, name) in HOSTILE.iter().copied().chain([long.as_str()]).enumerate() {
        let frame = profile.frame(name, &format!("/app/{name}.py"), 10, 9);
        let stack = profile.stack_from_root([root, frame]);
        let key = SampleKey {
            thread,
            stack,
            state: SampleState {
                activity: Activity::OnCpu,
                holds_gil: true,
            },
            labels: if n == 0 { endpoint } else { LabelSetId(0) },
        };
        profile.add_samples(n as u64 * 10_000_000, key, 20 + n as u64);
    }
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("hostile.pprof");
    write_pprof(&profile, std::fs::File::create(&saved).unwrap()).unwrap();
    let page = dir.path().join("hostile.html");
    pydx([
        "doctor",
        saved.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(
        size < 200_000,
        "a 1 MB name is cut: the page is {size} bytes"
    );

    let (dom, seen) = opened(&page, "alert");
    assert!(seen["drawn"].as_u64().unwrap() >= 5, "{seen}");
    assert!(seen["matched"].as_u64().unwrap() >= 2, "{seen}");
    // Choosing the endpoint, or clicking its row in the endpoint table,
    // draws its samples only.
    let endpoint = "GET /<img src=x onerror=alert(3)>";
    let all = seen["endpoints"]["all"].as_u64().unwrap();
    let one = seen["endpoints"][endpoint].as_u64().unwrap();
    assert!(one >= 2 && one != all, "{seen}");
    assert_eq!(seen["endpointLink"]["selected"], endpoint, "{seen}");
    assert_eq!(seen["endpointLink"]["drawn"].as_u64(), Some(one), "{seen}");
    for markup in ["<script>alert", "<img src=x", "<i>thread", "<b>app"] {
        assert!(!dom.contains(markup), "{markup} was parsed as markup");
    }
    for text in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;i&gt;thread&lt;/i&gt;",
        "ünïcödé ✓",
    ] {
        assert!(dom.contains(text), "{text} is not shown as text");
    }
}
