//! Whether a thread of another process is on a CPU, from the context
//! switches the kernel reports for it through `perf_event_open`: a look
//! is a read of pydx's own memory, where reading the thread's `stat` file
//! is a system call (and the kernel formatting fifty fields) per look.
//!
//! The event counts nothing and samples nothing; with `context_switch`
//! set, the kernel writes a 16-byte `PERF_RECORD_SWITCH` (its header and
//! the time, on `CLOCK_MONOTONIC`) into a ring mapped into pydx each time
//! the thread is switched onto or off a CPU, marking a switch-out whose
//! thread is still runnable (preempted). The ring is mapped read-only,
//! which tells the kernel to overwrite its oldest records rather than drop
//! new ones: the newest record is always the 16 bytes before `data_head`.
//! A wake-up is no switch: a thread switched off to sleep may be runnable
//! since, which only its `stat` file tells.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use perf_event_open_sys::bindings as sys;

use crate::error::{Error, Result};

/// Bytes of one `PERF_RECORD_SWITCH` record: its header, then (with
/// `sample_id_all` and only `PERF_SAMPLE_TIME`) the time.
const SWITCH_RECORD_BYTES: u64 = 16;

/// Most records [`SwitchWatcher::over`] looks back through (a thread is not
/// switched that often while its stack is read).
const MOST_SWITCHES_BACK: usize = 16;

/// Watches the context switches of one thread of another process.
#[derive(Debug)]
pub struct SwitchWatcher {
    /// Closed on drop, after the mapping is gone.
    _fd: OwnedFd,
    /// The metadata page followed by the data pages.
    map: *mut libc::c_void,
    map_len: usize,
    /// `data_head` of the metadata page.
    head: *const AtomicU64,
    /// The first byte of the ring's data.
    data: *const u8,
    /// Bytes of data; a power of two, at least two records.
    size: u64,
}

// SAFETY: the mapping and the descriptor belong to this value alone and are
// not tied to the thread that made them.
unsafe impl Send for SwitchWatcher {}

impl SwitchWatcher {
    /// Starts watching thread `tid` (of any process). Needs what sampling
    /// it with perf needs: ptrace permission over it and
    /// `kernel.perf_event_paranoid` at 2 or less (or CAP_PERFMON), and a
    /// page of locked memory besides the metadata page.
    pub fn open(tid: u32) -> Result<Self> {
        let fail = |call, source| Error::Perf { tid, call, source };
        let pid = libc::pid_t::try_from(tid).ok().filter(|&pid| pid > 0);
        let pid = pid.ok_or(Error::NoSuchThread(tid))?;
        let mut attr = sys::perf_event_attr {
            type_: sys::PERF_TYPE_SOFTWARE,
            size: std::mem::size_of::<sys::perf_event_attr>() as u32,
            config: u64::from(sys::PERF_COUNT_SW_DUMMY),
            sample_type: u64::from(sys::PERF_SAMPLE_TIME),
            clockid: libc::CLOCK_MONOTONIC,
            ..Default::default()
        };
        attr.set_context_switch(1);
        attr.set_sample_id_all(1);
        attr.set_use_clockid(1);
        attr.set_exclude_kernel(1);
        attr.set_exclude_hv(1);
        let flags = sys::PERF_FLAG_FD_CLOEXEC as libc::c_ulong;
        // SAFETY: `attr` is a fully initialised `perf_event_attr` whose
        // `size` matches its type; the kernel only reads it.
        let fd = unsafe { perf_event_open_sys::perf_event_open(&mut attr, pid, -1, -1, flags) };
        if fd < 0 {
            let source = io::Error::last_os_error();
            return Err(match source.raw_os_error() {
                Some(libc::ESRCH) => Error::NoSuchThread(tid),
                _ => fail("perf_event_open", source),
            });
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let map_len = 2 * page;
        // SAFETY: maps the perf descriptor shared and read-only at an
        // address the kernel picks; the result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(fail("mmap", io::Error::last_os_error()));
        }
        let meta = map as *const sys::perf_event_mmap_page;
        // SAFETY: the metadata page is mapped; the kernel sets data_offset
        // and data_size once, before mmap returns. data_head is an 8-byte
        // aligned u64, which AtomicU64 has the layout of.
        let (offset, size, head) = unsafe {
            (
                (*meta).data_offset as usize,
                (*meta).data_size as usize,
                ptr::addr_of!((*meta).data_head).cast::<AtomicU64>(),
            )
        };
        // Kernels before 4.1 leave both 0: the data follows the first page.
        let (offset, size) = if size == 0 {
            (page, page)
        } else {
            (offset, size)
        };
        // Made before the check so that a failure unmaps the ring.
        let watcher = Self {
            _fd: fd,
            map,
            map_len,
            head,
            data: (map as *const u8).wrapping_add(offset),
            size: size as u64,
        };
        let fits = offset.checked_add(size).is_some_and(|end| end <= map_len);
        if !size.is_power_of_two() || size < 2 * SWITCH_RECORD_BYTES as usize || !fits {
            let message = "ring layout out of bounds";
            return Err(fail(
                "mmap",
                io::Error::new(io::ErrorKind::InvalidData, message),
            ));
        }
        Ok(watcher)
    }

    /// The thread's newest context switch, or `None` when it has not been
    /// switched since the watch began, or the newest record could not be
    /// read whole (the kernel wrote a ring's worth meanwhile).
    pub fn latest(&self) -> Option<Switch> {
        self.latest_at().map(|(switch, _)| switch)
    }

    /// [`SwitchWatcher::latest`] with the time of the switch, in
    /// `CLOCK_MONOTONIC` nanoseconds ([`crate::monotonic_ns`]).
    pub fn latest_at(&self) -> Option<(Switch, u64)> {
        let newest = self.head().load(Ordering::Acquire);
        self.record_at(newest.checked_sub(SWITCH_RECORD_BYTES)?)
    }

    /// What the thread's context switches say of it from `start_ns` to
    /// `end_ns` (`CLOCK_MONOTONIC`), the span in which its stack was read,
    /// when it was switched after `start_ns`; `None` when it was not (its
    /// state now is its state throughout). Looks back at most
    /// [`MOST_SWITCHES_BACK`] records.
    pub fn over(&self, start_ns: u64, end_ns: u64) -> Option<SwitchesOver> {
        let newest = self.head().load(Ordering::Acquire);
        let mut over = SwitchesOver {
            at_end: None,
            slept: false,
        };
        let mut after_start = false;
        let mut at = newest;
        for _ in 0..MOST_SWITCHES_BACK {
            let Some(record) = at
                .checked_sub(SWITCH_RECORD_BYTES)
                .and_then(|earlier| self.record_at(earlier))
            else {
                break;
            };
            at -= SWITCH_RECORD_BYTES;
            let (switch, time) = record;
            if time > end_ns {
                after_start = true;
                continue;
            }
            over.at_end.get_or_insert(record);
            over.slept |= switch == Switch::Asleep;
            if time <= start_ns {
                break;
            }
            after_start = true;
        }
        after_start.then_some(over)
    }

    fn head(&self) -> &AtomicU64 {
        // SAFETY: `head` points into the metadata page, mapped for as long
        // as `self` lives; the kernel updates it atomically.
        unsafe { &*self.head }
    }

    /// The record at ring offset `at` (counted from the watch's start, as
    /// `data_head` is), or `None` if it is not a switch record or the
    /// kernel wrote over it while it was copied.
    fn record_at(&self, at: u64) -> Option<(Switch, u64)> {
        let mut record = [0u8; SWITCH_RECORD_BYTES as usize];
        let start = (at & (self.size - 1)) as usize;
        if start as u64 + SWITCH_RECORD_BYTES > self.size {
            return None;
        }
        // SAFETY: `data` points at `size` mapped bytes, and the record's
        // bytes at `start` lie inside them (checked above).
        // The kernel may be overwriting them (read-only ring): the check
        // below throws such a copy away.
        unsafe {
            ptr::copy_nonoverlapping(self.data.add(start), record.as_mut_ptr(), record.len())
        };
        fence(Ordering::Acquire);
        // The kernel writes new records over the oldest ones: the copy is
        // whole unless it wrote over `at` meanwhile.
        let now = self.head().load(Ordering::Relaxed);
        if now.wrapping_sub(at) > self.size - SWITCH_RECORD_BYTES {
            return None;
        }
        switch_state(&record)
    }

    /// How many times the thread was switched onto or off a CPU since the
    /// watch began. The same count at two looks means it did not run in
    /// between, if it was off a CPU at the first.
    pub fn switches(&self) -> u64 {
        self.head().load(Ordering::Acquire) / SWITCH_RECORD_BYTES
    }

    /// Watches the calling thread's own context switches (see
    /// [`SwitchWatcher::switched_on_at`]); `None` where perf is refused.
    pub fn own() -> Option<Self> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        Self::open(u32::try_from(tid).ok()?).ok()
    }

    /// When the watched thread was last switched onto a CPU, if that is its
    /// newest switch (`CLOCK_MONOTONIC` nanoseconds): for a watch of one's
    /// own thread, when the thread got the CPU it runs on.
    pub fn switched_on_at(&self) -> Option<u64> {
        match self.latest_at()? {
            (Switch::In, at) => Some(at),
            _ => None,
        }
    }
}

/// What a thread's context switches say of it over a span of time that it
/// was switched in or after ([`SwitchWatcher::over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchesOver {
    /// Its newest switch at or before the end of the span, and its time:
    /// its state then (`None` when further back than the watch or the ring
    /// reaches).
    pub at_end: Option<(Switch, u64)>,
    /// Whether it was asleep at some point of the span: asleep at its start,
    /// or switched off to sleep in it.
    pub slept: bool,
}

/// A thread's newest context switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Switched onto a CPU: it runs.
    In,
    /// Switched off its CPU while still runnable: it waits for a CPU
    /// (`R` in its `stat` file), its registers and stack as they were.
    Preempted,
    /// Switched off its CPU to wait (asleep, in disk I/O, stopped: any
    /// state but `R`).
    Asleep,
}

/// The switch a `PERF_RECORD_SWITCH` record reports and its time, or
/// `None` for any other record.
fn switch_state(record: &[u8; SWITCH_RECORD_BYTES as usize]) -> Option<(Switch, u64)> {
    let kind = u32::from_ne_bytes([record[0], record[1], record[2], record[3]]);
    let misc = u32::from(u16::from_ne_bytes([record[4], record[5]]));
    let size = u64::from(u16::from_ne_bytes([record[6], record[7]]));
    if kind != sys::PERF_RECORD_SWITCH || size != SWITCH_RECORD_BYTES {
        return None;
    }
    let switched_out = misc & sys::PERF_RECORD_MISC_SWITCH_OUT != 0;
    let preempted = misc & sys::PERF_RECORD_MISC_SWITCH_OUT_PREEMPT != 0;
    let switch = match (switched_out, preempted) {
        (false, _) => Switch::In,
        (true, true) => Switch::Preempted,
        (true, false) => Switch::Asleep,
    };
    let mut time = [0u8; 8];
    time.copy_from_slice(&record[8..16]);
    Some((switch, u64::from_ne_bytes(time)))
}

impl Drop for SwitchWatcher {
    fn drop(&mut self) {
        // SAFETY: `map` and `map_len` are those of a successful mmap owned
        // by `self` and unmapped only here; nothing points into it after.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ShellTarget;
    use std::time::{Duration, Instant};

    /// The newest state seen within two seconds that `wanted` accepts.
    fn wait_for(watcher: &SwitchWatcher, wanted: impl Fn(Option<Switch>) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if wanted(watcher.latest()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_thread_that_sleeps_in_turns_is_seen_asleep_and_running() {
        // Counts for a few milliseconds, then waits 10 ms for `sleep`.
        let target = ShellTarget::spawn(
            "while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.01; done",
        );
        let watched_from = crate::monotonic_ns();
        let watcher = SwitchWatcher::open(target.pid()).unwrap();
        let switches = watcher.switches();
        assert!(wait_for(&watcher, |s| s == Some(Switch::Asleep)));
        assert!(wait_for(&watcher, |s| s == Some(Switch::In)));
        assert!(watcher.switches() >= switches + 2);
        // Switch times are on CLOCK_MONOTONIC: after the watch began, not
        // after now.
        let (_, at) = watcher.latest_at().unwrap();
        assert!((watched_from..=crate::monotonic_ns()).contains(&at));
    }

    #[test]
    fn a_span_is_told_by_the_switches_in_and_after_it() {
        let watcher = SwitchWatcher::own().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let start = crate::monotonic_ns();
        let end = crate::monotonic_ns();
        // Running all along, not switched since.
        assert_eq!(watcher.over(start, end), None);
        std::thread::sleep(Duration::from_millis(2));
        // Asleep and back after the span: on its CPU throughout it.
        let after = watcher.over(start, end).unwrap();
        assert!(!after.slept);
        let (switch, at) = after.at_end.unwrap();
        assert_eq!(switch, Switch::In);
        assert!(at <= start);
        // A span that the sleep fell in: asleep in it, back by its end.
        let during = watcher.over(start, crate::monotonic_ns()).unwrap();
        assert!(during.slept);
        assert_eq!(during.at_end.unwrap().0, Switch::In);
        assert!(during.at_end.unwrap().1 > end);
    }

    /// A thread watching itself is on a CPU whenever it looks: its newest
    /// switch put it there, after it last slept.
    #[test]
    fn a_thread_sees_when_it_got_its_cpu() {
        let watcher = SwitchWatcher::own().unwrap();
        let before_sleep = crate::monotonic_ns();
        std::thread::sleep(Duration::from_millis(5));
        let woke = watcher.switched_on_at().unwrap();
        assert!((before_sleep..=crate::monotonic_ns()).contains(&woke));
    }

    #[test]
    fn a_thread_asleep_all_along_has_no_switch_to_show() {
        let target = ShellTarget::spawn("exec sleep 30");
        std::thread::sleep(Duration::from_millis(100));
        let watcher = SwitchWatcher::open(target.pid()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!((watcher.latest(), watcher.switches()), (None, 0));
    }

    #[test]
    fn watching_a_missing_thread_says_so() {
        assert!(matches!(
            SwitchWatcher::open(i32::MAX as u32),
            Err(Error::NoSuchThread(_))
        ));
    }

    #[test]
    fn switch_records_are_read_by_their_flags() {
        let record = |kind: u32, misc: u16, size: u16| {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&kind.to_ne_bytes());
            bytes[4..6].copy_from_slice(&misc.to_ne_bytes());
            bytes[6..8].copy_from_slice(&size.to_ne_bytes());
            bytes[8..].copy_from_slice(&1_234_567_u64.to_ne_bytes());
            bytes
        };
        let out = sys::PERF_RECORD_MISC_SWITCH_OUT as u16;
        let preempt = sys::PERF_RECORD_MISC_SWITCH_OUT_PREEMPT as u16;
        let switch = sys::PERF_RECORD_SWITCH;
        let at = 1_234_567;
        assert_eq!(switch_state(&record(switch, 0, 16)), Some((Switch::In, at)));
        assert_eq!(
            switch_state(&record(switch, out, 16)),
            Some((Switch::Asleep, at))
        );
        assert_eq!(
            switch_state(&record(switch, out | preempt, 16)),
            Some((Switch::Preempted, at))
        );
        assert_eq!(switch_state(&record(switch, out, 8)), None);
        assert_eq!(switch_state(&record(sys::PERF_RECORD_LOST, 0, 16)), None);
    }
}
