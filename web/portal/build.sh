#!/usr/bin/env bash
# Builds the Dev Portal's assets into OUT_DIR (the CMake build calls it; portico-cp embeds
# what it writes): installs the npm packages of package-lock.json with `npm ci` into a folder
# beside OUT_DIR (again only when the lock file changed), then copies the portal's own files
# and Redoc's prebuilt standalone bundle. Nothing is fetched at run time.
#   web/portal/build.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: web/portal/build.sh OUT_DIR}
if ! command -v npm >/dev/null 2>&1; then
  echo "web/portal: npm is not installed; run deploy/install-deps.sh build (Debian's nodejs npm)" >&2
  exit 1
fi
mkdir -p "$out"
npm_dir="$out.npm"
mkdir -p "$npm_dir"
if ! cmp -s "$here/package-lock.json" "$npm_dir/package-lock.json" ||
   [[ ! -f "$npm_dir/node_modules/redoc/bundles/redoc.standalone.js" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$here/.npmrc" "$npm_dir/"
  (cd "$npm_dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi
cp "$here"/src/* "$out/"
cp "$npm_dir/node_modules/redoc/bundles/redoc.standalone.js" "$out/redoc.standalone.js"
cp "$npm_dir/node_modules/redoc/LICENSE" "$out/redoc.LICENSE.txt"
touch "$out"/*
