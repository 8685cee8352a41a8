#!/usr/bin/env bash
# Runs pydx's main job on a real example: `pydx doctor` launches
# examples/mixed.py (an order service with three performance problems),
# samples it for its five seconds of life and prints the diagnosis.
# Set PYTHON to choose the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p pydx-cli
PYTHON="${PYTHON:-python3}"
./target/release/pydx doctor -- "$PYTHON" examples/mixed.py 5
