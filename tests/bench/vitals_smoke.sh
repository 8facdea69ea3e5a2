#!/usr/bin/env bash
# bench-smoke for vitals_sim (CTest vitals_sim_smoke): a real portico-cp on a database of its
# own on tests/run.sh's PostgreSQL (PORTICO_TEST_PG_DSN), the entities created through the
# Admin API, then 2 simulated DPs x 3 routes x 2 consumers x 2 status codes, one 2 s flush:
# every batch must be STORED and GET /vitals/requests must show the traffic.
# Without PORTICO_TEST_PG_DSN it exits 77 (CTest: skipped): the CP keeps vitals in PostgreSQL.
#
#   tests/bench/vitals_smoke.sh <source dir> <build dir>
set -euo pipefail
SRC="$(cd "${1:?usage: vitals_smoke.sh <source dir> <build dir>}" && pwd)"
BUILD="$(cd "${2:?usage: vitals_smoke.sh <source dir> <build dir>}" && pwd)"
if [[ -z "${PORTICO_TEST_PG_DSN:-}" ]]; then
  echo "vitals_sim_smoke skipped: PORTICO_TEST_PG_DSN not set (tests/run.sh starts a" \
       "PostgreSQL and sets it; the control plane stores vitals in PostgreSQL only)"
  exit 77
fi
source "$SRC/deploy/lib.sh"
CP="$BUILD/bin/portico-cp"; SIM="$BUILD/bin/vitals_sim"
for b in "$CP" "$SIM"; do [[ -x $b ]] || { echo "missing $b"; exit 1; }; done
WORK="$(mktemp -d /tmp/portico-vitals-smoke.XXXXXX)"
DB="portico_vitals_smoke_$$"
CP_PID=
cleanup() {
  [[ -n $CP_PID ]] && { kill "$CP_PID" 2>/dev/null || true; wait "$CP_PID" 2>/dev/null || true; }
  psql "$PORTICO_TEST_PG_DSN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [[ -f $WORK/cp.log ]] && tail -20 "$WORK/cp.log" >&2; exit 1; }

psql "$PORTICO_TEST_PG_DSN" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $DB" >/dev/null
if [[ $PORTICO_TEST_PG_DSN == *dbname=* ]]; then
  DSN=$(sed -E "s/dbname=[^ ]*/dbname=$DB/" <<<"$PORTICO_TEST_PG_DSN")
else
  DSN="$PORTICO_TEST_PG_DSN dbname=$DB"
fi
"$CP" --pg_dsn="$DSN" migrations up >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; fail "migrations up"; }
ADMIN=$(portico_free_port); CLUSTER=$(portico_free_port)
"$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN --cluster_listen=127.0.0.1:$CLUSTER \
  --cluster_insecure --log_level=warn >"$WORK/cp.log" 2>&1 &
CP_PID=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$ADMIN/status" >/dev/null 2>&1 && break; sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN/status" >/dev/null || fail "portico-cp did not start"

"$SIM" --cp=127.0.0.1:$CLUSTER --admin=127.0.0.1:$ADMIN --create_entities --nodes=2 --routes=3 \
  --consumers=2 --statuses=2 --interval_s=2 --duration_s=2 --drain_s=20 --strict \
  --cp_pid=$CP_PID | tee "$WORK/sim.out" || fail "vitals_sim --strict"
grep -q "kept_up=yes" "$WORK/sim.out" || fail "acks did not keep up"

# 2 nodes x 3 routes x 2 consumers x 2 statuses, every cell >= 1 request: all of it is there.
made=$(grep -o 'buckets_made=[0-9]*' "$WORK/sim.out" | cut -d= -f2)
[[ $made == 24 ]] || fail "expected 24 buckets made, got $made"
now=$(date +%s)
body=$(curl -fsS "http://127.0.0.1:$ADMIN/vitals/requests?granularity=10s&group_by=route&start=$((now - 120))&end=$((now + 10))") \
  || fail "GET /vitals/requests"
routes=$(python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(len({r["route"] for r in d}))' <<<"$body")
[[ $routes == 3 ]] || fail "GET /vitals/requests shows $routes routes, expected 3: $body"
curl -fsS "http://127.0.0.1:$ADMIN/metrics" | grep -E '^portico_cp_vitals_(batches_total\{result="stored"\}|rows_total) ' \
  || fail "vitals metrics"
echo "vitals_sim_smoke: ok"
