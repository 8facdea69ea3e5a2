#!/usr/bin/env bash
# Issue 15's "POST /config of 10,000 routes: DPs serving it <= 2 s later", on a private
# PostgreSQL, one portico-cp, one portico-dp (one worker) and portico-echo as the upstream.
#
# Each run POSTs a generated declarative file (3.0, YAML) of ROUTES routes, each on its own
# service pointing at the echo upstream, to /config, then polls the DP's proxy for the file's
# last route until it answers 200. Runs differ in their route paths and names (/run<k>/r<i>),
# so every run after the first replaces the whole config (ROUTES deletes and ROUTES inserts of
# each type). Figures per run: the POST itself (request sent -> 201 read) and POST start -> the
# DP serving the last route; median over the replace runs, the first (empty CP) apart.
#
#   tests/bench/config_post_bench.sh [build_dir]     (default: build)
# Last, the CI case: the same file with one route more (a 2-entity change, sent as a delta).
#
#   env: ROUTES=10000 REPEAT=5 PLUGINS=0 (1: every route carries a correlation-id plugin, so
#        the replace also deletes and inserts ROUTES plugins)
#        PERF=0 (1: perf record -g the CP during the runs, report kept)
#        PG_LOG_MS (PostgreSQL logs statements slower than this) KEEP=1 (keep the work dir)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
CP="$BUILD/bin/portico-cp"; DP="$BUILD/bin/portico-dp"; ECHO="$BUILD/bin/portico-echo"
ROUTES="${ROUTES:-10000}"; REPEAT="${REPEAT:-5}"; PERF="${PERF:-0}"; PLUGINS="${PLUGINS:-0}"
for b in "$CP" "$DP" "$ECHO"; do [[ -x "$b" ]] || { echo "missing $b"; exit 1; }; done
source "$ROOT/deploy/lib.sh"
WORK="$(mktemp -d /tmp/portico-config-bench.XXXXXX)"; chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  portico_pg_stop "$WORK/pg" >/dev/null 2>&1 || true
  [[ "${KEEP:-0}" == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port); ADMIN_PORT=$(free_port); CLUSTER_PORT=$(free_port)
PROXY_PORT=$(free_port); STATUS_PORT=$(free_port); ECHO_PORT=$(free_port)
portico_pg_start "$WORK/pg" "$PG_PORT" >/dev/null
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE portico"
DSN="host=127.0.0.1 port=$PG_PORT dbname=portico user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null 2>&1
[[ "${PG_LOG_MS:-}" ]] && psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "ALTER DATABASE portico SET log_min_duration_statement = ${PG_LOG_MS}"
"$ECHO" --port=$ECHO_PORT >"$WORK/echo.log" 2>&1 & PIDS+=($!)
"$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT \
  --cluster_listen=127.0.0.1:$CLUSTER_PORT --cluster_insecure > "$WORK/cp.log" 2>&1 & PIDS+=($!)
CP_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ADMIN_PORT/status" >/dev/null && break; sleep 0.1; done
"$DP" --cp_address=127.0.0.1:$CLUSTER_PORT --cluster_insecure --workers=1 \
  --proxy_listen=127.0.0.1:$PROXY_PORT --proxy_ssl_listen=127.0.0.1:$(free_port) \
  --status_listen=127.0.0.1:$STATUS_PORT --config_cache_path="$WORK/dp.cache" \
  > "$WORK/dp.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$STATUS_PORT/status" >/dev/null && break; sleep 0.1; done

if [[ "$PERF" == 1 ]]; then
  perf record -g -o "$WORK/cp.perf.data" -p "$CP_PID" > "$WORK/perf.log" 2>&1 & PERF_PID=$!
fi

python3 - "$WORK" "$ADMIN_PORT" "$PROXY_PORT" "$STATUS_PORT" "$ECHO_PORT" "$ROUTES" "$REPEAT" "$PLUGINS" <<'PY'
import http.client, json, statistics, sys, time
work, admin, proxy, status, echo, routes, repeat = sys.argv[1:8]
plugins = sys.argv[8] == "1"
admin, proxy, status, echo, routes, repeat = map(int, (admin, proxy, status, echo, routes, repeat))

def make(run):
    out = ['_format_version: "3.0"', "services:"]
    for i in range(routes):
        out += [f"- name: run{run}-svc-{i}",
                f"  url: http://127.0.0.1:{echo}/",
                "  routes:",
                f"  - name: run{run}-route-{i}",
                f"    paths: [/run{run}/r{i}]",
                "    methods: [GET, POST]",
                "    strip_path: true"]
        if plugins:
            out += ["    plugins:", "    - name: correlation-id"]
    return ("\n".join(out) + "\n").encode()

def dp_status():
    c = http.client.HTTPConnection("127.0.0.1", status, timeout=5)
    c.request("GET", "/status")
    j = json.loads(c.getresponse().read())
    c.close()
    return j.get("generation", 0)

results = []
conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=5)
for run in range(repeat + 1):
    body = make(run)
    if run == 0:
        open(work + "/config.yml", "wb").write(body)
    last = f"/run{run}/r{routes - 1}"
    a = http.client.HTTPConnection("127.0.0.1", admin, timeout=120)
    t0 = time.monotonic()
    a.request("POST", "/config", body=body, headers={"Content-Type": "text/yaml"})
    resp = a.getresponse()
    answer = resp.read()
    t_post = time.monotonic() - t0
    a.close()
    if resp.status != 201:
        sys.exit(f"POST /config answered {resp.status}: {answer[:500]!r}")
    while True:
        try:
            conn.request("GET", last)
            r = conn.getresponse(); r.read()
            if r.status == 200:
                break
        except (http.client.HTTPException, OSError):
            conn.close(); conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=5)
        if time.monotonic() - t0 > 120:
            sys.exit(f"the DP did not serve {last} within 120 s")
        time.sleep(0.005)
    t_served = time.monotonic() - t0
    results.append((t_post, t_served))
    print(f"run {run}{' (empty CP)' if run == 0 else ''}: {len(body)} bytes, POST {t_post*1000:.0f} ms, "
          f"DP serving the last route {t_served*1000:.0f} ms after the POST started "
          f"(DP generation {dp_status()})", flush=True)
    time.sleep(1)

# The CI case: the last file again with one route more (everything else unchanged).
run = repeat
body = make(run) + (f"- name: run{run}-svc-extra\n  url: http://127.0.0.1:{echo}/\n  routes:\n"
                    f"  - name: run{run}-route-extra\n    paths: [/run{run}/extra]\n").encode()
a = http.client.HTTPConnection("127.0.0.1", admin, timeout=120)
t0 = time.monotonic()
a.request("POST", "/config", body=body, headers={"Content-Type": "text/yaml"})
resp = a.getresponse(); resp.read(); t_post = time.monotonic() - t0
while True:
    conn.request("GET", f"/run{run}/extra")
    r = conn.getresponse(); r.read()
    if r.status == 200:
        break
    time.sleep(0.005)
one_more = (t_post, time.monotonic() - t0)
print(f"one route more in the same file: POST {one_more[0]*1000:.0f} ms, DP serving it "
      f"{one_more[1]*1000:.0f} ms after the POST started (DP generation {dp_status()})")

rest = results[1:] or results
med = lambda xs: statistics.median(xs) * 1000
print(f"\n{routes} routes ({routes} services{', each route with a plugin' if plugins else ''}), file {len(make(0))/1e6:.1f} MB; replace runs: "
      f"POST median {med([p for p, _ in rest]):.0f} ms, POST start -> DP serving median "
      f"{med([s for _, s in rest]):.0f} ms (max {max(s for _, s in rest)*1000:.0f}); "
      f"into an empty CP: POST {results[0][0]*1000:.0f} ms, serving {results[0][1]*1000:.0f} ms")
PY

if [[ "$PERF" == 1 ]]; then
  kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
  perf report -i "$WORK/cp.perf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null \
    | grep -v '^$' | head -80 > "$WORK/perf.txt" || true
  cp "$WORK/perf.txt" /tmp/config_post_bench.perf.txt
  echo "perf report of the CP: /tmp/config_post_bench.perf.txt"
fi
grep -h "POST /config\|generation [0-9]*: validated" "$WORK/cp.log" "$WORK/dp.log" | tail -8
