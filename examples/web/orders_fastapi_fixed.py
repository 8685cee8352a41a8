"""orders_fastapi.py fixed: the handler encodes the orders itself with the
json module's C encoder and returns a finished Response, which FastAPI
passes through untouched.

    uvicorn --workers 2 --app-dir examples/web orders_fastapi_fixed:app
"""
import json

from fastapi import FastAPI, Response

ORDERS = [
    {"id": n, "customer": f"customer {n % 97}", "total": round(n * 1.7, 2), "lines": [n, n + 1]}
    for n in range(1_500)
]

app = FastAPI()


@app.get("/orders")
async def list_orders():
    return Response(json.dumps(ORDERS), media_type="application/json")
