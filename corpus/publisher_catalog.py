# corpus: planted
# story: a Django catalog export walks every author and lists their books through the reverse foreign key author.book_set.all() inside the loop
# needs: django
# run: launch
import os
import random
import tempfile
import time

import django
from django.conf import settings

DB_DIR = tempfile.mkdtemp(prefix="catalog-")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DB_DIR, "catalog.sqlite3")}},
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.db import connection, models, transaction  # noqa: E402


class Author(models.Model):
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2)

    class Meta:
        app_label = "catalog"


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    year = models.IntegerField()
    price_cents = models.IntegerField()

    class Meta:
        app_label = "catalog"


def create_schema():
    with connection.schema_editor() as editor:
        editor.create_model(Author)
        editor.create_model(Book)


def load_sample_data(rng, n_authors=1000, books_per_author=(1, 9)):
    countries = ["GB", "US", "FR", "DE", "JP", "BR", "IN"]
    with transaction.atomic():
        authors = Author.objects.bulk_create(
            Author(name=f"Author {i}", country=rng.choice(countries)) for i in range(n_authors)
        )
        Book.objects.bulk_create(
            Book(author=author, title=f"{author.name}: Volume {k + 1}",
                 year=rng.randint(1950, 2024), price_cents=rng.randint(499, 4999))
            for author in authors
            for k in range(rng.randint(*books_per_author))
        )


def export_catalog():
    entries = []
    for author in Author.objects.order_by("name"):
        books = list(author.book_set.all())  # expect: PYDX-DB001
        if not books:
            continue
        newest = max(book.year for book in books)
        avg_price = sum(book.price_cents for book in books) / len(books) / 100
        entries.append({"author": author.name, "country": author.country,
                        "books": len(books), "newest": newest, "avg_price": round(avg_price, 2)})
    return entries


def main():
    rng = random.Random(17)
    create_schema()
    load_sample_data(rng)
    deadline = time.monotonic() + 6
    exports = 0
    while time.monotonic() < deadline:
        catalog = export_catalog()
        exports += 1
    by_country = {}
    for entry in catalog:
        by_country[entry["country"]] = by_country.get(entry["country"], 0) + entry["books"]
    print(f"{exports} exports, {len(catalog)} authors, books per country: {dict(sorted(by_country.items()))}")
    connection.close()


if __name__ == "__main__":
    try:
        main()
    finally:
        for name in os.listdir(DB_DIR):
            os.remove(os.path.join(DB_DIR, name))
        os.rmdir(DB_DIR)
