# corpus: planted
# story: a Django map-tile server keeps the city's 20,000 pre-rendered PNG tiles (about 140 MB) in a dict filled at import; gunicorn runs 3 workers without --preload, so each worker holds its own copy of the bundle
# needs: django, gunicorn
# run: gunicorn --workers 3 map_tiles:application
import hashlib
import random
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

import django
from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.urls import path

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
)
django.setup()

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZOOMS = {15: (17_600, 10_700), 16: (35_200, 21_400)}  # zoom -> top-left tile of the city
SPAN = 100  # tiles per side at each zoom


def load_tile_bundle(seed=2024):
    """Reads every tile of the bundle into memory: {(z, x, y): (png bytes, etag)}."""
    rng = random.Random(seed)
    tiles = {}
    for z, (x0, y0) in ZOOMS.items():
        for x in range(x0, x0 + SPAN):
            for y in range(y0, y0 + SPAN):
                header = struct.pack(">I4sIIBBBBB", 13, b"IHDR", 256, 256, 8, 6, 0, 0, 0)
                body = PNG_MAGIC + header + rng.randbytes(rng.randint(4_000, 10_500))
                tiles[(z, x, y)] = (body, f'"{zlib.crc32(body):08x}"')
    return tiles


TILES = load_tile_bundle()  # expect: PYDX-WORKER003


def tile(request, z, x, y):
    try:
        body, etag = TILES[(z, x, y)]
    except KeyError:
        raise Http404("no such tile")
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified()
    response = HttpResponse(body, content_type="image/png")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [path("tiles/<int:z>/<int:x>/<int:y>.png", tile)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


def viewport_requests(seed):
    """Tiles a map client fetches as a user pans around the city."""
    rng = random.Random(seed)
    while True:
        z = rng.choice(list(ZOOMS))
        x0, y0 = ZOOMS[z]
        cx, cy = rng.randrange(x0, x0 + SPAN - 3), rng.randrange(y0, y0 + SPAN - 3)
        for dx in range(3):
            for dy in range(3):
                yield f"/tiles/{z}/{cx + dx}/{cy + dy}.png"


def pan_around(base_url, seconds, users=4):
    stop = time.monotonic() + seconds
    fetched = {}

    def user(n):
        digest = hashlib.blake2b()
        count = 0
        for url in viewport_requests(n):
            if time.monotonic() > stop:
                break
            with urllib.request.urlopen(base_url + url, timeout=30) as resp:
                digest.update(resp.read())
            count += 1
            time.sleep(0.01)
        fetched[n] = count

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(fetched.values())} tiles in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    pan_around(sys.argv[2], float(sys.argv[3]))
