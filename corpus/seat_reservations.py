# corpus: planted
# story: a Django booking API holds seats through the ticketing database's hold_seat() function, which takes about 60 ms a call; two sync gunicorn workers serve eight concurrent clients
# needs: django, gunicorn, psycopg, postgres
# run: gunicorn --workers 2 seat_reservations:application
import json
import os
import sys
import threading
import time
import urllib.request
import uuid

import django
from django.conf import settings
from django.db import connection
from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": os.environ.get("PYDX_PG_PORT", "5432"),
            "NAME": "postgres",
            "USER": "postgres",
            "CONN_MAX_AGE": 300,
        }
    },
)
django.setup()

SCHEMA = """
CREATE TABLE IF NOT EXISTS seat_holds (
    id bigserial PRIMARY KEY,
    show_id integer NOT NULL,
    seat text NOT NULL,
    token text NOT NULL,
    held_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION hold_seat(p_show integer, p_seat text, p_token text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    -- the box-office bridge confirms each hold with the venue system (about 60 ms)
    PERFORM pg_sleep(0.06);
    INSERT INTO seat_holds (show_id, seat, token) VALUES (p_show, p_seat, p_token)
    RETURNING id INTO new_id;
    RETURN new_id;
END $$;
"""


def create_hold(request, show_id):
    if request.method != "POST":
        return HttpResponseBadRequest("POST a seat")
    seat = json.loads(request.body).get("seat", "")
    if not seat:
        return HttpResponseBadRequest("missing seat")
    token = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute("SELECT hold_seat(%s, %s, %s)", [show_id, seat, token])  # expect: PYDX-WORKER001
        (hold_id,) = cursor.fetchone()
    return JsonResponse({"hold": hold_id, "show": show_id, "seat": seat, "token": token}, status=201)


urlpatterns = [path("shows/<int:show_id>/holds", create_hold)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


def run_clients(base_url, seconds, clients=8):
    with connection.cursor() as cursor:
        cursor.execute(SCHEMA)
    connection.close()
    deadline = time.monotonic() + seconds
    counts = []
    lock = threading.Lock()

    def client(n):
        made = 0
        rows = "ABCDEFGHJK"
        while time.monotonic() < deadline:
            seat = f"{rows[made % 10]}{made % 24 + 1}"
            body = json.dumps({"seat": seat}).encode()
            req = urllib.request.Request(
                f"{base_url}/shows/{100 + n}/holds", data=body,
                headers={"Content-Type": "application/json"}, method="POST",
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                json.load(resp)
            made += 1
        with lock:
            counts.append(made)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(counts)} holds in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    run_clients(sys.argv[2], float(sys.argv[3]))
