"""catalog_fastapi.py fixed: no GZipMiddleware; the reverse proxy in front
of uvicorn (nginx `gzip on;`) compresses responses, outside the workers.

    uvicorn --workers 2 --app-dir examples/web catalog_fastapi_fixed:app
"""
import json

from fastapi import FastAPI, Response

CATALOG = json.dumps(
    [{"sku": f"SKU-{n:05}", "name": f"Product {n}", "price": n * 1.25} for n in range(6_000)]
).encode()

app = FastAPI()


@app.get("/catalog")
def catalog():
    return Response(CATALOG, media_type="application/json")
