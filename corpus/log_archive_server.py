# corpus: planted
# story: an asyncio streams log-archive server zlib-compresses each uploaded 2 MB batch inline in its connection handler while shippers and a health probe wait
# run: launch
import asyncio
import random
import socket
import struct
import threading
import time
import zlib

LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
SERVICES = ["api", "worker", "scheduler", "auth", "billing"]


def make_batch(rng, size):
    lines, total = [], 0
    while total < size:
        line = "2024-03-%02d %02d:%02d:%02d %s %s request_id=%08x path=/v1/%s latency_ms=%d\n" % (
            rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
            rng.choice(LEVELS), rng.choice(SERVICES), rng.getrandbits(32),
            rng.choice(["orders", "users", "invoices", "search"]), rng.randint(1, 900))
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


class ArchiveServer:
    def __init__(self):
        self.stored_bytes = 0
        self.raw_bytes = 0
        self.batches = 0

    async def handle(self, reader, writer):
        try:
            while True:
                header = await reader.readexactly(4)
                (length,) = struct.unpack("!I", header)
                if length == 0:
                    writer.write(b"PONG")
                    await writer.drain()
                    continue
                blob = await reader.readexactly(length)
                archived = zlib.compress(blob, 9)  # expect: PYDX-ASYNC001
                self.raw_bytes += len(blob)
                self.stored_bytes += len(archived)
                self.batches += 1
                writer.write(struct.pack("!I", len(archived)))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def shipper(port, batches, deadline):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    while time.monotonic() < deadline:
        blob = batches[i % len(batches)]
        writer.write(struct.pack("!I", len(blob)) + blob)
        await writer.drain()
        await reader.readexactly(4)
        i += 1
        await asyncio.sleep(0.05)
    writer.close()


def health_probe(port, deadline, report):
    worst = 0.0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            sock.sendall(struct.pack("!I", 0))
            sock.recv(4)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.1)
    report.append(worst)


async def main():
    rng = random.Random(3)
    batches = [make_batch(rng, 2_000_000) for _ in range(2)]
    archive = ArchiveServer()
    server = await asyncio.start_server(archive.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    deadline = time.monotonic() + 6
    worst = []
    probe = threading.Thread(target=health_probe, args=(port, deadline, worst))
    probe.start()
    await asyncio.gather(*(shipper(port, batches, deadline) for _ in range(3)))
    await asyncio.get_running_loop().run_in_executor(None, probe.join)
    server.close()
    await server.wait_closed()
    ratio = archive.stored_bytes / max(archive.raw_bytes, 1)
    print("%d batches archived, ratio %.3f, worst probe %.3fs" % (archive.batches, ratio, worst[0]))


if __name__ == "__main__":
    asyncio.run(main())
