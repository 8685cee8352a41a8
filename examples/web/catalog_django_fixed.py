"""catalog_django.py fixed: no GZipMiddleware; the reverse proxy (nginx
`gzip on;`) or the CDN compresses responses, outside the Python workers.

    gunicorn --workers 2 --chdir examples/web catalog_django_fixed:app
"""
import json

from django.conf import settings

settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="pydx-example",
    MIDDLEWARE=[
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
