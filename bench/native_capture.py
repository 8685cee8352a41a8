"""How often `pydx record --native` merges a native frame under a Python
function that did not call it, for each way of capturing native stacks:
pausing each thread (ptrace, the default) and the kernel's copies of the
stack taken without a pause (`--native-capture perf`).

The target (crates/pydx-testkit/scripts/native_probe.py ctypes-alternate,
Python 3.12) runs `first` and `second` in turns, each about a tenth of a
millisecond inside its own C function (`probe_spin`, `probe_spin_hidden`):
every stack it ever has shows `probe_spin` under `first` and
`probe_spin_hidden` under `second`. A merged stack that pairs them the
other way is wrong. Also reported: the profiler's CPU per sample (wait4)
and the share of thread stacks merged at all.

    python3 bench/native_capture.py [--reps N] [--rate HZ] [--out FILE]

Writes a Markdown report (default bench/results/native-capture.md).
Python stdlib only.
"""
import argparse
import datetime
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import tools

REPO = tools.REPO
SCRIPTS = REPO / "crates" / "pydx-testkit" / "scripts"
MODES = {"pause": [], "perf": ["--native-capture", "perf"]}


def build_probe(directory):
    library = directory / "libnative_probe.so"
    tools.run("gcc", "-O2", "-fno-optimize-sibling-calls", "-shared", "-fPIC", "-o", str(library),
              str(SCRIPTS / "native_probe.c"))
    return library


def classify(collapsed):
    """Samples by what `first` and `second` were merged with."""
    counts = dict(right=0, wrong=0, python_only=0, other=0)
    for line in collapsed.splitlines():
        stack, count = line.rsplit(" ", 1)
        names = [frame.split(" (")[0] for frame in stack.split(";")]
        count = int(count)
        for caller, own, other in (("first", "probe_spin", "probe_spin_hidden"),
                                   ("second", "probe_spin_hidden", "probe_spin")):
            if caller in names:
                called = names[names.index(caller) + 1:]
                if other in called:
                    counts["wrong"] += count
                elif own in called:
                    counts["right"] += count
                else:
                    counts["python_only"] += count
                break
        else:
            counts["other"] += count
    return counts


def one_run(pydx, python, library, mode, rate, seconds):
    target = subprocess.Popen([python, str(SCRIPTS / "native_probe.py"), "ctypes-alternate",
                               str(library)], stdout=subprocess.PIPE, text=True)
    try:
        if target.stdout.readline().strip() != "ready":
            raise RuntimeError("the target did not start")
        with tempfile.TemporaryDirectory() as out_dir:
            out = pathlib.Path(out_dir) / "profile.txt"
            profiler = subprocess.Popen(
                [pydx, "record", "--native", *MODES[mode], "-r", str(rate), "-d", str(seconds),
                 "--format", "collapsed", "-o", str(out), "--pid", str(target.pid)],
                stderr=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(profiler.pid, 0)
            stderr = profiler.stderr.read()
            if status != 0 or not out.exists():
                raise RuntimeError(f"pydx failed: {stderr.strip()}")
            counts = classify(out.read_text())
    finally:
        target.kill()
        target.wait()
    samples = sum(counts.values())
    rounds = int(re.search(r"over [\d.]+ s \((\d+) Hz", stderr).group(1)) * seconds
    return dict(counts, samples=samples,
                cpu_us=(usage.ru_utime + usage.ru_stime) * 1e6 / max(rounds, 1),
                summary=stderr.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--pydx", help="use this pydx binary instead of building the working tree")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "native-capture.md"))
    args = parser.parse_args()
    pydx = args.pydx or tools.pydx()
    python = tools.pyenv_python(12)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                            stdout=subprocess.PIPE).stdout.strip()
    with tempfile.TemporaryDirectory() as build_dir:
        library = build_probe(pathlib.Path(build_dir))
        runs = {mode: [] for mode in MODES}
        for _ in range(args.reps):
            for mode in MODES:
                run = one_run(pydx, python, library, mode, args.rate, args.seconds)
                runs[mode].append(run)
                print(mode, {k: v for k, v in run.items() if k != "summary"}, file=sys.stderr)
    lines = [
        "# Native stacks: pausing vs the kernel's copies", "",
        f"`python3 bench/native_capture.py --reps {args.reps} --rate {args.rate}`, "
        f"{datetime.date.today()}, git {commit}; target Python 3.12 (pyenv), "
        f"{os.cpu_count()} CPUs. Medians over {args.reps} runs of {args.seconds:g} s each.", "",
        "Samples of `first` or `second` (the target's every sample) by what they were merged "
        "with: *right* = the C function each calls; *wrong* = the other function's (a stack the "
        "program never had); *Python only* = no native frame (the native stack was not merged). "
        "CPU µs/sample = user+sys CPU of pydx (wait4) / sampling rounds.", "",
        "| capture | samples | right % | wrong % | Python only % | CPU µs/sample |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, rows in runs.items():
        share = lambda key: statistics.median(100 * r[key] / max(r["samples"], 1) for r in rows)
        lines.append(
            f"| {mode} | {statistics.median(r['samples'] for r in rows):.0f} | {share('right'):.1f} "
            f"| {share('wrong'):.1f} | {share('python_only'):.1f} "
            f"| {statistics.median(r['cpu_us'] for r in rows):.1f} |")
    lines += ["", "pydx's summary of the last run of each:", ""]
    lines += [f"- {mode}: `{rows[-1]['summary']}`" for mode, rows in runs.items()]
    report = "\n".join(lines) + "\n"
    pathlib.Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
