# corpus: planted
# story: an in-process event bus built from closures records every published event object in a history list for replay, and the list is never trimmed
# run: launch
"""Inventory events flow through a small publish/subscribe bus to projections."""
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict


@dataclass
class Event:
    topic: str
    sequence: int
    occurred_at: float
    payload: Dict[str, Any] = field(default_factory=dict)


def make_bus():
    subscribers = defaultdict(list)
    history = []
    counter = [0]

    def subscribe(topic, handler):
        subscribers[topic].append(handler)

    def publish(topic, **payload):
        counter[0] += 1
        event = Event(topic, counter[0], time.time(), payload)
        history.append(event)  # expect: PYDX-MEM001
        for handler in subscribers[topic]:
            handler(event)
        return event

    def replay(since_sequence):
        return [event for event in history if event.sequence > since_sequence]

    return subscribe, publish, replay


def stock_projection():
    levels = defaultdict(int)

    def on_stock_moved(event):
        levels[event.payload["sku"]] += event.payload["delta"]

    return levels, on_stock_moved


def main():
    subscribe, publish, replay = make_bus()
    levels, on_stock_moved = stock_projection()
    subscribe("stock.moved", on_stock_moved)
    alerts = []
    subscribe("stock.low", alerts.append)
    rng = random.Random(12)
    warehouses = ["BER-1", "HAM-2", "MUC-1", "CGN-3"]
    start = time.monotonic()
    tick = start
    while time.monotonic() < start + 6:
        for _ in range(60):
            sku = "SKU-%05d" % rng.randrange(5000)
            event = publish("stock.moved", sku=sku, delta=rng.randint(-6, 8), warehouse=rng.choice(warehouses),
                            reason=rng.choice(["pick", "receive", "count", "return"]),
                            operator="picker-%02d" % rng.randrange(40), batch="B%06d" % rng.randrange(10 ** 6))
            if levels[sku] < -10:
                publish("stock.low", sku=sku, level=levels[sku], triggered_by=event.sequence)
        tick += 0.01
        time.sleep(max(0.0, tick - time.monotonic()))
    recent = replay(since_sequence=event.sequence - 500)
    print("published events for %d SKUs, %d low-stock alerts, %d in replay window" % (len(levels), len(alerts), len(recent)))


if __name__ == "__main__":
    main()
