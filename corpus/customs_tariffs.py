# corpus: healthy
# story: a Flask customs-duty API keeps a 450,000-line tariff schedule (about 150 MB of Python objects) in memory; gunicorn --preload builds it once in the master, gc.freeze() keeps the collector off it, and 3 workers share it copy-on-write
# needs: flask, gunicorn
# run: gunicorn --preload --workers 3 customs_tariffs:app
# forbid: PYDX-WORKER003
import gc
import random
import sys
import threading
import time
import urllib.request
from collections import namedtuple
from decimal import ROUND_HALF_UP, Decimal

from flask import Flask, abort, jsonify, request

TariffLine = namedtuple("TariffLine", "code description unit general_rate gsp_rate")
ORIGIN_GROUPS = {"CA": "fta", "MX": "fta", "KR": "fta", "AU": "fta", "CN": "general", "VN": "gsp", "IN": "gsp"}
RATES = (0.0, 2.5, 3.7, 5.0, 6.5, 8.0, 12.0)
UNITS = ("kg", "no.", "l", "m2", "pairs", "doz.")
NOUNS = ["valves", "bearings", "yarn", "footwear", "fasteners", "lamps", "pumps", "fabrics", "ceramics", "cables"]


def build_schedule(lines=450_000, seed=7):
    rng = random.Random(seed)
    schedule = {}
    for n in range(lines):
        chapter = 1 + n % 97
        code = f"{chapter:02d}{n // 97:06d}{rng.randrange(100):02d}"
        general = rng.choice(RATES)
        schedule[code] = TariffLine(
            code,
            f"{rng.choice(NOUNS).capitalize()} of heading {n % 9_999:04d}, other than those of chapter {chapter}",
            rng.choice(UNITS),
            general,
            general / 2,
        )
    return schedule


SCHEDULE = build_schedule()
gc.freeze()
app = Flask(__name__)


@app.get("/duty/<code>")
def duty(code):
    line = SCHEDULE.get(code)
    if line is None:
        abort(404)
    origin = request.args.get("origin", "CN").upper()
    value = Decimal(request.args.get("value", "100"))
    group = ORIGIN_GROUPS.get(origin, "general")
    rate = {"fta": 0.0, "gsp": line.gsp_rate}.get(group, line.general_rate)
    amount = (value * Decimal(str(rate)) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return jsonify(code=code, description=line.description, unit=line.unit,
                   origin=origin, rate=rate, duty=str(amount))


def load(base_url, seconds, brokers=4):
    stop = time.monotonic() + seconds
    filed = []
    sample_codes = random.Random(1).sample(sorted(SCHEDULE), 5_000)

    def broker(seed):
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < stop:
            code = rng.choice(sample_codes)
            origin = rng.choice(list(ORIGIN_GROUPS))
            url = f"{base_url}/duty/{code}?origin={origin}&value={rng.randrange(50, 90_000)}"
            with urllib.request.urlopen(url, timeout=30) as resp:
                resp.read()
            n += 1
            time.sleep(0.01)
        filed.append(n)

    threads = [threading.Thread(target=broker, args=(s,)) for s in range(brokers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(filed)} duty lookups in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    load(sys.argv[2], float(sys.argv[3]))
