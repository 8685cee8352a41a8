"""What an empty handler costs in each web framework, as PYDX-WEB002 counts
it: on-CPU samples of request-serving threads outside the program's code and
any middleware, per request the workers counted. These figures are the
rule's baselines (empty_handler_ms in crates/pydx-diagnose/src/rules/
framework_overhead.rs).

    python3 bench/framework_baseline.py [--rounds N] [--seconds S]

Serves each app of bench/apps with two workers (gunicorn sync for WSGI,
uvicorn for ASGI) from the web test venv, loads it with four client threads,
runs `pydx doctor` with the rule's thresholds at zero, and prints the median
framework CPU per request; writes bench/results/framework-baseline.md.
Python stdlib only.
"""
import argparse
import http.client
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import tools

APPS = tools.REPO / "bench" / "apps"
WEB_VENV = tools.CACHE / "venv-web"
RESULTS = tools.REPO / "bench" / "results" / "framework-baseline.md"
FRAMEWORKS = [
    ("Django", "empty_django", "gunicorn"),
    ("Django ASGI", "empty_django_asgi", "uvicorn"),
    ("Flask", "empty_flask", "gunicorn"),
    ("FastAPI", "empty_fastapi", "uvicorn"),
    ("Starlette", "empty_starlette", "uvicorn"),
]
PER_REQUEST = re.compile(r"([0-9.]+) ms of framework CPU per request over the ([0-9]+) requests")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app, server, port):
    if server == "gunicorn":
        command = [WEB_VENV / "bin/gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                   "--chdir", APPS, f"{app}:app"]
    else:
        command = [WEB_VENV / "bin/uvicorn", "--workers", "2", "--host", "127.0.0.1",
                   "--port", str(port), "--app-dir", APPS, "--log-level", "warning", f"{app}:app"]
    process = subprocess.Popen([str(c) for c in command], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if get(port):
            return process
        time.sleep(0.2)
    process.kill()
    sys.exit(f"{app} did not start")


def get(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/empty", headers={"Connection": "close"})
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def measure(pydx, config, app, server, seconds):
    port = free_port()
    process = serve(app, server, port)
    stop = threading.Event()

    def client():
        while not stop.is_set():
            get(port)

    clients = [threading.Thread(target=client) for _ in range(4)]
    try:
        for thread in clients:
            thread.start()
        time.sleep(1)
        output = subprocess.run(
            [pydx, "doctor", "--subprocesses", "--duration", str(seconds), "--format", "json",
             "--config", config, "--pid", str(process.pid)],
            check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    finally:
        stop.set()
        for thread in clients:
            thread.join()
        process.send_signal(2)
        process.wait(timeout=30)
    for finding in json.loads(output)["report"]["findings"]:
        if finding["code"] == "PYDX-WEB002":
            for line in finding["evidence"]:
                match = PER_REQUEST.search(line)
                if match:
                    return float(match.group(1)), int(match.group(2))
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    pydx = tools.pydx()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write("[framework]\nmin_framework_share = 0.0\nmin_overhead_ratio = 0.0\n")
    rows = []
    for framework, app, server in FRAMEWORKS:
        figures = []
        for _ in range(args.rounds):
            measured = measure(pydx, config.name, app, server, args.seconds)
            if measured:
                figures.append(measured)
        if not figures:
            rows.append(f"| {framework} | {server} | no figure | |")
            continue
        ms = statistics.median(f[0] for f in figures)
        requests = statistics.median(f[1] for f in figures)
        rows.append(f"| {framework} | {server} | {ms:.2f} | {requests:.0f} |")
        print(rows[-1], flush=True)
    report = "\n".join([
        "# Framework CPU per request of an empty handler",
        "",
        f"`python3 bench/framework_baseline.py --rounds {args.rounds} --seconds {args.seconds}`, "
        f"{time.strftime('%Y-%m-%d')}; two workers, four client threads, medians of "
        f"{args.rounds} rounds.",
        "",
        "| Framework | Server | ms per request | requests per round |",
        "|---|---|---:|---:|",
        *rows,
        "",
    ])
    RESULTS.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
