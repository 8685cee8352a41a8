//! PYDX-WEB002: the framework's own work per request far above what an
//! empty handler costs in that framework.

use std::collections::{BTreeMap, HashMap};

use pydx_libraries::Role;
use pydx_profile::{CodeKind, FrameId, ProcessMeta, StackId};

use super::middleware_overhead::{charged_middleware, find_line};
use super::request_sites::on_cpu_request_samples;
use super::server_processes::app_module_file;
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf};

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WEB002",
    name: "framework-overhead",
    summary: "The web framework spends far more CPU per request outside the handlers than an empty handler costs",
    detects: "The on-CPU samples of threads serving requests that hold no frame of the program's code \
              and are not charged to a middleware (PYDX-WEB001) are the framework's own work: routing, \
              parsing, validation, encoding the response (async views run through `async_to_sync` \
              are PYDX-WORKER004's). Divided by the requests the workers served \
              while sampled (their own counts, read by pydx), this is the framework's CPU per request \
              (the samples' time scaled down to the workers' own CPU time, read from /proc, when a \
              busy machine kept them waiting for a CPU), \
              compared with what an empty handler costs in the same framework. Far above it, the \
              endpoint with the most framework time is reported, with the framework functions that take \
              it.",
    why: "Work the framework does around a handler never shows in the handler's profile, yet every \
          request pays it. A framework costs a fraction of a millisecond per request on its own; many \
          times more means the handler gives it work, typically a large return value that the \
          framework converts object by object in Python.",
    example: "@app.get(\"/items\")\nasync def items():\n    return [row.as_dict() for row in rows]   \
              # 5,000 dicts: FastAPI's jsonable_encoder walks each one in Python",
    fix: "Hand the framework a finished response (`Response(orjson.dumps(data), \
          media_type=\"application/json\")`, Django's `HttpResponse(body)`), declare a response model so \
          that pydantic-core serialises in compiled code, cache or paginate large responses, or serve \
          the endpoint from a lighter stack.",
    thresholds: "min_overhead_ratio = 4: the framework's CPU per request is at least 4 times an empty \
                 handler's; min_framework_share = 0.5: it is at least half of the endpoint's on-CPU \
                 request samples, and at least 20 samples (the [framework] thresholds of pydx.toml). \
                 Empty-handler costs are pydx's measurements on a 2-CPU machine \
                 (bench/framework_baseline.py, bench/results/framework-baseline.md): Django 6.1 \
                 0.26 ms under WSGI and 1.71 ms under ASGI (its sync_to_async hops), Flask 3.1 \
                 0.26 ms, FastAPI 0.165 0.42 ms, Starlette 1.10 0.33 ms; a faster machine makes \
                 the ratio smaller, never larger. Needs the server's request count (gunicorn, uvicorn); silent \
                 without it.",
};

/// PYDX-WEB002.
pub struct FrameworkOverhead;

/// Framework CPU per request of an empty handler, in milliseconds, measured
/// by `bench/framework_baseline.py` on a 2-CPU machine (samples outside the
/// handler and any middleware, per request counted by the server).
fn empty_handler_ms(framework: &str) -> Option<f64> {
    Some(match framework {
        "Django" => 0.26,
        "Django ASGI" => 1.71,
        "Flask" => 0.26,
        "FastAPI" => 0.42,
        "Starlette" => 0.33,
        _ => return None,
    })
}

/// The framework whose code `frame` runs, by the name users know.
fn framework_of(context: &Context<'_>, frame: FrameId) -> Option<&'static str> {
    context.roles(frame).find_map(|role| match role {
        Role::Framework(framework) => Some(framework.name()),
        _ => None,
    })
}

/// What one endpoint's on-CPU request samples did.
#[derive(Default)]
struct EndpointWork {
    /// On-CPU samples serving it.
    samples: u64,
    /// Of those, the framework's own work.
    framework: u64,
    /// The CPU time of those, in seconds: the samples' time, scaled down
    /// where the worker's own CPU count shows it waiting for a CPU (see
    /// [`cpu_shares`]).
    framework_seconds: f64,
    /// Framework samples by their innermost frame outside the standard library.
    by_function: HashMap<FrameId, u64>,
    /// Samples by the innermost frame of the program's code: its handler.
    handlers: HashMap<FrameId, u64>,
    /// Samples seen per framework package.
    frameworks: BTreeMap<&'static str, u64>,
    /// A framework sample's stack.
    stack: Option<StackId>,
}

impl Rule for FrameworkOverhead {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let profile = context.profile;
        let counted: HashMap<u32, f64> = profile
            .meta
            .processes
            .iter()
            .filter_map(|p| Some((p.pid, requests_while_sampled(p, profile.meta.duration_ns)?)))
            .collect();
        let requests: f64 = counted.values().sum();
        if requests < 1.0 {
            return Vec::new();
        }
        let cpu_share = cpu_shares(context);
        let mut endpoints: BTreeMap<String, EndpointWork> = BTreeMap::new();
        for (endpoint, key, count) in on_cpu_request_samples(context) {
            let pid = profile.thread_info(key.thread).pid;
            if !counted.contains_key(&pid) {
                continue;
            }
            let work = endpoints.entry(endpoint.to_string()).or_default();
            work.samples += count;
            let frames = profile.frames_innermost_first(key.stack);
            if let Some(framework) = frames.iter().find_map(|&f| framework_of(context, f)) {
                let asgi = frames.iter().any(|&f| context.plays(f, Role::DjangoAsgi));
                let framework = if framework == "Django" && asgi {
                    "Django ASGI"
                } else {
                    framework
                };
                *work.frameworks.entry(framework).or_default() += count;
            }
            if let Some(&handler) = frames.iter().find(|&&f| context.is_user_frame(f)) {
                *work.handlers.entry(handler).or_default() += count;
                continue;
            }
            // Middleware is PYDX-WEB001's; async views bridged under WSGI
            // are PYDX-WORKER004's.
            if charged_middleware(context, &frames).is_some()
                || frames.iter().any(|&f| context.plays(f, Role::AsyncToSync))
            {
                continue;
            }
            work.framework += count;
            work.framework_seconds += count as f64
                * context.interval_seconds()
                * cpu_share.get(&pid).copied().unwrap_or(1.0);
            if work.stack.is_none() {
                work.stack = key.stack;
            }
            if let Some(&inner) = frames
                .iter()
                .find(|&&f| CodeKind::of(context.file(f)) != CodeKind::Stdlib)
            {
                *work.by_function.entry(inner).or_default() += count;
            }
        }
        let framework_seconds: f64 = endpoints.values().map(|w| w.framework_seconds).sum();
        let per_request_ms = framework_seconds * 1e3 / requests;
        let config = &context.config.framework;
        let Some((endpoint, work)) = endpoints
            .iter()
            .max_by_key(|(name, w)| (w.framework, std::cmp::Reverse(name.as_str())))
        else {
            return Vec::new();
        };
        let Some((&framework, _)) = work.frameworks.iter().max_by_key(|(_, &n)| n) else {
            return Vec::new();
        };
        let Some(baseline_ms) = empty_handler_ms(framework) else {
            return Vec::new();
        };
        let share = work.framework as f64 / work.samples.max(1) as f64;
        if work.framework < Context::MIN_CPU_SAMPLES
            || share < config.min_framework_share
            || per_request_ms < config.min_overhead_ratio * baseline_ms
        {
            return Vec::new();
        }
        vec![finding(
            context,
            Overhead {
                framework,
                endpoint,
                work,
                share,
                per_request_ms,
                baseline_ms,
                requests,
            },
            &endpoints,
        )]
    }
}

/// For each process whose CPU time pydx read, the share of the on-CPU
/// time its samples show that was CPU time by its own count (at most 1):
/// where pydx could not watch a thread's context switches, a thread
/// waiting for a CPU on a busy machine reads as running, so its samples
/// overstate its CPU, and in the places where it is preempted most (a
/// write that wakes the client up). Processes without the count are left
/// out (their samples are taken at face value).
fn cpu_shares(context: &Context<'_>) -> HashMap<u32, f64> {
    let profile = context.profile;
    let mut sampled: HashMap<u32, u64> = HashMap::new();
    for (key, count) in profile.samples().filter(|(key, _)| Context::on_cpu(key)) {
        *sampled
            .entry(profile.thread_info(key.thread).pid)
            .or_default() += count;
    }
    let seconds = profile.meta.duration_ns as f64 / 1e9;
    profile
        .meta
        .processes
        .iter()
        .filter_map(|process| {
            let measured = process.measured_cpus()?;
            let samples = *sampled.get(&process.pid)?;
            let shown = samples as f64 * context.interval_seconds() / seconds;
            (shown > 0.0).then(|| (process.pid, (measured / shown).min(1.0)))
        })
        .collect()
}

/// Requests process `process` served while it was sampled: its own count
/// between its first and last reading, scaled to the time from its first
/// reading to the end of the recording; `None` without two counts.
fn requests_while_sampled(process: &ProcessMeta, duration_ns: u64) -> Option<f64> {
    let served = process.served_requests()?;
    let window = (served.end_ns - served.start_ns) as f64;
    let sampled = duration_ns
        .saturating_sub(served.start_ns)
        .max(served.end_ns - served.start_ns) as f64;
    Some(served.count as f64 * sampled / window)
}

/// The framework overhead found on one endpoint.
struct Overhead<'a> {
    framework: &'static str,
    endpoint: &'a str,
    work: &'a EndpointWork,
    share: f64,
    per_request_ms: f64,
    baseline_ms: f64,
    requests: f64,
}

fn finding(
    context: &Context<'_>,
    overhead: Overhead<'_>,
    endpoints: &BTreeMap<String, EndpointWork>,
) -> Finding {
    let Overhead {
        framework,
        endpoint,
        work,
        ..
    } = overhead;
    let (share, per_request_ms) = (overhead.share, overhead.per_request_ms);
    let (baseline_ms, requests) = (overhead.baseline_ms, overhead.requests);
    let seconds = work.framework_seconds;
    let mut functions: Vec<(FrameId, u64)> =
        work.by_function.iter().map(|(&f, &n)| (f, n)).collect();
    functions.sort_by_key(|&(f, n)| (std::cmp::Reverse(n), context.function(f).to_string()));
    let mut evidence = vec![
        format!(
            "{framework}'s own work (no frame of the program's code, no middleware) took {:.0}% of the \
             on-CPU samples serving {endpoint} ({seconds:.2} s of CPU)",
            share * 100.0
        ),
        format!(
            "{per_request_ms:.2} ms of framework CPU per request over the {requests:.0} requests the \
             workers served while sampled: {:.0}× the {baseline_ms} ms of an empty {framework} handler",
            per_request_ms / baseline_ms
        ),
    ];
    let sampled_seconds = work.framework as f64 * context.interval_seconds();
    if seconds < 0.95 * sampled_seconds {
        evidence.push(format!(
            "the workers' own CPU counts show {:.0}% of the time their samples show on a CPU as CPU \
             time (the rest waiting for a CPU on a busy machine): the times above are scaled to it",
            seconds / sampled_seconds * 100.0
        ));
    }
    for &(frame, samples) in functions.iter().take(3) {
        let location = context.location(frame);
        evidence.push(format!(
            "{}% of it in {} ({}:{})",
            (samples as f64 / work.framework.max(1) as f64 * 100.0).round(),
            location.function,
            location.file,
            location.line
        ));
    }
    for (other, other_work) in endpoints {
        if other != endpoint && other_work.framework >= Context::MIN_CPU_SAMPLES {
            evidence.push(format!(
                "{other}: {:.0}% of its on-CPU samples in the framework",
                other_work.framework as f64 / other_work.samples.max(1) as f64 * 100.0
            ));
        }
    }
    let heaviest = heaviest_function(context, &functions);
    let specific = match heaviest {
        Some("jsonable_encoder") => format!(
            "FastAPI converts what the handler returns with `jsonable_encoder`, object by object in \
             Python. Return a finished response instead: `Response(orjson.dumps(data), \
             media_type=\"application/json\")` (or `json.dumps`), or declare a response model (`-> \
             list[Item]` or `response_model=`) so that pydantic-core validates and serialises it in \
             compiled code. Paginate if {endpoint} returns thousands of objects."
        ),
        Some(function) => format!(
            "Its heaviest part is `{function}`: give the framework less to do per request ({endpoint}): \
             hand it a finished response body, cache or paginate large responses, or serve the \
             endpoint from a lighter stack."
        ),
        None => "Give the framework less to do per request: hand it a finished response body, cache or \
                 paginate large responses, or serve the endpoint from a lighter stack."
            .to_string(),
    };
    let handler = work
        .handlers
        .iter()
        .max_by_key(|(f, &n)| (n, std::cmp::Reverse(context.function(**f).to_string())))
        .map(|(&frame, _)| context.location(frame));
    if let Some(handler) = &handler {
        evidence.push(format!(
            "its handler: {} ({}:{})",
            handler.function, handler.file, handler.line
        ));
    }
    // Where the program hands the framework its work: the code the route
    // points at (the returned value, when converting it is the work), else
    // the handler seen on the stacks, else the route, else the app.
    let converts_return = heaviest == Some("jsonable_encoder");
    let route = route_line(context, endpoint);
    let location = route
        .as_ref()
        .and_then(|route| route_target(context, route, converts_return))
        .or(handler)
        .or(route)
        .or_else(|| app_location(context))
        .unwrap_or_else(|| Location {
            function: String::new(),
            file: endpoint.to_string(),
            line: 0,
            source: None,
        });
    Finding {
        code: DOCS.code,
        title: format!(
            "{framework} takes {per_request_ms:.1} ms of CPU per request outside the handlers, {:.0}× an \
             empty handler ({endpoint}: {:.0}% of its CPU)",
            per_request_ms / baseline_ms,
            share * 100.0
        ),
        severity: Severity::for_share(share),
        cost: Cost::on_cpu(share, ShareOf::EndpointCpuTime, seconds),
        location,
        stack: context
            .profile
            .frames_innermost_first(work.stack)
            .into_iter()
            .map(|f| context.frame_text(f))
            .collect(),
        evidence,
        fix: specific,
    }
}

/// The line declaring the route of `endpoint` (`@app.get("/orders/{id}")`,
/// `path("orders/<int:id>", ...)`): the endpoint's path is the route's
/// template as the framework names it.
fn route_line(context: &Context<'_>, endpoint: &str) -> Option<Location> {
    let (_, path) = endpoint.split_once(' ')?;
    if path == "/" {
        return None;
    }
    let literals = [
        format!("\"{path}\""),
        format!("'{path}'"),
        format!("\"{}\"", path.trim_start_matches('/')),
        format!("'{}'", path.trim_start_matches('/')),
    ];
    let declares = |text: &str| {
        [
            "get(", "post(", "put(", "patch(", "delete(", "route(", "path(", "Route(",
        ]
        .iter()
        .any(|call| text.contains(call))
    };
    find_line(context, |text| {
        declares(text) && literals.iter().any(|l| text.contains(l.as_str()))
    })
}

/// Most lines read looking for a handler's body or a view's definition.
const MAX_HANDLER_LINES: u32 = 400;

/// The code a route declaration points at: the function a decorator
/// declares (its last `return`, when `at_return`), or the view a
/// `path("...", View.as_view())` call names, defined in the same file.
fn route_target(context: &Context<'_>, route: &Location, at_return: bool) -> Option<Location> {
    let file = &route.file;
    let source = route.source.as_deref()?;
    let raw = |line: u32| context.raw_source_line(file, line);
    let at = |line: u32, function: &str| Location {
        function: function.to_string(),
        file: file.clone(),
        line,
        source: context.source_line(file, line),
    };
    if source.starts_with('@') {
        let (def_line, def_text) = (route.line + 1..route.line + 8)
            .map_while(|line| Some((line, raw(line)?)))
            .find(|(_, text)| {
                let text = text.trim_start();
                text.starts_with("def ") || text.starts_with("async def ")
            })?;
        let name = def_text
            .trim_start()
            .trim_start_matches("async ")
            .trim_start_matches("def ")
            .split('(')
            .next()?
            .trim()
            .to_string();
        if !at_return {
            return Some(at(def_line, &name));
        }
        let indent = |text: &str| text.len() - text.trim_start().len();
        let body = indent(&def_text);
        let last_return = (def_line + 1..def_line + MAX_HANDLER_LINES)
            .map_while(|line| Some((line, raw(line)?)))
            .filter(|(_, text)| !text.trim().is_empty())
            .take_while(|(_, text)| indent(text) > body)
            .filter(|(_, text)| {
                let text = text.trim_start();
                text == "return" || text.starts_with("return ")
            })
            .last()
            .map(|(line, _)| line);
        return Some(at(last_return.unwrap_or(def_line), &name));
    }
    // `path("stock", StockListView.as_view())` or `path("stock", views.stock)`.
    let (_, after) = source.split_once(',')?;
    let target = after
        .trim_start()
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .next()?
        .trim_end_matches(".as_view");
    let name = target.rsplit('.').next().filter(|n| !n.is_empty())?;
    let defines = [
        format!("class {name}("),
        format!("class {name}:"),
        format!("def {name}("),
        format!("async def {name}("),
    ];
    (1..MAX_HANDLER_LINES)
        .map_while(|line| Some((line, raw(line)?)))
        .find(|(_, text)| {
            defines
                .iter()
                .any(|d| text.trim_start().starts_with(d.as_str()))
        })
        .map(|(line, _)| at(line, name))
}

/// The framework function with the most samples over all its lines
/// (`frames` are innermost frames at a line each): jsonable_encoder's time
/// is spread over the lines it recurses through, and one of its lines alone
/// can weigh less than another function's single line.
fn heaviest_function<'c>(context: &'c Context<'_>, frames: &[(FrameId, u64)]) -> Option<&'c str> {
    let mut by_name: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for &(frame, samples) in frames {
        *by_name
            .entry((context.function(frame), context.file(frame)))
            .or_default() += samples;
    }
    by_name
        .iter()
        .max_by_key(|&(&(function, file), &samples)| (samples, std::cmp::Reverse((function, file))))
        .map(|(&(function, _), _)| function)
}

/// The app module a server's command line names, when no handler was seen.
fn app_location(context: &Context<'_>) -> Option<Location> {
    context.profile.meta.processes.iter().find_map(|p| {
        Some(Location {
            function: String::new(),
            file: app_module_file(&p.command, p.cwd.as_deref())?,
            line: 1,
            source: None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pydx_profile::MemoryReading;

    #[test]
    fn a_route_points_at_its_handler_or_view() {
        let app = "/srv/app.py";
        let mut sources = crate::context::SourceMap::default();
        sources.insert(
            app,
            "from fastapi import FastAPI\n\
             app = FastAPI()\n\
             \n\
             @app.get(\"/feed/{category}\")\n\
             async def feed(category: str):\n\
             \x20   if not category:\n\
             \x20       return []\n\
             \n\
             \x20   rows = load(category)\n\
             \x20   return rows\n\
             \n\
             def other():\n\
             \x20   return 1\n\
             class StockList(ListView):\n\
             \x20   pass\n\
             urlpatterns = [path(\"stock/<str:site>\", StockList.as_view())]\n",
        );
        let profile = pydx_profile::Profile::new(pydx_profile::Meta::default());
        let config = crate::config::Config::default();
        let context = Context::new(&profile, &config, &sources);
        let route = |line: u32| Location {
            function: String::new(),
            file: app.into(),
            line,
            source: context.source_line(app, line),
        };
        let at = |target: Option<Location>| target.map(|l| (l.function, l.line));
        assert_eq!(
            at(route_target(&context, &route(4), true)),
            Some(("feed".into(), 10))
        );
        assert_eq!(
            at(route_target(&context, &route(4), false)),
            Some(("feed".into(), 5))
        );
        assert_eq!(
            at(route_target(&context, &route(16), false)),
            Some(("StockList".into(), 14))
        );
    }

    /// The case that made a test fail once: jsonable_encoder's samples on
    /// two of its lines (14% and 11%) outweigh render's 14% on one.
    #[test]
    fn the_heaviest_function_is_summed_over_its_lines() {
        let mut profile = pydx_profile::Profile::new(pydx_profile::Meta::default());
        let encoders = "/venv/fastapi/encoders.py";
        let responses = "/venv/starlette/responses.py";
        let encode_a = profile.frame("jsonable_encoder", encoders, 290, 280);
        let encode_b = profile.frame("jsonable_encoder", encoders, 331, 280);
        let render = profile.frame("JSONResponse.render", responses, 180, 178);
        let sources = crate::context::SourceMap::default();
        let config = crate::config::Config::default();
        let context = Context::new(&profile, &config, &sources);
        let frames = [(render, 14), (encode_a, 14), (encode_b, 11)];
        assert_eq!(
            heaviest_function(&context, &frames),
            Some("jsonable_encoder")
        );
        assert_eq!(
            heaviest_function(&context, &[(render, 14), (encode_a, 13)]),
            Some("JSONResponse.render")
        );
        assert_eq!(heaviest_function(&context, &[]), None);
    }

    #[test]
    fn requests_are_scaled_to_the_sampled_time() {
        let process = ProcessMeta {
            memory: (0..5)
                .map(|s| MemoryReading {
                    at_ns: 1_000_000_000 + s * 1_000_000_000,
                    rss_bytes: 0,
                    private_bytes: 0,
                    served_requests: Some(100 + s * 50),
                    cpu_ns: None,
                })
                .collect(),
            ..ProcessMeta::default()
        };
        // 200 requests in 4 s of readings, sampled for 5 s from the first.
        let requests = requests_while_sampled(&process, 6_000_000_000).unwrap();
        assert!((requests - 250.0).abs() < 1e-6, "{requests}");
        assert_eq!(
            requests_while_sampled(&ProcessMeta::default(), 6_000_000_000),
            None
        );
    }

    /// A worker whose samples show it on a CPU all the time, while its own
    /// count says it used half a CPU (it waited for one the rest of the
    /// time), has half its sampled time counted; one using more than its
    /// samples show is not scaled up, one without a count is not scaled.
    #[test]
    fn sampled_time_is_scaled_to_the_workers_measured_cpu() {
        use crate::test_support::add_at;
        use pydx_profile::{Activity, Meta, Profile};
        let mut profile = Profile::new(Meta {
            rate_hz: 100.0,
            duration_ns: 4_000_000_000,
            ..Meta::default()
        });
        let frame = profile.frame("send", "/venv/uvicorn/h11_impl.py", 480, 490);
        let stack = profile.stack_from_root([frame]);
        for pid in [7, 8, 9] {
            let thread = profile.thread(pid, pid, u64::from(pid), Some("MainThread"));
            for n in 0..400 {
                add_at(&mut profile, n * 10_000_000, thread, stack, Activity::OnCpu);
            }
        }
        let readings = |cpus: f64| {
            (0..5)
                .map(|s| MemoryReading {
                    at_ns: s * 1_000_000_000,
                    rss_bytes: 0,
                    private_bytes: 0,
                    served_requests: None,
                    cpu_ns: Some((s as f64 * cpus * 1e9) as u64),
                })
                .collect()
        };
        profile.meta.processes = vec![
            ProcessMeta {
                pid: 7,
                memory: readings(0.5),
                ..ProcessMeta::default()
            },
            ProcessMeta {
                pid: 8,
                memory: readings(1.2),
                ..ProcessMeta::default()
            },
            ProcessMeta {
                pid: 9,
                ..ProcessMeta::default()
            },
        ];
        let config = crate::config::Config::default();
        let sources = crate::context::SourceMap::default();
        let context = Context::new(&profile, &config, &sources);
        let shares = cpu_shares(&context);
        assert!((shares[&7] - 0.5).abs() < 1e-9, "{shares:?}");
        assert_eq!(shares[&8], 1.0);
        assert!(!shares.contains_key(&9));
    }
}
