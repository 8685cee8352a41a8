//! Symbols, sections and load addresses of the ELF files a process maps.

use std::fs::File;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol};

use crate::error::{Error, Result};
use crate::maps::MemoryMap;

/// A symbol's link-time address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfSymbol {
    /// `st_value`: the link-time address; add the load bias for the runtime one.
    pub address: u64,
    /// `st_size`.
    pub size: u64,
}

/// A function's symbol: where it starts at link time, its size and its
/// (still mangled) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// `st_value`: the link-time address.
    pub address: u64,
    /// `st_size`, more than zero.
    pub size: u64,
    /// The symbol's name as the file spells it.
    pub name: String,
}

/// How the file's loadable segments are laid out at link time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadInfo {
    /// `ET_DYN` (shared object or PIE) rather than a fixed-address `ET_EXEC`.
    pub position_independent: bool,
    /// `(p_vaddr, p_offset, p_filesz)` of the first `PT_LOAD` segments, in file order.
    pub segments: [Option<(u64, u64, u64)>; 8],
}

/// A memory-mapped ELF file.
pub struct ElfImage {
    path: PathBuf,
    data: memmap2::Mmap,
}

impl std::fmt::Debug for ElfImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfImage")
            .field("path", &self.path)
            .finish()
    }
}

impl ElfImage {
    /// Maps the file at `path` and checks that it is a 64-bit ELF file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        // The file is opened read-only and the map is private; if another
        // process truncates it, reads fault, which is the accepted risk of
        // every ELF reader that maps its input.
        #[allow(unsafe_code)]
        // SAFETY: a read-only private mapping of a regular file; see above.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let image = Self { path, data };
        image.parse()?;
        Ok(image)
    }

    /// The path this image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse(&self) -> Result<ElfFile64<'_, Endianness>> {
        ElfFile64::parse(&*self.data).map_err(|e| Error::Elf {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Looks up each name in `.dynsym`, where exported symbols are (it is
    /// small, and present even in stripped binaries). Names in `full_names`
    /// that are not exported are then looked up in `.symtab` too, which can
    /// be large. One entry per name, `None` for names defined in neither.
    pub fn symbols(&self, names: &[&str], full_names: &[&str]) -> Result<Vec<Option<ElfSymbol>>> {
        let file = self.parse()?;
        let mut found = vec![None; names.len()];
        collect_symbols(file.dynamic_symbols(), names, &mut found);
        let wanted: Vec<&str> = names
            .iter()
            .zip(&found)
            .filter(|(name, symbol)| symbol.is_none() && full_names.contains(name))
            .map(|(name, _)| *name)
            .collect();
        if !wanted.is_empty() {
            let mut more = vec![None; wanted.len()];
            collect_symbols(file.symbols(), &wanted, &mut more);
            for (name, symbol) in wanted.iter().zip(more) {
                let index = names
                    .iter()
                    .position(|n| n == name)
                    .expect("wanted names come from names");
                found[index] = symbol;
            }
        }
        Ok(found)
    }

    /// The link-time address and size of the section called `name`.
    pub fn section(&self, name: &str) -> Result<Option<ElfSymbol>> {
        let file = self.parse()?;
        Ok(file.section_by_name(name).map(|s| ElfSymbol {
            address: s.address(),
            size: s.size(),
        }))
    }

    /// The file contents of section `name` (empty for `SHT_NOBITS` sections).
    pub fn section_data(&self, name: &str) -> Result<Option<&[u8]>> {
        let file = self.parse()?;
        Ok(file.section_by_name(name).and_then(|s| s.data().ok()))
    }

    /// The GNU build id (`.note.gnu.build-id`), if the file has one.
    pub fn build_id(&self) -> Option<Vec<u8>> {
        let file = self.parse().ok()?;
        file.build_id().ok().flatten().map(<[u8]>::to_vec)
    }

    /// Whether the file has a full symbol table (`.symtab`), static
    /// functions included.
    pub fn has_symtab(&self) -> bool {
        self.parse()
            .is_ok_and(|file| file.symbols().next().is_some())
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Every function symbol with a size, from `.symtab` when the file has
    /// one (it holds the static functions too) and from `.dynsym` otherwise
    /// (a stripped file keeps only its exported functions there); sorted by
    /// address.
    pub fn function_symbols(&self) -> Result<Vec<FunctionSymbol>> {
        let file = self.parse()?;
        let collect = |table: &mut dyn Iterator<
            Item = object::read::elf::ElfSymbol64<'_, '_, Endianness>,
        >| {
            table
                .filter(|s| {
                    s.kind() == object::SymbolKind::Text && s.size() > 0 && !s.is_undefined()
                })
                .filter_map(|s| {
                    Some(FunctionSymbol {
                        address: s.address(),
                        size: s.size(),
                        name: s.name().ok()?.to_string(),
                    })
                })
                .collect::<Vec<_>>()
        };
        let mut symbols = collect(&mut file.symbols());
        if symbols.is_empty() {
            symbols = collect(&mut file.dynamic_symbols());
        }
        symbols.sort_by_key(|s| (s.address, std::cmp::Reverse(s.size)));
        symbols.dedup_by_key(|s| s.address);
        Ok(symbols)
    }

    /// The link-time address range and the file range of section `name`,
    /// when the file holds its bytes.
    pub fn section_ranges(
        &self,
        name: &str,
    ) -> Result<Option<(std::ops::Range<u64>, std::ops::Range<usize>)>> {
        let file = self.parse()?;
        Ok(file.section_by_name(name).and_then(|s| {
            let (offset, size) = s.file_range()?;
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(size).ok()?)?;
            (end <= self.data.len()).then_some((s.address()..s.address() + s.size(), start..end))
        }))
    }

    /// The loadable segments, for computing the load bias.
    pub fn load_info(&self) -> Result<LoadInfo> {
        let file = self.parse()?;
        let endian = file.endian();
        let header = file.elf_header();
        let mut segments = [None; 8];
        let loads = file
            .elf_program_headers()
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_LOAD);
        for (slot, p) in segments.iter_mut().zip(loads) {
            *slot = Some((p.p_vaddr(endian), p.p_offset(endian), p.p_filesz(endian)));
        }
        Ok(LoadInfo {
            position_independent: header.e_type(endian) == elf::ET_DYN,
            segments,
        })
    }
}

/// Fills `found[i]` with the first defined symbol of `table` named `names[i]`.
fn collect_symbols<'data>(
    table: impl Iterator<Item = impl ObjectSymbol<'data>>,
    names: &[&str],
    found: &mut [Option<ElfSymbol>],
) {
    for symbol in table {
        if symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        if let Some(index) = names.iter().position(|n| *n == name) {
            found[index].get_or_insert(ElfSymbol {
                address: symbol.address(),
                size: symbol.size(),
            });
        }
    }
}

impl LoadInfo {
    /// The load bias (runtime address minus link-time address) of a file,
    /// given the target's mappings of it. Uses the mapping with the lowest
    /// file offset and the `PT_LOAD` segment whose pages cover that offset.
    pub fn bias<'a>(&self, mappings: impl IntoIterator<Item = &'a MemoryMap>) -> Option<u64> {
        const PAGE_MASK: u64 = !0xfff;
        let first = mappings.into_iter().min_by_key(|m| m.offset)?;
        let (vaddr, offset) = self
            .segments
            .iter()
            .flatten()
            .filter(|&&(_, offset, _)| offset & PAGE_MASK <= first.offset)
            .max_by_key(|&&(_, offset, _)| offset)
            .map(|&(vaddr, offset, _)| (vaddr, offset))?;
        // The page holding file offset `first.offset` is linked at this address.
        let link_address = (vaddr & PAGE_MASK) + (first.offset - (offset & PAGE_MASK));
        Some(first.start.wrapping_sub(link_address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::MemoryMaps;

    #[test]
    fn finds_a_symbol_in_libc_and_computes_its_runtime_address() {
        let maps = MemoryMaps::read(std::process::id()).unwrap();
        let libc_map = maps
            .iter()
            .find(|m| m.file_name().is_some_and(|n| n.starts_with("libc.so")))
            .expect("test binary links libc");
        let path = libc_map.path.clone().unwrap();
        let image = ElfImage::open(&path).unwrap();
        let symbols = image
            .symbols(&["getpid", "no_such_symbol_here"], &["no_such_symbol_here"])
            .unwrap();
        let getpid = symbols[0].expect("libc exports getpid");
        assert!(symbols[1].is_none());
        let bias = image
            .load_info()
            .unwrap()
            .bias(maps.of_file(&path))
            .unwrap();
        assert_eq!(bias + getpid.address, libc::getpid as *const () as u64);
    }

    #[test]
    fn rejects_a_file_that_is_not_elf() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"#!/bin/sh\necho not elf\n").unwrap();
        let err = ElfImage::open(file.path()).unwrap_err();
        assert!(matches!(err, Error::Elf { .. }), "{err}");
    }

    #[test]
    fn bias_of_a_fixed_address_executable_is_zero() {
        let info = LoadInfo {
            position_independent: false,
            segments: [
                Some((0x400000, 0, 0x1000)),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ],
        };
        let maps =
            MemoryMaps::parse("00400000-00420000 r--p 00000000 fe:01 1 /usr/bin/python3.11\n");
        assert_eq!(info.bias(maps.iter()), Some(0));
    }
}
