"""hot_spot.py fixed: re.findall scans the text in C.

Usage: python hot_spot_fixed.py [SECONDS]
"""
import re
import sys
import time

LINES = [
    f"order_id={n} customer=alice total={n % 97}.5 currency=EUR status=paid " * 200
    for n in range(1_000)
]
WORD = re.compile(r"\w+")


def tokenize(text):
    return WORD.findall(text)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in LINES:
            tokenize(line)
            if time.monotonic() >= deadline:
                break
        time.sleep(0.001)


if __name__ == "__main__":
    main()
