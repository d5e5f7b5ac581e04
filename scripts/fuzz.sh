#!/usr/bin/env bash
# Builds the RESP codec's libFuzzer target (fuzz/) with clang and runs it.
#
#   scripts/fuzz.sh [SECONDS]    (default 60)
#
# The corpus lives in build/fuzz/corpus, seeded from fuzz/corpus/ on every run, so coverage
# found by earlier runs is kept. A crash leaves its input in build/fuzz/artifacts/ and makes
# this script exit non-zero; reproduce it with build/fuzz/resp_fuzz <file>.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/fuzz"

CXX="${CXX:-clang++}" cmake -S "$root/fuzz" -B "$build" -G Ninja
cmake --build "$build"

mkdir -p "$build/corpus" "$build/artifacts"
cp "$root"/fuzz/corpus/* "$build/corpus/"

# -max_len: long enough for a bulk of 32 KiB, the size read straight into its argument.
exec "$build/resp_fuzz" "$build/corpus" \
  -max_total_time="$seconds" \
  -max_len=40000 \
  -dict="$root/fuzz/resp.dict" \
  -artifact_prefix="$build/artifacts/" \
  -print_final_stats=1
