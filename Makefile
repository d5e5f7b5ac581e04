# Synod: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
RELEASE := build/release
DEBUG := build/debug
ASAN := build/asan

.PHONY: all deps build debug asan test test-release test-asan lint format format-check run \
        sim run-scripts bench-raft bench bench-quick fuzz fuzz-smoke clean test-large

all: build

deps:
	@scripts/deps.sh

$(RELEASE)/build.ninja: | deps
	cmake -S . -B $(RELEASE) -G Ninja -DCMAKE_BUILD_TYPE=Release

$(DEBUG)/build.ninja: | deps
	cmake -S . -B $(DEBUG) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSYNOD_BENCH=OFF

# `make test-large`: the end-to-end runs at the elastic issue's scale, too long for `make test`
# (Elastic.LargeOneGiB...: 1 GiB over 200,000 keys, nodes join, die, come back and leave).
test-large: build
	cd $(RELEASE) && SYNOD_E2E_LARGE=1 ctest --output-on-failure --timeout 3600 -R "Elastic\.Large"

# The sanitizer build runs unit, raft and simulation; the end-to-end suite runs in release only
# (CI's time budget). ASAN_E2E=ON adds it here too (a fresh build directory takes the flag). It
# compiles at -O1 -g1 (CMakeLists.txt: half the compile time of -O2 -g, line tables kept for
# the reports).
ASAN_E2E ?= OFF
$(ASAN)/build.ninja: | deps
	cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYNOD_SANITIZE=ON \
	  -DSYNOD_BENCH=OFF -DSYNOD_E2E=$(ASAN_E2E)

build: deps $(RELEASE)/build.ninja
	ninja -C $(RELEASE) -j $(JOBS)

debug: deps $(DEBUG)/build.ninja
	ninja -C $(DEBUG) -j $(JOBS)

asan: deps $(ASAN)/build.ninja
	ninja -C $(ASAN) -j $(JOBS)

lint:
	@scripts/lint_pure.sh

format:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

format-check:
	@scripts/check_format.sh

test-release: build
	cd $(RELEASE) && ctest --output-on-failure -j $(JOBS)

# The sanitizer build runs unit, raft and simulation (not e2e: see ASAN_E2E); ASan+UBSan
# findings fail the run.
test-asan: asan
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

# Everything: lint, formatting, release tests (all suites), then sanitizer tests (unit, raft,
# simulation), then a short fuzz run.
test: deps lint format-check
	$(MAKE) test-release
	$(MAKE) test-asan
	$(MAKE) fuzz-smoke

# libFuzzer on the RESP parser, the kv Redis command executor and the Lua script engine, a third
# of the time each: `make fuzz` for as long as FUZZ_SECONDS (default 600; FUZZ_TARGET=resp, kv
# or script for one only); `make fuzz-smoke` (part of `make test`) for 30 s.
FUZZ_SECONDS ?= 600
FUZZ_TARGET ?= all
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGET)

fuzz-smoke: deps
	scripts/fuzz.sh 30

# `make run` starts a local 3-node cluster in the foreground (synod up): clients on ports
# 7001-7003, peers on 7101-7103, admin HTTP on 7201-7203, data in ./data. Ctrl-C stops it;
# running it again restarts the same cluster with its data. UP_FLAGS=--fresh starts anew.
UP_FLAGS ?=
run: build
	$(RELEASE)/src/cli/synod up --nodes 3 --dir ./data $(UP_FLAGS)

# `make sim` runs a 3-node cluster in the deterministic simulator under every fault, seed after
# seed, and prints what each run did and the verdict. `make run-scripts` prints the Raft
# interaction scenarios.
SEEDS ?= 1-20
sim: build
	@echo "Simulating a 3-node Synod cluster: 10 s of clients and faults per seed (seeds $(SEEDS))."
	@echo "Each line: trace hash, events, operations acknowledged / unknown, faults injected, knobs."
	$(RELEASE)/src/cli/synod sim --seeds $(SEEDS) --verbose 2>/dev/null
	@echo "Reproduce any seed with: $(RELEASE)/src/cli/synod sim --seeds N --verbose"

run-scripts: build
	$(RELEASE)/src/raft/script/raft_script run src/raft/testdata

# `make bench-raft`: the Raft core's microbenchmark (microbench/raft_bench, Google Benchmark).
bench-raft: build
	$(RELEASE)/microbench/raft_bench

# `make bench` (about 20 minutes) / `make bench-quick` (about 3 minutes): Synod against a 3-member
# etcd cluster and a durable Redis (appendfsync always) on loopback, the same workloads on each,
# plus Synod's sharded rows (6 shards against 1, forwarding, 1,000 idle shards); rewrites
# docs/benchmarks.md, its plots in docs/benchmarks/ and README.md's headline ratios. Installs
# etcd, Redis, gnuplot and gRPC (for the etcd client in scripts/compare/etcd_client) first.
# scripts/compare/run.py.
bench: build
	/usr/bin/python3 scripts/compare/run.py

bench-quick: build
	/usr/bin/python3 scripts/compare/run.py --quick

clean:
	rm -rf build
