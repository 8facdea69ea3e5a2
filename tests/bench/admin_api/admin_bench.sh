#!/usr/bin/env bash
# Admin API benchmark: a real portico-cp on a private PostgreSQL 15 with its DEFAULT settings
# (fsync, synchronous_commit and full_page_writes on), driven by admin_load over keep-alive
# connections. Prints one line per figure, then the medians over REPEAT runs.
#
#   tests/bench/admin_api/admin_bench.sh [build_dir] [--smoke]
#   env: REPEAT=3 CREATES=20000 CREATE_CONNS=32 READ_SECONDS=10 READ_CONNS=32 ROUTES=100000
#        ADMIN_WORKERS=8 (read threads; writes get 4x as many, see http_server.h)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
BUILD="${1:-$ROOT/build}"
SMOKE=0
[[ "${2:-}" == "--smoke" ]] && SMOKE=1
REPEAT="${REPEAT:-3}"
CREATES="${CREATES:-20000}"
CREATE_CONNS="${CREATE_CONNS:-32}"
READ_SECONDS="${READ_SECONDS:-10}"
READ_CONNS="${READ_CONNS:-32}"
ROUTES="${ROUTES:-100000}"
ADMIN_WORKERS="${ADMIN_WORKERS:-8}"
if [[ $SMOKE == 1 ]]; then
  REPEAT=1 CREATES=200 CREATE_CONNS=4 READ_SECONDS=1 READ_CONNS=4 ROUTES=2500
fi
CP="$BUILD/bin/portico-cp"
LOAD="$BUILD/bin/admin_load"
[[ -x "$CP" && -x "$LOAD" ]] || { echo "missing $CP or $LOAD (targets portico-cp admin_load)"; exit 1; }

PORTICO_ROOT="$ROOT"
# shellcheck source=../../../deploy/lib.sh
. "$ROOT/deploy/lib.sh"

WORK="$(mktemp -d /tmp/portico-admin-bench.XXXXXX)"
CP_PID=""
cleanup() {
  [[ -n "$CP_PID" ]] && kill "$CP_PID" 2>/dev/null && wait "$CP_PID" 2>/dev/null || true
  portico_pg_stop "$WORK/pg"
  rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT=$(portico_free_port)
portico_pg_start "$WORK/pg" "$PG_PORT"
DSN="host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres"

start_cp() {
  ADMIN_PORT=$(portico_free_port)
  "$CP" --pg_dsn="$DSN" --admin_listen="127.0.0.1:$ADMIN_PORT" \
    --cluster_listen="127.0.0.1:$(portico_free_port)" --cluster_insecure \
    --admin_workers="$ADMIN_WORKERS" --log_level=warn >"$WORK/cp.log" 2>&1 &
  CP_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT") 2>/dev/null; then return; fi
    sleep 0.1
  done
  cat "$WORK/cp.log"; exit 1
}
stop_cp() { kill "$CP_PID"; wait "$CP_PID" 2>/dev/null || true; CP_PID=""; }
reset_db() {
  psql "$DSN" -qAt -c "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public;" >/dev/null
  "$CP" --pg_dsn="$DSN" migrations up >/dev/null 2>&1
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "postgres: $(psql "$DSN" -qAt -c 'SHOW server_version'), fsync=$(psql "$DSN" -qAt -c 'SHOW fsync'), synchronous_commit=$(psql "$DSN" -qAt -c 'SHOW synchronous_commit')"

creates=() reads=() worst_pages=()
for run in $(seq "$REPEAT"); do
  reset_db
  start_cp
  out=$("$LOAD" create "$ADMIN_PORT" "$CREATE_CONNS" "$CREATES" svc); echo "run $run: $out"
  creates+=("$(echo "$out" | field rate)")
  out=$("$LOAD" read "$ADMIN_PORT" "$READ_CONNS" "$READ_SECONDS" "$CREATES" svc); echo "run $run: $out"
  reads+=("$(echo "$out" | field rate)")
  stop_cp
done
# Listing: ROUTES routes created once through the Admin API, then paged through REPEAT times.
reset_db
start_cp
out=$("$LOAD" routes "$ADMIN_PORT" "$CREATE_CONNS" "$ROUTES" r); echo "seed: $out"
psql "$DSN" -qAt -c "VACUUM ANALYZE" >/dev/null
for run in $(seq "$REPEAT"); do
  out=$("$LOAD" list "$ADMIN_PORT" routes 1000); echo "run $run: $out"
  worst_pages+=("$(echo "$out" | field max_ms)")
done
stop_cp

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median creates/s:           $(printf '%s\n' "${creates[@]}" | median)   (goal >= 2000)"
echo "median reads/s:             $(printf '%s\n' "${reads[@]}" | median)   (goal >= 10000)"
echo "median slowest page (ms):   $(printf '%s\n' "${worst_pages[@]}" | median)   (goal <= 50, $ROUTES routes, size 1000)"
