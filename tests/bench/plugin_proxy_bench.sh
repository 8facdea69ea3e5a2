#!/usr/bin/env bash
# Plugins through the whole proxy, each target a portico-dp with 1 worker pinned to the same
# core as nginx (the reference) and driven by the same wrk command in the same run:
#   portico                 no plugin
#   portico-key-auth        key-auth, CONSUMERS consumers (one key each; the request carries one)
#   portico-ka-rl-prom      key-auth + rate-limiting (local, a limit never reached) + prometheus
#                           on the route, 100 consumers (issue 11's figure)
#   portico-proxy-cache     proxy-cache on the route: every request after the first is a Hit
#   nginx                   plain reverse proxy with upstream keep-alive
# Prints a Markdown table of medians over REPEAT runs (RESULTS.md, "Plugins").
#
#   tests/bench/plugin_proxy_bench.sh [build_dir]   (default: build)
#   env: DURATION=10s CONNS=64 REPEAT=3 PROXY_CPU=0 LOAD_CPU=1 CONSUMERS=100000
#        TARGETS="portico portico-key-auth portico-ka-rl-prom portico-proxy-cache nginx"
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
DP="$BUILD/bin/portico-dp"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
REPEAT="${REPEAT:-3}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
CONSUMERS="${CONSUMERS:-100000}"
[[ -x "$DP" ]] || { echo "missing $DP (build target portico-dp)"; exit 1; }

WORK="$(mktemp -d /tmp/portico-plugin-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port); BARE_PORT=$(free_port); KA_PORT=$(free_port); NGX_PORT=$(free_port)
STACK_PORT=$(free_port); CACHE_PORT=$(free_port)

mkdir -p "$WORK/up" "$WORK/ngx"
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $WORK/up; proxy_temp_path $WORK/up;
  fastcgi_temp_path $WORK/up; uwsgi_temp_path $WORK/up; scgi_temp_path $WORK/up;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT reuseport; location / { default_type text/plain; return 200 "hello from upstream"; } }
}
CONF
taskset -c "$LOAD_CPU" nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" & PIDS+=($!)

# Two declarative configs: the same service and route, one with key-auth and the consumers.
python3 - "$WORK" "$UP_PORT" "$CONSUMERS" <<'PY'
import json, sys
work, up_port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
svc = {"id": "5b1a3c1e-0000-4000-8000-000000000001", "name": "bench", "protocol": "http",
       "host": "127.0.0.1", "port": up_port, "enabled": True, "retries": 5,
       "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000}
route = {"id": "5b1a3c1e-0000-4000-8000-000000000002", "name": "r", "protocols": ["http", "https"],
         "paths": ["/"], "strip_path": False, "path_handling": "v0", "https_redirect_status_code": 426,
         "request_buffering": True, "response_buffering": True, "service_id": svc["id"]}
base = {"generation": "1", "group": "default", "services": [svc], "routes": [route]}
json.dump(base, open(work + "/bare.json", "w"))
conf = {"key_names": ["apikey"], "hide_credentials": False, "anonymous": None, "key_in_header": True,
        "key_in_query": True, "key_in_body": False, "run_on_preflight": True, "realm": None}
ka = dict(base)
ka["plugins"] = [{"id": "5b1a3c1e-0000-4000-8000-000000000003", "name": "key-auth",
                  "config": json.dumps(conf), "protocols": ["grpc", "grpcs", "http", "https"],
                  "enabled": True, "created_at": 1700000000, "updated_at": 1700000000}]
ka["consumers"] = [{"id": "5b1a3c1e-0003-4000-8000-%012d" % i, "username": "user-%d" % i,
                    "created_at": 1700000000, "updated_at": 1700000000} for i in range(n)]
ka["keyauth_credentials"] = [{"id": "5b1a3c1e-0004-4000-8000-%012d" % i,
                              "consumer": {"id": "5b1a3c1e-0003-4000-8000-%012d" % i},
                              "key": "key-%08d-abcdefghijklmnopqrstu" % i, "created_at": 1700000000}
                             for i in range(n)]
json.dump(ka, open(work + "/keyauth.json", "w"))
def plugin(i, name, config):
    return {"id": "5b1a3c1e-0000-4000-8000-00000000001%d" % i, "name": name,
            "route": {"id": route["id"]}, "config": json.dumps(config),
            "protocols": ["grpc", "grpcs", "http", "https"], "enabled": True,
            "created_at": 1700000000, "updated_at": 1700000000}
stack = dict(ka)
stack["consumers"] = ka["consumers"][n // 2 - 50:n // 2 + 50]  # 100, the benchmark key's among them
stack["keyauth_credentials"] = ka["keyauth_credentials"][n // 2 - 50:n // 2 + 50]
stack["plugins"] = ka["plugins"] + [
    plugin(1, "rate-limiting", {"minute": 1000000000, "limit_by": "consumer", "policy": "local"}),
    plugin(2, "prometheus", {})]
json.dump(stack, open(work + "/stack.json", "w"))
cached = dict(base)
cached["plugins"] = [plugin(3, "proxy-cache", {"strategy": "memory"})]
json.dump(cached, open(work + "/cache.json", "w"))
PY
KEY=$(printf 'key-%08d-abcdefghijklmnopqrstu' $((CONSUMERS / 2)))

declare -A PID_OF PORT_OF
start_dp() {  # name port config
  PORTICO_LOG_LEVEL=warn taskset -c "$PROXY_CPU" "$DP" --workers=1 --declarative_config="$3" \
    --proxy_listen=127.0.0.1:$2 --proxy_ssl_listen=off --status_listen=127.0.0.1:$(free_port) \
    > "$WORK/$1.log" 2>&1 & PIDS+=($!)
  PID_OF[$1]=$!; PORT_OF[$1]=$2
}
start_dp portico "$BARE_PORT" "$WORK/bare.json"
start_dp portico-key-auth "$KA_PORT" "$WORK/keyauth.json"
start_dp portico-ka-rl-prom "$STACK_PORT" "$WORK/stack.json"
start_dp portico-proxy-cache "$CACHE_PORT" "$WORK/cache.json"

cat > "$WORK/ngx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $WORK/ngx/nginx.pid;
error_log $WORK/ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $WORK/ngx; proxy_temp_path $WORK/ngx;
  fastcgi_temp_path $WORK/ngx; uwsgi_temp_path $WORK/ngx; scgi_temp_path $WORK/ngx;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server { listen 127.0.0.1:$NGX_PORT reuseport;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
                 proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }
}
CONF
taskset -c "$PROXY_CPU" nginx -c "$WORK/ngx/nginx.conf" -p "$WORK/ngx" & PIDS+=($!)
PID_OF[nginx]=$!; PORT_OF[nginx]=$NGX_PORT
TARGETS="${TARGETS:-portico portico-key-auth portico-ka-rl-prom portico-proxy-cache nginx}"

for t in $TARGETS; do
  for _ in $(seq 1 100); do
    curl -sf -H "apikey: $KEY" "http://127.0.0.1:${PORT_OF[$t]}/" > /dev/null && break
    sleep 0.2
  done
  curl -sf -H "apikey: $KEY" "http://127.0.0.1:${PORT_OF[$t]}/" > /dev/null ||
    { echo "$t is not answering"; cat "$WORK"/*.log; exit 1; }
done
# Fail closed, checked on the running process: no key, no service.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$KA_PORT/")
[[ $code == 401 ]] || { echo "key-auth answered $code without a key"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$STACK_PORT/")
[[ $code == 401 ]] || { echo "the key-auth stack answered $code without a key"; exit 1; }
hit=$(curl -s -o /dev/null -D - "http://127.0.0.1:$CACHE_PORT/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status" {print $2}')
[[ $hit == Hit ]] || { echo "proxy-cache answered X-Cache-Status '$hit' on a repeated request"; exit 1; }
RSS_KA=$(awk '/VmRSS/ {print $2}' "/proc/${PID_OF[portico-key-auth]}/status")
RSS_BARE=$(awk '/VmRSS/ {print $2}' "/proc/${PID_OF[portico]}/status")

to_us() { python3 -c '
import sys,re
v=sys.argv[1]; m=re.match(r"([0-9.]+)(us|ms|s)$",v)
n=float(m.group(1)); print(round(n*{"us":1,"ms":1000,"s":1000000}[m.group(2)]))' "$1"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A RPS P99 CPU
for i in $(seq 1 "$REPEAT"); do
  for t in $TARGETS; do
    c0=$(cpu_ticks "${PID_OF[$t]}")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "apikey: $KEY" "http://127.0.0.1:${PORT_OF[$t]}/")
    c1=$(cpu_ticks "${PID_OF[$t]}")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
    cpu_us=$(python3 -c "print(f'{($c1-$c0)*1e6/$TCK/$reqs:.2f}')")
    RPS[$t]+="$rps "; P99[$t]+="$(to_us "$p99") "; CPU[$t]+="$cpu_us "
    echo "run $i $t: $rps req/s, p99 $p99, proxy CPU ${cpu_us} us/req ${errs}" >&2
  done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bare=$(median "${RPS[portico]}"); ngx=$(median "${RPS[nginx]}")
echo
echo "RSS: portico-dp with key-auth and $CONSUMERS consumers ${RSS_KA} KB, without ${RSS_BARE} KB"
echo "| target | req/s (median of $REPEAT) | vs portico without plugins | vs nginx | p99 µs (median) | proxy CPU µs/req (median) | runs (req/s) |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in $TARGETS; do
  m=$(median "${RPS[$t]}")
  echo "| $t | $m | $(python3 -c "print(f'{$m/$bare:.2f}')") | $(python3 -c "print(f'{$m/$ngx:.2f}')") | $(median "${P99[$t]}") | $(median "${CPU[$t]}") | ${RPS[$t]}|"
done
