"""A FastAPI endpoint whose coroutine calls a blocking client: while it
waits, the worker's event loop serves nothing else (PYDX-ASYNC001).
quotes_fastapi_fixed.py awaits an asynchronous call instead.

    uvicorn --workers 2 --app-dir examples/web quotes_fastapi:app
"""
import time

from fastapi import FastAPI

app = FastAPI()


def fetch_rate(product):
    """Stands for a blocking HTTP call to a pricing service (40 ms)."""
    time.sleep(0.04)
    return 1.0 + product % 7 / 100


@app.get("/quote/{product}")
async def quote(product: int):
    rate = fetch_rate(product)
    return {"product": product, "price": round(100 * rate, 2)}
