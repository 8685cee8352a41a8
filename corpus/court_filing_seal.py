# corpus: healthy
# story: an asyncio e-filing gateway seals incoming court filings; hashing and compressing each document and writing it to the archive run in a thread pool through loop.run_in_executor, while the coroutines await the court registry's acknowledgement and a watchdog measures the loop's lag
# run: launch
# forbid: PYDX-ASYNC001
# forbid: PYDX-ASYNC002
"""Seal, archive and register court filings as they arrive from the e-filing portal."""
import asyncio
import hashlib
import os
import random
import shutil
import tempfile
import time
import zlib
from collections import deque, namedtuple
from concurrent.futures import ThreadPoolExecutor

Filing = namedtuple("Filing", "docket kind body")
Sealed = namedtuple("Sealed", "docket digest packed size")

KINDS = ["complaint", "motion", "affidavit", "exhibit", "brief", "order"]
PARAGRAPHS = [
    b"The plaintiff respectfully submits that the defendant failed to perform under the agreement. ",
    b"Pursuant to the rules of civil procedure, the undersigned moves the court for relief. ",
    b"Exhibit pages follow, scanned at 300 dpi and attached in the order of reference. ",
    b"I declare under penalty of perjury that the foregoing is true and correct. ",
    b"WHEREFORE, the movant prays that the court grant the relief requested herein. ",
]


def seal(filing):
    """Runs in the pool: hashlib and zlib release the GIL on large buffers."""
    digest = hashlib.sha256(filing.body).hexdigest()
    packed = zlib.compress(filing.body, 6)
    return Sealed(filing.docket, digest, packed, len(filing.body))


def archive(folder, sealed):
    """Runs in the pool: the archive volume is slow, local disk stands in for it."""
    path = os.path.join(folder, "%s-%s.z" % (sealed.docket, sealed.digest[:12]))
    with open(path, "wb") as handle:
        handle.write(sealed.packed)
    return path


class Registry:
    """The court registry's API: an acknowledgement takes a network round trip."""

    def __init__(self, rng):
        self._rng = rng
        self.receipts = 0

    async def acknowledge(self, docket, digest):
        await asyncio.sleep(self._rng.uniform(0.02, 0.06))
        self.receipts += 1
        return "RCPT-%s-%s" % (docket, digest[:8])


async def portal(inbox, rng, deadline):
    number = 0
    while time.monotonic() < deadline:
        number += 1
        pages = rng.randrange(20, 120)
        kind = rng.choice(KINDS)
        body = b"".join(rng.choices(PARAGRAPHS, k=pages * 40))
        if kind == "exhibit":  # scanned pages: photographs do not compress
            body += os.urandom(rng.randrange(100000, 400000))
        await inbox.put(Filing("CV-%05d" % number, kind, body))
        await asyncio.sleep(rng.expovariate(40.0))
    return number


async def clerk(inbox, pool, folder, registry, stats, journal):
    loop = asyncio.get_running_loop()
    while True:
        filing = await inbox.get()
        try:
            sealed = await loop.run_in_executor(pool, seal, filing)
            path = await loop.run_in_executor(pool, archive, folder, sealed)
            receipt = await registry.acknowledge(sealed.docket, sealed.digest)
            stats["bytes"] += sealed.size
            stats["stored"] += len(sealed.packed)
            journal.append("%s %s %s" % (receipt, sealed.digest, os.path.basename(path)))
        finally:
            inbox.task_done()


async def watchdog(lags):
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(0.05)
        lags.append(loop.time() - before - 0.05)


async def main():
    rng = random.Random(1215)
    folder = tempfile.mkdtemp(prefix="filings-")
    inbox = asyncio.Queue(maxsize=32)
    stats = {"bytes": 0, "stored": 0}
    lags = []
    journal = deque(maxlen=1000)  # the registry-receipt journal shown on the clerks' console
    registry = Registry(rng)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seal")
    try:
        clerks = [asyncio.ensure_future(clerk(inbox, pool, folder, registry, stats, journal)) for _ in range(4)]
        dog = asyncio.ensure_future(watchdog(lags))
        received = await portal(inbox, rng, time.monotonic() + 6)
        await inbox.join()
        for task in clerks + [dog]:
            task.cancel()
        await asyncio.gather(*clerks, dog, return_exceptions=True)
    finally:
        pool.shutdown(wait=True)
        shutil.rmtree(folder)
    print("%d filings sealed, %d receipts, %.1f MB in, %.1f MB archived, worst loop lag %.1f ms"
          % (received, registry.receipts, stats["bytes"] / 1e6, stats["stored"] / 1e6, max(lags) * 1000))


if __name__ == "__main__":
    asyncio.run(main())
