//! Unwinding a stopped thread's native stack and naming its frames.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{FrameAddress, Unwinder};
use pydx_remote::{MemoryMaps, MemoryReader, ProcessInfo, ProcessMemory, UnwindRegisters};

use crate::modules::{LoadedModule, SectionBytes};

/// Most native frames kept from one stack.
const MAX_NATIVE_FRAMES: usize = 512;
/// Least stack bytes copied first; more is copied (doubling) as the
/// unwinder climbs. From 3.11 a Python call does not nest a C call, so the
/// part of a stack below the outermost Python frame is often this small.
/// When the unwind is to stop at a known stack address (3.12+), the first
/// copy reaches just past it; otherwise it is as long as the last such
/// unwind needed.
const FIRST_STACK_COPY: usize = 4 * 1024;
/// Bytes copied past the stack address an unwind stops at: the rest of the
/// frame that holds it, and its return address.
const PAST_STOP_ADDRESS: usize = 512;
/// Most stack bytes copied for one unwind.
const MAX_STACK_COPY: usize = 2 * 1024 * 1024;
/// Least time between two readings of the target's mappings, when a frame
/// points outside every binary known (a library loaded since, as a program
/// launched by pydx does while it imports; code generated at run time
/// would otherwise have the maps read on every sample).
const MAPS_REFRESH: Duration = Duration::from_millis(100);

/// The module of code outside every mapped binary.
const UNKNOWN_MODULE: &str = "?";

/// The made-up frame pointer of the second unwind of
/// [`NativeUnwinder::unwind_without_frame_pointer`] (the first uses zero,
/// which an unwinder takes for the end of a frame-pointer chain): a frame
/// found through it would lie in the first page, which is never mapped.
const UNKNOWN_FRAME_POINTER: u64 = 0x100;

/// Functions of the interpreter's evaluation loop: each call runs Python
/// frames, which take its place in a merged stack (gcc's `.cold` parts
/// included).
const EVALUATION_LOOP: &[&str] = &["_PyEval_EvalFrameDefault"];

/// Prefixes of interpreter functions that are shown although the rest of
/// the interpreter's machinery is not: they implement built-in functions
/// (`time.sleep`, `os.read`, `re` matching, `sorted`, the garbage collector)
/// or lock and GIL waits, where the time of a Python call really goes.
const SHOWN_INTERPRETER_FUNCTIONS: &[&str] = &[
    "time_",
    "pysleep",
    "os_",
    "builtin_",
    "sre_",
    "_sre_",
    "list_sort",
    "PyThread_acquire_lock",
    "lock_PyThread_acquire_lock",
    "acquire_timed",
    "take_gil",
    "gc_collect",
    "_PyGC_Collect",
    "gc_collect_main",
    "math_",
];

/// What a native frame is to the merged stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A call of the interpreter's evaluation loop: replaced by the Python
    /// frames it ran.
    Evaluation,
    /// The interpreter's other machinery (calls, attribute lookups,
    /// reference counting): left out unless asked for.
    Interpreter,
    /// Code of an extension, a library, or a built-in function: shown.
    Native,
}

/// One native frame, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeFrame {
    /// The demangled function name, or `binary+0xoffset` when the binary
    /// has no symbol for it.
    pub function: Arc<str>,
    /// The binary's path as the target names it; `?` for code outside
    /// every mapped binary.
    pub module: Arc<str>,
    /// What the frame is to a merged stack.
    pub role: Role,
}

/// A thread's native stack, innermost frame first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeStack {
    /// The frames, innermost first.
    pub frames: Vec<NativeFrame>,
    /// The stack pointer in each frame: frame `i`'s locals lie between
    /// `stack_pointers[i]` and `stack_pointers[i + 1]`.
    pub stack_pointers: Vec<u64>,
    /// The unwinder reached the stack's outermost frame. When false the
    /// stack stops early: a binary without unwind information, a stack too
    /// deep, memory that could not be read.
    pub complete: bool,
}

/// A copy of a thread's stack from its stack pointer up: of a stopped
/// thread, extended as the unwinder reads further; or the fixed copy the
/// kernel took with a sample, which ends where it ends.
struct StackCopy<'a> {
    /// Where more of the stack is read from; `None` for a fixed copy.
    memory: Option<&'a ProcessMemory>,
    start: u64,
    bytes: Vec<u8>,
    /// One past the last address of the stack's mapping.
    limit: u64,
    /// Bytes the first read from `memory` copies.
    first: usize,
}

impl StackCopy<'_> {
    fn read_u64(&mut self, addr: u64) -> Result<u64, ()> {
        if addr < self.start || addr.checked_add(8).is_none_or(|end| end > self.limit) {
            return Err(());
        }
        let offset = (addr - self.start) as usize;
        if offset + 8 > self.bytes.len() {
            self.extend(offset + 8)?;
        }
        let word = self.bytes.get(offset..offset + 8).ok_or(())?;
        Ok(u64::from_le_bytes(word.try_into().map_err(|_| ())?))
    }

    /// Copies more of the stack, so that at least `needed` bytes are held.
    fn extend(&mut self, needed: usize) -> Result<(), ()> {
        let memory = self.memory.ok_or(())?;
        let available = usize::try_from(self.limit - self.start).map_err(|_| ())?;
        let wanted = needed
            .max(self.bytes.len() * 2)
            .max(self.first)
            .min(available)
            .min(MAX_STACK_COPY);
        if wanted < needed {
            return Err(());
        }
        let old = self.bytes.len();
        self.bytes.resize(wanted, 0);
        let read = memory.read_into(self.start + old as u64, &mut self.bytes[old..]);
        if read.is_err() {
            self.bytes.truncate(old);
            return Err(());
        }
        Ok(())
    }
}

/// Unwinds the native stacks of one process's stopped threads.
pub struct NativeUnwinder {
    pid: u32,
    info: ProcessInfo,
    /// Paths (as the target names them) of the interpreter's binaries.
    interpreter: Vec<String>,
    unwinder: UnwinderX86_64<SectionBytes>,
    cache: CacheX86_64,
    /// Modules by the start of their code.
    modules: Vec<LoadedModule>,
    maps: MemoryMaps,
    maps_read: Instant,
    /// Frames already named, by address (return addresses less one).
    names: HashMap<u64, NativeFrame>,
    /// Where the evaluation loop's code is, when the interpreter names it.
    evaluation_loop: Vec<std::ops::Range<u64>>,
    /// Stack bytes the last unwind of a live stack without a stop address
    /// copied: the first copy of the next such unwind.
    last_copy: usize,
}

/// How far a stack must be unwound for a merge: past the frames that ran
/// the outermost Python frame, not to its end (thread start-up, `main`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnwindUntil {
    /// Stop after the frame whose stack frame holds this address (3.12+:
    /// the outermost Python frame's entry frame).
    pub stack_address: Option<u64>,
    /// Stop after this many calls of the evaluation loop (before 3.12,
    /// when the interpreter names its loop).
    pub evaluation_calls: Option<usize>,
}

impl std::fmt::Debug for NativeUnwinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeUnwinder")
            .field("pid", &self.pid)
            .field("modules", &self.modules.len())
            .finish()
    }
}

impl NativeUnwinder {
    /// An unwinder for process `pid`, whose interpreter is the binary
    /// `interpreter` (libpython, or the executable of a static build), as
    /// the target names it.
    pub fn new(pid: u32, interpreter: &str) -> Result<Self, pydx_remote::Error> {
        let info = ProcessInfo::read(pid)?;
        let mut interpreter = vec![interpreter.to_string()];
        interpreter.extend(info.exe.clone());
        let mut unwinder = Self {
            pid,
            info,
            interpreter,
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            modules: Vec::new(),
            maps: MemoryMaps::read(pid)?,
            maps_read: Instant::now(),
            names: HashMap::new(),
            evaluation_loop: Vec::new(),
            last_copy: FIRST_STACK_COPY,
        };
        unwinder.load_modules();
        Ok(unwinder)
    }

    /// Adds the binaries mapped now that are not known yet, and forgets
    /// those no longer mapped.
    fn load_modules(&mut self) {
        let mut by_path: HashMap<&str, Vec<&pydx_remote::MemoryMap>> = HashMap::new();
        for map in self.maps.iter() {
            if let Some(path) = map.path.as_deref() {
                by_path.entry(path).or_default().push(map);
            }
        }
        let mut current: Vec<LoadedModule> = Vec::new();
        let mut known = std::mem::take(&mut self.modules);
        let root = PathBuf::from(format!("/proc/{}/root", self.pid));
        for (path, mappings) in by_path {
            let Some(first_exec) = mappings.iter().find(|m| m.execute) else {
                continue;
            };
            if let Some(index) = known
                .iter()
                .position(|m| m.code.start == first_exec.start && m.maps_path == path)
            {
                current.push(known.swap_remove(index));
                continue;
            }
            let Some(host_path) = self.exact_file(first_exec) else {
                continue;
            };
            // Named as the target sees it (a chroot's files show with the
            // chroot's path in the maps).
            let target_path = self.info.path_in_target(path);
            let interpreter = self
                .interpreter
                .iter()
                .any(|p| p == path || p == target_path);
            if let Some(module) =
                LoadedModule::open(target_path, &host_path, &root, &mappings, interpreter)
            {
                let mut module = module;
                if module.interpreter {
                    self.evaluation_loop.extend(
                        EVALUATION_LOOP
                            .iter()
                            .flat_map(|f| module.functions_named(f)),
                    );
                }
                self.unwinder.add_module(module.unwind_module());
                current.push(module);
            }
        }
        for gone in known {
            self.unwinder.remove_module(gone.code.start);
            self.names
                .retain(|&address, _| !gone.code.contains(&address));
        }
        current.sort_by_key(|m| m.code.start);
        self.modules = current;
    }

    /// A path through which pydx opens exactly the file `map` maps: the
    /// file by its name when the inode matches, else the kernel's link to
    /// the mapping (`/proc/PID/map_files`), which still opens a library
    /// deleted or replaced since it was loaded (an upgrade under a running
    /// server). A file by the same name with other contents would give
    /// wrong names and wrong unwinding: `None` then.
    fn exact_file(&self, map: &pydx_remote::MemoryMap) -> Option<PathBuf> {
        let same_file =
            |path: &PathBuf| std::fs::metadata(path).is_ok_and(|m| m.ino() == map.inode);
        if !map.deleted {
            if let Some(path) = self.info.mapped_file(map).filter(same_file) {
                return Some(path);
            }
        }
        let link = PathBuf::from(format!(
            "/proc/{}/map_files/{:x}-{:x}",
            self.pid, map.start, map.end
        ));
        same_file(&link).then_some(link)
    }

    /// Reads the mappings again (a library may have been loaded since), at
    /// most once per [`MAPS_REFRESH`].
    fn refresh(&mut self) -> bool {
        if self.maps_read.elapsed() < MAPS_REFRESH {
            return false;
        }
        self.maps_read = Instant::now();
        match MemoryMaps::read(self.pid) {
            Ok(maps) => {
                self.maps = maps;
                self.load_modules();
                // Addresses named outside every binary may be in one now.
                self.names
                    .retain(|_, frame| &*frame.module != UNKNOWN_MODULE);
                true
            }
            Err(_) => false,
        }
    }

    fn module_index(&self, address: u64) -> Option<usize> {
        let after = self.modules.partition_point(|m| m.code.start <= address);
        after
            .checked_sub(1)
            .filter(|&i| self.modules[i].code.contains(&address))
    }

    /// Unwinds a stopped thread from `registers`, to the end of its stack
    /// or until `until` says the frames needed are found (the stack is then
    /// complete as far as a merge is concerned).
    pub fn unwind(&mut self, registers: UnwindRegisters, until: UnwindUntil) -> NativeStack {
        let limit = self.stack_limit(registers);
        let memory = ProcessMemory::new(self.pid);
        let mut copy = self.live_copy(&memory, registers.stack, limit, until);
        let stack = self.unwind_over(registers, &mut copy, until);
        self.remember_copy(&copy, until);
        stack
    }

    /// An empty copy of the live stack from `stack` up to `limit`, whose
    /// first read is as long as the unwind to `until` is likely to need.
    fn live_copy<'m>(
        &self,
        memory: &'m ProcessMemory,
        stack: u64,
        limit: u64,
        until: UnwindUntil,
    ) -> StackCopy<'m> {
        let first = match until.stack_address {
            Some(address) => usize::try_from(address.saturating_sub(stack))
                .unwrap_or(MAX_STACK_COPY)
                .saturating_add(PAST_STOP_ADDRESS),
            None => self.last_copy,
        };
        StackCopy {
            memory: Some(memory),
            start: stack,
            bytes: Vec::new(),
            limit,
            first: first.clamp(FIRST_STACK_COPY, MAX_STACK_COPY),
        }
    }

    /// Remembers how much of a live stack an unwind without a stop address
    /// copied.
    fn remember_copy(&mut self, copy: &StackCopy<'_>, until: UnwindUntil) {
        if until.stack_address.is_none() && !copy.bytes.is_empty() {
            self.last_copy = copy.bytes.len();
        }
    }

    /// Unwinds a thread asleep in a system call from the stack and
    /// instruction pointers the kernel saved (`/proc/PID/task/TID/syscall`)
    /// over its live stack, which the caller must show unchanged (the
    /// thread did not run meanwhile). The frame pointer is not saved there,
    /// so the stack is unwound twice, with two different made-up frame
    /// pointers, over one copy: `None` unless both reach the frames needed
    /// and agree, that is unless the frame pointer played no part.
    pub fn unwind_without_frame_pointer(
        &mut self,
        instruction: u64,
        stack: u64,
        until: UnwindUntil,
    ) -> Option<NativeStack> {
        let registers = |frame| UnwindRegisters {
            instruction,
            stack,
            frame,
        };
        let limit = self.stack_limit(registers(0));
        let memory = ProcessMemory::new(self.pid);
        let mut copy = self.live_copy(&memory, stack, limit, until);
        let first = self.unwind_over(registers(0), &mut copy, until);
        let second = self.unwind_over(registers(UNKNOWN_FRAME_POINTER), &mut copy, until);
        self.remember_copy(&copy, until);
        (first.complete && first == second).then_some(first)
    }

    /// Unwinds a thread from `registers` over `stack`, the copy of its
    /// stack from `registers.stack` up that the kernel took with them
    /// (see [`pydx_remote::PerfStackSampler`]): the thread need not be
    /// stopped, and a stack deeper than the copy is cut short.
    pub fn unwind_copied(
        &mut self,
        registers: UnwindRegisters,
        stack: Vec<u8>,
        until: UnwindUntil,
    ) -> NativeStack {
        let limit = self.stack_limit(registers);
        let mut copy = StackCopy {
            memory: None,
            start: registers.stack,
            limit: limit.min(registers.stack.saturating_add(stack.len() as u64)),
            bytes: stack,
            first: 0,
        };
        self.unwind_over(registers, &mut copy, until)
    }

    /// One past the end of the stack mapping `registers` point into (the
    /// mappings read again if they are not known, or the code is not in a
    /// known binary).
    fn stack_limit(&mut self, registers: UnwindRegisters) -> u64 {
        if self.module_index(registers.instruction).is_none() {
            self.refresh();
        }
        match self.maps.find(registers.stack) {
            Some(map) => map.end,
            None => {
                self.refresh();
                self.maps.find(registers.stack).map_or(0, |map| map.end)
            }
        }
    }

    fn unwind_over(
        &mut self,
        registers: UnwindRegisters,
        copy: &mut StackCopy<'_>,
        until: UnwindUntil,
    ) -> NativeStack {
        let mut read_stack = |addr| copy.read_u64(addr);
        let mut regs =
            UnwindRegsX86_64::new(registers.instruction, registers.stack, registers.frame);
        let mut address = FrameAddress::from_instruction_pointer(registers.instruction);
        let mut addresses = Vec::new();
        let mut stack_pointers = Vec::new();
        let mut complete = false;
        let mut evaluation_calls = 0;
        while addresses.len() < MAX_NATIVE_FRAMES {
            let lookup = address.address_for_lookup();
            addresses.push(lookup);
            stack_pointers.push(regs.sp());
            if self.evaluation_loop.iter().any(|r| r.contains(&lookup)) {
                evaluation_calls += 1;
                if until.evaluation_calls == Some(evaluation_calls) {
                    complete = true;
                    break;
                }
            }
            // Without unwind information the caller would be guessed from
            // the frame pointer, which most optimised code does not keep:
            // the stack stops here, marked as cut short.
            let unwindable = self
                .module_index(lookup)
                .is_some_and(|index| self.modules[index].has_unwind_info);
            if !unwindable {
                break;
            }
            let caller =
                self.unwinder
                    .unwind_frame(address, &mut regs, &mut self.cache, &mut read_stack);
            match caller {
                // This frame holds the address: the frames after it are
                // not needed.
                Ok(Some(_)) if until.stack_address.is_some_and(|a| a < regs.sp()) => {
                    complete = true;
                    break;
                }
                Ok(Some(return_address)) => match FrameAddress::from_return_address(return_address)
                {
                    Some(next) => address = next,
                    None => break,
                },
                Ok(None) => {
                    complete = true;
                    break;
                }
                Err(_) => break,
            }
        }
        NativeStack {
            frames: addresses.into_iter().map(|a| self.name(a)).collect(),
            stack_pointers,
            complete,
        }
    }

    /// The frame at code address `address`, named (and remembered).
    fn name(&mut self, address: u64) -> NativeFrame {
        if let Some(frame) = self.names.get(&address) {
            return frame.clone();
        }
        let frame = match self.module_index(address) {
            Some(index) => {
                let module = &mut self.modules[index];
                let function = module.function_at(address);
                let role = match (&function, module.interpreter) {
                    (Some(name), _) if is_evaluation_loop(name) => Role::Evaluation,
                    (Some(name), true) if is_shown_interpreter_function(name) => Role::Native,
                    (_, true) => Role::Interpreter,
                    (_, false) => Role::Native,
                };
                let function = function.unwrap_or_else(|| {
                    format!(
                        "{}+0x{:x}",
                        module.file_name(),
                        address.wrapping_sub(module.bias)
                    )
                });
                NativeFrame {
                    function: function.into(),
                    module: module.path.clone(),
                    role,
                }
            }
            None => NativeFrame {
                function: format!("0x{address:x}").into(),
                module: UNKNOWN_MODULE.into(),
                role: Role::Native,
            },
        };
        self.names.insert(address, frame.clone());
        frame
    }
}

/// Whether `name` is a function of the evaluation loop (or a `.cold` part).
fn is_evaluation_loop(name: &str) -> bool {
    EVALUATION_LOOP.iter().any(|eval| {
        name.strip_prefix(eval)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Whether the interpreter function `name` is shown (see
/// [`SHOWN_INTERPRETER_FUNCTIONS`]).
fn is_shown_interpreter_function(name: &str) -> bool {
    SHOWN_INTERPRETER_FUNCTIONS
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evaluation_loop_is_recognised_with_its_cold_parts() {
        assert!(is_evaluation_loop("_PyEval_EvalFrameDefault"));
        assert!(is_evaluation_loop("_PyEval_EvalFrameDefault.cold"));
        assert!(!is_evaluation_loop("_PyEval_EvalFrameDefaultX"));
        assert!(!is_evaluation_loop("PyEval_EvalCode"));
    }

    #[test]
    fn built_in_functions_of_the_interpreter_are_shown() {
        assert!(is_shown_interpreter_function("time_sleep"));
        assert!(is_shown_interpreter_function("take_gil"));
        assert!(!is_shown_interpreter_function("_PyObject_MakeTpCall"));
    }
}
