#!/usr/bin/env bash
# Runs pydx on a real example: starts examples/order_service.py and shows
# every thread's stack with `pydx dump`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p pydx-cli
PYTHON="${PYTHON:-python3}"
"$PYTHON" examples/order_service.py >/dev/null &
service=$!
trap 'kill "$service" 2>/dev/null' EXIT
sleep 1
./target/release/pydx dump --pid "$service"
