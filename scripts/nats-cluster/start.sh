#!/usr/bin/env bash
# Starts the 3-server NATS JetStream cluster of server.conf by hand, on fixed ports
# (clients 14222-14224, routes 16222-16224, monitoring 18222-18224), each server with
# its store under DIR (default: a new temporary directory). Prints the value for
# `segmentd serve --cluster`; `stop.sh DIR` stops them. The tests start their own
# clusters on free ports instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$(mktemp -d -t segmentd-nats.XXXXXX)}"
mkdir -p "$dir"
nats_server="$(command -v nats-server || echo /usr/sbin/nats-server)"
routes=(nats://127.0.0.1:16222 nats://127.0.0.1:16223 nats://127.0.0.1:16224)
for i in 1 2 3; do
  NATS_NAME="n$i" NATS_PORT="1422$((i + 1))" NATS_MONITOR="127.0.0.1:1822$((i + 1))" \
    NATS_CLUSTER_LISTEN="127.0.0.1:1622$((i + 1))" NATS_STORE_DIR="$dir/n$i" \
    NATS_ROUTE_1="${routes[0]}" NATS_ROUTE_2="${routes[1]}" NATS_ROUTE_3="${routes[2]}" \
    "$nats_server" -c "$here/server.conf" >"$dir/n$i.log" 2>&1 &
  echo $! >>"$dir/pids"
done
# Formed when every server sees a JetStream meta leader.
for _ in $(seq 1 100); do
  formed=0
  for i in 1 2 3; do
    curl -fs "http://127.0.0.1:1822$((i + 1))/jsz" 2>/dev/null | grep -q '"leader": *"n' && formed=$((formed + 1))
  done
  [[ $formed == 3 ]] && break
  sleep 0.1
done
[[ $formed == 3 ]] || { echo "the NATS cluster did not form; logs in $dir" >&2; exit 1; }
echo "NATS JetStream cluster up; stores and logs in $dir"
echo "--cluster nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224"
