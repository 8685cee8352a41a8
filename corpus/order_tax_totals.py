# corpus: planted
# story: a checkout batch job works out the sales-tax rate for every order from a table of jurisdiction rules, although orders only ever have a few dozen region/category pairs
# run: launch
"""Invoice totals for a day's orders, with tax from jurisdiction rules."""
import fnmatch
import random
import time
from decimal import Decimal, ROUND_HALF_UP

STATES = ["US-CA", "US-NY", "US-TX", "US-WA", "US-OR", "CA-ON", "CA-QC", "CA-BC"]
REGIONS = ["%s-%03d" % (state, city) for state in STATES for city in (4, 17, 92)]
CATEGORIES = ["food.grocery", "food.prepared", "apparel.kids", "apparel.adult",
              "books.print", "books.ebook", "electronics.audio", "electronics.computer"]
CENT = Decimal("0.01")


def build_rules(rng):
    """Rules as the tax provider ships them: country, state and city layers, with overrides."""
    rules = []
    for state in STATES:
        country = state.split("-")[0]
        rules.append((country, "*", "%.4f" % rng.uniform(0.0, 0.05), 0, "add"))
        rules.append((state, "*", "%.4f" % rng.uniform(0.02, 0.07), 1, "add"))
        for city in range(150):
            for pattern in rng.sample(["food.*", "apparel.*", "books.*", "electronics.*", "*.kids", "*"], 2):
                rules.append(("%s-%03d" % (state, city), pattern, "%.4f" % rng.uniform(0.0, 0.015), 2, "add"))
        rules.append((state, "food.grocery", "0.0000", 3, "replace"))
        rules.append((state, "books.*", "%.4f" % rng.uniform(0.0, 0.04), 3, "replace"))
    return rules


RULES = build_rules(random.Random(8))


def tax_rate(region, category):  # expect: PYDX-CACHE001
    country, state, _city = region.split("-")
    scopes = (country, country + "-" + state, region)
    applicable = []
    for scope, pattern, rate, priority, mode in RULES:
        if scope in scopes and fnmatch.fnmatchcase(category, pattern):
            applicable.append((priority, mode, Decimal(rate)))
    applicable.sort(key=lambda rule: rule[0])
    total = Decimal(0)
    for priority, mode, rate in applicable:
        total = rate if mode == "replace" else total + rate
    return total.quantize(Decimal("0.0001"))


def make_orders(rng, count):
    for number in range(count):
        lines = [(rng.choice(CATEGORIES), Decimal(rng.randint(99, 25000)) / 100, rng.randint(1, 4))
                 for _ in range(rng.randint(1, 5))]
        yield {"id": "SO-%06d" % number, "region": rng.choice(REGIONS), "lines": lines}


def invoice_total(order):
    net = tax = Decimal(0)
    for category, price, quantity in order["lines"]:
        amount = price * quantity
        net += amount
        tax += (amount * tax_rate(order["region"], category)).quantize(CENT, ROUND_HALF_UP)
    return net, tax


def main():
    rng = random.Random(21)
    start = time.monotonic()
    invoiced = 0
    revenue = collected = Decimal(0)
    for order in make_orders(rng, 10 ** 9):
        if time.monotonic() > start + 6:
            break
        net, tax = invoice_total(order)
        revenue += net
        collected += tax
        invoiced += 1
    print("invoiced %d orders: net %s, tax %s" % (invoiced, revenue, collected))


if __name__ == "__main__":
    main()
