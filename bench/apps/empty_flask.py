"""Flask with an empty view: the framework's cost per request on its own."""
from flask import Flask

app = Flask(__name__)


@app.get("/empty")
def empty():
    return {"ok": True}
