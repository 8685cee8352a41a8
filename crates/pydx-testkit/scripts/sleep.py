"""Sleeps in `nap` for SECONDS (default 3), never on a CPU: a program whose
samples are all idle."""
import sys
import time


def nap(seconds):
    time.sleep(seconds)


if __name__ == "__main__":
    print("ready", flush=True)
    nap(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
