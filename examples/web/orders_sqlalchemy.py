"""A Flask endpoint that lists orders with their customer's name through
SQLAlchemy: each `order.customer` is a lazy load, one more query per order
(the N+1 query problem). `pydx doctor` reports PYDX-DB001;
orders_sqlalchemy_fixed.py loads the customers with the orders.

    PYDX_PG_URL=postgresql+psycopg://postgres@127.0.0.1/postgres python orders_sqlalchemy.py seed
    PYDX_PG_URL=... gunicorn --workers 2 --chdir examples/web orders_sqlalchemy:app
"""
import os
import sys

from flask import Flask
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

engine = create_engine(os.environ["PYDX_PG_URL"])
app = Flask(__name__)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    total: Mapped[int]
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    customer: Mapped[Customer] = relationship()


@app.get("/orders")
def list_orders():
    with Session(engine) as session:
        rows = []
        for order in session.scalars(select(Order).order_by(Order.id).limit(100)):
            rows.append({"id": order.id, "customer": order.customer.name})
        return {"orders": rows}


def seed():
    """Creates the tables with 100 customers and an order for each."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for n in range(100):
            customer = Customer(name=f"customer {n}")
            session.add_all([customer, Order(total=n, customer=customer)])
        session.commit()


if __name__ == "__main__" and sys.argv[1:] == ["seed"]:
    seed()
