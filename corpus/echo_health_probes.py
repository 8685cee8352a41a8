# corpus: healthy
# story: a health checker keeps 6 probe threads, each with a blocking TCP socket to a local line-echo service, measuring round trips every 20 ms
# run: launch
"""Round-trip probes against a line-echo service, one thread per monitored connection."""
import socket
import socketserver
import statistics
import threading
import time


class EchoHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Probe(threading.Thread):
    def __init__(self, address, name, deadline, interval=0.02):
        super().__init__(name=name)
        self.address = address
        self.deadline = deadline
        self.interval = interval
        self.round_trips = []
        self.failures = 0

    def run(self):
        with socket.create_connection(self.address, timeout=2.0) as conn:
            reader = conn.makefile("rb")
            sequence = 0
            while time.monotonic() < self.deadline:
                sequence += 1
                payload = ("%s %d %.6f\n" % (self.name, sequence, time.time())).encode()
                sent_at = time.perf_counter()
                conn.sendall(payload)
                reply = reader.readline()
                if reply == payload:
                    self.round_trips.append(time.perf_counter() - sent_at)
                else:
                    self.failures += 1
                time.sleep(self.interval)


def main():
    server = EchoServer(("127.0.0.1", 0), EchoHandler)
    server_thread = threading.Thread(target=server.serve_forever, name="echo-server", daemon=True)
    server_thread.start()
    deadline = time.monotonic() + 6
    probes = [Probe(server.server_address, "probe-%d" % n, deadline) for n in range(6)]
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join()
    server.shutdown()
    server.server_close()
    samples = sorted(rtt for probe in probes for rtt in probe.round_trips)
    print("%d probes, %d failures, median rtt %.3f ms, p99 %.3f ms" % (
        len(samples), sum(p.failures for p in probes), statistics.median(samples) * 1000,
        samples[int(len(samples) * 0.99)] * 1000))


if __name__ == "__main__":
    main()
