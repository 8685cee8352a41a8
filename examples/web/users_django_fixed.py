"""users_django.py fixed: an index on `UPPER(email::text)`, the expression
Django's `iexact` compares, lets PostgreSQL find the user without reading
the whole table.

    PYDX_PG_PORT=5432 python users_django_fixed.py seed
    PYDX_PG_PORT=5432 gunicorn --workers 2 --chdir examples/web users_django_fixed:app
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
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connection, models  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

USERS = 1_000_000


class User(models.Model):
    email = models.CharField(max_length=100)
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "accounts"
        db_table = "users"


def find_user(request):
    user = User.objects.get(email__iexact=request.GET["email"])
    return JsonResponse({"id": user.id, "name": user.name})


def seed():
    """Creates the users table with a million users."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS users")
    with connection.schema_editor() as editor:
        editor.create_model(User)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (id, email, name) "
            "SELECT n, 'User' || n || '@example.com', 'user ' || n FROM generate_series(1, %s) AS n",
            [USERS],
        )
        cursor.execute("CREATE INDEX ON users (UPPER(email::text))")
        cursor.execute("VACUUM ANALYZE users")


urlpatterns = [path("users", find_user)]
app = get_wsgi_application()

if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
