# corpus: planted
# story: a Flask courier API prices each pickup-to-drop-off delivery by finding the shortest route across a city street graph in pure Python; gunicorn runs a single sync worker on a 2-CPU machine while six clients ask for quotes
# needs: flask, gunicorn
# run: gunicorn --workers 1 delivery_quotes:app
import heapq
import json
import random
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass

from flask import Flask, abort, jsonify, request

app = Flask(__name__)
GRID = 180  # the city as a GRID x GRID street grid; nodes are intersections


def build_streets(seed=11):
    rng = random.Random(seed)
    streets = {}
    for x in range(GRID):
        for y in range(GRID):
            node = x * GRID + y
            edges = []
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                nx, ny = x + dx, y + dy
                if 0 <= nx < GRID and 0 <= ny < GRID:
                    edges.append((nx * GRID + ny, rng.uniform(40.0, 260.0)))  # metres
            streets[node] = edges
    return streets


STREETS = build_streets()


@dataclass
class Quote:
    pickup: int
    dropoff: int
    metres: float
    price: float


def shortest_distance(source, target):
    best = {source: 0.0}
    queue = [(0.0, source)]
    while queue:
        dist, node = heapq.heappop(queue)
        if node == target:
            return dist
        if dist > best[node]:
            continue
        for nxt, length in STREETS[node]:
            candidate = dist + length
            if candidate < best.get(nxt, float("inf")):
                best[nxt] = candidate
                heapq.heappush(queue, (candidate, nxt))
    raise ValueError("unreachable")


@app.get("/quote")
def quote():
    pickup = request.args.get("from", type=int)
    dropoff = request.args.get("to", type=int)
    if any(node is None or not 0 <= node < GRID * GRID for node in (pickup, dropoff)):
        abort(400)
    metres = shortest_distance(pickup, dropoff)  # expect: PYDX-WORKER002
    price = round(3.5 + metres / 1000 * 1.2, 2)
    return jsonify(asdict(Quote(pickup, dropoff, round(metres, 1), price)))


def load(base_url, seconds, clients=6):
    deadline = time.monotonic() + seconds
    served = []

    def customer(n):
        rng = random.Random(n)
        count = 0
        while time.monotonic() < deadline:
            pickup, dropoff = rng.randrange(GRID * GRID), rng.randrange(GRID * GRID)
            with urllib.request.urlopen(f"{base_url}/quote?from={pickup}&to={dropoff}", timeout=30) as r:
                json.load(r)
            count += 1
        served.append(count)

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(served)} quotes in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    load(sys.argv[2], float(sys.argv[3]))
