"""A Django endpoint serving a 400 KB product catalogue, with GZipMiddleware
in the middleware list: every response is compressed in the worker, which
costs far more CPU than the view (PYDX-WEB001). catalog_django_fixed.py
leaves compression to the reverse proxy.

    gunicorn --workers 2 --chdir examples/web catalog_django:app
"""
import json

from django.conf import settings

settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="pydx-example",
    MIDDLEWARE=[
        "django.middleware.gzip.GZipMiddleware",
        "django.middleware.common.CommonMiddleware",
    ],
)

import django  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

CATALOG = json.dumps(
    [{"sku": f"SKU-{n:05}", "name": f"Product {n}", "price": n * 1.25} for n in range(6_000)]
).encode()


def catalog(request):
    return HttpResponse(CATALOG, content_type="application/json")


urlpatterns = [path("catalog", catalog)]
app = get_wsgi_application()
