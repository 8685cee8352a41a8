"""slow_query.py fixed: an index on `lower(email)` lets PostgreSQL find the
user without reading the whole table.

    PYDX_PG_URL=postgresql+psycopg://postgres@127.0.0.1/postgres python slow_query_fixed.py seed
    PYDX_PG_URL=... gunicorn --workers 2 --chdir examples/web slow_query_fixed:app
"""
import os
import sys

from flask import Flask, request
from sqlalchemy import Index, String, create_engine, func, select, text
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
    __table_args__ = (Index("users_email_lower", func.lower(email)),)


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
