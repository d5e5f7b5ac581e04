// Tests 2, 3 and 9 of the e2e suite (README.md): kill -9 and SIGTERM of real nodes, restarts,
// catching up from the log and from a snapshot.
#include <gtest/gtest.h>

#include <iostream>

#include "cluster_harness.h"
#include "writer.h"

namespace synod::e2e {
namespace {

// The client ports of `ids`, starting with `first` (the rest in order).
std::vector<uint16_t> PortsStartingAt(const TestCluster& c, uint64_t first,
                                      const std::vector<uint64_t>& ids) {
  std::vector<uint16_t> out = {c.client_port(first)};
  for (uint64_t id : ids) {
    if (id != first) out.push_back(c.client_port(id));
  }
  return out;
}

std::vector<uint16_t> Ports(const TestCluster& c, const std::vector<uint64_t>& ids) {
  std::vector<uint16_t> out;
  for (uint64_t id : ids) out.push_back(c.client_port(id));
  return out;
}

uint64_t Field(const Json& status, const char* name) {
  return status.is_object() ? status.value(name, uint64_t{0}) : 0;
}

size_t CountInLog(const TestCluster& c, uint64_t id, const std::string& needle) {
  const std::string log = c.LogTail(id, 1000000);
  size_t n = 0;
  for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(Crash, KillLeaderDuringWritesLosesNoAcknowledgedWrite) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  // One writer per node, each starting on its own node.
  std::vector<std::unique_ptr<Writer>> writers;
  for (uint64_t id : c.ids()) {
    writers.push_back(
        std::make_unique<Writer>("w" + std::to_string(id), PortsStartingAt(c, id, c.ids()), 3000));
  }
  const int64_t start = NowMs();
  for (auto& w : writers) w->Start();
  // About a second of writes, then the kill, then about two more.
  ASSERT_TRUE(WaitUntil(5000, [&] {
    for (auto& w : writers) {
      if (w->acked_count() < 20) return false;
    }
    return NowMs() - start >= 1000;
  })) << "the writers did not get going";
  const int64_t killed_at = NowMs();
  c.Kill9(leader);
  const int64_t recovery_ms = SetUntilOk(Ports(c, c.LiveIds()), "probe-after-kill", "alive", 15000);
  std::cerr << "e2e: kill -9 of leader " << leader << " after " << killed_at - start
            << " ms of writes; a survivor accepted a write " << recovery_ms << " ms later\n";
  EXPECT_GE(recovery_ms, 0) << "no survivor accepted a write within 15 s";
  EXPECT_LT(recovery_ms, 10000);
  // Keep writing through the survivors for a while, then stop.
  std::vector<size_t> acked_after_kill;
  for (auto& w : writers) acked_after_kill.push_back(w->acked_count());
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::max<int64_t>(0, 3000 - (NowMs() - start))));
  // Every client, including the one whose node died, gets writes through again.
  const bool all_progressed = WaitUntil(5000, [&] {
    for (size_t i = 0; i < writers.size(); ++i) {
      if (writers[i]->acked_count() < acked_after_kill[i] + 5) return false;
    }
    return true;
  });
  for (auto& w : writers) w->Stop();
  EXPECT_TRUE(all_progressed) << "a writer made no progress after the kill";
  for (auto& w : writers) {
    std::cerr << "e2e: writer acked " << w->acked_count() << ", errors:";
    for (const auto& [word, n] : w->errors()) std::cerr << " " << word << "=" << n;
    std::cerr << "\n";
    EXPECT_EQ(w->unexpected_count(), 0u) << ::testing::PrintToString(w->unexpected_errors());
  }

  const uint64_t new_leader = c.WaitForLeader(5000);
  ASSERT_NE(new_leader, 0u);
  ASSERT_NE(new_leader, leader);
  size_t total = 0;
  for (auto& w : writers) total += w->acked().size();
  for (uint64_t id : c.LiveIds()) {
    Redis r(c.client_port(id));
    for (auto& w : writers) {
      const std::vector<std::string> bad = CheckValues(r, w->acked());
      EXPECT_TRUE(bad.empty()) << "acknowledged writes lost or wrong, read through node " << id
                               << ":\n"
                               << ::testing::PrintToString(bad);
    }
    EXPECT_EQ(r.Command({"GET", "probe-after-kill"}).ToString(), "\"alive\"");
  }
  std::cerr << "e2e: checked " << total << " acknowledged writes on each survivor\n";
}

// A connection whose first write failed (no quorum) must be able to write once the cluster is
// back: the client did nothing wrong, and Redis clients do not reconnect on an error reply.
TEST(Crash, ConnectionWhoseFirstWriteFailedCanWriteAfterRecovery) {
  TestCluster c({.flags = {"--request-timeout-ms", "1000"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  // A follower left alone: its first write is forwarded to a dead leader, or refused for want
  // of one; either way it is never applied.
  const uint64_t alone = c.LiveIds(leader).front();
  const uint64_t other = c.LiveIds(leader).back();
  c.Kill9(leader);
  c.Kill9(other);
  Redis r(c.client_port(alone), 10000);
  const Reply failed = r.Command({"SET", "first", "1"});
  std::cerr << "e2e: first write with no quorum answered " << failed.ToString() << "\n";
  EXPECT_TRUE(failed.ErrorStartsWith("CLUSTERDOWN") || failed.ErrorStartsWith("TRYAGAIN"))
      << failed.ToString();
  c.Start(leader);
  c.Start(other);
  ASSERT_NE(c.WaitForLeader(15000), 0u);
  Reply again;
  WaitUntil(10000, [&] {
    again = r.Command({"SET", "second", "2"});
    return !again.ErrorStartsWith("CLUSTERDOWN") && !again.ErrorStartsWith("TRYAGAIN");
  });
  EXPECT_EQ(again.ToString(), "OK") << "the same connection, once the cluster recovered";
  EXPECT_EQ(r.Command({"GET", "second"}).ToString(), "\"2\"");
}

TEST(Crash, KilledLeaderRestartsAndCatchesUp) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  {
    Redis r(c.client_port(leader));
    const auto bad = SetAll(r, MakePairs("k", 50, "old"));
    ASSERT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  }
  c.Kill9(leader);
  const uint64_t new_leader = c.WaitForLeader(10000);
  ASSERT_NE(new_leader, 0u);
  const auto latest = MakePairs("k", 50, "new");
  const auto added = MakePairs("n", 50, "x");
  {
    Redis r(c.client_port(new_leader));
    auto bad = SetAll(r, latest);
    ASSERT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
    bad = SetAll(r, added);
    ASSERT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  }
  const uint64_t target = Field(c.Status(new_leader), "applied");
  c.Start(leader);
  ASSERT_TRUE(c.WaitForApplied(leader, target, 15000))
      << "node " << leader << " did not catch up to " << target << ": " << c.Status(leader).dump();
  // A stale (READONLY) read on the restarted node serves its own replica: the latest values.
  Redis ro(c.client_port(leader));
  ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
  auto bad = CheckValues(ro, latest);
  EXPECT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  bad = CheckValues(ro, added);
  EXPECT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  EXPECT_EQ(ro.Command({"DBSIZE"}).ToString(), "(integer) 100");
}

TEST(Crash, FollowerRestartedAfterCompactionCatchesUpBySnapshot) {
  TestCluster c({.flags = {"--snapshot-entries", "100"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const uint64_t follower = c.LiveIds(leader).front();
  Redis r(c.client_port(leader));
  const auto first = MakePairs("a", 20, "first");
  ASSERT_TRUE(SetAll(r, first).empty());
  ASSERT_TRUE(c.WaitForApplied(follower, Field(c.Status(leader), "commit"), 5000));
  c.Kill9(follower);
  const uint64_t old_applied = Field(c.Status(leader), "commit");
  const size_t installs_before = CountInLog(c, follower, "event=snapshot_installed");
  const auto second = MakePairs("b", 600, "second");
  const auto bad = SetAll(r, second);
  ASSERT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  const Json leader_st = c.Status(leader);
  // The leader compacted its log past what the follower has: it cannot catch up from the log.
  EXPECT_GT(Field(leader_st, "snapshot_index"), old_applied) << leader_st.dump();
  c.Start(follower);
  ASSERT_TRUE(c.WaitForApplied(follower, Field(leader_st, "commit"), 20000))
      << c.Status(follower).dump();
  const Json st = c.Status(follower);
  EXPECT_GT(Field(st, "snapshot_index"), old_applied) << st.dump();
  EXPECT_GT(CountInLog(c, follower, "event=snapshot_installed"), installs_before)
      << "the follower's log shows no snapshot installed after its restart";
  EXPECT_EQ(Field(st, "keys"), 620u) << st.dump();
  Redis ro(c.client_port(follower));
  ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
  auto wrong = CheckValues(ro, first);
  EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
  wrong = CheckValues(ro, second);
  EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
}

TEST(Crash, SigtermOfLeaderHandsOffLeadershipAndExitsZero) {
  TestCluster c;
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const uint64_t term = Field(c.Status(leader), "term");
  {
    Redis r(c.client_port(leader));
    ASSERT_EQ(r.Command({"SET", "before", "stop"}).ToString(), "OK");
  }
  const int64_t start = NowMs();
  const int code = c.Term(leader, 5000);
  const int64_t exited_ms = NowMs() - start;
  EXPECT_EQ(code, 0) << "exit code of a SIGTERMed leader (-1: no exit within 5 s or a signal)";
  const std::vector<uint64_t> others = c.LiveIds();
  const uint64_t new_leader = c.WaitForLeader(2000, others);
  const int64_t leader_ms = NowMs() - start;
  std::cerr << "e2e: leader " << leader << " exited " << exited_ms << " ms after SIGTERM; node "
            << new_leader << " was leader " << leader_ms << " ms after it\n";
  ASSERT_NE(new_leader, 0u) << "no new leader within 2 s of the old one's exit";
  EXPECT_LT(leader_ms, 2000 + exited_ms);
  EXPECT_GT(Field(c.Status(new_leader), "term"), term);
  EXPECT_GE(CountInLog(c, leader, "event=shutdown_transfer"), 1u)
      << "the stopping leader did not try to hand off leadership";
  Redis r(c.client_port(new_leader));
  EXPECT_EQ(r.Command({"GET", "before"}).ToString(), "\"stop\"");
  EXPECT_EQ(r.Command({"SET", "after", "stop"}).ToString(), "OK");
}

}  // namespace
}  // namespace synod::e2e
