"""Calls one of two families of functions, `a0` -> `a1` -> ... or `b0` ->
`b1` -> ..., to a random depth from 1 to 11, in a tight loop. The two
families are alike in every way but their names, so their frames are the
same size and take the same slots of the thread's frame stack: a stack read
while the thread returns and calls again could show an `a` frame calling a
`b` one, which the program never does. Every stack it ever has is
`<module>`, `main`, then `a0`..`aN` or `b0`..`bN` in order.

Usage: two_families.py SECONDS
"""
import random
import sys
import time

SOURCE = []
for family in "ab":
    for index in range(12):
        SOURCE.append(
            f"def {family}{index}(depth):\n"
            f"    if depth == 0:\n"
            f"        return sum(range(20))\n"
            f"    return {family}{index + 1}(depth - 1)\n"
        )
exec("".join(SOURCE))


def main(seconds):
    rng = random.Random(1)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        depth = rng.randrange(1, 12)
        if rng.random() < 0.5:
            a0(depth)
        else:
            b0(depth)


main(float(sys.argv[1]))
