# corpus: planted
# story: an asyncio quote collector calls a local supplier HTTP API with urllib.request.urlopen from inside its coroutines
# run: launch
import asyncio
import itertools
import json
import random
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class SupplierAPI(BaseHTTPRequestHandler):
    prices = {}

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        sku = query["sku"][0]
        time.sleep(0.03)  # the supplier's own lookup time
        body = json.dumps({"sku": sku, "price": self.prices.get(sku, 0.0)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@dataclass
class Quote:
    sku: str
    supplier_price: float
    our_price: float

    @property
    def margin(self):
        return self.our_price - self.supplier_price


async def fetch_quote(base_url, sku, our_price):
    with urllib.request.urlopen(f"{base_url}/quote?sku={sku}", timeout=5) as resp:  # expect: PYDX-ASYNC001
        data = json.loads(resp.read())
    return Quote(sku, data["price"], our_price)


async def collector(base_url, catalog, skus, deadline, results):
    for sku in itertools.cycle(skus):
        if time.monotonic() >= deadline:
            break
        results.append(await fetch_quote(base_url, sku, catalog[sku]))
        await asyncio.sleep(0)


async def status_reporter(results, deadline):
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        thin = sum(1 for q in results if q.margin < 2.0)
        print(f"{len(results)} quotes, {thin} with thin margins")


async def main():
    rng = random.Random(11)
    catalog = {f"SKU-{i:05d}": round(rng.uniform(5, 200), 2) for i in range(400)}
    SupplierAPI.prices = {sku: round(p * rng.uniform(0.7, 1.05), 2) for sku, p in catalog.items()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), SupplierAPI)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"

    skus = sorted(catalog)
    shards = [skus[i::4] for i in range(4)]
    deadline = time.monotonic() + 6
    results = []
    await asyncio.gather(
        status_reporter(results, deadline),
        *(collector(base_url, catalog, shard, deadline, results) for shard in shards),
    )
    server.shutdown()
    server.server_close()
    worst = sorted(results, key=lambda q: q.margin)[:3]
    print("thinnest margins:", [(q.sku, round(q.margin, 2)) for q in worst])


if __name__ == "__main__":
    asyncio.run(main())
