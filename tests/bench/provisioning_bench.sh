#!/usr/bin/env bash
# Issue 13's provisioning figures on a private PostgreSQL and one portico-cp running its own
# CA (--cluster_mtls=pki --keyring):
#   1. issuing a DP certificate through the Admin API: the time of N POSTs (curl's
#      time_total), median and p99;
#   2. a reconnect storm in pki mode: fleet_sim's NODES data planes, every one presenting a
#      certificate issued by that API, connect at once; time until every one is current.
#
#   tests/bench/provisioning_bench.sh [build_dir]   (default: build)
#   env: ISSUES=100 NODES=1000
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
CP="$BUILD/bin/portico-cp"; SIM="$BUILD/bin/fleet_sim"
ISSUES="${ISSUES:-100}"; NODES="${NODES:-1000}"
[[ -x "$CP" && -x "$SIM" ]] || { echo "missing $CP or $SIM"; exit 1; }
source "$ROOT/deploy/lib.sh"
WORK="$(mktemp -d /tmp/portico-prov-bench.XXXXXX)"; chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port); ADMIN_PORT=$(free_port); CLUSTER_PORT=$(free_port)
portico_pg_start "$WORK/pg" "$PG_PORT" >/dev/null
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE portico"
DSN="host=127.0.0.1 port=$PG_PORT dbname=portico user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null 2>&1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PORTICO_LOG_LEVEL=warn "$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT \
  --cluster_listen=127.0.0.1:$CLUSTER_PORT --cluster_mtls=pki --keyring="$WORK/keyring" \
  --cluster_max_pending_per_client=2048 > "$WORK/cp.log" 2>&1 & PIDS+=($!)
ADMIN="http://127.0.0.1:$ADMIN_PORT"
for _ in $(seq 1 100); do curl -sf "$ADMIN/status" >/dev/null && break; sleep 0.1; done
curl -sf -XPOST "$ADMIN/control-planes" -H 'Content-Type: application/json' -d '{"name":"team-a"}' >/dev/null
curl -sf -XPOST "$ADMIN/control-planes/team-a/services" -d name=s -d url=http://127.0.0.1:9 >/dev/null
curl -sf -XPOST "$ADMIN/control-planes/team-a/services/s/routes" -d name=r -d 'paths[]=/' >/dev/null

TIMES=""
for i in $(seq 1 "$ISSUES"); do
  t=$(curl -s -o "$WORK/issued.json" -w '%{time_total}' -XPOST \
      "$ADMIN/control-planes/team-a/data-plane-certificates" -H 'Content-Type: application/json' -d '{}')
  TIMES+="$t "
done
python3 - "$WORK/issued.json" "$WORK" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); w = sys.argv[2]
open(w + "/dp.crt", "w").write(j["cert"]); open(w + "/dp.key", "w").write(j["key"])
open(w + "/ca.crt", "w").write(j["ca_cert"])
PY
python3 -c "
import sys
v = sorted(float(x) * 1000 for x in sys.argv[1].split())
print(f'issuing a DP certificate (POST .../data-plane-certificates, {len(v)} in a row): '
      f'median {v[len(v)//2]:.1f} ms, p99 {v[min(len(v)-1, int(len(v)*0.99))]:.1f} ms, max {v[-1]:.1f} ms')
" "$TIMES"

echo "reconnect storm: $NODES simulated DPs, each presenting an issued certificate (pki), at once:"
"$SIM" --cp=127.0.0.1:$CLUSTER_PORT --nodes="$NODES" --group=team-a --tls_cert="$WORK/dp.crt" \
  --tls_key="$WORK/dp.key" --tls_ca="$WORK/ca.crt" --tls_server_name=localhost \
  --connect_timeout_s=120 2>&1 | grep -v '^$' | tail -8
