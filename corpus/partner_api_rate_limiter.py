# corpus: healthy
# story: a stock-sync job refreshes SKUs from a partner's HTTP API with 6 worker threads, each keeping one keep-alive http.client connection, all sharing a token-bucket rate limiter (80 requests/s) built on threading.Condition; the partner (a local ThreadingHTTPServer here) takes 20-80 ms per answer
# run: launch
# forbid: PYDX-GIL001
"""Refresh stock levels from the partner API without exceeding its request quota."""
import http.client
import json
import queue
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WORKERS = 6
QUOTA_PER_SECOND = 80.0
BURST = 8
SKUS = 480  # six seconds of quota


class PartnerHandler(BaseHTTPRequestHandler):
    """The partner's stock endpoint: each answer waits on its warehouse system."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    rng = random.Random(8)

    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        sku = query["sku"][0]
        time.sleep(self.rng.uniform(0.02, 0.08))
        body = json.dumps({
            "sku": sku,
            "warehouses": [{"code": code, "on_hand": self.rng.randrange(0, 400),
                            "reserved": self.rng.randrange(0, 20)} for code in ("BER", "HAM", "MUC")],
            "updated": time.time(),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class TokenBucket:
    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.ready = threading.Condition()
        self.waited = 0.0

    def acquire(self):
        began = time.monotonic()
        with self.ready:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    break
                self.ready.wait((1.0 - self.tokens) / self.rate)
            self.waited += time.monotonic() - began


def sync_worker(port, jobs, limiter, results, lock):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        while True:
            sku = jobs.get()
            if sku is None:
                return
            limiter.acquire()
            started = time.monotonic()
            connection.request("GET", "/v1/stock?sku=" + sku, headers={"Accept": "application/json"})
            response = connection.getresponse()
            stock = json.loads(response.read())
            available = sum(w["on_hand"] - w["reserved"] for w in stock["warehouses"])
            with lock:
                results[sku] = (available, time.monotonic() - started)
    finally:
        connection.close()


def progress_reporter(results, stop, log):
    while not stop.wait(0.5):
        log.append((time.monotonic(), len(results)))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PartnerHandler)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="partner")
    serving.start()
    port = server.server_address[1]

    jobs = queue.Queue()
    for number in range(SKUS):
        jobs.put("SKU-%06d" % (100000 + number * 37))
    for _ in range(WORKERS):
        jobs.put(None)
    limiter = TokenBucket(QUOTA_PER_SECOND, BURST)
    results, lock, stop, log = {}, threading.Lock(), threading.Event(), []
    reporter = threading.Thread(target=progress_reporter, args=(results, stop, log), name="progress")
    reporter.start()
    started = time.monotonic()
    workers = [threading.Thread(target=sync_worker, args=(port, jobs, limiter, results, lock),
                                name="sync-%d" % n) for n in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    stop.set()
    reporter.join()
    server.shutdown()
    server.server_close()
    serving.join()

    latencies = sorted(latency for _, latency in results.values())
    out_of_stock = Counter(available <= 0 for available, _ in results.values())
    print("synced %d SKUs in %.1f s (%.0f/s, quota %.0f/s); median latency %.0f ms, p95 %.0f ms; "
          "%d out of stock; limiter waits %.1f s in all; %d progress reports"
          % (len(results), elapsed, len(results) / elapsed, QUOTA_PER_SECOND,
             1000 * latencies[len(latencies) // 2], 1000 * latencies[int(len(latencies) * 0.95)],
             out_of_stock[True], limiter.waited, len(log)))


if __name__ == "__main__":
    main()
