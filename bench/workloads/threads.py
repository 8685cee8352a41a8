"""One busy thread (pure Python loop) and three idle threads (sleeping).

Prints "ready", then on every SIGUSR1 one JSON line: perf_counter, the CPU
time of each thread by its function, and the busy loop's progress. The
truth for an on-CPU profile: busy_loop gets ~100% of the samples."""
import json
import signal
import sys
import threading
import time

CHUNK = 1000
progress = [0]


def busy_loop():
    x = 0
    while True:
        for _ in range(CHUNK):
            x += 1
        progress[0] += 1


def sleeper():
    while True:
        time.sleep(3600)


def thread_cpu(thread):
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def main_wait(workers):
    def snapshot(signum, frame):
        cpu = {"main_wait": time.thread_time(), "busy_loop": 0.0, "sleeper": 0.0}
        for name, thread in workers:
            cpu[name] += thread_cpu(thread)
        print(json.dumps({"t": time.perf_counter(), "cpu": cpu, "work": progress[0] * CHUNK}),
              flush=True)

    signal.signal(signal.SIGUSR1, snapshot)
    print("ready", flush=True)
    while True:
        time.sleep(1)


def main():
    workers = [("busy_loop", threading.Thread(target=busy_loop, daemon=True))]
    workers += [("sleeper", threading.Thread(target=sleeper, daemon=True)) for _ in range(3)]
    for _, thread in workers:
        thread.start()
    main_wait(workers)


if __name__ == "__main__":
    sys.exit(main())
