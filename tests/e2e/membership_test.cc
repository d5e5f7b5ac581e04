// Test 6 of the e2e suite (README.md): a node joins a running cluster and leaves it, and an
// original member is removed, while a client keeps writing; the CLI shows every member.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "cluster_harness.h"
#include "writer.h"

namespace synod::e2e {
namespace {

// The members node `id` lists in /status: id -> voter. Empty when /status fails.
std::map<uint64_t, bool> Members(const TestCluster& c, uint64_t id) {
  std::map<uint64_t, bool> out;
  const Json st = c.Status(id);
  if (!st.is_object() || !st.contains("members")) return out;
  for (const Json& m : st["members"]) out[m.value("id", uint64_t{0})] = m.value("voter", false);
  return out;
}

std::string Describe(const std::map<uint64_t, bool>& members) {
  std::string out;
  for (const auto& [id, voter] : members) {
    out += std::to_string(id) + (voter ? "(voter) " : "(learner) ");
  }
  return out;
}

// POSTs to the current leader (retrying while leadership moves). Returns the last answer.
HttpResult PostToLeader(const TestCluster& c, const std::string& path) {
  HttpResult r;
  WaitUntil(
      10000,
      [&] {
        uint64_t leader = c.WaitForLeader(5000);
        if (leader == 0) return false;
        r = c.Admin(leader, "POST", path);
        if (r.status == 421) {
          // Membership goes to the meta shard's leader, which the refusal names.
          const Json j = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
          leader = j.is_object() ? j.value("leader", uint64_t{0}) : 0;
          if (leader != 0 && c.running(leader)) r = c.Admin(leader, "POST", path);
        }
        return r.status != 421 && r.status != -1;
      },
      100);
  return r;
}

// Waits until the writer acknowledged `more` writes beyond what it had.
bool WritesContinue(const Writer& w, size_t more, int64_t timeout_ms = 10000) {
  const size_t from = w.acked_count();
  return WaitUntil(timeout_ms, [&] { return w.acked_count() >= from + more; });
}

// Runs `synod ARGS... --host ADMIN` (as docs/operations.md writes it) and checks that it
// exits 0 and prints every expected member's client address.
void CheckCliTable(const TestCluster& c, std::vector<std::string> args, uint64_t via,
                   const std::vector<uint64_t>& expected) {
  args.insert(args.begin(), c.synod_bin());
  args.push_back("--host");
  args.push_back(c.admin_address(via));
  const ProgramResult r = RunProgram(args, 20000);
  std::cerr << "e2e: " << ::testing::PrintToString(args) << " printed:\n" << r.out << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (uint64_t id : expected) {
    EXPECT_NE(r.out.find(c.client_address(id)), std::string::npos) << "no line for node " << id;
  }
}

void CheckCli(const TestCluster& c, uint64_t via, const std::vector<uint64_t>& expected) {
  CheckCliTable(c, {"member", "list"}, via, expected);
  CheckCliTable(c, {"status"}, via, expected);
  const ProgramResult json =
      RunProgram({c.synod_bin(), "status", "--json", "--host", c.admin_address(via)}, 20000);
  ASSERT_EQ(json.exit_code, 0) << json.out << json.err;
  const Json parsed = Json::parse(json.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object() && parsed["nodes"].is_array()) << json.out;
  const Json& rows = parsed["nodes"];
  EXPECT_FALSE(parsed["shards"].empty()) << json.out;
  std::vector<uint64_t> ids;
  for (const Json& row : rows) {
    ids.push_back(row.value("id", uint64_t{0}));
    EXPECT_EQ(row.value("state", std::string()), "up") << row.dump();
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, expected);
}

// The data shard's descriptor as node `via` shows it (from the meta shard): its epoch and its
// voters and learners in id order ("epoch=2 voters=1,2,3,4 learners=").
std::string ShardDescriptorOf(const TestCluster& c, uint64_t via) {
  const Json st = c.Status(via);
  if (!st.is_object() || !st.contains("shards") || st["shards"].size() != 1) return "?";
  const Json& s = st["shards"][0];
  auto ids = [](const Json& list) {
    std::vector<uint64_t> v;
    for (const Json& id : list) v.push_back(id.get<uint64_t>());
    std::sort(v.begin(), v.end());
    std::string out;
    for (uint64_t id : v) out += (out.empty() ? "" : ",") + std::to_string(id);
    return out;
  };
  return "epoch=" + std::to_string(s.value("epoch", uint64_t{0})) + " voters=" + ids(s["voters"]) +
         " learners=" + ids(s["learners"]);
}

// Waits until every node of `ids` shows the shard's members as `members` ("voters=...
// learners=..."); returns the epoch they show, 0 on timeout.
uint64_t WaitForDescriptor(const TestCluster& c, const std::vector<uint64_t>& ids,
                           const std::string& members) {
  uint64_t epoch = 0;
  const bool ok = WaitUntil(10000, [&] {
    std::set<std::string> seen;
    for (uint64_t id : ids) seen.insert(ShardDescriptorOf(c, id));
    if (seen.size() != 1) return false;
    const std::string d = *seen.begin();
    if (d.find(" " + members) == std::string::npos) return false;
    epoch = std::stoull(d.substr(6));
    return true;
  });
  if (!ok) {
    for (uint64_t id : ids) std::cerr << "node " << id << ": " << ShardDescriptorOf(c, id) << "\n";
  }
  return ok ? epoch : 0;
}

// The node list node `id` has read from the meta shard: node id -> its client address.
std::map<uint64_t, std::string> NodeList(const TestCluster& c, uint64_t id) {
  std::map<uint64_t, std::string> out;
  const Json s = c.Status(id);
  if (!s.is_object() || !s.contains("node_list")) return out;
  for (const Json& n : s["node_list"]) out[n.value("id", uint64_t{0})] = n.value("client", "");
  return out;
}

// Waits until every node of `ids` holds exactly `want` as the node list.
bool WaitForNodeList(const TestCluster& c, const std::vector<uint64_t>& ids,
                     const std::map<uint64_t, std::string>& want) {
  const bool ok = WaitUntil(15000, [&] {
    for (uint64_t id : ids) {
      if (NodeList(c, id) != want) return false;
    }
    return true;
  });
  if (!ok) {
    for (uint64_t id : ids) {
      std::cerr << "node " << id << ": " << ::testing::PrintToString(NodeList(c, id)) << "\n";
    }
  }
  return ok;
}

TEST(Membership, AddAndRemoveNodesWhileWriting) {
  TestCluster c({.flags = {"--request-timeout-ms", "3000"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> followers = c.LiveIds(leader);
  const uint64_t removed = followers[0], kept = followers[1];
  Writer w("m", {c.client_port(leader), c.client_port(kept)}, 6000);
  w.Start();
  ASSERT_TRUE(WritesContinue(w, 20));

  // Node 4 joins through node 1's admin port: it is listed, and the placement logic makes it a
  // voter of the meta shard (which has room for five); the data shard keeps its three replicas
  // (one each on nodes 1-3: as balanced as four nodes allow).
  const uint64_t added = c.AddNode(1);
  std::map<uint64_t, std::string> all;
  for (uint64_t id : {uint64_t{1}, uint64_t{2}, uint64_t{3}, added}) all[id] = c.client_address(id);
  EXPECT_TRUE(WaitForNodeList(c, {1, 2, 3, added}, all));
  ASSERT_TRUE(WaitUntil(
      30000,
      [&] {
        for (const Json& g : c.Status(added).value("groups", Json::array())) {
          if (g.value("group", 0) == 1 && g.value("role", "") == "follower" &&
              g.value("applied", 0) > 0) {
            return true;
          }
        }
        return false;
      },
      100))
      << "node " << added << " did not join the meta shard: " << c.Status(added).dump();
  EXPECT_NE(WaitForDescriptor(c, {1, 2, 3, added}, "voters=1,2,3 learners="), 0u);
  {
    // Asking again to add a member with its own peer address succeeds (`synod member add`
    // then `synod start --join` both ask); another address for the same id is refused.
    const std::string peer = c.Status(added).value("peer", "");
    ASSERT_FALSE(peer.empty());
    HttpResult again =
        PostToLeader(c, "/members/add?id=" + std::to_string(added) + "&peer=" + peer);
    EXPECT_EQ(again.status, 200) << again.body;
    EXPECT_NE(again.body.find("\"already_member\":true"), std::string::npos) << again.body;
    HttpResult other =
        PostToLeader(c, "/members/add?id=" + std::to_string(added) + "&peer=127.0.0.1:1");
    EXPECT_EQ(other.status, 409) << other.body;
  }

  // An original follower leaves at once (`synod member remove`, for a node gone for good): the
  // data shard is left with two replicas, and the placement logic makes node 4 the third, which
  // catches up with all the data.
  HttpResult r = PostToLeader(c, "/members/remove?id=" + std::to_string(removed));
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<uint64_t> three{leader, kept, added};
  std::sort(three.begin(), three.end());
  std::string members = "voters=";
  for (uint64_t id : three) members += std::to_string(id) + (id == three.back() ? "" : ",");
  const uint64_t epoch_three = WaitForDescriptor(c, three, members + " learners=");
  EXPECT_GE(epoch_three, 3u);
  EXPECT_TRUE(WaitUntil(15000, [&] {
    return Describe(Members(c, c.WaitForLeader(2000))) ==
           Describe({{leader, true}, {kept, true}, {added, true}});
  })) << Describe(Members(c, c.WaitForLeader(2000)));
  c.Kill9(removed);
  EXPECT_TRUE(WritesContinue(w, 20)) << "writes stopped with 3 voters";
  const auto acked = w.acked();
  ASSERT_TRUE(c.WaitForApplied(added, c.StatusNumber(c.WaitForLeader(2000), "commit"), 15000));
  {
    Redis ro(c.client_port(added));
    ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
    const auto wrong = CheckValues(ro, acked);
    EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
  }
  CheckCli(c, added, three);
  // A removed node leaves the node list.
  all.erase(removed);
  EXPECT_TRUE(WaitForNodeList(c, three, all));

  // Node 4 leaves again.
  r = PostToLeader(c, "/members/remove?id=" + std::to_string(added));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(WaitUntil(10000, [&] { return Members(c, c.WaitForLeader(2000)).count(added) == 0; }))
      << Describe(Members(c, c.WaitForLeader(2000)));
  c.Kill9(added);
  EXPECT_TRUE(WritesContinue(w, 20)) << "writes stopped after removing node " << added;
  w.Stop();

  std::cerr << "e2e: " << w.acked_count() << " writes acknowledged; errors:";
  for (const auto& [word, n] : w.errors()) std::cerr << " " << word << "=" << n;
  std::cerr << "\n";
  EXPECT_EQ(w.unexpected_count(), 0u) << ::testing::PrintToString(w.unexpected_errors());
  const uint64_t final_leader = c.WaitForLeader(5000);
  ASSERT_NE(final_leader, 0u);
  Redis check(c.client_port(final_leader));
  const auto wrong = CheckValues(check, w.acked());
  EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
}

TEST(Membership, ANodeRestartedOnANewClientPortIsShownThereByEveryNode) {
  // Node 3 comes back on another client port (same data, same peer port): it registers its
  // new addresses in the meta shard's node list, and every node's Redis Cluster replies name
  // the new port, so cluster clients keep finding its shards.
  ClusterOptions o;
  o.shards = 6;
  TestCluster c(o);
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  std::map<uint64_t, std::string> all;
  for (uint64_t id : c.ids()) all[id] = c.client_address(id);
  ASSERT_TRUE(WaitForNodeList(c, c.ids(), all));
  const uint16_t old_port = c.client_port(3);
  c.RestartOnNewClientPort(3);
  ASSERT_NE(c.client_port(3), old_port);
  all[3] = c.client_address(3);
  ASSERT_TRUE(WaitForNodeList(c, c.ids(), all));
  for (uint64_t id : c.ids()) {
    EXPECT_TRUE(WaitUntil(
        10000,
        [&] {
          Redis r(c.client_port(id));
          const std::string nodes = r.Command({"CLUSTER", "NODES"}).str;
          return nodes.find(":" + std::to_string(c.client_port(3)) + "@") != std::string::npos &&
                 nodes.find(":" + std::to_string(old_port) + "@") == std::string::npos;
        }))
        << "node " << id << " still names node 3's old client port";
  }
  // The new port serves.
  Redis three(c.client_port(3));
  EXPECT_TRUE(three.Command({"SET", "moved", "yes"}).IsOk());
  EXPECT_EQ(three.Command({"GET", "moved"}).str, "yes");
}

}  // namespace
}  // namespace synod::e2e
