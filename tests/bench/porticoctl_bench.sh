#!/usr/bin/env bash
# Issue 15's porticoctl figures against a real portico-cp on a private PostgreSQL:
#   - burst.yml (236 services, 286 routes, 1,090 entities) `sync` into an empty config <= 1 s;
#   - a 10,000-route file (1,000 services x 10 routes, one global plugin: 11,001 entities):
#     `sync` into an empty config <= 10 s, `diff` (nothing to change) <= 1 s, `dump` <= 2 s.
# Every sync goes into an empty CP (a new database and a CP started on it; the default group,
# plain Admin API paths), so runs need no reset; each run is a whole porticoctl process, start
# to exit (wall clock). Prints every run and the median per figure. Also times
# `reset --force` of the 10,000-route config once (no goal in the issue).
#
#   tests/bench/porticoctl_bench.sh [build_dir]      (default: build)
#   env: REPEAT=5 (runs per figure) PARALLELISM=10 KEEP=1 (keep the work dir)
#        CP_FLAGS="--admin_workers=16" (more flags for portico-cp)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
CP="$BUILD/bin/portico-cp"; CTL="$BUILD/bin/porticoctl"
REPEAT="${REPEAT:-5}"; PARALLELISM="${PARALLELISM:-10}"
BURST="$ROOT/../shared/fixtures/declarative/kong-spec-fixtures-burst.yml"
for b in "$CP" "$CTL"; do [[ -x "$b" ]] || { echo "missing $b"; exit 1; }; done
source "$ROOT/deploy/lib.sh"
WORK="$(mktemp -d /tmp/porticoctl-bench.XXXXXX)"; chmod 755 "$WORK"
CP_PID=""
cleanup() {
  [[ -n "$CP_PID" ]] && kill "$CP_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg" >/dev/null 2>&1 || true
  [[ "${KEEP:-0}" == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port); ADMIN_PORT=$(free_port); CLUSTER_PORT=$(free_port)
portico_pg_start "$WORK/pg" "$PG_PORT" >/dev/null
db=0
# A new, empty control plane: a new database, migrated, and a CP (on the same ports) on it.
fresh_cp() {
  if [[ -n "$CP_PID" ]]; then kill "$CP_PID"; wait "$CP_PID" 2>/dev/null || true; fi
  db=$((db + 1))
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE portico$db"
  local dsn="host=127.0.0.1 port=$PG_PORT dbname=portico$db user=postgres"
  "$CP" --pg_dsn="$dsn" migrations up >/dev/null 2>&1
  "$CP" --pg_dsn="$dsn" --admin_listen=127.0.0.1:$ADMIN_PORT \
    --cluster_listen=127.0.0.1:$CLUSTER_PORT --cluster_insecure ${CP_FLAGS:-} > "$WORK/cp$db.log" 2>&1 &
  CP_PID=$!
  for _ in $(seq 1 100); do curl -sf "$PORTICO_ADDR/status" >/dev/null && return 0; sleep 0.1; done
  echo "the CP did not start"; tail "$WORK/cp$db.log"; exit 1
}
export PORTICO_ADDR="http://127.0.0.1:$ADMIN_PORT"

python3 - "$WORK/10k.yml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('_format_version: "3.0"\nplugins:\n- name: cors\n  config:\n    origins: ["*"]\nservices:\n')
    for s in range(1000):
        f.write(f"- name: svc{s}\n  url: http://upstream{s % 50}.test:8080/base\n  tags: [bench]\n  routes:\n")
        for r in range(10):
            f.write(f"  - name: svc{s}-r{r}\n    paths: [/s{s}/r{r}]\n    methods: [GET, POST]\n")
PY

# run NAME CMD...: times one porticoctl run (must exit 0), appends the seconds to $WORK/NAME.
run() {
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$WORK/last.out" 2>&1 || { echo "$name failed:"; tail -20 "$WORK/last.out"; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f}')" >> "$WORK/$name"
  grep -q '^Error' "$WORK/last.out" && { echo "$name: errors"; grep '^Error' "$WORK/last.out" | head; exit 1; }
  return 0
}
median() {
  python3 - "$WORK/$1" "$2" "$3" <<'PY'
import statistics, sys
xs = [float(l) for l in open(sys.argv[1])]
print(f"{sys.argv[2]:<44} median {statistics.median(xs)*1000:7.0f} ms  (goal {sys.argv[3]}; runs: "
      + ", ".join(f"{x*1000:.0f}" for x in xs) + ")")
PY
}

for _ in $(seq 1 "$REPEAT"); do
  fresh_cp
  run burst_sync "$CTL" sync -s "$BURST" --parallelism "$PARALLELISM"
  grep -q "Created: 1090" "$WORK/last.out" || { echo "burst sync: unexpected summary"; tail "$WORK/last.out"; exit 1; }
done
for _ in $(seq 1 "$REPEAT"); do
  fresh_cp
  run tenk_sync "$CTL" sync -s "$WORK/10k.yml" --parallelism "$PARALLELISM"
  grep -q "Created: 11001" "$WORK/last.out" || { echo "10k sync: unexpected summary"; tail "$WORK/last.out"; exit 1; }
done
for _ in $(seq 1 "$REPEAT"); do
  run tenk_diff "$CTL" diff -s "$WORK/10k.yml" --non-zero-exit-code
done
for _ in $(seq 1 "$REPEAT"); do
  run tenk_dump "$CTL" dump -o "$WORK/dump.yaml"
done
"$CTL" diff -s "$WORK/dump.yaml" --non-zero-exit-code >/dev/null \
  || { echo "the dump does not diff clean"; exit 1; }
run tenk_reset "$CTL" reset --force --parallelism "$PARALLELISM"

echo "porticoctl bench: parallelism $PARALLELISM, CP flags '${CP_FLAGS:-}', $REPEAT runs each, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
median burst_sync "burst.yml sync into an empty config" "1000 ms"
median tenk_sync "10,000-route file: sync into an empty config" "10000 ms"
median tenk_diff "10,000-route file: diff (no changes)" "1000 ms"
median tenk_dump "10,000-route file: dump" "2000 ms"
median tenk_reset "10,000-route file: reset --force (one run)" "none"
