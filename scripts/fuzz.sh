#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with Schemathesis (from PyPI, pinned),
# against a real `segmentd serve` on SQLite and then on PostgreSQL, each with the demo's
# data. Fails on any 5xx, any status or content type the document does not declare, any
# response body that breaks its schema, and any request over the timeout.
#
# Usage: scripts/fuzz.sh [BINARY]   (default target/debug/segmentd; EXAMPLES=N per
# operation, default 50). scripts/test.sh runs it after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/debug/segmentd}
EXAMPLES=${EXAMPLES:-50}
SCHEMATHESIS=schemathesis==4.32.5
VENV=${FUZZ_VENV:-target/fuzz-venv}
PG_ADMIN=${SEGMENTD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

if [[ ! -x "$VENV/bin/st" ]]; then
  echo "installing $SCHEMATHESIS into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "$SCHEMATHESIS"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# fuzz_one NAME [--database-url URL]
fuzz_one() {
  local name=$1; shift
  local dir port key pid rc
  dir=$(mktemp -d)
  port=$(free_port)
  "$BIN" demo --no-serve --contacts 300 --data-dir "$dir" "$@" >/dev/null
  # A key that is not admin: the fuzzer must not revoke the key it is using.
  key=$("$BIN" key create --account Demo --name fuzz --data-dir "$dir" "$@" | awk '/API key:/ {print $3}')
  "$BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" "$@" >"$dir/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/api/v1/openapi.json" && break
    sleep 0.2
  done
  echo "fuzzing the API on $name"
  set +e
  "$VENV/bin/st" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    -H "Authorization: Bearer $key" \
    --max-examples "$EXAMPLES" \
    --request-timeout 20 \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --seed 20261202 \
    --no-color
  rc=$?
  set -e
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    echo "the server's log:"; tail -50 "$dir/serve.log"
  fi
  rm -rf "$dir"
  return $rc
}

fuzz_one SQLite

db="segmentd_fuzz_$$"
psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
pg_url="${PG_ADMIN%/*}/$db"
set +e
fuzz_one PostgreSQL --database-url "$pg_url"
rc=$?
set -e
psql "$PG_ADMIN" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
exit $rc
