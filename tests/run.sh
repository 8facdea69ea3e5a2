#!/usr/bin/env bash
# README command 2: installs what is missing, builds, starts a throwaway PostgreSQL and Redis on
# free loopback ports, runs every test through CTest, and stops what it started.
#
#   tests/run.sh                 every test
#   tests/run.sh -L unit         only the fast unit tests (any ctest arguments pass through)
#   tests/run.sh -L faults       the fault suite (tests/faults/: mounts a tmpfs when root)
#   PORTICO_SANITIZE=1 tests/run.sh   the same under ASan+UBSan (build dir build-asan)
set -euo pipefail

PORTICO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PORTICO_ROOT
source "$PORTICO_ROOT/deploy/lib.sh"

"$PORTICO_ROOT/deploy/install-deps.sh"

cmake_args=()
build_dir=${PORTICO_BUILD_DIR:-$PORTICO_ROOT/build}
if [[ ${PORTICO_SANITIZE:-0} == 1 ]]; then
  build_dir=${PORTICO_BUILD_DIR:-$PORTICO_ROOT/build-asan}
  cmake_args+=(-DPORTICO_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
start=$(date +%s)
portico_build "$build_dir" "${cmake_args[@]}"
echo "tests/run.sh: build finished in $(($(date +%s) - start)) s"

work=$(mktemp -d /tmp/portico-tests-XXXXXX)
cleanup() {
  portico_pg_stop "$work/pg"
  portico_redis_stop "$work/redis"
  rm -rf "$work"
}
trap cleanup EXIT

pg_port=$(portico_free_port)
PORTICO_PG_EXTRA_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  portico_pg_start "$work/pg" "$pg_port"
export PORTICO_TEST_PG_DSN="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
echo "tests/run.sh: PostgreSQL on 127.0.0.1:$pg_port"

# The rate-limit plugins' redis policy tests (they skip with a warning without it).
redis_port=$(portico_free_port)
portico_redis_start "$work/redis" "$redis_port"
export PORTICO_TEST_REDIS_ADDR="127.0.0.1:$redis_port"
echo "tests/run.sh: Redis on $PORTICO_TEST_REDIS_ADDR"

cd "$build_dir"
ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"
