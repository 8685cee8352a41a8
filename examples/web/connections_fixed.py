"""connections.py fixed: each worker keeps a pool of PostgreSQL
connections and one Redis client (with its own connection pool), so a
request borrows connections instead of opening them.

    PYDX_PG_DSN="host=127.0.0.1 user=postgres dbname=postgres" PYDX_REDIS_PORT=6379 \\
        gunicorn --workers 2 --chdir examples/web connections_fixed:app
"""
import os

import redis
from flask import Flask
from psycopg_pool import ConnectionPool

DSN = os.environ["PYDX_PG_DSN"]
REDIS_PORT = int(os.environ["PYDX_REDIS_PORT"])

app = Flask(__name__)
pool = ConnectionPool(DSN, min_size=1, max_size=4, open=True)
cache = redis.Redis(port=REDIS_PORT)


@app.get("/orders/<int:order_id>")
def order(order_id):
    with pool.connection() as conn:
        total = conn.execute("SELECT %s::int * 2", (order_id,)).fetchone()[0]
    cache.set(f"order:{order_id}", total)
    return {"id": order_id, "total": total}
