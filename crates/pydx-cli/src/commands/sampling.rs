//! Sampling options shared by `record`, `top` and `doctor`.

use std::time::Duration;

use anyhow::bail;
use pydx_sampler::{Consistency, NativeCapture, NativeFrames, SamplingOptions};

use crate::cli::{NativeCaptureArg, SamplingArgs};

/// How often `record` and `doctor` read the local variables of hot frames,
/// for the rules that reason about values (a few reads per frame).
const OBSERVE_EVERY: Duration = Duration::from_millis(25);

/// The sampling options the arguments ask for; `observe` turns on reading
/// the local variables of hot frames now and then.
pub fn sampling_options(sampling: &SamplingArgs, observe: bool) -> anyhow::Result<SamplingOptions> {
    if !(sampling.rate > 0.0 && sampling.rate <= 1_000_000.0) {
        bail!(
            "--rate must be more than 0 and at most 1000000 samples per second, not {}",
            sampling.rate
        );
    }
    if sampling
        .duration
        .is_some_and(|d| !(d > 0.0 && d.is_finite()))
    {
        bail!("--duration must be a positive number of seconds");
    }
    Ok(SamplingOptions {
        rate_hz: sampling.rate,
        duration: sampling.duration.map(Duration::from_secs_f64),
        consistency: match (sampling.blocking, sampling.nonblocking) {
            (true, _) => Consistency::Paused,
            (_, true) => Consistency::NonBlocking,
            _ => Consistency::ByVersion,
        },
        subprocesses: sampling.subprocesses,
        observe_every: observe.then_some(OBSERVE_EVERY),
        async_tasks: false,
        requests: observe,
        native: native_frames(sampling.native, sampling.native_all),
        native_capture: match sampling.native_capture {
            NativeCaptureArg::Pause => NativeCapture::Pause,
            NativeCaptureArg::Perf => NativeCapture::Perf {
                period: perf_period(sampling.rate),
            },
        },
    })
}

/// Copies of a running thread's stack the kernel takes per sampling interval
/// with `--native-capture perf`: the newest is merged with the Python stack
/// read at the end of the interval, so more copies make it fresher (it fits
/// more often) at the price of more work in the target.
const PERF_COPIES_PER_INTERVAL: f64 = 4.0;

/// CPU time of a thread between two of the kernel's copies of its stack
/// for sampling at `rate` Hz (at least 50 µs).
fn perf_period(rate: f64) -> Duration {
    Duration::from_secs_f64((1.0 / rate / PERF_COPIES_PER_INTERVAL).max(50e-6))
}

/// The native frames asked for by `--native` and `--native-all`.
pub fn native_frames(native: bool, all: bool) -> NativeFrames {
    match (native, all) {
        (false, _) => NativeFrames::None,
        (true, false) => NativeFrames::Merged,
        (true, true) => NativeFrames::All,
    }
}
