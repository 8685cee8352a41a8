# corpus: planted
# story: a log analyser runs one threading.Thread subclass per access-log shard, each parsing lines and aggregating per-endpoint stats in pure Python
# run: launch
"""Per-endpoint latency and status report over rotated access-log shards."""
import os
import random
import tempfile
import threading
import time

METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
ENDPOINTS = ["/api/orders", "/api/orders/{id}", "/api/customers/{id}", "/api/cart",
             "/api/search", "/static/app.js", "/health", "/api/invoices/{id}/pdf"]


def write_shard(path, seed, lines):
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for n in range(lines):
            endpoint = rng.choice(ENDPOINTS).replace("{id}", str(rng.randint(1, 90000)))
            handle.write('10.0.%d.%d - - [12/Mar/2024:10:%02d:%02d +0000] "%s %s?page=%d HTTP/1.1" %d %d "-" "curl/8.5" rt=%.3f\n' % (
                rng.randint(0, 255), rng.randint(1, 254), n // 60 % 60, n % 60, rng.choice(METHODS),
                endpoint, rng.randint(1, 9), rng.choice([200, 200, 200, 201, 304, 404, 500]),
                rng.randint(200, 90000), rng.expovariate(12.0)))


class ShardAnalyser(threading.Thread):
    def __init__(self, path, deadline):
        super().__init__(name="shard-" + os.path.basename(path))
        self.path = path
        self.deadline = deadline
        self.endpoints = {}
        self.lines_seen = 0

    @staticmethod
    def route_of(path):
        parts = path.split("?", 1)[0].strip("/").split("/")
        return "/" + "/".join("{id}" if part.isdigit() else part for part in parts)

    def parse(self, line):
        head, request, tail = line.split('"', 2)
        method, target, _protocol = request.split(" ")
        fields = tail.split()
        return {"client": head.split(" ", 1)[0], "method": method, "route": self.route_of(target),
                "status": int(fields[0]), "bytes": int(fields[1]),
                "seconds": float(fields[-1].partition("=")[2])}

    def record(self, entry):
        key = entry["method"] + " " + entry["route"]
        stats = self.endpoints.get(key)
        if stats is None:
            stats = self.endpoints[key] = {"count": 0, "errors": 0, "bytes": 0, "slowest": 0.0}
        stats["count"] += 1
        stats["bytes"] += entry["bytes"]
        if entry["status"] >= 500:
            stats["errors"] += 1
        if entry["seconds"] > stats["slowest"]:
            stats["slowest"] = entry["seconds"]

    def run(self):
        while time.monotonic() < self.deadline:
            with open(self.path) as handle:
                for line in handle:
                    self.record(self.parse(line))  # expect: PYDX-GIL001
                    self.lines_seen += 1
                    if self.lines_seen % 2000 == 0 and time.monotonic() >= self.deadline:
                        return


def main():
    workdir = tempfile.mkdtemp(prefix="access-logs-")
    paths = []
    for shard in range(4):
        path = os.path.join(workdir, "access.log.%d" % shard)
        write_shard(path, seed=shard, lines=12000)
        paths.append(path)
    deadline = time.monotonic() + 6
    analysers = [ShardAnalyser(path, deadline) for path in paths]
    for analyser in analysers:
        analyser.start()
    for analyser in analysers:
        analyser.join()
    totals = {}
    for analyser in analysers:
        for key, stats in analyser.endpoints.items():
            totals[key] = totals.get(key, 0) + stats["count"]
    busiest = sorted(totals.items(), key=lambda item: -item[1])[:3]
    print("parsed %d lines; busiest: %s" % (sum(a.lines_seen for a in analysers), busiest))
    for path in paths:
        os.remove(path)
    os.rmdir(workdir)


if __name__ == "__main__":
    main()
