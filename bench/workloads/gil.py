"""Four CPU-bound threads contending for the GIL, each in its own function
with the same work. Prints "ready", then on every SIGUSR1 one JSON line:
perf_counter, each function's thread CPU time (~ its GIL-holding time) and
work done. The truth: each function holds the GIL ~25% of the time."""
import json
import signal
import sys
import threading
import time

CHUNK = 1000
progress = {}


def _spin(name):
    x = 0
    while True:
        for _ in range(CHUNK):
            x += 1
        progress[name] += 1


def gil_w0():
    _spin("gil_w0")


def gil_w1():
    _spin("gil_w1")


def gil_w2():
    _spin("gil_w2")


def gil_w3():
    _spin("gil_w3")


def main_wait(threads):
    def snapshot(signum, frame):
        cpu = {name: time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for name, t in threads}
        print(json.dumps({"t": time.perf_counter(), "cpu": cpu,
                          "work": sum(progress.values()) * CHUNK,
                          "work_by": {k: v * CHUNK for k, v in progress.items()}}), flush=True)

    signal.signal(signal.SIGUSR1, snapshot)
    print("ready", flush=True)
    while True:
        time.sleep(1)


def main():
    threads = []
    for fn in (gil_w0, gil_w1, gil_w2, gil_w3):
        progress[fn.__name__] = 0
        threads.append((fn.__name__, threading.Thread(target=fn, daemon=True)))
    for _, thread in threads:
        thread.start()
    main_wait(threads)


if __name__ == "__main__":
    sys.exit(main())
