#!/usr/bin/env bash
# The full test suite, as CI runs it: builds the test environments (cached),
# checks formatting and lints, then runs every test on every interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-env.sh
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo nextest run --workspace --profile ci
cargo test --workspace --doc --quiet
