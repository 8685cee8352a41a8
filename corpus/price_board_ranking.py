# corpus: healthy
# story: a price board re-sorts a 200,000-price snapshot every 50 ms for its percentile bands while 8 light feed threads take quote updates from a queue, pausing 10 ms between them
# run: launch
# forbid: PYDX-GIL001
"""Percentile bands over the live price book, refreshed on a 50 ms tick."""
import queue
import random
import threading
import time

BOOK_SIZE = 200000
TICK = 0.05
BANDS = (0.01, 0.1, 0.5, 0.9, 0.99)


class PriceBook:
    def __init__(self, rng):
        self.prices = [round(rng.lognormvariate(3.5, 0.8), 2) for _ in range(BOOK_SIZE)]
        self.updates_applied = 0

    def apply(self, instrument, price):
        self.prices[instrument] = price
        self.updates_applied += 1


def feed_handler(book, updates, stop):
    while not stop.is_set():
        try:
            instrument, price = updates.get(timeout=0.1)
        except queue.Empty:
            continue
        book.apply(instrument, price)
        time.sleep(0.01)


def percentile_bands(prices):
    ranked = sorted(prices)
    last = len(ranked) - 1
    return [ranked[int(last * band)] for band in BANDS]


def main():
    rng = random.Random(31)
    book = PriceBook(rng)
    updates = queue.Queue()
    stop = threading.Event()
    handlers = [threading.Thread(target=feed_handler, args=(book, updates, stop), name="feed-%d" % n)
                for n in range(8)]
    for handler in handlers:
        handler.start()
    start = next_tick = time.monotonic()
    refreshes = 0
    while time.monotonic() < start + 6:
        for _ in range(10):
            instrument = rng.randrange(BOOK_SIZE)
            updates.put((instrument, round(book.prices[instrument] * rng.uniform(0.995, 1.005), 2)))
        bands = percentile_bands(book.prices)
        refreshes += 1
        next_tick = max(next_tick + TICK, time.monotonic())
        time.sleep(max(0.0, next_tick - time.monotonic()))
    stop.set()
    for handler in handlers:
        handler.join()
    print("%d refreshes, %d updates applied, bands %s" % (refreshes, book.updates_applied, bands))


if __name__ == "__main__":
    main()
