#!/usr/bin/env bash
# Issue 14's catalog search figure: GET /service-catalog/services?q=... over 5,000 catalog
# services <= 50 ms on the API. A real portico-cp on a private PostgreSQL; the catalog is
# loaded through the Admin API (5,000 services, each with a version holding an OpenAPI
# document of 12 paths / 24 operations, ~23 KB; every fifth service a second version: 6,000
# versions), then each query below is sent REPEAT times on one keep-alive
# connection over loopback, timed from the request written to the whole answer read (client
# side: the CP's parsing, PostgreSQL's search, ranking, counting and the JSON). Prints the
# median and p99 per query and over all of them.
#
#   tests/bench/catalog_search_bench.sh [build_dir]      (default: build)
#   env: SERVICES=5000 REPEAT=200 KEEP=1 (keep the work dir) CP_FLAGS="..." (more flags)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
CP="$BUILD/bin/portico-cp"
SERVICES="${SERVICES:-5000}"; REPEAT="${REPEAT:-200}"
[[ -x "$CP" ]] || { echo "missing $CP"; exit 1; }
source "$ROOT/deploy/lib.sh"
WORK="$(mktemp -d /tmp/catalog-bench.XXXXXX)"; chmod 755 "$WORK"
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
DSN="host=127.0.0.1 port=$PG_PORT dbname=postgres user=postgres"
"$CP" --pg_dsn="$DSN" migrations up >/dev/null 2>&1
"$CP" --pg_dsn="$DSN" --admin_listen=127.0.0.1:$ADMIN_PORT \
  --cluster_listen=127.0.0.1:$CLUSTER_PORT --cluster_insecure ${CP_FLAGS:-} > "$WORK/cp.log" 2>&1 &
CP_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/status" >/dev/null && break; sleep 0.1
done

python3 - "$ADMIN_PORT" "$SERVICES" "$REPEAT" <<'PY'
import concurrent.futures, http.client, json, random, statistics, sys, threading, time

port, n_services, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(14)
DOMAINS = ["payments", "orders", "invoices", "users", "accounts", "shipping", "inventory",
           "catalog", "search", "notifications", "billing", "ledger", "identity", "profiles",
           "reviews", "carts", "pricing", "tax", "fraud", "loyalty", "returns", "warehouse",
           "subscriptions", "messaging", "analytics"]
NOUNS = ["item", "order", "refund", "charge", "customer", "address", "parcel", "label", "token",
         "session", "product", "variant", "coupon", "rate", "quote", "report", "event", "webhook",
         "batch", "export", "import", "policy", "rule", "limit", "balance", "transfer", "payout",
         "dispute", "receipt", "schedule", "plan", "member", "review", "rating", "message"]
VERBS = ["list", "get", "create", "update", "delete", "search", "approve", "cancel", "retry",
         "export", "validate", "archive"]
WORDS = ("handles the of for with and every team traffic internal public partner legacy "
         "realtime batch asynchronous secure regional global cache queue stream api gateway "
         "backend frontend mobile web service platform core edge").split()
TEAMS = [f"team-{i}" for i in range(40)]

def camel(*parts):
    return parts[0] + "".join(p.capitalize() for p in parts[1:])

def spec(domain, i, version):
    paths = {}
    for p in range(12):
        noun = rng.choice(NOUNS)
        path = f"/{domain}/{noun}s/{{{noun}Id}}" + ("" if p % 2 else f"/sub{p}")
        ops = {}
        for method in ("get", "post"):
            verb = rng.choice(VERBS)
            ops[method] = {
                "operationId": camel(verb, domain, noun, str(p), method),
                "summary": " ".join([verb.capitalize(), "a", noun] + rng.sample(WORDS, 4)),
                "tags": [domain, noun],
                "parameters": [{"name": f"{noun}Id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        w: {"type": "string", "description": " ".join(rng.sample(WORDS, 8))}
                        for w in rng.sample(NOUNS, 6)}}}}}},
            }
        paths[path] = ops
    return {"openapi": "3.0.3", "info": {"title": f"{domain} api {i}", "version": version},
            "paths": paths}

local = threading.local()
def conn():
    if not hasattr(local, "c"):
        local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    return local.c

def call(method, path, body=None):
    c = conn()
    data = None if body is None else json.dumps(body)
    c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    out = r.read()
    return r.status, out

services = []
for i in range(n_services):
    domain = DOMAINS[i % len(DOMAINS)]
    noun = NOUNS[(i // len(DOMAINS)) % len(NOUNS)]
    services.append({
        "name": f"{domain}-{noun}-{i}",
        "display_name": f"{domain.capitalize()} {noun} {i}",
        "description": " ".join(rng.sample(WORDS, 12)) + f" {domain} {noun}",
        "owner_team": TEAMS[i % len(TEAMS)],
        "labels": {"tier": str(i % 3), "env": "prod" if i % 4 else "staging",
                   "region": ["eu", "us", "apac"][i % 3]},
        "links": {"repository": f"https://git.example.com/{domain}/{noun}-{i}"},
    })
specs = {}
for i, s in enumerate(services):
    domain = DOMAINS[i % len(DOMAINS)]
    versions = ["1.0.0"] + (["2.0.0"] if i % 5 == 0 else [])
    specs[s["name"]] = [(v, spec(domain, i, v)) for v in versions]

def load(s):
    st, body = call("POST", "/service-catalog/services", s)
    if st != 201:
        raise SystemExit(f"create {s['name']}: {st} {body[:200]}")
    for v, doc in specs[s["name"]]:
        st, body = call("POST", f"/service-catalog/services/{s['name']}/versions",
                        {"version": v, "state": "published", "spec": doc})
        if st != 201:
            raise SystemExit(f"version {s['name']}: {st} {body[:200]}")

t0 = time.time()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(load, services))
n_versions = sum(len(v) for v in specs.values())
spec_bytes = sum(len(json.dumps(d)) for v in specs.values() for _, d in v)
print(f"loaded {n_services} services, {n_versions} versions ({spec_bytes / 1e6:.1f} MB of "
      f"OpenAPI) through the Admin API in {time.time() - t0:.1f} s")

QUERIES = [
    ("one word in 1/25 of the names (payments)", "q=payments"),
    ("a word in every spec (get)", "q=get"),
    ("a spec-only word (refund)", "q=refund"),
    ("two words (orders refund)", "q=orders%20refund"),
    ("websearch OR and NOT (ledger or tax -fraud)", "q=ledger%20or%20tax%20-fraud"),
    ("a phrase (\"payments refund\")", "q=%22payments%20refund%22"),
    ("camelCase part of an operationId (Payout)", "q=payout"),
    ("a word and a label filter (orders, tier:1)", "q=orders&label=tier:1"),
    ("a word and an owner (webhook, team-7)", "q=webhook&owner=team-7"),
    (f"one exact name ({services[n_services // 2]['name']})",
     "q=" + services[n_services // 2]["name"]),
    ("no match (zebra)", "q=zebra"),
    ("no text, a label (page 3)", "label=region:eu&page[size]=100&page[number]=3"),
]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
all_ms = []
print(f"{'query':<48} {'matches':>7} {'median':>8} {'p99':>8}  (ms, {repeat} runs each)")
for name, qs in QUERIES:
    path = "/service-catalog/services?" + qs
    ms = []
    total = None
    for k in range(repeat + 5):
        t = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        dt = (time.perf_counter() - t) * 1000
        if r.status != 200:
            raise SystemExit(f"{path}: {r.status} {body[:200]}")
        if k >= 5:  # the first few warm the CP's and PostgreSQL's caches
            ms.append(dt)
        total = json.loads(body)["meta"]["page"]["total"]
    ms.sort()
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    all_ms += ms
    print(f"{name:<48} {total:>7} {statistics.median(ms):8.1f} {p99:8.1f}")
all_ms.sort()
print(f"{'all queries':<48} {'':>7} {statistics.median(all_ms):8.1f} "
      f"{all_ms[int(len(all_ms) * 0.99)]:8.1f}  (goal <= 50 ms)")
PY
