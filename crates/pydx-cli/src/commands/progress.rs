//! The progress line on stderr while sampling.

use indicatif::{ProgressBar, ProgressStyle};
use pydx_sampler::Progress;

/// Below this share of the requested rate, sampling counts as behind.
const BEHIND_RATIO: f64 = 0.9;

/// A one-line spinner with elapsed time, samples, achieved rate and errors.
/// Hidden when stderr is not a terminal; warnings are printed either way.
pub struct ProgressLine {
    bar: ProgressBar,
    requested_hz: f64,
    warned_behind: bool,
}

impl ProgressLine {
    /// A progress line for sampling at `requested_hz`.
    pub fn new(requested_hz: f64) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        Self {
            bar,
            requested_hz,
            warned_behind: false,
        }
    }

    /// Shows the latest progress and warns once if sampling falls behind.
    pub fn update(&mut self, progress: &Progress) {
        self.bar.set_message(format!(
            "{:.1}s  {} samples  {}/{} Hz  {} process{}  {} errors",
            progress.elapsed.as_secs_f64(),
            progress.rounds,
            hz(progress.rate_hz),
            hz(self.requested_hz),
            progress.processes,
            if progress.processes == 1 { "" } else { "es" },
            progress.errors,
        ));
        self.bar.tick();
        let behind = progress.rate_hz < self.requested_hz * BEHIND_RATIO;
        if behind && progress.elapsed.as_secs_f64() > 1.0 && !self.warned_behind {
            self.warned_behind = true;
            self.bar.suspend(|| {
                eprintln!(
                    "warning: sampling is behind: {} Hz achieved of {} Hz requested \
                     (lower --rate, or sample fewer processes)",
                    hz(progress.rate_hz),
                    hz(self.requested_hz)
                );
            });
        }
    }

    /// Removes the line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A rate in Hz as people write it: `100`, `0.5`, `12.25`.
pub fn hz(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        let text = format!("{rate:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_written() {
        assert_eq!(hz(100.0), "100");
        assert_eq!(hz(1000.4), "1000");
        assert_eq!(hz(0.5), "0.5");
        assert_eq!(hz(12.25), "12.25");
        assert_eq!(hz(82.0), "82");
    }
}
