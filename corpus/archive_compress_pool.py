# corpus: healthy
# story: a nightly archiver compresses generated report pages with lzma in a ProcessPoolExecutor of 2 worker processes
# run: launch --subprocesses
# forbid: PYDX-GIL001
"""Compress the day's report pages into archive members, in worker processes."""
import hashlib
import lzma
import random
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

WORDS = ("revenue margin region quarter forecast customer churn backlog shipment invoice "
         "warehouse supplier contract renewal pipeline variance budget headcount").split()


def render_page(report_id, page):
    rng = random.Random(report_id * 1000 + page)
    rows = ["%-12s %10.2f %10.2f %6.1f%%" % (rng.choice(WORDS), rng.uniform(0, 1e6), rng.uniform(0, 1e6),
                                               rng.uniform(-20, 20)) for _ in range(1500)]
    return ("Report %d page %d\n" % (report_id, page) + "\n".join(rows)).encode()


def compress_report(report_id, pages):
    raw = b"".join(render_page(report_id, page) for page in range(pages))
    packed = lzma.compress(raw, preset=6)
    return report_id, len(raw), len(packed), hashlib.sha256(packed).hexdigest()[:12]


def main():
    start = time.monotonic()
    archived = raw_total = packed_total = 0
    with ProcessPoolExecutor(max_workers=2) as pool:
        next_report = 0
        pending = set()
        while time.monotonic() < start + 6 or pending:
            while len(pending) < 4 and time.monotonic() < start + 6:
                pending.add(pool.submit(compress_report, next_report, 6))
                next_report += 1
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                report_id, raw_size, packed_size, digest = future.result()
                archived += 1
                raw_total += raw_size
                packed_total += packed_size
    print("archived %d reports: %d -> %d bytes (%.1f%%)" % (
        archived, raw_total, packed_total, 100.0 * packed_total / max(1, raw_total)))


if __name__ == "__main__":
    main()
