# corpus: planted
# story: a generator pipeline reads a supplier's product feed, pulls keywords out of each description with a hand-written character-by-character tokenizer and counts them per category
# run: launch
"""Keyword statistics per category from a tab-separated supplier feed."""
import collections
import os
import random
import tempfile
import time

STOPWORDS = frozenset("a an and the for with of to in on by is it our your this that from".split())
WORDS = ("stainless steel ergonomic wireless compact durable waterproof rechargeable organic cotton "
         "leather premium lightweight adjustable foldable portable ceramic bamboo vintage classic "
         "modern kitchen garden office outdoor travel kids pet bluetooth usb-c led solar").split()
CATEGORIES = ["home", "garden", "electronics", "fashion", "toys", "sports", "office"]


def write_feed(path, rng, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for n in range(rows):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60)))
            handle.write("SKU%06d\t%s\t%.2f\t%s: %s, for the %s!\n" % (
                n, rng.choice(CATEGORIES), rng.uniform(1, 400), text.capitalize(), text[:40], rng.choice(WORDS)))


def read_rows(path):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n").split("\t")


def parse_products(rows):
    for sku, category, price, description in rows:
        yield {"sku": sku, "category": category, "price": float(price), "description": description}


def keywords(text):
    found = []
    word = ""
    for ch in text:
        if ch.isalnum() or ch == "-":
            word += ch.lower()  # expect: PYDX-CPU002
        elif word:
            if word not in STOPWORDS and len(word) > 2:
                found.append(word)
            word = ""
    if word and word not in STOPWORDS:
        found.append(word)
    return found


def tag_products(products):
    for product in products:
        product["keywords"] = keywords(product["description"])
        yield product


def count_keywords(products, counters):
    seen = 0
    for product in products:
        counters[product["category"]].update(product["keywords"])
        seen += 1
    return seen


def main():
    workdir = tempfile.mkdtemp(prefix="feed-")
    path = os.path.join(workdir, "supplier_feed.tsv")
    write_feed(path, random.Random(5), rows=3000)
    counters = collections.defaultdict(collections.Counter)
    start = time.monotonic()
    imports = products = 0
    while time.monotonic() < start + 6:
        products += count_keywords(tag_products(parse_products(read_rows(path))), counters)
        imports += 1
    top = {category: counter.most_common(2) for category, counter in sorted(counters.items())}
    print("%d feed imports, %d products; top keywords: %s" % (imports, products, top["garden"]))
    os.remove(path)
    os.rmdir(workdir)


if __name__ == "__main__":
    main()
