"""A pure, slow function called for every order with only a few distinct
arguments. `pydx doctor` reads the arguments of the calls it samples and
reports PYDX-CACHE001; the fixed version is repeated_computation_fixed.py.

Usage: python repeated_computation.py [SECONDS]
"""
import random
import sys
import time


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
            if time.monotonic() >= deadline:
                break


if __name__ == "__main__":
    main()
