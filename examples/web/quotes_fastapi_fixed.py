"""quotes_fastapi.py fixed: the pricing call is awaited, so the event loop
serves other requests while it waits.

    uvicorn --workers 2 --app-dir examples/web quotes_fastapi_fixed:app
"""
import asyncio

from fastapi import FastAPI

app = FastAPI()


async def fetch_rate(product):
    """Stands for an asynchronous HTTP call to a pricing service (40 ms)."""
    await asyncio.sleep(0.04)
    return 1.0 + product % 7 / 100


@app.get("/quote/{product}")
async def quote(product: int):
    rate = await fetch_rate(product)
    return {"product": product, "price": round(100 * rate, 2)}
