# corpus: planted
# story: a nightly overdue-invoice report pages through invoices with SQLAlchemy and reads each invoice's customer through the lazy many-to-one relationship
# needs: sqlalchemy
# run: launch
import datetime as dt
import os
import random
import tempfile
import time

from sqlalchemy import Date, ForeignKey, Numeric, String, create_engine, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120))
    region: Mapped[str] = mapped_column(String(20))


class Invoice(Base):
    __tablename__ = "invoices"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    due_date: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[float] = mapped_column(Numeric(10, 2))
    customer: Mapped[Customer] = relationship()


def seed(engine, rng, n_customers=4000, n_invoices=12000):
    regions = ["north", "south", "east", "west"]
    today = dt.date(2024, 6, 1)
    with Session(engine) as session:
        session.execute(insert(Customer), [
            {"id": i, "name": f"Customer {i}", "email": f"ap{i}@example.org", "region": rng.choice(regions)}
            for i in range(1, n_customers + 1)
        ])
        session.execute(insert(Invoice), [
            {"customer_id": rng.randint(1, n_customers),
             "due_date": today - dt.timedelta(days=rng.randint(-30, 120)),
             "amount": round(rng.uniform(50, 9000), 2)}
            for _ in range(n_invoices)
        ])
        session.commit()


def overdue_page(engine, as_of, page, page_size=400):
    stmt = (
        select(Invoice)
        .where(Invoice.due_date < as_of)
        .order_by(Invoice.id)
        .limit(page_size)
        .offset(page * page_size)
    )
    lines = []
    with Session(engine) as session:
        for invoice in session.scalars(stmt):
            customer = invoice.customer  # expect: PYDX-DB001
            days_late = (as_of - invoice.due_date).days
            lines.append((customer.region, customer.email, invoice.id, days_late, float(invoice.amount)))
    return lines


def main():
    rng = random.Random(2024)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'billing.db')}")
        Base.metadata.create_all(engine)
        seed(engine, rng)
        as_of = dt.date(2024, 6, 1)
        totals, reminders, page = {}, 0, 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            lines = overdue_page(engine, as_of, page)
            if not lines:
                page = 0
                continue
            for region, email, invoice_id, days_late, amount in lines:
                totals[region] = totals.get(region, 0.0) + amount
                reminders += days_late > 30
            page += 1
        engine.dispose()
    print("reminders to send:", reminders)
    print({region: round(total, 2) for region, total in sorted(totals.items())})


if __name__ == "__main__":
    main()
