//! `pydx record`: sample a process and write a profile.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use pydx_diagnose::{diagnose, Config};
use pydx_profile::{Meta, Profile, OBSERVATION_BUDGET, STACK_BUDGET};
use pydx_render::{
    render, render_report, Format, RenderError, RenderOptions, ReportFormat, ReportOptions,
};
use pydx_sampler::{
    tracer_of, Consistency, NativeCapture, NativeCounts, NativeFrames, ProfileRecorder, Sampler,
    StopReason, Summary,
};

use super::doctor::SourceFiles;
use super::output::{check_writable, write_atomically};
use super::progress::{hz, ProgressLine};
use super::sampling::sampling_options;
use super::target::{interrupt_flag, Target};
use crate::cli::{FormatArg, RecordArgs, SamplingArgs, TargetArgs};

/// Runs `pydx record`.
pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    let format = output_format(args.format, args.output.as_deref())?;
    // The default file goes to the current folder.
    check_writable(args.output.as_deref().unwrap_or(Path::new("pydx-check")))?;
    let (profile, summary, target) = record(&args.target, &args.sampling, args.async_tasks)?;
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| default_path(&target.name(&args.target), format));
    let mut options = RenderOptions::default();
    options.include_idle = args.idle;
    options.gil_only = args.gil;
    options.per_thread = args.threads;
    options.by_function = args.function;
    options.per_task = args.async_tasks;
    options.per_endpoint = args.endpoints;
    options.only_endpoint = args.endpoint.clone();
    options.title = format!("pydx {}", target.name(&args.target));
    // What was recorded is written whatever the filters leave: an endpoint
    // no sample served is named with those that were served, and the whole
    // profile is drawn; a drawing with no sample on a CPU shows idle time.
    let unknown_endpoint = options
        .only_endpoint
        .clone()
        .filter(|wanted| !endpoints_seen(&profile).contains(wanted));
    if unknown_endpoint.is_some() {
        options.only_endpoint = None;
    }
    // A drawing with no sample on a CPU (or holding the GIL, with --gil)
    // would be empty: it shows idle time too.
    let shows_idle = !options.include_idle
        && profile.total_samples() > 0
        && !profile.samples().any(|(key, _)| {
            key.state.activity.counts_as_cpu() && (!options.gil_only || key.state.holds_gil)
        });
    if shows_idle {
        options.include_idle = true;
        options.gil_only = false;
    }
    let mut bytes = Vec::new();
    let rendered = if format == Format::Html {
        // The page shows the program's source: read it where the target
        // saw it.
        let mut roots = vec![PathBuf::from(format!("/proc/{}/root", target.pid))];
        roots.extend(target.root_dir.clone());
        let sources = SourceFiles::new(roots);
        let report = diagnose(&profile, &Config::default(), &sources);
        let report_options = ReportOptions::default();
        render_report(
            ReportFormat::Html,
            &report,
            &profile,
            &sources,
            &report_options,
            &mut bytes,
        )
        .map_err(RenderError::from)
    } else {
        render(format, &profile, &options, &mut bytes)
    };
    match rendered {
        Err(RenderError::NoSamples) => bail!(
            "no samples were recorded: the target ended or stopped before the first one \
             (nothing written to {})",
            path.display()
        ),
        other => other?,
    }
    write_atomically(&path, |out| Ok(std::io::Write::write_all(out, &bytes)?))?;
    eprintln!(
        "pydx: wrote {}: {}",
        path.display(),
        describe(&profile, &summary)
    );
    if args.stats {
        eprintln!("pydx: {}", read_stats(&summary));
        eprintln!("pydx: the profile holds {}", profile.footprint());
    }
    if shows_idle {
        eprintln!(
            "pydx: none of the {} samples {}: the file shows idle time too (as with --idle)",
            profile.total_samples(),
            if args.gil {
                "held the GIL"
            } else {
                "was on a CPU"
            }
        );
    }
    if let Some(wanted) = unknown_endpoint {
        let seen = endpoints_seen(&profile);
        target.end(summary.stop)?;
        bail!(
            "no sample served endpoint \"{wanted}\" (served: {}); the file shows every sample",
            if seen.is_empty() {
                "no requests at all".to_string()
            } else {
                seen.into_iter().collect::<Vec<_>>().join(", ")
            }
        );
    }
    target.end(summary.stop)
}

/// The endpoints the profile's samples served.
fn endpoints_seen(profile: &Profile) -> BTreeSet<String> {
    profile
        .samples()
        .filter_map(|(key, _)| profile.endpoint(key.labels))
        .map(|endpoint| profile.str(endpoint).to_string())
        .collect()
}

/// Samples a target as the arguments say and returns the profile;
/// `async_tasks` also records asyncio tasks.
pub fn record(
    target_args: &TargetArgs,
    sampling: &SamplingArgs,
    async_tasks: bool,
) -> anyhow::Result<(Profile, Summary, Target)> {
    let mut options = sampling_options(sampling, true)?;
    options.async_tasks = async_tasks;
    let stop = interrupt_flag()?;
    let mut target = Target::start(target_args, sampling.subprocesses, sampling.duration)?;
    if let Some(root) = &target.root {
        let pauses_for_native =
            options.native != NativeFrames::None && options.native_capture == NativeCapture::Pause;
        if let (true, Some(tracer)) = (pauses_for_native, tracer_of(root.pid())) {
            anyhow::bail!(
                "--native reads stacks with the process paused, and process {} is traced by \
                 process {tracer}, so it cannot be paused",
                root.pid()
            );
        }
        let resolved = options.consistency.for_process(root);
        if options.consistency == Consistency::ByVersion && resolved == Consistency::NonBlocking {
            let tracer = tracer_of(root.pid()).unwrap_or_default();
            eprintln!(
                "pydx: process {} is traced by process {tracer}, so it cannot be paused: \
                 reading it without pausing (stacks that change while read are left out)",
                root.pid()
            );
        }
    }
    let meta = Meta {
        start_unix_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        rate_hz: sampling.rate,
        mode: match (&target.root, options.native, options.native_capture) {
            (_, NativeFrames::Merged | NativeFrames::All, NativeCapture::Pause) => {
                Consistency::Paused
            }
            (Some(root), _, _) => options.consistency.for_process(root),
            (None, _, _) => options.consistency,
        }
        .as_str()
        .to_string(),
        cpus: pydx_remote::cpus_available(target.pid),
        ..Meta::default()
    };
    let mut recorder = ProfileRecorder::new(meta);
    let mut sampler = Sampler::new(target.pid, target.root.take(), options)
        .context("cannot read the binaries the process maps, for --native")?;
    let mut progress = ProgressLine::new(sampling.rate);
    let summary = sampler.run(&mut recorder, &stop, &mut |p| progress.update(p));
    progress.finish();
    Ok((recorder.finish(&summary), summary, target))
}

/// `--stats`: the system calls made to read the targets, per sample round.
fn read_stats(summary: &Summary) -> String {
    let rounds = summary.rounds.max(1) as f64;
    let reads = summary.reads;
    let micros = |time: Duration| time.as_secs_f64() * 1e6 / rounds;
    let stages = summary.stages;
    let cpu = stages.cpu.map_or(
        "pydx's CPU not known (no /proc/thread-self/schedstat)".to_string(),
        |cpu| format!("{:.1} µs of pydx's CPU", micros(cpu)),
    );
    let threads = summary.thread_reads;
    let pauses = match threads.paused + threads.unpaused {
        0 => String::new(),
        _ => format!(
            "; threads paused {}, read without a pause {} (asleep or waiting for a CPU)",
            threads.paused, threads.unpaused
        ),
    };
    format!(
        "per sample: {:.2} process_vm_readv calls ({:.0} bytes), {:.2} /proc reads \
         ({} rounds, {} + {} system calls in all); {cpu}: reading {:.1} µs, \
         locals {:.1} µs, adding to the profile {:.1} µs{pauses}",
        reads.memory_reads as f64 / rounds,
        reads.bytes_read as f64 / rounds,
        reads.proc_reads as f64 / rounds,
        summary.rounds,
        reads.memory_reads,
        reads.proc_reads,
        micros(stages.reading),
        micros(stages.observing),
        micros(stages.recording),
    )
}

/// The format from `--format`, else from the file name, else flamegraph.
fn output_format(format: Option<FormatArg>, output: Option<&Path>) -> anyhow::Result<Format> {
    if let Some(format) = format {
        return Ok(match format {
            FormatArg::Pprof => Format::Pprof,
            FormatArg::Flamegraph => Format::Flamegraph,
            FormatArg::Speedscope => Format::Speedscope,
            FormatArg::Collapsed => Format::Collapsed,
            FormatArg::Chrometrace => Format::ChromeTrace,
            FormatArg::Pstats => Format::Pstats,
            FormatArg::Gecko => Format::Gecko,
            FormatArg::Html => Format::Html,
        });
    }
    match output {
        None => Ok(Format::Flamegraph),
        Some(path) => Format::from_path(path).with_context(|| {
            format!(
                "cannot tell the format from {}; use --format, or an extension such as \
                 .pb.gz, .svg, .speedscope.json, .txt, .trace.json, .gecko.json or .pstats",
                path.display()
            )
        }),
    }
}

fn default_path(name: &str, format: Format) -> PathBuf {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from(format!("pydx-{name}-{seconds}.{}", format.extension()))
}

/// One line about what was recorded.
fn describe(profile: &Profile, summary: &Summary) -> String {
    let mut thread_samples = 0;
    let mut task_samples = 0;
    let mut threads = std::collections::HashSet::new();
    for (key, count) in profile.samples() {
        if profile.is_waiting_task(key.labels) {
            task_samples += count;
        } else {
            thread_samples += count;
            threads.insert(key.thread);
        }
    }
    let threads = threads.len();
    let processes = summary.processes_seen;
    let why = match summary.stop {
        StopReason::DurationElapsed => "duration reached",
        StopReason::Interrupted => "interrupted",
        StopReason::TargetExited => "the program exited",
    };
    let tasks = if task_samples > 0 {
        format!(" (and {task_samples} of waiting asyncio tasks)")
    } else {
        String::new()
    };
    let last_error = match &summary.last_error {
        Some(error) => format!(" (last: {error})"),
        None => String::new(),
    };
    let unreadable = match (summary.unreadable_stacks, &summary.last_stack_error) {
        (0, _) => String::new(),
        (count, last) => format!(
            ", {count} thread stack{} left out as unreadable{}",
            if count == 1 { "" } else { "s" },
            last.as_ref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        ),
    };
    let paused = match summary.paused_rereads {
        0 => String::new(),
        count => format!(
            ", {count} snapshot{} read again paused (a stack changed while read)",
            if count == 1 { "" } else { "s" }
        ),
    };
    let unattached = match profile.meta.unattached_processes.as_slice() {
        [] => String::new(),
        [first, rest @ ..] => format!(
            ", {} child process{} not sampled ({}{})",
            rest.len() + 1,
            if rest.is_empty() { "" } else { "es" },
            first.reason,
            if rest.is_empty() { "" } else { ", ..." }
        ),
    };
    let failed_memory: u64 = profile
        .meta
        .processes
        .iter()
        .map(|p| p.failed_memory_readings)
        .sum();
    let memory = match failed_memory {
        0 => String::new(),
        1 => ", 1 memory reading failed".to_string(),
        n => format!(", {n} memory readings failed"),
    };
    let cut_short = match profile.samples_cut_short() {
        0 => String::new(),
        n => format!(
            ", {n} sample{} with a stack cut short (more distinct stacks than the {STACK_BUDGET} nodes pydx keeps)",
            if n == 1 { "" } else { "s" }
        ),
    };
    let left_out = match profile.meta.observations_left_out {
        0 => String::new(),
        n => format!(
            ", {n} observation{} of argument values, local types and SQL left out (the first {OBSERVATION_BUDGET} distinct ones are kept)",
            if n == 1 { "" } else { "s" }
        ),
    };
    let native = summary.native.map(describe_native).unwrap_or_default();
    format!(
        "{thread_samples} samples{tasks} of {} thread{} in {} process{} over {:.1} s ({} Hz achieved of {} requested), {} error{}{last_error}{unreadable}{paused}{unattached}{memory}{cut_short}{left_out}{native}; {}",
        threads,
        if threads == 1 { "" } else { "s" },
        processes,
        if processes == 1 { "" } else { "es" },
        summary.elapsed.as_secs_f64(),
        hz(summary.rate_hz()),
        hz(profile.meta.rate_hz),
        summary.errors,
        if summary.errors == 1 { "" } else { "s" },
        why
    )
}

/// The summary's clause on native stacks (`--native`): how many were
/// merged, and how many could not be, or stopped early.
fn describe_native(counts: NativeCounts) -> String {
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut clause = format!(
        ", {} native stack{} merged",
        counts.merged,
        plural(counts.merged)
    );
    if counts.asleep > 0 {
        clause.push_str(&format!(
            " ({} of threads asleep in a system call, read without pausing them)",
            counts.asleep
        ));
    }
    if counts.cut_short > 0 {
        clause.push_str(&format!(
            " ({} cut short: a binary without unwind information, or unreadable stack memory)",
            counts.cut_short
        ));
    }
    let kept = [
        (
            counts.mismatched,
            "that did not fit the Python stack".to_string(),
        ),
        (
            counts.changed,
            "whose Python stack changed around the kernel's copy".to_string(),
        ),
        (
            counts.unsampled,
            format!(
                "thread stack{} without a recent copy from the kernel (not running lately)",
                plural(counts.unsampled)
            ),
        ),
    ];
    for (count, what) in kept.into_iter().filter(|(count, _)| *count > 0) {
        clause.push_str(&format!(", {count} {what} (kept with Python frames only)"));
    }
    clause
}
