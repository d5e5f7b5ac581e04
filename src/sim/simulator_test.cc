#include "sim/simulator.h"

#include <gtest/gtest.h>

namespace synod::sim {
namespace {

SimOptions Opts(uint64_t seed) {
  SimOptions o;
  o.seed = seed;
  o.duration_ns = 3'000'000'000;
  return o;
}

TEST(SimulatorTest, SameSeedSameTrace) {
  SimResult a = RunSimulation(Opts(42));
  SimResult b = RunSimulation(Opts(42));
  ASSERT_TRUE(a.passed) << a.failure;
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.history, b.history);
  EXPECT_EQ(a.events, b.events);
  EXPECT_GT(a.events, 1000u);
  EXPECT_GT(a.history.size(), 20u);
}

TEST(SimulatorTest, DifferentSeedsDiffer) {
  SimResult a = RunSimulation(Opts(1));
  SimResult b = RunSimulation(Opts(2));
  EXPECT_NE(a.trace_hash, b.trace_hash);
  EXPECT_NE(a.knobs, b.knobs);
}

TEST(SimulatorTest, FaultsInjectedAndSurvived) {
  int with_faults = 0;
  for (uint64_t seed = 100; seed < 110; ++seed) {
    SimResult r = RunSimulation(Opts(seed));
    ASSERT_TRUE(r.passed) << "seed " << seed << ": " << r.failure;
    if (r.faults_injected > 0) ++with_faults;
    EXPECT_GT(r.ops_ok, 0u) << "seed " << seed;
  }
  EXPECT_EQ(with_faults, 10);
}

TEST(SimulatorTest, RedisWorkloadRunsBesideTheCheckedOne) {
  // The background Redis clients get work done: EXECs both commit and abort on WATCH, and
  // the leader's expiry cycle deletes keys through the log. Half the seeds run without faults,
  // to get many operations done.
  uint64_t ok = 0, committed = 0, aborted = 0, expiries = 0;
  for (uint64_t seed = 200; seed < 205; ++seed) {
    SimOptions o = Opts(seed);
    o.faults = seed % 2 == 0 ? 0u : static_cast<uint32_t>(kFaultAll);
    SimResult r = RunSimulation(o);
    ASSERT_TRUE(r.passed) << "seed " << seed << ": " << r.failure;
    ok += r.redis_ops_ok;
    committed += r.redis_execs_committed;
    aborted += r.redis_execs_aborted;
    expiries += r.expiry_applies;
  }
  EXPECT_GT(ok, 100u);
  EXPECT_GT(committed, 0u);
  EXPECT_GT(aborted, 0u);
  EXPECT_GT(expiries, 0u);
}

TEST(SimulatorTest, GroupsQuiesceInQuietSpellsAndWakeForTheNextRequests) {
  // A quarter of the seeds quiesce idle groups (node storage, quiescence drawn on) and give the
  // clients quiet spells: leaders send quiesce notices, and the runs pass, faults and all.
  uint64_t notices = 0;
  int quiescing = 0;
  for (uint64_t seed = 300; seed < 340; ++seed) {
    SimResult r = RunSimulation(Opts(seed));
    ASSERT_TRUE(r.passed) << "seed " << seed << ": " << r.failure;
    notices += r.quiesce_notices;
    if (r.knobs.find("quiesce=0") == std::string::npos) ++quiescing;
  }
  EXPECT_GE(quiescing, 3);
  EXPECT_GT(notices, 0u);
}

TEST(SimulatorTest, ShardedClustersRouteByTheSlotUnderFaultsAndPass) {
  // A sharded cluster (the meta shard and N data shards on 3 to 7 nodes): requests reach the
  // shard of their key's slot through whichever node the client picked, forwarded between
  // nodes; every invariant holds per group, the history over keys of every shard is
  // linearizable, and every command applies only in the shard that owns its keys.
  const int shards[] = {1, 3, 16};
  const int nodes[] = {3, 5, 7};
  uint64_t forwarded = 0;
  for (uint64_t seed = 400; seed < 406; ++seed) {
    SimOptions o = Opts(seed);
    o.shards = shards[seed % 3];
    o.nodes = nodes[(seed / 3) % 3];
    SimResult r = RunSimulation(o);
    ASSERT_TRUE(r.passed) << ReproCommand(o) << ": " << r.failure;
    EXPECT_NE(r.knobs.find("storage=node"), std::string::npos);
    EXPECT_GT(r.ops_ok, 0u);
    forwarded += r.requests_forwarded;
  }
  EXPECT_GT(forwarded, 0u);
}

TEST(SimulatorTest, WithoutRedisClientsTheCheckedWorkloadStillRuns) {
  SimOptions o = Opts(7);
  o.redis_clients = 0;
  SimResult r = RunSimulation(o);
  ASSERT_TRUE(r.passed) << r.failure;
  EXPECT_EQ(r.redis_ops_ok, 0u);
  EXPECT_GT(r.ops_ok, 0u);
}

TEST(SimulatorTest, PlantedBugIsCaught) {
  // The full search over 200 seeds per bug is in the sim/catches_* ctest tests; this one
  // checks the no-dedup bug, which bites quickly, through the library.
  int caught = 0;
  for (uint64_t seed = 1; seed <= 40 && caught == 0; ++seed) {
    SimOptions o = Opts(seed);
    o.duration_ns = 10'000'000'000;
    o.bug = "no-dedup";
    if (!RunSimulation(o).passed) ++caught;
  }
  EXPECT_GT(caught, 0);
}

TEST(SimulatorTest, ParseFaults) {
  EXPECT_EQ(*ParseFaults("all"), static_cast<uint32_t>(kFaultAll));
  EXPECT_EQ(*ParseFaults("none"), 0u);
  EXPECT_EQ(*ParseFaults("crash,partition"), kFaultCrash | kFaultPartition);
  EXPECT_FALSE(ParseFaults("crash,lightning").ok());
  EXPECT_EQ(FaultsToString(kFaultCrash | kFaultDisk), "crash,disk");
  EXPECT_EQ(FaultsToString(*ParseFaults(FaultsToString(kFaultPause | kFaultClock))), "pause,clock");
}

TEST(SimulatorTest, ReproCommandNamesEverything) {
  SimOptions o;
  o.seed = 17;
  o.nodes = 5;
  o.faults = kFaultCrash;
  o.bug = "stale-read";
  EXPECT_EQ(ReproCommand(o),
            "synod sim --seeds 17 --nodes 5 --faults crash --duration 10s --bug stale-read");
}

}  // namespace
}  // namespace synod::sim
