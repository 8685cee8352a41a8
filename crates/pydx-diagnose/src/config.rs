//! Thresholds of the rules, with defaults taken from established tools, and
//! overridable from a `pydx.toml`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Every rule's thresholds. Each section of `pydx.toml` overrides one rule;
/// a missing key keeps its default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PYDX-GIL001.
    pub gil: GilConfig,
    /// PYDX-ASYNC001.
    pub event_loop: EventLoopConfig,
    /// PYDX-CPU001.
    pub numeric_loop: NumericLoopConfig,
    /// PYDX-CPU002.
    pub hot_spot: HotSpotConfig,
    /// PYDX-CACHE001.
    pub cache: CacheConfig,
    /// PYDX-ASYNC002.
    pub sequential_awaits: SequentialAwaitsConfig,
    /// PYDX-CONN001.
    pub connections: ConnectionsConfig,
    /// PYDX-DB001, DB002, DB003 and DB004.
    pub orm: OrmConfig,
    /// PYDX-MEM001.
    pub memory: MemoryConfig,
    /// PYDX-WORKER001, WORKER002 and WORKER003.
    pub workers: WorkersConfig,
    /// PYDX-WEB001 and PYDX-WEB002.
    pub framework: FrameworkConfig,
}

/// Thresholds of PYDX-GIL001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GilConfig {
    /// Fewest threads that must be waiting for the GIL at times.
    pub min_threads: usize,
    /// Least share of those threads' time spent waiting for the GIL.
    pub min_wait_share: f64,
    /// Least share of its busy time a waiting thread must also run Python
    /// code, holding the GIL, to count as CPU-bound (light threads that
    /// wake, wait and sleep do not).
    pub min_running_share: f64,
    /// Least time, in seconds, a waiting thread must hold the GIL to count.
    pub min_running_seconds: f64,
}

impl Default for GilConfig {
    fn default() -> Self {
        Self {
            min_threads: 2,
            min_wait_share: 0.20,
            min_running_share: 0.10,
            min_running_seconds: 0.2,
        }
    }
}

/// Thresholds of PYDX-ASYNC001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLoopConfig {
    /// A callback that keeps the loop this long is blocking it (asyncio's
    /// own `slow_callback_duration` is 100 ms).
    pub slow_callback_ms: f64,
    /// A synchronous wait (sleep, I/O) in a coroutine this long counts when
    /// it recurs, shorter than a slow callback.
    pub blocking_wait_ms: f64,
}

impl Default for EventLoopConfig {
    fn default() -> Self {
        Self {
            slow_callback_ms: 100.0,
            blocking_wait_ms: 20.0,
        }
    }
}

/// Thresholds of PYDX-CPU001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumericLoopConfig {
    /// Least share of the on-CPU samples spent in the loop.
    pub min_cpu_share: f64,
}

impl Default for NumericLoopConfig {
    fn default() -> Self {
        Self {
            min_cpu_share: 0.05,
        }
    }
}

/// Thresholds of PYDX-CPU002.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotSpotConfig {
    /// Least share of the on-CPU samples spent in the function itself.
    pub min_cpu_share: f64,
    /// Least share of the recording's wall time (one CPU's worth) the
    /// function spent interpreting Python.
    pub min_wall_share: f64,
}

impl Default for HotSpotConfig {
    fn default() -> Self {
        Self {
            min_cpu_share: 0.20,
            min_wall_share: 0.10,
        }
    }
}

/// Thresholds of PYDX-CACHE001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Least share of the on-CPU samples spent in the function and its callees.
    pub min_cpu_share: f64,
    /// Fewest calls whose arguments were seen.
    pub min_calls: u64,
    /// Most distinct argument sets per call seen (0.5: half the calls repeat one).
    pub max_distinct_ratio: f64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_cpu_share: 0.05,
            min_calls: 10,
            max_distinct_ratio: 0.5,
        }
    }
}

/// Thresholds of PYDX-ASYNC002.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequentialAwaitsConfig {
    /// Least time that running the awaits concurrently would save per call
    /// (Sentry flags consecutive DB queries that could save 100 ms).
    pub min_saved_ms: f64,
}

impl Default for SequentialAwaitsConfig {
    fn default() -> Self {
        Self {
            min_saved_ms: 100.0,
        }
    }
}

/// Thresholds of PYDX-CONN001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Least share of the request-serving samples spent opening connections
    /// of one kind at one call site.
    pub min_share: f64,
    /// Fewest separate connection openings seen.
    pub min_connects: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            min_share: 0.05,
            min_connects: 3,
        }
    }
}

/// Thresholds of the database rules: PYDX-DB001 (lazy loads in a loop),
/// DB002 (queries in a loop), DB003 (writes in a loop) and DB004 (slow
/// queries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrmConfig {
    /// Least share of the request-serving samples in the database calls
    /// from one line (for DB004, in its slow calls).
    pub min_share: f64,
    /// Fewest separate stretches of calls seen (for DB004, slow calls).
    pub min_queries: u64,
    /// A database call that keeps the thread this long is slow (DB004);
    /// Laravel Telescope's query watcher marks queries slow from 100 ms.
    pub slow_query_ms: f64,
}

impl Default for OrmConfig {
    fn default() -> Self {
        Self {
            min_share: 0.10,
            min_queries: 3,
            slow_query_ms: 100.0,
        }
    }
}

/// Thresholds of PYDX-MEM001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Least rise of the fitted RSS line over the recording, in MiB.
    pub min_growth_mib: f64,
    /// Least rise as a share of the starting RSS.
    pub min_growth_share: f64,
    /// Least R² of the line through the readings.
    pub min_fit: f64,
    /// Least rate of rise over the later half of the readings, as a share
    /// of the rate over the earlier half: growth that slows down is a
    /// process warming up, not a leak.
    pub min_steadiness: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            min_growth_mib: 5.0,
            min_growth_share: 0.05,
            min_fit: 0.9,
            min_steadiness: 0.5,
        }
    }
}

/// Thresholds of PYDX-WORKER001, WORKER002 and WORKER003.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Least share of the workers' samples serving requests (saturation).
    pub min_busy_share: f64,
    /// WORKER001: least share of request time spent off CPU.
    pub min_waiting_share: f64,
    /// WORKER002: least share of request time on a CPU.
    pub min_cpu_share: f64,
    /// WORKER003: least private memory of the median worker, in MiB.
    pub min_private_mib: f64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            min_busy_share: 0.8,
            min_waiting_share: 0.5,
            min_cpu_share: 0.6,
            min_private_mib: 64.0,
        }
    }
}

/// Thresholds of PYDX-WEB001.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrameworkConfig {
    /// Least share of an endpoint's on-CPU request samples in one middleware.
    pub min_share: f64,
    /// Least share of an endpoint's on-CPU request samples in the
    /// framework's own work (PYDX-WEB002).
    pub min_framework_share: f64,
    /// Least ratio of the framework's CPU per request to an empty handler's.
    pub min_overhead_ratio: f64,
}

impl Default for FrameworkConfig {
    fn default() -> Self {
        Self {
            min_share: 0.15,
            min_framework_share: 0.5,
            min_overhead_ratio: 4.0,
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or names unknown settings.
    #[error("invalid {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, from the TOML parser.
        message: String,
    },
}

impl Config {
    /// Reads thresholds from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses thresholds from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let config = Config::from_toml("[event_loop]\nslow_callback_ms = 50\n").unwrap();
        assert_eq!(config.event_loop.slow_callback_ms, 50.0);
        assert_eq!(config.gil, GilConfig::default());
    }

    #[test]
    fn unknown_settings_are_rejected() {
        let error = Config::from_toml("[event_loop]\nslow_callback = 50\n").unwrap_err();
        assert!(error.contains("unknown field `slow_callback`"), "{error}");
    }
}
