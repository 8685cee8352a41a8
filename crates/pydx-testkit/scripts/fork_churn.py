"""Starts a short-lived thread every 10 ms and forks a short-lived worker
every 100 ms, for argv[1] seconds: new threads reuse the memory and the
`pthread_t` of threads that ended."""
import os
import sys
import threading
import time


def short_lived_thread():
    end = time.time() + 0.005
    while time.time() < end:
        sum(range(100))


def short_lived_child():
    end = time.time() + 0.05
    while time.time() < end:
        sum(range(100))


def main(seconds):
    end = time.time() + seconds
    next_fork = time.time()
    while time.time() < end:
        threading.Thread(target=short_lived_thread).start()
        if time.time() >= next_fork:
            next_fork += 0.1
            if os.fork() == 0:
                short_lived_child()
                os._exit(0)
        time.sleep(0.01)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass


main(float(sys.argv[1]))
