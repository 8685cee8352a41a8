//! The reader over random and hostile memory: it must always return, with an
//! error or a bounded result, and never panic, hang or allocate without bound.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use pydx_cpython::{FrameRunning, Layout, PythonReader, PythonVersion, WalkError};
use pydx_remote::FakeMemory;

/// Where the random memory image starts.
const BASE: u64 = 0x10_0000;
/// Size of the random memory image.
const SIZE: usize = 64 * 1024;

fn layouts() -> Vec<Layout> {
    (8..=12)
        .map(|minor| Layout::from_tables(PythonVersion::new(3, minor, 0)).unwrap())
        .collect()
}

/// Memory where most words are pointers back into the image, so that walks
/// go deep, mixed with random words and small integers.
fn hostile_memory() -> impl Strategy<Value = FakeMemory> {
    proptest::collection::vec((0u8..4, any::<u64>()), SIZE / 8).prop_map(|words| {
        let bytes: Vec<u8> = words
            .into_iter()
            .flat_map(|(kind, raw)| {
                let word = match kind {
                    0 | 1 => (BASE + (raw % SIZE as u64)) & !7,
                    2 => raw % 64,
                    _ => raw,
                };
                word.to_le_bytes()
            })
            .collect();
        let mut memory = FakeMemory::default();
        memory.insert(BASE, bytes);
        memory
    })
}

/// Runs every entry point of the reader from `start` and returns how long it took.
fn exercise(memory: &FakeMemory, layout: Layout, start: u64) -> Duration {
    let began = Instant::now();
    let mut reader = PythonReader::new(memory, layout);
    let interpreters = reader.interpreters(start).unwrap_or_default();
    for &interp in interpreters.iter().take(4) {
        let _ = reader.gil(start, interp);
        let _ = reader.thread_names(interp);
        if let Ok(states) = reader.thread_states(interp) {
            if let Ok(stacks) = reader.stacks(&states) {
                for stack in stacks.into_iter().flatten() {
                    for frame in stack.frames.iter().take(8) {
                        let _ = reader.locals(frame);
                        let _ = reader.locals_in_full(frame);
                    }
                }
            }
        }
    }
    let _ = reader.read_str(start);
    let _ = reader.read_value(start);
    let _ = reader.read_value_with_items(start, 2);
    let _ = reader.dict_items(start, 1000);
    let _ = reader.instance_attr(start, "_name");
    let _ = reader.sequence_items(start, 1000);
    began.elapsed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_memory_never_panics_or_hangs(memory in hostile_memory(), start in 0u64..(SIZE as u64 / 8)) {
        for layout in layouts() {
            let elapsed = exercise(&memory, layout, BASE + start * 8);
            prop_assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
        }
    }
}

/// A tiny hand-made image: one interpreter, one thread, frames as given.
fn image_with_frames(frame_links: &[(u64, u64)]) -> (FakeMemory, Layout, u64) {
    let layout = Layout::from_tables(PythonVersion::new(3, 9, 0)).unwrap();
    let (runtime, interp, tstate) = (0x1000u64, 0x2000u64, 0x3000u64);
    let mut memory = FakeMemory::default();
    memory.insert(runtime, vec![0; 0x600]);
    memory.insert(interp, vec![0; 0x400]);
    memory.insert(tstate, vec![0; 0x200]);
    memory.write_u64(runtime + layout.runtime_interpreters_head, interp);
    memory.write_u64(interp + layout.interp_threads_head, tstate);
    let first = frame_links.first().map_or(0, |&(addr, _)| addr);
    if let pydx_cpython::FrameEntry::Direct(offset) = layout.tstate_frame {
        memory.write_u64(tstate + offset, first);
    }
    for &(addr, back) in frame_links {
        memory.insert(addr, vec![0; 0x200]);
        memory.write_u64(addr + layout.frame_previous, back);
        memory.write_u64(addr + layout.frame_code, 0x9000);
        if let Some(FrameRunning::ExecutingFlag(offset)) = layout.frame_running {
            memory.write(addr + offset, &[1]);
        }
    }
    (memory, layout, interp)
}

#[test]
fn a_cycle_in_the_frame_chain_is_an_error() {
    let (memory, layout, interp) = image_with_frames(&[(0x4000, 0x5000), (0x5000, 0x4000)]);
    let mut reader = PythonReader::new(&memory, layout);
    let states = reader.thread_states(interp).unwrap();
    let stacks = reader.stacks(&states[..1]).unwrap();
    assert!(
        matches!(
            stacks[0],
            Err(WalkError::Invalid {
                what: "frame chain",
                ..
            })
        ),
        "{:?}",
        stacks[0]
    );
}

#[test]
fn a_cycle_in_the_thread_list_is_an_error() {
    let (mut memory, layout, interp) = image_with_frames(&[]);
    memory.write_u64(0x3000 + layout.tstate_next, 0x3000);
    let reader = PythonReader::new(&memory, layout);
    assert_eq!(
        reader.thread_states(interp).unwrap_err(),
        WalkError::Invalid {
            what: "thread list",
            addr: 0x3000
        }
    );
}

#[test]
fn a_huge_string_length_is_read_only_up_to_the_cap() {
    let layout = Layout::from_tables(PythonVersion::new(3, 12, 0)).unwrap();
    let mut memory = FakeMemory::default();
    // A compact ASCII str whose length claims 2^39 characters, followed by
    // enough readable bytes for the capped read.
    let mut object = vec![b'a'; 0x28 + 2 * pydx_cpython::MAX_STRING_CHARS];
    object[..0x28].fill(0);
    memory.insert(0x10000, object);
    memory.write_u64(0x10008, 0x2000);
    memory.write_u64(0x10010, 1 << 39);
    memory.write(0x10020, &(0b0110_0100u32).to_le_bytes());
    memory.insert(0x2000, vec![0; 0x200]);
    memory.write_u64(0x2018, 0x3000);
    memory.write_u64(0x20a8, 1 << 28);
    memory.insert(0x3000, b"str\0".to_vec());
    let mut reader = PythonReader::new(&memory, layout);
    let text = reader.read_str(0x10000).unwrap();
    assert_eq!(text.len(), pydx_cpython::MAX_STRING_CHARS);
}

#[test]
fn a_deep_but_valid_chain_is_cut_at_the_depth_limit() {
    let links: Vec<(u64, u64)> = (0..5000u64)
        .map(|i| {
            (
                0x10_0000 + i * 0x200,
                if i == 4999 {
                    0
                } else {
                    0x10_0000 + (i + 1) * 0x200
                },
            )
        })
        .collect();
    let (memory, layout, interp) = image_with_frames(&links);
    let mut reader = PythonReader::new(&memory, layout);
    let states = reader.thread_states(interp).unwrap();
    let raw = reader.raw_stack(&states[0]).unwrap();
    assert_eq!(raw.frames.len(), pydx_cpython::MAX_STACK_DEPTH);
    assert!(raw.truncated);
}
