"""An order service with three problems at once, for `pydx doctor` to find
and rank:

- two report threads count primes in pure Python and fight over the GIL
  (PYDX-GIL001);
- the asyncio request handler calls time.sleep, which stops the event loop
  and holds up its health reporter task (PYDX-ASYNC001);
- the pricing thread recomputes the same shipping quotes again and again
  (PYDX-CACHE001).

Usage: python mixed.py [SECONDS]
"""
import asyncio
import random
import sys
import threading
import time


def count_primes(limit):
    count = 0
    for n in range(2, limit):
        for d in range(2, int(n**0.5) + 1):
            if n % d == 0:
                break
        else:
            count += 1
    return count


def build_reports(deadline):
    while time.monotonic() < deadline:
        count_primes(20_000)


def shipping_quote(zone, weight_class):
    table = {}
    for step in range(3_000):
        key = f"{zone}-{weight_class}-{step % 50}"
        table[key] = table.get(key, 0) + len(key)
    return sum(table.values())


def price_orders(deadline):
    orders = [(random.randint(1, 4), random.randint(1, 3)) for _ in range(1_000)]
    while time.monotonic() < deadline:
        for zone, weight_class in orders:
            shipping_quote(zone, weight_class)
            if time.monotonic() >= deadline:
                break


async def handle_request(request_id):
    time.sleep(0.2)
    return request_id


async def report_health(deadline):
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def serve(deadline):
    health = asyncio.create_task(report_health(deadline))
    request_id = 0
    while time.monotonic() < deadline:
        await handle_request(request_id)
        request_id += 1
        await asyncio.sleep(0.05)
    await health


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    deadline = time.monotonic() + seconds
    workers = [
        threading.Thread(target=build_reports, args=(deadline,), name=f"reports-{i}")
        for i in range(2)
    ]
    workers.append(threading.Thread(target=price_orders, args=(deadline,), name="pricing"))
    for worker in workers:
        worker.start()
    asyncio.run(serve(deadline))
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
