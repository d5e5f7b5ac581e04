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
  redis-tools python3-redis procps iproute2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
