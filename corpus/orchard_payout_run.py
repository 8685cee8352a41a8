# corpus: healthy
# story: a fruit growers' cooperative runs its payout week by week: each week's weighbridge dockets (a CSV export) go into SQLite with one executemany per week in one transaction, and one JOIN/GROUP BY query prices every grower's deliveries against the grade price list, all on one connection
# run: launch
# forbid: PYDX-DB002
# forbid: PYDX-DB003
# forbid: PYDX-CONN001
"""Weekly grower payouts from weighbridge dockets, graded fruit prices and levies."""
import csv
import os
import random
import shutil
import sqlite3
import tempfile
import time
from itertools import repeat

FRUITS = ["apple", "pear", "cherry", "plum", "apricot"]
GRADES = ["extra", "class-1", "class-2", "juice"]
GROSS_KG = [kg / 10.0 for kg in range(9000, 42000)]
TARE_KG = [kg / 10.0 for kg in range(3500, 6000)]
SCHEMA = """
CREATE TABLE growers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, levy_rate REAL NOT NULL);
CREATE TABLE prices (week INTEGER, fruit TEXT, grade TEXT, cents_per_kg INTEGER,
                     PRIMARY KEY (week, fruit, grade));
CREATE TABLE dockets (docket TEXT PRIMARY KEY, week INTEGER, grower_id INTEGER REFERENCES growers(id),
                      fruit TEXT, grade TEXT, gross_kg REAL, tare_kg REAL);
CREATE INDEX dockets_week ON dockets (week, grower_id);
"""
PAYOUT_QUERY = """
SELECT g.id, g.name, COUNT(*), SUM(d.gross_kg - d.tare_kg),
       SUM((d.gross_kg - d.tare_kg) * p.cents_per_kg) * (1 - g.levy_rate) / 100.0 AS payout
FROM dockets d
JOIN growers g ON g.id = d.grower_id
JOIN prices p ON p.week = d.week AND p.fruit = d.fruit AND p.grade = d.grade
WHERE d.week = ?
GROUP BY g.id, g.name
ORDER BY payout DESC
"""


def weighbridge_export(path, rng, week, growers, loads):
    """The weighbridge PC writes a CSV of the week's dockets."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["docket", "week", "grower", "fruit", "grade", "gross_kg", "tare_kg"])
        writer.writerows(zip(map("W{:02d}-{:06d}".format, repeat(week), range(loads)), repeat(week),
                             rng.choices(range(1, growers + 1), k=loads), rng.choices(FRUITS, k=loads),
                             rng.choices(GRADES, weights=[2, 5, 3, 1], k=loads),
                             rng.choices(GROSS_KG, k=loads), rng.choices(TARE_KG, k=loads)))


def import_week(conn, path):
    """Straight from the CSV reader into one executemany; SQLite's column types convert the text."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        with conn:
            return conn.executemany("INSERT INTO dockets VALUES (?, ?, ?, ?, ?, ?, ?)", reader).rowcount


def publish_prices(conn, rng, week):
    base = {"apple": 60, "pear": 70, "cherry": 240, "plum": 90, "apricot": 150}
    factor = {"extra": 1.25, "class-1": 1.0, "class-2": 0.7, "juice": 0.2}
    with conn:
        conn.executemany("INSERT INTO prices VALUES (?, ?, ?, ?)",
                         [(week, fruit, grade, int(base[fruit] * factor[grade] * rng.uniform(0.9, 1.1)))
                          for fruit in FRUITS for grade in GRADES])


def main():
    rng = random.Random(1848)
    workdir = tempfile.mkdtemp(prefix="coop-")
    conn = sqlite3.connect(os.path.join(workdir, "coop.db"))
    try:
        conn.executescript(SCHEMA)
        with conn:
            conn.executemany("INSERT INTO growers VALUES (?, ?, ?)",
                             [(n, "Grower %03d" % n, rng.choice((0.015, 0.02, 0.025))) for n in range(1, 401)])
        start = time.monotonic()
        week = dockets = 0
        paid = 0.0
        while time.monotonic() < start + 6:
            week += 1
            export = os.path.join(workdir, "week-%02d.csv" % week)
            weighbridge_export(export, rng, week, 400, 20000)
            publish_prices(conn, rng, week)
            dockets += import_week(conn, export)
            statement = os.path.join(workdir, "payout-%02d.csv" % week)
            with open(statement, "w", newline="") as handle:
                writer = csv.writer(handle)
                for grower_id, name, loads, kilos, payout in conn.execute(PAYOUT_QUERY, (week,)):
                    writer.writerow([grower_id, name, loads, "%.1f" % kilos, "%.2f" % payout])
                    paid += payout
            os.remove(export)
    finally:
        conn.close()
        shutil.rmtree(workdir)
    print("%d weeks, %d dockets, %.2f paid out to growers" % (week, dockets, paid))


if __name__ == "__main__":
    main()
