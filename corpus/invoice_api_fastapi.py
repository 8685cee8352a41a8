# corpus: planted
# story: a FastAPI invoice API whose database dependency opens a fresh PostgreSQL connection for every request
# needs: fastapi, uvicorn, psycopg, postgres
# run: uvicorn invoice_api_fastapi:app
import contextlib
import os
import random
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg
from fastapi import Depends, FastAPI, HTTPException
from psycopg.rows import dict_row

DSN = f"host=127.0.0.1 port={os.environ.get('PYDX_PG_PORT', '5432')} dbname=postgres user=postgres"

SCHEMA = """
CREATE TABLE IF NOT EXISTS invoice (
    id serial PRIMARY KEY, customer_id int NOT NULL, issued date NOT NULL,
    amount_cents int NOT NULL, status text NOT NULL);
CREATE INDEX IF NOT EXISTS invoice_customer ON invoice (customer_id, issued DESC);
"""


def seed_invoices(customers=500, per_customer=12):
    rng = random.Random(17)
    with psycopg.connect(DSN) as conn:
        conn.execute(SCHEMA)
        if conn.execute("SELECT count(*) FROM invoice").fetchone()[0] == 0:
            with conn.cursor().copy("COPY invoice (customer_id, issued, amount_cents, status) FROM STDIN") as copy:
                for customer in range(1, customers + 1):
                    for k in range(per_customer):
                        copy.write_row((customer, f"2024-{k + 1:02d}-{rng.randrange(1, 28):02d}",
                                        rng.randrange(1000, 500000), rng.choice(["paid", "open", "overdue"])))


@contextlib.asynccontextmanager
async def lifespan(app):
    seed_invoices()
    yield


app = FastAPI(lifespan=lifespan)


def get_db():
    with psycopg.connect(DSN, row_factory=dict_row) as conn:  # expect: PYDX-CONN001
        yield conn


@app.get("/customers/{customer_id}/invoices")
def customer_invoices(customer_id: int, db: psycopg.Connection = Depends(get_db)):
    rows = db.execute(
        "SELECT id, issued, amount_cents, status FROM invoice WHERE customer_id = %s ORDER BY issued DESC LIMIT 6",
        (customer_id,)).fetchall()
    return {"customer": customer_id, "invoices": [dict(r, issued=r["issued"].isoformat()) for r in rows]}


@app.get("/invoices/{invoice_id}")
def invoice(invoice_id: int, db: psycopg.Connection = Depends(get_db)):
    row = db.execute("SELECT * FROM invoice WHERE id = %s", (invoice_id,)).fetchone()
    if row is None:
        raise HTTPException(404, "no such invoice")
    return dict(row, issued=row["issued"].isoformat())


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds

    def portal_user(n):
        rng = random.Random(n)
        calls = 0
        while time.monotonic() < deadline:
            if rng.random() < 0.7:
                url = f"{base_url}/customers/{rng.randrange(1, 501)}/invoices"
            else:
                url = f"{base_url}/invoices/{rng.randrange(1, 6001)}"
            with urllib.request.urlopen(url) as reply:
                reply.read()
            calls += 1
        return calls

    with ThreadPoolExecutor(clients) as pool:
        print(f"{sum(pool.map(portal_user, range(clients)))} requests", file=sys.stderr)


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
