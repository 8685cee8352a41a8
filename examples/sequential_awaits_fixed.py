"""sequential_awaits.py fixed: the three independent requests go out
together with asyncio.gather, so an order takes the slowest backend's
latency instead of the sum.

Usage: python sequential_awaits_fixed.py [SECONDS]
"""
import asyncio
import sys
import time

LATENCY = {"user": 0.08, "stock": 0.06, "rate": 0.07}


async def serve(reader, writer):
    while line := await reader.readline():
        service, _, key = line.decode().strip().partition(" ")
        await asyncio.sleep(LATENCY[service])
        writer.write(f"{service}:{key}\n".encode())
        await writer.drain()


class Backend:
    """One persistent connection to one service."""

    def __init__(self, service, reader, writer):
        self.service, self.reader, self.writer = service, reader, writer

    async def ask(self, key):
        self.writer.write(f"{self.service} {key}\n".encode())
        await self.writer.drain()
        return (await self.reader.readline()).decode().strip()


async def handle_order(backends, order_id):
    user, stock, rate = await asyncio.gather(
        backends["user"].ask(order_id),
        backends["stock"].ask(order_id),
        backends["rate"].ask(order_id),
    )
    return user, stock, rate


async def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backends = {}
    for service in LATENCY:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        backends[service] = Backend(service, reader, writer)
    deadline = time.monotonic() + seconds
    order_id = 0
    while time.monotonic() < deadline:
        order_id += 1
        await handle_order(backends, order_id)
    for backend in backends.values():
        backend.writer.close()
        await backend.writer.wait_closed()
    server.close()
    await asyncio.sleep(0.05)  # let the server's handlers see the closed connections


if __name__ == "__main__":
    asyncio.run(main())
