# corpus: planted
# story: a product-page builder queries three independent local asyncio services (stock, pricing, reviews) one after another over asyncio streams
# run: launch
import asyncio
import json
import random
import time


def make_service(name, latency_range, data):
    rng = random.Random(name)

    async def handle(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            request = json.loads(line)
            await asyncio.sleep(rng.uniform(*latency_range))
            reply = {"service": name, "product": request["product"], "value": data(request["product"])}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        writer.close()

    return handle


class ServiceClient:
    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None
        self.lock = asyncio.Lock()

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def call(self, product_id):
        async with self.lock:
            self.writer.write(json.dumps({"product": product_id}).encode() + b"\n")
            await self.writer.drain()
            return json.loads(await self.reader.readline())["value"]

    def close(self):
        self.writer.close()


async def build_page(clients, product_id):
    stock = await clients["stock"].call(product_id)  # expect: PYDX-ASYNC002
    price = await clients["pricing"].call(product_id)
    reviews = await clients["reviews"].call(product_id)
    return {
        "product": product_id,
        "in_stock": stock > 0,
        "price": price,
        "rating": round(sum(reviews) / len(reviews), 1) if reviews else None,
    }


async def page_worker(port_map, product_ids, deadline, pages):
    clients = {name: ServiceClient(port) for name, port in port_map.items()}
    for client in clients.values():
        await client.connect()
    i = 0
    while time.monotonic() < deadline:
        pages.append(await build_page(clients, product_ids[i % len(product_ids)]))
        i += 1
    for client in clients.values():
        client.close()


async def main():
    rng = random.Random(5)
    stock = {p: rng.randint(0, 40) for p in range(1000)}
    prices = {p: round(rng.uniform(3, 300), 2) for p in range(1000)}
    reviews = {p: [rng.randint(1, 5) for _ in range(rng.randint(0, 8))] for p in range(1000)}
    specs = {
        "stock": ((0.04, 0.08), stock.get),
        "pricing": ((0.05, 0.09), prices.get),
        "reviews": ((0.06, 0.12), reviews.get),
    }
    servers, port_map = [], {}
    for name, (latency, lookup) in specs.items():
        server = await asyncio.start_server(make_service(name, latency, lookup), "127.0.0.1", 0)
        servers.append(server)
        port_map[name] = server.sockets[0].getsockname()[1]

    product_ids = list(range(1000))
    rng.shuffle(product_ids)
    deadline = time.monotonic() + 6
    pages = []
    await asyncio.gather(*(page_worker(port_map, product_ids[k::4], deadline, pages) for k in range(4)))
    for server in servers:
        server.close()
        await server.wait_closed()
    available = sum(1 for p in pages if p["in_stock"])
    print("%d pages built, %d in stock" % (len(pages), available))


if __name__ == "__main__":
    asyncio.run(main())
