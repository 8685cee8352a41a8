"""Starlette with an empty endpoint: the framework's cost per request on its
own."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def empty(request):
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/empty", empty)])
