// The simulator: one seed, one whole cluster run under faults, one verdict.
//
// RunSimulation builds a cluster of real replicas on a simulated network and disks, drives a
// client workload against it while a fault schedule (drawn from the seed) crashes, pauses and
// partitions nodes, tears writes, fills disks, skews clocks, changes membership and transfers
// leadership. Invariants are checked after every event; at the end the faults heal, the
// cluster settles, every client reads every key, and the history goes through the
// linearizability checker. The same options always produce the same trace.
//
// Thread-safety: a run is single-threaded and self-contained; runs may go in parallel.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "check/checker.h"
#include "check/operation.h"
#include "common/status.h"

namespace synod::sim {

enum Fault : uint32_t {
  kFaultNetwork = 1 << 0,     // loss, duplication, reordering, latency spikes
  kFaultPartition = 1 << 1,   // symmetric, one-way, isolate-the-leader, bridge, clogging
  kFaultCrash = 1 << 2,       // kill -9 and restart; unsynced writes are lost
  kFaultPause = 1 << 3,       // SIGSTOP / SIGCONT
  kFaultDisk = 1 << 4,        // torn writes on crash, slow fsync, disk full
  kFaultClock = 1 << 5,       // per-node clock drift within the configured bound
  kFaultMembership = 1 << 6,  // add, promote and remove nodes, joint changes
  kFaultTransfer = 1 << 7,    // leadership transfers
  kFaultAll = (1 << 8) - 1,
};

// Parses "all", "none" or a comma-separated list of network, partition, crash, pause, disk,
// clock, membership, transfer.
Result<uint32_t> ParseFaults(std::string_view text);
std::string FaultsToString(uint32_t faults);

// The bugs that --bug plants (see docs/sim.md). Each must be caught.
const std::vector<std::string>& KnownBugs();

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  // Data shards: -1 drawn per seed (half the node-storage seeds are sharded), 0 one group
  // holding every slot, N >= 1 N shards plus the meta shard (forces the node storage).
  int shards = -1;
  // Splits in a sharded run: -1 drawn per seed (half the sharded seeds split, up to 8 times),
  // 0 none, N up to N splits, at random times, of random shards at random slots.
  int splits = -1;
  // Placement in a sharded run (sim/placement_driver.h: joins, drains, dead nodes, balance):
  // -1 drawn per seed (half the sharded seeds with membership faults), 0 off, 1 on.
  int placement = -1;
  // Merges in a sharded run: -1 drawn per seed (half the splitting seeds merge too, up to 4
  // times), 0 none, N up to N merges, at random times, of random shards into their neighbours.
  int merges = -1;
  uint32_t faults = kFaultAll;
  int64_t duration_ns = 10'000'000'000;  // 10 s of simulated time
  std::string bug;                       // "" or one of KnownBugs()
  int clients = 6;
  int keys = 3;
  int redis_clients = 2;                  // background Redis clients (RedisWorkload), not checked
  uint64_t check_steps_max = 20'000'000;  // linearizability search budget
  bool verbose = false;                   // log the cluster's events to stderr
};

struct SimResult {
  bool passed = true;
  std::string failure;  // the first invariant violation, lost write or checker verdict
  uint64_t trace_hash = 0;
  check::History history;
  check::Verdict verdict = check::Verdict::kLinearizable;
  std::string check_report;  // the checker's report when not linearizable
  uint64_t events = 0;
  uint64_t ops_ok = 0;
  uint64_t ops_unknown = 0;
  uint64_t redis_ops_ok = 0;  // the background Redis workload's completed operations
  uint64_t redis_execs_committed = 0;
  uint64_t redis_execs_aborted = 0;  // EXECs refused because a watched key changed
  uint64_t expiry_applies = 0;       // kExpire entries applied, summed over nodes
  uint64_t quiesce_notices = 0;      // sent by leaders whose group went idle
  uint64_t requests_forwarded = 0;   // sharded: hops from a node's router to another node
  uint64_t splits = 0;               // sharded: shards split (new shards started)
  uint64_t placement_moves = 0;      // sharded: membership changes the placement completed
  uint64_t merges = 0;               // sharded: shards merged away
  uint64_t faults_injected = 0;
  std::string knobs;  // the randomized configuration of this seed, for the report
};

SimResult RunSimulation(const SimOptions& opts);

// The command line that reproduces a run of these options.
std::string ReproCommand(const SimOptions& opts);

}  // namespace synod::sim
