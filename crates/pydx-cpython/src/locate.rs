//! Finding the interpreter in a process: which file holds `_PyRuntime`, where
//! it is loaded, and which CPython version it is.

use std::path::PathBuf;

use pydx_remote::{ElfImage, MemoryMaps, MemoryReader, ProcessInfo, ReadExt};

use crate::debug_offsets::{DebugOffsets, DebugOffsetsError, COOKIE, MAX_SIZE};
use crate::error::AttachError;
use crate::version::PythonVersion;

/// Where the interpreter of a process is and what version it is.
#[derive(Debug, Clone)]
pub struct Location {
    /// The file that holds `_PyRuntime` (libpython or the executable), as
    /// the target sees it.
    pub binary: String,
    /// Runtime address of `_PyRuntime`.
    pub runtime: u64,
    /// The interpreter's version.
    pub version: PythonVersion,
    /// The target's `_Py_DebugOffsets` (3.13+).
    pub debug_offsets: Option<DebugOffsets>,
}

/// A mapped file that may hold the interpreter.
struct Candidate {
    /// The path as the target names it.
    path: String,
    /// A path pydx can open.
    host_path: PathBuf,
}

/// Largest `.bss` section scanned for a version string.
const MAX_BSS_SCAN: u64 = 8 << 20;

/// Finds every mapped file in process `info.pid` that holds an interpreter
/// runtime, in the order they should be tried.
///
/// A process can map libpython more than once (a copy loaded through
/// `ctypes`, say); only one of the copies holds the runtime that was
/// started, so the caller checks each location for a live interpreter.
/// Errors only when no candidate is usable.
pub fn locate<M: MemoryReader>(
    info: &ProcessInfo,
    maps: &MemoryMaps,
    memory: &M,
) -> Result<Vec<Location>, AttachError> {
    let candidates = candidates(info, maps);
    let mut version_hint: Option<PythonVersion> = None;
    let mut locations = Vec::new();
    let mut first_error = None;
    for candidate in &candidates {
        version_hint = version_hint.or_else(|| version_from_file_name(&candidate.path));
        match locate_in(info, maps, memory, candidate) {
            Some(Ok(location)) => locations.push(location),
            Some(Err(error)) => {
                first_error.get_or_insert(error);
            }
            None => {}
        }
    }
    if !locations.is_empty() {
        return Ok(locations);
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    if let Some(version) =
        version_hint.filter(|v| v.minor_version() < PythonVersion::OLDEST_SUPPORTED)
    {
        return Err(AttachError::unsupported(info.pid, version));
    }
    Err(AttachError::NotPython {
        pid: info.pid,
        command: short_command(&info.cmdline),
        reason: if candidates.iter().any(|c| c.path.contains("python")) {
            "its Python binary has no _PyRuntime symbol or .PyRuntime section".into()
        } else {
            "no libpython or python executable is mapped".into()
        },
    })
}

/// The interpreter runtime in one candidate file; `None` when the file
/// holds none.
fn locate_in<M: MemoryReader>(
    info: &ProcessInfo,
    maps: &MemoryMaps,
    memory: &M,
    candidate: &Candidate,
) -> Option<Result<Location, AttachError>> {
    let image = ElfImage::open(&candidate.host_path).ok()?;
    let symbols = image
        .symbols(&["_PyRuntime", "Py_Version"], &["_PyRuntime"])
        .ok()?;
    let runtime_symbol = match symbols[0] {
        Some(symbol) => symbol,
        None => image.section(".PyRuntime").ok().flatten()?,
    };
    let bias = image
        .load_info()
        .ok()
        .and_then(|load| load.bias(maps.of_file(&candidate.path)))?;
    let runtime = bias.wrapping_add(runtime_symbol.address);
    let runtime_size = (runtime_symbol.size > 0).then_some(runtime_symbol.size);
    Some(
        detect_version(
            info.pid,
            memory,
            runtime,
            runtime_size,
            bias,
            symbols[1],
            &image,
            &candidate.path,
        )
        .map(|(version, debug_offsets)| Location {
            binary: info.path_in_target(&candidate.path).to_string(),
            runtime,
            version,
            debug_offsets,
        }),
    )
}

fn short_command(cmdline: &str) -> String {
    const MAX: usize = 60;
    if cmdline.chars().count() <= MAX {
        cmdline.to_string()
    } else {
        format!("{}...", cmdline.chars().take(MAX).collect::<String>())
    }
}

/// libpython mappings first (shared builds), then the executable (static builds).
fn candidates(info: &ProcessInfo, maps: &MemoryMaps) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::new();
    for map in maps.iter() {
        let (Some(path), Some(name)) = (&map.path, map.file_name()) else {
            continue;
        };
        if name.starts_with("libpython") && candidates.iter().all(|c| &c.path != path) {
            if let Some(host_path) = info.mapped_file(map) {
                candidates.push(Candidate {
                    path: path.clone(),
                    host_path,
                });
            }
        }
    }
    if let Some(exe) = &info.exe {
        candidates.push(Candidate {
            path: exe.clone(),
            host_path: info.exe_host_path(),
        });
    }
    candidates
}

/// `3.X` from names like `libpython3.10.so.1.0`, `python3.11` or `libpython2.7.so`.
fn version_from_file_name(path: &str) -> Option<PythonVersion> {
    let name = path.rsplit('/').next()?;
    let at = name.find("python")? + "python".len();
    let rest = &name[at..];
    let (major, rest) = rest.split_once('.')?;
    let minor_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let major: u8 = major.parse().ok()?;
    let minor: u8 = rest[..minor_digits].parse().ok()?;
    Some(PythonVersion::minor_only(major, minor))
}

#[allow(clippy::too_many_arguments)]
fn detect_version<M: MemoryReader>(
    pid: u32,
    memory: &M,
    runtime: u64,
    runtime_size: Option<u64>,
    bias: u64,
    py_version: Option<pydx_remote::ElfSymbol>,
    image: &ElfImage,
    path: &str,
) -> Result<(PythonVersion, Option<DebugOffsets>), AttachError> {
    let mut head = vec![0u8; MAX_SIZE];
    let head_read = memory.read_into(runtime, &mut head).or_else(|_| {
        head.truncate(8);
        memory.read_into(runtime, &mut head)
    });
    if let Err(e) = head_read {
        return Err(AttachError::Remote(read_failure(pid, e)));
    }
    if head.starts_with(COOKIE) {
        return match DebugOffsets::parse(&head, runtime_size) {
            Ok(offsets) => Ok((offsets.version, Some(offsets))),
            Err(DebugOffsetsError::UnknownShape { version, reason }) => {
                Err(AttachError::UnsupportedVersion {
                    pid,
                    version: version.to_string(),
                    reason: format!(
                        "its _Py_DebugOffsets do not match any layout pydx knows: {reason}"
                    ),
                })
            }
            Err(other) => Err(AttachError::NotRunning {
                pid,
                reason: other.to_string(),
            }),
        };
    }
    if let Some(symbol) = py_version {
        if let Some(version) = memory
            .read_u64(bias.wrapping_add(symbol.address))
            .ok()
            .and_then(PythonVersion::from_hex)
        {
            return Ok((version, None));
        }
    }
    let version = version_from_bss(memory, image, bias)
        .or_else(|| version_from_file_name(path))
        .ok_or_else(|| AttachError::NotPython {
            pid,
            command: path.to_string(),
            reason: "cannot tell which Python version it is".into(),
        })?;
    Ok((version, None))
}

/// Turns a failed first read into a process-level error with a hint.
fn read_failure(pid: u32, error: pydx_remote::ReadError) -> pydx_remote::Error {
    match error.kind {
        pydx_remote::ReadErrorKind::PermissionDenied => pydx_remote::Error::PermissionDenied {
            pid,
            hint: pydx_remote::permission_hint(pid),
        },
        pydx_remote::ReadErrorKind::ProcessGone => pydx_remote::Error::NoSuchProcess(pid),
        _ => pydx_remote::Error::Read(error),
    }
}

/// The full version string `3.X.Y (...` that `Py_GetVersion` writes into a
/// static buffer at start-up, found in the binary's `.bss`.
fn version_from_bss<M: MemoryReader>(
    memory: &M,
    image: &ElfImage,
    bias: u64,
) -> Option<PythonVersion> {
    let bss = image.section(".bss").ok()??;
    let size = bss.size.min(MAX_BSS_SCAN);
    let bytes = memory
        .read_vec(
            bias.wrapping_add(bss.address),
            size as usize,
            MAX_BSS_SCAN as usize,
        )
        .ok()?;
    bytes.windows(5).enumerate().find_map(|(i, window)| {
        if !(window.starts_with(b"3.") && window[2].is_ascii_digit()) {
            return None;
        }
        let tail = &bytes[i..(i + 24).min(bytes.len())];
        let text = std::str::from_utf8(&tail[..tail.iter().position(|&b| b == b' ')?]).ok()?;
        let after = tail.get(text.len()..text.len() + 2)?;
        (after == b" (")
            .then(|| PythonVersion::parse(text))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_file_names() {
        assert_eq!(
            version_from_file_name("/usr/lib/libpython3.10.so.1.0"),
            Some(PythonVersion::minor_only(3, 10))
        );
        assert_eq!(
            version_from_file_name("/usr/bin/python3.8"),
            Some(PythonVersion::minor_only(3, 8))
        );
        assert_eq!(
            version_from_file_name("/usr/bin/python2.7"),
            Some(PythonVersion::minor_only(2, 7))
        );
        assert_eq!(version_from_file_name("/usr/bin/python3"), None);
        assert_eq!(version_from_file_name("/usr/bin/bash"), None);
    }

    #[test]
    fn long_commands_are_shortened() {
        assert_eq!(short_command("python app.py"), "python app.py");
        assert!(short_command(&"x".repeat(100)).ends_with("..."));
    }
}
