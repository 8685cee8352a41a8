"""A Django app whose views are async, served by gunicorn's sync workers
(WSGI): Django runs every async view through asgiref's async_to_sync, which
starts a thread and an event loop per request, and the worker still serves
one request at a time (PYDX-WORKER004). reviews_django_fixed.py serves the
same views through ASGI, with uvicorn.

    gunicorn --workers 2 --chdir examples/web reviews_django:app
"""
import asyncio

from django.conf import settings

settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="pydx-example",
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)

import django  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


async def fetch_rating(product):
    """Stands for an asynchronous call to a ratings service (5 ms)."""
    await asyncio.sleep(0.005)
    return 3 + product % 3


async def reviews(request, product):
    rating = await fetch_rating(product)
    return JsonResponse({"product": product, "rating": rating})


urlpatterns = [path("reviews/<int:product>", reviews)]
app = get_wsgi_application()
