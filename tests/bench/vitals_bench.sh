#!/usr/bin/env bash
# Vitals benchmark: a private PostgreSQL (default settings), a real portico-cp (default
# settings, plain-text cluster listener), the services/routes/consumers created through the
# Admin API, then tests/bench/vitals_sim: NODES simulated DPs, each reporting every route x
# consumer x status code every INTERVAL_S (top-N folded as the CP's settings say) over
# ConfigSync.Report. Reports:
#   - CP CPU (utime+stime from /proc/<pid>/stat, % of one core) and PostgreSQL's (postmaster,
#     its backends and its exited children), over the flushes;
#   - rows/s written (portico_cp_vitals_rows_total, and pg_stat_user_tables n_tup_ins+upd);
#   - bytes/day (growth of pg_total_relation_size of the three vitals tables over the run,
#     extrapolated), and the steady-state size the retention windows imply;
#   - the ingest lag: portico_cp_vitals_ingest_lag_seconds and _queue_batches sampled every
#     second, per interval (must not grow), and vitals_sim's own backlog and ack latency;
#   - the query: 1 h of 10 s rows for FILL_ROUTES routes written straight into vitals_routes
#     with generate_series (not an hour of ingest) and packed (`portico-cp vitals pack`), then
#     GET /vitals/requests?granularity=10s&group_by=route&start=<now-3600>&end=<now> with curl,
#     QUERY_RUNS times: median and max time, answer size.
#
#   tests/bench/vitals_bench.sh [build_dir]      (default: build; needs portico-cp and
#                                                 vitals_sim built there)
#   env: NODES=50 ROUTES=1000 CONSUMERS=100 STATUSES=4 INTERVAL_S=10
#        DURATION_S=300 (shorten with e.g. DURATION_S=60)
#        PHASES=ingest,query (the parts to run)
#        FILL_ROUTES=$ROUTES FILL_CONSUMERS=<top_consumers+1 incl. "*", or CONSUMERS when not
#          folded> FILL_STATUSES=$STATUSES QUERY_RUNS=5
#        REPEAT_TRAFFIC=1 (vitals_sim --repeat_traffic: each node sends its first flush's
#          counts again every flush, so the simulator, which shares this host with the CP and
#          PostgreSQL, builds its ~2.2M buckets once instead of every 10 s; 0: fresh counts)
#        KEEP=0 (1: keep the work folder: cp.log, sim.out, samples.txt, PostgreSQL)
#        CP_EXTRA_FLAGS="..." (extra portico-cp flags; the figures are for the defaults)
#
# The figures are for this host: nproc cores shared by PostgreSQL, the CP, the simulator
# (its own CPU is printed as sim_cpu_s) and whatever else runs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
NODES="${NODES:-50}"; ROUTES="${ROUTES:-1000}"; CONSUMERS="${CONSUMERS:-100}"
STATUSES="${STATUSES:-4}"; INTERVAL_S="${INTERVAL_S:-10}"; DURATION_S="${DURATION_S:-300}"
PHASES="${PHASES:-ingest,query}"; QUERY_RUNS="${QUERY_RUNS:-5}"
REPEAT_TRAFFIC="${REPEAT_TRAFFIC:-1}"
FILL_ROUTES="${FILL_ROUTES:-$ROUTES}"; FILL_STATUSES="${FILL_STATUSES:-$STATUSES}"
SERVICES=$(( ROUTES / 10 > 0 ? ROUTES / 10 : 1 ))
want() { [[ ",$PHASES," == *",$1,"* ]]; }
CP="$BUILD/bin/portico-cp"; SIM="$BUILD/bin/vitals_sim"
for b in "$CP" "$SIM"; do [[ -x $b ]] || { echo "missing $b"; exit 1; }; done
source "$ROOT/deploy/lib.sh"
PORTICO_ROOT="$ROOT"
unset PORTICO_PG_EXTRA_OPTS  # PostgreSQL's defaults: the figures are for a stock server

WORK="$(mktemp -d /tmp/portico-vitals-bench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg"
  if [[ ${KEEP:-0} == 1 ]]; then echo "[vitals_bench] kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { echo "[vitals_bench] $*" >&2; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'; }

PG_PORT=$(portico_free_port)
portico_pg_start "$WORK/pg" "$PG_PORT"
psql_() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d portico -v ON_ERROR_STOP=1 -qAt "$@"; }
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE portico" >/dev/null
DSN="host=127.0.0.1 port=$PG_PORT dbname=portico user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null
PG_MASTER=$(head -1 "$WORK/pg/data/postmaster.pid")

ADMIN_PORT=$(portico_free_port); CLUSTER_PORT=$(portico_free_port)
"$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT \
  --cluster_listen=127.0.0.1:$CLUSTER_PORT --cluster_insecure --log_level=warn \
  ${CP_EXTRA_FLAGS:-} >>"$WORK/cp.log" 2>&1 &
CP_PID=$!; PIDS+=($CP_PID)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/status" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN_PORT/status" >/dev/null || { log "portico-cp did not start:"; tail -5 "$WORK/cp.log" >&2; exit 1; }

SIM_ARGS=(--cp=127.0.0.1:$CLUSTER_PORT --admin=127.0.0.1:$ADMIN_PORT --routes="$ROUTES"
          --services="$SERVICES" --consumers="$CONSUMERS" --statuses="$STATUSES")
log "creating $SERVICES services, $ROUTES routes, $CONSUMERS consumers through the Admin API"
"$SIM" "${SIM_ARGS[@]}" --create_entities --duration_s=0 | tee -a "$WORK/sim.out" >&2

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# PostgreSQL: the postmaster with its exited children (cutime+cstime) and the live backends.
pg_ticks() {
  local t
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PG_MASTER/stat")
  for p in $(pgrep -P "$PG_MASTER"); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
metric() { awk -v m="$1" '$1 == m {print $2}' <<<"$2"; }
vitals_bytes() {
  psql_ -c "SELECT pg_total_relation_size('vitals_requests') + pg_total_relation_size('vitals_routes') + pg_total_relation_size('vitals_nodes')"
}
tuples() {
  psql_ -c "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables
            WHERE relname IN ('vitals_requests', 'vitals_routes', 'vitals_nodes', 'vitals_senders')"
}

REPORT=()
say() { REPORT+=("$*"); }
say "host: $(nproc) cores ($(uname -m)), shared; PostgreSQL $(psql_ -c 'SHOW server_version') and portico-cp with default settings"

# --- ingest -------------------------------------------------------------------------------------
if want ingest; then
  # One sample a second: time, CP ticks, PostgreSQL ticks, lag, queue, rows, writes, and the
  # write transactions' total seconds.
  sampler() {
    while :; do
      local m t
      t=$(date +%s%3N)
      m=$(curl -fs --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" || true)
      echo "$t $(cpu_ticks $CP_PID) $(pg_ticks)" \
        "$(metric portico_cp_vitals_ingest_lag_seconds "$m") $(metric portico_cp_vitals_queue_batches "$m")" \
        "$(metric portico_cp_vitals_rows_total "$m") $(metric portico_cp_vitals_writes_total "$m")" \
        "$(metric portico_cp_vitals_write_seconds_sum "$m")" >>"$WORK/samples.txt"
      sleep 1
    done
  }
  BYTES0=$(vitals_bytes); TUP0=$(tuples)
  sampler & SAMPLER=$!; PIDS+=($SAMPLER)
  log "vitals_sim: $NODES nodes x $ROUTES routes x $CONSUMERS consumers x $STATUSES statuses every ${INTERVAL_S}s for ${DURATION_S}s"
  "$SIM" "${SIM_ARGS[@]}" --nodes="$NODES" --interval_s="$INTERVAL_S" --duration_s="$DURATION_S" \
    --cp_pid="$CP_PID" --drain_s=120 --repeat_traffic="$REPEAT_TRAFFIC" | tee -a "$WORK/sim.out" >&2
  sleep 2  # one more sample after the drain; pg_stat catches up
  kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
  BYTES1=$(vitals_bytes); TUP1=$(tuples)
  psql_ -F ' ' -c "SELECT 'vitals_requests', granularity, count(*), count(DISTINCT ts) FROM vitals_requests GROUP BY 2
                   UNION ALL SELECT 'vitals_routes', granularity, count(*), count(DISTINCT ts) FROM vitals_routes GROUP BY 2
                   UNION ALL SELECT 'vitals_nodes', granularity, count(*), count(DISTINCT ts) FROM vitals_nodes GROUP BY 2
                   ORDER BY 1, 2" >"$WORK/rows.txt"
  REPORT+=("$(python3 - "$WORK" "$INTERVAL_S" "$BYTES0" "$BYTES1" "$TUP0" "$TUP1" "$(getconf CLK_TCK)" <<'PY'
import re, sys
work, interval, b0, b1, t0, t1, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
sim = open(f"{work}/sim.out").read()
def kv(key, text=sim, conv=float):
    m = re.findall(rf"\b{key}=([^\s]+)", text)
    return conv(m[-1]) if m else None
first = kv("first_flush_unix_ms", conv=int)
flushes = kv("flushes", conv=int)
samples = []
for line in open(f"{work}/samples.txt"):
    f = line.split()
    if len(f) < 8: continue
    try: samples.append([int(f[0]), int(f[1]), int(f[2])] + [float(x) for x in f[3:8]])
    except ValueError: pass
out = []
end_ms = first + flushes * interval * 1000
run = [s for s in samples if first <= s[0] <= end_ms + 100]
if len(run) >= 2:
    a, b = run[0], run[-1]
    dt = (b[0] - a[0]) / 1000
    out.append(f"CPU over the flushes ({dt:.0f} s): portico-cp {100 * (b[1] - a[1]) / hz / dt:.1f}% of one core, "
               f"PostgreSQL {100 * (b[2] - a[2]) / hz / dt:.1f}%, vitals_sim {kv('sim_cpu_s')} s in all")
# Rows: everything the run wrote (through the drain), per second of cadence.
run_s = flushes * interval
rows = [s for s in samples if s[5] == s[5]]
if rows:
    dr = rows[-1][5] - rows[0][5]; dw = rows[-1][6] - rows[0][6]; ds = rows[-1][7] - rows[0][7]
    out.append(f"rows written: {dr:.0f} (portico_cp_vitals_rows_total) = {dr / run_s:.0f} rows/s over {run_s} s of flushes, "
               f"in {dw:.0f} write transactions of {ds / max(1, dw):.2f} s on average; "
               f"pg_stat n_tup_ins+n_tup_upd: {t1 - t0} = {(t1 - t0) / run_s:.0f}/s")
out.append(f"vitals tables: {b0 / 1e6:.1f} MB -> {b1 / 1e6:.1f} MB, growth {(b1 - b0) / 1e6:.1f} MB in {run_s} s "
           f"= {(b1 - b0) / run_s * 86400 / 1e9:.2f} GB/day extrapolated (the first hour's rate: every granularity still filling)")
# Steady state from the rows per bucket and the retention (vitals_store.h kGranularities).
keep = {10: 3600, 60: 48 * 3600, 3600: 90 * 24 * 3600}
total_rows, per_bucket = 0, {}
for line in open(f"{work}/rows.txt"):
    t, g, n, buckets = line.split()
    g, n, buckets = int(g), int(n), int(buckets)
    total_rows += n
    per_bucket[(t, g)] = n / max(1, buckets)
if total_rows:
    bpr = b1 / total_rows
    steady = sum(r * keep[g] / g for (t, g), r in per_bucket.items())
    later = sum(r * 86400 / g for (t, g), r in per_bucket.items() if g == 3600)
    out.append("rows per bucket: " + ", ".join(f"{t} {g}s {r:.0f}" for (t, g), r in sorted(per_bucket.items())) +
               f"; {bpr:.0f} bytes per row (heap+indexes, incl. dead tuples)")
    out.append(f"steady state: {steady / 1e6:.1f} M rows = {steady * bpr / 1e9:.1f} GB (10 s kept 1 h, 1 min 48 h, 1 h 90 days); "
               f"after 48 h it grows by the 1 h rows only: {later * bpr / 1e9:.3f} GB/day")
# Ingest lag per interval (flush k at first + k*interval): max and the last sample before the next flush.
lines, ends = [], []
for k in range(flushes):
    lo, hi = first + k * interval * 1000, first + (k + 1) * interval * 1000
    w = [s for s in samples if lo <= s[0] < hi and s[3] == s[3]]
    if not w: continue
    lines.append(f"{max(s[3] for s in w):.1f}s/{max(s[4] for s in w):.0f}")
    ends.append(w[-1][4])
grows = any(e > 0 for e in ends[len(ends) // 2:]) and ends[-1] >= max(ends[: max(1, len(ends) // 2)])
out.append("ingest lag per interval (max lag / max queued batches): " + " ".join(lines))
out.append("queued batches at each interval's end: " + " ".join(f"{e:.0f}" for e in ends) +
           f" -> {'GROWING' if grows else 'not growing'}")
summ = " ".join(l for l in sim.splitlines() if l.startswith("summary ") and "cp_cpu_pct" not in l)
out.append("vitals_sim: " + " ".join(f"{k}={kv(k, summ, str)}" for k in (
    "batches_made", "batches_sent", "stored", "duplicate", "refused", "retry", "unacked", "ack_p50_ms",
    "ack_p99_ms", "ack_max_ms", "flush_to_ack_p99_ms", "outstanding_at_interval_ends", "kept_up", "stream_failures")))
print("\n".join(out))
PY
)")
  grep -q "^refused" "$WORK/sim.out" && say "REFUSALS: $(grep '^refused' "$WORK/sim.out" | head -3 | tr '\n' ' ')"
  say "sim: $(grep -m1 '^vitals_sim ' "$WORK/sim.out"); $(grep -m1 '^settings ' "$WORK/sim.out")"
fi

# --- query --------------------------------------------------------------------------------------
if want query; then
  # The fill below writes the rows ingest writes: wait for the CP's queue to empty first (a
  # lock wait or a deadlock with its writer otherwise).
  T0=$(date +%s.%N)
  # Empty, and no rows written for 3 s (the last dequeued batch may still be being written).
  quiet=0; last_rows=-1
  for _ in $(seq 600); do
    m=$(curl -fs --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" || true)
    q=$(metric portico_cp_vitals_queue_batches "$m"); rows=$(metric portico_cp_vitals_rows_total "$m")
    if [[ ${q:-0} == 0 && ${rows:-0} == "$last_rows" ]]; then quiet=$((quiet + 1)); else quiet=0; fi
    last_rows=${rows:-0}
    ((quiet >= 3)) && break
    sleep 1
  done
  [[ ${q:-0} == 0 ]] || { log "the CP's vitals queue did not empty in 600 s ($q batches)"; exit 1; }
  want ingest && say "after the run the CP's vitals queue emptied in $(since "$T0") s"
  TOP=$(grep -o 'top_consumers=[0-9]*' "$WORK/sim.out" | head -1 | cut -d= -f2 || true)
  if [[ -z $TOP ]]; then  # no ingest phase: ask the CP through a one-node, one-flush run
    TOP=$("$SIM" "${SIM_ARGS[@]}" --nodes=1 --interval_s=1 --duration_s=1 --align=false |
          grep -o 'top_consumers=[0-9]*' | head -1 | cut -d= -f2)
  fi
  # The rows 1 h of this load leaves per route and status: the top N consumers and "*".
  if [[ -z ${FILL_CONSUMERS:-} ]]; then
    FILL_CONSUMERS=$(( CONSUMERS > TOP ? TOP + 1 : CONSUMERS ))
  fi
  FOLD=$(( CONSUMERS > TOP ? 1 : 0 ))
  NOW=$(date +%s); B=$(( NOW - NOW % 10 ))
  # The retention job would start deleting the fill's oldest bucket 10 s after it: paused.
  psql_ -c "INSERT INTO vitals_jobs (name, last_run) VALUES ('retention', $((NOW + 1000000000)))
            ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run"
  psql_ -c "DELETE FROM vitals_routes WHERE granularity = 10"
  log "filling 1 h of 10 s rows of vitals_routes (what group_by=route reads): $FILL_ROUTES routes x $FILL_STATUSES statuses x 360 buckets"
  T0=$(date +%s.%N)
  # Ids as vitals_sim's entityId(); synthetic counts (16 requests a row, fixed histograms).
  psql_ -c "INSERT INTO vitals_routes (granularity, group_name, ts, service, route, status,
           requests, bytes_in, bytes_out, max_total, max_upstream, max_proxy,
           t3, t4, t5, u2, u3, u4, p0, p1)
    SELECT 10, 'default', ts,
           '7e570001-0000-4000-8000-' || lpad((r % $SERVICES)::text, 12, '0'),
           '7e570002-0000-4000-8000-' || lpad(r::text, 12, '0'),
           (ARRAY[200,404,500,302,201,401,503,429,301,403])[s + 1],
           16, 16 * 350, 16 * 1800, 50, 20, 2, 4, 8, 4, 4, 8, 4, 12, 4
    FROM generate_series($((B - 3590)), $B, 10) ts, generate_series(0, $FILL_ROUTES - 1) r,
         generate_series(0, $FILL_STATUSES - 1) s"
  FILL_S=$(since "$T0")
  T0=$(date +%s.%N)
  psql_ -c "VACUUM ANALYZE vitals_routes"
  VAC_S=$(since "$T0")
  # The packed 10 s buckets (vitals_route_buckets) that ingest would have written beside them.
  T0=$(date +%s.%N)
  "$CP" --pg_dsn="$DSN" vitals pack >/dev/null
  PACK_S=$(since "$T0")
  FILL_ROWS=$(psql_ -c "SELECT count(*) FROM vitals_routes WHERE granularity = 10")
  PACKED=$(psql_ -c "SELECT count(*) || ' packed buckets, ' || (sum(length(data)) / 1000000) || ' MB' FROM vitals_route_buckets")
  FILL_MB=$(psql_ -c "SELECT pg_total_relation_size('vitals_routes') / 1000000")
  say "query: 1 h of 10 s rows written with SQL generate_series (not an hour of ingest): $FILL_ROWS rows" \
      "of vitals_routes ($FILL_ROUTES routes x $FILL_STATUSES statuses x 360; consumers are added up in this table), $FILL_MB MB;" \
      "fill ${FILL_S} s, VACUUM ANALYZE ${VAC_S} s, portico-cp vitals pack ${PACK_S} s ($PACKED); retention paused"
  Q="granularity=10s&group_by=route&start=$((NOW - 3600))&end=$NOW"
  # One answer kept and checked; the timed runs discard theirs (writing 100 MB to this disk is
  # the client's time, not the CP's).
  read -r code secs size < <(curl -s -o "$WORK/answer.json" -w '%{http_code} %{time_total} %{size_download}\n' \
    "http://127.0.0.1:$ADMIN_PORT/vitals/requests?$Q")
  items=$(grep -o '"timestamp"' "$WORK/answer.json" | wc -l || true)
  log "query check run: HTTP $code, ${secs} s, $size bytes, $items items"
  [[ $code == 200 ]] || log "answer: $(head -c 300 "$WORK/answer.json")"
  TIMES=()
  for i in $(seq "$QUERY_RUNS"); do
    read -r code secs size < <(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' \
      "http://127.0.0.1:$ADMIN_PORT/vitals/requests?$Q")
    TIMES+=("$secs")
    log "query run $i: HTTP $code, ${secs} s, $size bytes"
  done
  # The same rows straight from PostgreSQL (what the CP reads before adding them up).
  T0=$(date +%s.%N)
  RAW_BYTES=$(psql_ -c "COPY (SELECT * FROM vitals_routes WHERE granularity = 10 AND group_name = 'default'
      AND ts >= $((NOW - 3600 - NOW % 10)) AND ts < $((NOW - NOW % 10 + 10))) TO STDOUT" | wc -c)
  RAW_S=$(since "$T0")
  MED=$(printf '%s\n' "${TIMES[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  MAX=$(printf '%s\n' "${TIMES[@]}" | sort -g | tail -1)
  say "GET /vitals/requests?$Q: HTTP $code, median ${MED} s, max ${MAX} s over $QUERY_RUNS runs" \
      "(all: ${TIMES[*]}); answer $size bytes, $items items (routes x buckets);" \
      "the same rows by psql COPY: ${RAW_S} s, $RAW_BYTES bytes;" \
      "portico-cp RSS $(awk '/^VmRSS/ {print $2}' /proc/$CP_PID/status) kB, peak $(awk '/^VmHWM/ {print $2}' /proc/$CP_PID/status) kB"
fi

echo
echo "== vitals bench: $NODES nodes x $ROUTES routes x $CONSUMERS consumers x $STATUSES statuses, every ${INTERVAL_S} s, ${DURATION_S} s ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
printf '%s\n' "${REPORT[@]}"
