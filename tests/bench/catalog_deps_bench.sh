#!/usr/bin/env bash
# Observed dependencies (issue 14): GET /service-catalog/services/{svc}/dependencies over an
# hour of per-consumer vitals. A real portico-cp on a private PostgreSQL; the gateway config
# (SERVICES services with a route each, CONSUMERS consumers) goes in by POST /config, the
# catalog through the Admin API (CONSUMERS catalog services, each calling as one consumer and
# with a version bound to SERVICES/CONSUMERS gateway services), and the vitals by SQL: 60
# one-minute buckets of the last hour in which every gateway service is called by
# CALLERS_PER_SERVICE consumers (SERVICES x CALLERS_PER_SERVICE x 60 rows of
# vitals_requests). Each read is sent REPEAT times (curl, loopback); prints median and max.
#
#   tests/bench/catalog_deps_bench.sh [build_dir]      (default: build)
#   env: SERVICES=1000 CONSUMERS=100 CALLERS_PER_SERVICE=10 REPEAT=11 KEEP=1 (keep the work dir)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
CP="$BUILD/bin/portico-cp"
SERVICES="${SERVICES:-1000}"; CONSUMERS="${CONSUMERS:-100}"
CALLERS_PER_SERVICE="${CALLERS_PER_SERVICE:-10}"; REPEAT="${REPEAT:-11}"
[[ -x "$CP" ]] || { echo "missing $CP"; exit 1; }
source "$ROOT/deploy/lib.sh"
WORK="$(mktemp -d /tmp/catalog-deps-bench.XXXXXX)"; chmod 755 "$WORK"
CP_PID=""
cleanup() {
  [[ -n "$CP_PID" ]] && kill "$CP_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg" >/dev/null 2>&1 || true
  [[ "${KEEP:-0}" == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
PG_PORT=$(portico_free_port); ADMIN_PORT=$(portico_free_port); CLUSTER_PORT=$(portico_free_port)
portico_pg_start "$WORK/pg" "$PG_PORT" >/dev/null
DSN="host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null 2>&1
"$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT --cluster_listen=127.0.0.1:$CLUSTER_PORT \
  --cluster_insecure --console_listen=off --portal_listen=off > "$WORK/cp.log" 2>&1 &
CP_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/status" >/dev/null && break; sleep 0.1
done
ADMIN="http://127.0.0.1:$ADMIN_PORT"

python3 - "$ADMIN" "$SERVICES" "$CONSUMERS" <<'PY'
import json, sys, urllib.request
admin, n_services, n_consumers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def call(method, path, body):
    req = urllib.request.Request(admin + path, method=method, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req).read()
call("POST", "/config", {
    "_format_version": "3.0",
    "services": [{"name": f"gw{i}", "url": f"http://127.0.0.1:1/{i}",
                  "routes": [{"name": f"r{i}", "paths": [f"/r{i}"]}]} for i in range(n_services)],
    "consumers": [{"username": f"bot{i}"} for i in range(n_consumers)]})
per = max(1, n_services // n_consumers)
for i in range(n_consumers):
    call("POST", "/service-catalog/services", {
        "name": f"cat{i}", "calls_as": [{"control_plane_id": "default", "consumer_id": f"bot{i}"}]})
    call("POST", f"/service-catalog/services/cat{i}/versions", {
        "version": "1", "gateway_services": [{"control_plane_id": "default", "service_id": f"gw{j}"}
                                             for j in range(i * per, min(n_services, (i + 1) * per))]})
PY

psql "$DSN" -q -c "
INSERT INTO vitals_requests (granularity, group_name, ts, service, route, consumer, status,
  requests, bytes_in, bytes_out, max_total, max_upstream, max_proxy, t2)
SELECT 60, 'default', (extract(epoch FROM now())::bigint / 60) * 60 - 60 * b, s.id::text,
  r.id::text, c.id::text, 200, 7, 0, 0, 3, 0, 0, 7
FROM generate_series(0, 59) b
CROSS JOIN (SELECT id, row_number() OVER (ORDER BY name) n FROM services) s
JOIN routes r ON r.service_id = s.id
JOIN (SELECT id, row_number() OVER (ORDER BY username) n FROM consumers) c
  ON (c.n + s.n) % ($CONSUMERS / $CALLERS_PER_SERVICE) = 0" -c "ANALYZE vitals_requests"
ROWS=$(psql "$DSN" -At -c "SELECT count(*) FROM vitals_requests")
echo "vitals_requests: $ROWS rows (the last hour at 1 min); $(uptime | sed 's/.*load/load/')"
for q in "cat3/dependencies" "cat3/dependencies?direction=dependents" \
         "cat3/dependencies/cat2" "cat3/dependencies?source=declared"; do
  for _ in $(seq 1 "$REPEAT"); do
    curl -s -o /dev/null -w "%{time_total}\n" "$ADMIN/service-catalog/services/$q"
  done | sort -n | awk -v q="$q" '{a[NR] = $1} END {
    printf "%-45s median %6.1f ms  max %6.1f ms\n", q, a[int((NR + 1) / 2)] * 1000, a[NR] * 1000}'
done
