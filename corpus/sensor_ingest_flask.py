# corpus: planted
# story: a Flask telemetry ingest API behind a WSGI middleware that verifies each batch's HMAC over a canonical re-serialisation built in Python
# needs: flask, gunicorn
# run: gunicorn --workers 2 sensor_ingest_flask:app
import hashlib
import hmac
import io
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, jsonify, request

SHARED_SECRET = b"fleet-7f3a9c"


def canonicalize(value):
    """Sorted keys, fixed float precision, no whitespace: the form devices sign."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(key)}:{canonicalize(value[key])}" for key in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonicalize(item) for item in value) + "]"
    if isinstance(value, float):
        return format(value, ".4f")
    return json.dumps(value)


def sign(payload):
    return hmac.new(SHARED_SECRET, canonicalize(payload).encode(), hashlib.sha256).hexdigest()


class SignedBatchMiddleware:
    def __init__(self, wsgi_app, secret):
        self.wsgi_app = wsgi_app
        self.secret = secret

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(raw)
            canonical_body = canonicalize(json.loads(raw))  # expect: PYDX-WEB001
            expected = hmac.new(self.secret, canonical_body.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, environ.get("HTTP_X_SIGNATURE", "")):
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"bad signature\n"]
        return self.wsgi_app(environ, start_response)


app = Flask(__name__)
app.wsgi_app = SignedBatchMiddleware(app.wsgi_app, SHARED_SECRET)
latest_by_device = {}


@app.post("/v1/batches")
def ingest_batch():
    batch = request.get_json()
    readings = batch["readings"]
    for reading in readings:
        latest_by_device[reading["device"]] = reading["ts"]
    mean_temp = sum(r["temp_c"] for r in readings) / len(readings)
    return jsonify(accepted=len(readings), site=batch["site"], mean_temp_c=round(mean_temp, 2))


@app.get("/v1/devices/<device>")
def device_status(device):
    return jsonify(device=device, last_seen=latest_by_device.get(device))


def make_batch(rng, site):
    return {"site": site, "firmware": "4.2.1", "readings": [{
        "device": f"{site}-{rng.randrange(40):03d}", "ts": 1_700_000_000 + rng.randrange(86400),
        "temp_c": rng.uniform(-5, 35), "humidity": rng.uniform(10, 90), "battery_v": rng.uniform(3.1, 4.2),
        "flags": {"door_open": rng.random() < 0.1, "tamper": False}, "tags": ["hvac", site],
    } for _ in range(250)]}


def generate_load(base_url, seconds, clients=3):
    import urllib.request

    rng = random.Random(11)
    signed = []
    for n in range(30):
        batch = make_batch(rng, f"site{n % 6}")
        signed.append((json.dumps(batch).encode(), sign(batch)))
    deadline = time.monotonic() + seconds

    def client(offset):
        sent = 0
        while time.monotonic() < deadline:
            body, signature = signed[(offset + sent) % len(signed)]
            req = urllib.request.Request(f"{base_url}/v1/batches", data=body, method="POST", headers={
                "Content-Type": "application/json", "X-Signature": signature})
            with urllib.request.urlopen(req) as reply:
                reply.read()
            if sent % 10 == 0:
                urllib.request.urlopen(f"{base_url}/v1/devices/site1-007").read()
            sent += 1
        return sent

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(client, range(0, 30, 30 // clients)))


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
