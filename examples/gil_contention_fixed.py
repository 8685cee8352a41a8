"""gil_contention.py fixed: the same work in four processes, which run in
parallel (each has its own GIL).

Usage: python gil_contention_fixed.py [SECONDS]
"""
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def count_primes(limit):
    count = 0
    for n in range(2, limit):
        for d in range(2, int(n**0.5) + 1):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def worker(deadline):
    while time.monotonic() < deadline:
        count_primes(20_000)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    deadline = time.monotonic() + seconds
    with ProcessPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(worker, deadline) for _ in range(4)]:
            future.result()


if __name__ == "__main__":
    main()
