//! Writing output files atomically.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The temporary file beside `path` that [`write_atomically`] writes first.
fn temporary_path(path: &Path) -> anyhow::Result<PathBuf> {
    let directory = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .with_context(|| format!("cannot write {}: the path has no file name", path.display()))?;
    Ok(directory.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    )))
}

/// Checks, before any sampling, that [`write_atomically`] will be able to
/// create its file beside `path`, so that a recording is never made only to
/// be lost for want of a place to write it.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let temporary = temporary_path(path)?;
    File::create(&temporary).with_context(|| format!("cannot write {}", path.display()))?;
    let _ = std::fs::remove_file(&temporary);
    Ok(())
}

/// Writes a file through `write` into a temporary file beside `path`, then
/// renames it into place, so that `path` is never seen half-written.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let temporary = temporary_path(path)?;
    let result = (|| {
        let file =
            File::create(&temporary).with_context(|| format!("cannot write {}", path.display()))?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush()?;
        out.get_ref().sync_all()?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
