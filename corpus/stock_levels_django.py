# corpus: planted
# story: a Django warehouse app whose stock page is a generic ListView rendering every item through a template on each request
# needs: django, gunicorn
# run: gunicorn --workers 2 stock_levels_django:app
import random
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import django
from django.conf import settings

DB_DIR = tempfile.TemporaryDirectory(prefix="stock-")
STOCK_PAGE = """<html><body><h1>Stock at {{ view.kwargs.warehouse|upper }}</h1>
<table>{% for item in object_list %}
<tr class="{% cycle 'odd' 'even' %}"><td>{{ item.sku }}</td><td>{{ item.name|title }}</td>
<td>{{ item.bin_code }}</td><td>{{ item.on_hand|default:"0" }}</td><td>{{ item.unit_cost|floatformat:2 }}</td>
<td>{% if item.on_hand < item.reorder_level %}reorder{% else %}ok{% endif %}</td>
<td>{{ item.counted_at|date:"Y-m-d H:i" }}</td></tr>{% endfor %}
</table></body></html>"""

settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="warehouse",
    USE_TZ=False,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": DB_DIR.name + "/stock.sqlite3"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "OPTIONS": {
        "loaders": [("django.template.loaders.locmem.Loader", {"stock/list.html": STOCK_PAGE})]}}],
)
django.setup()

from django.db import connection, models  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.generic import ListView  # noqa: E402


class StockItem(models.Model):
    warehouse = models.CharField(max_length=8, db_index=True)
    sku = models.CharField(max_length=16)
    name = models.CharField(max_length=80)
    bin_code = models.CharField(max_length=12)
    on_hand = models.IntegerField()
    reorder_level = models.IntegerField()
    unit_cost = models.DecimalField(max_digits=9, decimal_places=2)
    counted_at = models.DateTimeField()

    class Meta:
        app_label = "warehouse"
        ordering = ["bin_code"]


class StockListView(ListView):  # expect: PYDX-WEB002
    template_name = "stock/list.html"

    def get_queryset(self):
        return StockItem.objects.filter(warehouse=self.kwargs["warehouse"])


def create_stock(per_warehouse=500, seed=5):
    import datetime
    rng = random.Random(seed)
    with connection.schema_editor() as editor:
        editor.create_model(StockItem)
    StockItem.objects.bulk_create(StockItem(
        warehouse=wh, sku=f"{wh}-{n:05d}", name=f"widget model {rng.randrange(9999)}",
        bin_code=f"{rng.choice('ABCDEF')}{rng.randrange(40):02d}-{rng.randrange(9)}",
        on_hand=rng.randrange(0, 500), reorder_level=rng.randrange(10, 80),
        unit_cost=f"{rng.uniform(0.5, 300):.2f}",
        counted_at=datetime.datetime(2024, 3, 1) + datetime.timedelta(minutes=rng.randrange(90000)),
    ) for wh in ("ams", "lyn", "mad") for n in range(per_warehouse))


urlpatterns = [path("warehouses/<str:warehouse>/stock", StockListView.as_view())]
app = get_wsgi_application()
if __name__ != "__main__":
    create_stock()


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds

    def client(n):
        warehouses = ["ams", "lyn", "mad"]
        pages = 0
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base_url}/warehouses/{warehouses[(n + pages) % 3]}/stock") as reply:
                reply.read()
            pages += 1
        return pages

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(client, range(clients)))


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
