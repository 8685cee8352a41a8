#!/usr/bin/env bash
# The web worked example: a Django app on gunicorn (two sync workers) with a
# real PostgreSQL and Redis, under load from a small client, profiled by
# `pydx doctor --subprocesses` for DURATION seconds (default 30).
#
#   scripts/web-demo.sh [orders_django|orders_django_fixed] [DURATION]
#
# Needs what scripts/setup-test-env.sh installs (PostgreSQL, Redis and the
# web venv with Django and gunicorn). Everything it starts runs on free
# ports in a temporary folder and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

APP="${1:-orders_django}"
DURATION="${2:-30}"
VENV="${PYDX_TEST_CACHE:-$HOME/.cache/pydx-test}/venv-web"
[ -x "$VENV/bin/gunicorn" ] || { echo "run scripts/setup-test-env.sh first (no $VENV)" >&2; exit 1; }
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

cargo build --release --quiet -p pydx-cli

WORK="$(mktemp -d)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

# PostgreSQL refuses to run as root: initdb and the server run as postgres
# (setpriv execs, so the server's PID is the one to stop).
AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --clear-groups)
PG_PORT="$(free_port)"
mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
"${AS_POSTGRES[@]}" "$PG_BIN/initdb" --auth=trust --no-sync -D "$WORK/pg" >/dev/null
"${AS_POSTGRES[@]}" "$PG_BIN/postgres" -D "$WORK/pg" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c "unix_socket_directories=$WORK/pg" >/dev/null 2>&1 &
PIDS+=($!)
REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --save '' --appendonly no >/dev/null &
PIDS+=($!)
wait_for_port "$PG_PORT"
wait_for_port "$REDIS_PORT"
export PYDX_PG_PORT="$PG_PORT" PYDX_REDIS_PORT="$REDIS_PORT"

"$VENV/bin/python" "examples/web/$APP.py" seed
WEB_PORT="$(free_port)"
"$VENV/bin/gunicorn" --workers 2 --bind "127.0.0.1:$WEB_PORT" --chdir examples/web "$APP:app" 2>/dev/null &
GUNICORN=$!
PIDS+=($GUNICORN)
wait_for_port "$WEB_PORT"

# The load: one client asking for the order list again and again.
"$VENV/bin/python" - "$WEB_PORT" "$DURATION" <<'EOF' &
import sys, time, urllib.request
port, seconds = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + seconds + 1
while time.monotonic() < deadline:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/orders").read()
EOF
PIDS+=($!)

./target/release/pydx doctor --subprocesses --duration "$DURATION" --pid "$GUNICORN"
