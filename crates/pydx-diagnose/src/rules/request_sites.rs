//! What the web rules share: finding, in the samples of threads serving
//! HTTP requests, the stacks inside some library operation (opening a
//! connection, a lazy load), and charging them to the program's line that
//! called into the library.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pydx_profile::{FrameId, RunStack, SampleKey, StackId, ThreadId};

use crate::context::Context;
use crate::finding::{Cost, Finding, Location, Severity, ShareOf, TimeUnit};

/// The on-CPU samples of threads serving a request: the endpoint, the
/// sample and its count.
pub(crate) fn on_cpu_request_samples<'a>(
    context: &'a Context<'_>,
) -> impl Iterator<Item = (&'a str, &'a SampleKey, u64)> + 'a {
    let profile = context.profile;
    profile.samples().filter_map(move |(key, count)| {
        if !Context::on_cpu(key) {
            return None;
        }
        let endpoint = profile.endpoint(key.labels)?;
        Some((profile.str(endpoint), key, count))
    })
}

/// What the samples at a site are measured against.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The time threads spent serving HTTP requests.
    #[default]
    Requests,
    /// The whole time of the threads that ran the operation, in a program
    /// that served no request while recorded (a batch job, a script, a
    /// task-queue worker).
    Threads,
}

impl Scope {
    /// What a share of this scope is a share of.
    pub(crate) fn share_of(self) -> ShareOf {
        match self {
            Scope::Requests => ShareOf::RequestTime,
            Scope::Threads => ShareOf::ThreadTime,
        }
    }

    /// The time measured against, for titles: `42% of {this}`.
    pub(crate) fn time(self) -> &'static str {
        match self {
            Scope::Requests => "request time",
            Scope::Threads => "its thread's time",
        }
    }

    /// The time measured against, for evidence: `42% of {this} went to ...`.
    pub(crate) fn time_spent(self) -> &'static str {
        match self {
            Scope::Requests => "the time spent serving requests",
            Scope::Threads => "the time of the thread running it",
        }
    }

    /// Where the repeats were seen, for evidence.
    pub(crate) fn repeats(self) -> &'static str {
        match self {
            Scope::Requests => "separate stretches of requests: they repeat request after request",
            Scope::Threads => "separate stretches: they repeat item after item",
        }
    }
}

/// Where one kind of operation was called from, while serving requests
/// (or, in a program that serves none, while running at all).
#[derive(Debug, Default)]
pub(crate) struct Site {
    /// What its samples are measured against.
    pub scope: Scope,
    /// Samples inside the operation.
    pub samples: u64,
    /// Separate stretches of the timeline inside it (each at least one
    /// operation).
    pub episodes: u64,
    /// The endpoints being served.
    pub endpoints: BTreeSet<String>,
    /// A stack inside the operation, to show.
    pub stack: Option<StackId>,
}

impl Site {
    /// A finding for this site: `share` of the request-serving samples, the
    /// rest as the rule words it.
    pub(crate) fn finding(
        &self,
        context: &Context<'_>,
        code: &'static str,
        share: f64,
        text: SiteText,
    ) -> Finding {
        Finding {
            code,
            title: text.title,
            severity: Severity::for_share(share),
            cost: Cost {
                share,
                share_of: self.scope.share_of(),
                unit: TimeUnit::ThreadSeconds,
                seconds: self.seconds(context),
                cpu_seconds: 0.0,
                longest_ms: None,
                occurrences: Some(self.episodes),
            },
            stack: context
                .profile
                .frames_innermost_first(self.stack)
                .into_iter()
                .map(|f| context.frame_text(f))
                .collect(),
            fix: text.fix,
            location: text.location,
            evidence: text.evidence,
        }
    }

    /// Thread-seconds inside the operation.
    pub(crate) fn seconds(&self, context: &Context<'_>) -> f64 {
        self.samples as f64 * context.interval_seconds()
    }

    /// The endpoints, as evidence (none outside requests).
    pub(crate) fn endpoints_evidence(&self) -> Option<String> {
        let endpoints: Vec<&str> = self.endpoints.iter().map(String::as_str).take(5).collect();
        (!endpoints.is_empty()).then(|| format!("endpoints: {}", endpoints.join(", ")))
    }
}

/// What a web rule says about a site.
pub(crate) struct SiteText {
    pub title: String,
    pub location: Location,
    pub evidence: Vec<String>,
    pub fix: String,
}

/// The request-serving samples, and the sites of operations `classify`
/// recognises (by the function and file of a library frame), keyed by the
/// operation's kind and the program's frame that called into it.
pub(crate) fn request_sites<K: Copy + Ord>(
    context: &Context<'_>,
    classify: impl Fn(&str, &str) -> Option<K>,
) -> (u64, BTreeMap<(K, FrameId), Site>) {
    sites_in(context, classify, Scope::Requests)
}

/// Like [`request_sites`], but in a program that served no request while
/// recorded (a batch job, a script, a worker), the sites anywhere, measured
/// against the whole time of the threads that ran them.
pub(crate) fn work_sites<K: Copy + Ord>(
    context: &Context<'_>,
    classify: impl Fn(&str, &str) -> Option<K>,
) -> (u64, BTreeMap<(K, FrameId), Site>) {
    let serves_requests = context
        .profile
        .samples()
        .any(|(key, _)| context.profile.endpoint(key.labels).is_some());
    let scope = if serves_requests {
        Scope::Requests
    } else {
        Scope::Threads
    };
    sites_in(context, classify, scope)
}

fn sites_in<K: Copy + Ord>(
    context: &Context<'_>,
    classify: impl Fn(&str, &str) -> Option<K>,
    scope: Scope,
) -> (u64, BTreeMap<(K, FrameId), Site>) {
    let profile = context.profile;
    let mut sites: BTreeMap<(K, FrameId), Site> = BTreeMap::new();
    let mut kinds: HashMap<FrameId, Option<K>> = HashMap::new();
    let mut inside: HashMap<ThreadId, Option<(K, FrameId)>> = HashMap::new();
    let mut with_sites: BTreeSet<ThreadId> = BTreeSet::new();
    for run in profile.runs() {
        let endpoint = profile.endpoint(run.labels);
        let in_scope = endpoint.is_some() || scope == Scope::Threads;
        let site = match run.stack {
            RunStack::Stack(stack) if in_scope => operation(context, stack, &classify, &mut kinds),
            _ => None,
        };
        let previous = inside.insert(run.thread, site).flatten();
        let Some(key) = site else { continue };
        with_sites.insert(run.thread);
        let entry = sites.entry(key).or_default();
        entry.scope = scope;
        entry.samples += run.samples;
        if previous != Some(key) {
            entry.episodes += 1;
        }
        if let Some(endpoint) = endpoint {
            entry.endpoints.insert(profile.str(endpoint).to_string());
        }
        if let RunStack::Stack(stack) = run.stack {
            entry.stack = entry.stack.or(stack);
        }
    }
    let measured: u64 = match scope {
        Scope::Requests => profile
            .samples()
            .filter(|(key, _)| profile.endpoint(key.labels).is_some())
            .map(|(_, count)| count)
            .sum(),
        Scope::Threads => profile
            .samples()
            .filter(|(key, _)| with_sites.contains(&key.thread))
            .map(|(_, count)| count)
            .sum(),
    };
    if measured == 0 {
        sites.clear();
    }
    (measured, sites)
}

/// The kind of operation a stack is in (its outermost recognised frame)
/// and the program's frame that called into the library for it.
pub(crate) fn operation<K: Copy>(
    context: &Context<'_>,
    stack: Option<StackId>,
    classify: &impl Fn(&str, &str) -> Option<K>,
    kinds: &mut HashMap<FrameId, Option<K>>,
) -> Option<(K, FrameId)> {
    let frames = context.profile.frames_root_first(stack);
    let position = frames.iter().position(|&frame| {
        kinds
            .entry(frame)
            .or_insert_with(|| classify(context.function(frame), context.file(frame)))
            .is_some()
    })?;
    let kind = kinds[&frames[position]]?;
    let caller = frames[..position]
        .iter()
        .rev()
        .copied()
        .find(|&f| context.is_user_frame(f))?;
    Some((kind, caller))
}
