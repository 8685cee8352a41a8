"""blocked_loop.py fixed: the handler awaits asyncio.sleep, which suspends
only its own task, so the event loop keeps serving the others.

Usage: python blocked_loop_fixed.py [SECONDS]
"""
import asyncio
import sys
import time


async def heartbeat():
    while True:
        await asyncio.sleep(0.01)


async def handle_request(request_id):
    await asyncio.sleep(0.25)
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
