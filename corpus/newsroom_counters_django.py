# corpus: planted
# story: a Django news site counts article views and trending scores in Redis, building a new redis.Redis client inside each view
# needs: django, gunicorn, redis
# run: gunicorn --workers 2 --threads 4 --worker-class gthread newsroom_counters_django:app
import os
import random
import sys
import threading
import time
import urllib.request

import django
import redis
from django.conf import settings

REDIS_PORT = int(os.environ.get("PYDX_REDIS_PORT", "6379"))

settings.configure(ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="newsroom", USE_TZ=True)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import Http404, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views import View  # noqa: E402

_rng = random.Random(9)
SECTIONS = ["politics", "science", "sport", "culture", "business"]
ARTICLES = {
    f"story-{n}": {"title": f"Headline number {n}", "section": _rng.choice(SECTIONS),
                   "words": _rng.randrange(300, 2500), "author": f"reporter {_rng.randrange(30)}"}
    for n in range(800)
}


def counters():
    return redis.Redis(host="127.0.0.1", port=REDIS_PORT, decode_responses=True)  # expect: PYDX-CONN001


class ArticleView(View):
    def get(self, request, slug):
        article = ARTICLES.get(slug)
        if article is None:
            raise Http404(slug)
        store = counters()
        pipe = store.pipeline()
        pipe.incr(f"views:{slug}")
        pipe.zincrby(f"trending:{article['section']}", 1, slug)
        views, _ = pipe.execute()
        return JsonResponse({"slug": slug, **article, "views": views})


class TrendingView(View):
    def get(self, request, section):
        top = counters().zrevrange(f"trending:{section}", 0, 9, withscores=True)
        return JsonResponse({"section": section, "top": [{"slug": s, "score": int(v)} for s, v in top]})


urlpatterns = [
    path("articles/<slug:slug>", ArticleView.as_view()),
    path("sections/<str:section>/trending", TrendingView.as_view()),
]
app = get_wsgi_application()


def generate_load(base_url, seconds, clients=4):
    deadline = time.monotonic() + seconds
    slugs = sorted(ARTICLES)

    def reader(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            if rng.random() < 0.15:
                url = f"{base_url}/sections/{rng.choice(SECTIONS)}/trending"
            else:
                url = f"{base_url}/articles/{slugs[min(int(rng.expovariate(1 / 60)), 799)]}"
            with urllib.request.urlopen(url) as reply:
                reply.read()

    readers = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(clients)]
    for thread in readers:
        thread.start()
    for thread in readers:
        thread.join()


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
