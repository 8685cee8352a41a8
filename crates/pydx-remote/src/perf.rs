//! Kernel samples of one thread's user registers and stack, taken with
//! `perf_event_open` while the thread runs (no ptrace stop).
//!
//! The kernel fires a task-clock event every `period` of the thread's CPU
//! time and writes a record with the user registers and a copy of the top
//! of the user stack into a ring buffer mapped into pydx; [`PerfStackSampler::latest`]
//! drains that ring.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use perf_event_open_sys::bindings as sys;

use crate::error::{Error, Result};
use crate::UnwindRegisters;

/// The x86 perf register numbers BP (6), SP (7) and IP (8), which the
/// kernel writes in this ascending order.
const REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);
/// Shortest sampling period asked of the kernel.
const MIN_PERIOD_NS: u64 = 10_000;
/// Samples the ring holds at least, between two drains.
const RING_SAMPLES: usize = 8;
/// Most bytes of ring data; with the metadata page this is the kernel's
/// default `perf_event_mlock_kb` (516 KiB).
const MAX_RING_BYTES: usize = 512 * 1024;
/// Bytes of a sample record besides its stack data: header, time, ABI,
/// three registers, size and dyn_size.
const SAMPLE_OVERHEAD: usize = 8 * 8;

/// Now on `CLOCK_MONOTONIC`, the clock of [`PerfStackSample::time_ns`], in
/// nanoseconds.
pub fn monotonic_ns() -> u64 {
    // SAFETY: an all-zero `timespec` is valid.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is a valid out-pointer for the call; CLOCK_MONOTONIC
    // always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// One sample the kernel took of a running thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfStackSample {
    /// When the sample was taken, in `CLOCK_MONOTONIC` nanoseconds.
    pub time_ns: u64,
    /// The thread's user registers at the sample.
    pub registers: UnwindRegisters,
    /// The user stack from `registers.stack` upwards, as far as the kernel
    /// could copy it (at most the `stack_bytes` given to `open`).
    pub stack: Vec<u8>,
}

/// Samples one thread of another process with a perf task-clock event.
#[derive(Debug)]
pub struct PerfStackSampler {
    /// Closed on drop, after the mapping is gone.
    _fd: OwnedFd,
    /// The metadata page followed by the data pages.
    map: *mut libc::c_void,
    map_len: usize,
    /// `data_head` and `data_tail` of the metadata page.
    head: *const AtomicU64,
    tail: *const AtomicU64,
    reader: RingReader,
}

// SAFETY: the mapping and the descriptor belong to this value alone and are
// not tied to the thread that made them.
unsafe impl Send for PerfStackSampler {}

impl PerfStackSampler {
    /// Opens a task-clock sampling event on thread `tid` (of any process),
    /// firing every `period` of the thread's CPU time (at least 10 µs), and
    /// copying `stack_bytes` (a multiple of 8, below 65536) of user stack
    /// per sample.
    pub fn open(tid: u32, period: Duration, stack_bytes: u32) -> Result<Self> {
        if cfg!(not(target_arch = "x86_64")) {
            let reason = "user-stack sampling is only supported on x86_64";
            return Err(Error::PerfUnsupported { tid, reason });
        }
        let fail = |call, source| Error::Perf { tid, call, source };
        let invalid = |message| io::Error::new(io::ErrorKind::InvalidInput, message);
        if stack_bytes == 0 || stack_bytes % 8 != 0 || stack_bytes >= 65536 {
            let message = "stack_bytes must be a multiple of 8 between 8 and 65528";
            return Err(fail("perf_event_open", invalid(message)));
        }
        // 0 would mean the calling thread; the kernel reads a signed pid_t.
        let pid = libc::pid_t::try_from(tid).ok().filter(|&pid| pid > 0);
        let pid = pid.ok_or(Error::NoSuchThread(tid))?;
        let mut attr = sys::perf_event_attr {
            type_: sys::PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<sys::perf_event_attr>() as u32,
            config: sys::PERF_COUNT_SW_TASK_CLOCK as u64,
            sample_type: (sys::PERF_SAMPLE_TIME
                | sys::PERF_SAMPLE_REGS_USER
                | sys::PERF_SAMPLE_STACK_USER) as u64,
            sample_regs_user: REGS_MASK,
            sample_stack_user: stack_bytes,
            clockid: libc::CLOCK_MONOTONIC,
            ..Default::default()
        };
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        attr.__bindgen_anon_1.sample_period = period_ns.max(MIN_PERIOD_NS);
        attr.set_exclude_kernel(1);
        attr.set_exclude_hv(1);
        attr.set_use_clockid(1);
        let flags = sys::PERF_FLAG_FD_CLOEXEC as libc::c_ulong;
        // SAFETY: `attr` is a fully initialised `perf_event_attr` whose
        // `size` matches its type; the kernel only reads it.
        let fd = unsafe { perf_event_open_sys::perf_event_open(&mut attr, pid, -1, -1, flags) };
        if fd < 0 {
            return Err(open_error(tid, io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let record = (stack_bytes as usize + SAMPLE_OVERHEAD).min(usize::from(u16::MAX));
        let data_len = (record * RING_SAMPLES)
            .next_power_of_two()
            .clamp(page, MAX_RING_BYTES.max(page));
        let map_len = page + data_len;
        // SAFETY: maps the perf descriptor shared at an address the kernel
        // picks; the result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(fail("mmap", io::Error::last_os_error()));
        }
        let meta = map as *mut sys::perf_event_mmap_page;
        // SAFETY: the metadata page is mapped; the kernel sets data_offset
        // and data_size once, before mmap returns. data_head and data_tail
        // are 8-byte aligned u64s, which AtomicU64 has the layout of.
        let (offset, size, head, tail) = unsafe {
            (
                (*meta).data_offset as usize,
                (*meta).data_size as usize,
                ptr::addr_of!((*meta).data_head).cast::<AtomicU64>(),
                ptr::addr_of!((*meta).data_tail).cast::<AtomicU64>(),
            )
        };
        // Kernels before 4.1 leave both 0: the data follows the first page.
        let (offset, size) = if size == 0 {
            (page, data_len)
        } else {
            (offset, size)
        };
        // Made before the check so that a failure unmaps the ring.
        let sampler = Self {
            _fd: fd,
            map,
            map_len,
            head,
            tail,
            reader: RingReader::new(map as *const u8, offset, size),
        };
        if !size.is_power_of_two() || offset.checked_add(size).is_none_or(|end| end > map_len) {
            return Err(fail("mmap", invalid("ring layout out of bounds")));
        }
        Ok(sampler)
    }

    /// Drains every record in the ring and returns the newest sample that
    /// arrived since the last call, if any. Samples taken while the thread
    /// had no user context are skipped.
    pub fn latest(&mut self) -> Option<PerfStackSample> {
        // SAFETY: `head` and `tail` point into the metadata page, mapped
        // for as long as `self` lives; the kernel accesses them atomically.
        let (head, tail) = unsafe { (&*self.head, &*self.tail) };
        let head = head.load(Ordering::Acquire);
        let sample = self.reader.drain(tail.load(Ordering::Relaxed), head);
        // The records are copied out: the kernel may overwrite them now.
        tail.store(head, Ordering::Release);
        sample
    }

    /// Samples the kernel reported lost (`PERF_RECORD_LOST`) so far.
    pub fn lost(&self) -> u64 {
        self.reader.lost
    }

    /// Times the ring held a record that made no sense and was skipped to
    /// its newest end (with whatever records were left in it).
    pub fn malformed(&self) -> u64 {
        self.reader.malformed
    }
}

impl Drop for PerfStackSampler {
    fn drop(&mut self) {
        // SAFETY: `map` and `map_len` are those of a successful mmap owned
        // by `self` and unmapped only here; nothing points into it after.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// The error for a failed `perf_event_open` on thread `tid`.
fn open_error(tid: u32, source: io::Error) -> Error {
    match source.raw_os_error() {
        Some(libc::ESRCH) => Error::NoSuchThread(tid),
        Some(libc::EACCES | libc::EPERM) => {
            let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid");
            let paranoid = paranoid.as_deref().map_or("unknown", str::trim);
            let reason = format!(
                "kernel.perf_event_paranoid is {paranoid}; sampling another process's user stack \
                 needs ptrace permission over it and a value of 2 or less, or CAP_PERFMON"
            );
            Error::PerfDenied { tid, reason }
        }
        Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP) => {
            let reason = "this kernel offers no task-clock sampling";
            Error::PerfUnsupported { tid, reason }
        }
        _ => Error::Perf {
            tid,
            call: "perf_event_open",
            source,
        },
    }
}

/// Reads records out of the data part of a perf ring.
#[derive(Debug)]
struct RingReader {
    data: *const u8,
    /// Bytes of data; a power of two.
    size: usize,
    lost: u64,
    malformed: u64,
    /// Ring positions and sizes of the sample records of one drain.
    samples: Vec<(u64, usize)>,
    /// One record, copied out of the ring.
    record: Vec<u8>,
}

impl RingReader {
    /// A reader of the `size` bytes at `base + offset`.
    fn new(base: *const u8, offset: usize, size: usize) -> Self {
        Self {
            data: base.wrapping_add(offset),
            size,
            lost: 0,
            malformed: 0,
            samples: Vec::new(),
            record: Vec::new(),
        }
    }

    /// Copies the bytes at ring position `pos` into `out` (at most the
    /// ring's size of them), wrapping at the end of the ring.
    fn copy(data: *const u8, size: usize, pos: u64, out: &mut [u8]) {
        let start = (pos as usize) & (size - 1);
        let len = out.len().min(size);
        let first = len.min(size - start);
        // SAFETY: `data` points at `size` mapped bytes, `size` a power of
        // two (checked in `open`, or a test's buffer). `start < size`,
        // `first <= size - start` and `len - first <= start`, so both
        // copies stay inside those bytes and inside `out`. The kernel does
        // not write the bytes between data_tail and data_head that callers
        // ask for.
        unsafe {
            ptr::copy_nonoverlapping(data.add(start), out.as_mut_ptr(), first);
            ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), len - first);
        }
    }

    /// Reads the records between `tail` and `head` and returns the newest
    /// usable sample among them.
    fn drain(&mut self, tail: u64, head: u64) -> Option<PerfStackSample> {
        let (data, size) = (self.data, self.size);
        if head.wrapping_sub(tail) > size as u64 {
            self.malformed += 1;
            return None;
        }
        self.samples.clear();
        let mut pos = tail;
        while pos != head {
            let left = head.wrapping_sub(pos);
            let mut header = [0u8; 24];
            if left >= 8 {
                Self::copy(data, size, pos, &mut header[..8]);
            }
            let kind = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
            let len = u64::from(u16::from_ne_bytes([header[6], header[7]]));
            if len < 8 || len > left {
                self.malformed += 1;
                break;
            }
            if kind == sys::PERF_RECORD_SAMPLE {
                self.samples.push((pos, len as usize));
            } else if kind == sys::PERF_RECORD_LOST && len >= 24 {
                // header, id, lost
                Self::copy(data, size, pos, &mut header);
                self.lost += u64::from_ne_bytes(header[16..24].try_into().unwrap_or_default());
            }
            pos = pos.wrapping_add(len);
        }
        for &(pos, len) in self.samples.iter().rev() {
            self.record.resize(len, 0);
            Self::copy(data, size, pos, &mut self.record);
            if let Some(sample) = parse_sample(&self.record) {
                return Some(sample);
            }
        }
        None
    }
}

/// The sample in a `PERF_RECORD_SAMPLE` record with our sample_type:
/// header, time, ABI, BP/SP/IP (unless ABI is NONE), size, data, dyn_size.
/// `None` without user registers or when a length does not fit.
fn parse_sample(record: &[u8]) -> Option<PerfStackSample> {
    let word = |at: usize| -> Option<u64> {
        let bytes = record.get(at..at.checked_add(8)?)?;
        Some(u64::from_ne_bytes(bytes.try_into().ok()?))
    };
    let time_ns = word(8)?;
    if word(16)? == u64::from(sys::PERF_SAMPLE_REGS_ABI_NONE) {
        return None;
    }
    let registers = UnwindRegisters {
        frame: word(24)?,
        stack: word(32)?,
        instruction: word(40)?,
    };
    let size = usize::try_from(word(48)?).ok()?;
    let stack = if size == 0 {
        Vec::new()
    } else {
        let end = 56usize.checked_add(size)?;
        let dyn_size = usize::try_from(word(end)?).ok()?.min(size);
        record.get(56..56 + dyn_size)?.to_vec()
    };
    Some(PerfStackSample {
        time_ns,
        registers,
        stack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ShellTarget;

    fn open(tid: u32) -> PerfStackSampler {
        PerfStackSampler::open(tid, Duration::from_millis(1), 8192)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn perf_samples_a_busy_thread() {
        let child = ShellTarget::spawn("while :; do :; done");
        let pid = child.pid();
        let mut sampler = open(pid);
        std::thread::sleep(Duration::from_millis(100));
        let sample = sampler.latest().expect("no sample of a busy thread");
        assert_ne!(sample.registers.instruction, 0);
        assert_ne!(sample.registers.stack, 0);
        assert!(
            !sample.stack.is_empty() && sample.stack.len() <= 8192,
            "{}",
            sample.stack.len()
        );
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let stack_map: String = maps.lines().filter(|l| l.ends_with("[stack]")).collect();
        let sp = sample.registers.stack;
        assert!(
            crate::MemoryMaps::parse(&stack_map).find(sp).is_some(),
            "{sp:#x} not in {stack_map}"
        );
    }

    #[test]
    fn perf_has_nothing_of_a_sleeping_thread() {
        let child = ShellTarget::spawn("exec sleep 5");
        // Let the child get through exec and into its sleep.
        std::thread::sleep(Duration::from_millis(200));
        let mut sampler = open(child.pid());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sampler.latest(), None);
        assert_eq!(sampler.lost(), 0);
    }

    #[test]
    fn perf_open_on_missing_thread_says_so() {
        let error = PerfStackSampler::open(i32::MAX as u32, Duration::from_millis(1), 8192);
        assert!(matches!(error, Err(Error::NoSuchThread(_))), "{error:?}");
    }

    /// Writes `bytes` into `ring` at position `pos`, wrapping.
    fn put(ring: &mut [u8], pos: u64, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let at = (pos as usize + i) % ring.len();
            ring[at] = b;
        }
    }

    fn record(kind: u32, words: &[u64]) -> Vec<u8> {
        let len = (8 + 8 * words.len()) as u16;
        let mut bytes = kind.to_ne_bytes().to_vec();
        bytes.extend([0, 0].iter().chain(&len.to_ne_bytes()));
        words.iter().for_each(|w| bytes.extend(w.to_ne_bytes()));
        bytes
    }

    #[test]
    fn perf_ring_wraps_counts_lost_and_survives_garbage() {
        let mut ring = vec![0u8; 256];
        // time, abi 64, bp, sp, ip, size 16, 16 bytes of stack, dyn_size 8
        let sample = record(sys::PERF_RECORD_SAMPLE, &[7, 2, 1, 2, 3, 16, 0xaa, 0xbb, 8]);
        let lost = record(sys::PERF_RECORD_LOST, &[0, 5]);
        let no_regs = record(sys::PERF_RECORD_SAMPLE, &[9, 0, 0]);
        let start = 1000; // 1000 % 256 = 232: the sample straddles the end
        put(&mut ring, start, &sample);
        put(&mut ring, start + sample.len() as u64, &lost);
        let end = start + (sample.len() + lost.len()) as u64;
        put(&mut ring, end, &no_regs);
        let end = end + no_regs.len() as u64;

        let mut reader = RingReader::new(ring.as_ptr(), 0, ring.len());
        let got = reader.drain(start, end).unwrap();
        assert_eq!(
            (got.time_ns, got.registers.frame, got.registers.stack),
            (7, 1, 2)
        );
        assert_eq!(got.registers.instruction, 3);
        assert_eq!(got.stack, 0xaau64.to_ne_bytes());
        assert_eq!((reader.lost, reader.malformed), (5, 0));

        put(&mut ring, end, &[0; 8]); // a record of size 0
        assert_eq!(reader.drain(end, end + 16), None);
        assert_eq!(reader.drain(end, end + 4096), None); // more than the ring
        assert_eq!(reader.malformed, 2);
    }
}
