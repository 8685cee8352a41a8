"""Four threads count primes in pure Python. They take turns on the GIL, so
the work takes as long as on one core: `pydx doctor` reports PYDX-GIL001.
The fixed version is gil_contention_fixed.py.

Usage: python gil_contention.py [SECONDS]
"""
import sys
import threading
import time


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
    threads = [threading.Thread(target=worker, args=(deadline,), name=f"primes-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
