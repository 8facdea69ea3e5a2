#!/usr/bin/env bash
# Bundles the web console (src/) into <out>/dist (index.html, app.js, app.css) and writes
# <out>/console_assets.cc, the same files embedded for portico-cp (control_plane/console/).
# npm packages come from package-lock.json exactly (`npm ci`, into <out>/npm, so the source
# tree stays clean), installed again only when the lock changes. The CMake build runs it.
#   web/console/build.sh <out dir>
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: build.sh <out dir>}
mkdir -p "$out/npm" "$out/dist"
out=$(cd "$out" && pwd)
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool missing (deploy/install-deps.sh build)" >&2; exit 1; }
done
exec 9>"$out/.build.lock"
flock 9
# .installed-lock: a copy of the lock the packages were installed from, written last.
if ! cmp -s "$src/package-lock.json" "$out/npm/.installed-lock" || [[ ! -d $out/npm/node_modules ]]; then
  rm -f "$out/npm/.installed-lock"
  cp "$src/package.json" "$src/package-lock.json" "$out/npm/"
  (cd "$out/npm" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$src/package-lock.json" "$out/npm/.installed-lock"
fi
export NODE_PATH=$out/npm/node_modules
esbuild=$out/npm/node_modules/.bin/esbuild
common=(--bundle --minify --legal-comments=none --log-level=warning)
"$esbuild" "$src/src/main.js" "${common[@]}" --format=iife --target=es2020 \
  --jsx-factory=h --outfile="$out/dist/app.js.tmp"
"$esbuild" "$src/src/style.css" "${common[@]}" --outfile="$out/dist/app.css.tmp"
cp "$src/src/index.html" "$out/dist/index.html.tmp"
for f in app.js app.css index.html; do mv "$out/dist/$f.tmp" "$out/dist/$f"; done
node "$src/embed.mjs" "$out/dist" "$out/console_assets.cc.tmp"
mv "$out/console_assets.cc.tmp" "$out/console_assets.cc"
