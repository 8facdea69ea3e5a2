#!/usr/bin/env bash
# deploy/prometheus: the scrape config is valid, the alert rules are valid, and the rules'
# unit tests (portico-rules.test.yml: each alert fires when it should and not before) pass.
# deploy/grafana: every dashboard is JSON with a uid and PromQL targets (deploy_e2e_test runs
# each query against a real Prometheus scraping a CP and two DPs).
set -euo pipefail
DEPLOY="$(cd "${1:?usage: prometheus_rules_test.sh <deploy dir>}" && pwd)"
command -v promtool >/dev/null || { echo "promtool missing (apt-get install prometheus)"; exit 1; }
cd "$DEPLOY/prometheus"
promtool check config prometheus.yml
promtool check rules portico-rules.yml
promtool test rules portico-rules.test.yml
python3 - "$DEPLOY"/grafana/*.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    d = json.load(open(path))
    assert d.get("uid") and d.get("panels"), path + ": no uid or panels"
    for p in d["panels"]:
        assert p.get("targets"), path + ": panel without queries: " + p.get("title", "?")
        for t in p["targets"]:
            assert t.get("expr"), path + ": empty query in " + p["title"]
    print(path + ": " + str(len(d["panels"])) + " panels")
PY
