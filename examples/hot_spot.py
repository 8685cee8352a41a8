"""A tokenizer that walks the text one character at a time in Python.
`pydx doctor` reports PYDX-CPU002 (interpreted hot spot); the fixed version
is hot_spot_fixed.py, where the regular expression engine does the walk.

Usage: python hot_spot.py [SECONDS]
"""
import sys
import time

LINES = [
    f"order_id={n} customer=alice total={n % 97}.5 currency=EUR status=paid " * 200
    for n in range(1_000)
]


def tokenize(text):
    tokens = []
    current = ""
    for ch in text:
        if ch.isalnum() or ch == "_":
            current += ch
        elif current:
            tokens.append(current)
            current = ""
    if current:
        tokens.append(current)
    return tokens


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in LINES:
            tokenize(line)
            if time.monotonic() >= deadline:
                break


if __name__ == "__main__":
    main()
