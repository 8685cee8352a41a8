# corpus: planted
# story: a Django loyalty-statement job fetches the member for every purchase event with Member.objects.get(pk=...) inside its loop
# needs: django
# run: launch
import os
import random
import shutil
import tempfile
import time
from collections import defaultdict

import django
from django.conf import settings

WORK_DIR = tempfile.mkdtemp(prefix="loyalty-")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(WORK_DIR, "loyalty.db")}},
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.db import connection, models  # noqa: E402

TIER_MULTIPLIER = {"bronze": 1.0, "silver": 1.25, "gold": 1.5, "platinum": 2.0}


class Member(models.Model):
    card_number = models.CharField(max_length=16, unique=True)
    full_name = models.CharField(max_length=120)
    tier = models.CharField(max_length=10)
    opted_out = models.BooleanField(default=False)

    class Meta:
        app_label = "loyalty"


def till_exports(rng, n_members, events_per_store=1500):
    """Each store's end-of-day export: a list of (member id, basket total in cents)."""
    store = 0
    while True:
        store += 1
        yield store, [(rng.randint(1, n_members), rng.randint(150, 25000)) for _ in range(events_per_store)]


class StatementBuilder:
    def __init__(self):
        self.points = defaultdict(int)
        self.names = {}
        self.skipped = 0

    def apply_store(self, events):
        for member_id, basket_cents in events:
            member = Member.objects.get(pk=member_id)  # expect: PYDX-DB002
            if member.opted_out:
                self.skipped += 1
                continue
            self.points[member.card_number] += int(basket_cents / 100 * TIER_MULTIPLIER[member.tier])
            self.names[member.card_number] = member.full_name


def main():
    rng = random.Random(31)
    n_members = 8000
    with connection.schema_editor() as editor:
        editor.create_model(Member)
    Member.objects.bulk_create(
        Member(card_number=f"{4000000000000000 + i}", full_name=f"Member {i}",
               tier=rng.choice(list(TIER_MULTIPLIER)), opted_out=rng.random() < 0.05)
        for i in range(1, n_members + 1)
    )

    builder = StatementBuilder()
    deadline = time.monotonic() + 6
    processed = stores = 0
    for stores, events in till_exports(rng, n_members):
        if time.monotonic() > deadline:
            break
        builder.apply_store(events)
        processed += len(events)
    top = sorted(builder.points.items(), key=lambda kv: -kv[1])[:3]
    print(f"{processed} events from {stores - 1} stores, {len(builder.points)} statements, {builder.skipped} opted out")
    for card, pts in top:
        print(f"  {builder.names[card]} ({card}): {pts} points")
    connection.close()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK_DIR, ignore_errors=True)
