# corpus: healthy
# story: a postcode lookup service pulls in a wide set of stdlib modules and builds its postcode table at import, then mostly waits, answering lookups from a local queue
# run: launch
"""Postcode to district/coordinates lookups for the dispatch console."""
import argparse
import asyncio
import csv
import decimal
import email.message
import email.utils
import hashlib
import http.client
import io
import ipaddress
import json
import logging
import math
import queue
import random
import sqlite3
import statistics
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
import zipfile

log = logging.getLogger("postcodes")
DISTRICTS = ["Mitte", "Nord", "Ost", "Sued", "West", "Hafen", "Altstadt", "Neustadt", "Feld", "Heide"]


def _load_postcodes():
    rng = random.Random(1871)
    table = {}
    for code in range(1000, 100000):
        lat = 47.3 + (code % 997) * 0.0078 + rng.random() * 0.01
        lon = 5.9 + (code // 997) * 0.0923 + rng.random() * 0.01
        table["%05d" % code] = (DISTRICTS[code % len(DISTRICTS)], round(lat, 5), round(lon, 5))
    return table


def _grid_index(table):
    grid = {}
    for code, (district, lat, lon) in table.items():
        grid.setdefault((round(lat, 1), round(lon, 1)), []).append(code)
    return grid


def _street_segments(table):
    rng = random.Random(7)
    segments = {}
    for code in table:
        for segment in range(4):
            low = segment * rng.randint(20, 60) + 1
            segments[code, segment] = ("Strasse %s-%d" % (code[-3:], segment), low, low + rng.randint(10, 80))
    return segments


POSTCODES = _load_postcodes()
GRID = _grid_index(POSTCODES)
SEGMENTS = _street_segments(POSTCODES)


def distance_km(a, b):
    lat1, lon1, lat2, lon2 = map(math.radians, (a[1], a[2], b[1], b[2]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 12742.0 * math.asin(math.sqrt(h))


def serve(requests):
    while True:
        request = requests.get()
        if request is None:
            return
        origin, destination, reply = request
        a, b = POSTCODES.get(origin), POSTCODES.get(destination)
        if a is None or b is None:
            reply.put({"error": "unknown postcode"})
        else:
            body = {"from": a[0], "to": b[0], "km": round(distance_km(a, b), 1), "id": str(uuid.uuid4()),
                    "street": SEGMENTS[origin, 0][0], "neighbours": len(GRID[round(a[1], 1), round(a[2], 1)])}
            body["etag"] = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
            reply.put(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    requests = queue.Queue()
    worker = threading.Thread(target=serve, args=(requests,), name="postcode-server")
    worker.start()
    rng = random.Random(2)
    answered, distances = 0, []
    start = time.monotonic()
    while time.monotonic() < start + options.seconds:
        reply = queue.Queue(maxsize=1)
        requests.put(("%05d" % rng.randrange(900, 100000), "%05d" % rng.randrange(1000, 100000), reply))
        answer = reply.get(timeout=1.0)
        answered += 1
        if "km" in answer:
            distances.append(answer["km"])
        time.sleep(0.02)
    requests.put(None)
    worker.join()
    print("%d postcodes loaded, %d lookups, median distance %.1f km" % (
        len(POSTCODES), answered, statistics.median(distances)))


if __name__ == "__main__":
    main()
