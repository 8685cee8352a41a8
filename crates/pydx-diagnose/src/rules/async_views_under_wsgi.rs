//! PYDX-WORKER004: async views served by WSGI workers, each request run
//! through asgiref's `async_to_sync`.

use std::collections::{BTreeMap, HashMap};

use pydx_libraries::{Framework, Role};
use pydx_profile::FrameId;

use super::server_processes::{
    app_module, gunicorn_workers, handler_or_command, option_value, WorkerGroup,
};
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf, TimeUnit};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WORKER004",
    name: "async-views-under-wsgi",
    summary: "Async views are served by WSGI workers: every request starts a thread and an event loop",
    detects: "Request-serving samples of gunicorn WSGI workers (sync or gthread, seen in their stacks) \
              that wait inside asgiref's `AsyncToSync.__call__`: Django runs an `async def` view (or \
              async-only middleware) under WSGI through `async_to_sync`. The endpoint that spends most \
              of its time there is reported, with the async view found on the event loop thread that \
              `async_to_sync` started.",
    why: "Under WSGI, `async_to_sync` creates a thread and a new event loop for every call, then blocks \
          the worker until the coroutine finishes: the async view costs more than a sync one and \
          brings none of the concurrency it was written for, because the worker still serves one \
          request (or one per thread) at a time.",
    example: "async def reviews(request, product):\n    rating = await fetch_rating(product)\n    \
              ...\n# served with: gunicorn --workers 4 shop.wsgi:application",
    fix: "Serve the app through ASGI, where the workers' event loops run async views directly and \
          many at a time: `uvicorn --workers N shop.asgi:application`, or gunicorn with uvicorn's \
          worker class (`gunicorn -k uvicorn.workers.UvicornWorker shop.asgi:application`). If the \
          app stays on WSGI, write these views as plain `def` views with synchronous clients.",
    thresholds: "At least half of an endpoint's request samples in `AsyncToSync.__call__`, and at least \
                 20 samples. Only WSGI workers (gunicorn's sync and gthread classes): under ASGI servers \
                 Django runs async views without the bridge.",
};

/// PYDX-WORKER004.
pub struct AsyncViewsUnderWsgi;

/// Least share of an endpoint's request samples inside `async_to_sync`.
const MIN_BRIDGED_SHARE: f64 = 0.5;

/// What the samples of one endpoint served by WSGI workers show.
#[derive(Default)]
struct Bridged {
    /// Request samples.
    samples: u64,
    /// Of those, inside `AsyncToSync.__call__`.
    bridged: u64,
    /// Whether Flask serves the endpoint.
    flask: bool,
}

impl Rule for AsyncViewsUnderWsgi {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        gunicorn_workers(context)
            .into_iter()
            .filter_map(|group| check_group(context, &group))
            .collect()
    }
}

/// Whether `group`'s workers serve async views through `async_to_sync`
/// (then PYDX-WORKER004's advice, ASGI, replaces threads or more workers).
pub(super) fn serves_async_views(context: &Context<'_>, group: &WorkerGroup) -> bool {
    check_group(context, group).is_some()
}

/// Whether a frame is a WSGI worker's loop (gunicorn's sync or gthread).
fn is_wsgi_worker_frame(context: &Context<'_>, frame: FrameId) -> bool {
    context
        .roles(frame)
        .any(|role| matches!(role, Role::Worker { wsgi: true, .. }))
}

fn check_group(context: &Context<'_>, group: &WorkerGroup) -> Option<Finding> {
    let profile = context.profile;
    let mut endpoints: BTreeMap<String, Bridged> = BTreeMap::new();
    let mut views: HashMap<FrameId, u64> = HashMap::new();
    for (key, count) in profile.samples() {
        if !group.pids.contains(&profile.thread_info(key.thread).pid) {
            continue;
        }
        let frames = profile.frames_root_first(key.stack);
        let Some(endpoint) = profile.endpoint(key.labels) else {
            // The event loop thread `async_to_sync` started: its outermost
            // frame of the program's code is the async view.
            if frames
                .iter()
                .any(|&f| context.plays(f, Role::AsyncToSyncLoop))
            {
                if let Some(&view) = frames.iter().find(|&&f| context.is_user_frame(f)) {
                    *views.entry(view).or_default() += count;
                }
            }
            continue;
        };
        if !frames.iter().any(|&f| is_wsgi_worker_frame(context, f)) {
            continue;
        }
        let entry = endpoints
            .entry(profile.str(endpoint).to_string())
            .or_default();
        entry.samples += count;
        if frames.iter().any(|&f| context.plays(f, Role::AsyncToSync)) {
            entry.bridged += count;
        }
        if frames
            .iter()
            .any(|&f| context.plays(f, Role::Framework(Framework::Flask)))
        {
            entry.flask = true;
        }
    }
    let (endpoint, bridged) = endpoints
        .iter()
        .filter(|(_, b)| {
            b.bridged >= Context::MIN_CPU_SAMPLES
                && b.bridged as f64 >= b.samples as f64 * MIN_BRIDGED_SHARE
        })
        .max_by_key(|(name, b)| (b.bridged, std::cmp::Reverse(name.as_str())))?;
    let share = bridged.bridged as f64 / bridged.samples.max(1) as f64;
    let seconds = bridged.bridged as f64 * context.interval_seconds();
    let view = views
        .iter()
        .max_by_key(|(f, &n)| (n, std::cmp::Reverse(context.function(**f).to_string())))
        .map(|(&frame, _)| def_line(context, frame));
    let mut evidence = vec![
        format!(
            "{:.0}% of the samples serving {endpoint} ({seconds:.2} s) waited in asgiref's \
             AsyncToSync.__call__ under gunicorn's WSGI workers (pids {})",
            share * 100.0,
            group
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!("command: {}", group.command),
    ];
    if let Some(view) = &view {
        evidence.push(format!(
            "the async view, run on an event loop started for the call: {} ({}:{})",
            view.function, view.file, view.line
        ));
    }
    let others: Vec<String> = endpoints
        .iter()
        .filter(|(name, b)| *name != endpoint && b.bridged >= Context::MIN_CPU_SAMPLES)
        .map(|(name, _)| name.clone())
        .collect();
    if !others.is_empty() {
        evidence.push(format!("also bridged: {}", others.join(", ")));
    }
    let app = group
        .command
        .split_whitespace()
        .find(|word| app_module(word).is_some())
        .map(|word| word.replace("wsgi", "asgi"))
        .unwrap_or_else(|| "project.asgi:application".to_string());
    let workers = option_value(&group.command, &["--workers", "-w"]).unwrap_or("N");
    Some(Finding {
        code: DOCS.code,
        title: format!(
            "async views behind WSGI workers: {endpoint} runs each request through async_to_sync"
        ),
        severity: Severity::Warning,
        cost: Cost {
            share,
            share_of: ShareOf::RequestTime,
            unit: TimeUnit::ThreadSeconds,
            seconds,
            cpu_seconds: 0.0,
            longest_ms: None,
            occurrences: None,
        },
        location: view
            .unwrap_or_else(|| handler_or_command(None, &group.command, group.cwd.as_deref())),
        stack: Vec::new(),
        evidence,
        fix: if bridged.flask {
            "Flask is a WSGI framework: it runs each call of an `async def` view through asgiref's \
             `async_to_sync`, which starts an event loop for that one request, so the view gains no \
             concurrency and pays for the loop. Make the view a plain `def` view with synchronous \
             clients (run independent calls in a `concurrent.futures.ThreadPoolExecutor` if they \
             must overlap), or move the app to an ASGI framework served by uvicorn (Quart keeps \
             Flask's API; Starlette or FastAPI)."
                .to_string()
        } else {
            format!(
                "Serve the app through ASGI so that each worker's event loop runs the async views \
                 directly, many requests at a time: `uvicorn --workers {workers} {app}` (its app \
                 object from `get_asgi_application()`, Django's `asgi.py`), or `gunicorn -k \
                 uvicorn.workers.UvicornWorker`. If the app stays on WSGI, make the view a plain \
                 `def` view with synchronous clients: under WSGI each call of an async view starts a \
                 thread and an event loop."
            )
        },
    })
}

/// The `def` line of a frame's function.
fn def_line(context: &Context<'_>, frame: FrameId) -> Location {
    let info = context.profile.frame_info(frame);
    let file = context.file(frame).to_string();
    let line = context.def_line(&file, info.first_line);
    Location {
        function: context.function(frame).to_string(),
        source: context.source_line(&file, line),
        line,
        file,
    }
}
