"""Three functions burning CPU in a 50:30:20 split, called at a given stack
depth; measures the time really spent in each one (perf_counter around each
call) and prints it as JSON on stdout at exit.

    split.py [--depth N] [--duration S | --cycles N] [--wait-go]

--duration runs for S seconds; --cycles does a fixed amount of work (the same
N cycles of the same pseudo-random sizes every time) for slowdown
measurements. --wait-go prints "ready" and spins in wait_for_go() until
SIGUSR1, so that a profiler can attach before the work starts.
"""
import argparse
import json
import random
import signal
import sys
import time

UNIT = 20000  # loop iterations per unit of work (~0.5 ms on CPython 3.12)
BASE_FRAMES = 5  # <module>, main, run_work, the bottom descend, work_x


def work_a(n):
    x = 0
    for i in range(n):
        x += i
    return x


def work_b(n):
    x = 0
    for i in range(n):
        x += i
    return x


def work_c(n):
    x = 0
    for i in range(n):
        x += i
    return x


PLAN = ((work_a, 5), (work_b, 3), (work_c, 2))
perf_counter = time.perf_counter


def descend(levels, fn, n, spent):
    """Adds `levels` frames, then times one call of fn."""
    if levels:
        return descend(levels - 1, fn, n, spent)
    began = perf_counter()
    fn(n)
    spent[fn.__name__] += perf_counter() - began
    return None


def run_work(levels, cycles, duration, spent):
    """Returns (cycles done, loop iterations done)."""
    # Sizes jitter (0.5x-1.5x) so that no sampling rate aliases with the cycle.
    rng = random.Random(1)
    done = iterations = 0
    deadline = perf_counter() + duration if duration else None
    while True:
        if cycles is not None and done >= cycles:
            break
        if deadline is not None and perf_counter() >= deadline:
            break
        for fn, weight in PLAN:
            n = int(UNIT * weight * rng.uniform(0.5, 1.5))
            descend(levels, fn, n, spent)
            iterations += n
        done += 1
    return done, iterations


go = False


def on_go(signum, frame):
    global go
    go = True


def wait_for_go():
    while not go:
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--cycles", type=int, default=None)
    parser.add_argument("--wait-go", action="store_true")
    args = parser.parse_args()
    if args.duration is None and args.cycles is None:
        args.duration = 10.0
    levels = max(args.depth - BASE_FRAMES, 0)
    if args.wait_go:
        signal.signal(signal.SIGUSR1, on_go)
        print("ready", flush=True)
        wait_for_go()
    spent = {fn.__name__: 0.0 for fn, _ in PLAN}
    began = perf_counter()
    cycles, iterations = run_work(levels, args.cycles, args.duration, spent)
    elapsed = perf_counter() - began
    total = sum(spent.values())
    print(json.dumps({
        "elapsed": elapsed,
        "cycles": cycles,
        "iterations": iterations,
        "seconds": spent,
        "truth": {name: 100.0 * s / total for name, s in spent.items()},
        "depth": levels + BASE_FRAMES,
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
