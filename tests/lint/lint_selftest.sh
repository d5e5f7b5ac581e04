#!/usr/bin/env bash
# Shows that the pure-folder lint bites: a planted clock read, thread, socket include and
# unseeded random source must each fail it, and clean code must pass.
set -euo pipefail
lint="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/raft" "$tmp/src/kv"
echo 'int f() { return 1; }' > "$tmp/src/raft/ok.cc"
"$lint" "$tmp" >/dev/null || { echo "FAIL: clean tree refused"; exit 1; }

bad=(
  'auto t = std::chrono::steady_clock::now();'
  'std::thread t([]{});'
  '#include <sys/socket.h>'
  'std::random_device rd;'
  'int x = rand();'
  'asio::io_context io;'
  '#include <filesystem>'
)
for line in "${bad[@]}"; do
  printf '%s\n' "$line" > "$tmp/src/kv/bad.cc"
  if "$lint" "$tmp" >/dev/null 2>&1; then
    echo "FAIL: lint accepted: $line"
    exit 1
  fi
done
# env/ may not include a layer above it.
rm -f "$tmp/src/kv/bad.cc"
mkdir -p "$tmp/src/env/asio"
printf '%s\n' '#include "storage/raft_codec.h"' > "$tmp/src/env/asio/bad.cc"
if "$lint" "$tmp" >/dev/null 2>&1; then
  echo "FAIL: lint accepted env/ including storage/"
  exit 1
fi
rm "$tmp/src/env/asio/bad.cc"
# Tests may use anything.
printf '%s\n' 'std::thread t([]{});' > "$tmp/src/kv/bad_test.cc"
printf '%s\n' '#include "storage/raft_codec.h"' > "$tmp/src/env/asio/x_test.cc"
"$lint" "$tmp" >/dev/null || { echo "FAIL: test file refused"; exit 1; }
echo "lint selftest: ok"
