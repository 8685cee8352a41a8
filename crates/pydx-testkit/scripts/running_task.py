"""A task running a chain of coroutines (c2 awaits c3 awaits c4 awaits c5,
which computes), and a task waiting in a chain deeper than pydx follows."""
import asyncio
import sys

sys.setrecursionlimit(10000)


async def c5():
    print("ready", flush=True)
    while True:
        sum(range(1000))  # LINE:c5


async def c4():
    await c5()  # LINE:c4


async def c3():
    await c4()  # LINE:c3


async def c2():
    await c3()  # LINE:c2


async def deep(n):
    if n == 0:
        await asyncio.sleep(3600)
    await deep(n - 1)  # LINE:deep


async def main():
    deep_task = asyncio.create_task(deep(1500), name="deep")
    await asyncio.sleep(0.1)
    await asyncio.create_task(c2(), name="running")
    await deep_task


asyncio.run(main())
