#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and starts a private PostgreSQL, a
# control plane, a data plane and a demo upstream on this machine, loads a demo service and
# route through the Admin API, proves it with one proxied request, and prints what to curl.
#
#   deploy/quickstart.sh          start (again); stops what an earlier run left first
#   deploy/quickstart.sh stop     stop everything it started (PostgreSQL data is kept)
#   deploy/quickstart.sh status   show what is running
#
# Everything lives in .portico/ at the top of the checkout (git-ignored): the PostgreSQL
# data folder, logs, pid files and the chosen ports.
set -euo pipefail

PORTICO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PORTICO_ROOT
source "$PORTICO_ROOT/deploy/lib.sh"

STATE=$PORTICO_ROOT/.portico
BUILD=${PORTICO_BUILD_DIR:-$PORTICO_ROOT/build}
CP_BIN=$BUILD/bin/portico-cp
DP_BIN=$BUILD/bin/portico-dp
ECHO_BIN=$BUILD/bin/portico-echo

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() {
  printf 'quickstart: %s\n' "$*" >&2
  exit 1
}

pid_alive() { [[ -f $STATE/$1.pid ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

stop_one() {
  local name=$1
  if pid_alive "$name"; then
    local pid
    pid=$(cat "$STATE/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$name.pid"
}

stop_all() {
  stop_one dp
  stop_one cp
  stop_one upstream
  portico_pg_stop "$STATE/pg"
}

# A port for `name`: the default if it is free, else any free one.
pick_port() {
  local default=$1
  if (exec 3<>"/dev/tcp/127.0.0.1/$default") 2>/dev/null; then
    portico_free_port
  else
    echo "$default"
  fi
}

# start_bg <name> <command...>: runs a command in the background with its log in .portico/.
start_bg() {
  local name=$1
  shift
  setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

wait_http() {
  local url=$1 what=$2 log=$3
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  tail -n 20 "$log" >&2 || true
  die "$what did not come up at $url (log: $log)"
}

case ${1:-start} in
  stop)
    stop_all
    say "stopped (PostgreSQL data kept in $STATE/pg; delete $STATE to start from scratch)"
    exit 0
    ;;
  status)
    for n in upstream cp dp; do
      if pid_alive $n; then echo "$n: running (pid $(cat "$STATE/$n.pid"))"; else echo "$n: stopped"; fi
    done
    if [[ -f $STATE/pg/data/postmaster.pid ]]; then echo "postgres: running"; else echo "postgres: stopped"; fi
    exit 0
    ;;
  start) ;;
  *) die "usage: deploy/quickstart.sh [start|stop|status]" ;;
esac

mkdir -p "$STATE"
stop_all

say "installing missing Debian packages (deploy/install-deps.sh build runtime)"
"$PORTICO_ROOT/deploy/install-deps.sh" build runtime

# PostgreSQL starts (initdb on the first run) while the programs build: the build is the
# long part, and the server needs none of it.
# The PostgreSQL start and the build run as jobs in process groups of their own (set -m), so
# that stop_starting can end the build's whole tree (cmake, ninja, the compilers): without it
# they ignore the terminal's Ctrl-C and would go on after the script.
pg_port=$(portico_free_port)
say "starting PostgreSQL 15 on 127.0.0.1:$pg_port (data in $STATE/pg; log: $STATE/pg-start.log)"
set -m
(
  portico_pg_start "$STATE/pg" "$pg_port"
  psql "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname = 'portico'" | grep -q 1 ||
    psql "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" -q -c "CREATE DATABASE portico"
) >"$STATE/pg-start.log" 2>&1 &
pg_start_pid=$!

# Only the three programs it runs (the tests are tests/run.sh's), with ninja's progress.
say "building portico-cp, portico-dp and portico-echo (cmake + ninja in $BUILD; log: $STATE/build.log)"
build_start=$(date +%s)
portico_build "$BUILD" -- portico-cp portico-dp portico-echo >"$STATE/build.log" 2>&1 &
build_pid=$!
set +m
# A failed or interrupted build stops the build and the PostgreSQL started beside it. The
# PostgreSQL start is waited for rather than killed: an initdb or pg_ctl cut short can leave a
# server that no pid file names yet.
stop_starting() {
  kill -TERM -- "-$build_pid" 2>/dev/null || true
  wait "$build_pid" 2>/dev/null || true
  wait "$pg_start_pid" 2>/dev/null || true
  portico_pg_stop "$STATE/pg"
}
trap 'stop_starting; printf "quickstart: interrupted; the build and PostgreSQL are stopped\n" >&2; exit 130' INT TERM
# Progress every 5 s; the build's end is noticed within 0.2 s.
last_report=$SECONDS
while kill -0 "$build_pid" 2>/dev/null; do
  sleep 0.2
  if ((SECONDS - last_report >= 5)); then
    last_report=$SECONDS
    step=$(grep -o '^\[[0-9]*/[0-9]*\]' "$STATE/build.log" | tail -n 1 || true)
    if [[ -n $step ]]; then
      say "  building: step ${step//[\[\]]/} after $(($(date +%s) - build_start)) s"
    fi
  fi
done
if ! wait "$build_pid"; then
  tail -n 40 "$STATE/build.log" >&2
  stop_starting
  die "build failed (full log: $STATE/build.log)"
fi
trap - INT TERM
say "built in $(($(date +%s) - build_start)) s"

wait "$pg_start_pid" || { tail -n 20 "$STATE/pg-start.log" >&2; die "PostgreSQL did not start (log: $STATE/pg-start.log)"; }
export PORTICO_PG_DSN="host=127.0.0.1 port=$pg_port user=postgres dbname=portico"

say "applying migrations (portico-cp migrations up)"
"$CP_BIN" migrations up

admin_port=$(pick_port 8001)
cluster_port=$(pick_port 8005)
proxy_port=$(pick_port 8000)
proxy_ssl_port=$(pick_port 8443)
status_port=$(pick_port 8100)
portal_port=$(pick_port 8003)
console_port=$(pick_port 8002)
# A free port can be taken by someone else before the upstream binds it: try a few.
for attempt in 1 2 3 4 5; do
  upstream_port=$(portico_free_port)
  start_bg upstream "$ECHO_BIN" --port="$upstream_port"
  up=0
  for _ in $(seq 1 50); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$upstream_port/" 2>/dev/null; then up=1; break; fi
    kill -0 "$(cat "$STATE/upstream.pid")" 2>/dev/null || break
    sleep 0.1
  done
  [[ $up == 1 ]] && break
  stop_one upstream
  [[ $attempt == 5 ]] && { cat "$STATE/upstream.log" >&2; die "the demo upstream did not start"; }
done
say "started the demo upstream on 127.0.0.1:$upstream_port"

# Cluster mTLS as in production, in Kong's "shared" mode: CP and DP hold the same self-signed
# certificate and each pins it (docs: README, "Cluster TLS").
if [[ ! -s $STATE/cluster.crt || ! -s $STATE/cluster.key ]]; then
  say "making the cluster certificate ($STATE/cluster.crt, shared mode)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1095 \
    -subj "/CN=portico-cluster" -addext "subjectAltName=DNS:portico-cluster" \
    -keyout "$STATE/cluster.key" -out "$STATE/cluster.crt" 2>/dev/null ||
    die "openssl could not make the cluster certificate"
  chmod 600 "$STATE/cluster.key"
fi
cluster_tls=(--cluster_cert="$STATE/cluster.crt" --cluster_key="$STATE/cluster.key"
             --cluster_mtls=shared)

say "starting portico-cp (Admin API 127.0.0.1:$admin_port, cluster 127.0.0.1:$cluster_port)"
start_bg cp "$CP_BIN" --admin_listen="127.0.0.1:$admin_port" \
  --cluster_listen="127.0.0.1:$cluster_port" --portal_listen="127.0.0.1:$portal_port" \
  --console_listen="127.0.0.1:$console_port" "${cluster_tls[@]}"
wait_http "http://127.0.0.1:$admin_port/status" "portico-cp" "$STATE/cp.log"

say "starting portico-dp (proxy 127.0.0.1:$proxy_port, HTTPS 127.0.0.1:$proxy_ssl_port, status 127.0.0.1:$status_port)"
start_bg dp "$DP_BIN" --proxy_listen="127.0.0.1:$proxy_port" \
  --proxy_ssl_listen="127.0.0.1:$proxy_ssl_port" \
  --status_listen="127.0.0.1:$status_port" --cp_address="127.0.0.1:$cluster_port" \
  "${cluster_tls[@]}" --config_cache_path="$STATE/dp-config.cache"

admin=http://127.0.0.1:$admin_port
say "loading the demo config: service 'demo' -> 127.0.0.1:$upstream_port, route 'demo' on /demo"
curl -fsS -o /dev/null -X PUT "$admin/services/demo" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$upstream_port\"}" || die "could not create the demo service"
curl -fsS -o /dev/null -X PUT "$admin/routes/demo" -H 'Content-Type: application/json' \
  -d '{"paths":["/demo"],"service":{"name":"demo"}}' || die "could not create the demo route"

wait_http "http://127.0.0.1:$status_port/status/ready" "portico-dp" "$STATE/dp.log"
ok=0
for _ in $(seq 1 50); do
  if curl -fsS "http://127.0.0.1:$proxy_port/demo/hello" 2>/dev/null | grep -q '"path":"/hello"'; then
    ok=1
    break
  fi
  sleep 0.1
done
[[ $ok == 1 ]] || die "the proxied request did not reach the demo upstream (logs in $STATE)"

cat >"$STATE/ports" <<EOF
pg=$pg_port admin=$admin_port cluster=$cluster_port proxy=$proxy_port proxy_ssl=$proxy_ssl_port status=$status_port portal=$portal_port console=$console_port upstream=$upstream_port
EOF

say "Portico is running. The demo route works:"
cat <<EOF

  Proxy (data plane):   http://127.0.0.1:$proxy_port   https://127.0.0.1:$proxy_ssl_port
  Admin API (control):  http://127.0.0.1:$admin_port
  Console (web):        http://127.0.0.1:$console_port
  Dev Portal:           http://127.0.0.1:$portal_port
  DP status:            http://127.0.0.1:$status_port/status

  curl -i http://127.0.0.1:$proxy_port/demo/hello            # proxied to the demo upstream
  curl -ik https://127.0.0.1:$proxy_ssl_port/demo/hello      # the same over TLS (self-signed default cert)
  curl -s http://127.0.0.1:$admin_port/services              # what the control plane holds
  curl -s http://127.0.0.1:$admin_port/routes
  curl -s -X POST http://127.0.0.1:$admin_port/services -H 'Content-Type: application/json' \\
       -d '{"name":"echo2","url":"http://127.0.0.1:$upstream_port/v2"}'
  curl -s -X POST http://127.0.0.1:$admin_port/services/echo2/routes -H 'Content-Type: application/json' \\
       -d '{"paths":["/v2"]}'
  curl -i http://127.0.0.1:$proxy_port/v2/anything           # live within milliseconds
  curl -s http://127.0.0.1:$status_port/status               # the DP's applied generation

  Logs: $STATE/*.log    Stop: deploy/quickstart.sh stop
EOF
