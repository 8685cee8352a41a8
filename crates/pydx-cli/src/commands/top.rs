//! `pydx top`: a live view of where a process spends its time.
//!
//! The sampler runs on a background thread and adds each snapshot to the
//! [`Tallies`] behind a mutex. The main thread copies them into a [`View`]
//! about once a second (and on a key press) and draws it with ratatui; a
//! [`Screen`] puts the terminal back however `top` ends.

use std::io::{self, IsTerminal, Stdout};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use pydx_profile::{Activity, FunctionTime, Meta, SampleKey};
use pydx_sampler::{
    NewProcess, ProfileRecorder, SampleSink, Sampler, StopReason, Summary, ThreadSnapshot,
};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Terminal;

use super::sampling::sampling_options;
use super::target::{interrupt_flag, Target};
use crate::cli::TopArgs;

/// How often the numbers on screen are brought up to date.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The longest wait for a key before checking whether sampling has ended.
const INPUT_WAIT: Duration = Duration::from_millis(100);
/// The row of samples of a thread that was running no Python code.
const NO_PYTHON_FRAMES: &str = "<no Python frames>";
/// The keys, as the footer lists them.
const FOOTER: &str = "q quit  1 sort by own %  2 total %  3 own time  4 total time  \
                      l lines/functions  r reset  p pause";

/// Runs `pydx top`.
pub fn run(args: &TopArgs) -> anyhow::Result<ExitCode> {
    // Checked before anything starts: without a terminal there is nothing
    // to draw on, and no escape code may reach a file or a pipe.
    if !io::stdout().is_terminal() {
        bail!(
            "pydx top draws on a terminal and standard output is not one; in scripts use \
             `pydx record` (a profile) or `pydx dump` (the stacks once)"
        );
    }
    let options = sampling_options(&args.sampling, false)?;
    let interrupted = interrupt_flag()?;
    let mut target = Target::start(
        &args.target,
        args.sampling.subprocesses,
        args.sampling.duration,
    )?;
    let view_options = ViewOptions {
        requested_hz: options.rate_hz,
        filter: SampleFilter {
            include_idle: args.idle,
            gil_only: args.gil,
        },
        sort: SortColumn::OwnPercent,
        by_line: true,
        paused: false,
    };
    let tallies = Mutex::new(Tallies::new(Meta {
        rate_hz: options.rate_hz,
        ..Meta::default()
    }));
    let stop_sampling = AtomicBool::new(false);
    let mut sampler = Sampler::new(target.pid, target.root.take(), options)
        .context("cannot read the binaries the process maps, for --native")?;
    let ending = std::thread::scope(|scope| {
        let sampling = scope.spawn(|| {
            let summary = sampler.run(&mut SharedSink(&tallies), &stop_sampling, &mut |p| {
                lock(&tallies).errors = p.errors;
            });
            lock(&tallies).finish(summary);
        });
        let stop_on_drop = StopOnDrop(&stop_sampling);
        let shown = show(&tallies, view_options, &interrupted, &sampling);
        drop(stop_on_drop);
        let sampled = sampling.join();
        let ending = shown?;
        if sampled.is_err() {
            bail!("sampling stopped because of an internal error");
        }
        Ok(ending)
    })?;
    // Raw mode kept Ctrl-C from the launched program: only pydx saw it.
    target.finish(ending == Ending::Quit)
}

/// How the display ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The user quit: `q`, Esc, or Ctrl-C.
    Quit,
    /// Sampling failed.
    SamplingEnded,
}

/// Draws the view until the user quits or presses Ctrl-C (after sampling
/// ends it keeps the final numbers on screen), or sampling fails.
fn show(
    tallies: &Mutex<Tallies>,
    mut view_options: ViewOptions,
    interrupted: &AtomicBool,
    sampling: &ScopedJoinHandle<'_, ()>,
) -> anyhow::Result<Ending> {
    let mut screen = Screen::enter()?;
    let mut view = View::capture(&lock(tallies), view_options.filter);
    let mut next_refresh = Instant::now() + REFRESH_EVERY;
    let mut changed = true;
    loop {
        if changed {
            screen
                .terminal
                .draw(|frame| draw(frame, &view, &view_options))?;
        }
        let mut recapture = false;
        changed = false;
        let wait = next_refresh
            .saturating_duration_since(Instant::now())
            .min(INPUT_WAIT);
        // crossterm is asked for input only when the terminal has some: a
        // terminal that went away (its window closed, an SSH connection
        // dropped) reads as endless end-of-file, on which crossterm would
        // spin for good.
        let input = match wait_for_input(wait)? {
            Input::HungUp => return Ok(Ending::Quit),
            Input::Ready => event::poll(Duration::ZERO)?,
            Input::None => false,
        };
        if input {
            changed = true;
            if let Event::Key(key) = event::read()? {
                match KeyCommand::from_key(key) {
                    Some(KeyCommand::Quit) => return Ok(Ending::Quit),
                    Some(KeyCommand::Sort(column)) => view_options.sort = column,
                    Some(KeyCommand::ToggleLines) => view_options.by_line = !view_options.by_line,
                    Some(KeyCommand::Reset) => {
                        lock(tallies).reset();
                        recapture = true;
                    }
                    Some(KeyCommand::TogglePause) => view_options.paused = !view_options.paused,
                    None => {}
                }
                recapture |= !view_options.paused;
            }
        }
        if interrupted.load(Ordering::Relaxed) {
            return Ok(Ending::Quit);
        }
        let sampling_ended = sampling.is_finished();
        if sampling_ended && lock(tallies).summary.is_none() {
            return Ok(Ending::SamplingEnded);
        }
        if Instant::now() >= next_refresh {
            next_refresh = Instant::now() + REFRESH_EVERY;
            recapture |= !view_options.paused || (sampling_ended && view.stop.is_none());
        }
        if recapture {
            view = View::capture(&lock(tallies), view_options.filter);
            changed = true;
        }
    }
}

/// What the terminal has for `top` to read.
enum Input {
    /// Something to read.
    Ready,
    /// Nothing yet.
    None,
    /// The terminal is gone.
    HungUp,
}

/// Waits up to `wait` for input on the terminal (standard input).
fn wait_for_input(wait: Duration) -> io::Result<Input> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdin = io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) => Ok(Input::None),
        Ok(_)
            if fds[0]
                .revents()
                .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) =>
        {
            Ok(Input::HungUp)
        }
        Ok(_) => Ok(Input::Ready),
        Err(rustix::io::Errno::INTR) => Ok(Input::None),
        Err(error) => Err(error.into()),
    }
}

/// Locks the tallies. A panic while they were locked cannot leave them in a
/// state worse than a miscounted sample, so a poisoned lock is used anyway.
fn lock(tallies: &Mutex<Tallies>) -> MutexGuard<'_, Tallies> {
    tallies.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sets a stop flag when dropped, so that sampling ends however the display
/// does, a panic included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The terminal in raw mode on the alternate screen.
struct Screen {
    /// Draws on the terminal.
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// Dropped after `terminal`, so the cursor is shown before leaving.
    _restore: RestoreTerminal,
}

impl Screen {
    /// Switches the terminal to raw mode and the alternate screen. A panic
    /// from here on first puts the terminal back, so that its message shows.
    fn enter() -> anyhow::Result<Self> {
        let restore = RestoreTerminal;
        enable_raw_mode().context("pydx top needs a terminal")?;
        execute!(io::stdout(), EnterAlternateScreen)?;
        let report_panic = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            report_panic(info);
        }));
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        Ok(Self {
            terminal,
            _restore: restore,
        })
    }
}

/// Puts the terminal back when dropped.
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode; doing
/// it twice is harmless.
fn restore_terminal() {
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    let _ = disable_raw_mode();
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCommand {
    /// Leave `top`.
    Quit,
    /// Sort the table by this column.
    Sort(SortColumn),
    /// Switch between rows per line and rows per function.
    ToggleLines,
    /// Start counting afresh.
    Reset,
    /// Freeze or unfreeze the numbers on screen.
    TogglePause,
}

impl KeyCommand {
    /// The command of a key press, if it has one.
    fn from_key(key: KeyEvent) -> Option<Self> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(Self::Quit),
            KeyCode::Char('q') | KeyCode::Esc => Some(Self::Quit),
            KeyCode::Char('1') => Some(Self::Sort(SortColumn::OwnPercent)),
            KeyCode::Char('2') => Some(Self::Sort(SortColumn::TotalPercent)),
            KeyCode::Char('3') => Some(Self::Sort(SortColumn::OwnTime)),
            KeyCode::Char('4') => Some(Self::Sort(SortColumn::TotalTime)),
            KeyCode::Char('l') => Some(Self::ToggleLines),
            KeyCode::Char('r') => Some(Self::Reset),
            KeyCode::Char('p') => Some(Self::TogglePause),
            _ => None,
        }
    }
}

/// A column of the function table that rows can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortColumn {
    /// Share of samples in the function itself.
    OwnPercent,
    /// Share of samples with the function anywhere on the stack.
    TotalPercent,
    /// Time in the function itself.
    OwnTime,
    /// Time with the function anywhere on the stack.
    TotalTime,
}

impl SortColumn {
    /// The columns, left to right.
    const ALL: [SortColumn; 4] = [
        Self::OwnPercent,
        Self::TotalPercent,
        Self::OwnTime,
        Self::TotalTime,
    ];

    /// The column's heading.
    fn title(self) -> &'static str {
        match self {
            Self::OwnPercent => "Own %",
            Self::TotalPercent => "Total %",
            Self::OwnTime => "Own time",
            Self::TotalTime => "Total time",
        }
    }

    /// Whether the column counts own samples (rather than total ones).
    fn is_own(self) -> bool {
        matches!(self, Self::OwnPercent | Self::OwnTime)
    }
}

/// Which thread samples count towards the table.
#[derive(Debug, Clone, Copy)]
struct SampleFilter {
    /// Count idle and GIL-waiting samples too.
    include_idle: bool,
    /// Count only samples of a thread holding the GIL.
    gil_only: bool,
}

impl SampleFilter {
    /// Whether a sample of this kind counts.
    fn includes(self, key: &SampleKey) -> bool {
        let activity_counts = self.include_idle || key.state.activity.counts_as_cpu();
        activity_counts && (!self.gil_only || key.state.holds_gil)
    }

    /// What is counted, for the header.
    fn describe(self) -> &'static str {
        match (self.include_idle, self.gil_only) {
            (false, false) => "on-CPU thread samples",
            (true, false) => "thread samples (idle included)",
            (false, true) => "on-CPU thread samples holding the GIL",
            (true, true) => "thread samples holding the GIL",
        }
    }
}

/// How the view is drawn: the fixed options and the user's choices.
#[derive(Debug, Clone, Copy)]
struct ViewOptions {
    /// The sampling rate asked for.
    requested_hz: f64,
    /// Which samples count.
    filter: SampleFilter,
    /// The column rows are sorted by.
    sort: SortColumn,
    /// One row per line (else one per function).
    by_line: bool,
    /// The numbers on screen are frozen.
    paused: bool,
}

/// Totals since sampling started or the counts were last reset.
#[derive(Debug, Clone, Copy, Default)]
struct WindowCounts {
    /// Sampling rounds (every process once).
    rounds: u64,
    /// Snapshots of a process.
    snapshots: u64,
    /// Snapshots in which some thread held the GIL.
    snapshots_holding_gil: u64,
    /// Thread samples on a CPU.
    on_cpu: u64,
    /// Thread samples idle.
    idle: u64,
    /// Thread samples waiting for the GIL.
    gil_wait: u64,
    /// Thread samples in an unknown state.
    unknown: u64,
    /// Thread samples waiting for a CPU.
    cpu_wait: u64,
}

impl WindowCounts {
    /// All thread samples, counted or not.
    fn thread_samples(&self) -> u64 {
        self.on_cpu + self.idle + self.gil_wait + self.unknown + self.cpu_wait
    }
}

/// A process being sampled.
#[derive(Debug, Clone)]
struct ProcessInfo {
    /// Its PID.
    pid: u32,
    /// Its command line.
    command: String,
    /// Its Python version.
    python_version: String,
}

/// Everything counted so far, shared between the sampling thread and the
/// display.
#[derive(Debug)]
struct Tallies {
    /// The samples since counting last started afresh, as a profile: the
    /// table is its per-function and per-line query.
    recorder: ProfileRecorder,
    /// The processes sampled, in the order they appeared.
    processes: Vec<ProcessInfo>,
    /// When, since sampling started, the latest snapshot was taken.
    latest: Duration,
    /// When, since sampling started, counting last started afresh.
    window_start: Duration,
    /// Totals over the window.
    counts: WindowCounts,
    /// When the round being read was taken (the sampler gives every process
    /// of one round the same time).
    round: Option<Duration>,
    /// Threads seen so far in the round being read.
    threads_in_round: usize,
    /// Threads seen in the round before.
    threads_in_last_round: usize,
    /// Process snapshots that failed.
    errors: u64,
    /// How sampling went, once it has ended.
    summary: Option<Summary>,
}

impl Tallies {
    /// Nothing counted yet; `meta` describes the sampling.
    fn new(meta: Meta) -> Self {
        Self {
            recorder: ProfileRecorder::new(meta),
            processes: Vec::new(),
            latest: Duration::ZERO,
            window_start: Duration::ZERO,
            counts: WindowCounts::default(),
            round: None,
            threads_in_round: 0,
            threads_in_last_round: 0,
            errors: 0,
            summary: None,
        }
    }

    /// Counts one snapshot of process `pid`.
    fn add_snapshot(&mut self, pid: u32, elapsed: Duration, threads: &[ThreadSnapshot]) {
        if self.round != Some(elapsed) {
            self.round = Some(elapsed);
            self.threads_in_last_round = self.threads_in_round;
            self.threads_in_round = 0;
            self.counts.rounds += 1;
        }
        self.threads_in_round += threads.len();
        self.latest = elapsed;
        self.counts.snapshots += 1;
        if threads.iter().any(|thread| thread.python.holds_gil) {
            self.counts.snapshots_holding_gil += 1;
        }
        for thread in threads {
            match thread.activity {
                Activity::OnCpu => self.counts.on_cpu += 1,
                Activity::Idle => self.counts.idle += 1,
                Activity::GilWait => self.counts.gil_wait += 1,
                Activity::Unknown => self.counts.unknown += 1,
                Activity::CpuWait => self.counts.cpu_wait += 1,
            }
        }
        self.recorder.add_snapshot(pid, elapsed, threads);
    }

    /// Starts counting afresh from the latest snapshot on.
    fn reset(&mut self) {
        self.window_start = self.latest;
        self.counts = WindowCounts::default();
        self.recorder.forget_samples();
    }

    /// Records how sampling ended.
    fn finish(&mut self, summary: Summary) {
        self.errors = summary.errors;
        self.summary = Some(summary);
    }
}

/// The sampler's sink: counts each snapshot into the shared tallies.
struct SharedSink<'a>(&'a Mutex<Tallies>);

impl SampleSink for SharedSink<'_> {
    fn add_process(&mut self, process: &NewProcess<'_>) {
        let mut tallies = lock(self.0);
        tallies.processes.push(ProcessInfo {
            pid: process.pid,
            command: process.command.clone(),
            python_version: process.python_version.to_string(),
        });
        tallies.recorder.add_process(process);
    }

    fn add_snapshot(&mut self, pid: u32, elapsed: Duration, threads: &[ThreadSnapshot]) {
        lock(self.0).add_snapshot(pid, elapsed, threads);
    }
}

/// One row of the function table.
#[derive(Debug, Clone)]
struct FunctionRow {
    /// `qualname (file:line)`.
    label: String,
    /// Samples where it was the innermost frame.
    own: u64,
    /// Samples where it was on the stack.
    total: u64,
    /// The measured time of its own samples, in nanoseconds.
    own_ns: u64,
    /// The measured time of its total samples, in nanoseconds.
    total_ns: u64,
}

/// A copy of the tallies at one refresh, ready to draw.
#[derive(Debug)]
struct View {
    /// The processes sampled.
    processes: Vec<ProcessInfo>,
    /// How long sampling has run.
    elapsed: Duration,
    /// When, since sampling started, counting last started afresh.
    window_start: Duration,
    /// Totals over the window.
    counts: WindowCounts,
    /// Thread samples that passed the filter and are in the table.
    counted: u64,
    /// Threads in the latest round.
    threads: usize,
    /// Process snapshots that failed.
    errors: u64,
    /// Why sampling stopped, once it has.
    stop: Option<StopReason>,
    /// Rows per line, unsorted.
    by_line: Vec<FunctionRow>,
    /// Rows per function, unsorted.
    by_function: Vec<FunctionRow>,
}

impl View {
    /// Reads the tallies: the table rows are the per-function and per-line
    /// totals of the samples `filter` counts.
    fn capture(tallies: &Tallies, filter: SampleFilter) -> Self {
        let profile = tallies.recorder.profile();
        let include = |key: &SampleKey| filter.includes(key);
        let functions = profile.function_times(include);
        let (frameless, frameless_ns) = profile.frameless_samples(include);
        let label = |function: &FunctionTime, line: u32| match line {
            0 => format!("{} ({})", function.function, function.file),
            line => format!("{} ({}:{line})", function.function, function.file),
        };
        let mut by_function: Vec<FunctionRow> = functions
            .iter()
            .map(|function| FunctionRow {
                label: label(function, function.first_line),
                own: function.self_samples,
                total: function.total_samples,
                own_ns: function.self_ns,
                total_ns: function.total_ns,
            })
            .collect();
        let mut by_line: Vec<FunctionRow> = functions
            .iter()
            .flat_map(|function| {
                function.lines.iter().map(move |(&line, time)| FunctionRow {
                    label: label(function, line),
                    own: time.self_samples,
                    total: time.total_samples,
                    own_ns: time.self_ns,
                    total_ns: time.total_ns,
                })
            })
            .collect();
        if frameless > 0 {
            let row = FunctionRow {
                label: NO_PYTHON_FRAMES.to_string(),
                own: frameless,
                total: frameless,
                own_ns: frameless_ns,
                total_ns: frameless_ns,
            };
            by_function.push(row.clone());
            by_line.push(row);
        }
        Self {
            processes: tallies.processes.clone(),
            elapsed: tallies
                .summary
                .as_ref()
                .map_or(tallies.latest, |s| s.elapsed),
            window_start: tallies.window_start,
            counts: tallies.counts,
            counted: profile
                .samples()
                .filter(|(key, _)| include(key))
                .map(|(_, count)| count)
                .sum(),
            // A round half read must not show too few threads.
            threads: tallies.threads_in_round.max(tallies.threads_in_last_round),
            errors: tallies.errors,
            stop: tallies.summary.as_ref().map(|s| s.stop),
            by_line,
            by_function,
        }
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is 0).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Draws the whole screen.
fn draw(frame: &mut ratatui::Frame<'_>, view: &View, options: &ViewOptions) {
    let header = header_lines(view, options);
    let [header_area, table_area, footer_area] = Layout::vertical([
        Constraint::Length(header.len() as u16),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header), header_area);
    let visible_rows = usize::from(table_area.height.saturating_sub(1));
    frame.render_widget(function_table(view, options, visible_rows), table_area);
    frame.render_widget(
        Paragraph::new(FOOTER).style(Style::new().add_modifier(Modifier::REVERSED)),
        footer_area,
    );
}

/// The lines above the table: target, sampling, thread states, what is
/// counted, and a blank line.
fn header_lines(view: &View, options: &ViewOptions) -> Vec<Line<'static>> {
    let mut notes = Vec::new();
    match view.stop {
        Some(StopReason::TargetExited) => notes.push("process exited"),
        Some(StopReason::DurationElapsed) => notes.push("duration reached, sampling stopped"),
        // Sampling is only interrupted when top quits: nothing is drawn then.
        Some(StopReason::Interrupted) | None => {}
    }
    if options.paused {
        notes.push("paused");
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("  [{}]", notes.join(", "))
    };
    // The command comes last: it is the part that may not fit.
    let target = match view.processes.split_first() {
        None => format!("waiting for a Python process{notes}"),
        Some((root, children)) => {
            let children = if children.is_empty() {
                String::new()
            } else {
                format!(" (+{} more processes)", children.len())
            };
            format!(
                "PID {}{children}  Python {}{notes}  {}",
                root.pid, root.python_version, root.command
            )
        }
    };
    let counts = &view.counts;
    let window = view.elapsed.saturating_sub(view.window_start);
    let achieved_hz = counts.rounds as f64 / window.as_secs_f64().max(1e-9);
    let since_reset = if view.window_start.is_zero() {
        String::new()
    } else {
        format!(
            "  (counting since reset at {:.1}s)",
            view.window_start.as_secs_f64()
        )
    };
    let thread_samples = counts.thread_samples();
    let counting = format!(
        "{} {}, by {}, sorted by {}",
        view.counted,
        options.filter.describe(),
        if options.by_line { "line" } else { "function" },
        options.sort.title()
    );
    vec![
        Line::from(format!("pydx top  {target}"))
            .style(Style::new().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "Elapsed {:.1}s  Samples {}  Rate {:.0}/{:.0} Hz  Threads {}  Errors {}{since_reset}",
            view.elapsed.as_secs_f64(),
            counts.rounds,
            achieved_hz,
            options.requested_hz,
            view.threads,
            view.errors,
        )),
        Line::from(format!(
            "GIL held {:.1}% of samples  Thread samples: {:.1}% on CPU, {:.1}% idle, {:.1}% waiting for GIL{}",
            percent(counts.snapshots_holding_gil, counts.snapshots),
            percent(counts.on_cpu, thread_samples),
            percent(counts.idle, thread_samples),
            percent(counts.gil_wait, thread_samples),
            if counts.cpu_wait > 0 {
                format!(", {:.1}% waiting for a CPU", percent(counts.cpu_wait, thread_samples))
            } else {
                String::new()
            },
        )),
        Line::from(format!("Counting {counting}")),
        Line::default(),
    ]
}

/// The table of the `visible_rows` functions (or lines) first in the sort
/// order.
fn function_table(view: &View, options: &ViewOptions, visible_rows: usize) -> Table<'static> {
    let mut rows: Vec<&FunctionRow> = if options.by_line {
        view.by_line.iter().collect()
    } else {
        view.by_function.iter().collect()
    };
    if options.sort.is_own() {
        rows.sort_by(|a, b| (b.own, b.total, &a.label).cmp(&(a.own, a.total, &b.label)));
    } else {
        rows.sort_by(|a, b| (b.total, b.own, &a.label).cmp(&(a.total, a.own, &b.label)));
    }
    let counted = view.counted;
    let right = |text: String| Cell::from(Line::from(text).right_aligned());
    let body = rows.into_iter().take(visible_rows).map(|row| {
        Row::new([
            right(format!("{:.1}", percent(row.own, counted))),
            right(format!("{:.1}", percent(row.total, counted))),
            right(format!("{:.2}s", row.own_ns as f64 / 1e9)),
            right(format!("{:.2}s", row.total_ns as f64 / 1e9)),
            Cell::from(row.label.clone()),
        ])
    });
    let mut titles: Vec<Cell<'static>> = SortColumn::ALL
        .iter()
        .map(|&column| {
            let title = right(column.title().to_string());
            if column == options.sort {
                title.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                title
            }
        })
        .collect();
    titles.push(Cell::from(if options.by_line {
        "Function (file:line)"
    } else {
        "Function (file:first line)"
    }));
    Table::new(
        body,
        [
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(titles).style(Style::new().add_modifier(Modifier::BOLD)))
}
