# corpus: healthy
# story: a SQLAlchemy job renders a reminder for every open purchase order, paging through orders and loading their lines eagerly with selectinload
# needs: sqlalchemy
# run: launch
import os
import random
import tempfile
import time
from collections import defaultdict

from sqlalchemy import ForeignKey, String, create_engine, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload


class Base(DeclarativeBase):
    pass


class PurchaseOrder(Base):
    __tablename__ = "purchase_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    supplier: Mapped[str] = mapped_column(String(60), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    lines: Mapped[list["OrderLine"]] = relationship(back_populates="order")


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("purchase_orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int]
    unit_cost_cents: Mapped[int]
    order: Mapped[PurchaseOrder] = relationship(back_populates="lines")


def populate(session, rng, n_orders=4000):
    suppliers = [f"Supplier {c}" for c in "ABCDEFGHIJKL"]
    session.execute(insert(PurchaseOrder), [
        {"id": i, "supplier": rng.choice(suppliers), "status": rng.choice(["open", "open", "received", "cancelled"])}
        for i in range(1, n_orders + 1)
    ])
    session.execute(insert(OrderLine), [
        {"order_id": i, "sku": f"SKU{rng.randint(1, 5000):05d}", "quantity": rng.randint(1, 50),
         "unit_cost_cents": rng.randint(50, 20000)}
        for i in range(1, n_orders + 1) for _ in range(rng.randint(1, 8))
    ])
    session.commit()


def open_order_pages(engine, page_size=250):
    last_id = 0
    while True:
        with Session(engine) as session:
            stmt = (
                select(PurchaseOrder)
                .where(PurchaseOrder.status == "open", PurchaseOrder.id > last_id)
                .order_by(PurchaseOrder.id)
                .limit(page_size)
                .options(selectinload(PurchaseOrder.lines))
            )
            orders = session.scalars(stmt).all()
            if not orders:
                return
            yield orders
            last_id = orders[-1].id


def render_reminder(order):
    rows = [f"PO-{order.id:06d} for {order.supplier}: {len(order.lines)} line(s) outstanding"]
    total = 0
    for line in sorted(order.lines, key=lambda l: l.sku):
        cost = line.quantity * line.unit_cost_cents
        total += cost
        rows.append(f"  {line.sku}  x{line.quantity:<3d} @ {line.unit_cost_cents / 100:>8.2f} = {cost / 100:>10.2f}")
    rows.append(f"  total due on delivery: {total / 100:,.2f}")
    return "\n".join(rows), total


def main():
    rng = random.Random(12)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'purchasing.db')}")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            populate(session, rng)

        runs = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            outbox = defaultdict(list)
            committed = defaultdict(int)
            for orders in open_order_pages(engine):
                for order in orders:
                    text, total = render_reminder(order)
                    outbox[order.supplier].append(text)
                    committed[order.supplier] += total
            runs += 1
        engine.dispose()
    print(f"{runs} runs, {sum(map(len, outbox.values()))} reminders per run")
    for supplier, cents in sorted(committed.items()):
        print(f"  {supplier}: {len(outbox[supplier])} orders, {cents / 100:,.2f} outstanding")


if __name__ == "__main__":
    main()
