# corpus: planted
# story: a Django claims API whose audit middleware re-parses, redacts and pretty-prints every JSON response into the audit log
# needs: django, gunicorn
# run: gunicorn --workers 2 claims_audit_django:app
import json
import logging
import logging.handlers
import random
import sys
import tempfile
import threading
import time
import urllib.request

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="claims-desk",
    MIDDLEWARE=[
        "django.middleware.common.CommonMiddleware",
        f"{__name__}.AuditLogMiddleware",
    ],
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import Http404, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils.deprecation import MiddlewareMixin  # noqa: E402

AUDIT_DIR = tempfile.TemporaryDirectory(prefix="claims-audit-")
audit_log = logging.getLogger("claims.audit")
audit_log.setLevel(logging.INFO)
audit_log.addHandler(logging.handlers.RotatingFileHandler(
    AUDIT_DIR.name + "/audit.log", maxBytes=4_000_000, backupCount=1))

SENSITIVE_FIELDS = {"ssn", "date_of_birth", "bank_account", "email", "phone"}


def redact(value):
    if isinstance(value, dict):
        return {k: "***" if k in SENSITIVE_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


class AuditLogMiddleware(MiddlewareMixin):
    def process_request(self, request):
        request.audit_started = time.perf_counter()

    def process_response(self, request, response):
        if response.get("Content-Type", "").startswith("application/json"):
            elapsed_ms = (time.perf_counter() - request.audit_started) * 1000
            body = redact(json.loads(response.content))
            pretty = json.dumps(body, indent=2, sort_keys=True)  # expect: PYDX-WEB001
            audit_log.info("%s %s -> %s in %.1f ms\n%s", request.method, request.path,
                           response.status_code, elapsed_ms, pretty)
        return response


def make_claims(count=3000, seed=7):
    rng = random.Random(seed)
    return [{
        "id": n, "adjuster_id": rng.randrange(20), "status": rng.choice(["open", "review", "paid"]),
        "amount": round(rng.uniform(200, 40000), 2),
        "claimant": {"name": f"claimant {n}", "ssn": f"{rng.randrange(10**9):09d}",
                     "email": f"c{n}@example.org", "phone": f"555-{rng.randrange(10**4):04d}",
                     "date_of_birth": f"19{rng.randrange(40, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(9)}"},
        "items": [{"code": f"L{rng.randrange(900)}", "cost": rng.randrange(50, 5000)} for _ in range(3)],
    } for n in range(count)]


CLAIMS = make_claims()
BY_ID = {claim["id"]: claim for claim in CLAIMS}


def adjuster_queue(request, adjuster_id):
    queue = [c for c in CLAIMS if c["adjuster_id"] == adjuster_id and c["status"] != "paid"]
    return JsonResponse({"adjuster": adjuster_id, "open": len(queue), "claims": queue})


def claim_detail(request, claim_id):
    if claim_id not in BY_ID:
        raise Http404("no such claim")
    return JsonResponse(BY_ID[claim_id])


urlpatterns = [
    path("adjusters/<int:adjuster_id>/queue", adjuster_queue),
    path("claims/<int:claim_id>", claim_detail),
]
app = get_wsgi_application()


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds

    def client(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            if rng.random() < 0.8:
                url = f"{base_url}/adjusters/{rng.randrange(20)}/queue"
            else:
                url = f"{base_url}/claims/{rng.randrange(3000)}"
            with urllib.request.urlopen(url) as reply:
                reply.read()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
