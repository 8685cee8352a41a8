//! PYDX-WEB001: one middleware taking a large share of an endpoint's CPU.

use std::collections::BTreeMap;

use pydx_libraries::installed_package;
use pydx_profile::{CodeKind, FrameId, StackId};

use super::request_sites::on_cpu_request_samples;
use super::server_processes::app_module_file;
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf};

/// Lines of a program file searched for where a middleware is enabled.
const MAX_SETTINGS_LINES: u32 = 5_000;

static DOCS: RuleDocs = RuleDocs {
    code: "PYDX-WEB001",
    name: "middleware-overhead",
    summary: "One middleware takes a large share of an endpoint's CPU time, outside the view",
    detects: "For each endpoint, the on-CPU samples of threads serving it are split into time in the \
              view (a frame of the program's code below the framework) and time in the framework \
              around it. Samples inside a middleware hook (a `process_request`, `process_view`, \
              `process_response`, `process_exception` or `process_template_response` method of a \
              class named `...Middleware`, Django's style, or `dispatch` of Starlette's \
              BaseHTTPMiddleware) are charged to that middleware; so are samples whose innermost \
              frame outside the standard library is in a middleware module (a `middleware` package \
              or `middleware.py`): a pure ASGI or WSGI middleware's own work, such as Starlette's \
              GZipMiddleware compressing a body, also when it runs in the thread pool (followed \
              back to its request through the anyio job's task). A middleware taking a large share \
              of an endpoint's CPU is reported, with the framework's share as a whole.",
    why: "Middleware runs on every request. A hook that compresses, serializes, renders or queries \
          per request costs every endpoint, and the view's profile never shows it.",
    example: "MIDDLEWARE = [\"django.middleware.gzip.GZipMiddleware\", ...]\n\
              # gzips every 200 KB JSON response in the worker: more CPU than the view itself",
    fix: "Remove the middleware, or limit it to the endpoints that need it (a decorator such as \
          `gzip_page` on one view instead of GZipMiddleware for all), or move its work out of the \
          worker (compression to the reverse proxy or CDN, sessions to signed cookies or a cache).",
    thresholds: "min_share = 0.15: the middleware takes at least 15% of the endpoint's on-CPU request \
                 samples, and at least 20 samples (the [framework] thresholds of pydx.toml). A pure \
                 ASGI/WSGI middleware is charged only for samples in its own module: the app it \
                 wraps and the server's `send` it passes responses to are not its cost.",
};

/// PYDX-WEB001.
pub struct MiddlewareOverhead;

/// What an endpoint's on-CPU request samples did.
#[derive(Default)]
struct EndpointTime {
    /// On-CPU samples serving it.
    samples: u64,
    /// Of those, samples with none of the program's frames: the framework.
    framework: u64,
    /// Samples per middleware class.
    middleware: BTreeMap<String, u64>,
    /// Samples per middleware class and frame (its line) charged, with a stack.
    lines: BTreeMap<(String, FrameId), (u64, Option<StackId>)>,
}

impl Rule for MiddlewareOverhead {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let profile = context.profile;
        let mut endpoints: BTreeMap<String, EndpointTime> = BTreeMap::new();
        let mut class_of_module: BTreeMap<String, String> = BTreeMap::new();
        for (endpoint, key, count) in on_cpu_request_samples(context) {
            let entry = endpoints.entry(endpoint.to_string()).or_default();
            entry.samples += count;
            let frames = profile.frames_innermost_first(key.stack);
            if !frames.iter().any(|&f| context.is_user_frame(f)) {
                entry.framework += count;
            }
            if let Some((mut class, frame)) = charged_middleware(context, &frames) {
                if class.contains('.') {
                    class = class_of_module
                        .entry(class)
                        .or_insert_with_key(|module| {
                            imported_middleware(context, module).unwrap_or_else(|| module.clone())
                        })
                        .clone();
                }
                *entry.middleware.entry(class.clone()).or_default() += count;
                entry
                    .lines
                    .entry((class, frame))
                    .or_insert((0, key.stack))
                    .0 += count;
            }
        }
        let min_share = context.config.framework.min_share;
        let mut findings: Vec<Finding> = Vec::new();
        for (endpoint, time) in &endpoints {
            let Some((class, &samples)) = time
                .middleware
                .iter()
                .max_by_key(|(class, n)| (**n, std::cmp::Reverse(class.as_str())))
            else {
                continue;
            };
            // Its hottest line.
            let Some((&(_, frame), &(_, stack))) = time
                .lines
                .range((class.clone(), FrameId(0))..)
                .take_while(|((c, _), _)| c == class)
                .max_by_key(|((_, frame), (n, _))| (*n, std::cmp::Reverse(*frame)))
            else {
                continue;
            };
            let share = samples as f64 / time.samples.max(1) as f64;
            if samples < Context::MIN_CPU_SAMPLES || share < min_share {
                continue;
            }
            findings.push(finding(
                context,
                endpoint,
                time,
                Charged {
                    class,
                    samples,
                    frame,
                    stack,
                },
            ));
        }
        findings
    }
}

/// The middleware a sample's CPU time is charged to, and its frame: the
/// innermost middleware hook on the stack (`process_response`, `dispatch`),
/// or a `...Middleware` class's `__call__` running its own code (no
/// library frame inside it, so not the app it wraps), or else the innermost frame outside the standard library when it
/// belongs to a middleware module: a pure ASGI or WSGI middleware's own
/// work (Starlette's GZipMiddleware compressing a body), not the app it
/// wraps nor the server's `send` it passes a response to.
pub(super) fn charged_middleware(
    context: &Context<'_>,
    frames: &[FrameId],
) -> Option<(String, FrameId)> {
    if let Some(hook) = frames
        .iter()
        .find_map(|&f| middleware_hook(context.function(f)).map(|c| (c.to_string(), f)))
    {
        return Some(hook);
    }
    // The program's own WSGI or ASGI middleware class, in its `__call__`,
    // doing its own work: nothing of a library (the app it wraps, the
    // framework) runs inside it.
    if let Some(position) = frames.iter().position(|&f| {
        context.is_user_frame(f) && own_middleware_call(context.function(f)).is_some()
    }) {
        let inside_is_its_own = frames[..position]
            .iter()
            .all(|&f| CodeKind::of(context.file(f)) != CodeKind::Library);
        let frame = frames[position];
        if let (true, Some(class)) = (
            inside_is_its_own,
            own_middleware_call(context.function(frame)),
        ) {
            return Some((class.to_string(), frame));
        }
    }
    let &innermost = frames
        .iter()
        .find(|&&f| CodeKind::of(context.file(f)) != CodeKind::Stdlib)?;
    let function = context.function(innermost);
    let class = function
        .rsplit_once('.')
        .and_then(|(class, _)| class.rsplit('.').next())
        .filter(|class| class.ends_with("Middleware"));
    let name = match (class, middleware_module(context.file(innermost))) {
        (Some(class), _) => class.to_string(),
        (None, Some(module)) => module,
        (None, None) => return None,
    };
    Some((name, innermost))
}

/// The dotted module of a middleware file (`starlette/middleware/gzip.py` →
/// `starlette.middleware.gzip`): a file in a `middleware` package or named
/// `middleware.py`; `None` for any other file.
fn middleware_module(file: &str) -> Option<String> {
    let inside = ["/site-packages/", "/dist-packages/"]
        .iter()
        .find_map(|root| file.split_once(root).map(|(_, inside)| inside))
        .unwrap_or(file);
    let module = inside.strip_suffix(".py")?;
    let parts: Vec<&str> = module.split('/').collect();
    let (stem, packages) = parts.split_last()?;
    let is_middleware = |part: &str| matches!(part, "middleware" | "middlewares");
    (is_middleware(stem) || packages.iter().any(|p| is_middleware(p))).then(|| parts.join("."))
}

/// The class of a `...Middleware.__call__` qualified name.
fn own_middleware_call(function: &str) -> Option<&str> {
    let class = function.strip_suffix(".__call__")?.rsplit('.').next()?;
    class.ends_with("Middleware").then_some(class)
}

/// The middleware class of a hook method's qualified name
/// (`GZipMiddleware.process_response` → `GZipMiddleware`).
fn middleware_hook(function: &str) -> Option<&str> {
    let (class, method) = function.rsplit_once('.')?;
    let class = class.rsplit('.').next()?;
    let hook = method.starts_with("process_") || method == "dispatch";
    (hook && class.ends_with("Middleware") && class != "BaseHTTPMiddleware").then_some(class)
}

/// The time charged to one middleware.
struct Charged<'a> {
    class: &'a str,
    samples: u64,
    frame: FrameId,
    stack: Option<StackId>,
}

fn finding(
    context: &Context<'_>,
    endpoint: &str,
    time: &EndpointTime,
    charged: Charged<'_>,
) -> Finding {
    let Charged {
        class,
        samples,
        frame,
        stack,
    } = charged;
    let share = samples as f64 / time.samples.max(1) as f64;
    let seconds = samples as f64 * context.interval_seconds();
    let hook = context.location(frame);
    let own = context.is_user_frame(frame);
    let enabled = enabling_line(context, class);
    let mut evidence = vec![
        format!(
            "{class} ran in {:.0}% of the on-CPU samples serving {endpoint} ({seconds:.2} s), in {} ({}:{})",
            share * 100.0,
            hook.function,
            hook.file,
            hook.line
        ),
        format!(
            "the framework around the view (no frame of the program's code) took {:.0}% of them",
            time.framework as f64 / time.samples.max(1) as f64 * 100.0
        ),
    ];
    if let Some(location) = &enabled {
        evidence.push(format!(
            "enabled at {}:{}: {}",
            location.file,
            location.line,
            location.source.as_deref().unwrap_or("").trim()
        ));
    }
    let remove = match &enabled {
        Some(location) => format!(
            "the line enabling it at {}:{}",
            location.file, location.line
        ),
        None => "its entry in the middleware settings".to_string(),
    };
    let django = installed_package(&hook.file) == Some("django");
    let specific = match class {
        "GZipMiddleware" if django => {
            " Compress at the reverse proxy or CDN instead (nginx `gzip on;`), or only on the views \
             that need it with `@gzip_page`."
        }
        "GZipMiddleware" => {
            " Compress at the reverse proxy or CDN instead (nginx `gzip on;`), or only for the \
             routes that need it (a mounted sub-application with its own middleware)."
        }
        "SessionMiddleware" => {
            " If the endpoint needs no session, keep the session out of its path, or use signed-cookie \
             or cached sessions."
        }
        _ => "",
    };
    Finding {
        code: DOCS.code,
        title: format!(
            "{class} takes {:.0}% of the CPU serving {endpoint}",
            share * 100.0
        ),
        severity: Severity::for_share(share),
        cost: Cost::on_cpu(share, ShareOf::EndpointCpuTime, seconds),
        stack: context
            .profile
            .frames_innermost_first(stack)
            .into_iter()
            .map(|f| context.frame_text(f))
            .collect(),
        fix: if own {
            format!(
                "{class} is the program's own middleware and runs for every request: its work at \
                 {}:{} (`{}`) is what costs. Make that work cheaper or do it only for the requests that \
                 need it (check the path or a flag first, sample or batch what it records, move it to a \
                 background thread or task queue), or remove {remove} if the app can do without it.",
                hook.file,
                hook.line,
                hook.source.as_deref().unwrap_or("").trim()
            )
        } else {
            format!(
                "{class} runs for every request. Remove {remove} if the app can do without it, or apply \
                 its work only where it is needed.{specific}"
            )
        },
        // The program's own middleware is fixed where its time goes; a
        // library's is removed or limited where it is enabled.
        location: if own { hook } else { enabled.unwrap_or(hook) },
        evidence,
    }
}

/// The line of the program's code that enables the middleware `class`: its
/// settings entry naming it by its dotted path in a string
/// (`"django.middleware.gzip.GZipMiddleware"`) or the call adding it
/// (`app.add_middleware(GZipMiddleware, ...)`, `Middleware(GZipMiddleware)`).
fn enabling_line(context: &Context<'_>, class: &str) -> Option<Location> {
    let patterns = [
        format!(".{class}\""),
        format!(".{class}'"),
        format!("add_middleware({class}"),
        format!("Middleware({class}"),
    ];
    find_line(context, |text| {
        patterns.iter().any(|p| text.contains(p.as_str()))
    })
}

/// The middleware class the program imports from `module`
/// (`from starlette.middleware.gzip import GZipMiddleware`).
fn imported_middleware(context: &Context<'_>, module: &str) -> Option<String> {
    let import = format!("from {module} import ");
    let line = find_line(context, |text| {
        text.trim_start().starts_with(&import) && text.contains("Middleware")
    })?;
    let names = line.source?.split_once(" import ")?.1.to_string();
    names
        .split(|c: char| c == ',' || c == '(' || c == ')' || c.is_whitespace())
        .find(|name| name.ends_with("Middleware"))
        .map(str::to_string)
}

/// The first line matching `wanted` in the program's own files that appear
/// in the profile and in the app modules the servers' command lines name.
pub(super) fn find_line(context: &Context<'_>, wanted: impl Fn(&str) -> bool) -> Option<Location> {
    let profile = context.profile;
    let mut files: Vec<String> = profile
        .samples()
        .flat_map(|(key, _)| profile.frames_innermost_first(key.stack))
        .filter(|&f| context.is_user_frame(f))
        .map(|f| context.file(f).to_string())
        .collect();
    files.extend(
        profile
            .meta
            .processes
            .iter()
            .filter_map(|process| app_module_file(&process.command, process.cwd.as_deref())),
    );
    files.sort_unstable();
    files.dedup();
    files.into_iter().find_map(|file| {
        (1..=MAX_SETTINGS_LINES)
            .map_while(|line| Some((line, context.raw_source_line(&file, line)?)))
            .find(|(_, text)| wanted(text))
            .map(|(line, text)| Location {
                function: String::new(),
                file: file.clone(),
                line,
                source: Some(text.trim().to_string()),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_of_middleware_classes_are_recognised() {
        assert_eq!(
            middleware_hook("GZipMiddleware.process_response"),
            Some("GZipMiddleware")
        );
        assert_eq!(
            middleware_hook("TimingMiddleware.dispatch"),
            Some("TimingMiddleware")
        );
        assert_eq!(middleware_hook("MiddlewareMixin.__call__"), None);
        assert_eq!(middleware_hook("ExceptionMiddleware.__call__"), None);
        assert_eq!(middleware_hook("BaseHTTPMiddleware.dispatch"), None);
        assert_eq!(middleware_hook("Handler.process_response"), None);
    }

    #[test]
    fn the_programs_own_wsgi_middleware_is_charged_only_for_its_own_work() {
        let mut profile = pydx_profile::Profile::default();
        let site = "/venv/lib/python3.12/site-packages";
        let call = profile.frame("SignedBatchMiddleware.__call__", "/app/ingest.py", 43, 39);
        let canonical = profile.frame("canonicalize", "/app/ingest.py", 22, 19);
        let dumps = profile.frame("dumps", "/usr/lib/python3.12/json/__init__.py", 231, 183);
        let flask = profile.frame(
            "Flask.wsgi_app",
            &format!("{site}/flask/app.py"),
            1500,
            1480,
        );
        let view = profile.frame("ingest_batch", "/app/ingest.py", 58, 56);
        let config = crate::config::Config::default();
        let sources = crate::context::NoSources;
        let context = Context::new(&profile, &config, &sources);
        // Innermost first: its own canonicalisation is charged to it ...
        assert_eq!(
            charged_middleware(&context, &[dumps, canonical, call]),
            Some(("SignedBatchMiddleware".to_string(), call))
        );
        // ... the view of the app it wraps is not.
        assert_eq!(charged_middleware(&context, &[view, flask, call]), None);
    }

    #[test]
    fn middleware_modules_are_named_by_their_dotted_path() {
        assert_eq!(
            middleware_module("/venv/lib/python3.12/site-packages/starlette/middleware/gzip.py"),
            Some("starlette.middleware.gzip".to_string())
        );
        assert_eq!(
            middleware_module("/usr/lib/python3/dist-packages/shop/middleware.py"),
            Some("shop.middleware".to_string())
        );
        assert_eq!(
            middleware_module("/venv/lib/python3.12/site-packages/starlette/routing.py"),
            None
        );
        assert_eq!(middleware_module("/srv/app/views.py"), None);
    }
}
