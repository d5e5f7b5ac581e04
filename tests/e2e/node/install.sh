#!/bin/sh
# Installs the Node.js clients the e2e tests run (this directory's package.json and the pinned
# package-lock.json) into DEST/node_modules with `npm ci`, once per lock file: a stamp,
# DEST/.installed-lock.json, is the lock file of the last install that succeeded. The e2e tests
# run in parallel (ctest -j2), so the check and the install hold DEST/.lock (flock).
# node_modules is never committed; DEST is in the build tree (tests/e2e/node under it).
#
# Usage: install.sh DEST        Exit 0 when DEST/node_modules matches the lock file.
set -eu

src=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: install.sh DEST}
mkdir -p "$dest"
exec 9>"$dest/.lock"
if ! flock -w 300 9; then
  echo "install.sh: waited 300 s for $dest/.lock" >&2
  exit 1
fi
if [ -d "$dest/node_modules" ] && cmp -s "$src/package-lock.json" "$dest/.installed-lock.json"; then
  exit 0
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install.sh: '$tool' is not installed (scripts/deps.sh installs Node.js and npm)" >&2
    exit 1
  fi
done
rm -f "$dest/.installed-lock.json"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
echo "install.sh: npm ci in $dest (node $(node --version), npm $(npm --version))"
if ! (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error); then
  echo "install.sh: npm ci failed in $dest (is the npm registry reachable?)" >&2
  exit 1
fi
cp "$src/package-lock.json" "$dest/.installed-lock.json"
