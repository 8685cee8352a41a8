"""orders_fastapi_sqlalchemy.py fixed: the query loads each order's
customer in the same round trip (joinedload), so listing 100 orders is one
query.

    PYDX_PG_URL=postgresql+psycopg://postgres@127.0.0.1/postgres python orders_fastapi_sqlalchemy_fixed.py seed
    PYDX_PG_URL=... uvicorn --workers 2 --app-dir examples/web orders_fastapi_sqlalchemy_fixed:app
"""
import sys

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from orders_sqlalchemy import Order, engine, seed

app = FastAPI()


@app.get("/orders")
def list_orders():
    with Session(engine) as session:
        rows = []
        query = select(Order).options(joinedload(Order.customer)).order_by(Order.id).limit(100)
        for order in session.scalars(query):
            rows.append({"id": order.id, "customer": order.customer.name})
        return {"orders": rows}


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
