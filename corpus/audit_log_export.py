# corpus: healthy
# story: an asyncio client exports an audit log page by page over one stream connection, each request carrying the cursor returned by the previous reply
# run: launch
# forbid: PYDX-ASYNC002
import asyncio
import json
import random
import time
from collections import Counter

ACTIONS = ["login", "logout", "update_profile", "export", "delete_item", "grant_role"]


def generate_events(seed, count):
    rng = random.Random(seed)
    ts = 1_700_000_000
    for seq in range(count):
        ts += rng.randint(1, 30)
        yield {"seq": seq, "ts": ts, "user": "u%04d" % rng.randint(1, 800), "action": rng.choice(ACTIONS)}


def make_handler(events, page_size):
    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                request = json.loads(line)
                start = request["cursor"]
                page = events[start:start + page_size]
                await asyncio.sleep(0.015 + 0.00002 * len(page))  # storage read
                next_cursor = start + len(page) if start + len(page) < len(events) else None
                writer.write(json.dumps({"events": page, "next": next_cursor}).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    return handle


async def export_all(port, deadline):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    per_action = Counter()
    pages = 0
    cursor = 0
    try:
        while time.monotonic() < deadline:
            writer.write(json.dumps({"cursor": cursor}).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await reader.readline())
            pages += 1
            per_action.update(event["action"] for event in reply["events"])
            cursor = reply["next"] if reply["next"] is not None else 0
    finally:
        writer.close()
        await writer.wait_closed()
    return pages, per_action


async def main():
    events = list(generate_events(seed=9, count=20_000))
    server = await asyncio.start_server(make_handler(events, page_size=250), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pages, per_action = await export_all(port, time.monotonic() + 6)
    server.close()
    await server.wait_closed()
    print("%d pages exported" % pages)
    for action, n in per_action.most_common():
        print("  %-15s %d" % (action, n))


if __name__ == "__main__":
    asyncio.run(main())
