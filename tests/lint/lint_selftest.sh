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
# Tests may use anything.
printf '%s\n' 'std::thread t([]{});' > "$tmp/src/kv/bad_test.cc"
rm "$tmp/src/kv/bad.cc"
"$lint" "$tmp" >/dev/null || { echo "FAIL: test file refused"; exit 1; }
echo "lint selftest: ok"
