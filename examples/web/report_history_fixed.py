"""report_history.py fixed: the debugging history is bounded, so a
worker's memory stays flat however many requests it serves.

    gunicorn --workers 2 --chdir examples/web report_history_fixed:app
"""
from collections import deque

from flask import Flask

app = Flask(__name__)
recent_reports = deque(maxlen=100)


@app.get("/report/<int:customer>")
def report(customer):
    lines = list(map(float, range(customer, customer + 600)))
    recent_reports.append(lines)
    return {"customer": customer, "total": sum(lines)}
