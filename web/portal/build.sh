#!/usr/bin/env bash
# Builds the Dev Portal's assets into OUT_DIR (the CMake build calls it; portico-cp embeds
# what it writes): the portal's own files, and Redoc's prebuilt standalone bundle with its
# licence, taken from the redoc package of package-lock.json. The portal uses that one file,
# so only redoc's tarball is fetched (`npm pack`, from npm's cache when it is there) and
# checked against the lock's sha512 integrity; `npm ci` of its 100 dependencies took 4x the
# CPU. The tarball is kept beside OUT_DIR and fetched again only when the lock changes.
# Nothing is fetched at run time.
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
# The locked version and integrity of redoc (package-lock.json, lockfileVersion 3).
read -r version integrity < <(node -e '
  const p = require(process.argv[1]).packages["node_modules/redoc"];
  console.log(p.version, p.integrity);' "$here/package-lock.json")
if [[ -z ${integrity:-} ]]; then
  echo "web/portal: no redoc version and integrity in package-lock.json" >&2
  exit 1
fi
tarball="$npm_dir/redoc-$version.tgz"
sha512() {
  node -e 'const data = require("fs").readFileSync(process.argv[1]);
    console.log("sha512-" + require("crypto").createHash("sha512").update(data).digest("base64"));' "$1"
}
if [[ ! -f $tarball || $(sha512 "$tarball") != "$integrity" ]]; then
  rm -f "$tarball"
  (cd "$npm_dir" && npm pack "redoc@$version" --prefer-offline --silent >/dev/null)
  if [[ $(sha512 "$tarball") != "$integrity" ]]; then
    echo "web/portal: redoc-$version.tgz does not match package-lock.json's integrity" >&2
    rm -f "$tarball"
    exit 1
  fi
fi
tar -xzf "$tarball" -C "$npm_dir" package/bundles/redoc.standalone.js package/LICENSE
cp "$here"/src/* "$out/"
cp "$npm_dir/package/bundles/redoc.standalone.js" "$out/redoc.standalone.js"
cp "$npm_dir/package/LICENSE" "$out/redoc.LICENSE.txt"
touch "$out"/*
