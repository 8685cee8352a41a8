"""A multiprocessing pool of three workers crunching numbers."""
import multiprocessing
import sys
import time


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i  # LINE:crunch
    return total


if __name__ == "__main__":
    seconds = float(sys.argv[1])
    with multiprocessing.Pool(3) as pool:
        print("ready", flush=True)
        end = time.time() + seconds
        while time.time() < end:
            pool.map(crunch, [200_000] * 6)
