# corpus: planted
# story: a Flask IP-geolocation API loads 9 million IPv4 ranges into NumPy arrays (about 135 MB) when the module is imported; gunicorn runs 3 workers without --preload, so each worker builds and keeps its own copy
# needs: flask, gunicorn, numpy
# run: gunicorn --workers 3 ip_geolocation:app
import ipaddress
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np
from flask import Flask, abort, jsonify, request

COUNTRIES = ["US", "DE", "FR", "GB", "NL", "SE", "PL", "BR", "IN", "JP", "KR", "AU", "CA", "ES", "IT"]


@dataclass(frozen=True)
class RangeTable:
    first: np.ndarray  # uint32, sorted
    last: np.ndarray  # uint32
    country: np.ndarray  # uint8 index into COUNTRIES
    city: np.ndarray  # uint16 city id within the country
    asn: np.ndarray  # uint32

    @classmethod
    def generate(cls, count=9_000_000, seed=42):
        rng = np.random.default_rng(seed)
        sizes = rng.integers(64, 400, size=count, dtype=np.uint32)
        first = (np.cumsum(sizes, dtype=np.uint32) - sizes) + np.uint32(16_777_216)
        last = first + sizes - rng.integers(1, 16, size=count, dtype=np.uint32)
        return cls(first, last,
                   rng.integers(0, len(COUNTRIES), size=count, dtype=np.uint8),
                   rng.integers(0, 200, size=count, dtype=np.uint16),
                   rng.integers(64_512, 65_512, size=count, dtype=np.uint32))

    def find(self, address):
        i = int(np.searchsorted(self.first, np.uint32(address), side="right")) - 1
        if i < 0 or address > self.last[i]:
            return None
        cc = COUNTRIES[self.country[i]]
        return {"country": cc, "city": f"{cc.lower()}-metro-{int(self.city[i]):03d}", "asn": int(self.asn[i]),
                "network": f"{ipaddress.IPv4Address(int(self.first[i]))}-{ipaddress.IPv4Address(int(self.last[i]))}"}


GEO = RangeTable.generate()  # expect: PYDX-WORKER003
app = Flask(__name__)


@app.get("/locate")
def locate_ip():
    try:
        address = int(ipaddress.IPv4Address(request.args.get("ip", "")))
    except ValueError:
        abort(400)
    found = GEO.find(address)
    if found is None:
        abort(404)
    return jsonify(ip=request.args["ip"], **found)


def load(base_url, seconds, clients=4):
    stop_at = time.monotonic() + seconds
    hits = []

    def visitor(seed):
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < stop_at:
            ip = ipaddress.IPv4Address(rng.randrange(16_777_216, 2_080_000_000))
            try:
                with urllib.request.urlopen(f"{base_url}/locate?ip={ip}", timeout=30) as resp:
                    resp.read()
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
            n += 1
            time.sleep(0.01)
        hits.append(n)

    threads = [threading.Thread(target=visitor, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(hits)} lookups in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    load(sys.argv[2], float(sys.argv[3]))
