# corpus: planted
# story: a batch job reconciles a supplier price feed against the catalog by calling session.get for every product id in the feed
# needs: sqlalchemy
# run: launch
import os
import random
import tempfile
import time
from dataclasses import dataclass

from sqlalchemy import String, create_engine, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    list_price_cents: Mapped[int]
    min_margin_pct: Mapped[int]


@dataclass
class FeedLine:
    product_id: int
    cost_cents: int


@dataclass
class Discrepancy:
    sku: str
    cost_cents: int
    list_price_cents: int
    margin_pct: float


def read_feed(rng, n_products, batch_size=500):
    """Yields the supplier feed in batches, as the supplier's export sends it."""
    while True:
        yield [FeedLine(rng.randint(1, n_products), rng.randint(300, 15000)) for _ in range(batch_size)]


def reconcile_batch(engine, batch):
    problems = []
    with Session(engine) as session:
        for line in batch:
            product = session.get(Product, line.product_id)  # expect: PYDX-DB002
            if product is None:
                continue
            margin = 100.0 * (product.list_price_cents - line.cost_cents) / product.list_price_cents
            if margin < product.min_margin_pct:
                problems.append(Discrepancy(product.sku, line.cost_cents, product.list_price_cents, margin))
    return problems


def main():
    rng = random.Random(99)
    n_products = 10000
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{os.path.join(tmp, 'catalog.db')}")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.execute(insert(Product), [
                {"id": i, "sku": f"SKU{i:06d}", "title": f"Product {i}",
                 "list_price_cents": rng.randint(500, 25000), "min_margin_pct": rng.choice([10, 15, 20, 30])}
                for i in range(1, n_products + 1)
            ])
            session.commit()

        flagged, checked = [], 0
        deadline = time.monotonic() + 6
        for batch in read_feed(rng, n_products):
            if time.monotonic() > deadline:
                break
            flagged.extend(reconcile_batch(engine, batch))
            checked += len(batch)
        engine.dispose()
    worst = sorted(flagged, key=lambda d: d.margin_pct)[:3]
    print(f"checked {checked} feed lines, {len(flagged)} below minimum margin")
    for d in worst:
        print(f"  {d.sku}: cost {d.cost_cents} vs list {d.list_price_cents} ({d.margin_pct:.1f}%)")


if __name__ == "__main__":
    main()
