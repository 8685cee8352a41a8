"""Who awaits whom, in the shapes of CPython's remote-debugging tests: a
task gathering two, a task awaiting another, a TaskGroup (3.11+), a
wait_for, a shield, a staggered race, a recursive coroutine, an async
generator awaiting inside its body, and a thread running its own event
loop (with the eager task factory from 3.12)."""
import asyncio
import sys
import threading

HOUR = 3600


async def leaf():
    await asyncio.sleep(HOUR)


async def rec(n):
    if n == 0:
        await asyncio.sleep(HOUR)
    await rec(n - 1)  # LINE:rec


async def gen_nested_call():
    await asyncio.sleep(HOUR)  # LINE:nested


async def gen():
    for number in range(2):
        yield number
        if number == 1:
            await gen_nested_call()  # LINE:agen


async def iterate():
    async for _ in gen():  # LINE:iterate
        pass


async def gatherer():
    await asyncio.gather(
        asyncio.create_task(leaf(), name="gathered-0"),
        asyncio.create_task(leaf(), name="gathered-1"),
    )


async def awaiter():
    await asyncio.create_task(leaf(), name="awaited")


async def group_parent():
    async with asyncio.TaskGroup() as group:
        group.create_task(leaf(), name="group-child-0")
        group.create_task(leaf(), name="group-child-1")
        await asyncio.sleep(HOUR)


async def shielder():
    await asyncio.shield(asyncio.create_task(leaf(), name="shielded"))


async def timed_waiter():
    await asyncio.wait_for(asyncio.create_task(leaf(), name="timed"), HOUR)


async def racer():
    from asyncio.staggered import staggered_race

    await staggered_race([leaf, leaf], 0.01)


async def in_thread():
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        loop.set_task_factory(asyncio.eager_task_factory)
    await asyncio.gather(loop.create_task(leaf(), name="eager-child"))


def thread_main(started):
    async def run():
        child = asyncio.create_task(in_thread(), name="thread-task")
        await asyncio.sleep(0)
        started.set()
        await child

    asyncio.run(run())


async def main():
    started = threading.Event()
    threading.Thread(target=thread_main, args=(started,), daemon=True).start()
    tasks = [
        asyncio.create_task(gatherer(), name="gatherer"),
        asyncio.create_task(awaiter(), name="awaiter"),
        asyncio.create_task(timed_waiter(), name="timed-waiter"),
        asyncio.create_task(rec(3), name="recursive"),
        asyncio.create_task(iterate(), name="iterator"),
        asyncio.create_task(racer(), name="racer"),
        asyncio.create_task(shielder(), name="shielder"),
    ]
    if sys.version_info >= (3, 11):
        tasks.append(asyncio.create_task(group_parent(), name="group-parent"))
    await asyncio.sleep(0.2)
    started.wait()
    print("ready", flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main())
