"""orders_django.py fixed: select_related("customer") follows the foreign
key in the same query, and prefetch_related("lines") fetches every order's
lines in one more query, so each view makes one or two SELECTs; /restock
reads the items with one query and writes them with one bulk_update.

    PYDX_PG_PORT=5432 PYDX_REDIS_PORT=6379 python orders_django_fixed.py seed
    PYDX_PG_PORT=5432 PYDX_REDIS_PORT=6379 gunicorn --workers 2 --chdir examples/web orders_django_fixed:app
"""
import os
import sys

import django
from django.conf import settings

settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="pydx-example",
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": os.environ["PYDX_PG_PORT"],
            "NAME": "postgres",
            "USER": "postgres",
            "CONN_MAX_AGE": 60,
        }
    },
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{os.environ['PYDX_REDIS_PORT']}",
        }
    },
)
django.setup()

from django.core.cache import cache  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, models  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


class Customer(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "shop"


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    total = models.IntegerField()

    class Meta:
        app_label = "shop"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=20)

    class Meta:
        app_label = "shop"


class Item(models.Model):
    name = models.CharField(max_length=50)
    stock = models.IntegerField()

    class Meta:
        app_label = "shop"


ITEM_IDS = list(range(1, 51))


def list_orders(request):
    banner = cache.get_or_set("banner", "Autumn sale", 60)
    rows = []
    for order in Order.objects.select_related("customer").order_by("id")[:100]:
        rows.append({"id": order.id, "customer": order.customer.name})
    return JsonResponse({"banner": banner, "orders": rows})


def order_lines(request):
    rows = []
    for order in Order.objects.prefetch_related("lines").order_by("id")[:100]:
        skus = [line.sku for line in order.lines.all()]
        rows.append({"id": order.id, "skus": skus})
    return JsonResponse({"orders": rows})


def restock(request):
    items = list(Item.objects.filter(id__in=ITEM_IDS))
    for item in items:
        item.stock += 1
    Item.objects.bulk_update(items, ["stock"])
    return JsonResponse({"restocked": len(items)})


urlpatterns = [
    path("orders", list_orders),
    path("orders/lines", order_lines),
    path("restock", restock),
]
app = get_wsgi_application()


def seed():
    """Creates the tables with 100 customers, an order for each and two
    lines per order."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS shop_item, shop_orderline, shop_order, shop_customer")
    with connection.schema_editor() as editor:
        editor.create_model(Customer)
        editor.create_model(Order)
        editor.create_model(OrderLine)
        editor.create_model(Item)
    for n in range(100):
        order = Order.objects.create(customer=Customer.objects.create(name=f"customer {n}"), total=n)
        OrderLine.objects.bulk_create(OrderLine(order=order, sku=f"SKU-{n}-{k}") for k in range(2))
    Item.objects.bulk_create(Item(id=n, name=f"item {n}", stock=0) for n in ITEM_IDS)


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
