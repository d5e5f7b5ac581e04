#!/usr/bin/env bash
# Installs the Debian packages Synod needs to build, test and benchmark.
# A no-op when every package is already installed; uses sudo when not root.
set -euo pipefail

packages=(
  g++ cmake ninja-build make pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev
  libprotobuf-dev protobuf-compiler nlohmann-json3-dev libcli11-dev
  clang clang-format libclang-rt-14-dev
  libasio-dev librocksdb-dev libhiredis-dev libtomlplusplus-dev libcpp-httplib-dev libjemalloc-dev
  libluajit2-5.1-dev lua-cjson-dev libssl-dev redis-server
  redis-tools python3-redis procps iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js and npm run the e2e tests' Node.js cluster clients (tests/e2e/node, installed there by
# `npm ci`). Nodesource's `nodejs` bundles npm and conflicts with Debian's `npm` package: when
# it is the nodejs installed and node or npm is missing, it is reinstalled; otherwise Debian's
# nodejs and npm are installed.
reinstall=()
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if dpkg-query -W -f='${Status} ${Version}' nodejs 2>/dev/null |
      grep -q "install ok installed .*nodesource"; then
    reinstall+=(nodejs)
  else
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
  fi
fi

if [ ${#missing[@]} -eq 0 ] && [ ${#reinstall[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}${reinstall[*]:+ (reinstalling ${reinstall[*]})}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#reinstall[@]} -gt 0 ]; then
  $sudo apt-get install -y -qq --reinstall "${reinstall[@]}"
fi
