"""numeric_loop.py fixed: one NumPy call computes the whole sum in C.

Usage: python numeric_loop_fixed.py [SECONDS]
"""
import sys
import time

import numpy as np


def order_value(prices, quantities):
    return float(np.dot(prices, quantities))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    rng = np.random.default_rng(7)
    prices = rng.uniform(1.0, 100.0, 50_000)
    quantities = rng.integers(1, 10, 50_000).astype(float)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        order_value(prices, quantities)
        time.sleep(0.001)


if __name__ == "__main__":
    main()
