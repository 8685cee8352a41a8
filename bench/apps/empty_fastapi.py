"""FastAPI with an empty endpoint: the framework's cost per request on its
own."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/empty")
async def empty():
    return {"ok": True}
