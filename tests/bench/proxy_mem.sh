#!/usr/bin/env bash
# Data-plane memory with a large config: RSS of portico-dp (1 worker) with an empty config,
# then with ROUTES routes + ROUTES services (the proxy_bench.sh mix: 45% host+prefix+method,
# 45% prefix, 10% regex), each measured after a warm-up of requests. Prints the delta.
#
#   tests/bench/proxy_mem.sh [build_dir]        env: ROUTES=10000
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build-dp}"
DP="$BUILD/bin/portico-dp"
ROUTES="${ROUTES:-10000}"
WORK="$(mktemp -d /tmp/portico-mem.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 - "$WORK" "$ROUTES" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
json.dump({"generation": "1", "group": "default"}, open(work + "/empty.json", "w"))
services, routes = [], []
for i in range(n):
    sid = "5b1a3c1e-0000-4000-8000-%012d" % (1000000 + i)
    services.append({"id": sid, "name": "s%d" % i, "protocol": "http", "host": "127.0.0.1",
                     "port": 10000 + i % 50000, "enabled": True, "retries": 5,
                     "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000})
    r = {"id": "5b1a3c1e-0000-4000-8000-%012d" % i, "name": "r%d" % i, "protocols": ["http", "https"],
         "strip_path": True, "path_handling": "v0", "https_redirect_status_code": 426,
         "request_buffering": True, "response_buffering": True, "service_id": sid}
    if i % 10 == 0:
        r["paths"] = ["~/re%d/(\\d+)/profile$" % i]
    elif i % 2 == 0:
        r["hosts"] = ["h%d.example.com" % i]; r["paths"] = ["/api/v%d" % (i % 3)]; r["methods"] = ["GET"]
    else:
        r["paths"] = ["/svc%d/items" % i]
    routes.append(r)
json.dump({"generation": "1", "group": "default", "services": services, "routes": routes},
          open(work + "/big.json", "w"))
PY

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
measure() {
  local cfg="$1" port status pid
  port=$(free_port); status=$(free_port)
  PORTICO_LOG_LEVEL=warn "$DP" --workers=1 --declarative_config="$cfg" --proxy_listen=127.0.0.1:$port \
    --status_listen=127.0.0.1:$status --proxy_ssl_listen=off > "$WORK/dp.log" 2>&1 &
  pid=$!; PIDS+=($pid)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$status/status/ready" >/dev/null && break; sleep 0.1; done
  # Warm-up: requests through the router (404s and routed ones alike) so lazily grown
  # buffers are counted.
  for i in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/svc$((i * 2 + 1))/items/x" || true; done
  sleep 1
  rss_kb "$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
empty=$(measure "$WORK/empty.json")
big=$(measure "$WORK/big.json")
echo "| config | VmRSS (MiB) |"
echo "|---|---:|"
echo "| empty | $(python3 -c "print(f'{$empty/1024:.1f}')") |"
echo "| $ROUTES routes + $ROUTES services | $(python3 -c "print(f'{$big/1024:.1f}')") |"
echo "| delta | $(python3 -c "print(f'{($big-$empty)/1024:.1f}')") |"
