#!/usr/bin/env bash
# The install rules and the package, as an operator meets them:
#  1. `DESTDIR=<tmp> cmake --install <build> --prefix /usr` stages the system layout (binaries,
#     systemd units, /etc/portico flag files, Prometheus rules and Grafana dashboards);
#  2. the staged binaries run from their installed flag files: a control plane on the test
#     PostgreSQL (a database of its own) and a data plane that syncs from it and gets ready;
#  3. `systemd-analyze verify` accepts both units and `systemd-analyze security` rates them;
#  4. `cpack -G DEB` builds the package: files, dependencies, conffiles, maintainer scripts.
set -euo pipefail
SRC="$(cd "${1:?usage: install_test.sh <source dir> <build dir>}" && pwd)"
BUILD="$(cd "${2:?usage: install_test.sh <source dir> <build dir>}" && pwd)"
source "$SRC/deploy/lib.sh"
WORK="$(mktemp -d /tmp/portico-install-test.XXXXXX)"
PIDS=()
DB=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "$DB" ]]; then psql "$PORTICO_TEST_PG_DSN" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== 1. staged install"
DESTDIR="$WORK/root" cmake --install "$BUILD" --prefix /usr >/dev/null
ROOT="$WORK/root"
for f in usr/bin/portico-cp usr/bin/portico-dp \
         usr/lib/systemd/system/portico-cp.service usr/lib/systemd/system/portico-dp.service \
         etc/portico/portico-cp.flags etc/portico/portico-dp.flags \
         usr/share/portico/prometheus/portico-rules.yml usr/share/portico/grafana/portico-fleet.json \
         usr/share/doc/portico/README.md; do
  [[ -e "$ROOT/$f" ]] || fail "not installed: /$f"
done
"$ROOT/usr/bin/portico-cp" --version | grep -q '^portico-cp ' || fail "portico-cp --version"
"$ROOT/usr/bin/portico-dp" --version | grep -q '^portico-dp ' || fail "portico-dp --version"

echo "== 2. the installed binaries with their installed flag files"
if [[ -z "${PORTICO_TEST_PG_DSN:-}" ]]; then
  echo "PORTICO_TEST_PG_DSN not set (tests/run.sh sets it): running them skipped"
else
  DB="portico_install_$$"
  psql "$PORTICO_TEST_PG_DSN" -qc "CREATE DATABASE $DB" >/dev/null
  DSN="${PORTICO_TEST_PG_DSN/dbname=postgres/dbname=$DB}"
  ADMIN=$(portico_free_port); CLUSTER=$(portico_free_port)
  PROXY=$(portico_free_port); PROXY_TLS=$(portico_free_port); STATUS=$(portico_free_port)
  CP_FLAGS=(--flagfile="$ROOT/etc/portico/portico-cp.flags" "--pg_dsn=$DSN"
            --admin_listen=127.0.0.1:$ADMIN --cluster_listen=127.0.0.1:$CLUSTER)
  "$ROOT/usr/bin/portico-cp" "${CP_FLAGS[@]}" migrations up >"$WORK/migrate.log" 2>&1 \
    || { cat "$WORK/migrate.log"; fail "migrations up"; }
  "$ROOT/usr/bin/portico-cp" "${CP_FLAGS[@]}" >"$WORK/cp.log" 2>&1 & PIDS+=($!)
  "$ROOT/usr/bin/portico-dp" --flagfile="$ROOT/etc/portico/portico-dp.flags" \
    --cp_address=127.0.0.1:$CLUSTER --proxy_listen=127.0.0.1:$PROXY \
    --proxy_ssl_listen=127.0.0.1:$PROXY_TLS --status_listen=127.0.0.1:$STATUS \
    --config_cache_path="$WORK/dp.cache" >"$WORK/dp.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$ADMIN/status" >/dev/null 2>&1 && break; sleep 0.1
  done
  curl -fsS -X POST "http://127.0.0.1:$ADMIN/services" -d name=installed \
    -d url=http://127.0.0.1:9 >/dev/null || { cat "$WORK/cp.log"; fail "POST /services"; }
  ready=""
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$STATUS/status/ready" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
  done
  [[ -n "$ready" ]] || { cat "$WORK/dp.log"; fail "the installed DP never got ready"; }
  [[ -s "$WORK/dp.cache" ]] || fail "the DP's config cache was not written"
  echo "installed CP and DP: synced, ready"
fi

echo "== 3. systemd units"
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart exists: point it at the staged binaries.
  mkdir -p "$WORK/units"
  for u in portico-cp portico-dp; do
    sed "s|/usr/bin/portico-|$ROOT/usr/bin/portico-|" "$ROOT/usr/lib/systemd/system/$u.service" \
      > "$WORK/units/$u.service"
  done
  systemd-analyze verify "$WORK/units/portico-cp.service" "$WORK/units/portico-dp.service" \
    || fail "systemd-analyze verify"
  for u in portico-cp portico-dp; do
    level=$(systemd-analyze security --offline=true "$WORK/units/$u.service" 2>/dev/null |
            sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$u.service: exposure level $level (systemd-analyze security; 0 safest, 10 none)"
    python3 -c "import sys; sys.exit(0 if float('$level') <= 2.0 else 1)" \
      || fail "$u.service exposure $level above 2.0"
  done
else
  echo "systemd-analyze missing: unit checks skipped"
fi

echo "== 4. the Debian package"
(cd "$BUILD" && cpack -G DEB -B "$WORK/deb" >"$WORK/cpack.log" 2>&1) \
  || { cat "$WORK/cpack.log"; fail "cpack"; }
DEB=$(ls "$WORK"/deb/portico_*.deb)
dpkg-deb -c "$DEB" > "$WORK/contents"
for f in ./usr/bin/portico-cp ./usr/bin/portico-dp ./usr/lib/systemd/system/portico-cp.service \
         ./usr/lib/systemd/system/portico-dp.service ./etc/portico/portico-cp.flags \
         ./etc/portico/portico-dp.flags ./usr/share/portico/prometheus/portico-rules.yml; do
  grep -q " $f\$" "$WORK/contents" || fail "$f not in the package"
done
depends=$(dpkg-deb -f "$DEB" Depends)
[[ "$depends" == *adduser* && "$depends" == *libc6* ]] || fail "Depends: $depends"
dpkg-deb -e "$DEB" "$WORK/control"
for s in postinst prerm postrm conffiles; do [[ -f "$WORK/control/$s" ]] || fail "no $s"; done
grep -qx /etc/portico/portico-cp.flags "$WORK/control/conffiles" || fail "conffiles"
echo "$(basename "$DEB"): $(du -k "$DEB" | cut -f1) KB; Depends: $depends"
echo "OK"
