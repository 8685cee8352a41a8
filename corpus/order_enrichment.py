# corpus: planted
# story: an order-enrichment pipeline awaits three independent simulated backends (CRM, fraud scoring, shipping quotes) one after another for each order
# run: launch
import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, List


@dataclass
class Order:
    order_id: int
    customer_id: int
    postcode: str
    total: float


@dataclass
class EnrichedOrder:
    order: Order
    segment: str
    fraud_score: float
    shipping_days: int
    flags: List[str] = field(default_factory=list)


class SimulatedBackend:
    def __init__(self, name: str, mean_latency: float, seed: int):
        self.name = name
        self.mean_latency = mean_latency
        self.rng = random.Random(seed)
        self.calls = 0

    async def _round_trip(self):
        self.calls += 1
        await asyncio.sleep(self.rng.uniform(0.6, 1.4) * self.mean_latency)


class CustomerDirectory(SimulatedBackend):
    async def segment_of(self, customer_id: int) -> str:
        await self._round_trip()
        return ["new", "regular", "vip"][customer_id % 3]


class FraudScorer(SimulatedBackend):
    async def score(self, order_id: int, total: float) -> float:
        await self._round_trip()
        return min(1.0, (total / 2000.0) + (order_id % 7) * 0.03)


class ShippingQuotes(SimulatedBackend):
    async def days_to(self, postcode: str) -> int:
        await self._round_trip()
        return 1 + int(postcode[:2]) % 5


async def incoming_orders(seed: int, deadline: float) -> AsyncIterator[Order]:
    rng = random.Random(seed)
    order_id = seed * 100000
    while time.monotonic() < deadline:
        order_id += 1
        yield Order(order_id, rng.randint(1, 5000), "%05d" % rng.randint(10000, 99999),
                    round(rng.uniform(10, 1500), 2))
        await asyncio.sleep(0)


class Enricher:
    def __init__(self):
        self.crm = CustomerDirectory("crm", 0.07, 1)
        self.fraud = FraudScorer("fraud", 0.09, 2)
        self.shipping = ShippingQuotes("shipping", 0.06, 3)

    async def enrich(self, order: Order) -> EnrichedOrder:
        segment = await self.crm.segment_of(order.customer_id)  # expect: PYDX-ASYNC002
        fraud_score = await self.fraud.score(order.order_id, order.total)
        shipping_days = await self.shipping.days_to(order.postcode)
        result = EnrichedOrder(order, segment, fraud_score, shipping_days)
        if fraud_score > 0.6:
            result.flags.append("manual-review")
        if segment == "vip" and shipping_days > 3:
            result.flags.append("upgrade-shipping")
        return result


async def consume(enricher: Enricher, seed: int, deadline: float, tally: Dict[str, int]):
    async for order in incoming_orders(seed, deadline):
        enriched = await enricher.enrich(order)
        for flag in enriched.flags or ["ok"]:
            tally[flag] = tally.get(flag, 0) + 1


async def main():
    enricher = Enricher()
    deadline = time.monotonic() + 6
    tally: Dict[str, int] = {}
    await asyncio.gather(*(consume(enricher, seed, deadline, tally) for seed in range(1, 6)))
    print("enriched orders:", tally)
    print("backend calls:", enricher.crm.calls, enricher.fraud.calls, enricher.shipping.calls)


if __name__ == "__main__":
    asyncio.run(main())
