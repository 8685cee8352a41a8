"""reviews_django.py fixed: the same async views served through ASGI by
uvicorn, so each worker's event loop runs them, many requests at a time,
without a thread and a loop per request.

    uvicorn --workers 2 --app-dir examples/web reviews_django_fixed:app
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

from django.core.asgi import get_asgi_application  # noqa: E402
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
app = get_asgi_application()
