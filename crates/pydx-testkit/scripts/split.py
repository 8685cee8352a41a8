"""Three functions burning CPU in a 50:30:20 split of work. The program
measures the time each one really takes and prints it as JSON at the end,
so a profile can be checked against the truth.

Usage: split.py SECONDS [EXIT_CODE]
"""
import json
import sys
import time


def alpha(n):
    total = 0
    for i in range(n):
        total += i  # LINE:alpha
    return total


def beta(n):
    total = 0
    for i in range(n):
        total += i  # LINE:beta
    return total


def gamma(n):
    total = 0
    for i in range(n):
        total += i  # LINE:gamma
    return total


def main():
    seconds = float(sys.argv[1])
    spent = {"alpha": 0.0, "beta": 0.0, "gamma": 0.0}
    functions = [(alpha, 50_000), (beta, 30_000), (gamma, 20_000)]
    print("ready", flush=True)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for function, work in functions:
            started = time.perf_counter()
            function(work)
            spent[function.__name__] += time.perf_counter() - started
    print(json.dumps(spent), flush=True)
    sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)


main()
