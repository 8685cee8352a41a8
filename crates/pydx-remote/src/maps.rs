//! The target's memory mappings, from `/proc/PID/maps`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMap {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
    /// Offset into the mapped file.
    pub offset: u64,
    /// Inode of the mapped file (0 for anonymous mappings).
    pub inode: u64,
    /// The mapped file's path as the target sees it (inside its own root),
    /// without a ` (deleted)` suffix; `None` for anonymous mappings.
    pub path: Option<String>,
    /// The file was deleted after it was mapped.
    pub deleted: bool,
}

impl MemoryMap {
    /// Whether `addr` falls inside this mapping.
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }

    /// The last path component of the mapped file, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.path
            .as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let perms = fields.next()?.as_bytes();
        let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
        let _device = fields.next()?;
        let inode = fields.next()?.parse().ok()?;
        let rest = fields.next().unwrap_or("").trim_start();
        let (start, end) = range.split_once('-')?;
        let (path, deleted) = if rest.is_empty() || !rest.starts_with('/') {
            (None, false)
        } else if let Some(stripped) = rest.strip_suffix(" (deleted)") {
            (Some(stripped.to_string()), true)
        } else {
            (Some(rest.to_string()), false)
        };
        Some(Self {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            read: perms.first() == Some(&b'r'),
            write: perms.get(1) == Some(&b'w'),
            execute: perms.get(2) == Some(&b'x'),
            offset,
            inode,
            path,
            deleted,
        })
    }
}

/// All mappings of a process, sorted by address.
#[derive(Debug, Clone, Default)]
pub struct MemoryMaps {
    maps: Vec<MemoryMap>,
}

impl MemoryMaps {
    /// Reads `/proc/PID/maps`.
    pub fn read(pid: u32) -> Result<Self> {
        let path = PathBuf::from(format!("/proc/{pid}/maps"));
        let text =
            crate::proc::read_proc_text(&path).map_err(|e| Error::from_proc_io(pid, &path, e))?;
        Ok(Self::parse(&text))
    }

    /// Parses the text of a maps file; lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let mut maps: Vec<MemoryMap> = text.lines().filter_map(MemoryMap::parse).collect();
        maps.sort_by_key(|m| m.start);
        Self { maps }
    }

    /// Every mapping.
    pub fn iter(&self) -> impl Iterator<Item = &MemoryMap> {
        self.maps.iter()
    }

    /// The mapping that contains `addr`.
    pub fn find(&self, addr: u64) -> Option<&MemoryMap> {
        let index = self.maps.partition_point(|m| m.start <= addr);
        index
            .checked_sub(1)
            .map(|i| &self.maps[i])
            .filter(|m| m.contains(addr))
    }

    /// Whether `addr..addr+len` lies in readable mappings.
    pub fn is_readable(&self, addr: u64, len: u64) -> bool {
        self.find(addr)
            .is_some_and(|m| m.read && addr.saturating_add(len) <= m.end)
    }

    /// All mappings of the file at `path` (as the target names it).
    pub fn of_file<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a MemoryMap> + 'a {
        self.maps
            .iter()
            .filter(move |m| m.path.as_deref() == Some(path))
    }

    /// Whether there are no mappings at all (a zombie or kernel thread).
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
00400000-00420000 r--p 00000000 fe:01 1234 /usr/bin/python3.11
00420000-00700000 r-xp 00020000 fe:01 1234 /usr/bin/python3.11
00b00000-00b10000 rw-p 00300000 fe:01 1234 /usr/bin/python3.11
01000000-01100000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 r--p 00000000 fe:01 99 /tmp/lib with space.so (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0
";

    #[test]
    fn parses_paths_permissions_and_deleted_files() {
        let maps = MemoryMaps::parse(SAMPLE);
        let all: Vec<_> = maps.iter().collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[1].path.as_deref(), Some("/usr/bin/python3.11"));
        assert!(all[1].execute && !all[1].write);
        assert_eq!(all[1].offset, 0x20000);
        assert_eq!(all[1].inode, 1234);
        assert_eq!(all[3].path, None);
        assert_eq!(all[4].path.as_deref(), Some("/tmp/lib with space.so"));
        assert!(all[4].deleted);
        assert_eq!(all[4].file_name(), Some("lib with space.so"));
    }

    #[test]
    fn finds_the_mapping_of_an_address() {
        let maps = MemoryMaps::parse(SAMPLE);
        assert_eq!(maps.find(0x00b00010).unwrap().start, 0x00b00000);
        assert!(maps.find(0x00a00000).is_none());
        assert!(maps.is_readable(0x01000000, 0x100000));
        assert!(!maps.is_readable(0x01000000, 0x100001));
        assert_eq!(maps.of_file("/usr/bin/python3.11").count(), 3);
    }

    #[test]
    fn reads_own_maps() {
        let maps = MemoryMaps::read(std::process::id()).unwrap();
        let here = reads_own_maps as *const () as u64;
        assert!(maps.find(here).unwrap().execute);
    }
}
