"""A Django view that lists orders and reads each order's customer through
the foreign key: one SELECT per order (PYDX-DB001). orders_django_fixed.py
follows the key in the same query with select_related(). Settings live in
this file; PostgreSQL holds the data and Redis caches the shop's banner.

    PYDX_PG_PORT=5432 PYDX_REDIS_PORT=6379 python orders_django.py seed
    PYDX_PG_PORT=5432 PYDX_REDIS_PORT=6379 gunicorn --workers 2 --chdir examples/web orders_django:app
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


def list_orders(request):
    banner = cache.get_or_set("banner", "Autumn sale", 60)
    rows = []
    for order in Order.objects.order_by("id")[:100]:
        rows.append({"id": order.id, "customer": order.customer.name})
    return JsonResponse({"banner": banner, "orders": rows})


urlpatterns = [path("orders", list_orders)]
app = get_wsgi_application()


def seed():
    """Creates the tables with 100 customers and an order for each."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS shop_order, shop_customer")
    with connection.schema_editor() as editor:
        editor.create_model(Customer)
        editor.create_model(Order)
    for n in range(100):
        Order.objects.create(customer=Customer.objects.create(name=f"customer {n}"), total=n)


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
