"""A FastAPI endpoint returning 1,500 orders as plain dicts: FastAPI's
jsonable_encoder walks every one of them in Python, which costs many times
what the framework needs for a request (PYDX-WEB002).
orders_fastapi_fixed.py hands FastAPI the encoded body.

    uvicorn --workers 2 --app-dir examples/web orders_fastapi:app
"""
from fastapi import FastAPI

ORDERS = [
    {"id": n, "customer": f"customer {n % 97}", "total": round(n * 1.7, 2), "lines": [n, n + 1]}
    for n in range(1_500)
]

app = FastAPI()


@app.get("/orders")
async def list_orders():
    return ORDERS
