# corpus: planted
# story: a Flask fleet dashboard shows a device's last check-in and battery over the last day by querying a 1.5-million-row heartbeats table on PostgreSQL through psycopg; nothing indexes device_serial, so every request scans the table
# needs: flask, gunicorn, psycopg, postgres
# run: gunicorn --preload --workers 2 --worker-class gthread --threads 4 device_heartbeats:app
import os
import random
import sys
import threading
import time
import urllib.request

import psycopg
from flask import Flask, abort, jsonify
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

DSN = f"host=127.0.0.1 port={os.environ.get('PYDX_PG_PORT', '5432')} dbname=postgres user=postgres"
DEVICES = 20_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS heartbeats (
    id bigserial PRIMARY KEY,
    device_serial text NOT NULL,
    seen_at timestamptz NOT NULL,
    battery smallint NOT NULL,
    firmware text NOT NULL
)
"""
SEED = """
INSERT INTO heartbeats (device_serial, seen_at, battery, firmware)
SELECT 'SN-' || lpad((g %% %(devices)s)::text, 6, '0'),
       now() - make_interval(secs => g * 0.4),
       (100 - g %% 97)::smallint,
       'fw-2.' || (g %% 7)
FROM generate_series(1, 1500000) AS g
"""


def ensure_schema():
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(SCHEMA)
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM heartbeats)").fetchone()[0]:
            conn.execute(SEED, {"devices": DEVICES})
            conn.execute("ANALYZE heartbeats")


ensure_schema()
app = Flask(__name__)
_pool = None
_pool_lock = threading.Lock()


def get_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ConnectionPool(DSN, min_size=2, max_size=4, kwargs={"row_factory": dict_row}, open=True)
        return _pool


@app.get("/devices/<serial>/status")
def device_status(serial):
    with get_pool().connection() as conn:
        summary = conn.execute(  # expect: PYDX-DB004
            """SELECT max(seen_at) AS last_seen, min(battery) AS min_battery,
                      count(*) AS checkins, max(firmware) AS firmware
               FROM heartbeats
               WHERE device_serial = %s AND seen_at > now() - interval '1 day'""",
            (serial,),
        ).fetchone()
    if summary["checkins"] == 0:
        abort(404)
    summary["last_seen"] = summary["last_seen"].isoformat()
    return jsonify(serial=serial, **summary)


def load(base_url, seconds, operators=6):
    deadline = time.monotonic() + seconds
    views = []

    def operator(seed):
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < deadline:
            serial = f"SN-{rng.randrange(DEVICES):06d}"
            with urllib.request.urlopen(f"{base_url}/devices/{serial}/status", timeout=60) as resp:
                resp.read()
            n += 1
        views.append(n)

    threads = [threading.Thread(target=operator, args=(s,)) for s in range(operators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(views)} status pages in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    load(sys.argv[2], float(sys.argv[3]))
