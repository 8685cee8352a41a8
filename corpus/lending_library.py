# corpus: healthy
# story: a small Django lending-library API (SQLite, indexed foreign keys, a few quick ORM queries per request) served by 3 sync gunicorn workers on a 2-CPU machine
# needs: django, gunicorn
# run: gunicorn --preload --workers 3 lending_library:application
import atexit
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date, timedelta

import django
from django.conf import settings

DATA_DIR = tempfile.mkdtemp(prefix="library-")
_owner = os.getpid()
atexit.register(lambda: os.getpid() == _owner and shutil.rmtree(DATA_DIR, ignore_errors=True))

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DATA_DIR, "library.sqlite3")}},
    USE_TZ=False,
)
django.setup()

from django.db import connection, connections, models  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.shortcuts import get_object_or_404  # noqa: E402
from django.urls import path  # noqa: E402


class Author(models.Model):
    name = models.CharField(max_length=120)

    class Meta:
        app_label = "library"


class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    published = models.IntegerField()

    class Meta:
        app_label = "library"


class Loan(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="loans")
    due = models.DateField()
    returned = models.BooleanField(default=False)

    class Meta:
        app_label = "library"


def create_catalog(seed=3):
    rng = random.Random(seed)
    with connection.schema_editor() as editor:
        for model in (Author, Book, Loan):
            editor.create_model(model)
    authors = Author.objects.bulk_create(Author(name=f"Author {i}") for i in range(300))
    books = Book.objects.bulk_create(
        Book(title=f"Volume {i}", author=rng.choice(authors), published=rng.randint(1950, 2024)) for i in range(5_000)
    )
    Loan.objects.bulk_create(
        Loan(book=rng.choice(books), due=date(2025, 1, 1) + timedelta(days=rng.randrange(90)), returned=rng.random() < 0.7)
        for _ in range(12_000)
    )
    connections.close_all()


def book_detail(request, book_id):
    book = get_object_or_404(Book.objects.select_related("author"), pk=book_id)
    on_loan = book.loans.filter(returned=False).exists()
    return JsonResponse({"id": book.pk, "title": book.title, "author": book.author.name,
                         "published": book.published, "available": not on_loan})


def author_books(request, author_id):
    author = get_object_or_404(Author, pk=author_id)
    books = list(author.books.order_by("-published").values("id", "title", "published")[:20])
    return JsonResponse({"author": author.name, "books": books})


urlpatterns = [path("books/<int:book_id>", book_detail), path("authors/<int:author_id>/books", author_books)]

create_catalog()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


def patrons(base_url, seconds, clients=6):
    end = time.monotonic() + seconds
    pages = []

    def patron(seed):
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < end:
            if rng.random() < 0.7:
                url = f"{base_url}/books/{rng.randint(1, 5_000)}"
            else:
                url = f"{base_url}/authors/{rng.randint(1, 300)}/books"
            with urllib.request.urlopen(url, timeout=30) as resp:
                json.load(resp)
            n += 1
            time.sleep(0.02)
        pages.append(n)

    threads = [threading.Thread(target=patron, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(pages)} pages in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    patrons(sys.argv[2], float(sys.argv[3]))
