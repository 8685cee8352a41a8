# corpus: planted
# story: a SQLAlchemy bank-statement importer adds each parsed CSV row to the session and commits it on its own before reading the next
# needs: sqlalchemy
# run: launch
import csv
import datetime as dt
import io
import os
import random
import tempfile
import time
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Numeric, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    iban: Mapped[str] = mapped_column(String(34), unique=True)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    booked_on: Mapped[dt.date] = mapped_column(Date)
    counterparty: Mapped[str] = mapped_column(String(80))
    reference: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))


def statement_csv(rng, day, rows=20):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "counterparty", "reference", "amount"])
    for n in range(rows):
        writer.writerow([day.isoformat(), f"Vendor {rng.randint(1, 300)}", f"REF-{day:%Y%m%d}-{n:05d}",
                         f"{rng.uniform(-2500, 4000):.2f}"])
    return out.getvalue()


def import_statement(engine, account_id, text):
    imported = 0
    with Session(engine) as session:
        for row in csv.DictReader(io.StringIO(text)):
            session.add(LedgerEntry(
                account_id=account_id,
                booked_on=dt.date.fromisoformat(row["date"]),
                counterparty=row["counterparty"],
                reference=row["reference"],
                amount=Decimal(row["amount"]),
            ))
            session.commit()  # expect: PYDX-DB003
            imported += 1
    return imported


def main():
    rng = random.Random(8)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'ledger.db')}")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(Account(id=1, iban="GB33BUKB20201555555555"))
            session.commit()

        day = dt.date(2024, 1, 1)
        total_rows = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            total_rows += import_statement(engine, 1, statement_csv(rng, day))
            day += dt.timedelta(days=1)
        with Session(engine) as session:
            balance = session.scalar(select(func.sum(LedgerEntry.amount)))
        engine.dispose()
    print(f"imported {total_rows} entries up to {day - dt.timedelta(days=1)}, balance {balance}")


if __name__ == "__main__":
    main()
