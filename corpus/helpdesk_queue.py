# corpus: planted
# story: a FastAPI helpdesk API lists an agent's 25 most recently updated open tickets with SQLAlchemy from a 1.2-million-row tickets table on PostgreSQL; no index covers assignee_id, so PostgreSQL reads the whole table for every request
# needs: fastapi, uvicorn, sqlalchemy, psycopg, httpx, postgres
# run: uvicorn helpdesk_queue:app
import os
import random
import sys
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
from fastapi import Depends, FastAPI
from sqlalchemy import String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, Session, mapped_column

engine = create_engine(
    f"postgresql+psycopg://postgres@127.0.0.1:{os.environ.get('PYDX_PG_PORT', '5432')}/postgres",
    pool_size=8,
)
AGENTS = 400


class Base(MappedAsDataclass, DeclarativeBase):
    pass


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(primary_key=True, init=False)
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12))
    priority: Mapped[int]
    assignee_id: Mapped[int]
    updated_at: Mapped[datetime]


def seed_tickets():
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        if conn.scalar(select(Ticket.id).limit(1)) is None:
            conn.execute(text("""
                INSERT INTO tickets (subject, status, priority, assignee_id, updated_at)
                SELECT 'Customer issue #' || g,
                       (ARRAY['open', 'pending', 'solved', 'solved', 'closed'])[1 + (g / :agents) % 5],
                       1 + g % 4, g % :agents, now() - make_interval(mins => g % 200000)
                FROM generate_series(1, 1200000) AS g"""), {"agents": AGENTS})
            conn.execute(text("ANALYZE tickets"))


@asynccontextmanager
async def lifespan(app):
    seed_tickets()
    yield
    engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_session():
    with Session(engine) as session:
        yield session


@app.get("/agents/{agent_id}/queue")
def agent_queue(agent_id: int, session: Session = Depends(get_session)):
    query = (
        select(Ticket)
        .where(Ticket.assignee_id == agent_id, Ticket.status == "open")
        .order_by(Ticket.updated_at.desc())
        .limit(25)
    )
    tickets = session.scalars(query).all()  # expect: PYDX-DB004
    return {
        "agent": agent_id,
        "tickets": [
            {"id": t.id, "subject": t.subject, "priority": t.priority, "updated_at": t.updated_at.isoformat()}
            for t in tickets
        ],
    }


def load(base_url, seconds, agents_online=6):
    deadline = time.monotonic() + seconds
    refreshes = []

    def agent_screen(seed):
        rng = random.Random(seed)
        agent_id = rng.randrange(AGENTS)
        with httpx.Client(base_url=base_url, timeout=60) as client:
            n = 0
            while time.monotonic() < deadline:
                client.get(f"/agents/{agent_id}/queue").raise_for_status()
                n += 1
                if rng.random() < 0.3:
                    agent_id = rng.randrange(AGENTS)
        refreshes.append(n)

    threads = [threading.Thread(target=agent_screen, args=(s,)) for s in range(agents_online)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(refreshes)} queue refreshes in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    load(sys.argv[2], float(sys.argv[3]))
