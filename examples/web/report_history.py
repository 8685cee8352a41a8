"""A Flask endpoint that keeps every report it ever built in a module-level
list "for debugging": each gunicorn worker's memory grows with every
request (PYDX-MEM001). report_history_fixed.py keeps the last 100 only.

    gunicorn --workers 2 --chdir examples/web report_history:app
"""
from flask import Flask

app = Flask(__name__)
recent_reports = []


@app.get("/report/<int:customer>")
def report(customer):
    lines = list(map(float, range(customer, customer + 600)))
    recent_reports.append(lines)
    return {"customer": customer, "total": sum(lines)}
