#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs them, one after the other.
#
#   scripts/fuzz.sh [SECONDS] [resp|kv|script|all]    (default 60, all)
#
# resp: resp_fuzz, the RESP codec; kv: kv_fuzz, the Redis command executor of the kv state
# machine; script: script_fuzz, the Lua script engine. `all` runs the three and gives each a
# third of SECONDS (`scripts/fuzz.sh 30`: 10 s each).
#
# Each target's corpus lives in build/fuzz/, seeded from fuzz/ on every run, so coverage found
# by earlier runs is kept: build/fuzz/corpus from fuzz/corpus/ (resp), build/fuzz/kv_corpus
# from fuzz/kv_corpus/ (kv). A crash leaves its input in build/fuzz/artifacts/ as
# resp-crash-* or kv-crash-* and makes this script exit non-zero; reproduce it with
# build/fuzz/resp_fuzz <file> or build/fuzz/kv_fuzz <file> (KV_FUZZ_TRACE=1 prints each
# command and its reply).
set -euo pipefail

seconds="${1:-60}"
target="${2:-all}"
case "$target" in
  resp | kv | script | all) ;;
  *)
    echo "usage: $0 [SECONDS] [resp|kv|script|all]" >&2
    exit 2
    ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/fuzz"

CXX="${CXX:-clang++}" cmake -S "$root/fuzz" -B "$build" -G Ninja
cmake --build "$build"
mkdir -p "$build/artifacts"

# run_resp SECONDS / run_kv SECONDS. -max_total_time=0 would mean "forever": at least 1.
run_resp() {
  mkdir -p "$build/corpus"
  cp "$root"/fuzz/corpus/* "$build/corpus/"
  # -max_len: long enough for a bulk of 32 KiB, the size read straight into its argument.
  "$build/resp_fuzz" "$build/corpus" \
    -max_total_time="$(($1 > 0 ? $1 : 1))" \
    -max_len=40000 \
    -dict="$root/fuzz/resp.dict" \
    -artifact_prefix="$build/artifacts/resp-" \
    -print_final_stats=1
}

run_kv() {
  mkdir -p "$build/kv_corpus"
  cp "$root"/fuzz/kv_corpus/* "$build/kv_corpus/"
  # -max_len: up to 64 commands of small arguments; long values come from the "\xff" N
  # expansion (see fuzz/kv_fuzz.cc), so LCS and SCAN stay fast per input.
  "$build/kv_fuzz" "$build/kv_corpus" \
    -max_total_time="$(($1 > 0 ? $1 : 1))" \
    -max_len=4096 \
    -dict="$root/fuzz/kv.dict" \
    -artifact_prefix="$build/artifacts/kv-" \
    -print_final_stats=1
}

run_script() {
  mkdir -p "$build/script_corpus"
  cp "$root"/fuzz/script_corpus/* "$build/script_corpus/"
  "$build/script_fuzz" "$build/script_corpus" \
    -max_total_time="$(($1 > 0 ? $1 : 1))" \
    -max_len=2048 \
    -dict="$root/fuzz/script.dict" \
    -artifact_prefix="$build/artifacts/script-" \
    -print_final_stats=1
}

case "$target" in
  resp) run_resp "$seconds" ;;
  kv) run_kv "$seconds" ;;
  script) run_script "$seconds" ;;
  all)
    run_resp "$((seconds / 3))"
    run_kv "$((seconds / 3))"
    run_script "$((seconds - 2 * (seconds / 3)))"
    ;;
esac
