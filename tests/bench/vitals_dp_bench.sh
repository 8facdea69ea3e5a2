#!/usr/bin/env bash
# Vitals' cost on the data plane (issue 12: "vitals take <= 3% of DP requests/s"). One
# control plane on a private PostgreSQL; two portico-dp processes with the same config from
# it (a route with key-auth, 100 consumers, every request under one of them round robin), one
# with --vitals (the default) and one with --vitals=false, each with 1 worker pinned to the
# same core as nginx (the reference, plain reverse proxy) and driven by the same wrk command
# in the same run, rounds interleaved. Prints medians and the same-round on/off ratios, then
# checks that the vitals DP's requests all reached the API.
#
#   tests/bench/vitals_dp_bench.sh [build_dir]   (default: build)
#   env: DURATION=10s CONNS=64 REPEAT=5 PROXY_CPU=0 LOAD_CPU=1
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
DP="$BUILD/bin/portico-dp"; CP="$BUILD/bin/portico-cp"
DURATION="${DURATION:-10s}"; CONNS="${CONNS:-64}"; REPEAT="${REPEAT:-5}"
PROXY_CPU="${PROXY_CPU:-0}"; LOAD_CPU="${LOAD_CPU:-1}"
[[ -x "$DP" && -x "$CP" ]] || { echo "missing $DP or $CP"; exit 1; }
source "$ROOT/deploy/lib.sh"

WORK="$(mktemp -d /tmp/portico-vitals-bench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port); NGX_PORT=$(free_port); PG_PORT=$(free_port)
ADMIN_PORT=$(free_port); CLUSTER_PORT=$(free_port); ON_PORT=$(free_port); OFF_PORT=$(free_port)

portico_pg_start "$WORK/pg" "$PG_PORT" >/dev/null
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE portico"
DSN="host=127.0.0.1 port=$PG_PORT dbname=portico user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null
PORTICO_LOG_LEVEL=warn "$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT \
  --cluster_listen=127.0.0.1:$CLUSTER_PORT --cluster_insecure > "$WORK/cp.log" 2>&1 & PIDS+=($!)
CP_PID=$!
ADMIN="http://127.0.0.1:$ADMIN_PORT"
for _ in $(seq 1 100); do curl -sf "$ADMIN/status" >/dev/null && break; sleep 0.1; done

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

curl -sf -XPOST "$ADMIN/services" -d name=bench -d url="http://127.0.0.1:$UP_PORT" >/dev/null
curl -sf -XPOST "$ADMIN/services/bench/routes" -d name=r -d 'paths[]=/' >/dev/null
curl -sf -XPOST "$ADMIN/routes/r/plugins" -d name=key-auth >/dev/null
for i in $(seq 1 100); do
  curl -sf -XPOST "$ADMIN/consumers" -d username="user-$i" >/dev/null
  curl -sf -XPOST "$ADMIN/consumers/user-$i/key-auth" -d key="key-$i-abcdefghijklmnop" >/dev/null
done
cat > "$WORK/keys.lua" <<'LUA'
local i = 0
request = function()
  i = i % 100 + 1
  return wrk.format("GET", "/", {["apikey"] = "key-" .. i .. "-abcdefghijklmnop"})
end
LUA

declare -A PID_OF PORT_OF
start_dp() {  # name port flags...
  local name=$1 port=$2; shift 2
  PORTICO_LOG_LEVEL=warn taskset -c "$PROXY_CPU" "$DP" --workers=1 --cluster_insecure \
    --cp_address=127.0.0.1:$CLUSTER_PORT --proxy_listen=127.0.0.1:$port --proxy_ssl_listen=off \
    --status_listen=127.0.0.1:$(free_port) --config_cache_path="$WORK/$name.cache" "$@" \
    > "$WORK/$name.log" 2>&1 & PIDS+=($!)
  PID_OF[$name]=$!; PORT_OF[$name]=$port
}
start_dp vitals-on "$ON_PORT" --vitals=true
start_dp vitals-off "$OFF_PORT" --vitals=false

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
TARGETS="vitals-off vitals-on nginx"

for t in vitals-on vitals-off; do
  for _ in $(seq 1 150); do
    curl -sf -H "apikey: key-1-abcdefghijklmnop" "http://127.0.0.1:${PORT_OF[$t]}/" >/dev/null && break
    sleep 0.2
  done
  curl -sf -H "apikey: key-1-abcdefghijklmnop" "http://127.0.0.1:${PORT_OF[$t]}/" >/dev/null ||
    { echo "$t is not answering"; cat "$WORK"/*.log; exit 1; }
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ON_PORT/")
[[ $code == 401 ]] || { echo "key-auth answered $code without a key"; exit 1; }
T0=$(date +%s)

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A RPS CPU
RATIOS=""; ON_TOTAL=0
for i in $(seq 1 "$REPEAT"); do
  for t in $TARGETS; do
    c0=$(cpu_ticks "${PID_OF[$t]}")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/keys.lua" "http://127.0.0.1:${PORT_OF[$t]}/")
    c1=$(cpu_ticks "${PID_OF[$t]}")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
    [[ $t == vitals-on ]] && ON_TOTAL=$((ON_TOTAL + reqs))
    cpu_us=$(python3 -c "print(f'{($c1-$c0)*1e6/$TCK/$reqs:.2f}')")
    RPS[$t]+="$rps "; CPU[$t]+="$cpu_us "
    echo "run $i $t: $rps req/s, proxy CPU ${cpu_us} us/req ${errs}" >&2
  done
  on=$(awk '{print $NF}' <<<"${RPS[vitals-on]}"); off=$(awk '{print $NF}' <<<"${RPS[vitals-off]}")
  RATIOS+="$(python3 -c "print(f'{$on/$off:.3f}')") "
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(median "${RPS[vitals-off]}"); ngx=$(median "${RPS[nginx]}")
echo
echo "| target | req/s (median of $REPEAT) | vs vitals off | vs nginx | proxy CPU µs/req (median) | runs (req/s) |"
echo "|---|---:|---:|---:|---:|---|"
for t in $TARGETS; do
  m=$(median "${RPS[$t]}")
  echo "| $t | $m | $(python3 -c "print(f'{$m/$off:.3f}')") | $(python3 -c "print(f'{$m/$ngx:.2f}')") | $(median "${CPU[$t]}") | ${RPS[$t]}|"
done
echo
echo "same-round ratio vitals-on / vitals-off: median $(median "$RATIOS") (rounds: $RATIOS)"

# Every request of the vitals DP reaches the API (wrk's totals plus the warm-up probes).
expect=$((ON_TOTAL))
got=0
for _ in $(seq 1 40); do
  got=$(curl -sf "$ADMIN/vitals/requests?granularity=10s&start=$((T0 - 20))&end=$(( $(date +%s) + 60 ))&group_by=status_code" |
        python3 -c 'import json,sys; print(sum(r["requests"] for r in json.load(sys.stdin)["data"] if r["status_code"]==200))')
  [[ $got -ge $expect ]] && break
  sleep 1
done
echo "vitals API: $got requests with status 200 counted since the first round; wrk sent $expect to the vitals DP"
rows=$(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d portico -tAc "SELECT count(*) FROM vitals_requests WHERE granularity = 10")
echo "vitals_requests rows at 10 s: $rows (100 consumers, top 10 kept per route: at most 11 per bucket and status)"
