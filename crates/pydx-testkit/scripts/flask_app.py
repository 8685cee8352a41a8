"""A Flask app with two endpoints of known relative cost: a report does
five times the work of an order."""
from flask import Flask

app = Flask(__name__)


def burn(units):
    total = 0
    for i in range(units * 20_000):
        total += i % 7  # LINE:burn
    return total


@app.get("/orders/<int:order_id>")
def order(order_id):
    return {"id": order_id, "total": burn(1)}


@app.get("/report")
def report():
    return {"total": burn(5)}
