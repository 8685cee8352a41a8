"""`pydx record` against `py-spy record` and Austin on the same workloads, in
one run, tools interleaved round by round. Measures, per tool x mode x rate:
accuracy against each workload's own ground truth, achieved sampling rate,
slowdown of the target, the profiler's CPU time per sample and its peak RSS.
Also pydx against CPython 3.15's own sampler (`python3.15 -m
profiling.sampling`) on a 3.15 target in the Debian sid chroot.

    python3 bench/record.py [--quick] [--reps N] [--only WORKLOAD,...] [--out FILE]
    python3 bench/record.py --native [--reps N] --out bench/results/native.md

Prints a Markdown report and writes it to bench/results/record.md
(bench/results/record-quick.md with --quick). With --native, only pydx
--native against py-spy --native. Python stdlib only.
"""
import argparse
import collections
import ctypes
import json
import math
import os
import pathlib
import queue
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import tools

BENCH = pathlib.Path(__file__).resolve().parent
WORKLOADS = BENCH / "workloads"
RESULTS = BENCH / "results"
SID = tools.CACHE / "sid"
SID_DIR = "/pydx-bench"  # where the workloads go inside the chroot


# ---------------------------------------------------------------- processes

class Lines:
    """Reads a pipe line by line on a thread; every line with its arrival time."""

    def __init__(self, pipe):
        self.queue = queue.Queue()
        self.all = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for raw in iter(pipe.readline, b""):
            item = (time.monotonic(), raw.decode(errors="replace").rstrip("\n"))
            self.all.append(item)
            self.queue.put(item)
        pipe.close()

    def get(self, timeout):
        """The next line, or None after timeout seconds."""
        try:
            return self.queue.get(timeout=timeout)[1]
        except queue.Empty:
            return None

    def text(self):
        self.thread.join(timeout=2)
        return "\n".join(line for _, line in self.all)


def start(argv):
    """A target: a plain child process."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.out, proc.err = Lines(proc.stdout), Lines(proc.stderr)
    return proc


SUBREAPER = False


def become_subreaper():
    """Makes orphaned descendants our children (PR_SET_CHILD_SUBREAPER), so
    that profilers can be started from a small shell and still be reaped here
    with their own resource usage (see Spawned)."""
    global SUBREAPER
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        SUBREAPER = libc.prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        SUBREAPER = False
    return SUBREAPER


class Spawned:
    """A profiler, started by a short-lived `sh` so that it is forked from a
    small process: on Linux a child's ru_maxrss counts the memory of the
    process it was forked from (here ~18 MB of Python), which would hide
    the profiler's own peak RSS. The shell exits at once and the profiler is
    reparented to us (we are a subreaper), so wait4 gives its own rusage.
    `env --default-signal` undoes the shell's SIGINT/SIGQUIT ignoring of
    background jobs, so that the profiler can be stopped with SIGINT."""

    def __init__(self, argv):
        if not SUBREAPER:
            proc = start(argv)
            self.popen, self.pid, self.out, self.err = proc, proc.pid, proc.out, proc.err
            self.returncode = None
            return
        self.popen = None
        read_end, write_end = os.pipe()
        try:
            shell = subprocess.Popen(
                ["sh", "-c", f'env --default-signal=INT,QUIT "$@" {write_end}>&- & echo $! >&{write_end}',
                 "sh", *argv],
                pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            os.close(write_end)
            write_end = None
            self.out, self.err = Lines(shell.stdout), Lines(shell.stderr)
            shell.wait(timeout=10)
            self.pid = int(os.read(read_end, 64).decode().strip())
        finally:
            os.close(read_end)
            if write_end is not None:
                os.close(write_end)
        self.returncode = None

    def poll(self):
        if self.returncode is None and self.popen is None:
            # alive (or an unreaped zombie) unless wait4 says otherwise; reap() does that
            try:
                with open(f"/proc/{self.pid}/stat") as stat:
                    if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return -1
            except OSError:
                return -1
            return None
        return self.popen.poll() if self.popen else self.returncode

    def send_signal(self, signum):
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self):
        self.send_signal(signal.SIGKILL)


def reap(proc, timeout):
    """Waits up to timeout s for proc; returns (exit code, rusage) or None."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            if getattr(proc, "popen", None) is not None:
                proc.popen.returncode = proc.returncode
            return proc.returncode, usage
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def stop(proc):
    """Kills proc if it still runs, and reaps it."""
    if proc is None or proc.returncode is not None:
        return
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    reap(proc, 10)


class Failed(Exception):
    pass


# ---------------------------------------------------------------- profiles

def parse_pretty(text):
    """pydx collapsed and py-spy raw: `func (file:line);... count`."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f.rsplit(" (", 1)[0] for f in stack.split(";") if f] if stack else []
        stacks.append((frames, int(count)))
    return stacks


def parse_colon(text, skip_prefixes):
    """profiling.sampling's collapsed stacks: `tid:1;file:func:line;... count`."""
    stacks = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            if not frame or frame.startswith(skip_prefixes):
                continue
            parts = frame.rsplit(":", 2)
            frames.append(parts[1] if len(parts) == 3 else frame)
        stacks.append((frames, count))
    return stacks


def attribute(stacks, functions):
    """Samples per workload function (the innermost one in each stack), and
    the total number of samples."""
    by = collections.Counter()
    total = 0
    for frames, count in stacks:
        n = int(count)
        total += n
        for name in reversed(frames):
            if name in functions:
                by[name] += n
                break
        else:
            by[None] += n
        if "run_work" in frames:
            by["<work>"] += n
    return by, total


def read_mojo(path):
    """Austin's MOJO file: (Counter of root-first function-name tuples,
    metadata). A small reader for what this benchmark needs;
    it gives the same stacks as austin-python's mojo2austin (checked on wall
    and cpu mode files, depth 4 to 80) in a tenth of the time, which matters
    at Austin's 100 kHz."""
    data = open(path, "rb").read()
    if data[:3] != b"MOJ":
        raise ValueError("not a MOJO file")
    n = len(data)

    def varint(i):
        b = data[i]; i += 1
        value = b & 0x3F
        negative = b & 0x40
        shift = 6
        while b & 0x80:
            b = data[i]; i += 1
            value |= (b & 0x7F) << shift
            shift += 7
        return (-value if negative else value), i

    def string(i):
        j = data.index(b"\0", i)
        return data[i:j].decode(errors="replace"), j + 1

    version, i = varint(3)
    meta, strings, frames = {}, {0: "", 1: "<unknown>"}, {}
    previous = {}
    stacks = collections.Counter()
    current = None  # [thread, frames, idle]
    task_frames = 0

    def finish():
        thread, stack, _ = current
        previous[thread] = stack
        stacks[tuple(name for name, _ in stack)] += 1

    while i < n:
        event = data[i]; i += 1
        if event == 5:  # frame reference
            key, i = varint(i)
            if task_frames:
                task_frames -= 1
            else:
                current[1].append(frames[key])
        elif event == 2:  # stack: a new sample
            if current is not None:
                finish()
            pid, i = varint(i)
            if version >= 3:
                _, i = varint(i)
            tid, i = string(i)
            current = [(pid, tid), [], False]
        elif event == 9 or event == 10 or event == 12 or event == 16:
            _, i = varint(i)
        elif event == 13:  # stack repeat: the thread's previous stack is the base
            base = list(previous.get(current[0], ()))
            while base and not (base[-1][1].endswith(".py") or base[-1][1].startswith("<")):
                base.pop()
            current[1] = base + current[1]
        elif event == 3:  # frame definition
            key, i = varint(i)
            filename, i = varint(i)
            scope, i = varint(i)
            _, i = varint(i)
            if version >= 2:
                for _ in range(3):
                    _, i = varint(i)
            frames[key] = (strings.get(scope, "?"), strings.get(filename, "?"))
        elif event == 11:  # string definition
            key, i = varint(i)
            strings[key], i = string(i)
        elif event == 1:
            key, i = string(i)
            meta[key], i = string(i)
        elif event == 8:
            current[2] = True
        elif event == 4:
            current[1].append(("INVALID", "<invalid>"))
        elif event == 6:
            name, i = string(i)
            current[1].append((name, "<kernel>"))
        elif event == 7:
            pass
        elif event == 14:  # task stack header; its frames follow as references
            _, i = varint(i)
            _, i = varint(i)
            task_frames, i = varint(i)
        elif event == 15:
            _, i = varint(i)
            _, i = varint(i)
        else:
            raise ValueError(f"unknown MOJO event {event} at offset {i - 1}")
    if current is not None:
        finish()
    return stacks, meta


# ---------------------------------------------------------------- profilers

class Config:
    """One row: a tool in a mode at a rate."""

    def __init__(self, tool, mode, rate, flags=(), interval_us=None, python="3.12", work_scale=1.0):
        self.tool, self.mode, self.rate, self.flags = tool, mode, rate, tuple(flags)
        self.interval_us, self.python = interval_us, python
        # a share of split's fixed work, for configurations that slow the
        # target down 10x or more (slowdown is then compared per loop iteration)
        self.work_scale = work_scale

    @property
    def key(self):
        return (self.tool, self.mode, self.rate)

    def label(self):
        return f"{self.tool} {self.mode} {self.rate:g} Hz"


class Tools:
    def __init__(self, pydx_binary, scratch, notes):
        """Builds or finds the tools. pydx is copied into scratch, so that
        builds by others during the run cannot swap the binary under us."""
        self.pydx_source = "working tree"
        if pydx_binary:
            built, self.pydx_source = pydx_binary, f"given binary {pydx_binary}"
        else:
            try:
                built = tools.pydx()
            except subprocess.CalledProcessError:
                built, commit = tools.pydx_at_head()
                self.pydx_source = f"commit {commit} (git archive HEAD)"
                notes.append(f"the working tree did not build (others are editing it): pydx was "
                             f"built from {self.pydx_source}")
        self.pydx = str(scratch / "pydx")
        shutil.copy2(built, self.pydx)
        self.py_spy = tools.py_spy()
        self.austin = tools.austin()
        self.py312 = tools.pyenv_python(12)
        self.sid = SID.resolve()
        self.py315 = self.sid / "usr/bin/python3.15"

    def profiler_argv(self, cfg, pid, duration, out):
        """The profiler's command line."""
        if cfg.tool == "pydx":
            return [self.pydx, "record", "-r", f"{cfg.rate:g}", "-d", f"{duration:g}",
                    "-f", "collapsed", "-o", str(out), "--pid", str(pid), *cfg.flags]
        if cfg.tool == "py-spy":
            return [self.py_spy, "record", "-r", f"{cfg.rate:g}", "-d", str(math.ceil(duration)),
                    "-f", "raw", "-o", str(out), "--pid", str(pid), *cfg.flags]
        if cfg.tool == "austin":
            return [self.austin, "-i", str(cfg.interval_us), "-x", str(math.ceil(duration)),
                    "-o", str(out), "-p", str(pid), *cfg.flags]
        if cfg.tool == "profiling.sampling":
            # The sampler opens the binaries named in /proc/PID/maps, which
            # shows host paths: inside a private mount namespace, mount /proc
            # and make the chroot's host path resolve inside the chroot.
            sid = str(self.sid)
            first = pathlib.PurePath(sid).parts[1]
            if not (self.sid / first).is_dir():
                raise Failed(f"cannot map {sid} into the chroot (no /{first} in it)")
            inner = ["/usr/bin/python3.15", "-m", "profiling.sampling", "attach",
                     "-r", f"{cfg.rate:g}", "-d", str(math.ceil(duration)), "--collapsed",
                     "-o", chroot_path(self.sid, out), *cfg.flags, str(pid)]
            script = " && ".join([
                f"mount -t proc proc {shlex.quote(sid + '/proc')}",
                f"mount -t tmpfs tmpfs {shlex.quote(sid + '/' + first)}",
                f"mkdir -p {shlex.quote(sid + sid)}",
                f"mount --bind {shlex.quote(sid)} {shlex.quote(sid + sid)}",
                "exec chroot " + shlex.quote(sid) + " " + " ".join(map(shlex.quote, inner)),
            ])
            return ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script]
        raise ValueError(cfg.tool)

    def read_profile(self, cfg, out):
        """(stacks, metadata) from the profiler's output file; stacks are
        (root-first function names, count)."""
        if not out.exists():
            raise Failed("no output file")
        if cfg.tool in ("pydx", "py-spy"):
            return parse_pretty(out.read_text(errors="replace")), {}
        if cfg.tool == "austin":
            try:
                stacks, meta = read_mojo(out)
            except (ValueError, IndexError, KeyError) as error:
                raise Failed(f"unreadable MOJO file: {error}") from None
            return [(list(frames), count) for frames, count in stacks.items()], meta
        if cfg.tool == "profiling.sampling":
            return parse_colon(out.read_text(errors="replace"), ("tid:",)), {}
        raise ValueError(cfg.tool)


def chroot_path(sid, path):
    return "/" + str(pathlib.Path(path).resolve().relative_to(sid))


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:160] if lines else "(no output)"


def profiler_report(cfg, proc):
    """What the profiler says about itself: rounds per second, sampling time,
    errors."""
    err, out = proc.err.text(), proc.out.text()
    info = {}
    if cfg.tool == "pydx":
        m = re.search(r"over ([\d.]+) s \(([\d.]+) Hz achieved of \d+ requested\), (\d+) error", err)
        if m:
            info.update(seconds=float(m.group(1)), rate=float(m.group(2)), errors=int(m.group(3)))
        m = re.search(r"(\d+) native stacks? merged", err)
        if m:
            unfit = re.search(r"(\d+) that did not fit", err)
            changed = re.search(r"(\d+) whose Python stack changed", err)
            unsampled = re.search(r"(\d+) thread stacks? without a recent copy", err)
            info["native"] = tuple(int(x.group(1)) if x else 0
                                   for x in (m, unfit, changed, unsampled))
    elif cfg.tool == "py-spy":
        err = err + "\n" + out  # py-spy writes to stdout when it is not a terminal
        m = re.search(r"Samples: (\d+) Errors: (\d+)", err)
        if m:
            info.update(errors=int(m.group(2)))
        started = next((t for t, line in proc.out.all + proc.err.all if "Sampling process" in line), None)
        if started is not None:
            info["seconds"] = proc.ended - started
        if "behind in sampling" in err:
            info["behind"] = True
    elif cfg.tool == "profiling.sampling":
        m = re.search(r"Captured (\d+) samples in ([\d.]+) seconds", out)
        if m:
            info.update(seconds=float(m.group(2)))
        m = re.search(r"Error rate: ([\d.]+)", out)
        if m:
            info.update(error_rate=float(m.group(1)))
    return info


# ---------------------------------------------------------------- workloads

class Workload:
    name = ""
    functions = ()
    baseline = True
    note = ""

    def __init__(self, opts):
        self.opts = opts


class Split(Workload):
    """Fixed work (calibrated to `work` seconds unprofiled); the profiler is
    attached while the target spins in wait_for_go(), then SIGUSR1 starts the
    work. Accuracy, slowdown and rate all come from the same run."""
    functions = ("work_a", "work_b", "work_c")

    def __init__(self, opts, depth, python="3.12", work=None):
        super().__init__(opts)
        self.depth, self.python = depth, python
        self.work = work or opts.work
        self.name = f"split depth {depth}" + ("" if python == "3.12" else f" (Python {python})")
        self.cycles = None

    def script(self, t):
        if self.python == "3.15":
            return [str(t.py315), f"{SID_DIR}/split.py"]
        return [t.py312, str(WORKLOADS / "split.py")]

    def command(self, t, extra):
        argv = self.script(t) + ["--depth", str(self.depth)] + extra
        if self.python == "3.15":
            return ["chroot", str(t.sid), "/usr/bin/python3.15"] + argv[1:]
        return argv

    def calibrate(self, t):
        result = subprocess.run(self.command(t, ["--duration", "1"]), stdout=subprocess.PIPE,
                                check=True, timeout=60)
        per_second = json.loads(result.stdout.decode().strip().splitlines()[-1])["cycles"]
        self.cycles = max(10, int(per_second * self.work))

    def run(self, t, cfg, tmp):
        target = profiler = None
        out = tmp / ("profile.mojo" if cfg.tool == "austin" else "profile.txt")
        try:
            cycles = max(5, int(self.cycles * cfg.work_scale))
            target = start(self.command(t, ["--cycles", str(cycles), "--wait-go"]))
            if target.out.get(30) != "ready":
                raise Failed("target did not start: " + last_line(target.err.text()))
            if cfg.tool != "none":
                profiler = Spawned(t.profiler_argv(cfg, target.pid, self.work * 40 + 60, out))
                time.sleep(0.8 if cfg.tool == "profiling.sampling" else 0.3)
                if profiler.poll() is not None:
                    raise Failed(last_line(profiler.err.text() + profiler.out.text()))
            os.kill(target.pid, signal.SIGUSR1)
            line = target.out.get(self.work * 40 + 60)
            if line is None:
                raise Failed("target did not finish")
            result = json.loads(line)
            reap(target, 10)
            row = {"elapsed": result["elapsed"], "truth": result["truth"],
                   "per_unit": result["elapsed"] / result["iterations"]}
            if profiler is None:
                return row
            waited = reap(profiler, 30)
            if waited is None:
                profiler.send_signal(signal.SIGINT)
                waited = reap(profiler, 10)
                if waited is None:
                    raise Failed("profiler did not stop after the target exited")
            profiler.ended = time.monotonic()
            code, usage = waited
            row.update(cpu=usage.ru_utime + usage.ru_stime, rss_kb=usage.ru_maxrss)
            report = profiler_report(cfg, profiler)
            read = t.read_profile(cfg, out) if out.exists() else None
            if read is None:
                raise Failed(f"exit {code}: " + last_line(profiler.err.text() + profiler.out.text()))
            by, total = attribute(read[0], self.functions)
            attributed = sum(by[f] for f in self.functions)
            if attributed == 0:
                raise Failed(f"no samples in the work functions (exit {code})")
            shares = {f: 100.0 * by[f] / attributed for f in self.functions}
            row.update(
                shares=shares,
                error=max(abs(shares[f] - result["truth"][f]) for f in self.functions),
                rounds=total,
                rate=by["<work>"] / result["elapsed"],
                tool_errors=report.get("errors", 0),
                pre_go=by[None],
            )
            if cfg.tool == "pydx" and "rate" in report:
                row["own_rate"] = report["rate"]
            if "native" in report:
                row["native"] = report["native"]
            return row
        finally:
            stop(profiler)
            stop(target)

    def detail(self, rows):
        shares = {f: med(r["shares"][f] for r in rows) for f in self.functions}
        truth = {f: med(r["truth"][f] for r in rows) for f in self.functions}
        return ("a/b/c " + "/".join(f"{shares[f]:.1f}" for f in self.functions) +
                " (truth " + "/".join(f"{truth[f]:.1f}" for f in self.functions) + ")")


class Windowed(Workload):
    """The target runs on; the profiler samples for `duration` seconds. The
    target's own measurements are read at SIGUSR1 snapshots: just before the
    profiler starts, 0.3 s later (after attaching), at the end of the
    duration, and just after the profiler exits. truth() gets all four."""
    script = ""

    def run(self, t, cfg, tmp):
        target = profiler = None
        out = tmp / ("profile.mojo" if cfg.tool == "austin" else "profile.txt")
        duration = self.opts.duration
        try:
            target = start([t.py312, str(WORKLOADS / self.script)])
            if target.out.get(30) != "ready":
                raise Failed("target did not start: " + last_line(target.err.text()))
            time.sleep(0.2)
            snapshots = [self.snapshot(target, 0)]
            began = time.monotonic()
            if cfg.tool != "none":
                profiler = Spawned(t.profiler_argv(cfg, target.pid, duration, out))
            snapshots.append(self.snapshot(target, began + 0.3))
            snapshots.append(self.snapshot(target, began + duration))
            if profiler is None:
                return self.truth(*snapshots, snapshots[-1])
            waited = reap(profiler, max(0.0, began + duration + 1.5 - time.monotonic()))
            interrupted = waited is None
            if interrupted:  # behind (py-spy keeps going until it has rate x duration samples)
                profiler.send_signal(signal.SIGINT)
                waited = reap(profiler, 15)
                if waited is None:
                    raise Failed("profiler did not stop on SIGINT")
            profiler.ended = time.monotonic()
            row = self.truth(*snapshots, self.snapshot(target, 0))
            row["interrupted"] = interrupted
            code, usage = waited
            row.update(cpu=usage.ru_utime + usage.ru_stime, rss_kb=usage.ru_maxrss)
            report = profiler_report(cfg, profiler)
            if not out.exists():
                raise Failed(f"exit {code}: " + last_line(profiler.err.text() + profiler.out.text()))
            read = t.read_profile(cfg, out)
            stacks, meta = read
            by, total = attribute(stacks, self.functions)
            row.update(samples=total, tool_errors=report.get("errors", 0))
            if "native" in report:
                row["native"] = report["native"]
            if cfg.tool == "pydx":
                seconds, rate = report.get("seconds"), report.get("rate")
            elif cfg.tool == "austin":
                seconds = int(meta.get("duration", 0)) / 1e6 or None
                rounds = self.rounds(cfg, by, total)
                rate = rounds / seconds if seconds and rounds is not None else None
            else:
                seconds = report.get("seconds")
                rounds = self.rounds(cfg, by, total)
                rate = rounds / seconds if seconds and rounds is not None else None
            if rate is not None:
                row["rate"] = rate
                row["rounds"] = rate * seconds
            self.score(row, by, cfg)
            return row
        finally:
            stop(profiler)
            stop(target)

    def snapshot(self, target, when):
        time.sleep(max(0.0, when - time.monotonic()))
        os.kill(target.pid, signal.SIGUSR1)
        line = target.out.get(10)
        if line is None:
            raise Failed("target did not answer a snapshot")
        return json.loads(line)

    def idle_included(self, cfg):
        return "--idle" in cfg.flags or (cfg.tool == "austin" and "-c" not in cfg.flags)


class Threads(Windowed):
    name = "threads: 1 busy + 3 sleeping"
    script = "threads.py"
    functions = ("busy_loop", "sleeper", "main_wait")
    note = ("On-CPU profiles (no --idle); the truth is each thread's CPU time. A blocking "
            "profiler wakes the sleeping threads at every sample, so there they do use some CPU.")

    def truth(self, before, a, b, after):
        # CPU shares over the whole sampling window; throughput once attached
        cpu = {f: after["cpu"][f] - before["cpu"][f] for f in self.functions}
        total = sum(cpu.values())
        return {"truth": {f: 100.0 * cpu[f] / total for f in self.functions},
                "throughput": (b["work"] - a["work"]) / (b["t"] - a["t"])}

    def rounds(self, cfg, by, total):
        return by["busy_loop"]  # always on a CPU, so in every round of every mode

    def score(self, row, by, cfg):
        n = sum(by[f] for f in self.functions)
        if n == 0:
            raise Failed("no samples of the workload")
        row["shares"] = {f: 100.0 * by[f] / n for f in self.functions}
        row["error"] = max(abs(row["shares"][f] - row["truth"][f]) for f in self.functions)

    def detail(self, rows):
        busy = med(r["shares"]["busy_loop"] for r in rows)
        idle = med(r["shares"]["sleeper"] + r["shares"]["main_wait"] for r in rows)
        truth = med(r["truth"]["busy_loop"] for r in rows)
        return f"busy {busy:.1f}%, idle threads {idle:.1f}% (truth busy {truth:.1f}%)"


class Gil(Windowed):
    name = "gil: 4 threads contending for the GIL"
    script = "gil.py"
    functions = ("gil_w0", "gil_w1", "gil_w2", "gil_w3")
    note = ("pydx and py-spy with --gil (samples of the GIL holder), Austin with -c (on-CPU; "
            "it has no GIL mode, so its rounds are counted as on-CPU samples, which can exceed "
            "the rounds when two threads run at once); the truth is each thread's CPU time.")

    truth = Threads.truth

    def rounds(self, cfg, by, total):
        if self.idle_included(cfg):
            return by["gil_w0"]  # every thread is in every round
        return sum(by[f] for f in self.functions)  # ~one GIL holder (on-CPU thread) per round

    score = Threads.score

    def detail(self, rows):
        shares = [med(r["shares"][f] for r in rows) for f in self.functions]
        truth = [med(r["truth"][f] for r in rows) for f in self.functions]
        return ("w0-w3 " + "/".join(f"{s:.1f}" for s in shares) +
                " (truth " + "/".join(f"{s:.1f}" for s in truth) + ")")


class Asyncio(Windowed):
    name = "asyncio: loop blocked by time.sleep(0.2) every 0.5 s"
    script = "asyncio_blocked.py"
    functions = ("blocking_call",)
    baseline = False
    note = ("Error = |share of the loop thread's samples inside blocking_call() - share of the "
            "sampling window the loop spent blocked|. Without --idle, py-spy drops the blocked "
            "time as idle and no rate can be derived for it; pydx keeps a stalled loop's samples "
            "(and drops only its idle waits), so its share is of all sampling rounds. Austin -c "
            "drops the blocked time.")

    def truth(self, before, a, b, after):
        # blocked share over the whole sampling window, which starts within
        # milliseconds of the first snapshot and ends as the profiler exits
        return {"truth_blocked": 100.0 * (after["blocked"] - before["blocked"]) / (after["t"] - before["t"])}

    def rounds(self, cfg, by, total):
        if self.idle_included(cfg):
            return total  # one thread, sampled in every round
        return None  # idle rounds are dropped: unknown

    def score(self, row, by, cfg):
        total = row["samples"]
        row["loop_samples"] = total
        if total < 50:  # the blocked time is not in this profile (on-CPU samples only)
            return
        # Without --idle, pydx keeps the stalled loop's samples but drops its
        # idle waits: the blocked share is then of all sampling rounds.
        kept_all = self.idle_included(cfg) or "rounds" not in row
        rounds = total if kept_all else row["rounds"]
        row["blocked"] = 100.0 * by["blocking_call"] / rounds
        row["error"] = abs(row["blocked"] - row["truth_blocked"])

    def detail(self, rows):
        truth = med(r["truth_blocked"] for r in rows)
        samples = med(r["loop_samples"] for r in rows)
        seen = [r["blocked"] for r in rows if "blocked" in r]
        if len(seen) <= len(rows) // 2:
            return f"blocked time not visible ({samples:.0f} samples) (truth {truth:.1f}%)"
        return f"blocked {med(seen):.1f}% of {samples:.0f} samples (truth {truth:.1f}%)"


# ---------------------------------------------------------------- configs

def configs_for(workload, quick, native=False):
    pydx, spy, austin = [], [], []
    nb, blk = ("nonblocking", ()), ("blocking", ("--blocking",))
    spy_blk, spy_nb = ("blocking", ()), ("nonblocking", ("--nonblocking",))

    def P(mode, rates, extra=()):
        pydx.extend(Config("pydx", mode[0], r, mode[1] + tuple(extra)) for r in rates)

    def S(mode, rates, extra=()):
        spy.extend(Config("py-spy", mode[0], r, mode[1] + tuple(extra)) for r in rates)

    def A(mode, intervals):
        flags = ("-c",) if mode == "cpu" else ()
        austin.extend(Config("austin", mode, 1e6 / i, flags, interval_us=i) for i in intervals)

    if native:
        # Native stacks (--native): pydx against py-spy, both pausing the
        # target for each sample, on one thread (split) and four (gil).
        P(("native", ("--native",)), (100, 1000))
        P(("native perf", ("--native", "--native-capture", "perf")), (100, 1000))
        S(("native", ("--native",)), (100, 1000))
    elif isinstance(workload, Split) and workload.python == "3.15":
        return [Config("none", "", 0),
                Config("pydx", "nonblocking", 1000),
                Config("pydx", "blocking", 1000, ("--blocking",)),
                Config("profiling.sampling", "nonblocking", 1000, (), python="3.15"),
                Config("profiling.sampling", "blocking", 1000, ("--blocking",), python="3.15")]
    elif isinstance(workload, Split) and workload.depth == 10:
        P(nb, (100, 1000, 20000, 100000))
        P(blk, (100, 1000))
        S(spy_blk, (100, 1000))
        spy.append(Config("py-spy", "blocking", 10000, work_scale=0.2))
        S(spy_nb, (100, 1000, 10000))
        A("wall", (10000, 1000, 10))
    elif isinstance(workload, Split):
        P(nb, (1000, 100000))
        P(blk, (1000,))
        # it cannot reach 1 kHz at this depth (10 kHz would be no faster) and
        # slows the target >10x: a fifth of the work is enough (slowdown is
        # then compared per loop iteration of the work functions)
        spy.append(Config("py-spy", "blocking", 1000, work_scale=0.2))
        S(spy_nb, (1000,))
        A("wall", (1000, 10))
    elif isinstance(workload, Threads):
        P(nb, (100, 1000, 100000))
        P(blk, (1000,))
        S(spy_blk, (100, 1000, 10000))
        S(spy_nb, (1000,))
        A("cpu", (10000, 1000, 10))
    elif isinstance(workload, Gil):
        gil_nb, gil_blk = ("nonblocking --gil", ("--gil",)), ("blocking --gil", ("--blocking", "--gil"))
        P(gil_nb, (100, 1000, 100000))
        P(gil_blk, (1000,))
        S(("blocking --gil", ("--gil",)), (100, 1000, 10000))
        S(("nonblocking --gil", ("--nonblocking", "--gil")), (1000,))
        A("cpu", (10000, 1000, 10))
    elif isinstance(workload, Asyncio):
        P(("nonblocking --idle", ("--idle",)), (100, 1000))
        P(nb, (1000,))
        S(("blocking --idle", ("--idle",)), (1000,))
        S(spy_blk, (1000,))
        A("wall", (1000,))
        A("cpu", (1000,))
    rows = pydx + spy + austin
    if workload.baseline:
        # twice per round (the noise on this kind of machine is mostly in
        # the baseline's favour or against it for seconds at a time)
        rows.insert(0, Config("none", "", 0))
        rows.insert(len(rows) // 2 + 1, Config("none", "", 0))
    return rows


# ---------------------------------------------------------------- report

def med(values):
    values = list(values)
    return statistics.median(values) if values else None


def fmt(value, digits=1):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def summarize(workload, cfg, runs, baseline_rows):
    ok = [r for r in runs if "failed" not in r]
    failures = [r["failed"] for r in runs if "failed" in r]
    row = {"cfg": cfg, "n": len(ok), "failures": failures}
    if not ok:
        return row
    row["detail"] = workload.detail(ok) if cfg.tool != "none" else ""
    if cfg.tool == "none":
        return row
    row["rate"] = med(r["rate"] for r in ok if "rate" in r)
    errors = [r["error"] for r in ok if "error" in r]
    row["error"] = med(errors) if len(errors) > len(ok) // 2 else None
    rounds = [r for r in ok if r.get("rounds")]
    row["cpu_us"] = med(1e6 * r["cpu"] / r["rounds"] for r in rounds)
    row["cpu_total"] = med(r["cpu"] for r in ok)
    row["rounds"] = med(r["rounds"] for r in rounds)
    row["rss_mb"] = med(r["rss_kb"] / 1024 for r in ok)
    if baseline_rows:
        # median against median, and best against best: noise only ever
        # slows a run down, so the fastest runs are the steadier estimate
        if isinstance(workload, Split):
            base = [r["per_unit"] for r in baseline_rows]
            prof = [r["per_unit"] for r in ok]
            row["slowdown"] = 100.0 * (med(prof) / med(base) - 1)
            row["slowdown_best"] = 100.0 * (min(prof) / min(base) - 1)
        else:
            base = [r["throughput"] for r in baseline_rows]
            prof = [r["throughput"] for r in ok]
            row["slowdown"] = 100.0 * (med(base) / med(prof) - 1)
            row["slowdown_best"] = 100.0 * (max(base) / max(prof) - 1)
    notes = []
    if cfg.work_scale != 1.0:
        notes.append(f"{cfg.work_scale:g} of the work (slowdown per loop iteration)")
    if any(r.get("interrupted") for r in ok):
        notes.append("stopped with SIGINT after the duration (behind)")
    erring = [r["tool_errors"] for r in ok if r.get("tool_errors")]
    if erring:
        notes.append(f"the tool reported errors in {len(erring)} of {len(ok)} runs (at most {max(erring)})")
    if any("error_rate" in r for r in ok):
        notes.append(f"error rate {med(r['error_rate'] for r in ok if 'error_rate' in r):g}")
    if cfg.tool == "pydx" and any("own_rate" in r for r in ok):
        notes.append(f"pydx says {med(r['own_rate'] for r in ok if 'own_rate' in r):,.0f} Hz")
    natives = [r["native"] for r in ok if "native" in r]
    if natives:
        merged, unfit, changed, unsampled = (sum(n[i] for n in natives) for i in range(4))
        stacks = max(merged + unfit + changed + unsampled, 1)
        notes.append(f"thread stacks merged with a native stack {100 * merged / stacks:.1f}%"
                     + "".join(f", {label} {100 * n / stacks:.1f}%"
                               for label, n in (("did not fit", unfit),
                                                ("Python stack changed", changed),
                                                ("no kernel copy", unsampled)) if n))
    if any("pre_go" in r and r["pre_go"] == 0 for r in ok):
        notes.append("attached late in some runs")
    if failures:
        notes.append(f"{len(failures)} of {len(runs)} runs failed: {failures[0]}")
    if notes:
        row["detail"] += "; " + "; ".join(notes)
    return row


def table(workload, rows, reps):
    lines = [f"### {workload.name}", ""]
    if isinstance(workload, Split):
        lines.append(f"{workload.cycles} cycles of fixed work (~{workload.work:g} s unprofiled), "
                     f"profiler attached throughout; slowdown = profiled / unprofiled wall time of "
                     f"the work; achieved Hz = samples in the work / its wall time.")
    else:
        lines.append(f"{workload.opts.duration} s per run; " + (
            "slowdown = loss of the target's throughput while sampled; " if workload.baseline else "") +
            "achieved Hz = sampling rounds / sampling time. " + workload.note)
    lines += ["", "| tool | mode | requested Hz | achieved Hz | max error pp | slowdown % median / best | "
              "CPU µs/sample | peak RSS MB | detail |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        cfg = row["cfg"]
        if cfg.tool == "none":
            if row["n"] == 0:
                lines.append(f"| (unprofiled) | | | | | | | | failed: {row['failures'][0]} |")
            continue
        if row["n"] == 0:
            lines.append(f"| {cfg.tool} | {cfg.mode} | {cfg.rate:,.0f} | | | | | | "
                         f"failed: {row['failures'][0]} |")
            continue
        lines.append(
            f"| {cfg.tool} | {cfg.mode} | {cfg.rate:,.0f} | {fmt(row.get('rate'), 0)} | "
            f"{fmt(row.get('error'))} | {slowdown(row)} | {fmt(row.get('cpu_us'))} | "
            f"{fmt(row.get('rss_mb'))} | {row.get('detail', '')} |")
    return lines


def slowdown(row):
    """`median / best` slowdown in %."""
    if row.get("slowdown") is None:
        return "–"
    return f"{fmt(row['slowdown'], 0)} / {fmt(row.get('slowdown_best'), 0)}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def summary(all_rows):
    lines = ["## Summary", "",
             "CPU per sample, pydx (nonblocking, its default) over py-spy (blocking, its default; "
             "and nonblocking) and over Austin, same workload and requested rate (<1 = pydx "
             "cheaper). Marginal = (CPU at 1 kHz − CPU at 100 Hz) / (samples at 1 kHz − samples "
             "at 100 Hz), which cancels start-up costs.", "",
             "| workload | Hz | pydx µs | py-spy µs | pydx/py-spy | pydx/py-spy nonblocking | "
             "Austin µs | pydx/Austin |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    slow = ["", "Target slowdown in %, median / best run (same rows):", "",
            "| workload | Hz | pydx | pydx blocking | py-spy | py-spy nonblocking | Austin |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    marginal = ["", "Marginal CPU per sample in µs (1 kHz vs 100 Hz rows):", "",
                "| workload | pydx | py-spy | py-spy nonblocking | Austin |", "|---|---:|---:|---:|---:|"]
    for workload, rows in all_rows:
        if isinstance(workload, Asyncio) or (isinstance(workload, Split) and workload.python != "3.12"):
            continue
        def pick(tool, mode_start, rate):
            for row in rows:
                cfg = row["cfg"]
                if (cfg.tool == tool and cfg.mode.startswith(mode_start) and
                        abs(cfg.rate - rate) < 1 and row["n"]):
                    return row
            return {}
        austin_mode = "wall" if isinstance(workload, Split) else "cpu"
        rates = sorted({row["cfg"].rate for row in rows if row["cfg"].tool == "pydx"})
        for rate in (100, 1000):
            if rate not in rates:
                continue
            p = pick("pydx", "nonblocking", rate)
            s = pick("py-spy", "blocking", rate)
            sn = pick("py-spy", "nonblocking", rate)
            a = pick("austin", austin_mode, rate)
            lines.append(f"| {workload.name} | {rate} | {fmt(p.get('cpu_us'))} | {fmt(s.get('cpu_us'))} | "
                         f"{ratio(p.get('cpu_us'), s.get('cpu_us'))} | {ratio(p.get('cpu_us'), sn.get('cpu_us'))} | "
                         f"{fmt(a.get('cpu_us'))} | {ratio(p.get('cpu_us'), a.get('cpu_us'))} |")
            if workload.baseline:
                pb = pick("pydx", "blocking", rate)
                slow.append(f"| {workload.name} | {rate} | {slowdown(p)} | {slowdown(pb)} | "
                            f"{slowdown(s)} | {slowdown(sn)} | {slowdown(a)} |")

        def marg(tool, mode_start):
            lo, hi = pick(tool, mode_start, 100), pick(tool, mode_start, 1000)
            if not lo.get("rounds") or not hi.get("rounds") or hi["rounds"] <= lo["rounds"]:
                return None
            return 1e6 * (hi["cpu_total"] - lo["cpu_total"]) / (hi["rounds"] - lo["rounds"])
        if 100 in rates:
            marginal.append(f"| {workload.name} | {fmt(marg('pydx', 'nonblocking'))} | "
                            f"{fmt(marg('py-spy', 'blocking'))} | {fmt(marg('py-spy', 'nonblocking'))} | "
                            f"{fmt(marg('austin', austin_mode))} |")
    return lines + slow + marginal


def versions(t):
    def out(argv):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            return last_line(r.stdout.decode())
        except Exception as error:  # noqa: BLE001 - a version line must not crash the run
            return f"unknown ({error})"
    return [
        (f"pydx: {out([t.pydx, '--version'])} (working tree at git "
         f"{out(['git', '-C', str(tools.REPO), 'rev-parse', '--short', 'HEAD'])}"
         f"{', with uncommitted changes' if out(['git', '-C', str(tools.REPO), 'status', '--porcelain', '--untracked-files=no']) != '(no output)' else ''})"
         if t.pydx_source == "working tree" else f"pydx: {out([t.pydx, '--version'])} ({t.pydx_source})"),
        f"py-spy: {out([t.py_spy, '--version'])}",
        f"Austin: {out([t.austin, '-V'])} (musl build; MOJO read by this script)",
        f"target Python: {out([t.py312, '-VV'])}; chroot: {out(['chroot', str(t.sid), '/usr/bin/python3.15', '-VV'])}",
    ]


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, shorter runs (smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions (default 5, 1 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads: split,split80,threads,gil,asyncio,py315")
    parser.add_argument("--pydx", help="use this pydx binary instead of building the working tree")
    parser.add_argument("--out", help="report file (default bench/results/record[-quick].md)")
    parser.add_argument("--native", action="store_true",
                        help="only the native-stack rows: pydx --native against py-spy --native "
                             "(workloads split and gil unless --only)")
    args = parser.parse_args()
    args.reps = args.reps or (1 if args.quick else 5)
    args.work = 0.8 if args.quick else 1.5
    args.duration = 1 if args.quick else 2
    out_path = pathlib.Path(args.out) if args.out else RESULTS / ("record-quick.md" if args.quick else "record.md")
    began = time.monotonic()
    if not become_subreaper():
        print("warning: not a subreaper: peak RSS includes the harness's own", file=sys.stderr)

    asyncio_args = argparse.Namespace(**vars(args))
    asyncio_args.duration = 2 if args.quick else 3  # the loop's cycle is 0.5 s
    named = {
        "split": lambda: Split(args, 10),
        "split80": lambda: Split(args, 80, work=0.5 if args.quick else 1.0),
        "threads": lambda: Threads(args),
        "gil": lambda: Gil(args),
        "asyncio": lambda: Asyncio(asyncio_args),
        "py315": lambda: Split(args, 10, python="3.15"),
    }
    default = ["split", "gil"] if args.native else list(named)
    chosen = args.only.split(",") if args.only else default
    unknown = [name for name in chosen if name not in named]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}")
    workloads = [named[name]() for name in chosen]

    notes = []
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="pydx-bench-"))
    sid_scratch = None
    try:
        t = Tools(args.pydx, scratch, notes)
        machine_line, version_lines = tools.machine(), versions(t)
        for workload in list(workloads):
            if isinstance(workload, Split) and workload.python == "3.15":
                if not t.py315.exists():
                    notes.append(f"Python 3.15 comparison skipped: {t.py315} not found")
                    workloads.remove(workload)
                    continue
                sid_copy = t.sid / SID_DIR.lstrip("/")
                sid_copy.mkdir(parents=True, exist_ok=True)
                shutil.copy(WORKLOADS / "split.py", sid_copy / "split.py")
                sid_scratch = pathlib.Path(tempfile.mkdtemp(prefix="out-", dir=sid_copy))
        for workload in workloads:
            if isinstance(workload, Split):
                workload.calibrate(t)

        plans = [(w, configs_for(w, args.quick, args.native)) for w in workloads]
        runs = {(w.name, c.key): [] for w, cfgs in plans for c in cfgs}
        total = sum(len(c) for _, c in plans) * args.reps
        done = 0
        for rep in range(args.reps):
            for workload, cfgs in plans:
                # rotate the order round by round so no tool always runs first
                shift = rep % len(cfgs)
                for cfg in cfgs[shift:] + cfgs[:shift]:
                    done += 1
                    tmp = pathlib.Path(tempfile.mkdtemp(dir=sid_scratch if cfg.python == "3.15" else scratch))
                    t0 = time.monotonic()
                    try:
                        row = workload.run(t, cfg, tmp)
                    except Failed as error:
                        row = {"failed": str(error)}
                    except Exception as error:  # noqa: BLE001 - one bad run must not end the benchmark
                        row = {"failed": f"{type(error).__name__}: {error}"}
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                    runs[(workload.name, cfg.key)].append(row)
                    status = row.get("failed") or ", ".join(
                        f"{k} {v:.1f}" for k, v in row.items()
                        if k in ("rate", "error", "elapsed", "throughput") and isinstance(v, float))
                    print(f"[{done}/{total} {time.monotonic() - began:4.0f}s] {workload.name}: "
                          f"{cfg.label() if cfg.tool != 'none' else 'unprofiled'} "
                          f"({time.monotonic() - t0:.1f} s): {status}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if sid_scratch:
            shutil.rmtree(sid_scratch, ignore_errors=True)

    all_rows = []
    for workload, cfgs in plans:
        baseline = [r for r in runs[(workload.name, ("none", "", 0))] if "failed" not in r] \
            if workload.baseline else []
        unique = list({cfg.key: cfg for cfg in cfgs}.values())
        rows = [summarize(workload, cfg, runs[(workload.name, cfg.key)], baseline) for cfg in unique]
        all_rows.append((workload, rows))

    elapsed = time.monotonic() - began
    command = "python3 bench/record.py" + "".join(f" {a}" for a in sys.argv[1:])
    report = ["# pydx record vs py-spy and Austin", "",
              f"`{command}`: {args.reps} repetition(s), tools interleaved round by round, medians; "
              f"run time {elapsed / 60:.1f} min.", "",
              f"Machine: {machine_line}.", ""]
    report += [f"- {line}" for line in version_lines]
    report += ["", "Metrics: *max error* = largest absolute difference, in percentage points, between a "
               "function's share of the samples and its share of the time as measured by the workload "
               "itself; *CPU µs/sample* = user+sys CPU of the profiler process (wait4, start-up "
               "included) / sampling rounds; *peak RSS* = ru_maxrss of the profiler process; "
               "*slowdown* = median profiled vs median unprofiled run (2 unprofiled runs per round), "
               "then best vs best (noise only slows runs down; on this machine it moves single runs "
               "by ±30%, so slowdowns under ~20% are within the noise). Austin's samples are "
               "counted, not weighted by its time metric. Rows that failed in every repetition "
               "say why; partial failures are noted in *detail*.", ""]
    for workload, rows in all_rows:
        report += table(workload, rows, args.reps) + [""]
    report += summary(all_rows) + [""]
    if notes:
        report += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(report)
    print(text)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
