"""Three named asyncio tasks waiting in a chain of coroutines, the main
task gathering them, and a task that has finished (still referenced, so
still in asyncio's registry: it must not show as waiting)."""
import asyncio


async def fetch(name, delay):
    await asyncio.sleep(delay)  # LINE:fetch
    return name


async def worker(number):
    while True:
        await fetch(f"item-{number}", 3600)  # LINE:worker


async def settle():
    return "settled"


async def main():
    finished = asyncio.create_task(settle(), name="finished")
    await finished
    tasks = [asyncio.create_task(worker(n), name=f"worker-{n}") for n in range(3)]
    await asyncio.sleep(0)
    print("ready", flush=True)
    await asyncio.gather(*tasks)  # LINE:main


asyncio.run(main())
