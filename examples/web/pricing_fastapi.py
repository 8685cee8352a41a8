"""A FastAPI endpoint whose requests are CPU-bound: pricing a basket runs
pure Python for a few milliseconds on the event loop. With fewer uvicorn
workers than CPUs, requests queue while CPUs idle (PYDX-WORKER002); the fix
is the worker count.

    uvicorn --workers 1 --app-dir examples/web pricing_fastapi:app   # PYDX-WORKER002 on 2+ CPUs
    uvicorn --workers 3 --app-dir examples/web pricing_fastapi:app   # CPUs + 1 (at most 2 × CPUs + 1)
"""
from fastapi import FastAPI

app = FastAPI()


def price_basket(basket):
    total = 0.0
    for item in range(20_000):
        total += (item * basket) % 97 * 0.01
    return total


@app.get("/price/{basket}")
async def price(basket: int):
    return {"basket": basket, "total": round(price_basket(basket), 2)}
