// The e2e suite's history test (README.md): concurrent clients on a few keys through every
// node while the leader is killed, restarted, paused and partitioned; their history, with
// call and return times, must be linearizable according to `synod check` (docs/check.md).
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "cluster_harness.h"
#include "history.h"

namespace synod::e2e {
namespace {

// The faults, on the test's main thread: the leader is killed and restarted, paused and
// resumed, cut off and healed; `pause_ms` between steps.
void RunFaults(TestCluster& c, int64_t pause_ms) {
  auto settle = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms)); };
  settle();
  uint64_t leader = c.WaitForLeader(5000);
  if (leader != 0) {
    std::cerr << "e2e: kill -9 leader " << leader << "\n";
    c.Kill9(leader);
    settle();
    c.Start(leader);
  }
  settle();
  leader = c.WaitForLeader(5000);
  if (leader != 0) {
    std::cerr << "e2e: SIGSTOP leader " << leader << "\n";
    c.Stop(leader);
    settle();
    c.Cont(leader);
  }
  settle();
  leader = c.WaitForLeader(5000);
  if (leader != 0) {
    std::cerr << "e2e: partition leader " << leader << "\n";
    std::string others;
    for (uint64_t id : c.LiveIds(leader)) {
      others += (others.empty() ? "" : ",") + std::to_string(id);
      c.Admin(id, "POST", "/debug/partition?peers=" + std::to_string(leader));
    }
    c.Admin(leader, "POST", "/debug/partition?peers=" + others);
    settle();
    for (uint64_t id : c.LiveIds()) c.Admin(id, "POST", "/debug/partition?peers=");
  }
  settle();
}

TEST(Linearizability, HistoryUnderKillPauseAndPartitionOfTheLeaderIsLinearizable) {
  TestCluster c({.flags = {"--request-timeout-ms", "1500"}});
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  CheckHistoryUnderFaults(c, 8, [&] { RunFaults(c, 1200); });
}

// The same over a sharded cluster (six shards, each node leading two; sixteen keys over
// several shards, most requests forwarded): a node is killed with kill -9 and restarted, then
// another paused and resumed, while the clients run through every node.
TEST(Linearizability, ShardedHistoryUnderKillNineAndPauseIsLinearizable) {
  ClusterOptions o;
  o.shards = 0;
  o.flags = {"--request-timeout-ms", "1500"};
  TestCluster c(o);
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  CheckHistoryUnderFaults(c, 16, [&] {
    auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1200)); };
    settle();
    std::cerr << "e2e: kill -9 node 3\n";
    c.Kill9(3);
    settle();
    c.Start(3);
    settle();
    std::cerr << "e2e: SIGSTOP node 2\n";
    c.Stop(2);
    settle();
    c.Cont(2);
    settle();
  });
}

}  // namespace
}  // namespace synod::e2e
