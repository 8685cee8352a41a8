# corpus: healthy
# story: a replica keeps serialising its full state document with json.dumps in a snapshot thread while a beacon thread announces it over UDP every 250 ms
# run: launch
# forbid: PYDX-GIL001
"""State snapshots for a standby replica, plus a UDP presence beacon."""
import json
import os
import random
import socket
import tempfile
import threading
import time


def build_state(rng):
    return {
        "node": "replica-b",
        "accounts": [{"id": n, "owner": "user%05d" % n, "balance": round(rng.uniform(-500, 90000), 2),
                      "currency": rng.choice(["EUR", "USD", "GBP"]), "frozen": rng.random() < 0.01,
                      "limits": {"daily": rng.choice([500, 1000, 5000]), "monthly": 20000},
                      "tags": rng.sample(["retail", "business", "premium", "student", "joint"], 2)}
                     for n in range(30000)],
        "pending": [{"tx": "T%09d" % n, "amount": round(rng.uniform(1, 900), 2)} for n in range(5000)],
    }


class SnapshotWriter(threading.Thread):
    def __init__(self, state, path, deadline):
        super().__init__(name="snapshot-writer")
        self.state = state
        self.path = path
        self.deadline = deadline
        self.snapshots = 0

    def run(self):
        while time.monotonic() < self.deadline:
            self.state["version"] = self.snapshots
            encoded = json.dumps(self.state, separators=(",", ":"))
            with open(self.path + ".tmp", "w") as handle:
                handle.write(encoded)
            os.replace(self.path + ".tmp", self.path)
            self.snapshots += 1


def beacon(target, deadline, sent):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        next_at = time.monotonic()
        while next_at < deadline:
            sock.sendto(json.dumps({"node": "replica-b", "seq": len(sent), "at": time.time()}).encode(), target)
            sent.append(next_at)
            next_at += 0.25
            time.sleep(max(0.0, next_at - time.monotonic()))


def main():
    state = build_state(random.Random(6))
    workdir = tempfile.mkdtemp(prefix="snapshots-")
    path = os.path.join(workdir, "state.json")
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    deadline = time.monotonic() + 6
    writer = SnapshotWriter(state, path, deadline)
    sent = []
    announcer = threading.Thread(target=beacon, args=(listener.getsockname(), deadline, sent), name="beacon")
    writer.start()
    announcer.start()
    writer.join()
    announcer.join()
    listener.setblocking(False)
    received = 0
    try:
        while True:
            listener.recv(512)
            received += 1
    except BlockingIOError:
        pass
    listener.close()
    size = os.path.getsize(path)
    os.remove(path)
    os.rmdir(workdir)
    print("%d snapshots of %d bytes, %d beacons sent, %d received" % (writer.snapshots, size, len(sent), received))


if __name__ == "__main__":
    main()
