# corpus: healthy
# story: a Flask library catalogue under gunicorn reads PostgreSQL through one psycopg_pool.ConnectionPool per worker with indexed lookups
# needs: flask, gunicorn, psycopg, postgres
# run: gunicorn --workers 4 library_catalogue_flask:app
import functools
import os
import random
import sys
import threading
import time
import urllib.request

import psycopg
from flask import Flask, abort, jsonify, request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

DSN = f"host=127.0.0.1 port={os.environ.get('PYDX_PG_PORT', '5432')} dbname=postgres user=postgres"

app = Flask(__name__)


@functools.cache
def db_pool():
    return ConnectionPool(DSN, min_size=1, max_size=2, kwargs={"row_factory": dict_row}, open=True)


@app.get("/books/<isbn>")
def book(isbn):
    with db_pool().connection() as conn:
        row = conn.execute("SELECT isbn, title, author_id, year, copies_free FROM book WHERE isbn = %s",
                           (isbn,)).fetchone()
    if row is None:
        abort(404)
    return jsonify(row)


@app.get("/authors/<int:author_id>/books")
def author_books(author_id):
    with db_pool().connection() as conn:
        rows = conn.execute("SELECT isbn, title, year FROM book WHERE author_id = %s ORDER BY year LIMIT 25",
                            (author_id,)).fetchall()
    return jsonify(author=author_id, books=rows)


@app.get("/search")
def search_titles():
    prefix = request.args.get("q", "").lower()
    if len(prefix) < 3:
        abort(400)
    with db_pool().connection() as conn:
        rows = conn.execute("SELECT isbn, title FROM book WHERE lower(title) LIKE %s ORDER BY lower(title) LIMIT 10",
                            (prefix + "%",)).fetchall()
    return jsonify(query=prefix, hits=rows)


WORDS = "river night garden stone winter glass silent harbour letters orchard north paper".split()


def load_fixtures(books=20000):
    rng = random.Random(4)
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS book")
        conn.execute("CREATE TABLE book (isbn text PRIMARY KEY, title text NOT NULL, author_id int NOT NULL,"
                     " year int NOT NULL, copies_free int NOT NULL)")
        with conn.cursor().copy("COPY book FROM STDIN") as copy:
            for n in range(books):
                title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}"
                copy.write_row((f"978{n:010d}", title, rng.randrange(1, 2000), rng.randrange(1900, 2024), rng.randrange(4)))
        conn.execute("CREATE INDEX book_author ON book (author_id, year)")
        conn.execute("CREATE INDEX book_title ON book (lower(title) text_pattern_ops)")
        conn.execute("ANALYZE book")


def generate_load(base_url, seconds, clients=3):
    load_fixtures()
    deadline = time.monotonic() + seconds

    def patron(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            pick = rng.random()
            if pick < 0.5:
                url = f"{base_url}/books/978{rng.randrange(20000):010d}"
            elif pick < 0.8:
                url = f"{base_url}/authors/{rng.randrange(1, 2000)}/books"
            else:
                url = f"{base_url}/search?q={rng.choice(WORDS)}%20{rng.choice(WORDS)[:2]}"
            with urllib.request.urlopen(url) as reply:
                reply.read()

    patrons = [threading.Thread(target=patron, args=(n,)) for n in range(clients)]
    for thread in patrons:
        thread.start()
    for thread in patrons:
        thread.join()


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
