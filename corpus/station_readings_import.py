# corpus: healthy
# story: a Django importer loads weather-station CSV files, validating rows and inserting each file with bulk_create inside one transaction
# needs: django
# run: launch
# forbid: PYDX-DB003
import csv
import datetime as dt
import io
import os
import random
import shutil
import tempfile
import time

import django
from django.conf import settings

SCRATCH = tempfile.mkdtemp(prefix="stations-")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(SCRATCH, "weather.db")}},
    INSTALLED_APPS=[],
    USE_TZ=False,
)
django.setup()

from django.db import connection, models, transaction  # noqa: E402


class Reading(models.Model):
    station = models.CharField(max_length=8, db_index=True)
    taken_at = models.DateTimeField()
    temperature_c = models.FloatField()
    humidity_pct = models.FloatField()
    wind_kmh = models.FloatField()

    class Meta:
        app_label = "weather"


def station_file(rng, station, day, interval_min=2):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["timestamp", "temp", "humidity", "wind"])
    t = dt.datetime.combine(day, dt.time())
    for _ in range(24 * 60 // interval_min):
        temp = f"{rng.gauss(12, 6):.1f}" if rng.random() > 0.002 else "NaN"
        writer.writerow([t.isoformat(), temp, f"{rng.uniform(20, 100):.0f}", f"{abs(rng.gauss(10, 8)):.1f}"])
        t += dt.timedelta(minutes=interval_min)
    return out.getvalue()


def parse_readings(station, text):
    for row in csv.DictReader(io.StringIO(text)):
        temp = float(row["temp"])
        if temp != temp:  # sensor dropout
            continue
        yield Reading(station=station, taken_at=dt.datetime.fromisoformat(row["timestamp"]),
                      temperature_c=temp, humidity_pct=float(row["humidity"]), wind_kmh=float(row["wind"]))


def import_file(station, text):
    readings = list(parse_readings(station, text))
    with transaction.atomic():
        Reading.objects.bulk_create(readings, batch_size=500)
    return len(readings)


def main():
    rng = random.Random(77)
    with connection.schema_editor() as editor:
        editor.create_model(Reading)
    stations = [f"ST{n:03d}" for n in range(1, 13)]
    day = dt.date(2024, 1, 1)
    files = rows = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        station = stations[files % len(stations)]
        rows += import_file(station, station_file(rng, station, day))
        files += 1
        if files % len(stations) == 0:
            day += dt.timedelta(days=1)
    print(f"{files} files, {rows} readings imported, {Reading.objects.count()} in the table")
    connection.close()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
