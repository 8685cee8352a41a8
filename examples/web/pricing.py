"""A Flask endpoint whose requests are CPU-bound: pricing a basket runs
pure Python for about 10 ms. With fewer sync workers than CPUs, requests
queue while CPUs idle (PYDX-WORKER002); the fix is the worker count.

    gunicorn --workers 1 --chdir examples/web pricing:app    # PYDX-WORKER002 on 2+ CPUs
    gunicorn --workers 3 --chdir examples/web pricing:app    # CPUs + 1 (at most 2 × CPUs + 1)
"""
from flask import Flask

app = Flask(__name__)


def price_basket(basket):
    total = 0.0
    for item in range(20_000):
        total += (item * basket) % 97 * 0.01
    return total


@app.get("/price/<int:basket>")
def price(basket):
    return {"basket": basket, "total": round(price_basket(basket), 2)}
