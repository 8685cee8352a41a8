"""A Flask endpoint answering from a 96 MB postcode table built at import.
Served by gunicorn without --preload, every worker imports the app and
builds its own private copy of the table (PYDX-WORKER003); with --preload
the master builds it once and the workers share it.

    gunicorn --workers 2 --chdir examples/web postcodes:app             # PYDX-WORKER003
    gunicorn --workers 2 --preload --chdir examples/web postcodes:app
"""
from flask import Flask

app = Flask(__name__)
RECORD = 96
POSTCODES = b"".join(f"{n:08d}".encode().ljust(RECORD, b" ") for n in range(1_000_000))


@app.get("/postcode/<int:n>")
def postcode(n):
    start = n % 1_000_000 * RECORD
    return {"postcode": POSTCODES[start : start + 8].decode()}
