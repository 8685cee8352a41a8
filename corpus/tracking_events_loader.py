# corpus: healthy
# story: a SQLAlchemy loader ingests carrier tracking-event batches (JSON lines) with one executemany-style insert and one commit per batch
# needs: sqlalchemy
# run: launch
# forbid: PYDX-DB003
import datetime as dt
import json
import os
import random
import tempfile
import time

from sqlalchemy import DateTime, String, create_engine, func, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

STATUSES = ["label_created", "picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]


class Base(DeclarativeBase):
    pass


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(24), index=True)
    carrier: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime)


def carrier_batches(rng):
    """Endless stream of webhook batches as the carriers deliver them (JSON lines)."""
    clock = dt.datetime(2024, 4, 1, 6, 0)
    while True:
        carrier = rng.choice(["ups", "dhl", "fedex", "royalmail"])
        lines = []
        for _ in range(rng.randint(800, 1500)):
            clock += dt.timedelta(seconds=rng.randint(1, 20))
            lines.append(json.dumps({
                "tn": f"{carrier[:2].upper()}{rng.randint(10**9, 10**10 - 1)}",
                "status": rng.choice(STATUSES),
                "loc": f"Hub {rng.randint(1, 250)}",
                "ts": clock.isoformat(),
            }))
        yield carrier, "\n".join(lines)


def to_rows(carrier, payload):
    rows = []
    for line in payload.splitlines():
        event = json.loads(line)
        rows.append({
            "tracking_number": event["tn"],
            "carrier": carrier,
            "status": event["status"],
            "location": event["loc"],
            "occurred_at": dt.datetime.fromisoformat(event["ts"]),
        })
    return rows


def load_batch(engine, carrier, payload):
    rows = to_rows(carrier, payload)
    with Session(engine) as session:
        session.execute(insert(TrackingEvent), rows)
        session.commit()
    return len(rows)


def main():
    rng = random.Random(5150)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'tracking.db')}")
        Base.metadata.create_all(engine)
        batches = loaded = 0
        deadline = time.monotonic() + 6
        for carrier, payload in carrier_batches(rng):
            if time.monotonic() > deadline:
                break
            loaded += load_batch(engine, carrier, payload)
            batches += 1
        with Session(engine) as session:
            exceptions = session.scalar(
                select(func.count()).select_from(TrackingEvent).where(TrackingEvent.status == "exception"))
        engine.dispose()
    print(f"{batches} batches, {loaded} events loaded, {exceptions} exceptions to chase")


if __name__ == "__main__":
    main()
