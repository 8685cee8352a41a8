#!/usr/bin/env python3
"""What pydx guarantees, measured: every stop writes a valid profile, the
target is unharmed by thousands of attaches, threads and processes that come
and go leave no errors or stale threads, and a long recording keeps its
memory flat.

    python3 bench/reliability.py                 # everything (about 45 min)
    python3 bench/reliability.py --only stops    # one part: stops, harm, churn, soak
    python3 bench/reliability.py --cycles 1000 --soak-minutes 5   # shorter

Results go to bench/results/reliability.md (or --out)."""
import argparse
import gzip
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import tools

FUNCTION = "spin_for_matrix"

SPIN = f"""
import sys, time
def {FUNCTION}(seconds):
    end = time.time() + seconds
    while time.time() < end:
        sum(range(1000))
print("ready", flush=True)
{FUNCTION}(float(sys.argv[1]))
"""

# Every round computes the same value; a wrong one means the target was
# disturbed. Rounds per second are written for the slowdown.
STEADY = """
import sys, threading, time
EXPECTED = sum(i * i % 7919 for i in range(20000))
rounds = [0] * 4
def work(slot):
    while True:
        value = sum(i * i % 7919 for i in range(20000))
        if value != EXPECTED:
            print("CORRUPT", value, flush=True)
            sys.exit(3)
        rounds[slot] += 1
for slot in range(1, 4):
    threading.Thread(target=work, args=(slot,), daemon=True).start()
threading.Thread(target=work, args=(0,), daemon=True).start()
print("ready", flush=True)
out = sys.argv[1]
while True:
    time.sleep(0.5)
    with open(out, "a") as f:
        f.write("%f %d\\n" % (time.time(), sum(rounds)))
"""

MANY_THREADS = """
import sys, threading, time
count = [0]
lock = threading.Lock()
def work():
    while True:
        sum(range(200))
        with lock:
            count[0] += 1
        time.sleep(0.01)
for _ in range(int(sys.argv[1])):
    threading.Thread(target=work, daemon=True).start()
print("ready", flush=True)
out = sys.argv[2]
while True:
    time.sleep(0.5)
    with open(out, "a") as f:
        f.write("%f %d\\n" % (time.time(), count[0]))
"""

# Threads every 10 ms, forked workers every 100 ms: the test suite's program.
CHURN = tools.REPO / "crates/pydx-testkit/scripts/fork_churn.py"

# Many distinct stacks: 400 generated functions called in random chains.
SOAK = """
import random, sys, time
SOURCE = "\\n".join(
    "def f%d(depth, rng):\\n    if depth == 0:\\n        return sum(range(50))\\n"
    "    return FUNCS[rng.randrange(len(FUNCS))](depth - 1, rng)" % i
    for i in range(400))
exec(SOURCE)
FUNCS = [globals()["f%d" % i] for i in range(400)]
rng = random.Random(1)
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    FUNCS[rng.randrange(400)](rng.randrange(1, 12), rng)
"""

# A bounded set of stacks: the same 400 functions, but only 20 chains,
# called over and over (their stacks, prefixes and lines all seen within
# the first minute).
SOAK_BOUNDED = """
import random, sys, time
SOURCE = "\\n".join(
    "def f%d(path, k):\\n    if k == len(path):\\n        return sum(range(50))\\n"
    "    return FUNCS[path[k]](path, k + 1)" % i
    for i in range(400))
exec(SOURCE)
FUNCS = [globals()["f%d" % i] for i in range(400)]
rng = random.Random(1)
PATHS = [tuple(rng.randrange(400) for _ in range(rng.randrange(1, 12))) for _ in range(20)]
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for path in PATHS:
        FUNCS[path[0]](path, 1)
"""

FORMATS = {"pprof": "pb.gz", "flamegraph": "svg", "speedscope": "speedscope.json",
           "collapsed": "txt", "chrometrace": "trace.json"}
# Each stop and the signals it sends pydx (80 ms apart), one second in.
STOPS = {"SIGINT once": ["SIGINT"], "SIGINT twice": ["SIGINT"] * 2,
         "SIGINT three times": ["SIGINT"] * 3, "SIGTERM": ["SIGTERM"], "SIGHUP": ["SIGHUP"],
         "duration end": [], "target exits": [], "target SIGKILL": []}


def write(directory, name, text):
    path = pathlib.Path(directory) / name
    path.write_text(text)
    return str(path)


def wait_ready(proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == b"ready" or line.strip() == "ready":
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode} before it was ready")
    raise RuntimeError("target not ready")


def valid_profile(path, kind, pydx):
    """Whether the file at path is a complete profile of its kind naming FUNCTION."""
    if not path.exists() or path.stat().st_size == 0:
        return False, "no file"
    try:
        if kind == "pprof":
            gzip.decompress(path.read_bytes())
            r = subprocess.run([pydx, "doctor", "-f", "json", str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            if r.returncode != 0:
                return False, r.stderr.decode(errors="replace").strip()[-200:]
            hot = json.loads(r.stdout)["report"]["hot_spots"]
            ok = any(h["function"] == FUNCTION for h in hot)
            return ok, "" if ok else f"hot spots: {[h['function'] for h in hot][:3]}"
        text = path.read_text()
        if kind == "flamegraph":
            ok = text.lstrip().startswith("<?xml") and text.rstrip().endswith("</svg>") and FUNCTION in text
        elif kind == "collapsed":
            ok = any(FUNCTION in line and line.rsplit(" ", 1)[-1].isdigit() for line in text.splitlines())
        else:
            ok = FUNCTION in json.dumps(json.loads(text))
        return ok, "" if ok else "function not in the file"
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as error:
        return False, str(error)[:200]


def stops(pydx, python, scratch):
    """Every stop x {attach, launch} x every format: a valid profile each time."""
    script = write(scratch, "spin.py", SPIN)
    cells = {}
    for stop in STOPS:
        for mode in ("attach", "launch"):
            for kind, extension in FORMATS.items():
                out = pathlib.Path(scratch) / f"stop.{extension}"
                if out.exists():
                    out.unlink()
                seconds = "1.5" if stop == "target exits" else "30"
                args = [pydx, "record", "--idle", "-o", str(out)]
                if stop == "duration end":
                    args += ["-d", "1.5"]
                target = None
                if mode == "attach":
                    target = subprocess.Popen([python, script, seconds], stdout=subprocess.PIPE)
                    wait_ready(target)
                    args += ["--pid", str(target.pid)]
                else:
                    args += ["--", python, script, seconds]
                recorder = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            start_new_session=True)
                time.sleep(1.0)
                for name in STOPS[stop]:
                    os.kill(recorder.pid, getattr(signal, name))
                    time.sleep(0.08)
                if stop == "target SIGKILL":
                    victim = target.pid if target else child_of(recorder.pid)
                    if victim:
                        os.kill(victim, signal.SIGKILL)
                try:
                    _, err = recorder.communicate(timeout=30)
                    why = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
                except subprocess.TimeoutExpired:
                    recorder.kill()
                    recorder.communicate()
                    why = ["pydx did not stop within 30 s"]
                if target:
                    target.kill()
                    target.wait()
                ok, problem = valid_profile(out, kind, pydx)
                cells[(stop, mode, kind)] = (ok, recorder.returncode, problem or why[0])
                mark = "ok" if ok else f"FAIL ({problem or why[0]})"
                print(f"  {stop:20} {mode:7} {kind:12} exit {recorder.returncode}: {mark}", flush=True)
    return cells


def child_of(pid):
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return int(children[0]) if children else None
    except OSError:
        return None


def throughput(log, start, end):
    """Rounds per second between two times, from the target's log."""
    points = [tuple(map(float, line.split())) for line in pathlib.Path(log).read_text().splitlines()
              if line.strip()]
    inside = [p for p in points if start <= p[0] <= end]
    if len(inside) < 2:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def harm(pydx, python, scratch, cycles):
    """cycles attach/detach cycles against a steady target: crashes, wrong
    results and slowdown; then a 500-thread target sampled at 100 Hz."""
    log = pathlib.Path(scratch) / "steady.log"
    target = subprocess.Popen([python, write(scratch, "steady.py", STEADY), str(log)],
                              stdout=subprocess.PIPE)
    wait_ready(target)
    time.sleep(3)
    base_start = time.time()
    time.sleep(10)
    baseline = throughput(log, base_start, time.time())
    kinds = {"dump (paused)": [pydx, "dump", "--pid", str(target.pid)],
             "dump --nonblocking": [pydx, "dump", "--nonblocking", "--pid", str(target.pid)],
             "record -d 0.2": [pydx, "record", "-d", "0.2", "-o", str(pathlib.Path(scratch) / "h.pb.gz"),
                               "--pid", str(target.pid)]}
    order = ["dump (paused)", "dump --nonblocking"] * 9 + ["record -d 0.2"] * 2
    failures = {k: 0 for k in kinds}
    done = {k: 0 for k in kinds}
    first_failure = {}
    load_start = time.time()
    for cycle in range(cycles):
        kind = order[cycle % len(order)]
        r = subprocess.run(kinds[kind], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        done[kind] += 1
        if r.returncode != 0:
            failures[kind] += 1
            first_failure.setdefault(kind, r.stderr.decode(errors="replace").strip()[-200:])
        if target.poll() is not None:
            break
        if cycle % 1000 == 999:
            print(f"  {cycle + 1} cycles", flush=True)
    under_load = throughput(log, load_start, time.time())
    alive = target.poll() is None
    target.kill()
    out, _ = target.communicate()
    corrupt = b"CORRUPT" in (out or b"")
    # 500 threads at 100 Hz.
    log500 = pathlib.Path(scratch) / "many.log"
    many = subprocess.Popen([python, write(scratch, "many.py", MANY_THREADS), "500", str(log500)],
                            stdout=subprocess.PIPE)
    wait_ready(many)
    time.sleep(3)
    rates = {"alone": [], "sampled": []}
    for _ in range(2):
        start = time.time()
        time.sleep(8)
        rates["alone"].append(throughput(log500, start, time.time()))
        start = time.time()
        subprocess.run([pydx, "record", "--rate", "100", "-d", "8", "-o",
                        str(pathlib.Path(scratch) / "many.pb.gz"), "--pid", str(many.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rates["sampled"].append(throughput(log500, start, time.time()))
    many.kill()
    many.wait()
    return {"cycles": sum(done.values()), "done": done, "failures": failures,
            "first_failure": first_failure, "alive": alive, "corrupt": corrupt,
            "baseline": baseline, "under_load": under_load,
            "threads500": {k: statistics.median(v) for k, v in rates.items()}}


def churn(pydx, python, scratch):
    """100 threads/s and 10 forked workers/s under record --subprocesses."""
    out = pathlib.Path(scratch) / "churn.txt"
    pprof = pathlib.Path(scratch) / "churn.pb.gz"
    script = str(CHURN)
    results = {}
    for name, path, extra in (("collapsed", out, ["-t", "--idle"]), ("pprof", pprof, [])):
        r = subprocess.run([pydx, "record", "--subprocesses", "--rate", "200", *extra, "-o", str(path),
                            "--", python, script, "10"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=120)
        results[name] = (r.returncode, r.stderr.decode(errors="replace").strip().splitlines()[-1:])
    per_thread = {}
    for line in out.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread ")), None)
        if thread and "short_lived_thread" in stack:
            per_thread[(frames[0], thread)] = per_thread.get((frames[0], thread), 0) + int(count)
    summary = results["pprof"][1][0] if results["pprof"][1] else ""
    processes = re.search(r"in (\d+) process", summary)
    errors = re.search(r"(\d+) errors?", summary)
    return {"exit": {k: v[0] for k, v in results.items()}, "summary": summary,
            "processes": int(processes.group(1)) if processes else None,
            "errors": int(errors.group(1)) if errors else None,
            "short_threads": len(per_thread),
            "max_samples_per_short_thread": max(per_thread.values(), default=0)}


def soak(pydx, python, scratch, minutes, bounded=False):
    """minutes at 1 kHz on many distinct stacks (20 chains with `bounded`, or a
    new one nearly every sample): pydx's RSS over time."""
    out = pathlib.Path(scratch) / "soak.pb.gz"
    seconds = minutes * 60
    recorder = subprocess.Popen([pydx, "record", "--rate", "1000", "-o", str(out), "--", python,
                                 write(scratch, "soak.py", SOAK_BOUNDED if bounded else SOAK),
                                 str(seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    readings = []
    start = time.monotonic()
    while recorder.poll() is None:
        try:
            status = pathlib.Path(f"/proc/{recorder.pid}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            readings.append((time.monotonic() - start, rss))
        except (OSError, AttributeError):
            pass
        time.sleep(5)
    err = recorder.stderr.read().decode(errors="replace").strip().splitlines()[-1:]
    after_first = [(t, kb) for t, kb in readings if t >= 60]
    slope = None
    if len(after_first) >= 3:
        ts = [t / 60 for t, _ in after_first]
        kbs = [kb for _, kb in after_first]
        mean_t, mean_kb = statistics.mean(ts), statistics.mean(kbs)
        slope = sum((t - mean_t) * (kb - mean_kb) for t, kb in zip(ts, kbs)) / \
            sum((t - mean_t) ** 2 for t in ts)
    marks = sorted({1, 5, 10, 15, 20, 25, 30} | {int(minutes)})
    at_minutes = {m: next((kb for t, kb in readings if t >= m * 60), None) for m in marks
                  if m <= minutes}
    return {"minutes": minutes, "bounded": bounded, "exit": recorder.returncode,
            "rss_at_minutes_kb": at_minutes, "summary": err[0] if err else "",
            "rss_first_minute_kb": max((kb for t, kb in readings if t < 60), default=None),
            "rss_peak_kb": max((kb for _, kb in readings), default=None),
            "rss_end_kb": readings[-1][1] if readings else None,
            "slope_kb_per_min": slope, "profile_bytes": out.stat().st_size if out.exists() else 0}


def report(results, args, pydx_line, commit):
    lines = ["# What pydx guarantees, measured", "",
             f"`python3 bench/reliability.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`", "",
             f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- pydx: {pydx_line} (commit {commit})",
             f"- Machine: {tools.machine()}",
             f"- Target: Python from {args.python}", ""]
    if "stops" in results:
        cells = results["stops"]
        good = sum(1 for ok, _, _ in cells.values() if ok)
        lines += ["## Stops", "",
                  f"{good} of {len(cells)} cells wrote a valid profile naming the sampled function "
                  "(pprof read back by `pydx doctor`, SVG complete, JSON parsed, collapsed lines "
                  "counted).", "",
                  "| stop | mode | " + " | ".join(FORMATS) + " |",
                  "|---|---|" + "---|" * len(FORMATS)]
        for stop in STOPS:
            for mode in ("attach", "launch"):
                row = []
                for kind in FORMATS:
                    ok, code, problem = cells[(stop, mode, kind)]
                    row.append(f"ok (exit {code})" if ok else f"**{problem}**")
                lines.append(f"| {stop} | {mode} | " + " | ".join(row) + " |")
        lines.append("")
    if "harm" in results:
        h = results["harm"]
        slow = (1 - h["under_load"] / h["baseline"]) * 100 if h["baseline"] and h["under_load"] else None
        t500 = h["threads500"]
        slow500 = (1 - t500["sampled"] / t500["alone"]) * 100 if t500["alone"] else None
        lines += ["## Target harm", "",
                  f"{h['cycles']} attach/detach cycles against a 5-thread target checking its own "
                  f"results: " + ", ".join(f"{n} {k}" for k, n in h["done"].items()) + ".", "",
                  f"- target alive at the end: {'yes' if h['alive'] else 'NO'}; wrong results: "
                  f"{'YES' if h['corrupt'] else 'none'}",
                  f"- failed pydx runs: " + ", ".join(f"{k} {n}" for k, n in h["failures"].items()) +
                  ("; first: " + "; ".join(f"{k}: {v}" for k, v in h["first_failure"].items())
                   if h["first_failure"] else ""),
                  f"- target throughput alone {h['baseline']:.1f} rounds/s, during the cycles "
                  f"{h['under_load']:.1f} rounds/s ({slow:+.1f}% slower; each cycle also starts a "
                  "pydx process on the same 2 CPUs)" if slow is not None else "- throughput: unmeasured",
                  f"- 500 threads (each a short computation then a 10 ms sleep), sampled at 100 Hz in "
                  f"the default mode: {t500['alone']:.0f} rounds/s alone, {t500['sampled']:.0f} "
                  f"sampled (median of 2 alternations each): {slow500:+.1f}% slower"
                  if slow500 is not None else "- 500 threads: unmeasured", ""]
    if "churn" in results:
        lines += ["## Churn", "",
                  "A program starting a thread every 10 ms (each lives 5 ms) and forking a worker every "
                  "100 ms (each lives 50 ms), recorded for 10 s at 200 Hz with `--subprocesses` (once "
                  "to collapsed stacks per thread, once to pprof), in the default mode of each version "
                  "(nonblocking from 3.11, paused before):", ""]
        for python, c in results["churn"].items():
            lines += [f"- `{python}`: exit statuses {c['exit']}; processes sampled {c['processes']}; "
                      f"snapshot errors {c['errors']}; short-lived threads with samples "
                      f"{c['short_threads']}, most samples of one {c['max_samples_per_short_thread']} "
                      "(a 5 ms thread at 200 Hz has at most 2; more would be a thread kept after it "
                      f"ended); summary `{c['summary']}`"]
        lines.append("")
    if "soak" in results:
        s = results["soak"]
        program = ("20 chains called over and over (chains of up to 12 of 400 generated "
                   "functions)" if s["bounded"] else "a new stack nearly every sample (400 generated "
                   "functions called in random chains up to 12 deep)")
        lines += ["## Soak", "",
                  f"{s['minutes']} min at 1 kHz on a program with {program}:", "",
                  f"- exit {s['exit']}; summary: `{s['summary']}`",
                  f"- pydx RSS: {s['rss_first_minute_kb']} kB at most in the first minute, "
                  f"{s['rss_peak_kb']} kB peak, {s['rss_end_kb']} kB at the end; slope after the first "
                  f"minute {s['slope_kb_per_min']:+.0f} kB/min" if s["slope_kb_per_min"] is not None
                  else "- RSS: too few readings",
                  "- pydx RSS by minute: " + ", ".join(f"{m} min {kb} kB"
                                                       for m, kb in s["rss_at_minutes_kb"].items()
                                                       if kb is not None),
                  f"- profile written: {s['profile_bytes']:,} bytes", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pydx", help="pydx binary (default: cargo build --release)")
    parser.add_argument("--python", default=tools.pyenv_python(12), help="target interpreter")
    parser.add_argument("--only", action="append", choices=["stops", "harm", "churn", "soak"], default=[])
    parser.add_argument("--cycles", type=int, default=10000)
    parser.add_argument("--soak-minutes", type=float, default=30)
    parser.add_argument("--soak-bounded", action="store_true",
                        help="soak on 20 chains called over and over instead of new stacks")
    parser.add_argument("--out", default=str(tools.REPO / "bench/results/reliability.md"))
    args = parser.parse_args()
    pydx = args.pydx or tools.pydx()
    parts = args.only or ["stops", "harm", "churn", "soak"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tools.REPO,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    version = subprocess.run([pydx, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    results = {}
    with tempfile.TemporaryDirectory(prefix="pydx-reliability-") as scratch:
        for part in parts:
            print(f"{part}:", flush=True)
            began = time.monotonic()
            if part == "stops":
                results[part] = stops(pydx, args.python, scratch)
            elif part == "harm":
                results[part] = harm(pydx, args.python, scratch, args.cycles)
            elif part == "churn":
                # 3.8 too: there pydx pauses the target for each sample by default.
                results[part] = {python: churn(pydx, python, scratch)
                                 for python in (args.python, tools.pyenv_python(8))}
            else:
                results[part] = soak(pydx, args.python, scratch, args.soak_minutes, args.soak_bounded)
            print(f"  ({(time.monotonic() - began) / 60:.1f} min)", flush=True)
    text = report(results, args, version, commit)
    pathlib.Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
