"""repeated_computation.py fixed: the pure function is cached, so each of
its twelve distinct argument sets is computed once.

Usage: python repeated_computation_fixed.py [SECONDS]
"""
import functools
import random
import sys
import time


@functools.cache
def shipping_quote(zone, weight_class):
    table = {}
    for step in range(3_000):
        key = f"{zone}-{weight_class}-{step % 50}"
        table[key] = table.get(key, 0) + len(key)
    return sum(table.values())


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    orders = [(random.randint(1, 4), random.randint(1, 3)) for _ in range(1_000)]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for zone, weight_class in orders:
            shipping_quote(zone, weight_class)
        time.sleep(0.01)


if __name__ == "__main__":
    main()
