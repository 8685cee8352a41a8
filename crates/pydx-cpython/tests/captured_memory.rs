//! The reader over memory captured from real interpreters, then damaged.
//!
//! Random memory rarely gets past the first pointer; memory captured from a
//! running program leads every walker (threads, frames, line tables, locals,
//! asyncio tasks, requests) deep into real objects. Each case overwrites a
//! few of the words the undamaged walk read, with values chosen to mislead
//! (pointers into other objects, neighbours, small and huge numbers, flipped
//! bits), and runs every walker again. Every case must return, within a time
//! bound and a bound on memory allocated, without a panic.
//!
//! `PYDX_FUZZ_CASES` sets the number of cases per capture (default 3,000)
//! and `PYDX_FUZZ_SEED` varies them (the words damaged also vary from run
//! to run, with the addresses the interpreters were loaded at);
//! the figures printed at the end are the ones `bench/results/reliability.md`
//! reports for a long run.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pydx_cpython::{AsyncioDebugOffsets, Layout, PythonProcess, PythonReader};
use pydx_remote::{FakeMemory, MemoryReader, ReadError};
use pydx_testkit::{interpreter, SeededRandom};

/// Bytes allocated now, and the most since the last reset.
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak.
struct CountingAllocator;

// SAFETY: every call is passed on to the system allocator unchanged; the
// only addition is counting, which cannot affect the allocation.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let now = ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(pointer, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Longest a case may take.
const CASE_TIME: Duration = Duration::from_secs(2);
/// Most memory a case may allocate beyond what was live when it began.
const CASE_ALLOCATION: usize = 256 << 20;
/// Mappings larger than this are not captured (locale archives, arenas
/// the walk never touches are small enough to keep).
const MAX_MAPPING: u64 = 256 << 20;

/// What one capture of a live interpreter holds.
struct Capture {
    memory: FakeMemory,
    layout: Layout,
    runtime: u64,
    debug: Option<AsyncioDebugOffsets>,
}

/// Every readable mapping of `pid` (adjacent ones joined), copied while
/// the process is stopped, with what is needed to walk it.
fn capture(pid: u32) -> Capture {
    let mut process = PythonProcess::attach(pid).expect("attach");
    let debug = process.asyncio_debug_offsets();
    let layout = process.reader().layout().clone();
    let runtime = process.runtime();
    signal(pid, "STOP");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mem = File::open(format!("/proc/{pid}/mem")).expect("mem");
    let mut memory = FakeMemory::default();
    let mut current: Option<(u64, Vec<u8>)> = None;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (start, end) = fields[0].split_once('-').expect("range");
        let start = u64::from_str_radix(start, 16).expect("start");
        let end = u64::from_str_radix(end, 16).expect("end");
        let path = fields.get(5).copied().unwrap_or("");
        if !fields[1].starts_with('r')
            || end - start > MAX_MAPPING
            || matches!(path, "[vvar]" | "[vsyscall]" | "[vvar_vclock]")
        {
            continue;
        }
        let mut bytes = vec![0; (end - start) as usize];
        if mem.read_exact_at(&mut bytes, start).is_err() {
            continue;
        }
        current = match current.take() {
            Some((at, mut joined)) if at + joined.len() as u64 == start => {
                joined.extend_from_slice(&bytes);
                Some((at, joined))
            }
            Some((at, joined)) => {
                memory.insert(at, joined);
                Some((start, bytes))
            }
            None => Some((start, bytes)),
        };
    }
    if let Some((at, joined)) = current {
        memory.insert(at, joined);
    }
    signal(pid, "CONT");
    Capture {
        memory,
        layout,
        runtime,
        debug,
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Memory that notes the address of every word it is asked for.
struct RecordingMemory<'a> {
    inner: &'a FakeMemory,
    words: RefCell<BTreeSet<u64>>,
}

impl MemoryReader for RecordingMemory<'_> {
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let first = addr & !7;
        let mut words = self.words.borrow_mut();
        // A long read (a code object's bytecode, a string) counts by its
        // first words only: damage there is what misleads a walker.
        for word in (first..addr + buf.len() as u64).step_by(8).take(16) {
            words.insert(word);
        }
        self.inner.read_into(addr, buf)
    }
}

/// Captured memory with a few words overwritten.
struct DamagedMemory<'a> {
    inner: &'a FakeMemory,
    patches: Vec<(u64, u64)>,
}

impl MemoryReader for DamagedMemory<'_> {
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.inner.read_into(addr, buf)?;
        let end = addr + buf.len() as u64;
        for &(at, value) in &self.patches {
            for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
                let position = at + i as u64;
                if (addr..end).contains(&position) {
                    buf[(position - addr) as usize] = byte;
                }
            }
        }
        Ok(())
    }
}

/// What one walk of the whole reader found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Reached {
    threads: usize,
    frames: usize,
    locals: usize,
    tasks: usize,
}

/// Runs every walker over `memory`, as the sampler and `dump` do.
fn walk(capture: &Capture, memory: impl MemoryReader) -> Reached {
    let mut reached = Reached::default();
    let mut reader = PythonReader::new(memory, capture.layout.clone());
    let Ok(threads) = reader.threads(capture.runtime) else {
        return reached;
    };
    reached.threads = threads.states.len();
    for &(interp, _) in &threads.interpreters {
        let _ = reader.thread_names(interp);
        let states: Vec<_> = threads
            .states
            .iter()
            .filter(|s| s.interp == interp)
            .cloned()
            .collect();
        if let Ok(stacks) = reader.stacks(&states) {
            for stack in stacks.into_iter().flatten() {
                reached.frames += stack.frames.len();
                let _ = reader.http_request(&stack.frames);
                let _ = reader.find_request_count(&stack.frames);
                for frame in &stack.frames {
                    reached.locals += reader.locals(frame).map_or(0, |l| l.len());
                    let _ = reader.locals_in_full(frame);
                }
            }
        }
        if let Ok(mut tasks) = reader.asyncio_tasks(interp, &states, capture.debug.as_ref()) {
            reached.tasks += tasks.len();
            reader.link_awaiters(&mut tasks, capture.debug.as_ref());
        }
    }
    reached
}

/// A misleading value for the word at `at`, which held `old`.
fn damage(random: &mut SeededRandom, words: &[u64], at: u64, old: u64) -> u64 {
    match random.below(9) {
        0 => 0,
        1 => random.next_u64(),
        2 => random.next_u64() % 256,
        3 => u64::MAX - random.next_u64() % 16,
        4 => old ^ (1 << random.below(64)),
        5 => old
            .wrapping_add(8 * (random.below(9) as u64))
            .wrapping_sub(32),
        6 => at,
        7 => words[random.below(words.len())].wrapping_sub(8 * random.below(4) as u64),
        _ => words[random.below(words.len())],
    }
}

/// Damages the capture of `script` run by interpreter `label` `cases`
/// times and walks it; returns how many damaged walks still reached a
/// frame.
fn fuzz(label: &str, script: &str) {
    let python = interpreter(label);
    let child = python.spawn(script, &[]);
    // Let the program settle into its steady state (every task waiting).
    std::thread::sleep(Duration::from_millis(300));
    let capture = capture(child.pid);
    drop(child);
    let recording = RecordingMemory {
        inner: &capture.memory,
        words: RefCell::new(BTreeSet::new()),
    };
    let clean = walk(&capture, &recording);
    let expect_tasks = script == "task_tree.py";
    assert!(
        clean.frames >= 2 && clean.locals >= 5 && (!expect_tasks || clean.tasks >= 10),
        "{label}: the undamaged capture walks too little: {clean:?}"
    );
    let words: Vec<u64> = recording.words.into_inner().into_iter().collect();
    let cases: usize = std::env::var("PYDX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("PYDX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut random = SeededRandom::new(
        0x9e37_79b9_7f4a_7c15 ^ label.len() as u64 ^ (cases as u64) << 20 ^ seed << 40,
    );
    let (mut reached_frame, mut reached_task, mut slowest, mut most_allocated) =
        (0usize, 0usize, Duration::ZERO, 0usize);
    let mut panics = Vec::new();
    for case in 0..cases {
        let mut patches = Vec::new();
        for _ in 0..1 + random.below(4) {
            let at = words[random.below(words.len())];
            let old = capture.memory.read_u64_at(at);
            patches.push((at, damage(&mut random, &words, at, old)));
        }
        let memory = DamagedMemory {
            inner: &capture.memory,
            patches,
        };
        let before = ALLOCATED.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| walk(&capture, &memory)));
        let elapsed = began.elapsed();
        let Ok(reached) = outcome else {
            panics.push(format!("case {case} with {:?}", memory.patches));
            continue;
        };
        let allocated = PEAK.load(Ordering::Relaxed) - before;
        assert!(
            elapsed < CASE_TIME,
            "{label} case {case}: took {elapsed:?} with {:?}",
            memory.patches
        );
        assert!(
            allocated < CASE_ALLOCATION,
            "{label} case {case}: allocated {allocated} bytes with {:?}",
            memory.patches
        );
        reached_frame += usize::from(reached.frames > 0);
        reached_task += usize::from(reached.tasks > 0);
        slowest = slowest.max(elapsed);
        most_allocated = most_allocated.max(allocated);
    }
    println!(
        "{label} {script}: {cases} cases over {} words read by the clean walk ({clean:?}); \
         {} panics; {reached_frame} reached a frame, {reached_task} a task; \
         slowest {slowest:?}, most allocated {} kB",
        words.len(),
        panics.len(),
        most_allocated / 1024
    );
    assert!(
        panics.is_empty(),
        "{label}: panics in {}",
        panics.join("; ")
    );
    assert!(
        reached_frame * 2 > cases,
        "{label}: only {reached_frame} of {cases} damaged walks reached a frame"
    );
}

/// `u64` reads of captured memory, 0 where unmapped.
trait ReadWord {
    fn read_u64_at(&self, addr: u64) -> u64;
}

impl ReadWord for FakeMemory {
    fn read_u64_at(&self, addr: u64) -> u64 {
        let mut bytes = [0; 8];
        self.read_into(addr, &mut bytes)
            .map_or(0, |()| u64::from_le_bytes(bytes))
    }
}

macro_rules! fuzz_per_interpreter {
    ($($name:ident => $label:literal),* $(,)?) => {
        mod tasks {
            $(#[test] fn $name() { super::fuzz($label, "task_tree.py"); })*
        }
        mod locals {
            $(#[test] fn $name() { super::fuzz($label, "locals.py"); })*
        }
    };
}

fuzz_per_interpreter! {
    pyenv_3_8 => "pyenv-3.8",
    pyenv_3_10 => "pyenv-3.10",
    pyenv_3_11 => "pyenv-3.11",
    pyenv_3_12 => "pyenv-3.12",
    sid_3_13 => "sid-3.13",
    sid_3_15 => "sid-3.15",
}
