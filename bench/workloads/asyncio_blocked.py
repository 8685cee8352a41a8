"""An asyncio event loop whose coroutine blocks the loop with time.sleep(0.2)
every 0.5 s, between async sleeps. Prints "ready", then on every SIGUSR1 one
JSON line: perf_counter and the total time spent blocked inside
blocking_call() so far. The truth over a window: blocked time / wall time."""
import asyncio
import json
import signal
import sys
import time

perf_counter = time.perf_counter
blocked = {"total": 0.0, "since": None}


def blocking_call():
    blocked["since"] = perf_counter()
    time.sleep(0.2)
    blocked["total"] += perf_counter() - blocked["since"]
    blocked["since"] = None


async def serve():
    while True:
        for _ in range(3):
            await asyncio.sleep(0.1)
        blocking_call()


def snapshot(signum, frame):
    now = perf_counter()
    total = blocked["total"]
    if blocked["since"] is not None:
        total += now - blocked["since"]
    print(json.dumps({"t": now, "blocked": total}), flush=True)


async def main_async():
    print("ready", flush=True)
    await serve()


def main():
    signal.signal(signal.SIGUSR1, snapshot)
    asyncio.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
