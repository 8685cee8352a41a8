# corpus: planted
# story: a pricing service keeps every quote it computes in an in-process dict so that a later "accept" can find it, and never evicts any
# run: launch
"""In-process pricing service: quote baskets, accept quotes by id."""
import itertools
import random
import time

CATALOGUE = {"SKU-%04d" % n: round(random.Random(n).uniform(2, 400), 2) for n in range(2000)}


class PricingService:
    def __init__(self, discount_tiers):
        self.discount_tiers = discount_tiers
        self._quotes = {}
        self._ids = itertools.count(1)
        self.accepted = 0

    def discount_for(self, subtotal):
        rate = 0.0
        for threshold, tier_rate in self.discount_tiers:
            if subtotal >= threshold:
                rate = tier_rate
        return rate

    def quote(self, customer_id, basket):
        lines = []
        for sku, quantity in basket:
            unit = CATALOGUE[sku]
            lines.append({"sku": sku, "quantity": quantity, "unit_price": unit,
                          "line_total": round(unit * quantity, 2), "note": "list price, %s" % sku})
        subtotal = round(sum(line["line_total"] for line in lines), 2)
        discount = round(subtotal * self.discount_for(subtotal), 2)
        quote = {"quote_id": "Q%08d" % next(self._ids), "customer_id": customer_id, "lines": lines,
                 "subtotal": subtotal, "discount": discount, "total": round(subtotal - discount, 2),
                 "issued_at": time.time(), "valid_for_s": 900}
        self._quotes[quote["quote_id"]] = quote  # expect: PYDX-MEM001
        return quote

    def accept(self, quote_id):
        quote = self._quotes.get(quote_id)
        if quote is None or time.time() > quote["issued_at"] + quote["valid_for_s"]:
            return False
        self.accepted += 1
        return True


def client_requests(rng):
    skus = sorted(CATALOGUE)
    while True:
        basket = [(rng.choice(skus), rng.randint(1, 5)) for _ in range(rng.randint(4, 14))]
        yield "C%05d" % rng.randrange(20000), basket


def main():
    service = PricingService([(100, 0.02), (500, 0.05), (2000, 0.08)])
    rng = random.Random(17)
    requests = client_requests(rng)
    start = time.monotonic()
    tick = start
    served = 0
    while time.monotonic() < start + 6:
        for _ in range(25):
            customer_id, basket = next(requests)
            quote = service.quote(customer_id, basket)
            if rng.random() < 0.15:
                service.accept(quote["quote_id"])
            served += 1
        tick += 0.01
        time.sleep(max(0.0, tick - time.monotonic()))
    print("served %d quotes, %d accepted" % (served, service.accepted))


if __name__ == "__main__":
    main()
