# corpus: planted
# story: a Flask shipping-quote service with async routes fanning out to carrier adapters with asyncio.gather, served by gunicorn sync workers
# needs: flask, gunicorn
# run: gunicorn --workers 2 parcel_quotes_flask:app
import asyncio
import math
import random
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass

from flask import Flask, abort, jsonify, request


@dataclass(frozen=True)
class Carrier:
    code: str
    base_fee: float
    per_kg: float
    per_100km: float
    max_weight_kg: float

    async def quote(self, weight_kg, distance_km):
        if weight_kg > self.max_weight_kg:
            return None
        billable = max(weight_kg, 0.5)
        price = self.base_fee + self.per_kg * billable + self.per_100km * math.ceil(distance_km / 100)
        return {"carrier": self.code, "price": round(price, 2), "days": 1 + int(distance_km // 400)}


CARRIERS = [
    Carrier("postnl", 4.10, 0.85, 0.40, 30), Carrier("dhl", 5.90, 0.70, 0.35, 60),
    Carrier("ups", 6.50, 0.65, 0.30, 70), Carrier("dpd", 4.80, 0.80, 0.45, 31.5),
    Carrier("gls", 4.40, 0.90, 0.38, 40),
]
DEPOTS = {"AMS": (52.37, 4.90), "BER": (52.52, 13.40), "LYS": (45.76, 4.84), "MIL": (45.46, 9.19)}

app = Flask(__name__)


def distance_km(origin, destination):
    (lat1, lon1), (lat2, lon2) = DEPOTS[origin], DEPOTS[destination]
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6371 * math.hypot(x, math.radians(lat2 - lat1))


@app.get("/quotes")
async def quotes():  # expect: PYDX-WORKER004
    origin, destination = request.args["from"], request.args["to"]
    if origin not in DEPOTS or destination not in DEPOTS:
        abort(404)
    weight = float(request.args.get("kg", 1))
    km = distance_km(origin, destination)
    offers = await asyncio.gather(*(carrier.quote(weight, km) for carrier in CARRIERS))
    offers = sorted((o for o in offers if o), key=lambda o: o["price"])
    return jsonify(origin=origin, destination=destination, km=round(km), offers=offers)


@app.get("/carriers/<code>")
async def carrier_info(code):
    for carrier in CARRIERS:
        if carrier.code == code:
            return jsonify(code=carrier.code, max_weight_kg=carrier.max_weight_kg)
    abort(404)


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds
    done = []

    def checkout_widget(seed):
        rng = random.Random(seed)
        calls = 0
        while time.monotonic() < deadline:
            a, b = rng.sample(sorted(DEPOTS), 2)
            url = f"{base_url}/quotes?from={a}&to={b}&kg={rng.uniform(0.2, 45):.1f}"
            if rng.random() < 0.1:
                url = f"{base_url}/carriers/{rng.choice(CARRIERS).code}"
            with urllib.request.urlopen(url) as reply:
                reply.read()
            calls += 1
        done.append(calls)

    threads = [threading.Thread(target=checkout_widget, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{sum(done)} quote calls", file=sys.stderr)


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
