"""A Django view reading one customer by id, with Django's default database
settings: `CONN_MAX_AGE` is 0, so Django opens a new PostgreSQL connection
for every request and closes it at the end, and the connection costs more
than the query (PYDX-CONN001). profile_django_fixed.py keeps connections
open across requests.

    PYDX_PG_PORT=5432 python profile_django.py seed
    PYDX_PG_PORT=5432 gunicorn --workers 2 --chdir examples/web profile_django:app
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
        }
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, models  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


class Customer(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "crm"


def customer_profile(request, customer_id):
    customer = Customer.objects.get(pk=customer_id)
    return JsonResponse({"id": customer.id, "name": customer.name})


def seed():
    """Creates the customers table with 100 customers."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS crm_customer")
    with connection.schema_editor() as editor:
        editor.create_model(Customer)
    Customer.objects.bulk_create(Customer(id=n, name=f"customer {n}") for n in range(1, 101))


urlpatterns = [path("customers/<int:customer_id>", customer_profile)]
app = get_wsgi_application()

if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
