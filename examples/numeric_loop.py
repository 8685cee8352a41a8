"""A pure-Python loop over NumPy arrays, one element at a time: each
`prices[i]` builds a Python scalar. `pydx doctor` reports PYDX-CPU001 with
the vectorised form; the fixed version is numeric_loop_fixed.py.

Usage: python numeric_loop.py [SECONDS]
"""
import sys
import time

import numpy as np


def order_value(prices, quantities):
    total = 0.0
    for i in range(len(prices)):
        total += prices[i] * quantities[i]
    return total


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    rng = np.random.default_rng(7)
    prices = rng.uniform(1.0, 100.0, 50_000)
    quantities = rng.integers(1, 10, 50_000).astype(float)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        order_value(prices, quantities)


if __name__ == "__main__":
    main()
