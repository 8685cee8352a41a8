"""Starts short-lived threads as fast as it can for argv[1] seconds, each
ending almost at once: threads exit while pydx holds the others paused."""
import sys
import threading
import time


def short():
    sum(range(200))


def main(seconds):
    end = time.time() + seconds
    started = 0
    while time.time() < end:
        threading.Thread(target=short).start()
        started += 1
        if started % 50 == 0:
            time.sleep(0.001)
    print("started", started, "threads")


main(float(sys.argv[1]))
