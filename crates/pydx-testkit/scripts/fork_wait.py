"""Forks argv[1] short-lived workers one after another and waits for each
with a blocking `os.waitpid`, as a process pool does: a worker whose exit
stays unreported to its parent (a zombie held by a tracer) stops it for
good. Prints how many were reaped."""
import os
import sys
import time


def busy(seconds):
    end = time.time() + seconds
    while time.time() < end:
        sum(range(100))


def main(workers):
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            busy(0.02)
            os._exit(0)
        os.waitpid(pid, 0)
    print("reaped %d" % workers, flush=True)


main(int(sys.argv[1]))
