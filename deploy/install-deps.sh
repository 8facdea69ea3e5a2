#!/usr/bin/env bash
# Installs exactly the Debian 12 packages Portico needs to build, run, test and benchmark.
# Idempotent: when everything is present it does nothing (not even `apt-get update`).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # libraries (see ARCHITECTURE.md, "Dependencies")
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libpqxx-dev libssl-dev prometheus-cpp-dev libboost-dev libre2-dev libyaml-cpp-dev
  nlohmann-json3-dev libzstd-dev libc-ares-dev libhiredis-dev
  # the cluster listener's HPACK decoder (nghttp2's inflater)
  libnghttp2-dev
  # tests and benchmarks
  catch2 libbenchmark-dev postgresql-15 postgresql-client-15 redis-server
  nginx-light haproxy wrk curl ca-certificates procps util-linux
  # the benchmark harnesses in tests/bench generate configs and compute ratios with python3
  python3
  # TLS tests generate their certificates with the openssl command
  openssl
  # the prometheus plugin's tests: promtool checks /metrics, a real server scrapes a DP
  prometheus
  # Kong's decK, run against the Admin API by tests/e2e/deck
  deck
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start system services (nginx on :80, the default PostgreSQL
# cluster on :5432, redis on :6379): Portico starts its own private instances.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[[ $created_policy == 1 ]] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
