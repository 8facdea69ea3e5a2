#!/usr/bin/env bash
# Bare-forwarder benchmark: Portico (1 worker) side by side with nginx (1 worker, upstream
# keepalive) and haproxy (1 thread), all pinned to the same core and driven by the same wrk
# command in the same run. Prints a Markdown table of medians over REPEAT runs.
#
#   tests/bench/proxy_bench.sh [build_dir]      (default build dir: build-dp)
#   env: DURATION=10s CONNS=64 REPEAT=3 PROXY_CPU=0 LOAD_CPU=1 TARGETS="portico nginx haproxy"
#        ROUTES=1      Portico's route table: 1 = one "/" route; N > 1 = N routes and N
#                      services (mixed: 45% host+prefix+method, 45% prefix, 10% regex), the
#                      request matching one prefix route in the middle of the table
#        MODE=http     or https: TLS on the client side (keep-alive), same cert for all three
#        URL_PATH      request path (default "/", or the matching route's path when ROUTES > 1)
#        IDLE=0        idle client connections held open against every target while wrk runs
#                      (e.g. IDLE=10000: what 10k idle connections cost the others' p99)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build-dp}"
DP="$BUILD/bin/portico-dp"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
REPEAT="${REPEAT:-3}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
TARGETS="${TARGETS:-portico nginx haproxy}"
BODY="${BODY:-hello from upstream}"
ROUTES="${ROUTES:-1}"
MODE="${MODE:-http}"
IDLE="${IDLE:-0}"
WORKER_CONNS=$(( IDLE + 4096 ))
# Idle connections must outlive the whole run: every target's header deadline goes to 1 h.
DP_IDLE_ARGS=(); NGX_IDLE=""; HAP_IDLE=60s
if (( IDLE > 0 )); then
  ulimit -n "$(ulimit -Hn)"
  DP_IDLE_ARGS=(--client_header_timeout_ms=3600000)
  NGX_IDLE="client_header_timeout 3600s;"; HAP_IDLE=3600s
fi
if [[ -z "${URL_PATH:-}" ]]; then
  if (( ROUTES > 1 )); then URL_PATH="/svc$((ROUTES / 2 + 1))/items/1"; else URL_PATH="/"; fi
fi
[[ -x "$DP" ]] || { echo "missing $DP (build target portico-dp)"; exit 1; }

WORK="$(mktemp -d /tmp/portico-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port); DP_PORT=$(free_port); DP_STATUS=$(free_port); NGX_PORT=$(free_port); HAP_PORT=$(free_port)

# --- upstream: nginx returning a small fixed body -------------------------------------------
mkdir -p "$WORK/up" "$WORK/ngx"
cat > "$WORK/up/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $WORK/up; proxy_temp_path $WORK/up;
  fastcgi_temp_path $WORK/up; uwsgi_temp_path $WORK/up; scgi_temp_path $WORK/up;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT reuseport; location / { default_type text/plain; return 200 "$BODY"; } }
}
CONF
taskset -c "$LOAD_CPU" nginx -c "$WORK/up/nginx.conf" -p "$WORK/up" & PIDS+=($!)

# --- TLS material (MODE=https) ---------------------------------------------------------------
SCHEME=http
if [[ "$MODE" == https ]]; then
  SCHEME=https
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" >/dev/null 2>&1
  cat "$WORK/tls.crt" "$WORK/tls.key" > "$WORK/tls.pem"
fi

# --- Portico -------------------------------------------------------------------------------
python3 - "$WORK/portico.json" "$UP_PORT" "$ROUTES" <<'PY'
import json, sys
path, up_port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def svc(i):
    return {"id": "5b1a3c1e-0000-4000-8000-%012d" % (1000000 + i), "name": "bench%d" % i,
            "protocol": "http", "host": "127.0.0.1", "port": up_port, "enabled": True,
            "retries": 5, "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000}
def route(i, **match):
    r = {"id": "5b1a3c1e-0000-4000-8000-%012d" % i, "name": "r%d" % i, "protocols": ["http", "https"],
         "strip_path": False, "path_handling": "v0", "https_redirect_status_code": 426,
         "request_buffering": True, "response_buffering": True,
         "service_id": svc(i)["id"]}
    r.update(match)
    return r
if n <= 1:
    services, routes = [svc(0)], [route(0, paths=["/"])]
else:
    services, routes = [], []
    for i in range(n):
        services.append(svc(i))
        if i % 10 == 0:
            routes.append(route(i, paths=["~/re%d/(\\d+)/profile$" % i]))
        elif i % 2 == 0:
            routes.append(route(i, hosts=["h%d.example.com" % i], paths=["/api/v%d" % (i % 3)], methods=["GET"]))
        else:
            routes.append(route(i, paths=["/svc%d/items" % i]))
json.dump({"generation": "1", "group": "default", "services": services, "routes": routes}, open(path, "w"))
PY
DP_TLS_PORT=$(free_port)
DP_TLS_ARGS=(--proxy_ssl_listen=off)
[[ "$MODE" == https ]] && DP_TLS_ARGS=(--proxy_ssl_listen=127.0.0.1:$DP_TLS_PORT --ssl_cert="$WORK/tls.crt" --ssl_cert_key="$WORK/tls.key")
PORTICO_LOG_LEVEL=warn taskset -c "$PROXY_CPU" "$DP" --workers=1 --declarative_config="$WORK/portico.json" \
  --proxy_listen=127.0.0.1:$DP_PORT --status_listen=127.0.0.1:$DP_STATUS "${DP_TLS_ARGS[@]}" "${DP_IDLE_ARGS[@]}" > "$WORK/portico.log" 2>&1 & PIDS+=($!)
declare -A PID_OF; PID_OF[portico]=$!

# --- nginx as the reference reverse proxy ----------------------------------------------------
NGX_SSL=""
[[ "$MODE" == https ]] && NGX_SSL="ssl; ssl_certificate $WORK/tls.crt; ssl_certificate_key $WORK/tls.key; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:S:1m"
cat > "$WORK/ngx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $WORK/ngx/nginx.pid;
error_log $WORK/ngx/error.log warn;
events { worker_connections $WORKER_CONNS; }
http {
  access_log off; client_body_temp_path $WORK/ngx; proxy_temp_path $WORK/ngx;
  fastcgi_temp_path $WORK/ngx; uwsgi_temp_path $WORK/ngx; scgi_temp_path $WORK/ngx;
  keepalive_requests 1000000; $NGX_IDLE
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  server { listen 127.0.0.1:$NGX_PORT reuseport $NGX_SSL;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
                 proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } }
}
CONF
taskset -c "$PROXY_CPU" nginx -c "$WORK/ngx/nginx.conf" -p "$WORK/ngx" & PIDS+=($!)
PID_OF[nginx]=$!

# --- haproxy ----------------------------------------------------------------------------------
HAP_SSL=""
[[ "$MODE" == https ]] && HAP_SSL="ssl crt $WORK/tls.pem"
if [[ " $TARGETS " == *" haproxy "* ]] && command -v haproxy >/dev/null; then
  cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  cpu-map 1/1 $PROXY_CPU
defaults
  mode http
  timeout connect 60s
  timeout client $HAP_IDLE
  timeout http-request $HAP_IDLE
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend f
  bind 127.0.0.1:$HAP_PORT $HAP_SSL
  option forwardfor
  default_backend b
backend b
  server s1 127.0.0.1:$UP_PORT
CONF
  taskset -c "$PROXY_CPU" haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 & PIDS+=($!)
  PID_OF[haproxy]=$!
fi

sleep 1
port_of() { case "$1" in portico) [[ "$MODE" == https ]] && echo "$DP_TLS_PORT" || echo "$DP_PORT";; nginx) echo "$NGX_PORT";; haproxy) echo "$HAP_PORT";; upstream) echo "$UP_PORT";; esac; }
for t in $TARGETS; do
  curl -skf "$SCHEME://127.0.0.1:$(port_of "$t")$URL_PATH" > /dev/null || { echo "$t is not answering"; cat "$WORK"/*.log 2>/dev/null; exit 1; }
done

# --- IDLE: connections opened and left silent, one holder process per target ----------------
if (( IDLE > 0 )); then
  for t in $TARGETS; do
    python3 - "$(port_of "$t")" "$IDLE" "$WORK/idle-$t.ready" <<'PY' & PIDS+=($!)
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); held.append(s)
open(ready, "w").close()
time.sleep(1e6)
PY
  done
  for t in $TARGETS; do
    for _ in $(seq 1 600); do [[ -e "$WORK/idle-$t.ready" ]] && break; sleep 0.1; done
    [[ -e "$WORK/idle-$t.ready" ]] || { echo "$t: could not hold $IDLE idle connections"; exit 1; }
  done
  echo "holding $IDLE idle connections against each of: $TARGETS" >&2
fi

# wrk's p99 in microseconds from --latency output.
to_us() { python3 -c '
import sys,re
v=sys.argv[1]; m=re.match(r"([0-9.]+)(us|ms|s)$",v)
n=float(m.group(1)); print(round(n*{"us":1,"ms":1000,"s":1000000}[m.group(2)]))' "$1"; }

# CPU time (user+sys, all threads) the proxy process used, in clock ticks.
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

declare -A RPS P99 CPU
for i in $(seq 1 "$REPEAT"); do
  for t in $TARGETS; do
    c0=$(cpu_ticks "${PID_OF[$t]}")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$SCHEME://127.0.0.1:$(port_of "$t")$URL_PATH")
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
ngx_med=$(median "${RPS[nginx]:-0}")
echo
ngx_cpu=$(median "${CPU[nginx]:-0}")
echo "| proxy | req/s (median of $REPEAT) | vs nginx | p99 µs (median) | proxy CPU µs/req (median) | CPU vs nginx | runs (req/s) |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in $TARGETS; do
  m=$(median "${RPS[$t]}")
  c=$(median "${CPU[$t]}")
  ratio=$(python3 -c "print(f'{$m/$ngx_med:.2f}' if $ngx_med else 'n/a')")
  cratio=$(python3 -c "print(f'{$c/$ngx_cpu:.2f}' if $ngx_cpu else 'n/a')")
  echo "| $t | $m | $ratio | $(median "${P99[$t]}") | $c | $cratio | ${RPS[$t]}|"
done
