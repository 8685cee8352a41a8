//! The binaries a process maps: their unwind sections and symbols.

use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

use pydx_remote::{ElfImage, FunctionSymbol, MemoryMap};

/// Longest function name kept; C++ template names can run to kilobytes.
const MAX_NAME_CHARS: usize = 300;

/// A section of a mapped binary, for framehop to read in place.
#[derive(Clone)]
pub(crate) struct SectionBytes {
    image: Arc<ElfImage>,
    range: Range<usize>,
}

impl Deref for SectionBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.image.bytes().get(self.range.clone()).unwrap_or(&[])
    }
}

/// A function symbol table, sorted by address, looked up by link-time
/// address.
#[derive(Debug, Default)]
pub struct Symbols {
    symbols: Vec<FunctionSymbol>,
}

impl Symbols {
    /// A table of `symbols` (in any order).
    pub fn new(mut symbols: Vec<FunctionSymbol>) -> Self {
        symbols.sort_by_key(|s| s.address);
        Self { symbols }
    }

    /// The function whose code holds link-time address `address`: only a
    /// symbol whose extent covers it, never the nearest one before it (a
    /// stripped binary lacks its static functions, and the exported function
    /// before such a one would be a wrong name).
    pub fn lookup(&self, address: u64) -> Option<&FunctionSymbol> {
        let after = self.symbols.partition_point(|s| s.address <= address);
        // Symbols may nest (an alias inside a larger function): look back
        // over the few that start at or before the address.
        self.symbols[..after]
            .iter()
            .rev()
            .take(4)
            .find(|s| address - s.address < s.size)
    }
}

/// `name` demangled (Rust, then C++), cut to a readable length; C names are
/// returned as they are.
pub fn demangle(name: &str) -> String {
    let demangled = if let Ok(rust) = rustc_demangle::try_demangle(name) {
        format!("{rust:#}")
    } else if name.starts_with("_Z") {
        cpp_demangle::Symbol::new(name)
            .ok()
            .and_then(|symbol| {
                symbol
                    .demangle(&cpp_demangle::DemangleOptions::default())
                    .ok()
            })
            .unwrap_or_else(|| name.to_string())
    } else {
        name.to_string()
    };
    if demangled.chars().count() > MAX_NAME_CHARS {
        let mut cut: String = demangled.chars().take(MAX_NAME_CHARS).collect();
        cut.push('…');
        cut
    } else {
        demangled
    }
}

/// One binary mapped into the target.
pub(crate) struct LoadedModule {
    /// Its path as the target names it.
    pub path: Arc<str>,
    /// Its path as `/proc/PID/maps` shows it to pydx.
    pub maps_path: String,
    /// The runtime address range of its executable mappings.
    pub code: Range<u64>,
    /// Runtime address minus link-time address.
    pub bias: u64,
    /// The interpreter's own code (libpython or the python executable).
    pub interpreter: bool,
    /// The binary has unwind tables (`.eh_frame` or `.debug_frame`).
    pub has_unwind_info: bool,
    image: Arc<ElfImage>,
    /// Where the symbols come from: the binary, or its separate debug file.
    symbol_source: Arc<ElfImage>,
    symbols: Option<Symbols>,
}

/// The separate debug file of `image`, found by its build id where Debian,
/// Ubuntu and Fedora install them (`-dbgsym`, `-dbg`, `debuginfo`
/// packages), under the target's root directory `root`: it has the
/// symbols a stripped binary lacks (its static functions).
fn debug_file(image: &ElfImage, root: &Path) -> Option<ElfImage> {
    let id = image.build_id()?;
    let (first, rest) = id.split_first()?;
    let rest: String = rest.iter().map(|byte| format!("{byte:02x}")).collect();
    let path = root.join(format!("usr/lib/debug/.build-id/{first:02x}/{rest}.debug"));
    let debug = ElfImage::open(path).ok()?;
    (debug.build_id().as_ref() == Some(&id) && debug.has_symtab()).then_some(debug)
}

impl LoadedModule {
    /// Opens the binary at `host_path`, mapped by `mappings` (all of them
    /// mappings of the one file), in a process whose root directory pydx
    /// sees as `root`.
    pub fn open(
        path: &str,
        host_path: &Path,
        root: &Path,
        mappings: &[&MemoryMap],
        interpreter: bool,
    ) -> Option<Self> {
        let image = Arc::new(ElfImage::open(host_path).ok()?);
        let symbol_source = match image.has_symtab() {
            true => image.clone(),
            false => debug_file(&image, root).map_or_else(|| image.clone(), Arc::new),
        };
        let bias = image.load_info().ok()?.bias(mappings.iter().copied())?;
        let executable = mappings.iter().filter(|m| m.execute);
        let start = executable.clone().map(|m| m.start).min()?;
        let end = executable.map(|m| m.end).max()?;
        let has_section = |name| matches!(image.section_ranges(name), Ok(Some(_)));
        let has_unwind_info = has_section(".eh_frame") || has_section(".debug_frame");
        Some(Self {
            has_unwind_info,
            path: path.into(),
            maps_path: mappings.first()?.path.clone()?,
            code: start..end,
            bias,
            interpreter,
            image,
            symbol_source,
            symbols: None,
        })
    }

    /// The framehop module for unwinding through this binary.
    pub fn unwind_module(&self) -> framehop::Module<SectionBytes> {
        let section = |name: &str| -> (Option<Range<u64>>, Option<SectionBytes>) {
            match self.image.section_ranges(name) {
                Ok(Some((svma, file))) => (
                    Some(svma),
                    Some(SectionBytes {
                        image: self.image.clone(),
                        range: file,
                    }),
                ),
                _ => (None, None),
            }
        };
        let (text_svma, text) = section(".text");
        let (eh_frame_svma, eh_frame) = section(".eh_frame");
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr");
        let (got_svma, _) = section(".got");
        let (_, debug_frame) = section(".debug_frame");
        framehop::Module::new(
            self.path.to_string(),
            self.code.clone(),
            self.bias,
            framehop::ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma,
                text,
                got_svma,
                eh_frame_svma,
                eh_frame,
                eh_frame_hdr_svma,
                eh_frame_hdr,
                debug_frame,
                stubs_svma: None,
                stub_helper_svma: None,
                unwind_info: None,
                text_segment_svma: None,
                text_segment: None,
            },
        )
    }

    /// The function holding runtime address `address`, demangled, or
    /// `None` if the binary has no symbol covering it.
    pub fn function_at(&mut self, address: u64) -> Option<String> {
        let source = &self.symbol_source;
        let symbols = self
            .symbols
            .get_or_insert_with(|| Symbols::new(source.function_symbols().unwrap_or_default()));
        symbols
            .lookup(address.wrapping_sub(self.bias))
            .map(|symbol| demangle(&symbol.name))
    }

    /// The runtime address ranges of the functions named `name` (or a
    /// `.cold` part of one).
    pub fn functions_named(&mut self, name: &str) -> Vec<Range<u64>> {
        let source = &self.symbol_source;
        let symbols = self
            .symbols
            .get_or_insert_with(|| Symbols::new(source.function_symbols().unwrap_or_default()));
        symbols
            .symbols
            .iter()
            .filter(|s| {
                s.name
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
            .map(|s| {
                let start = s.address.wrapping_add(self.bias);
                start..start.wrapping_add(s.size)
            })
            .collect()
    }

    /// The last component of the binary's path.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(address: u64, size: u64, name: &str) -> FunctionSymbol {
        FunctionSymbol {
            address,
            size,
            name: name.into(),
        }
    }

    #[test]
    fn an_address_between_functions_has_no_name() {
        let symbols = Symbols::new(vec![
            symbol(0x2000, 0x100, "second"),
            symbol(0x1000, 0x80, "first"),
        ]);
        let name = |address| symbols.lookup(address).map(|s| s.name.as_str());
        assert_eq!(name(0x1000), Some("first"));
        assert_eq!(name(0x107f), Some("first"));
        // Past the end of `first`: a static function a stripped binary
        // does not name, not `first`.
        assert_eq!(name(0x1080), None);
        assert_eq!(name(0x20ff), Some("second"));
        assert_eq!(name(0x2100), None);
        assert_eq!(name(0x10), None);
    }

    #[test]
    fn a_function_holding_an_alias_is_still_found_past_the_alias() {
        let symbols = Symbols::new(vec![
            symbol(0x1000, 0x400, "outer"),
            symbol(0x1100, 0x10, "alias"),
        ]);
        assert_eq!(symbols.lookup(0x1105).unwrap().name, "alias");
        assert_eq!(symbols.lookup(0x1200).unwrap().name, "outer");
    }

    #[test]
    fn names_are_demangled_and_cut() {
        assert_eq!(demangle("PyList_Append"), "PyList_Append");
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(demangle("_ZN2np4sortEPdi"), "np::sort(double*, int)");
        let long = format!("f{}", "x".repeat(400));
        assert_eq!(demangle(&long).chars().count(), MAX_NAME_CHARS + 1);
    }
}
