# corpus: healthy
# story: an asyncio streams quote server answers currency, commodity and index queries; dashboard clients fetch the three panels concurrently with asyncio.gather
# run: launch
import asyncio
import json
import random
import time

PANELS = {
    "fx": ["EURUSD", "GBPUSD", "USDJPY", "USDCHF"],
    "commodities": ["GOLD", "SILVER", "BRENT", "COPPER"],
    "indices": ["SPX", "NDX", "DAX", "NIKKEI"],
}
SOURCE_LATENCY = {"fx": 0.05, "commodities": 0.08, "indices": 0.11}


class QuoteServer:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.base = {sym: self.rng.uniform(1, 5000) for syms in PANELS.values() for sym in syms}
        self.served = 0

    async def lookup(self, panel):
        await asyncio.sleep(SOURCE_LATENCY[panel] * self.rng.uniform(0.8, 1.2))
        return {sym: round(self.base[sym] * self.rng.uniform(0.99, 1.01), 4) for sym in PANELS[panel]}

    async def handle(self, reader, writer):
        try:
            async for line in reader:
                request = json.loads(line)
                quotes = await self.lookup(request["panel"])
                self.served += 1
                writer.write(json.dumps({"panel": request["panel"], "quotes": quotes}).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


class DashboardClient:
    def __init__(self, port):
        self.port = port
        self.connections = {}

    async def open(self):
        for panel in PANELS:
            self.connections[panel] = await asyncio.open_connection("127.0.0.1", self.port)

    async def fetch_panel(self, panel):
        reader, writer = self.connections[panel]
        writer.write(json.dumps({"panel": panel}).encode() + b"\n")
        await writer.drain()
        return json.loads(await reader.readline())

    async def refresh(self):
        replies = await asyncio.gather(*(self.fetch_panel(panel) for panel in PANELS))
        return {reply["panel"]: reply["quotes"] for reply in replies}

    async def close(self):
        for _, writer in self.connections.values():
            writer.close()


async def run_dashboard(port, deadline, history):
    client = DashboardClient(port)
    await client.open()
    while time.monotonic() < deadline:
        started = time.monotonic()
        snapshot = await client.refresh()
        history.append((time.monotonic() - started, snapshot))
        await asyncio.sleep(0.02)
    await client.close()


async def main():
    quote_server = QuoteServer(seed=42)
    server = await asyncio.start_server(quote_server.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    deadline = time.monotonic() + 6
    history = []
    await asyncio.gather(*(run_dashboard(port, deadline, history) for _ in range(8)))
    server.close()
    await server.wait_closed()
    refresh_times = sorted(t for t, _ in history)
    print("%d refreshes, %d quotes served, median refresh %.0f ms" % (
        len(history), quote_server.served, 1000 * refresh_times[len(refresh_times) // 2]))


if __name__ == "__main__":
    asyncio.run(main())
