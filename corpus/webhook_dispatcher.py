# corpus: planted
# story: an asyncio webhook dispatcher spaces out deliveries to each receiver with time.sleep inside the delivery coroutine
# run: launch
import asyncio
import json
import random
import time
from collections import Counter, defaultdict

RECEIVERS = ["billing", "crm", "analytics", "search-index"]
MIN_GAP_S = 0.04  # receivers ask for at most ~25 deliveries per second


async def receiver_handler(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        event = json.loads(line)
        await asyncio.sleep(0.005)
        writer.write(json.dumps({"ok": True, "id": event["id"]}).encode() + b"\n")
        await writer.drain()
    writer.close()


class Dispatcher:
    def __init__(self, port, queue):
        self.port = port
        self.queue = queue
        self.last_sent = defaultdict(float)
        self.delivered = Counter()

    async def worker(self, name):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while True:
                event = await self.queue.get()
                if event is None:
                    break
                wait = self.last_sent[event["receiver"]] + MIN_GAP_S - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # expect: PYDX-ASYNC001
                self.last_sent[event["receiver"]] = time.monotonic()
                writer.write(json.dumps(event).encode() + b"\n")
                await writer.drain()
                reply = json.loads(await reader.readline())
                if reply["ok"]:
                    self.delivered[event["receiver"]] += 1
                self.queue.task_done()
        finally:
            writer.close()


async def produce(queue, deadline, rng):
    event_id = 0
    while time.monotonic() < deadline:
        event_id += 1
        await queue.put({
            "id": event_id,
            "receiver": rng.choice(RECEIVERS),
            "type": rng.choice(["invoice.paid", "user.created", "order.shipped"]),
            "payload": {"amount": rng.randint(1, 5000)},
        })
        await asyncio.sleep(0.002)


async def heartbeat(deadline, lags):
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        lags.append(time.monotonic() - t0 - 0.05)


async def main():
    rng = random.Random(7)
    server = await asyncio.start_server(receiver_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    queue = asyncio.Queue(maxsize=200)
    dispatcher = Dispatcher(port, queue)
    deadline = time.monotonic() + 6
    lags = []
    workers = [asyncio.ensure_future(dispatcher.worker("w%d" % i)) for i in range(6)]
    await asyncio.gather(produce(queue, deadline, rng), heartbeat(deadline, lags))
    while not queue.empty():
        queue.get_nowait()
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    server.close()
    await server.wait_closed()
    print("delivered", dict(dispatcher.delivered))
    print("worst heartbeat lag %.3fs" % max(lags))


if __name__ == "__main__":
    asyncio.run(main())
