#!/usr/bin/env bash
# Data-plane memory with 1,000,000 key-auth credentials (100,000 consumers x 10 keys): RSS of
# a real portico-dp (1 worker) started from a --config_cache_path file holding that config,
# next to the same DP started from a cache with the same service, route and global key-auth
# plugin but no consumers (the baseline). Each is measured after requests with a valid key
# (proxied: 200 from the upstream) and without one (401). The CP address is closed: the DP
# serves its cache, as after a restart during a CP outage. Also prints the apply time the DP
# logged.
#
#   tests/bench/keyauth_mem.sh [build_dir]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
DP="$BUILD/bin/portico-dp"
BENCH="$BUILD/bin/plugin_bench"
WORK="$(mktemp -d /tmp/portico-keyauth-mem.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream: a one-line HTTP server answering 200 to everything.
up_port=$(free_port)
python3 - "$up_port" > /dev/null 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)

PORTICO_BENCH_UPSTREAM_PORT=$up_port PORTICO_BENCH_EMPTY=1 PORTICO_BENCH_WRITE_CACHE="$WORK/empty.cache" "$BENCH"
PORTICO_BENCH_UPSTREAM_PORT=$up_port PORTICO_BENCH_WRITE_CACHE="$WORK/big.cache" "$BENCH"
echo "cache files: empty $(stat -c %s "$WORK/empty.cache") B, 1M credentials $(stat -c %s "$WORK/big.cache") B (zstd)" >&2

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
measure() {
  local name="$1" port status pid code ok=0 denied=0
  port=$(free_port); status=$(free_port)
  cp "$WORK/$name.cache" "$WORK/run.cache"
  PORTICO_LOG_LEVEL=info "$DP" --workers=1 --config_cache_path="$WORK/run.cache" \
    --cp_address=127.0.0.1:1 --cluster_insecure --proxy_listen=127.0.0.1:$port \
    --status_listen=127.0.0.1:$status --proxy_ssl_listen=off > "$WORK/$name.log" 2>&1 &
  pid=$!; PIDS+=($pid)
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$status/status/ready" >/dev/null && break; sleep 0.1; done
  for i in $(seq 0 99); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: $(printf 'key-%08d-abcdefghijklmnopqrstu' $((i * 9973)))" "http://127.0.0.1:$port/x")
    [[ $code == 200 ]] && ok=$((ok + 1))
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/x")
    [[ $code == 401 ]] && denied=$((denied + 1))
  done
  sleep 1
  echo "$name: $ok/100 keyed requests 200, $denied/100 unkeyed 401; $(grep -o 'serving cached generation.*' "$WORK/$name.log" | head -1)" >&2
  grep -o 'validated in [^,]*, built and swapped in .*' "$WORK/$name.log" | head -1 >&2 || true
  echo "$(rss_kb "$pid") $(hwm_kb "$pid")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
read -r empty_rss empty_hwm < <(measure empty)
read -r big_rss big_hwm < <(measure big)
mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
echo "| config | VmRSS (MiB) | peak VmHWM (MiB) |"
echo "|---|---:|---:|"
echo "| key-auth, no consumers (baseline) | $(mib "$empty_rss") | $(mib "$empty_hwm") |"
echo "| 100,000 consumers, 1,000,000 key-auth credentials | $(mib "$big_rss") | $(mib "$big_hwm") |"
echo "| added | $(mib $((big_rss - empty_rss))) | $(mib $((big_hwm - empty_hwm))) |"
