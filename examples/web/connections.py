"""A Flask endpoint that opens a new PostgreSQL connection and a new Redis
client for every request. `pydx doctor` reports PYDX-CONN001 (connection
set-up on the request path); connections_fixed.py keeps a connection pool
and one Redis client per worker.

Run it under gunicorn with PostgreSQL and Redis reachable:

    PYDX_PG_DSN="host=127.0.0.1 user=postgres dbname=postgres" PYDX_REDIS_PORT=6379 \\
        gunicorn --workers 2 --chdir examples/web connections:app
"""
import os

import psycopg
import redis
from flask import Flask

DSN = os.environ["PYDX_PG_DSN"]
REDIS_PORT = int(os.environ["PYDX_REDIS_PORT"])

app = Flask(__name__)


@app.get("/orders/<int:order_id>")
def order(order_id):
    with psycopg.connect(DSN) as conn:
        total = conn.execute("SELECT %s::int * 2", (order_id,)).fetchone()[0]
    cache = redis.Redis(port=REDIS_PORT)
    cache.set(f"order:{order_id}", total)
    return {"id": order_id, "total": total}
