"""Recurses to every depth from 0 to 19 in a tight loop, so that its stack
changes every few hundred nanoseconds: the hardest case for reading a
stack without stopping the program. Every stack it ever has is `<module>`,
`main`, then 0 to 20 `rec` frames.

Usage: recurse.py SECONDS
"""
import sys
import time


def rec(depth):
    if depth > 0:
        rec(depth - 1)  # LINE:descend
        return
    total = 0  # LINE:leaf
    for i in range(30):
        total += i


def main(seconds):
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for depth in range(20):
            rec(depth)


main(float(sys.argv[1]))
