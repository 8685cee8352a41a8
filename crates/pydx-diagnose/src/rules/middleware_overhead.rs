//! PYDX-WEB001: one middleware taking a large share of an endpoint's CPU.

use std::collections::BTreeMap;

use pydx_profile::{Activity, FrameId, StackId, LABEL_ENDPOINT};

use super::server_processes::app_module;
use super::{Rule, RuleDocs};
use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity};

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
              BaseHTTPMiddleware) are charged to that middleware. A middleware taking a large share \
              of an endpoint's CPU is reported, with the framework's share as a whole.",
    why: "Middleware runs on every request. A hook that compresses, serializes, renders or queries \
          per request costs every endpoint, and the view's profile never shows it.",
    example: "MIDDLEWARE = [\"django.middleware.gzip.GZipMiddleware\", ...]\n\
              # gzips every 200 KB JSON response in the worker: more CPU than the view itself",
    fix: "Remove the middleware, or limit it to the endpoints that need it (a decorator such as \
          `gzip_page` on one view instead of GZipMiddleware for all), or move its work out of the \
          worker (compression to the reverse proxy or CDN, sessions to signed cookies or a cache).",
    thresholds: "min_share = 0.15: the middleware takes at least 15% of the endpoint's on-CPU request \
                 samples, and at least 20 samples (the [framework] thresholds of pydx.toml). Only \
                 hook methods are charged: a pure ASGI/WSGI middleware's `__call__` wraps everything \
                 after it and cannot be told apart from the framework.",
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
    /// Samples per middleware class, with its hook's frame and a stack.
    middleware: BTreeMap<String, (u64, FrameId, Option<StackId>)>,
}

impl Rule for MiddlewareOverhead {
    fn docs(&self) -> &'static RuleDocs {
        &DOCS
    }

    fn check(&self, context: &Context<'_>) -> Vec<Finding> {
        let profile = context.profile;
        let mut endpoints: BTreeMap<String, EndpointTime> = BTreeMap::new();
        for (key, count) in profile.samples() {
            if key.state.activity != Activity::OnCpu {
                continue;
            }
            let Some(endpoint) = profile.label_value(key.labels, LABEL_ENDPOINT) else {
                continue;
            };
            let entry = endpoints
                .entry(profile.str(endpoint).to_string())
                .or_default();
            entry.samples += count;
            let frames = profile.frames_innermost_first(key.stack);
            if !frames.iter().any(|&f| context.is_user_frame(f)) {
                entry.framework += count;
            }
            if let Some((class, frame)) = frames
                .iter()
                .find_map(|&f| middleware_hook(context.function(f)).map(|c| (c, f)))
            {
                let slot = entry
                    .middleware
                    .entry(class.to_string())
                    .or_insert((0, frame, key.stack));
                slot.0 += count;
            }
        }
        let min_share = context.config.framework.min_share;
        let mut findings: Vec<Finding> = Vec::new();
        for (endpoint, time) in &endpoints {
            let Some((class, &(samples, frame, stack))) = time
                .middleware
                .iter()
                .max_by_key(|(class, (n, _, _))| (*n, std::cmp::Reverse(class.as_str())))
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
    let specific = match class {
        "GZipMiddleware" => {
            " Compress at the reverse proxy or CDN instead (nginx `gzip on;`), or only on the views \
             that need it with `@gzip_page`."
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
        cost: Cost {
            share,
            seconds,
            cpu_seconds: seconds,
            longest_ms: None,
            occurrences: None,
        },
        stack: context
            .profile
            .frames_innermost_first(stack)
            .into_iter()
            .map(|f| context.frame_text(f))
            .collect(),
        fix: format!(
            "{class} runs for every request. Remove {remove} if the app can do without it, or apply its \
             work only where it is needed.{specific}"
        ),
        location: enabled.unwrap_or(hook),
        evidence,
    }
}

/// The line of the program's code that names `class` by its dotted path in
/// a string (its settings entry, `"django.middleware.gzip.GZipMiddleware"`),
/// searched in the program's own files that appear in the profile and in
/// the app modules the servers' command lines name.
fn enabling_line(context: &Context<'_>, class: &str) -> Option<Location> {
    let profile = context.profile;
    let mut files: Vec<String> = profile
        .samples()
        .flat_map(|(key, _)| profile.frames_innermost_first(key.stack))
        .filter(|&f| context.is_user_frame(f))
        .map(|f| context.file(f).to_string())
        .collect();
    files.extend(profile.meta.processes.iter().flat_map(|process| {
        let cwd = process.cwd.as_deref().unwrap_or("");
        process
            .command
            .split_whitespace()
            .filter_map(app_module)
            .map(move |module| format!("{cwd}/{}.py", module.replace('.', "/")))
    }));
    files.sort_unstable();
    files.dedup();
    files.into_iter().find_map(|file| {
        (1..=MAX_SETTINGS_LINES)
            .map_while(|line| Some((line, context.raw_source_line(&file, line)?)))
            .find(|(_, text)| {
                text.contains(&format!(".{class}\"")) || text.contains(&format!(".{class}'"))
            })
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
}
