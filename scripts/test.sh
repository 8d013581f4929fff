#!/usr/bin/env bash
# Runs every test of segmentd on a fresh machine: starts what the tests need, then
# formatting and clippy (warnings are errors), then `cargo test` for the whole
# workspace (one build, one target directory).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL at 127.0.0.1:5432 (trust auth) backs the store conformance suite and the API
# story on PostgreSQL. Start the local cluster if it is installed and down; with CI set,
# the tests fail when they cannot reach it.
if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if [[ -d /etc/postgresql ]]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
fi

# The code's own checks first: they fail fast, and clippy's build shares the
# dependencies that the tests then compile.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

cargo test --workspace --locked "$@"

# The API fuzzed from its OpenAPI document on both backends (the binary the tests built).
./scripts/fuzz.sh target/debug/segmentd
