//! Facts about a process and its threads from `/proc`.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::maps::MemoryMap;
use crate::switches::{Switch, SwitchWatcher, SwitchesOver};

/// Whether a process with this PID exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The program process `pid` runs (where `/proc/PID/exe` points), or
/// `None` if it is gone or hidden: read again, it shows a launcher that
/// `exec`ed another program.
pub fn executable(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Whether a process with this PID exists and has not exited (a zombie
/// waiting for its parent to reap it has exited).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| RunState::from_stat(&stat))
        .is_some_and(|state| state != RunState::Dead)
}

/// The process's command line, arguments joined by spaces.
pub fn read_cmdline(pid: u32) -> Result<String> {
    let path = format!("/proc/{pid}/cmdline");
    let bytes = std::fs::read(&path).map_err(|e| Error::from_proc_io(pid, &path, e))?;
    let args: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Ok(args.join(" "))
}

/// The OS thread ids (TIDs, in pydx's PID namespace) of a process.
pub fn thread_ids(pid: u32) -> Result<Vec<u32>> {
    let path = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&path).map_err(|e| Error::from_proc_io(pid, &path, e))?;
    let mut tids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The text of a `/proc` file. The kernel gives these files no size, so
/// reading one to its end from an empty buffer starts with a few small
/// reads; a page of room at first takes one read and the one that finds
/// the end for most of them.
pub fn read_proc_text(path: impl AsRef<Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(PROC_FILE_BYTES);
    File::open(path)?.read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Room for the text of most `/proc` files in one read.
const PROC_FILE_BYTES: usize = 4096;

/// `PF_EXITING` in the flags of `/proc/PID/stat`.
const PF_EXITING: u64 = 0x4;

/// Whether process `pid` is exiting or gone: its main thread marked as
/// exiting, a zombie, or dead. The kernel refuses to read or trace such a
/// process with EPERM, which is then no permission problem.
pub(crate) fn exiting(pid: u32) -> bool {
    let Ok(stat) = read_proc_text(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // After the command in parentheses: state, ppid, pgrp, session,
    // tty_nr, tpgid, flags.
    let mut fields = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace();
    let state = fields.next();
    let flags: u64 = fields.nth(5).and_then(|f| f.parse().ok()).unwrap_or(0);
    matches!(state, Some("Z" | "X" | "x")) || flags & PF_EXITING != 0
}

/// The direct children of a process.
pub fn child_pids(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tids) = thread_ids(pid) else {
        return children;
    };
    let mut any_file = false;
    for tid in tids {
        if let Ok(text) = read_proc_text(format!("/proc/{pid}/task/{tid}/children")) {
            any_file = true;
            children.extend(
                text.split_whitespace()
                    .filter_map(|s| s.parse::<u32>().ok()),
            );
        }
    }
    if !any_file {
        // Kernels without CONFIG_PROC_CHILDREN: scan every process's parent.
        children = all_pids()
            .into_iter()
            .filter(|&p| parent_pid(p) == Some(pid))
            .collect();
    }
    children.sort_unstable();
    children.dedup();
    children
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The parent of a process, as `/proc/PID/stat` names it.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = read_proc_text(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(1)?.parse().ok()
}

/// How much memory a process uses, from `/proc/PID/smaps_rollup`, and the
/// CPU time it has used, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// Resident pages no other process shares (private clean + dirty), in
    /// bytes: what the process would free if it exited.
    pub private_bytes: u64,
    /// CPU time used so far by all its threads (user and system), in
    /// nanoseconds, at the kernel's clock-tick resolution; `None` if it
    /// could not be read.
    pub cpu_ns: Option<u64>,
}

/// Reads a process's resident and private memory, and its CPU time.
pub fn memory_usage(pid: u32) -> Result<MemoryUsage> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = read_proc_text(&path).map_err(|e| Error::from_proc_io(pid, &path, e))?;
    let stat = read_proc_text(format!("/proc/{pid}/stat")).unwrap_or_default();
    Ok(MemoryUsage {
        cpu_ns: cpu_ns_from_stat(&stat, clock_ticks_per_second()),
        ..parse_smaps_rollup(&text)
    })
}

/// The CPU time (`utime` + `stime`) of a `/proc/PID/stat` line, in
/// nanoseconds, for a kernel counting `ticks_per_second`.
fn cpu_ns_from_stat(stat: &str, ticks_per_second: u64) -> Option<u64> {
    // After the command in parentheses: state is field 3, utime 14, stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    (ticks_per_second > 0).then(|| (user + system) * (1_000_000_000 / ticks_per_second))
}

/// The unit of CPU times in `/proc` (`USER_HZ`).
#[allow(unsafe_code)]
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).unwrap_or(0)
}

fn parse_smaps_rollup(text: &str) -> MemoryUsage {
    let mut usage = MemoryUsage::default();
    for line in text.lines() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let Some(kib) = value
            .trim()
            .strip_suffix("kB")
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            continue;
        };
        match field {
            "Rss" => usage.rss_bytes = kib * 1024,
            "Private_Clean" | "Private_Dirty" => usage.private_bytes += kib * 1024,
            _ => {}
        }
    }
    usage
}

/// How many CPUs the process may use: the CPUs in its affinity mask,
/// capped by its cgroup's CPU quota (`cpu.max`, cgroup v2) when it has one.
pub fn cpus_available(pid: u32) -> Option<f64> {
    let status = read_proc_text(format!("/proc/{pid}/status")).ok()?;
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(count_cpu_list)?;
    let quota = read_proc_text(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|cgroups| {
            let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
            let dir = format!("/sys/fs/cgroup{}", path.trim_end_matches('/'));
            cgroup_quota(&std::fs::read_to_string(format!("{dir}/cpu.max")).ok()?)
        });
    Some(match quota {
        Some(quota) => quota.min(allowed as f64),
        None => allowed as f64,
    })
}

/// The number of CPUs in a list such as `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter_map(|range| match range.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (first.parse::<usize>().ok()?, last.parse::<usize>().ok()?);
                last.checked_sub(first).map(|n| n + 1)
            }
            None => range.parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

/// The CPUs a cgroup v2 `cpu.max` (`QUOTA PERIOD` or `max PERIOD`) allows.
fn cgroup_quota(cpu_max: &str) -> Option<f64> {
    let mut fields = cpu_max.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next()?.parse().ok()?;
    (period > 0.0).then_some(quota / period)
}

/// Where a process's executable and root directory are.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// The process id.
    pub pid: u32,
    /// The executable's path as the target sees it (inside its own root).
    pub exe: Option<String>,
    /// The command line, arguments joined by spaces.
    pub cmdline: String,
    /// The target's root directory as pydx sees it (`/` unless chrooted).
    pub root: Option<String>,
}

impl ProcessInfo {
    /// Reads what `/proc` says about `pid`.
    pub fn read(pid: u32) -> Result<Self> {
        if !process_exists(pid) {
            return Err(Error::NoSuchProcess(pid));
        }
        let exe_link = format!("/proc/{pid}/exe");
        let exe = match std::fs::read_link(&exe_link) {
            Ok(target) => Some(
                target
                    .to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string(),
            ),
            // Kernel threads and zombies have no executable.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(Error::from_proc_io(pid, exe_link, e)),
        };
        let root = std::fs::read_link(format!("/proc/{pid}/root"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        Ok(Self {
            pid,
            exe,
            cmdline: read_cmdline(pid)?,
            root,
        })
    }

    /// A path through which pydx can open the file mapped by `map`.
    ///
    /// The kernel names mapped files relative to the *reader's* root when it
    /// can (a chroot shows host paths) and relative to the target's mount
    /// namespace otherwise (a container shows its own paths), so both
    /// readings are tried, and the one with the mapping's inode wins.
    pub fn mapped_file(&self, map: &MemoryMap) -> Option<PathBuf> {
        let path = map.path.as_deref()?;
        let candidates = [self.target_path(path), PathBuf::from(path)];
        let inode_matches = |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.ino() == map.inode);
        candidates
            .iter()
            .find(|p| inode_matches(p))
            .or_else(|| candidates.iter().find(|p| p.exists()))
            .cloned()
    }

    /// The path through which pydx can open a file the target itself calls
    /// `path` (for example a source file named in a code object).
    pub fn target_path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.pid, path))
    }

    /// `path` as the target sees it, when pydx sees it under the target's
    /// root directory (a chroot); otherwise `path` unchanged.
    pub fn path_in_target<'a>(&self, path: &'a str) -> &'a str {
        match &self.root {
            Some(root) if root != "/" => match path.strip_prefix(root.as_str()) {
                Some(inner) if inner.starts_with('/') => inner,
                _ => path,
            },
            _ => path,
        }
    }

    /// The path through which pydx can open the target's executable, even if
    /// it has been deleted or replaced on disk.
    pub fn exe_host_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/exe", self.pid))
    }
}

/// The scheduler state of a thread, from the third field of its `stat` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// `R`: running or runnable (on a CPU or waiting for one).
    Running,
    /// `S`: interruptible sleep (waiting on a lock, I/O, a timer, ...).
    Sleeping,
    /// `D`: uninterruptible sleep, usually disk I/O.
    DiskSleep,
    /// `T`/`t`: stopped by a signal or a tracer.
    Stopped,
    /// `Z`/`X`: exiting.
    Dead,
    /// `I` and any other letter.
    Other,
}

impl RunState {
    /// Parses the state letter out of a `stat` line.
    pub fn from_stat(stat: &[u8]) -> Option<Self> {
        let close = stat.iter().rposition(|&b| b == b')')?;
        Some(match *stat.get(close + 2)? {
            b'R' => RunState::Running,
            b'S' => RunState::Sleeping,
            b'D' => RunState::DiskSleep,
            b'T' | b't' => RunState::Stopped,
            b'Z' | b'X' => RunState::Dead,
            _ => RunState::Other,
        })
    }

    /// Whether the thread is using (or waiting for) a CPU rather than sleeping.
    pub fn is_running(self) -> bool {
        self == RunState::Running
    }
}

/// Reads the run state and current system call of many threads
/// repeatedly, keeping their `stat` and `syscall` files open so that each
/// read is a single `pread`.
#[derive(Debug)]
pub struct ThreadStateReader {
    pid: u32,
    stat_files: HashMap<u32, File>,
    syscall_files: HashMap<u32, File>,
    schedstat_files: HashMap<u32, File>,
    /// `/proc/PID/task`, kept open to be listed again.
    task_dir: Option<File>,
    /// Context-switch watches of threads, for [`ThreadStateReader::cpu_state`];
    /// `None` once the kernel refused one (no more are tried).
    switches: Option<HashMap<u32, SwitchWatch>>,
}

/// Marks a [`ThreadStateReader::switch_count`] that counts the switches
/// of a watched thread.
const WATCHED_COUNT: u64 = 1 << 63;

/// A thread's context-switch watcher, and whether its `stat` file showed
/// it running (`R`) when the watch began: it stays so until it is next
/// switched.
#[derive(Debug)]
struct SwitchWatch {
    watcher: Option<SwitchWatcher>,
    running_at_start: bool,
}

/// Bytes of directory entries one `getdents64` call may return when
/// listing a process's threads (a few hundred threads' worth).
const TASK_LISTING_BYTES: usize = 16 * 1024;
/// More room than any one directory entry of `/proc/PID/task` takes: a
/// listing that leaves this much of the buffer unused has ended.
const LARGEST_TASK_ENTRY: usize = 512;

impl ThreadStateReader {
    /// A reader for threads of process `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            pid,
            stat_files: HashMap::new(),
            syscall_files: HashMap::new(),
            schedstat_files: HashMap::new(),
            task_dir: None,
            switches: Some(HashMap::new()),
        }
    }

    /// The current state of thread `tid`, as [`ThreadStateReader::state`]
    /// reads it, or `None` if it has exited; a thread on a CPU or waiting
    /// for one (`R`) is mostly seen so without a system call.
    ///
    /// Once the thread is watched (see [`SwitchWatcher`]), a newest context
    /// switch onto a CPU, or off it while still runnable, means `R` until
    /// the next switch, which the kernel reports into pydx's memory; so
    /// does `R` read when the watch began, with no switch since. A thread
    /// whose newest switch put it to sleep may have been woken since
    /// (runnable, not yet on a CPU: `R` too), which only its `stat` file
    /// shows, so it is read there, as is a thread the kernel will not let
    /// pydx watch or whose newest switch cannot be read.
    pub fn cpu_state(&mut self, tid: u32) -> Option<RunState> {
        let Some(switches) = &mut self.switches else {
            return self.state(tid);
        };
        if let Some(watch) = switches.get(&tid) {
            let Some(watcher) = &watch.watcher else {
                return self.state(tid);
            };
            return match watcher.latest() {
                Some(Switch::In | Switch::Preempted) => Some(RunState::Running),
                None if watcher.switches() == 0 && watch.running_at_start => {
                    Some(RunState::Running)
                }
                _ => self.state(tid),
            };
        }
        let watcher = match SwitchWatcher::open(tid) {
            Ok(watcher) => Some(watcher),
            Err(Error::NoSuchThread(_)) => return None,
            // Refused for one thread (out of locked memory, say): that
            // thread is read from /proc.
            Err(_) if !switches.is_empty() => None,
            // Refused for the first: perf is not allowed here at all.
            Err(_) => {
                self.switches = None;
                return self.state(tid);
            }
        };
        // Read after the watch began, so that a switch in between is
        // not missed: it is newer than this state, and wins.
        let at_start = self.state(tid);
        if let Some(switches) = &mut self.switches {
            let running_at_start = at_start == Some(RunState::Running);
            switches.insert(
                tid,
                SwitchWatch {
                    watcher,
                    running_at_start,
                },
            );
        }
        at_start
    }

    /// Whether thread `tid` is off its CPU, as its newest context switch
    /// shows (taken off while runnable, or to sleep: one woken since is
    /// runnable but still off its CPU until it is switched on): its stack
    /// stands still until then. `false` for a thread not watched (see
    /// [`ThreadStateReader::cpu_state`], which starts a watch).
    pub fn off_cpu(&self, tid: u32) -> bool {
        self.watcher(tid).is_some_and(|watcher| {
            matches!(watcher.latest(), Some(Switch::Preempted | Switch::Asleep))
        })
    }

    /// Whether thread `tid`, runnable, waits for a CPU by its newest
    /// context switch: one that took it off its CPU (preempted, or to
    /// sleep, and woken since) before `displaced_from_ns`
    /// (`CLOCK_MONOTONIC`, [`crate::monotonic_ns`]). A thread switched off
    /// at or after that instant counts as running: the sampling thread,
    /// switched onto a CPU then, is what took it off (on a machine with
    /// every CPU busy, every sample would otherwise find a target thread
    /// waiting that was running until pydx woke up). `false` for a thread
    /// not watched.
    pub fn waits_for_cpu(&self, tid: u32, displaced_from_ns: u64) -> bool {
        self.watcher(tid).is_some_and(|watcher| {
            matches!(
                watcher.latest_at(),
                Some((Switch::Preempted | Switch::Asleep, at)) if at < displaced_from_ns
            )
        })
    }

    /// A count that changes whenever thread `tid` is switched onto a CPU,
    /// to compare with an earlier count of the same thread: the same count
    /// means it did not run in between, if it was off a CPU at the first.
    /// The switches of a watched thread (no system call), else its
    /// switch-ins from `schedstat` ([`ThreadStateReader::switch_ins`]); the
    /// two kinds of count never compare equal.
    pub fn switch_count(&mut self, tid: u32) -> Option<u64> {
        match self.watcher(tid) {
            Some(watcher) => Some(WATCHED_COUNT | watcher.switches()),
            None => self.switch_ins(tid).map(|count| count & !WATCHED_COUNT),
        }
    }

    /// What thread `tid`'s context switches say of it over the span its
    /// stack was read in ([`SwitchWatcher::over`]); `None` when it was not
    /// switched in or after the span (its state now is its state then) or
    /// is not watched.
    pub fn switches_over(&self, tid: u32, start_ns: u64, end_ns: u64) -> Option<SwitchesOver> {
        self.watcher(tid)?.over(start_ns, end_ns)
    }

    fn watcher(&self, tid: u32) -> Option<&SwitchWatcher> {
        self.switches.as_ref()?.get(&tid)?.watcher.as_ref()
    }

    /// Whether [`ThreadStateReader::cpu_state`] reads threads' states from
    /// their context switches (so far, it was allowed to).
    pub fn watches_switches(&self) -> bool {
        self.switches.is_some()
    }

    /// The process's thread ids, sorted, as [`thread_ids`] lists them, but
    /// through a directory kept open: listing it again costs a seek and
    /// one `getdents64` (a second one only for a listing that fills the
    /// buffer), instead of an open, a stat, two reads and a close.
    pub fn thread_ids(&mut self) -> Result<Vec<u32>> {
        if self.task_dir.is_none() {
            let path = format!("/proc/{}/task", self.pid);
            let dir = File::open(&path).map_err(|e| Error::from_proc_io(self.pid, &path, e))?;
            self.task_dir = Some(dir);
        }
        let listed = self.task_dir.as_ref().map(list_task_dir);
        match listed {
            Some(Ok(tids)) => Ok(tids),
            // The process is gone, or the directory could not be listed
            // again: one fresh listing says which.
            _ => {
                self.task_dir = None;
                thread_ids(self.pid)
            }
        }
    }

    /// How many times thread `tid` has been switched onto a CPU (the third
    /// field of its `schedstat`), or `None` if it has exited or the kernel
    /// keeps no such count. The same count read before and after a moment
    /// in which the thread was seen asleep means it did not run at all in
    /// between.
    pub fn switch_ins(&mut self, tid: u32) -> Option<u64> {
        let mut buf = [0u8; 128];
        let n = read_cached(
            &mut self.schedstat_files,
            self.pid,
            tid,
            "schedstat",
            &mut buf,
        )?;
        std::str::from_utf8(&buf[..n])
            .ok()?
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()
    }

    /// The current state of thread `tid`, or `None` if it has exited.
    pub fn state(&mut self, tid: u32) -> Option<RunState> {
        let mut buf = [0u8; 512];
        let n = read_cached(&mut self.stat_files, self.pid, tid, "stat", &mut buf)?;
        RunState::from_stat(&buf[..n])
    }

    /// The system call thread `tid` is blocked in, or `None` if it has
    /// exited or the file cannot be read.
    pub fn syscall(&mut self, tid: u32) -> Option<SyscallState> {
        let mut buf = [0u8; 256];
        let n = read_cached(&mut self.syscall_files, self.pid, tid, "syscall", &mut buf)?;
        parse_syscall(std::str::from_utf8(&buf[..n]).ok()?)
    }

    /// Closes the files and switch watches of threads that have exited
    /// (costs a listing of the process's threads).
    pub fn forget_exited_threads(&mut self) {
        if let Ok(live) = self.thread_ids() {
            self.retain(&live);
        }
    }

    /// Closes the files and switch watches of threads that are not in `live`.
    pub fn retain(&mut self, live: &[u32]) {
        self.stat_files.retain(|tid, _| live.contains(tid));
        self.syscall_files.retain(|tid, _| live.contains(tid));
        self.schedstat_files.retain(|tid, _| live.contains(tid));
        if let Some(switches) = &mut self.switches {
            switches.retain(|tid, _| live.contains(tid));
        }
    }
}

/// The numeric entries of an open `/proc/PID/task`, read from its start.
#[allow(unsafe_code)]
fn list_task_dir(dir: &File) -> std::io::Result<Vec<u32>> {
    use std::os::fd::AsRawFd;
    let fd = dir.as_raw_fd();
    // SAFETY: lseek takes no pointers.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut tids = Vec::new();
    let mut buf = vec![0u8; TASK_LISTING_BYTES];
    loop {
        crate::stats::count_proc_read();
        // SAFETY: getdents64 writes at most `buf.len()` bytes to `buf`.
        let read = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        let read = usize::try_from(read).map_err(|_| std::io::Error::last_os_error())?;
        if read == 0 {
            break;
        }
        tids.extend(parse_dirents(&buf[..read.min(buf.len())]));
        // The kernel fills the buffer until the next entry does not fit.
        if read + LARGEST_TASK_ENTRY <= buf.len() {
            break;
        }
    }
    if tids.is_empty() {
        // Every process has a thread: an empty listing is of a process gone.
        return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    }
    tids.sort_unstable();
    Ok(tids)
}

/// The numeric names among `linux_dirent64` records (`d_ino` u64, `d_off`
/// i64, `d_reclen` u16, `d_type` u8, then the NUL-terminated name).
fn parse_dirents(records: &[u8]) -> Vec<u32> {
    const NAME_AT: usize = 19;
    let mut ids = Vec::new();
    let mut at = 0;
    while let Some(header) = records.get(at..at + NAME_AT) {
        let length = usize::from(u16::from_ne_bytes([header[16], header[17]]));
        let Some(record) = records.get(at..at + length).filter(|_| length > NAME_AT) else {
            break;
        };
        let name = &record[NAME_AT..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if let Some(id) = std::str::from_utf8(name).ok().and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
        at += length;
    }
    ids
}

/// Reads `/proc/PID/task/TID/<name>` through a cached open file.
fn read_cached(
    files: &mut HashMap<u32, File>,
    pid: u32,
    tid: u32,
    name: &str,
    buf: &mut [u8],
) -> Option<usize> {
    let file = match files.entry(tid) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(File::open(format!("/proc/{pid}/task/{tid}/{name}")).ok()?)
        }
    };
    crate::stats::count_proc_read();
    match file.read_at(buf, 0) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            files.remove(&tid);
            None
        }
    }
}

/// What a thread is doing in the kernel, from `/proc/PID/task/TID/syscall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallState {
    /// Running in user space.
    Running,
    /// Blocked, but not in a system call (e.g. a page fault).
    BlockedOutsideSyscall,
    /// Blocked in system call `number` with these arguments.
    InSyscall {
        /// The x86_64 system call number.
        number: i64,
        /// The first six arguments.
        args: [u64; 6],
        /// Where the thread's user-space code stands while it waits.
        user: UserPosition,
    },
}

/// The user-space stack and instruction pointers of a thread blocked in a
/// system call, as the kernel saved them on entry; with the thread's
/// stack memory, enough to unwind code that does not need the frame
/// pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPosition {
    /// The stack pointer (`rsp`).
    pub stack: u64,
    /// The instruction pointer (`rip`): just after the system call.
    pub instruction: u64,
}

fn parse_syscall(text: &str) -> Option<SyscallState> {
    let mut fields = text.split_whitespace();
    let first = fields.next()?;
    if first == "running" {
        return Some(SyscallState::Running);
    }
    let number: i64 = first.parse().ok()?;
    if number < 0 {
        return Some(SyscallState::BlockedOutsideSyscall);
    }
    let mut hex = || u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok();
    let mut args = [0u64; 6];
    for arg in &mut args {
        *arg = hex()?;
    }
    let user = UserPosition {
        stack: hex()?,
        instruction: hex()?,
    };
    Some(SyscallState::InSyscall { number, args, user })
}

/// Maps thread ids as the target sees them (in its own PID namespace) to
/// thread ids in pydx's namespace, from the `NSpid:` lines in `/proc`.
#[derive(Debug, Clone, Default)]
pub struct NamespaceTids {
    inner_to_host: HashMap<u32, u32>,
}

impl NamespaceTids {
    /// Reads the mapping for every current thread of `pid`.
    pub fn read(pid: u32) -> Result<Self> {
        let mut inner_to_host = HashMap::new();
        for tid in thread_ids(pid)? {
            let Ok(status) = read_proc_text(format!("/proc/{pid}/task/{tid}/status")) else {
                continue;
            };
            if let Some(inner) = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|ids| ids.split_whitespace().last()?.parse().ok())
            {
                inner_to_host.insert(inner, tid);
            }
        }
        Ok(Self { inner_to_host })
    }

    /// The host TID of a thread the target knows as `inner`.
    pub fn to_host(&self, inner: u32) -> Option<u32> {
        self.inner_to_host.get(&inner).copied()
    }

    /// Every thread id as the target knows it.
    pub fn inner_ids(&self) -> Vec<u32> {
        self.inner_to_host.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_user_plus_system_time() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(cpu_ns_from_stat(stat, 100), Some(2_870_000_000));
        assert_eq!(cpu_ns_from_stat("4242 (x) S 1", 100), None);
        assert_eq!(cpu_ns_from_stat(stat, 0), None);
        let own = memory_usage(std::process::id()).unwrap();
        assert!(own.cpu_ns.is_some());
    }

    #[test]
    fn smaps_rollup_gives_resident_and_private_bytes() {
        let text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  2048 kB\nPss:  1500 kB\n\
                    Shared_Clean:  1000 kB\nPrivate_Clean:  100 kB\nPrivate_Dirty:  900 kB\n";
        let usage = parse_smaps_rollup(text);
        assert_eq!(usage.rss_bytes, 2048 * 1024);
        assert_eq!(usage.private_bytes, 1000 * 1024);
        let own = memory_usage(std::process::id()).unwrap();
        assert!(own.rss_bytes >= own.private_bytes && own.private_bytes > 0);
    }

    #[test]
    fn cpus_come_from_the_affinity_list_and_the_cgroup_quota() {
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), 7);
        assert_eq!(count_cpu_list("0"), 1);
        assert_eq!(cgroup_quota("150000 100000\n"), Some(1.5));
        assert_eq!(cgroup_quota("max 100000\n"), None);
        let own = cpus_available(std::process::id()).unwrap();
        let parallelism = std::thread::available_parallelism().unwrap().get() as f64;
        assert!(
            own > 0.0 && own <= parallelism,
            "{own} CPUs vs {parallelism}"
        );
    }

    #[test]
    fn parses_the_state_letter_after_a_command_with_parentheses() {
        let stat = b"1234 (a (weird) name) S 1 1234 1234 0 -1";
        assert_eq!(RunState::from_stat(stat), Some(RunState::Sleeping));
        assert_eq!(RunState::from_stat(b"1 (x) R 0"), Some(RunState::Running));
        assert_eq!(RunState::from_stat(b"garbage"), None);
    }

    #[test]
    fn own_threads_are_listed_and_readable() {
        let pid = std::process::id();
        let tids = thread_ids(pid).unwrap();
        assert!(tids.contains(&pid));
        let mut reader = ThreadStateReader::new(pid);
        // The test thread itself is running while it reads its own state.
        let me = nix_gettid();
        assert_eq!(reader.state(me), Some(RunState::Running));
        assert_eq!(reader.state(u32::MAX), None);
    }

    fn nix_gettid() -> u32 {
        #[allow(unsafe_code)]
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        tid as u32
    }

    #[test]
    fn reads_the_system_call_of_a_sleeping_thread() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut reader = ThreadStateReader::new(pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // sleep(1) waits in clock_nanosleep (230 on x86_64).
        while !matches!(
            reader.syscall(pid),
            Some(SyscallState::InSyscall { number: 230, .. })
        ) {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                reader.syscall(pid)
            );
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A thread spinning shows running without a `/proc` read per look,
    /// once watched; one blocked on a channel shows asleep (read from
    /// `/proc`, as it might have been woken); an exited thread shows as
    /// gone and its watch is dropped with `retain`.
    #[test]
    fn cpu_states_come_from_context_switches_without_proc_reads() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let pid = std::process::id();
        let thread_id = || -> u32 {
            let link = std::fs::read_link("/proc/thread-self").unwrap();
            link.file_name().unwrap().to_str().unwrap().parse().unwrap()
        };
        let (started, stop) = (
            std::sync::mpsc::channel::<u32>(),
            std::sync::mpsc::channel::<()>(),
        );
        let sleeper = std::thread::spawn(move || {
            started.0.send(thread_id()).unwrap();
            stop.1.recv().unwrap();
        });
        let sleeper_tid = started.1.recv().unwrap();
        let spinning = Arc::new(AtomicBool::new(true));
        let (spinner_started, spinner_tid) = std::sync::mpsc::channel::<u32>();
        let spinner = {
            let spinning = spinning.clone();
            std::thread::spawn(move || {
                spinner_started.send(thread_id()).unwrap();
                while spinning.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let spinner_tid = spinner_tid.recv().unwrap();
        let mut reader = ThreadStateReader::new(pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while reader.cpu_state(sleeper_tid) != Some(RunState::Sleeping) {
            assert!(std::time::Instant::now() < deadline);
        }
        assert!(reader.watches_switches(), "perf refused here");
        assert_eq!(reader.cpu_state(spinner_tid), Some(RunState::Running));
        let before = crate::stats::ReadStats::now();
        // The spinner runs or waits for a CPU (both `R`); a look may read
        // its stat file when a switch is being written.
        for _ in 0..200 {
            assert_eq!(reader.cpu_state(spinner_tid), Some(RunState::Running));
        }
        let proc_reads = crate::stats::ReadStats::now().since(before).proc_reads;
        assert!(proc_reads < 20, "{proc_reads} /proc reads for 200 looks");
        let before = crate::stats::ReadStats::now();
        assert_eq!(reader.cpu_state(sleeper_tid), Some(RunState::Sleeping));
        assert_eq!(crate::stats::ReadStats::now().since(before).proc_reads, 1);
        spinning.store(false, Ordering::Relaxed);
        spinner.join().unwrap();
        stop.0.send(()).unwrap();
        sleeper.join().unwrap();
        reader.retain(&[pid]);
        assert_eq!(reader.cpu_state(spinner_tid), None);
    }

    #[test]
    fn lists_threads_again_through_the_open_directory() {
        let pid = std::process::id();
        let mut reader = ThreadStateReader::new(pid);
        assert_eq!(reader.thread_ids().unwrap(), thread_ids(pid).unwrap());
        let (started, stop) = (
            std::sync::mpsc::channel::<u32>(),
            std::sync::mpsc::channel::<()>(),
        );
        let helper = std::thread::spawn(move || {
            let link = std::fs::read_link("/proc/thread-self").unwrap();
            let tid = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
            started.0.send(tid).unwrap();
            stop.1.recv().unwrap();
        });
        let helper_tid = started.1.recv().unwrap();
        let listed = reader.thread_ids().unwrap();
        assert!(listed.contains(&helper_tid), "{listed:?}");
        assert_eq!(listed, thread_ids(pid).unwrap());
        stop.0.send(()).unwrap();
        helper.join().unwrap();
        assert!(!reader.thread_ids().unwrap().contains(&helper_tid));
    }

    #[test]
    fn a_listing_of_a_process_gone_is_an_error() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut reader = ThreadStateReader::new(child.id());
        assert_eq!(reader.thread_ids().unwrap(), vec![child.id()]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(reader.thread_ids().is_err());
    }

    #[test]
    fn parses_directory_records() {
        let record = |name: &str| {
            let length = (19 + name.len() + 1).next_multiple_of(8);
            let mut bytes = vec![0u8; length];
            bytes[16..18].copy_from_slice(&(length as u16).to_ne_bytes());
            bytes[19..19 + name.len()].copy_from_slice(name.as_bytes());
            bytes
        };
        let records = [record("."), record(".."), record("1234"), record("56789")].concat();
        assert_eq!(parse_dirents(&records), vec![1234, 56789]);
        assert_eq!(parse_dirents(&records[..records.len() - 3]), vec![1234]);
    }

    #[test]
    fn parses_syscall_lines() {
        assert_eq!(parse_syscall("running\n"), Some(SyscallState::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffc 0x7f00\n"),
            Some(SyscallState::BlockedOutsideSyscall)
        );
        assert_eq!(
            parse_syscall("202 0x55d0 0x189 0x0 0x0 0x0 0xffffffff 0x7ffc 0x7f00\n"),
            Some(SyscallState::InSyscall {
                number: 202,
                args: [0x55d0, 0x189, 0, 0, 0, 0xffff_ffff],
                user: UserPosition {
                    stack: 0x7ffc,
                    instruction: 0x7f00
                },
            })
        );
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_alive(pid) {
            assert!(std::time::Instant::now() < deadline, "true never exited");
            std::thread::yield_now();
        }
        assert!(process_exists(pid), "not reaped yet, so still listed");
        child.wait().unwrap();
        assert!(process_alive(std::process::id()));
    }

    #[test]
    fn reads_own_process_info() {
        let info = ProcessInfo::read(std::process::id()).unwrap();
        assert!(info.exe.is_some());
        assert!(matches!(
            ProcessInfo::read(0x7fff_fff0),
            Err(Error::NoSuchProcess(_))
        ));
    }

    #[test]
    fn mapped_files_are_found_by_inode() {
        let info = ProcessInfo::read(std::process::id()).unwrap();
        let maps = crate::maps::MemoryMaps::read(std::process::id()).unwrap();
        let here = mapped_files_are_found_by_inode as *const () as u64;
        let map = maps.find(here).unwrap();
        let path = info.mapped_file(map).unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().ino(), map.inode);
        assert_eq!(info.path_in_target("/usr/bin/x"), "/usr/bin/x");
    }

    #[test]
    fn own_namespace_maps_tids_to_themselves() {
        let pid = std::process::id();
        let tids = NamespaceTids::read(pid).unwrap();
        assert_eq!(tids.to_host(pid), Some(pid));
    }
}
