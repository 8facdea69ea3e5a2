#!/usr/bin/env bash
# Config-sync benchmark: a private PostgreSQL, a real portico-cp loaded with 10,000 services,
# 10,000 routes and 10,000 consumers (through the Admin API, keep-alive, 4 connections),
# then fleet_sim (simulated DPs over real gRPC) and a real portico-dp. Writes the medians of
# REPEAT runs into the "Config sync" section of tests/bench/RESULTS.md (that section only).
#
#   tests/bench/sync_bench.sh [build_dir]          (default: build; needs portico-cp,
#                                                    portico-dp and fleet_sim built there)
#   env: REPEAT=3 CHANGES=40 ENTITIES=10000 WRITE_RESULTS=1 KEEP=0 (keep the work folder)
#        CP_EXTRA_FLAGS="--cluster_max_concurrent_syncs=64 ..." (extra portico-cp flags)
#        PHASES=dp,sim,storm,mem: the parts to run. A reduced, faster run for the per-stream
#          figures only: PHASES=sim,mem ENTITIES=300 WRITE_RESULTS=0 (the CPU ratio then has a
#          much smaller fixed part per change, so only the per-DP cost, printed as
#          cp_us_per_dp_change, compares with a full run).
#        PERF=1: perf record -g the CP during the first 200-DP run (perf.data in the work folder).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
REPEAT="${REPEAT:-3}"
CHANGES="${CHANGES:-40}"
ENTITIES="${ENTITIES:-10000}"
WRITE_RESULTS="${WRITE_RESULTS:-1}"
PHASES="${PHASES:-dp,sim,storm,mem}"
want() { [[ ",$PHASES," == *",$1,"* ]]; }
[[ $PHASES == "dp,sim,storm,mem" ]] || { [[ $WRITE_RESULTS == 0 ]] || { echo "PHASES needs WRITE_RESULTS=0"; exit 1; }; }
CP="$BUILD/bin/portico-cp"; DP="$BUILD/bin/portico-dp"; SIM="$BUILD/bin/fleet_sim"
for b in "$CP" "$DP" "$SIM"; do [[ -x $b ]] || { echo "missing $b"; exit 1; }; done
source "$ROOT/deploy/lib.sh"
PORTICO_ROOT="$ROOT"

WORK="$(mktemp -d /tmp/portico-sync-bench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg"
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[sync_bench] $*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else print a[int((NR+1)/2)]}'; }
field() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }

PG_PORT=$(portico_free_port)
portico_pg_start "$WORK/pg" "$PG_PORT"
psql_() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_ -d postgres -c "CREATE DATABASE portico" >/dev/null
DSN="host=127.0.0.1 port=$PG_PORT dbname=portico user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null

ADMIN_PORT=$(portico_free_port); CLUSTER_PORT=$(portico_free_port)
# The load makes ~16,700 generations of change_log; with the default retention the pruner would
# delete them in PostgreSQL, on these same 2 cores, while the figures are taken. The bench keeps
# them: what it measures is sync.
CP_PID=
# Every simulated DP connects from 127.0.0.1: the pending-connection caps (meant for
# unauthenticated floods, per client address) are lifted so they do not shape the storm.
start_cp() {
  "$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT \
    --cluster_listen=127.0.0.1:$CLUSTER_PORT ${CLUSTER_TLS_FLAGS:---cluster_insecure} --log_level=warn \
    --cluster_change_log_retention=1000000000 \
    --cluster_max_pending_connections=1000000 --cluster_max_pending_per_client=1000000 \
    ${CP_EXTRA_FLAGS:-} >>"$WORK/cp.log" 2>&1 &
  CP_PID=$!; PIDS+=($CP_PID)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$ADMIN_PORT/status" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "portico-cp did not start:"; tail -5 "$WORK/cp.log" >&2; exit 1
}
stop_cp() { kill "$CP_PID" 2>/dev/null || true; wait "$CP_PID" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
start_cp

# --- load 10k/10k/10k through the Admin API ---------------------------------------------------
log "loading $ENTITIES services, routes and consumers through the Admin API"
T0=$(date +%s.%N)
python3 - "$ADMIN_PORT" "$ENTITIES" <<'PY'
import http.client, json, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
def worker(k, parts):
    c = http.client.HTTPConnection("127.0.0.1", port)          # one keep-alive connection
    def post(path, body):
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse(); data = r.read()
        if r.status != 201:
            raise SystemExit(f"POST {path}: {r.status} {data[:200]!r}")
    for i in range(k, n, parts):
        # Literal addresses: the DP resolves service hosts while it builds a snapshot.
        post("/services", {"name": f"svc-{i}", "host": "127.0.0.1", "port": 1024 + i})
        post(f"/services/svc-{i}/routes", {"name": f"route-{i}", "paths": [f"/r/{i}"]})
        post("/consumers", {"username": f"user-{i}"})
ts = [threading.Thread(target=worker, args=(k, 4)) for k in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
LOAD_S=$(echo "$(date +%s.%N) - $T0" | bc)
log "loaded in ${LOAD_S}s"
# A fresh CP with the whole config: its first encoding is the full snapshot.
stop_cp; start_cp
sleep 1

# --- full snapshot: wire size and a real portico-dp's apply time -------------------------------
DP_APPLY=(); FULL_BYTES=
for r in $(seq "$REPEAT"); do
  want dp || break
  rm -f "$WORK/dp.log"
  "$DP" --cp_address=127.0.0.1:$CLUSTER_PORT --cluster_insecure --workers=1 \
    --proxy_listen=127.0.0.1:$(portico_free_port) --status_listen=127.0.0.1:$(portico_free_port) \
    --config_cache_path="$WORK/dp-cache-$r" >"$WORK/dp.log" 2>&1 &
  DPP=$!
  for _ in $(seq 200); do grep -q "applied generation .* in " "$WORK/dp.log" 2>/dev/null && break; sleep 0.1; done
  kill $DPP 2>/dev/null || { log "portico-dp exited early:"; tail -3 "$WORK/dp.log" >&2; }
  wait $DPP 2>/dev/null || true
  line=$(grep -m1 "sync.*applied generation" "$WORK/dp.log" || true)
  log "portico-dp: $line"
  # "... in 312.5ms (decode 80ms, apply 200ms, persist 30ms)"; the total up to the ACK.
  DP_APPLY+=("$(echo "$line" | sed -E 's/.* in ([0-9.]+)(ms|s).*/\1 \2/' |
                awk '{print ($2=="s") ? $1*1000 : $1}')")
done
DP_APPLY_MED=$( ((${#DP_APPLY[@]})) && printf '%.0f\n' "${DP_APPLY[@]}" | median || echo n/a)
# "decode 31ms, validate 84ms, build+swap 226ms, persist 11ms" of the last run.
DP_DETAIL=$(awk '
  /\[config\] generation .* validated in/ { v=$0; sub(/.*validated in /, "", v); sub(/,.*/, "", v);
    b=$0; sub(/.*built and swapped in /, "", b); sub(/,.*/, "", b) }
  /\[sync\] applied generation/ { d=$0; sub(/.*decode /, "", d); sub(/,.*/, "", d);
    p=$0; sub(/.*persist /, "", p); sub(/\).*/, "", p) }
  END { printf "decode %s, validate %s, build+swap %s, persist %s", d, v, b, p }' "$WORK/dp.log" 2>/dev/null || true)

# --- proxy p99 while that DP applies full snapshots -----------------------------------------------
# The DP proxies to portico-echo under wrk (1 thread, 16 connections, 10 s) twice per run: once
# with no config change, once while a PATCH every second makes the CP (run here with
# --cluster_delta_window=0, so every change is a full snapshot) push the whole 30k-entity
# config, which the DP decodes, validates, builds and swaps beside the proxy worker.
to_ms() { python3 -c '
import sys,re
m=re.match(r"([0-9.]+)(us|ms|s)$",sys.argv[1]); n=float(m.group(1))
print(round(n*{"us":0.001,"ms":1,"s":1000}[m.group(2)],2))' "$1"; }
wrk_p99() {  # $1 URL, $2 name: the whole wrk output is kept as wrk-<name>.txt (KEEP=1)
  wrk -t1 -c16 -d10s --latency "$1" >"$WORK/wrk-$2.txt"
  awk '$1=="99%" {print $2}' "$WORK/wrk-$2.txt"
}
P99_IDLE=(); P99_APPLY=(); APPLIES=()
if want dp; then
  ECHO_PORT=$(portico_free_port)
  "$BUILD/bin/portico-echo" --port=$ECHO_PORT >"$WORK/echo.log" 2>&1 &
  PIDS+=($!)
  curl -fs -X PUT "http://127.0.0.1:$ADMIN_PORT/services/bench-echo" \
    -d "url=http://127.0.0.1:$ECHO_PORT" >/dev/null
  curl -fs -X PUT "http://127.0.0.1:$ADMIN_PORT/services/bench-echo/routes/bench-echo-route" \
    -d 'paths[]=/bench-echo' >/dev/null
  SAVED_FLAGS="${CP_EXTRA_FLAGS:-}"
  stop_cp; CP_EXTRA_FLAGS="$SAVED_FLAGS --cluster_delta_window=0"; start_cp
  PROXY_PORT=$(portico_free_port)
  "$DP" --cp_address=127.0.0.1:$CLUSTER_PORT --cluster_insecure --workers=1 \
    --proxy_listen=127.0.0.1:$PROXY_PORT --status_listen=127.0.0.1:$(portico_free_port) \
    >"$WORK/dp-load.log" 2>&1 &
  DPP=$!; PIDS+=($DPP)
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$PROXY_PORT/bench-echo" >/dev/null 2>&1 && break; sleep 0.1
  done
  for r in $(seq "$REPEAT"); do
    P99_IDLE+=("$(to_ms "$(wrk_p99 "http://127.0.0.1:$PROXY_PORT/bench-echo" "idle-$r")")")
    before=$(grep -c "applied generation" "$WORK/dp-load.log" || true)
    ( for i in $(seq 9); do
        sleep 1
        curl -fs -X PATCH "http://127.0.0.1:$ADMIN_PORT/routes/route-7" \
          -H 'Content-Type: application/json' -d "{\"tags\":[\"load-$r-$i\"]}" >/dev/null
      done ) &
    CHG=$!
    P99_APPLY+=("$(to_ms "$(wrk_p99 "http://127.0.0.1:$PROXY_PORT/bench-echo" "apply-$r")")")
    wait $CHG
    sleep 1
    APPLIES+=($(( $(grep -c "applied generation" "$WORK/dp-load.log" || true) - before )))
    log "proxy p99 run $r: ${P99_IDLE[-1]} ms idle, ${P99_APPLY[-1]} ms during ${APPLIES[-1]} full applies"
  done
  kill $DPP; wait $DPP 2>/dev/null || true
  stop_cp; CP_EXTRA_FLAGS="$SAVED_FLAGS"; start_cp
fi
P99_IDLE_M=$(printf '%s\n' "${P99_IDLE[@]}" | median); P99_APPLY_M=$(printf '%s\n' "${P99_APPLY[@]}" | median)
APPLIES_M=$(printf '%s\n' "${APPLIES[@]}" | median)

ROUTE=route-7
# --- propagation to 200 DPs, bytes per change, CP CPU 200 vs 10 ---------------------------------
run_sim() { "$SIM" --cp=127.0.0.1:$CLUSTER_PORT --admin=127.0.0.1:$ADMIN_PORT --route=$ROUTE "$@"; }
P50=(); P99=(); NP50=(); NP99=(); BYTES=(); CPU200=(); CPU10=(); FIRST_PUSH=(); HIST=
CPU200N=(); CPU10N=()
PERF_PID=
for r in $(seq "$REPEAT"); do
  want sim || break
  if [[ ${PERF:-0} == 1 && $r == 1 ]]; then
    perf record -g -o "$WORK/perf.data" -p "$CP_PID" >/dev/null 2>&1 & PERF_PID=$!
  fi
  out=$(run_sim --nodes=200 --changes="$CHANGES" --cp_pid=$CP_PID)
  if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=; fi
  echo "$out" >>"$WORK/sim.log"
  P50+=("$(echo "$out" | field all_acked_p50_ms)"); P99+=("$(echo "$out" | field all_acked_p99_ms)")
  NP50+=("$(echo "$out" | field node_ack_p50_ms)"); NP99+=("$(echo "$out" | field node_ack_p99_ms)")
  BYTES+=("$(echo "$out" | field bytes_per_node_change)")
  CPU200+=("$(echo "$out" | field cp_cpu_ms_per_change)")
  CPU200N+=("$(echo "$out" | field cp_cpu_ms_per_change_net)")
  FIRST_PUSH+=("$(echo "$out" | field first_push_bytes)")
  HIST=$(echo "$out" | grep histogram_ms | sed 's/histogram_ms //')
  out=$(run_sim --nodes=10 --changes="$CHANGES" --cp_pid=$CP_PID)
  echo "$out" >>"$WORK/sim.log"
  CPU10+=("$(echo "$out" | field cp_cpu_ms_per_change)")
  CPU10N+=("$(echo "$out" | field cp_cpu_ms_per_change_net)")
  log "run $r: 200 DPs p50/p99 ${P50[-1]}/${P99[-1]} ms, ${BYTES[-1]} B/DP, CPU/change ${CPU200[-1]} vs ${CPU10[-1]} ms" \
      "(cp_us_per_dp_change=$(awk -v a="${CPU200[-1]}" -v b="${CPU10[-1]}" 'BEGIN {printf "%.1f", (a-b)*1000/190}'));" \
      "net of idle: ${CPU200N[-1]} vs ${CPU10N[-1]} ms"
done
m() { printf '%s\n' "$@" | median; }
P50_M=$(m "${P50[@]}"); P99_M=$(m "${P99[@]}"); NP50_M=$(m "${NP50[@]}"); NP99_M=$(m "${NP99[@]}")
BYTES_M=$(m "${BYTES[@]}"); CPU200_M=$(m "${CPU200[@]}"); CPU10_M=$(m "${CPU10[@]}")
FULL_BYTES=$(m "${FIRST_PUSH[@]}")
CPU_RATIO=$(awk -v a="$CPU200_M" -v b="$CPU10_M" 'BEGIN {if (b>0) printf "%.2f", a/b; else print "n/a"}')
CPU200N_M=$(m "${CPU200N[@]}"); CPU10N_M=$(m "${CPU10N[@]}")
CPU_RATIO_N=$(awk -v a="$CPU200N_M" -v b="$CPU10N_M" 'BEGIN {if (b>0) printf "%.2f", a/b; else print "n/a"}')
PER_DP_US=$(awk -v a="$CPU200_M" -v b="$CPU10_M" 'BEGIN {printf "%.0f", (a-b)*1000/190}')

# --- 1,000 DPs connecting at once (each needs the full snapshot) -------------------------------
STORM=(); REFUSALS=()
for r in $(seq "$REPEAT"); do
  want storm || break
  out=$("$SIM" --cp=127.0.0.1:$CLUSTER_PORT --nodes=1000 --connect_timeout_s=60)
  echo "$out" >>"$WORK/sim.log"
  STORM+=("$(echo "$out" | field connect_all_current_ms)")
  REFUSALS+=("$(echo "$out" | field refusals)")
  log "storm run $r: ${STORM[-1]} ms, ${REFUSALS[-1]} refusals"
done
STORM_M=$(m "${STORM[@]}"); REFUSALS_M=$(m "${REFUSALS[@]}")

# --- CP memory per idle stream: RSS with 1,000 idle streams minus with 0 -----------------------
# Plain text (the goal's figure), then mTLS in shared mode (what production runs).
mem_run() {  # $1: extra fleet_sim flags; sets MEM_RESULT (KB per stream)
  stop_cp; start_cp
  "$SIM" --cp=127.0.0.1:$CLUSTER_PORT --nodes=1 $1 >/dev/null   # loads + encodes the snapshot
  sleep 1
  local rss0 rss1 sp
  rss0=$(rss_kb $CP_PID)
  "$SIM" --cp=127.0.0.1:$CLUSTER_PORT --nodes=1000 --resume --hold_s=4 $1 >"$WORK/hold.out" &
  sp=$!
  for _ in $(seq 300); do grep -q HOLDING "$WORK/hold.out" && break; sleep 0.1; done
  sleep 2
  rss1=$(rss_kb $CP_PID)
  wait $sp || true
  log "memory run${1:+ (TLS)}: RSS $rss0 KB -> $rss1 KB with 1,000 idle streams"
  MEM_RESULT=$(awk -v a="$rss0" -v b="$rss1" 'BEGIN {printf "%.1f", (b-a)/1000}')
}
MEM=(); MEM_TLS=()
for r in $(seq "$REPEAT"); do
  want mem || break
  mem_run ""; MEM+=("$MEM_RESULT")
done
if want mem; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=cp.portico.test" -addext "subjectAltName=DNS:cp.portico.test" \
    -keyout "$WORK/cluster.key" -out "$WORK/cluster.crt" 2>/dev/null
  CLUSTER_TLS_FLAGS="--cluster_cert=$WORK/cluster.crt --cluster_key=$WORK/cluster.key --cluster_mtls=shared"
  for r in $(seq "$REPEAT"); do
    mem_run "--tls_cert=$WORK/cluster.crt --tls_key=$WORK/cluster.key"; MEM_TLS+=("$MEM_RESULT")
  done
  unset CLUSTER_TLS_FLAGS
  stop_cp
fi
MEM_M=$(m "${MEM[@]}"); MEM_TLS_M=$(m "${MEM_TLS[@]}")

ok() { awk -v v="$1" -v g="$2" 'BEGIN {print (v != "n/a" && v+0 <= g+0) ? "yes" : "**no**"}'; }
HOST="$(nproc) cores shared with other builds/benchmarks ($(uname -m)), REPEAT=$REPEAT, medians"
SECTION=$(cat <<MD
## Config sync

Measured by \`tests/bench/sync_bench.sh\` ($(date -u +%Y-%m-%d)): private PostgreSQL 15, a real
\`portico-cp\` (plain-text cluster listener) holding **$ENTITIES services, $ENTITIES routes and
$ENTITIES consumers** loaded through the Admin API (keep-alive, 4 connections: ${LOAD_S%.*} s),
and \`tests/bench/fleet_sim\`: simulated DPs, one gRPC channel (TCP connection) each, that
reassemble, SHA-256-check their bytes, apply the delta or full snapshot, verify the hash and
ACK. The decode/apply/verify of one push is done once per simulator process and shared by the
nodes that received the same bytes (memory; each node still checks its own bytes). A change
is a \`PATCH /routes/$ROUTE\` (tags) on the Admin API; latency = write sent → ACK received.
Host: $HOST.

| figure | goal | measured | met |
|---|---|---|---|
| propagation write → ACK from **all** 200 DPs, p50 / p99 over $CHANGES changes | ≤ 50 / ≤ 250 ms | **$P50_M / $P99_M ms** | $(ok "$P50_M" 50) / $(ok "$P99_M" 250) |
| per-DP write → ACK, p50 / p99 | – | $NP50_M / $NP99_M ms | |
| bytes per DP for a single-route change (ConfigChunk messages incl. envelope; + ~14 B gRPC/HTTP2 framing) | ≤ 2 KB | **$BYTES_M B** | $(ok "$BYTES_M" 2048) |
| CP CPU per change, 200 DPs vs 10 DPs (utime+stime of portico-cp over the change batch) | ≤ 1.5× | **$CPU200_M vs $CPU10_M ms = ${CPU_RATIO}×** (≈ $PER_DP_US µs per DP per change) | $(ok "$CPU_RATIO" 1.5) |
| the same, net of the idle streams' CPU over an equally long window without changes | – | $CPU200N_M vs $CPU10N_M ms = ${CPU_RATIO_N}× | |
| 1,000 DPs connecting at once (each needs the full snapshot), all current | ≤ 15 s | **$STORM_M ms** ($REFUSALS_M RESOURCE_EXHAUSTED retries) | $(ok "$STORM_M" 15000) |
| CP memory per idle stream (RSS with 1,000 idle streams − with 0, ÷ 1,000) | ≤ 16 KB | **$MEM_M KB** | $(ok "$MEM_M" 16) |
| the same with mTLS (shared certificate, ECDSA P-256) | – | $MEM_TLS_M KB | |
| full snapshot on the wire (30k entities, zstd, chunk messages) | – | **$FULL_BYTES B** | |
| real portico-dp proxy p99 (wrk, 16 connections, 10 s) without / during full-snapshot applies (one a second) | – | $P99_IDLE_M / $P99_APPLY_M ms ($APPLIES_M applies in the window) | |
| real portico-dp: full snapshot, last chunk received → applied, persisted, ACKed | ≤ 300 ms | **$DP_APPLY_MED ms** (last run: $DP_DETAIL) | $(ok "$DP_APPLY_MED" 300) |

Histogram of per-DP write → ACK (ms: count, last run, 200 DPs × $CHANGES changes): $HIST
MD
)
echo "$SECTION"
if [[ $WRITE_RESULTS == 1 ]]; then
  python3 - "$ROOT/tests/bench/RESULTS.md" "$SECTION" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2].rstrip("\n") + "\n"
text = open(path).read()
m = re.search(r"^## Config sync\n", text, re.M)
if not m:
    text = text.rstrip("\n") + "\n\n" + section
else:
    nxt = re.search(r"^## ", text[m.end():], re.M)
    end = m.end() + nxt.start() if nxt else len(text)
    # Keep notes below the generated table (### Notes ...) that belong to this section.
    rest = text[m.end():end]
    notes = rest[rest.find("### "):] if "### " in rest else ""
    text = text[:m.start()] + section + ("\n" + notes if notes else "") + \
        ("\n" if nxt and not (notes or section).endswith("\n\n") else "") + text[end:]
open(path, "w").write(text)
PY
  log "wrote the Config sync section of tests/bench/RESULTS.md"
fi
