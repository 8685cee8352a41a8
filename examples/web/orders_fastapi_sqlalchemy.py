"""The N+1 of orders_sqlalchemy.py in a FastAPI `def` endpoint, which
FastAPI runs in its thread pool: each `order.customer` is a lazy load, one
more query per order (PYDX-DB001). orders_fastapi_sqlalchemy_fixed.py loads
the customers with the orders. The models, the engine and the seed are
orders_sqlalchemy.py's.

    PYDX_PG_URL=postgresql+psycopg://postgres@127.0.0.1/postgres python orders_fastapi_sqlalchemy.py seed
    PYDX_PG_URL=... uvicorn --workers 2 --app-dir examples/web orders_fastapi_sqlalchemy:app
"""
import sys

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from orders_sqlalchemy import Order, engine, seed

app = FastAPI()


@app.get("/orders")
def list_orders():
    with Session(engine) as session:
        rows = []
        for order in session.scalars(select(Order).order_by(Order.id).limit(100)):
            rows.append({"id": order.id, "customer": order.customer.name})
        return {"orders": rows}


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
