"""An asyncio service whose request handler calls time.sleep: every call
stops the whole event loop for 250 ms, so the heartbeat task (and any other
request) waits. `pydx doctor` reports PYDX-ASYNC001; the fixed version is
blocked_loop_fixed.py.

Usage: python blocked_loop.py [SECONDS]
"""
import asyncio
import sys
import time


async def heartbeat():
    while True:
        await asyncio.sleep(0.01)


async def handle_request(request_id):
    time.sleep(0.25)
    return request_id


async def main(seconds):
    beat = asyncio.create_task(heartbeat())
    deadline = time.monotonic() + seconds
    request_id = 0
    while time.monotonic() < deadline:
        await handle_request(request_id)
        request_id += 1
        await asyncio.sleep(0.05)
    beat.cancel()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
