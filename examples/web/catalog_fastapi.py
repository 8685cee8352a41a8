"""A FastAPI endpoint serving a 400 KB product catalogue behind Starlette's
GZipMiddleware: every response is compressed in the worker's event loop,
which costs far more CPU than the endpoint (PYDX-WEB001).
catalog_fastapi_fixed.py leaves compression to the reverse proxy.

    uvicorn --workers 2 --app-dir examples/web catalog_fastapi:app
"""
import json

from fastapi import FastAPI, Response
from starlette.middleware.gzip import GZipMiddleware

CATALOG = json.dumps(
    [{"sku": f"SKU-{n:05}", "name": f"Product {n}", "price": n * 1.25} for n in range(6_000)]
).encode()

app = FastAPI()
app.add_middleware(GZipMiddleware, minimum_size=1_000)


@app.get("/catalog")
def catalog():
    return Response(CATALOG, media_type="application/json")
