#!/usr/bin/env bash
# Stops the servers that `start.sh DIR` started (by the process ids it wrote).
set -euo pipefail
dir="${1:?usage: stop.sh DIR}"
while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$dir/pids"
rm -f "$dir/pids"
