"""A Flask endpoint that finds a user by email, ignoring case, through
SQLAlchemy. Nothing indexes `lower(email)`, so PostgreSQL reads all million
rows for every request and the request waits on that one query
(PYDX-DB004). slow_query_fixed.py is the same app with an index on
`lower(email)`.

    PYDX_PG_URL=postgresql+psycopg://postgres@127.0.0.1/postgres python slow_query.py seed
    PYDX_PG_URL=... gunicorn --workers 2 --chdir examples/web slow_query:app
"""
import os
import sys

from flask import Flask, request
from sqlalchemy import String, create_engine, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

engine = create_engine(os.environ["PYDX_PG_URL"])
app = Flask(__name__)
USERS = 1_000_000


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(50))


@app.get("/users")
def find_user():
    email = request.args["email"]
    with Session(engine) as session:
        user = session.scalars(select(User).where(func.lower(User.email) == email.lower())).one()
        return {"id": user.id, "name": user.name}


def seed():
    """Creates the users table with a million users."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, name) "
                "SELECT n, 'User' || n || '@example.com', 'user ' || n FROM generate_series(1, :users) AS n"
            ),
            {"users": USERS},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE users"))


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
