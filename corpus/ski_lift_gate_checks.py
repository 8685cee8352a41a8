# corpus: healthy
# story: a ski resort's access controller runs one reader thread per lift turnstile, each waiting for the next card tap and handing it to a single validator thread through a queue.Queue; the validator checks the card's signature, validity and anti-passback while a reporter thread wakes twice a second to publish lift counts
# run: launch
# forbid: PYDX-GIL001
"""Validate lift-pass taps from the turnstiles and keep per-lift rider counts."""
import hashlib
import hmac
import queue
import random
import threading
import time
from collections import defaultdict, deque

LIFTS = ["Gondola", "North Chair", "Summit T-bar", "Glacier Quad", "Kids Carpet", "East Six", "Ridge Double", "Valley Eight"]
RESORT_KEY = b"resort-signing-key-2024"
PASSBACK_SECONDS = 240  # a card may not ride the same lift twice within four minutes


def issue_passes(rng, count):
    passes = {}
    for number in range(count):
        card = "LP%07d" % (3000000 + number)
        kind = rng.choice(("day", "day", "multi-day", "season"))
        payload = ("%s|%s|%d" % (card, kind, rng.randrange(1, 8))).encode()
        passes[card] = (payload, hmac.new(RESORT_KEY, payload, hashlib.sha256).digest())
    return passes


def turnstile(lift, passes, cards, taps, stop, seed):
    """One reader: blocks until a skier taps (the sleep stands in for the reader's blocking read)."""
    rng = random.Random(seed)
    while not stop.is_set():
        time.sleep(rng.expovariate(35.0))
        card = rng.choice(cards)
        payload, signature = passes[card]
        if rng.random() < 0.002:
            signature = bytes(32)  # a damaged or forged card
        taps.put((lift, card, payload, signature, time.time()))


class Validator:
    def __init__(self, passes):
        self.passes = passes
        self.last_ride = {}
        self.rides = defaultdict(int)
        self.refused = defaultdict(int)
        self.lock = threading.Lock()

    def check(self, lift, card, payload, signature, tapped_at):
        expected = hmac.new(RESORT_KEY, payload, hashlib.sha256).digest()
        if card not in self.passes or not hmac.compare_digest(expected, signature):
            return "bad-signature"
        resort_clock = tapped_at * 60  # the demo compresses a day into minutes
        previous = self.last_ride.get((card, lift))
        if previous is not None and resort_clock - previous < PASSBACK_SECONDS:
            return "passback"
        self.last_ride[card, lift] = resort_clock
        return "ok"

    def run(self, taps):
        while True:
            tap = taps.get()
            if tap is None:
                return
            verdict = self.check(*tap)
            with self.lock:
                if verdict == "ok":
                    self.rides[tap[0]] += 1
                else:
                    self.refused[verdict] += 1


def reporter(validator, board, stop):
    while not stop.wait(0.5):
        with validator.lock:
            snapshot = dict(validator.rides)
        board.append((time.monotonic(), sum(snapshot.values()), max(snapshot.items(), key=lambda kv: kv[1], default=None)))


def main():
    rng = random.Random(7)
    passes = issue_passes(rng, 12000)
    cards = sorted(passes)
    taps = queue.Queue()
    stop = threading.Event()
    validator = Validator(passes)
    board = deque(maxlen=120)
    checker = threading.Thread(target=validator.run, args=(taps,), name="validator")
    readers = [threading.Thread(target=turnstile, args=(lift, passes, cards, taps, stop, n), name="gate-%d" % n)
               for n, lift in enumerate(LIFTS)]
    publisher = threading.Thread(target=reporter, args=(validator, board, stop), name="reporter")
    for thread in [checker, publisher] + readers:
        thread.start()
    time.sleep(6)
    stop.set()
    for thread in readers + [publisher]:
        thread.join()
    taps.put(None)
    checker.join()
    busiest = max(validator.rides.items(), key=lambda kv: kv[1])
    print("%d rides, %d refused (%s), busiest lift %s with %d, %d board updates"
          % (sum(validator.rides.values()), sum(validator.refused.values()),
             ", ".join("%s %d" % kv for kv in sorted(validator.refused.items())), busiest[0], busiest[1], len(board)))


if __name__ == "__main__":
    main()
