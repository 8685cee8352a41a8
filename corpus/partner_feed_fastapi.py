# corpus: planted
# story: a FastAPI partner feed returns hundreds of catalogue dataclasses per call with no response model, so FastAPI's jsonable_encoder converts each field in Python
# needs: fastapi, uvicorn
# run: uvicorn partner_feed_fastapi:app --workers 2
import datetime
import json
import random
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal

from fastapi import FastAPI, HTTPException


@dataclass
class Listing:
    sku: str
    title: str
    brand: str
    category: str
    price: Decimal
    currency: str
    in_stock: int
    updated_at: datetime.datetime
    image_urls: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)


class Catalogue:
    def __init__(self, size=6000, seed=21):
        rng = random.Random(seed)
        epoch = datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc)
        self.by_category = {}
        for n in range(size):
            category = rng.choice(["garden", "kitchen", "tools", "lighting", "outdoor", "storage"])
            listing = Listing(
                sku=f"P{n:06d}", title=f"{category} item {rng.randrange(10**5)}", brand=rng.choice(["Acme", "Norda", "Vell"]),
                category=category, price=Decimal(rng.randrange(199, 99999)) / 100, currency="EUR",
                in_stock=rng.randrange(0, 250), updated_at=epoch + datetime.timedelta(seconds=rng.randrange(10**7)),
                image_urls=[f"https://cdn.example.com/p/{n}/{k}.jpg" for k in range(3)],
                attributes={"colour": rng.choice(["red", "black", "oak"]), "weight_kg": rng.randrange(1, 40)},
            )
            self.by_category.setdefault(category, []).append(listing)

    def page(self, category, offset, limit):
        if category not in self.by_category:
            raise KeyError(category)
        return self.by_category[category][offset:offset + limit]


app = FastAPI(title="partner feed")
catalogue = Catalogue()


@app.get("/feed/{category}")
async def category_feed(category: str, offset: int = 0, limit: int = 500):
    try:
        listings = catalogue.page(category, offset, limit)
    except KeyError:
        raise HTTPException(status_code=404, detail="unknown category")
    return listings  # expect: PYDX-WEB002


@app.get("/health")
async def health():
    return {"status": "ok", "categories": len(catalogue.by_category)}


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds
    counts = [0] * clients

    def partner(n):
        rng = random.Random(n)
        while time.monotonic() < deadline:
            category = rng.choice(["garden", "kitchen", "tools", "lighting", "outdoor", "storage"])
            with urllib.request.urlopen(f"{base_url}/feed/{category}?offset={rng.randrange(0, 400)}") as reply:
                counts[n] += len(json.load(reply))

    threads = [threading.Thread(target=partner, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
