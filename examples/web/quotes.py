"""A Flask endpoint that waits on a slow upstream pricing service for every
quote: each request is mostly waiting. Served by gunicorn's default sync
workers, the workers are saturated while the CPUs idle (PYDX-WORKER001);
the fix is in the command line, not the code: threaded workers.

    gunicorn --workers 2 --chdir examples/web quotes:app                  # PYDX-WORKER001
    gunicorn --workers 2 --worker-class gthread --threads 8 --chdir examples/web quotes:app
"""
import time

from flask import Flask

app = Flask(__name__)


def fetch_rate(product):
    """Stands for an HTTP call to a pricing service that answers in 40 ms."""
    time.sleep(0.04)
    return 1.0 + product % 7 / 100


@app.get("/quote/<int:product>")
def quote(product):
    rate = fetch_rate(product)
    return {"product": product, "price": round(100 * rate, 2)}
