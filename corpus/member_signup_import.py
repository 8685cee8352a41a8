# corpus: planted
# story: a Django job imports newsletter sign-ups from partner CSV exports with Subscriber.objects.create() for each row
# needs: django
# run: launch
import csv
import io
import os
import random
import shutil
import tempfile
import time

import django
from django.conf import settings

DATA_DIR = tempfile.mkdtemp(prefix="signups-")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DATA_DIR, "crm.db")}},
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.db import connection, models  # noqa: E402

FIRST = ["ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo", "ines", "jon"]
LAST = ["smith", "okafor", "nguyen", "garcia", "muller", "rossi", "tanaka", "silva"]


class Subscriber(models.Model):
    email = models.EmailField()
    first_name = models.CharField(max_length=50)
    last_name = models.CharField(max_length=50)
    source = models.CharField(max_length=30)
    wants_offers = models.BooleanField(default=False)

    class Meta:
        app_label = "crm"


def partner_export(rng, partner, rows=30):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["email", "first", "last", "offers"])
    for _ in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        writer.writerow([f"{first}.{last}{rng.randint(1, 9999)}@example.com", first.title(), last.title(),
                         rng.choice(["yes", "no"])])
    return buf.getvalue()


def clean(row):
    return {
        "email": row["email"].strip().lower(),
        "first_name": row["first"].strip(),
        "last_name": row["last"].strip(),
        "wants_offers": row["offers"] == "yes",
    }


def import_export(partner, text):
    count = 0
    for row in csv.DictReader(io.StringIO(text)):
        Subscriber.objects.create(source=partner, **clean(row))  # expect: PYDX-DB003
        count += 1
    return count


def main():
    rng = random.Random(4)
    with connection.schema_editor() as editor:
        editor.create_model(Subscriber)
    partners = ["bookfair", "podcast", "webinar", "popup-store"]
    imported = files = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        partner = partners[files % len(partners)]
        imported += import_export(partner, partner_export(rng, partner))
        files += 1
    opted_in = Subscriber.objects.filter(wants_offers=True).count()
    print(f"{files} exports, {imported} subscribers imported, {opted_in} want offers")
    connection.close()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(DATA_DIR, ignore_errors=True)
