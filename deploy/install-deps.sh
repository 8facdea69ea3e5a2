#!/usr/bin/env bash
# Installs exactly the Debian 12 packages Portico needs to build, run, test and benchmark.
# Idempotent: when everything is present it does nothing (not even `apt-get update`).
set -euo pipefail

# Sets, so each command installs only what it needs: deploy/quickstart.sh takes `build
# runtime`; tests/run.sh takes all four (the default).
#   deploy/install-deps.sh [build] [runtime] [test] [bench]
BUILD_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # libraries (see ARCHITECTURE.md, "Dependencies"); zlib (balancer hashing) and libpq
  # (under libpqxx) come with these
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libpqxx-dev libssl-dev prometheus-cpp-dev libboost-dev libre2-dev
  nlohmann-json3-dev libzstd-dev libc-ares-dev libhiredis-dev
  # declarative files (kong.yml): portico-dp --declarative_config, porticoctl
  libyaml-dev
  # the cluster listener's HPACK decoder (nghttp2's inflater)
  libnghttp2-dev
)
# The web console's bundle (web/console/build.sh: npm ci + esbuild) and the Dev Portal's
# assets (web/portal/build.sh: npm pack of Redoc), built by the CMake build, need Node.js and npm:
# Debian's, unless a node is already on the PATH (a NodeSource or nvm one would conflict).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  BUILD_PACKAGES+=(nodejs npm)
fi
RUNTIME_PACKAGES=(
  # the quickstart's private PostgreSQL, and curl for its demo
  postgresql-15 postgresql-client-15 curl ca-certificates procps util-linux
)
TEST_PACKAGES=(
  catch2 libyaml-cpp-dev redis-server
  # TLS tests generate their certificates with the openssl command
  openssl
  # promtool checks /metrics and the alert rules; a real server scrapes a CP and DPs
  prometheus
  # Kong's decK, run against the Admin API by tests/e2e/deck
  deck
  # small scripts in tests/deploy and the benchmark harnesses
  python3
  # the browser tests (tests/browser/: puppeteer-core drives it headless)
  chromium
)
BENCH_PACKAGES=(
  # micro-benchmarks (built as bench-smoke tests too), and the reference proxies and load
  # generator of tests/bench/*.sh
  libbenchmark-dev nginx-light haproxy wrk
)

sets=("$@")
if ((${#sets[@]} == 0)); then
  sets=(build runtime test bench)
fi
PACKAGES=()
for set in "${sets[@]}"; do
  case $set in
    build) PACKAGES+=("${BUILD_PACKAGES[@]}") ;;
    runtime) PACKAGES+=("${RUNTIME_PACKAGES[@]}") ;;
    test) PACKAGES+=("${TEST_PACKAGES[@]}") ;;
    bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    *) echo "install-deps: unknown set '$set' (build, runtime, test, bench)" >&2; exit 2 ;;
  esac
done

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
