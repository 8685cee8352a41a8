"""A loop driven by a generator that does the work: on 3.11 every resume
of the generator by `for` runs in a new C-level call of the evaluation
loop (a new `_PyCFrame`), so the `for` line itself takes almost no time.
Runs for the number of seconds given (default 3)."""
import json
import sys
import time


def produce():
    n = 0
    while True:
        n += 1
        yield json.dumps({"id": n, "name": "x" * 10, "tags": [1, 2, 3]})


def main(seconds):
    end = time.monotonic() + seconds
    for message in produce():  # LINE:for
        if time.monotonic() > end:
            break


main(float(sys.argv[1]) if len(sys.argv) > 1 else 3)
