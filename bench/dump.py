"""`pydx dump` against `py-spy dump` and `austin -w`, on the same processes,
in the same run. Prints a Markdown table of wall times per dump."""
import statistics
import subprocess
import sys
import time

import tools

ROUNDS = 60

TARGET = r"""
import sys, threading, time
def leaf(n):
    if n == 0:
        time.sleep(3600)
    return leaf(n - 1)
def spin():
    x = 0
    while True: x += 1
threads = int(sys.argv[1])
for i in range(threads - 2):
    threading.Thread(target=leaf, args=(20,), daemon=True).start()
threading.Thread(target=spin, daemon=True).start()
print("ready", flush=True)
leaf(20)
"""


def start_target(python, threads):
    process = subprocess.Popen([python, "-c", TARGET, str(threads)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    return process


def time_commands(commands):
    """Runs the commands in turn, round after round, so that the machine's
    noise falls on all of them alike; returns each one's times in ms."""
    times = {name: [] for name in commands}
    errors = {}
    for _ in range(ROUNDS):
        for name, command in commands.items():
            if name in errors:
                continue
            began = time.perf_counter()
            result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            times[name].append((time.perf_counter() - began) * 1000)
            if result.returncode != 0:
                errors[name] = " ".join(result.stderr.decode().strip().splitlines()[-1:])
    return times, errors


def main():
    python = tools.pyenv_python(12)
    pydx, py_spy, austin = tools.pydx(), tools.py_spy(), tools.austin()
    commands = {
        "pydx dump": lambda pid: [pydx, "dump", "--pid", str(pid)],
        "pydx dump --nonblocking": lambda pid: [pydx, "dump", "--nonblocking", "--pid", str(pid)],
        "py-spy dump": lambda pid: [py_spy, "dump", "--pid", str(pid)],
        "py-spy dump --nonblocking": lambda pid: [py_spy, "dump", "--nonblocking", "--pid", str(pid)],
        "austin -w": lambda pid: [austin, "-w", str(pid)],
    }
    rows = []
    for threads in (4, 50):
        target = start_target(python, threads)
        try:
            times, errors = time_commands({name: make(target.pid) for name, make in commands.items()})
            for name in commands:
                if name in errors:
                    rows.append((threads, name, "failed", "", errors[name]))
                    continue
                rows.append((threads, name, f"{statistics.median(times[name]):.1f}",
                             f"{statistics.quantiles(times[name], n=10)[-1]:.1f}", ""))
        finally:
            target.kill()
    print(f"Python {python.rsplit('/', 3)[-3]}, {ROUNDS} dumps each, wall time of the whole command in ms\n")
    print("| threads | command | median ms | p90 ms | note |")
    print("|---:|---|---:|---:|---|")
    for threads, name, median, p90, note in rows:
        print(f"| {threads} | `{name}` | {median} | {p90} | {note} |")


if __name__ == "__main__":
    sys.exit(main())
