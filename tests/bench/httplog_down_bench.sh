#!/usr/bin/env bash
# http-log with its log server down, under load: one portico-dp worker with no plugin, one
# with http-log pointed at a closed port (default queue: 10,000 entries, retries for 60 s),
# one with http-log pointed at a log server that answers (nginx, 200), the same with
# queue.max_batch_size 100 (JSON arrays of up to 100 entries), and nginx as the
# reference proxy; each pinned to the same core, driven by the same wrk command in the same
# run. Prints a Markdown table of medians over REPEAT runs, the down DP's RSS before and after
# (bounded by the queue cap) and its drop counters from /metrics (RESULTS.md, "Logging").
#
#   tests/bench/httplog_down_bench.sh [build_dir]   (default: build)
#   env: DURATION=60s CONNS=64 REPEAT=3 PROXY_CPU=0 LOAD_CPU=1 TARGETS="portico portico-httplog-down
#        portico-httplog-up portico-httplog-batch100 nginx" (a subset: fewer targets)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
DP="$BUILD/bin/portico-dp"
DURATION="${DURATION:-60s}"
CONNS="${CONNS:-64}"
REPEAT="${REPEAT:-3}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
[[ -x "$DP" ]] || { echo "missing $DP (build target portico-dp)"; exit 1; }

WORK="$(mktemp -d /tmp/portico-httplog-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port); LOG_PORT=$(free_port); DOWN_PORT=$(free_port); NGX_PORT=$(free_port)
BARE_PORT=$(free_port); HL_DOWN_PORT=$(free_port); HL_UP_PORT=$(free_port); HL_BATCH_PORT=$(free_port)

# The upstream and the live log server: one nginx on the load core.
mkdir -p "$WORK/up" "$WORK/ngx"
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $WORK/up; proxy_temp_path $WORK/up;
  fastcgi_temp_path $WORK/up; uwsgi_temp_path $WORK/up; scgi_temp_path $WORK/up;
  keepalive_requests 1000000; client_body_buffer_size 64k;
  server { listen 127.0.0.1:$UP_PORT reuseport; location / { default_type text/plain; return 200 "hello from upstream"; } }
  server { listen 127.0.0.1:$LOG_PORT reuseport; location / { return 200; } }
}
CONF
taskset -c "$LOAD_CPU" nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" & PIDS+=($!)

python3 - "$WORK" "$UP_PORT" "$DOWN_PORT" "$LOG_PORT" <<'PY'
import json, sys
work, up_port, down_port, log_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
svc = {"id": "5b1a3c1e-0000-4000-8000-000000000001", "name": "bench", "protocol": "http",
       "host": "127.0.0.1", "port": up_port, "enabled": True, "retries": 5,
       "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000}
route = {"id": "5b1a3c1e-0000-4000-8000-000000000002", "name": "r", "protocols": ["http", "https"],
         "paths": ["/"], "strip_path": False, "path_handling": "v0", "https_redirect_status_code": 426,
         "request_buffering": True, "response_buffering": True, "service_id": svc["id"]}
base = {"generation": "1", "group": "default", "services": [svc], "routes": [route]}
json.dump(base, open(work + "/bare.json", "w"))
def httplog(port, batch=1):
    conf = {"http_endpoint": "http://127.0.0.1:%d/logs" % port, "method": "POST",
            "content_type": "application/json", "timeout": 10000, "keepalive": 60000,
            "retry_count": None, "queue_size": None, "flush_timeout": None, "headers": None,
            "custom_fields_by_lua": None,
            "queue": {"max_batch_size": batch, "max_coalescing_delay": 1, "max_entries": 10000,
                      "max_bytes": None, "max_retry_time": 60, "initial_retry_delay": 0.01,
                      "max_retry_delay": 60, "concurrency_limit": 1}}
    c = dict(base)
    c["plugins"] = [{"id": "5b1a3c1e-0000-4000-8000-000000000003", "name": "http-log",
                     "config": json.dumps(conf), "protocols": ["grpc", "grpcs", "http", "https"],
                     "enabled": True, "created_at": 1700000000, "updated_at": 1700000000}]
    return c
json.dump(httplog(down_port), open(work + "/down.json", "w"))
json.dump(httplog(log_port), open(work + "/up.json", "w"))
json.dump(httplog(log_port, 100), open(work + "/batch.json", "w"))
PY

declare -A PID_OF PORT_OF STATUS_OF
start_dp() {  # name port config
  local status; status=$(free_port)
  PORTICO_LOG_LEVEL=error taskset -c "$PROXY_CPU" "$DP" --workers=1 --declarative_config="$3" \
    --proxy_listen=127.0.0.1:$2 --proxy_ssl_listen=off --status_listen=127.0.0.1:$status \
    > "$WORK/$1.log" 2>&1 & PIDS+=($!)
  PID_OF[$1]=$!; PORT_OF[$1]=$2; STATUS_OF[$1]=$status
}
start_dp portico "$BARE_PORT" "$WORK/bare.json"
start_dp portico-httplog-down "$HL_DOWN_PORT" "$WORK/down.json"
start_dp portico-httplog-up "$HL_UP_PORT" "$WORK/up.json"
start_dp portico-httplog-batch100 "$HL_BATCH_PORT" "$WORK/batch.json"

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
TARGETS="${TARGETS:-portico portico-httplog-down portico-httplog-up portico-httplog-batch100 nginx}"

for t in $TARGETS; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:${PORT_OF[$t]}/" > /dev/null && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:${PORT_OF[$t]}/" > /dev/null ||
    { echo "$t is not answering"; cat "$WORK"/*.log; exit 1; }
done
metric() {  # name metric
  curl -s "http://127.0.0.1:${STATUS_OF[$1]}/metrics" | awk -v m="$2" '$1==m {print $2}'
}
rss() { awk '/VmRSS/ {print $2}' "/proc/${PID_OF[$1]}/status"; }
RSS_DOWN_0=$(rss portico-httplog-down); RSS_BARE_0=$(rss portico)

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
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:${PORT_OF[$t]}/")
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
bare=$(median "${RPS[portico]:-}"); ngx=$(median "${RPS[nginx]:-}")
ratio() { [[ -n "$2" ]] && python3 -c "print(f'{$1/$2:.2f}')" || echo "–"; }
# Paired: each run's req/s over the bare DP's in the same round (the machine drifts between
# rounds; a pair shares its minute), then the median of those ratios.
paired() { python3 -c "
import statistics,sys
a=[float(x) for x in sys.argv[1].split()]; b=[float(x) for x in sys.argv[2].split()]
print(f'{statistics.median(x/y for x,y in zip(a,b)):.2f}')" "$1" "$2"; }
echo
echo "| target | req/s (median of $REPEAT, $DURATION each) | vs portico without plugins | same-round ratio (median) | vs nginx | p99 µs (median) | proxy CPU µs/req (median) | runs (req/s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for t in $TARGETS; do
  m=$(median "${RPS[$t]}")
  echo "| $t | $m | $(ratio "$m" "$bare") | $(paired "${RPS[$t]}" "${RPS[portico]}") | $(ratio "$m" "$ngx") | $(median "${P99[$t]}") | $(median "${CPU[$t]}") | ${RPS[$t]}|"
done
echo
echo "RSS portico-httplog-down: $RSS_DOWN_0 KB before the runs, $(rss portico-httplog-down) KB after" \
     "(portico without plugins: $RSS_BARE_0 KB before, $(rss portico) KB after)"
for t in portico-httplog-down portico-httplog-up portico-httplog-batch100; do
  [[ " $TARGETS " == *" $t "* ]] || continue
  echo "$t: dropped $(metric $t portico_dp_http_log_dropped_total), failed" \
       "$(metric $t portico_dp_http_log_failed_total), sent $(metric $t portico_dp_http_log_sent_total)"
done
