# corpus: healthy
# story: a Django helpdesk job writes escalation notes (with the comment thread) for open tickets past SLA, loading tickets with select_related and their comments with prefetch_related
# needs: django
# run: launch
import datetime as dt
import os
import random
import shutil
import tempfile
import time
from collections import Counter

import django
from django.conf import settings

TMP = tempfile.mkdtemp(prefix="helpdesk-")
settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(TMP, "helpdesk.db")}},
    INSTALLED_APPS=[],
    USE_TZ=False,
)
django.setup()

from django.db import connection, models  # noqa: E402

PHRASES = ["Still seeing the error after the update.", "Could you attach the logs?", "Refund requested.",
           "Escalated to tier 2.", "Customer confirmed the workaround.", "Any news on this?"]


class Project(models.Model):
    name = models.CharField(max_length=60)
    sla_hours = models.IntegerField()

    class Meta:
        app_label = "helpdesk"


class Agent(models.Model):
    name = models.CharField(max_length=60)
    team = models.CharField(max_length=20)

    class Meta:
        app_label = "helpdesk"


class Ticket(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE)
    assignee = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True)
    subject = models.CharField(max_length=120)
    opened_at = models.DateTimeField()
    is_open = models.BooleanField(default=True)

    class Meta:
        app_label = "helpdesk"


class Comment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    by_customer = models.BooleanField()
    body = models.TextField()
    posted_at = models.DateTimeField()

    class Meta:
        app_label = "helpdesk"


def seed(rng, now):
    with connection.schema_editor() as editor:
        for model in (Project, Agent, Ticket, Comment):
            editor.create_model(model)
    projects = Project.objects.bulk_create(Project(name=f"Project {i}", sla_hours=rng.choice([4, 8, 24, 72])) for i in range(20))
    agents = Agent.objects.bulk_create(Agent(name=f"Agent {i}", team=rng.choice(["tier1", "tier2", "billing"])) for i in range(60))
    tickets = Ticket.objects.bulk_create(
        Ticket(project=rng.choice(projects), assignee=rng.choice(agents), subject=f"Issue #{i}",
               opened_at=now - dt.timedelta(hours=rng.uniform(0, 200)), is_open=rng.random() < 0.6)
        for i in range(3000)
    )
    Comment.objects.bulk_create(
        Comment(ticket=t, by_customer=rng.random() < 0.5, body=rng.choice(PHRASES), posted_at=t.opened_at + dt.timedelta(hours=rng.uniform(0, 48)))
        for t in tickets for _ in range(rng.randint(0, 5))
    )


def escalation_note(ticket, waited):
    thread = "\n".join(
        f"  [{c.posted_at:%d %b %H:%M}] {'customer' if c.by_customer else 'agent'}: {c.body}"
        for c in sorted(ticket.comments.all(), key=lambda c: c.posted_at)
    )
    owner = ticket.assignee.name if ticket.assignee else "unassigned"
    return f"{ticket.subject} ({ticket.project.name}, owner {owner}) waited {waited:.1f}h\n{thread}"


def sla_breaches(now):
    tickets = (
        Ticket.objects.filter(is_open=True)
        .select_related("project", "assignee")
        .prefetch_related("comments")
        .order_by("opened_at")
    )
    breaches = []
    for ticket in tickets:
        agent_replies = [c.posted_at for c in ticket.comments.all() if not c.by_customer]
        first_reply = min(agent_replies) if agent_replies else now
        waited = (first_reply - ticket.opened_at).total_seconds() / 3600
        if waited > ticket.project.sla_hours:
            team = ticket.assignee.team if ticket.assignee else "-"
            breaches.append((team, escalation_note(ticket, waited)))
    return breaches


def main():
    rng = random.Random(23)
    now = dt.datetime(2024, 5, 20, 9, 0)
    seed(rng, now)
    runs = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        breaches = sla_breaches(now)
        runs += 1
    per_team = Counter(team for team, _ in breaches)
    print(f"{runs} report runs, {len(breaches)} tickets past SLA: {dict(sorted(per_team.items()))}")
    connection.close()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
