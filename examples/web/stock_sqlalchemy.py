"""A Flask endpoint that restocks items through SQLAlchemy one at a time:
a query per item (PYDX-DB002) and a commit per item (PYDX-DB003).
stock_sqlalchemy_fixed.py reads the items in one query and writes them in
one transaction.

    PYDX_PG_URL=postgresql+psycopg://postgres@127.0.0.1/postgres python stock_sqlalchemy.py seed
    PYDX_PG_URL=... gunicorn --workers 2 --chdir examples/web stock_sqlalchemy:app
"""
import os
import sys

from flask import Flask
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

engine = create_engine(os.environ["PYDX_PG_URL"])
app = Flask(__name__)
ITEM_IDS = list(range(1, 51))


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    stock: Mapped[int]


@app.get("/restock")
def restock():
    with Session(engine) as session:
        for item_id in ITEM_IDS:
            item = session.get(Item, item_id)
            item.stock += 1
            session.commit()
        return {"restocked": len(ITEM_IDS)}


def seed():
    """Creates the items table with 50 items."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Item(id=n, name=f"item {n}", stock=0) for n in ITEM_IDS)
        session.commit()


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
