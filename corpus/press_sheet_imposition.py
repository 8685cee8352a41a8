# corpus: healthy
# story: a print shop's quoting desk works out how many pieces of each product fit on a press sheet with a recursive guillotine-cut search memoised by functools.lru_cache across all quotes, then prices and files each incoming job
# run: launch
# forbid: PYDX-CACHE001
"""Quote incoming print jobs: pieces per press sheet, sheets needed, paper and press cost."""
import functools
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass

# Sizes in centimetres, bleed included: the guillotine cuts on a 1 cm grid.
PRODUCTS = {
    "business-card": (10, 6),
    "postcard": (16, 11),
    "flyer-a5": (16, 22),
    "flyer-a6": (11, 16),
    "bookmark": (6, 21),
    "dl-leaflet": (11, 22),
}
CUSTOM_SIZES = [(7, 7), (9, 9), (5, 8), (12, 12)]  # die-cut stickers, sized by the customer
SHEETS = {  # press sheet: (width, height, price per sheet in cents)
    "SRA3": (32, 45, 9),
    "SRA2": (45, 64, 17),
    "B2": (50, 70, 21),
}
MAKEREADY_CENTS = 2500
PRESS_CENTS_PER_SHEET = 4


@functools.lru_cache(maxsize=None)
def pieces_per_sheet(width, height, piece_w, piece_h):
    """Most pieces a width x height sheet yields with guillotine cuts (either orientation)."""
    best = max((width // piece_w) * (height // piece_h), (width // piece_h) * (height // piece_w))
    for cut in range(1, width // 2 + 1):
        left = pieces_per_sheet(cut, height, piece_w, piece_h)
        right = pieces_per_sheet(width - cut, height, piece_w, piece_h)
        if left + right > best:
            best = left + right
    for cut in range(1, height // 2 + 1):
        top = pieces_per_sheet(width, cut, piece_w, piece_h)
        bottom = pieces_per_sheet(width, height - cut, piece_w, piece_h)
        if top + bottom > best:
            best = top + bottom
    return best


@dataclass
class Job:
    job_id: str
    customer: str
    product: str
    size: tuple
    quantity: int
    sides: int


@dataclass
class Quote:
    job_id: str
    sheet: str
    per_sheet: int
    sheets: int
    total_cents: int


def price_job(job):
    piece_w, piece_h = job.size
    options = []
    for name, (width, height, paper_cents) in sorted(SHEETS.items()):
        per_sheet = pieces_per_sheet(width, height, piece_w, piece_h)
        sheets = -(-job.quantity // per_sheet) + 20  # spoilage allowance
        cost = MAKEREADY_CENTS * job.sides + sheets * (paper_cents + PRESS_CENTS_PER_SHEET * job.sides)
        options.append((cost, name, per_sheet, sheets))
    cost, name, per_sheet, sheets = min(options)
    return Quote(job.job_id, name, per_sheet, sheets, cost)


def file_quote(spool, job, quote):
    record = {"job": job.job_id, "customer": job.customer, "product": job.product,
              "quantity": job.quantity, "sheet": quote.sheet, "per_sheet": quote.per_sheet,
              "sheets": quote.sheets, "total": "%.2f" % (quote.total_cents / 100.0)}
    spool.write(json.dumps(record, sort_keys=True) + "\n")


def incoming_jobs(rng):
    """The web shop's order feed: a job now and then, each waiting on the customer's upload."""
    number = 0
    while True:
        number += 1
        time.sleep(rng.uniform(0.004, 0.012))
        if rng.random() < 0.01:
            product, size = "sticker", rng.choice(CUSTOM_SIZES)
        else:
            product = rng.choice(sorted(PRODUCTS))
            size = PRODUCTS[product]
        yield Job("PJ-%06d" % number, "cust-%04d" % rng.randrange(3000), product, size,
                  rng.choice((100, 250, 500, 1000, 2500, 5000, 10000)) + rng.randrange(0, 100),
                  rng.choice((1, 2)))


def main():
    rng = random.Random(20)
    workdir = tempfile.mkdtemp(prefix="quotes-")
    start = time.monotonic()
    quoted = 0
    revenue = 0
    try:
        with open(os.path.join(workdir, "quotes.jsonl"), "w") as spool:
            for job in incoming_jobs(rng):
                if time.monotonic() > start + 6:
                    break
                quote = price_job(job)
                file_quote(spool, job, quote)
                quoted += 1
                revenue += quote.total_cents
    finally:
        shutil.rmtree(workdir)
    info = pieces_per_sheet.cache_info()
    print("quoted %d jobs worth %.2f; layout cache %d hits, %d misses"
          % (quoted, revenue / 100.0, info.hits, info.misses))


if __name__ == "__main__":
    main()
