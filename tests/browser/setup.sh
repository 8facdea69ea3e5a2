#!/usr/bin/env bash
# Installs the browser tests' npm packages (package-lock.json, exactly) into
# <build dir>/tests/browser/node_modules: CTest's browser_setup fixture runs it before every
# test labelled `browser`. Does nothing when that folder already has this lock's packages.
#   tests/browser/setup.sh <build dir>
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: setup.sh <build dir>}/tests/browser
mkdir -p "$out"
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool missing (deploy/install-deps.sh build)" >&2; exit 1; }
done
if [[ ! -x ${PORTICO_CHROMIUM:-/usr/bin/chromium} ]]; then
  echo "setup.sh: ${PORTICO_CHROMIUM:-/usr/bin/chromium} missing (deploy/install-deps.sh test)" >&2
  exit 1
fi
exec 9>"$out/.setup.lock"
flock 9
# .installed-lock: a copy of the lock the packages were installed from, written last.
if cmp -s "$src/package-lock.json" "$out/.installed-lock" && [[ -d $out/node_modules ]]; then
  exit 0
fi
rm -f "$out/.installed-lock"
cp "$src/package.json" "$src/package-lock.json" "$out/"
(cd "$out" && npm ci --no-audit --no-fund --loglevel=error)
cp "$src/package-lock.json" "$out/.installed-lock"
