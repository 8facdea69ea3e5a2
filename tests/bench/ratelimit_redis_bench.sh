#!/usr/bin/env bash
# Two real portico-dp processes (2 workers each, declarative config, no CP) with one
# rate-limiting plugin (global, limit_by=header, day=LIMIT) on the redis policy, against one
# private redis-server: TOTAL requests with one tenant header are spread over both DPs by CONNS
# concurrent keep-alive connections, and the 200s are counted. One shared limit means exactly
# LIMIT pass (the goal: within 1%). The same run with the local policy shows each DP counting
# on its own (up to 2 x LIMIT pass). Prints a Markdown table (RESULTS.md, "Rate limiting").
#
#   tests/bench/ratelimit_redis_bench.sh [build_dir]   (default: build)
#   env: TOTAL=10000 LIMIT=5000 CONNS=16 WORKERS=2
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
DP="$BUILD/bin/portico-dp"
TOTAL="${TOTAL:-10000}"
LIMIT="${LIMIT:-5000}"
CONNS="${CONNS:-16}"
WORKERS="${WORKERS:-2}"
[[ -x "$DP" ]] || { echo "missing $DP (build target portico-dp)"; exit 1; }
PORTICO_ROOT="$ROOT"
source "$ROOT/deploy/lib.sh"

WORK="$(mktemp -d /tmp/portico-rl-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  portico_redis_stop "$WORK/redis"
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
REDIS_PORT=$(portico_free_port)
portico_redis_start "$WORK/redis" "$REDIS_PORT"

mkdir -p "$WORK/up"
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $WORK/up; proxy_temp_path $WORK/up;
  fastcgi_temp_path $WORK/up; uwsgi_temp_path $WORK/up; scgi_temp_path $WORK/up;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT reuseport; location / { default_type text/plain; return 200 "hello"; } }
}
CONF
nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" & PIDS+=($!)

# One declarative config per policy: a service, a route, rate-limiting global.
python3 - "$WORK" "$UP_PORT" "$REDIS_PORT" "$LIMIT" <<'PY'
import json, sys
work, up_port, redis_port, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
svc = {"id": "5b1a3c1e-0000-4000-8000-000000000001", "name": "bench", "protocol": "http",
       "host": "127.0.0.1", "port": up_port, "enabled": True, "retries": 5,
       "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000}
route = {"id": "5b1a3c1e-0000-4000-8000-000000000002", "name": "r", "protocols": ["http", "https"],
         "paths": ["/"], "strip_path": False, "path_handling": "v0", "https_redirect_status_code": 426,
         "request_buffering": True, "response_buffering": True, "service_id": svc["id"]}
for policy in ("redis", "local"):
    conf = {"second": None, "minute": None, "hour": None, "day": limit, "month": None, "year": None,
            "limit_by": "header", "header_name": "X-Tenant", "path": None, "policy": policy,
            "fault_tolerant": False, "hide_client_headers": False, "error_code": 429,
            "error_message": "API rate limit exceeded", "sync_rate": -1,
            "redis": {"host": "127.0.0.1", "port": redis_port, "timeout": 2000, "username": None,
                      "password": None, "database": 0, "ssl": False, "ssl_verify": False,
                      "server_name": None},
            "redis_host": None, "redis_port": None, "redis_password": None, "redis_username": None,
            "redis_ssl": None, "redis_ssl_verify": None, "redis_server_name": None,
            "redis_timeout": None, "redis_database": None}
    cfg = {"generation": "1", "group": "default", "services": [svc], "routes": [route],
           "plugins": [{"id": "5b1a3c1e-0000-4000-8000-000000000003", "name": "rate-limiting",
                        "config": json.dumps(conf), "protocols": ["grpc", "grpcs", "http", "https"],
                        "enabled": True, "created_at": 1700000000, "updated_at": 1700000000}]}
    json.dump(cfg, open(f"{work}/{policy}.json", "w"))
PY

# Sends TOTAL requests over CONNS connections, alternating the two DPs; prints
# "<200s> <429s> <other> <seconds>".
cat > "$WORK/load.py" <<'PY'
import http.client, sys, threading, time
ports, total, conns, tenant = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
counts = {"ok": 0, "limited": 0, "other": 0}
next_i = [0]
def worker(n):
    c = http.client.HTTPConnection("127.0.0.1", ports[n % len(ports)], timeout=10)
    while True:
        with lock:
            if next_i[0] >= total:
                return
            next_i[0] += 1
        try:
            c.request("GET", "/", headers={"X-Tenant": tenant})
            r = c.getresponse(); r.read()
            k = "ok" if r.status == 200 else "limited" if r.status == 429 else "other"
        except Exception:
            k = "other"; c.close(); c = http.client.HTTPConnection("127.0.0.1", ports[n % len(ports)], timeout=10)
        with lock:
            counts[k] += 1
t0 = time.time()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
print(counts["ok"], counts["limited"], counts["other"], f"{time.time() - t0:.2f}")
PY

run_policy() {  # policy -> prints a table row
  local policy=$1 p1 p2
  p1=$(free_port); p2=$(free_port)
  local pids=()
  for port in "$p1" "$p2"; do
    PORTICO_LOG_LEVEL=warn "$DP" --workers="$WORKERS" --declarative_config="$WORK/$policy.json" \
      --proxy_listen=127.0.0.1:$port --proxy_ssl_listen=off --status_listen=127.0.0.1:$(free_port) \
      > "$WORK/dp-$policy-$port.log" 2>&1 & pids+=($!); PIDS+=($!)
  done
  for port in "$p1" "$p2"; do
    for _ in $(seq 1 100); do
      curl -s -o /dev/null -H "X-Tenant: warmup" "http://127.0.0.1:$port/" && break
      sleep 0.1
    done
  done
  local tenant="bench-$policy-$$-$(date +%s%N)"
  read -r ok limited other secs < <(python3 "$WORK/load.py" "$p1,$p2" "$TOTAL" "$CONNS" "$tenant")
  kill "${pids[@]}" 2>/dev/null || true
  local dev
  dev=$(python3 -c "print(f'{($ok-$LIMIT)*100/$LIMIT:+.2f}')")
  echo "| $policy | 2 x $WORKERS workers | $TOTAL | $LIMIT | $ok | $limited | $other | $dev % | $(python3 -c "print(round($TOTAL/$secs))") |"
}

echo "| policy | DPs | requests | limit | passed (200) | limited (429) | other | passed vs limit | req/s (client-bound) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
run_policy redis
run_policy local
