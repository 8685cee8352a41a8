//! Python's `pstats` format (what `cProfile` writes): `python -m pstats`,
//! snakeviz and other tools built on it open it.
//!
//! The file is a `marshal`ed dict from `(file, first line, function)` to
//! `(primitive calls, calls, own seconds, cumulative seconds, callers)`,
//! `callers` mapping each calling function to the same four numbers for
//! the calls it made. A sampler counts samples, not calls: both call
//! columns hold the samples in which the function was on the stack (for a
//! caller, in which it called this function), and the times are the
//! measured time of those samples.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};

use pydx_profile::{FrameId, Profile};

use crate::frames::FrameNamer;
use crate::{RenderError, RenderOptions};

/// `(file, first line, function)`, as pstats keys its functions.
type FunctionKey = (String, u32, String);

/// Samples and seconds of a function, or of one caller's calls of it.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    samples: u64,
    own_seconds: f64,
    cumulative_seconds: f64,
}

#[derive(Debug, Default)]
struct Entry {
    totals: Totals,
    callers: BTreeMap<FunctionKey, Totals>,
}

/// Writes the samples shown (see [`crate::write_collapsed`]) in Python's
/// pstats format.
///
/// Fails with [`RenderError::NoSamples`], before writing anything, when no
/// sample passes the filters.
pub fn write_pstats(
    profile: &Profile,
    options: &RenderOptions,
    out: impl Write,
) -> Result<(), RenderError> {
    let namer = FrameNamer::new(profile, options);
    let key_of = |frame: FrameId| -> FunctionKey {
        let frame = profile.frame_info(frame);
        (
            profile.str(frame.file).to_string(),
            frame.first_line,
            profile.str(frame.function).to_string(),
        )
    };
    let mut entries: BTreeMap<FunctionKey, Entry> = BTreeMap::new();
    for (key, tally) in profile.timed_samples() {
        if !namer.keeps(key.state, key.labels) {
            continue;
        }
        let seconds = tally.nanos as f64 / 1e9;
        let frames: Vec<FunctionKey> = profile
            .frames_innermost_first(key.stack)
            .into_iter()
            .map(key_of)
            .collect();
        let mut counted: Vec<&FunctionKey> = Vec::new();
        let mut edges: Vec<(&FunctionKey, &FunctionKey)> = Vec::new();
        for (depth, function) in frames.iter().enumerate() {
            let entry = entries.entry(function.clone()).or_default();
            if depth == 0 {
                entry.totals.own_seconds += seconds;
            }
            // Once per sample, however deep a function recursed.
            if !counted.contains(&function) {
                counted.push(function);
                entry.totals.samples += tally.count;
                entry.totals.cumulative_seconds += seconds;
            }
            let Some(caller) = frames.get(depth + 1) else {
                continue;
            };
            let edge = entry.callers.entry(caller.clone()).or_default();
            if depth == 0 {
                edge.own_seconds += seconds;
            }
            if !edges.contains(&(caller, function)) {
                edges.push((caller, function));
                edge.samples += tally.count;
                edge.cumulative_seconds += seconds;
            }
        }
    }
    if entries.is_empty() {
        return Err(RenderError::NoSamples);
    }
    let mut out = BufWriter::new(out);
    let mut marshal = Marshal(&mut out);
    marshal.dict_start()?;
    for (function, entry) in &entries {
        marshal.function_key(function)?;
        marshal.tuple_start(5)?;
        marshal.totals(&entry.totals)?;
        marshal.dict_start()?;
        for (caller, totals) in &entry.callers {
            marshal.function_key(caller)?;
            marshal.tuple_start(4)?;
            marshal.totals(totals)?;
        }
        marshal.dict_end()?;
    }
    marshal.dict_end()?;
    out.flush()?;
    Ok(())
}

/// Writes the few `marshal` types pstats needs (format version 2 and
/// later: binary floats).
struct Marshal<W>(W);

impl<W: Write> Marshal<W> {
    fn dict_start(&mut self) -> io::Result<()> {
        self.0.write_all(b"{")
    }

    fn dict_end(&mut self) -> io::Result<()> {
        self.0.write_all(b"0")
    }

    fn tuple_start(&mut self, len: u8) -> io::Result<()> {
        self.0.write_all(&[b')', len])
    }

    fn int(&mut self, value: u64) -> io::Result<()> {
        // TYPE_INT holds 32 bits; sample counts beyond are clamped.
        let value = i32::try_from(value).unwrap_or(i32::MAX);
        self.0.write_all(b"i")?;
        self.0.write_all(&value.to_le_bytes())
    }

    fn float(&mut self, value: f64) -> io::Result<()> {
        self.0.write_all(b"g")?;
        self.0.write_all(&value.to_le_bytes())
    }

    fn str(&mut self, value: &str) -> io::Result<()> {
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.0.write_all(b"u")?;
        self.0.write_all(&len.to_le_bytes())?;
        self.0.write_all(&value.as_bytes()[..len as usize])
    }

    fn function_key(&mut self, (file, line, function): &FunctionKey) -> io::Result<()> {
        self.tuple_start(3)?;
        self.str(file)?;
        self.int(u64::from(*line))?;
        self.str(function)
    }

    /// `cc, nc, tt, ct` (the callers dict, if any, follows).
    fn totals(&mut self, totals: &Totals) -> io::Result<()> {
        self.int(totals.samples)?;
        self.int(totals.samples)?;
        self.float(totals.own_seconds)?;
        self.float(totals.cumulative_seconds)
    }
}
