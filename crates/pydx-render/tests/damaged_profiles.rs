//! `pydx doctor FILE` on damaged saved profiles: every saved corpus
//! profile (real recordings), decompressed, with bytes overwritten, varints
//! made huge, ranges cut or repeated, is read, diagnosed and rendered in
//! every format. A damaged file must give an error or a report, never a
//! panic, and within a time bound.
//!
//! `PYDX_FUZZ_CASES` sets the number of cases per profile (default 4).

use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pydx_diagnose::{diagnose, Config, SourceMap};
use pydx_profile::read_pprof;
use pydx_render::{render, render_report, Format, RenderOptions, ReportFormat, ReportOptions};
use pydx_testkit::SeededRandom;

/// Longest one case may take (debug build).
const CASE_TIME: Duration = Duration::from_secs(20);

fn saved_profiles() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/profiles");
    let mut profiles: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus/profiles")
        .map(|entry| {
            let path = entry.unwrap().path();
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_end(&mut bytes)
                .unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    profiles.sort();
    assert!(
        profiles.len() >= 50,
        "only {} saved profiles",
        profiles.len()
    );
    profiles
}

/// `bytes` with one to four kinds of damage.
fn damage(random: &mut SeededRandom, bytes: &[u8]) -> Vec<u8> {
    let mut damaged = bytes.to_vec();
    for _ in 0..1 + random.below(4) {
        let at = random.below(damaged.len());
        match random.below(8) {
            // A varint's value (or a string's byte) changed, its length kept:
            // the file still decodes, with wrong ids, counts and names.
            0..=3 => damaged[at] = (damaged[at] & 0x80) | (random.next_u64() as u8 & 0x7f),
            4 => damaged[at] ^= 1 << random.below(8),
            // A varint as large as it can be.
            5 => {
                let end = (at + 10).min(damaged.len());
                for byte in &mut damaged[at..end - 1] {
                    *byte = 0xff;
                }
                damaged[end - 1] = 0x01;
            }
            6 => damaged.truncate(at.max(1)),
            _ => {
                let length = random.below(64).min(damaged.len() - at);
                let piece = damaged[at..at + length].to_vec();
                let to = random.below(damaged.len());
                damaged.splice(to..to, piece);
            }
        }
    }
    damaged
}

/// Reads, diagnoses and renders `bytes` every way `pydx doctor` and
/// `pydx record` would.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(profile) = read_pprof(bytes) else {
        return false;
    };
    let sources = SourceMap::default();
    let report = diagnose(&profile, &Config::default(), &sources);
    for format in [
        ReportFormat::Text,
        ReportFormat::Json,
        ReportFormat::Sarif,
        ReportFormat::Html,
    ] {
        let options = ReportOptions::default();
        render_report(
            format,
            &report,
            &profile,
            &sources,
            &options,
            std::io::sink(),
        )
        .unwrap();
    }
    let mut options = RenderOptions::default();
    options.include_idle = true;
    for format in Format::ALL {
        let _ = render(format, &profile, &options, std::io::sink());
    }
    true
}

#[test]
fn damaged_saved_profiles_give_an_error_or_a_report() {
    let cases: usize = std::env::var("PYDX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut random = SeededRandom::new(0x5eed_cafe_f00d ^ cases as u64);
    let (mut total, mut read, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let mut panics = Vec::new();
    for (name, bytes) in saved_profiles() {
        for case in 0..cases {
            let damaged = damage(&mut random, &bytes);
            let began = Instant::now();
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| exercise(&damaged)));
            let elapsed = began.elapsed();
            total += 1;
            match outcome {
                Ok(was_read) => read += usize::from(was_read),
                Err(_) => panics.push(format!("{name} case {case}")),
            }
            assert!(elapsed < CASE_TIME, "{name} case {case} took {elapsed:?}");
            slowest = slowest.max(elapsed);
        }
    }
    println!(
        "{total} damaged profiles: {read} read as profiles and diagnosed, the rest refused; \
         {} panics; slowest {slowest:?}",
        panics.len()
    );
    assert!(panics.is_empty(), "panics: {}", panics.join(", "));
    assert!(
        read * 10 > total,
        "only {read} of {total} damaged profiles were read at all"
    );
}
