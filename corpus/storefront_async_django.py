# corpus: planted
# story: a Django storefront written with async views and the async ORM, deployed on gunicorn's sync WSGI workers
# needs: django, gunicorn
# run: gunicorn --workers 2 storefront_async_django:app
import random
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import django
from django.conf import settings

DB_DIR = tempfile.TemporaryDirectory(prefix="storefront-")
settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="storefront",
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB_DIR.name + "/shop.sqlite3"}},
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, models  # noqa: E402
from django.http import Http404, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


class Product(models.Model):
    sku = models.CharField(max_length=12, unique=True)
    name = models.CharField(max_length=80)
    price_cents = models.IntegerField()

    class Meta:
        app_label = "storefront"


class Review(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    stars = models.SmallIntegerField()
    headline = models.CharField(max_length=120)

    class Meta:
        app_label = "storefront"


async def product_page(request, sku):  # expect: PYDX-WORKER004
    product = await Product.objects.filter(sku=sku).afirst()
    if product is None:
        raise Http404(sku)
    latest = [r async for r in product.reviews.order_by("-id")[:3]]
    return JsonResponse({
        "sku": product.sku, "name": product.name, "price": product.price_cents / 100,
        "reviews": [{"stars": r.stars, "headline": r.headline} for r in latest],
    })


async def price_check(request, sku):
    price = await Product.objects.filter(sku=sku).values_list("price_cents", flat=True).afirst()
    return JsonResponse({"sku": sku, "price": None if price is None else price / 100})


def create_shop(products=400, seed=3):
    rng = random.Random(seed)
    with connection.schema_editor() as editor:
        editor.create_model(Product)
        editor.create_model(Review)
    Product.objects.bulk_create(
        Product(id=n + 1, sku=f"SF{n:05d}", name=f"lamp {n}", price_cents=rng.randrange(900, 25000))
        for n in range(products))
    Review.objects.bulk_create(
        Review(product_id=rng.randrange(1, products + 1), stars=rng.randrange(1, 6), headline=f"review {k}")
        for k in range(products * 4))


urlpatterns = [path("products/<str:sku>", product_page), path("products/<str:sku>/price", price_check)]
app = get_wsgi_application()
if __name__ != "__main__":
    create_shop()


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds

    def shopper(n):
        rng = random.Random(n)
        views = 0
        while time.monotonic() < deadline:
            sku = f"SF{rng.randrange(400):05d}"
            url = f"{base_url}/products/{sku}/price" if rng.random() < 0.3 else f"{base_url}/products/{sku}"
            with urllib.request.urlopen(url) as reply:
                reply.read()
            views += 1
        return views

    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(shopper, range(clients)))
    print(f"{total} pages in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
