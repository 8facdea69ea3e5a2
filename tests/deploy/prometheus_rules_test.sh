#!/usr/bin/env bash
# deploy/prometheus: the scrape config is valid, the alert rules are valid, and the rules'
# unit tests (portico-rules.test.yml: each alert fires when it should and not before) pass.
# deploy/grafana: every dashboard is JSON with panels whose queries are PromQL promtool can
# parse (the e2e Prometheus test runs them against real scrapes).
set -euo pipefail
DEPLOY="${1:?usage: prometheus_rules_test.sh <deploy dir>}"
command -v promtool >/dev/null || { echo "promtool missing (apt-get install prometheus)"; exit 1; }
cd "$DEPLOY/prometheus"
promtool check config prometheus.yml
promtool check rules portico-rules.yml
promtool test rules portico-rules.test.yml
