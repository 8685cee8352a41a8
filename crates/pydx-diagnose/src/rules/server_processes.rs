//! What the rules about server processes share: which server a process
//! runs and which request handler its samples are mostly in.

use std::collections::HashMap;

use pydx_libraries::{Role, WorkerClass, SERVERS};
use pydx_profile::{FrameId, StackId};

use crate::context::Context;
use crate::finding::Location;

/// The server a command line runs, if it is a known one.
pub(crate) fn server_kind(command: &str) -> Option<&'static str> {
    SERVERS
        .iter()
        .copied()
        .find(|server| command.contains(server))
}

/// The program's function most often at the root of the processes' samples
/// (the request handler, when they serve requests), located at its line
/// with the most samples (where the workers' time goes: the call that waits
/// or computes), with the endpoint it served most.
pub(crate) fn busiest_handler(
    context: &Context<'_>,
    pids: &[u32],
) -> Option<(Location, Option<String>)> {
    let profile = context.profile;
    /// Samples of one handler: in all, per frame (line), per endpoint.
    #[derive(Default)]
    struct Handler {
        samples: u64,
        lines: HashMap<FrameId, u64>,
        endpoints: HashMap<String, u64>,
    }
    let mut handlers: HashMap<(&str, &str, bool), Handler> = HashMap::new();
    for (key, count) in profile.samples() {
        if !pids.contains(&profile.thread_info(key.thread).pid) {
            continue;
        }
        let endpoint = profile.endpoint(key.labels);
        let Some(outermost) = profile
            .frames_root_first(key.stack)
            .into_iter()
            .find(|&f| context.is_user_frame(f))
        else {
            continue;
        };
        let handler = handlers
            .entry((
                context.function(outermost),
                context.file(outermost),
                endpoint.is_some(),
            ))
            .or_default();
        handler.samples += count;
        *handler.lines.entry(outermost).or_default() += count;
        if let Some(endpoint) = endpoint {
            *handler
                .endpoints
                .entry(profile.str(endpoint).to_string())
                .or_default() += count;
        }
    }
    // Request handlers first, then by samples.
    let (_, handler) = handlers
        .into_iter()
        .max_by_key(|((function, file, serving), h)| {
            (*serving, h.samples, std::cmp::Reverse((*function, *file)))
        })?;
    let (&frame, _) = handler
        .lines
        .iter()
        .max_by_key(|(frame, n)| (**n, std::cmp::Reverse(**frame)))?;
    let endpoint = handler
        .endpoints
        .into_iter()
        .max_by_key(|(e, n)| (*n, std::cmp::Reverse(e.clone())))
        .map(|(e, _)| e);
    Some((context.location(frame), endpoint))
}

/// The workers of one gunicorn master and what their samples show.
#[derive(Debug)]
pub(crate) struct WorkerGroup {
    /// The master's command line.
    pub command: String,
    /// The master's working directory.
    pub cwd: Option<String>,
    /// The workers' PIDs.
    pub pids: Vec<u32>,
    /// Their class, when a stack showed it.
    pub class: Option<WorkerClass>,
    /// Samples of the threads running the workers' loops.
    pub samples: u64,
    /// Of those, samples of a sync worker waiting for a connection (free).
    pub free_samples: u64,
    /// Of those, samples serving a request.
    pub request_samples: u64,
    /// Of those, samples on a CPU or waiting for the GIL.
    pub request_busy_samples: u64,
}

impl WorkerGroup {
    /// The share of the workers' time they were not free to take a new
    /// connection: serving a request, or before and after one (parsing it,
    /// closing the connection).
    pub(crate) fn busy_share(&self) -> f64 {
        1.0 - self.free_samples as f64 / self.samples.max(1) as f64
    }

    /// The share of request time spent waiting (I/O, sleep, locks).
    pub(crate) fn waiting_share(&self) -> f64 {
        1.0 - self.request_busy_samples as f64 / self.request_samples.max(1) as f64
    }
}

/// The worker class of the server worker loop `frame` runs, if it runs one.
fn worker_class(context: &Context<'_>, frame: FrameId) -> Option<WorkerClass> {
    context.roles(frame).find_map(|role| match role {
        Role::Worker { class, .. } => Some(class),
        _ => None,
    })
}

/// The gunicorn workers sampled, grouped by master.
pub(crate) fn gunicorn_workers(context: &Context<'_>) -> Vec<WorkerGroup> {
    let profile = context.profile;
    let processes = &profile.meta.processes;
    let mut groups: Vec<WorkerGroup> = processes
        .iter()
        .filter(|master| server_kind(&master.command) == Some("gunicorn"))
        .map(|master| WorkerGroup {
            command: master.command.clone(),
            cwd: master.cwd.clone(),
            pids: processes
                .iter()
                .filter(|p| p.parent_pid == Some(master.pid))
                .map(|p| p.pid)
                .collect(),
            class: None,
            samples: 0,
            free_samples: 0,
            request_samples: 0,
            request_busy_samples: 0,
        })
        .filter(|group| !group.pids.is_empty())
        .collect();
    let mut classes: HashMap<Option<StackId>, Option<WorkerClass>> = HashMap::new();
    for (key, count) in profile.samples() {
        let pid = profile.thread_info(key.thread).pid;
        let Some(group) = groups.iter_mut().find(|g| g.pids.contains(&pid)) else {
            continue;
        };
        // Only the thread running the worker's loop: other threads (a
        // connection pool's, say) neither take connections nor serve them.
        let class = *classes.entry(key.stack).or_insert_with(|| {
            profile
                .frames_root_first(key.stack)
                .into_iter()
                .find_map(|f| worker_class(context, f))
        });
        let Some(class) = class else {
            continue;
        };
        group.class = Some(class);
        group.samples += count;
        let innermost = context.innermost_python_frame(key.stack);
        if innermost.is_some_and(|f| context.plays(f, Role::IdleSyncWorker)) {
            group.free_samples += count;
        }
        if profile.endpoint(key.labels).is_some() {
            group.request_samples += count;
            if key.state.activity.is_busy() {
                group.request_busy_samples += count;
            }
        }
    }
    groups
}

/// The groups of gunicorn sync workers that were saturated: busy with a
/// connection for at least the `[workers]` min_busy_share of their samples.
pub(crate) fn saturated_sync_workers(context: &Context<'_>) -> Vec<WorkerGroup> {
    let config = &context.config.workers;
    gunicorn_workers(context)
        .into_iter()
        .filter(|group| {
            group.class == Some(WorkerClass::Sync)
                && group.request_samples >= Context::MIN_CPU_SAMPLES
                && group.busy_share() >= config.min_busy_share
        })
        .collect()
}

/// The `-w/--workers` or `-k/--worker-class` style option's value in a
/// command line, if given there.
pub(crate) fn option_value<'a>(command: &'a str, names: &[&str]) -> Option<&'a str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words.iter().enumerate().find_map(|(i, word)| {
        names.iter().find_map(|name| {
            if word == name {
                words.get(i + 1).copied()
            } else {
                word.strip_prefix(name)?.strip_prefix('=')
            }
        })
    })
}

/// The evidence line naming the busiest request handler, if there is one.
pub(crate) fn handler_evidence(handler: &Option<(Location, Option<String>)>) -> Option<String> {
    let (location, endpoint) = handler.as_ref()?;
    Some(format!(
        "busiest request handler: {} ({}:{}){}",
        location.function,
        location.file,
        location.line,
        endpoint
            .as_deref()
            .map(|e| format!(", serving {e}"))
            .unwrap_or_default()
    ))
}

/// The module of a WSGI/ASGI app argument such as `shop.wsgi:application`.
pub(crate) fn app_module(word: &str) -> Option<&str> {
    let (module, attribute) = word.split_once(':')?;
    let identifier = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    (identifier(module) && identifier(attribute)).then_some(module)
}

/// The file of the app module a server's command line names (`module:app`),
/// under its working directory `cwd` (gunicorn has already moved there for
/// `--chdir`) and uvicorn's `--app-dir`.
pub(crate) fn app_module_file(command: &str, cwd: Option<&str>) -> Option<String> {
    let module = command.split_whitespace().find_map(app_module)?;
    let cwd = cwd.unwrap_or(".");
    let folder = match option_value(command, &["--app-dir"]) {
        Some(dir) if dir.starts_with('/') => dir.to_string(),
        Some(dir) => format!("{cwd}/{dir}"),
        None => cwd.to_string(),
    };
    Some(format!("{folder}/{}.py", module.replace('.', "/")))
}

/// Where a finding about server processes points: the busiest request
/// handler, else the app module the command line names (`module:app`,
/// under the working directory `cwd`), else the program it runs.
pub(crate) fn handler_or_command(
    handler: Option<(Location, Option<String>)>,
    command: &str,
    cwd: Option<&str>,
) -> Location {
    if let Some((location, _)) = handler {
        return location;
    }
    let file = app_module_file(command, cwd)
        .or_else(|| {
            command
                .split_whitespace()
                .find(|a| a.ends_with(".py"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| command.to_string());
    Location {
        function: String::new(),
        file,
        line: 1,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_modules_come_from_module_colon_attribute_arguments() {
        assert_eq!(app_module("shop.wsgi:application"), Some("shop.wsgi"));
        assert_eq!(app_module("catalog_django:app"), Some("catalog_django"));
        assert_eq!(app_module("127.0.0.1:8000"), None);
        assert_eq!(app_module("--bind=0.0.0.0:80"), None);
        assert_eq!(
            app_module_file("uvicorn --app-dir examples/web catalog:app", Some("/srv")),
            Some("/srv/examples/web/catalog.py".to_string())
        );
        assert_eq!(
            app_module_file(
                "gunicorn --chdir /srv/shop shop.wsgi:application",
                Some("/srv/shop")
            ),
            Some("/srv/shop/shop/wsgi.py".to_string())
        );
    }

    #[test]
    fn without_a_handler_the_app_module_is_pointed_at() {
        let location = handler_or_command(None, "python gunicorn -w 2 shop.wsgi:app", Some("/srv"));
        assert_eq!(location.file, "/srv/shop/wsgi.py");
        let location = handler_or_command(None, "python serve.py --port 80", None);
        assert_eq!(location.file, "serve.py");
    }

    #[test]
    fn options_are_read_in_both_spellings() {
        let command = "python gunicorn -w 4 --worker-class=gthread --threads 8 app:app";
        assert_eq!(option_value(command, &["--workers", "-w"]), Some("4"));
        assert_eq!(
            option_value(command, &["--worker-class", "-k"]),
            Some("gthread")
        );
        assert_eq!(option_value(command, &["--max-requests"]), None);
    }
}
