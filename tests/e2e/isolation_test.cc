// Tests 4, 5 and 8 of the e2e suite (README.md): a SIGSTOPped leader, a partitioned node and
// failing disks must never acknowledge a write they did not commit nor serve a stale read.
#include <gtest/gtest.h>

#include <iostream>

#include "cluster_harness.h"
#include "writer.h"

namespace synod::e2e {
namespace {

uint64_t Field(const Json& status, const char* name) {
  return status.is_object() ? status.value(name, uint64_t{0}) : 0;
}

std::vector<uint16_t> Ports(const TestCluster& c, const std::vector<uint64_t>& ids) {
  std::vector<uint16_t> out;
  for (uint64_t id : ids) out.push_back(c.client_port(id));
  return out;
}

std::string StrField(const Json& status, const char* name) {
  return status.is_object() ? status.value(name, std::string("?")) : "(no status)";
}

bool IsTransientError(const Reply& r) {
  return r.ErrorStartsWith("CLUSTERDOWN") || r.ErrorStartsWith("TRYAGAIN");
}

// GET through `port` until a non-error reply or the deadline (a new leader may still settle).
Reply GetSettled(uint16_t port, const std::string& key, int64_t timeout_ms = 10000) {
  Reply out;
  WaitUntil(
      timeout_ms,
      [&] {
        Redis r(port, 3000);
        out = r.Command({"GET", key});
        return out.type != Reply::kIoError && !out.IsError();
      },
      50);
  return out;
}

std::string Join(const std::vector<uint64_t>& ids) {
  std::string out;
  for (uint64_t id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out;
}

// Cuts `node` off from every other node, in both directions.
void Isolate(TestCluster& c, uint64_t node) {
  const HttpResult r = c.Admin(node, "POST", "/debug/partition?peers=" + Join(c.LiveIds(node)));
  ASSERT_EQ(r.status, 200) << r.body;
  for (uint64_t other : c.LiveIds(node)) {
    const HttpResult o = c.Admin(other, "POST", "/debug/partition?peers=" + std::to_string(node));
    ASSERT_EQ(o.status, 200) << o.body;
  }
}

void Heal(TestCluster& c) {
  for (uint64_t id : c.LiveIds()) {
    const HttpResult r = c.Admin(id, "POST", "/debug/partition?peers=");
    ASSERT_EQ(r.status, 200) << r.body;
  }
}

TEST(Isolation, SigstoppedLeaderNeverAcknowledgesStaleWritesNorServesStaleReads) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t old_leader = c.WaitForLeader(10000);
  ASSERT_NE(old_leader, 0u);
  const uint64_t old_term = Field(c.Status(old_leader), "term");
  Redis setup(c.client_port(old_leader));
  ASSERT_EQ(setup.Command({"SET", "r", "old"}).ToString(), "OK");
  ASSERT_EQ(setup.Command({"SET", "w", "before"}).ToString(), "OK");
  // Connected before the pause; their commands are sent during it and wait in the socket.
  Redis writer(c.client_port(old_leader), 20000), reader(c.client_port(old_leader), 20000);
  ASSERT_EQ(writer.Command({"PING"}).ToString(), "PONG");
  ASSERT_EQ(reader.Command({"PING"}).ToString(), "PONG");
  c.Stop(old_leader);
  ASSERT_TRUE(writer.Send({"SET", "w", "during-pause"}));
  ASSERT_TRUE(reader.Send({"GET", "r"}));
  const uint64_t new_leader = c.WaitForLeader(10000, c.LiveIds());
  ASSERT_NE(new_leader, 0u);
  EXPECT_GT(Field(c.Status(new_leader), "term"), old_term);
  ASSERT_GE(SetUntilOk({c.client_port(new_leader)}, "r", "new", 5000), 0);
  c.Cont(old_leader);

  // The read sent during the pause: the new value or an error, never the old one.
  const Reply paused_read = reader.Receive();
  EXPECT_TRUE(paused_read.IsError() || paused_read.type == Reply::kIoError ||
              paused_read.ToString() == "\"new\"")
      << "a read sent to the paused leader was answered " << paused_read.ToString();
  // A read right after SIGCONT, on a new connection to the old leader.
  Redis after(c.client_port(old_leader), 10000);
  const Reply fresh_read = after.Command({"GET", "r"});
  EXPECT_TRUE(fresh_read.IsError() || fresh_read.ToString() == "\"new\"")
      << "the old leader answered a read after SIGCONT with " << fresh_read.ToString();

  // The write sent during the pause: an error, or OK only if it really was committed.
  const Reply paused_write = writer.Receive();
  std::cerr << "e2e: paused write answered " << paused_write.ToString() << "; paused read "
            << paused_read.ToString() << "; fresh read " << fresh_read.ToString() << "\n";
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const Reply w = GetSettled(c.client_port(leader), "w");
  if (paused_write.IsOk()) {
    EXPECT_EQ(w.ToString(), "\"during-pause\"") << "the old leader acknowledged a write that "
                                                   "the cluster does not have";
  } else if (paused_write.ErrorStartsWith("CLUSTERDOWN")) {
    EXPECT_EQ(w.ToString(), "\"before\"") << "CLUSTERDOWN says the write was not applied";
  } else {
    // TRYAGAIN or a dropped connection: the outcome is unknown, but it is one of the two.
    EXPECT_TRUE(paused_write.IsError() || paused_write.type == Reply::kIoError)
        << paused_write.ToString();
    EXPECT_TRUE(w.ToString() == "\"before\"" || w.ToString() == "\"during-pause\"") << w.ToString();
  }
  // Once it rejoined, the old leader's own replica has the new value.
  ASSERT_TRUE(c.WaitForApplied(old_leader, Field(c.Status(leader), "commit"), 10000));
  Redis ro(c.client_port(old_leader));
  ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
  EXPECT_EQ(ro.Command({"GET", "r"}).ToString(), "\"new\"");
}

TEST(Isolation, PartitionedLeaderRefusesWritesWhileTheMajorityAcceptsThem) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t isolated = c.WaitForLeader(10000);
  ASSERT_NE(isolated, 0u);
  const std::vector<uint64_t> majority = c.LiveIds(isolated);
  Redis minority(c.client_port(isolated), 10000);
  ASSERT_EQ(minority.Command({"SET", "x", "1"}).ToString(), "OK");
  Isolate(c, isolated);

  const int64_t start = NowMs();
  const Reply failed = minority.Command({"SET", "minority-write", "maybe"});
  const int64_t took_ms = NowMs() - start;
  std::cerr << "e2e: write to the isolated node answered in " << took_ms
            << " ms: " << failed.ToString() << "\n";
  EXPECT_TRUE(IsTransientError(failed)) << failed.ToString();
  EXPECT_LT(took_ms, 4000);

  const uint64_t leader = c.WaitForLeader(10000, majority);
  ASSERT_NE(leader, 0u);
  ASSERT_GE(SetUntilOk(Ports(c, majority), "x", "2", 5000), 0);
  const auto writes = MakePairs("maj", 30, "m");
  {
    Redis r(c.client_port(leader));
    const auto bad = SetAll(r, writes);
    EXPECT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  }
  // A linearizable read on the isolated node cannot be confirmed: an error, never the old "1".
  const Reply stale = minority.Command({"GET", "x"});
  EXPECT_TRUE(IsTransientError(stale)) << stale.ToString();

  Heal(c);
  const uint64_t target = Field(c.Status(leader), "commit");
  ASSERT_TRUE(c.WaitForApplied(isolated, target, 15000)) << c.Status(isolated).dump();
  Redis ro(c.client_port(isolated));
  ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
  const auto wrong = CheckValues(ro, writes);
  EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
  EXPECT_EQ(ro.Command({"GET", "x"}).ToString(), "\"2\"");
  // CLUSTERDOWN promises the write was not applied; TRYAGAIN leaves it unknown.
  if (failed.ErrorStartsWith("CLUSTERDOWN")) {
    EXPECT_EQ(GetSettled(c.client_port(leader), "minority-write").ToString(), "(nil)");
  }
}

TEST(Isolation, PartitionedFollowerRefusesWritesAndCatchesUpAfterHealing) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const uint64_t isolated = c.LiveIds(leader).front();
  Redis minority(c.client_port(isolated), 10000);
  ASSERT_EQ(minority.Command({"SET", "y", "1"}).ToString(), "OK");
  Isolate(c, isolated);
  const int64_t start = NowMs();
  const Reply failed = minority.Command({"SET", "follower-write", "maybe"});
  const int64_t took_ms = NowMs() - start;
  std::cerr << "e2e: write to the isolated follower answered in " << took_ms
            << " ms: " << failed.ToString() << "\n";
  EXPECT_TRUE(IsTransientError(failed)) << failed.ToString();
  EXPECT_LT(took_ms, 4000);
  // The majority keeps its leader and serves writes meanwhile.
  Redis majority(c.client_port(leader));
  EXPECT_EQ(majority.Command({"SET", "y", "2"}).ToString(), "OK");
  const Reply stale = minority.Command({"GET", "y"});
  EXPECT_TRUE(IsTransientError(stale)) << stale.ToString();
  Heal(c);
  const uint64_t new_leader = c.WaitForLeader(10000);
  ASSERT_NE(new_leader, 0u);
  ASSERT_TRUE(c.WaitForApplied(isolated, c.StatusNumber(new_leader, "commit"), 15000));
  Redis ro(c.client_port(isolated));
  ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
  EXPECT_EQ(ro.Command({"GET", "y"}).ToString(), "\"2\"");
  if (failed.ErrorStartsWith("CLUSTERDOWN")) {
    EXPECT_EQ(GetSettled(c.client_port(new_leader), "follower-write").ToString(), "(nil)");
  }
}

TEST(Isolation, FailedDisksRefuseWritesAndLoseNoAcknowledgedOne) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const auto before = MakePairs("d", 50, "ok");
  {
    Redis r(c.client_port(leader));
    const auto bad = SetAll(r, before);
    ASSERT_TRUE(bad.empty()) << ::testing::PrintToString(bad);
  }
  for (uint64_t id : c.ids()) {
    const HttpResult r = c.Admin(id, "POST", "/debug/disk?fail=1");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  for (uint64_t id : c.ids()) {
    Redis r(c.client_port(id), 8000);
    const int64_t start = NowMs();
    const Reply w = r.Command({"SET", "during-fault-" + std::to_string(id), "x"});
    std::cerr << "e2e: write through node " << id << " with failing disks answered in "
              << NowMs() - start << " ms: " << w.ToString() << "\n";
    EXPECT_TRUE(w.ErrorStartsWith("MISCONF") || IsTransientError(w))
        << "node " << id << " answered a write on a failed disk with " << w.ToString();
  }
  // The leader tried to write and must say so.
  EXPECT_TRUE(WaitUntil(3000, [&] {
    const std::string failure = StrField(c.Status(leader), "failure");
    return !failure.empty() && failure != "(no status)";
  })) << c.Status(leader).dump();
  for (uint64_t id : c.ids()) {
    const HttpResult r = c.Admin(id, "POST", "/debug/disk?fail=0");
    EXPECT_EQ(r.status, 200) << r.body;
    c.Restart(id);
  }
  const uint64_t new_leader = c.WaitForLeader(15000);
  ASSERT_NE(new_leader, 0u);
  ASSERT_GE(SetUntilOk(Ports(c, c.ids()), "after", "restart", 10000), 0);
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(StrField(c.Status(id), "failure"), "") << "node " << id;
    Redis r(c.client_port(id));
    const auto wrong = CheckValues(r, before);
    EXPECT_TRUE(wrong.empty()) << "node " << id << ": " << ::testing::PrintToString(wrong);
  }
}

}  // namespace
}  // namespace synod::e2e
