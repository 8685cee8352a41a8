# corpus: healthy
# story: an ingest worker drops the redeliveries of an at-least-once event stream with a Bloom filter sized for a day of event ids (each id hashed once with blake2b, double hashing for the probe positions), confirms hits against a window of recent ids, and writes accepted events to gzip batch files
# run: launch
# forbid: PYDX-CACHE001
# forbid: PYDX-CPU001
"""Ingest an at-least-once event stream into compressed batch files, dropping redeliveries."""
import gzip
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections import Counter, deque

EXPECTED_IDS = 2000000  # a day of events
FALSE_POSITIVES = 0.001
RECENT_WINDOW = 50000  # redeliveries arrive within minutes: this many ids back is plenty
BATCH_SIZE = 4000
EVENT_TYPES = ["page_view", "page_view", "page_view", "add_to_cart", "checkout", "search", "login"]


def filter_shape(expected, false_positives):
    bits = int(-expected * math.log(false_positives) / math.log(2) ** 2)
    return bits, max(1, round(bits / expected * math.log(2)))


def probe_positions(event_id, bits, hashes):
    """Kirsch-Mitzenmacher double hashing: two 64-bit halves of one digest give every probe."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=16).digest()
    first = int.from_bytes(digest[:8], "little")
    step = int.from_bytes(digest[8:], "little") | 1
    return [(first + n * step) % bits for n in range(hashes)]


class BloomFilter:
    def __init__(self, expected, false_positives):
        self.bits, self.hashes = filter_shape(expected, false_positives)
        self.array = bytearray((self.bits + 7) // 8)
        self.added = 0

    def add(self, event_id):
        """Set the id's bits; True when they were all set already (the id was probably seen)."""
        present = True
        for position in probe_positions(event_id, self.bits, self.hashes):
            byte, mask = position >> 3, 1 << (position & 7)
            if not self.array[byte] & mask:
                present = False
                self.array[byte] |= mask
        self.added += not present
        return present


class RecentIds:
    """Exact membership for the last RECENT_WINDOW accepted ids."""

    def __init__(self, size):
        self.order = deque()
        self.members = set()
        self.size = size

    def __contains__(self, event_id):
        return event_id in self.members

    def add(self, event_id):
        self.order.append(event_id)
        self.members.add(event_id)
        if len(self.order) > self.size:
            self.members.discard(self.order.popleft())


def event_stream(rng):
    """The broker's deliveries: JSON messages, about 2% of them redelivered within minutes."""
    recent = deque(maxlen=5000)
    clock = 1718000000.0
    while True:
        if recent and rng.random() < 0.02:
            yield rng.choice(recent)
            continue
        clock += rng.expovariate(400.0)
        message = json.dumps({
            "id": "evt-%016x" % rng.getrandbits(64),
            "type": rng.choice(EVENT_TYPES),
            "account": "acct-%05d" % rng.randrange(40000),
            "ts": round(clock, 3),
            "path": "/p/%d" % rng.randrange(9000),
        })
        recent.append(message)
        yield message


class BatchWriter:
    def __init__(self, folder):
        self.folder = folder
        self.pending = []
        self.files = 0
        self.bytes = 0

    def append(self, message):
        self.pending.append(message)
        if len(self.pending) >= BATCH_SIZE:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        self.files += 1
        path = os.path.join(self.folder, "batch-%05d.jsonl.gz" % self.files)
        with gzip.open(path, "wb", compresslevel=6) as handle:
            handle.write(("\n".join(self.pending) + "\n").encode())
        self.bytes += os.path.getsize(path)
        self.pending = []


def main():
    rng = random.Random(404)
    folder = tempfile.mkdtemp(prefix="ingest-")
    seen = BloomFilter(EXPECTED_IDS, FALSE_POSITIVES)
    recent = RecentIds(RECENT_WINDOW)
    writer = BatchWriter(folder)
    outcome = Counter()
    by_type = Counter()
    start = time.monotonic()
    try:
        for message in event_stream(rng):
            if time.monotonic() > start + 6:
                break
            event = json.loads(message)
            event_id = event["id"]
            if seen.add(event_id):
                if event_id in recent:
                    outcome["redelivery dropped"] += 1
                    continue
                outcome["bloom false positive"] += 1
            recent.add(event_id)
            by_type[event["type"]] += 1
            writer.append(message)
            outcome["accepted"] += 1
        writer.flush()
    finally:
        shutil.rmtree(folder)
    print("%s; %d batch files, %.1f MB; filter %d bits, %d hashes, %d ids; %s"
          % (dict(outcome), writer.files, writer.bytes / 1e6, seen.bits, seen.hashes, seen.added,
             by_type.most_common(3)))


if __name__ == "__main__":
    main()
