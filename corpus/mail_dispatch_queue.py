# corpus: healthy
# story: a notification dispatcher hands rendered e-mails to 6 sender threads through a queue.Queue; each send waits on a (simulated) SMTP relay
# run: launch
"""Dispatch transactional e-mails through a pool of sender threads."""
import queue
import random
import string
import threading
import time
import zlib

TEMPLATES = {
    "order_shipped": string.Template("Hello $name,\n\nyour order $order is on its way.\n"),
    "password_reset": string.Template("Hello $name,\n\nuse code $code to reset your password.\n"),
    "invoice": string.Template("Hello $name,\n\ninvoice $order is attached.\n"),
}


class SmtpRelayStub:
    """Stands in for the relay: a send costs a network round trip and a queueing delay."""

    def __init__(self, seed):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def send(self, recipient, body):
        with self._lock:
            delay = self._rng.uniform(0.02, 0.09)
        time.sleep(delay)
        return "250 OK queued as %08x" % zlib.crc32((recipient + body).encode())


def sender(relay, outbox, results):
    while True:
        message = outbox.get()
        if message is None:
            outbox.task_done()
            return
        recipient, body = message
        for attempt in range(3):
            reply = relay.send(recipient, body)
            if reply.startswith("250"):
                results.append(reply)
                break
            time.sleep(0.1 * (attempt + 1))
        outbox.task_done()


def main():
    rng = random.Random(4)
    relay = SmtpRelayStub(seed=9)
    outbox = queue.Queue(maxsize=200)
    results = []
    workers = [threading.Thread(target=sender, args=(relay, outbox, results), name="smtp-%d" % n)
               for n in range(6)]
    for worker in workers:
        worker.start()
    start = time.monotonic()
    queued = 0
    while time.monotonic() < start + 6:
        kind = rng.choice(sorted(TEMPLATES))
        body = TEMPLATES[kind].substitute(name="customer %d" % rng.randrange(10 ** 5),
                                          order="SO-%06d" % rng.randrange(10 ** 6), code=rng.randrange(10 ** 6))
        outbox.put(("user%d@example.org" % rng.randrange(10 ** 5), body))
        queued += 1
        time.sleep(rng.expovariate(80.0))
    for _ in workers:
        outbox.put(None)
    outbox.join()
    print("queued %d messages, %d accepted by the relay" % (queued, len(results)))


if __name__ == "__main__":
    main()
