// The default sharded layout end to end: `synod start` with two data shards per node (six on
// three nodes), leaders spread, any node serving any key (forwarding to the shard's leader),
// multi-key commands fanned out or refused with CROSSSLOT, keyless commands over every shard,
// and a kill -9 during writes after which every shard serves again with nothing acknowledged
// lost.
#include <gtest/gtest.h>

#include <initializer_list>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cluster_harness.h"
#include "writer.h"

namespace synod::e2e {
namespace {

// Synod's default layout: two data shards per node.
ClusterOptions ShardedOptions(std::vector<std::string> flags = {}) {
  ClusterOptions o;
  o.flags = std::move(flags);
  o.shards = 0;
  return o;
}

uint16_t PortOf(const Reply& node) { return static_cast<uint16_t>(node.elements.at(1).integer); }

// CLUSTER SLOTS through `via`: slot range start -> the master's client port.
std::map<int64_t, uint16_t> Masters(TestCluster& c, uint64_t via) {
  std::map<int64_t, uint16_t> out;
  Redis r(c.client_port(via), 2000);
  const Reply slots = r.Command({"CLUSTER", "SLOTS"});
  for (const Reply& range : slots.elements) {
    if (range.elements.size() >= 3) out[range.elements[0].integer] = PortOf(range.elements[2]);
  }
  return out;
}

// A sharded cluster whose six shards are led by their preferred leaders: each node leads two
// (and the map changes no more unless a test makes it).
void WaitForSpreadLeaders(TestCluster& c) {
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  ASSERT_TRUE(WaitForPreferredLeaders(c, 6)) << "leaders did not settle on their preferred nodes";
}

// Writes `value` to each of `keys` through node `via` until each was taken once (within 15 s):
// the shards of the keys all serve writes again.
bool EveryShardTakesAWrite(TestCluster& c, const std::vector<std::string>& keys, uint64_t via,
                           const std::string& value) {
  std::set<std::string> serving;
  return WaitUntil(
      15000,
      [&] {
        Redis r(c.client_port(via), 1000);
        for (const std::string& k : keys) {
          if (serving.count(k) == 0 && r.Command({"SET", k, value}).IsOk()) serving.insert(k);
        }
        return serving.size() == keys.size();
      },
      20);
}

// A key of each shard: the first "k<i>" whose slot falls in each range.
std::vector<std::string> OneKeyPerShard(TestCluster& c) {
  const std::map<int64_t, uint16_t> m = Masters(c, 1);
  std::vector<int64_t> starts;
  for (const auto& [start, port] : m) starts.push_back(start);
  Redis r(c.client_port(1));
  std::map<size_t, std::string> by_shard;
  for (int i = 0; by_shard.size() < starts.size() && i < 10000; ++i) {
    const std::string k = "k" + std::to_string(i);
    const int64_t slot = r.Command({"CLUSTER", "KEYSLOT", k}).integer;
    size_t shard = 0;
    while (shard + 1 < starts.size() && starts[shard + 1] <= slot) ++shard;
    by_shard.emplace(shard, k);
  }
  std::vector<std::string> out;
  for (auto& [s, k] : by_shard) out.push_back(k);
  return out;
}

TEST(Sharding, AnyNodeServesEveryShardAndMultiKeyCommandsSpanShards) {
  TestCluster c(ShardedOptions());
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const std::vector<std::string> keys = OneKeyPerShard(c);
  ASSERT_EQ(keys.size(), 6u);

  // Written through one node, read through each of the others: most hops are forwarded.
  for (size_t i = 0; i < keys.size(); ++i) {
    Redis w(c.client_port(1 + i % 3));
    ASSERT_TRUE(w.Command({"SET", keys[i], "v" + std::to_string(i)}).IsOk());
  }
  for (uint64_t id : c.ids()) {
    Redis r(c.client_port(id));
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(r.Command({"GET", keys[i]}).str, "v" + std::to_string(i)) << "via node " << id;
    }
  }
  Redis r(c.client_port(2));
  // MGET, EXISTS, TOUCH fan out; the values come back in the order asked.
  std::vector<std::string> mget{"MGET"};
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) mget.push_back(*it);
  mget.push_back("absent");
  const Reply values = r.Command(mget);
  ASSERT_EQ(values.elements.size(), keys.size() + 1) << values.ToString();
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(values.elements[i].str, "v" + std::to_string(keys.size() - 1 - i));
  }
  EXPECT_EQ(values.elements.back().type, REDIS_REPLY_NIL);
  std::vector<std::string> exists{"EXISTS"};
  exists.insert(exists.end(), keys.begin(), keys.end());
  exists.push_back("absent");
  exists.push_back(keys[0]);  // counted twice, as Redis does
  EXPECT_EQ(r.Command(exists).integer, 7);
  // Atomic multi-key commands across shards are refused; within one slot they work.
  EXPECT_TRUE(r.Command({"MSET", keys[0], "1", keys[1], "2"})
                  .ErrorStartsWith("CROSSSLOT Keys in request don't hash to the same slot"));
  EXPECT_TRUE(r.Command({"RENAME", keys[0], keys[1]}).ErrorStartsWith("CROSSSLOT"));
  EXPECT_TRUE(r.Command({"MSET", "{u}a", "1", "{u}b", "2"}).IsOk());
  EXPECT_TRUE(r.Command({"RENAME", "{u}a", "{u}c"}).IsOk());
  // Keyless commands cover every shard.
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(Redis(c.client_port(id)).Command({"DBSIZE"}).integer, 8) << "via node " << id;
  }
  EXPECT_EQ(r.Command({"KEYS", "*"}).elements.size(), 8u);
  EXPECT_EQ(r.Command({"RANDOMKEY"}).type, REDIS_REPLY_STRING);
  // A transaction runs in one shard: a command of another is refused and aborts it.
  ASSERT_TRUE(r.Command({"MULTI"}).IsOk());
  EXPECT_EQ(r.Command({"INCR", "{u}n"}).str, "QUEUED");
  EXPECT_TRUE(r.Command({"SET", keys[0], "x"}).ErrorStartsWith("CROSSSLOT"));
  EXPECT_TRUE(r.Command({"EXEC"}).ErrorStartsWith("EXECABORT"));
  ASSERT_TRUE(r.Command({"WATCH", "{u}b"}).IsOk());
  ASSERT_TRUE(r.Command({"MULTI"}).IsOk());
  EXPECT_EQ(r.Command({"INCR", "{u}b"}).str, "QUEUED");
  const Reply exec = r.Command({"EXEC"});
  ASSERT_EQ(exec.elements.size(), 1u) << exec.ToString();
  EXPECT_EQ(exec.elements[0].integer, 3);
  // DEL and UNLINK fan out and sum.
  std::vector<std::string> del{"DEL"};
  del.insert(del.end(), keys.begin(), keys.begin() + 3);
  del.push_back("absent");
  EXPECT_EQ(r.Command(del).integer, 3);
  std::vector<std::string> unlink{"UNLINK"};
  unlink.insert(unlink.end(), keys.begin() + 3, keys.end());
  EXPECT_EQ(r.Command(unlink).integer, 3);
  EXPECT_EQ(r.Command({"DBSIZE"}).integer, 2);
  // WAIT asks the leader of the shard last written.
  EXPECT_TRUE(r.Command({"SET", keys[5], "w"}).IsOk());
  EXPECT_EQ(r.Command({"WAIT", "2", "2000"}).integer, 2);
  EXPECT_TRUE(r.Command({"FLUSHALL"}).IsOk());
  EXPECT_EQ(r.Command({"DBSIZE"}).integer, 0);
  // CLUSTER COUNTKEYSINSLOT reads the owning shard wherever it is led.
  for (const char* k : {"{t}a", "{t}b", "{t}c"}) ASSERT_TRUE(r.Command({"SET", k, "1"}).IsOk());
  const std::string slot = std::to_string(r.Command({"CLUSTER", "KEYSLOT", "t"}).integer);
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(Redis(c.client_port(id)).Command({"CLUSTER", "COUNTKEYSINSLOT", slot}).integer, 3);
  }
}

// SCAN walks the shards in slot order (the cursor's top bits are a slot): every key present for
// the whole scan is returned, through any node.
TEST(Sharding, ScanReturnsEveryKeyOfEveryShard) {
  TestCluster c(ShardedOptions());
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  Redis w(c.client_port(1));
  std::vector<std::vector<std::string>> sets;
  std::set<std::string> expected;
  for (int i = 0; i < 500; ++i) {
    const std::string k = "scan:" + std::to_string(i);
    sets.push_back({"SET", k, "1"});
    expected.insert(k);
  }
  for (const Reply& rep : w.Pipeline(sets)) ASSERT_TRUE(rep.IsOk()) << rep.ToString();
  for (uint64_t id : c.ids()) {
    Redis r(c.client_port(id));
    std::set<std::string> seen;
    std::string cursor = "0";
    int calls = 0;
    do {
      const Reply rep = r.Command({"SCAN", cursor, "COUNT", "37"});
      ASSERT_EQ(rep.elements.size(), 2u) << rep.ToString();
      cursor = rep.elements[0].str;
      for (const Reply& k : rep.elements[1].elements) seen.insert(k.str);
    } while (cursor != "0" && ++calls < 1000);
    EXPECT_EQ(seen, expected) << "via node " << id;
  }
  EXPECT_TRUE(Redis(c.client_port(2)).Command({"SCAN", "x"}).ErrorStartsWith("ERR invalid cursor"));
}

// redis-cli -c follows the MOVED of a sharded cluster to each shard's leader.
TEST(Sharding, RedisCliFollowsMovedToEachShardsLeader) {
  TestCluster c(ShardedOptions({"--cluster-redirects"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const std::vector<std::string> keys = OneKeyPerShard(c);
  Redis plain(c.client_port(3));
  int moved = 0;
  for (const std::string& k : keys) {
    // Node 3 serves the shards it leads and redirects the others to their leader.
    const int64_t slot = plain.Command({"CLUSTER", "KEYSLOT", k}).integer;
    const std::map<int64_t, uint16_t> masters = Masters(c, 3);
    const uint16_t master = std::prev(masters.upper_bound(slot))->second;
    const Reply rep = plain.Command({"SET", k, "x"});
    if (master == c.client_port(3)) {
      EXPECT_TRUE(rep.IsOk()) << rep.ToString();
    } else {
      ++moved;
      EXPECT_EQ(rep.str, "MOVED " + std::to_string(slot) + " 127.0.0.1:" + std::to_string(master));
    }
    EXPECT_EQ(RedisCli(c.client_port(3), {"-c", "SET", k, "v"}), "OK\n");
    EXPECT_EQ(RedisCli(c.client_port(3), {"-c", "GET", k}), "v\n");
  }
  EXPECT_GE(moved, 3);  // node 3 leads about two of the six shards
}

// kill -9 of a node while clients write through the others: every shard serves again within
// about two seconds (those it led elect new leaders), and no acknowledged write is lost.
TEST(Sharding, KillNineDuringWritesEveryShardServesAgainAndNothingAckedIsLost) {
  TestCluster c(ShardedOptions({"--request-timeout-ms", "3000"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const std::vector<std::string> keys = OneKeyPerShard(c);
  Writer w1("a", {c.client_port(1), c.client_port(2)}, 6000);
  Writer w2("b", {c.client_port(2), c.client_port(1)}, 6000);
  w1.Start();
  w2.Start();
  ASSERT_TRUE(WaitUntil(10000, [&] { return w1.acked_count() > 50 && w2.acked_count() > 50; }));
  c.Kill9(3);
  const int64_t killed = NowMs();
  // Every shard takes a write through a survivor again.
  ASSERT_TRUE(EveryShardTakesAWrite(c, keys, 1, "after"));
  std::cerr << "e2e: every shard served writes again " << NowMs() - killed
            << " ms after the kill -9\n";
  const size_t a = w1.acked_count(), b = w2.acked_count();
  ASSERT_TRUE(
      WaitUntil(10000, [&] { return w1.acked_count() > a + 20 && w2.acked_count() > b + 20; }));
  w1.Stop();
  w2.Stop();
  Redis r(c.client_port(2));
  for (Writer* w : {&w1, &w2}) {
    const auto wrong = CheckValues(r, w->acked());
    EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
    EXPECT_EQ(w->unexpected_count(), 0u) << ::testing::PrintToString(w->unexpected_errors());
  }
}

// With --cluster-redirects a node answers keyless reads as a Redis Cluster master does, for the
// shards it leads: cluster clients send DBSIZE, KEYS and SCAN to every master and combine the
// answers, which then count every key once (not once per node).
TEST(Sharding, WithRedirectsKeylessReadsCoverTheShardsANodeLeads) {
  TestCluster c(ShardedOptions({"--cluster-redirects"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  constexpr int kKeys = 60;
  for (int i = 0; i < kKeys; ++i) {
    const std::string k = "kr" + std::to_string(i);
    uint16_t port = c.client_port(1);
    Reply r;
    for (int hop = 0; hop < 5; ++hop) {  // follow -MOVED as a cluster client does
      Redis conn(port);
      r = conn.Command({"SET", k, "v"});
      if (!r.ErrorStartsWith("MOVED")) break;
      port = static_cast<uint16_t>(std::stoi(r.str.substr(r.str.rfind(':') + 1)));
    }
    ASSERT_TRUE(r.IsOk()) << k << ": " << r.ToString();
  }
  // Summed over the nodes, every key once (retried while a leadership hand-back moves shards).
  std::string last;
  EXPECT_TRUE(WaitUntil(10000, [&] {
    int64_t dbsize = 0;
    size_t keys = 0;
    std::multiset<std::string> scanned;
    std::string info;
    for (uint64_t id : c.ids()) {
      Redis r(c.client_port(id));
      dbsize += r.Command({"DBSIZE"}).integer;
      keys += r.Command({"KEYS", "*"}).elements.size();
      std::string cursor = "0";
      for (int n = 0; n < 100; ++n) {
        const Reply page = r.Command({"SCAN", cursor, "COUNT", "7"});
        if (page.elements.size() != 2) return false;
        for (const Reply& k : page.elements[1].elements) scanned.insert(k.str);
        cursor = page.elements[0].str;
        if (cursor == "0") break;
      }
      info += r.Command({"INFO", "keyspace"}).str;
    }
    std::set<std::string> distinct(scanned.begin(), scanned.end());
    last = "dbsize " + std::to_string(dbsize) + ", keys " + std::to_string(keys) + ", scanned " +
           std::to_string(scanned.size()) + " (" + std::to_string(distinct.size()) +
           " distinct), info " + info;
    return dbsize == kKeys && keys == kKeys && scanned.size() == kKeys && distinct.size() == kKeys;
  })) << last;
  // Without the flag (the other tests) every node counts every shard: DBSIZE is the total.
}

// `synod status` lists the nodes with the shards each leads and every shard; /metrics gives
// each group's figures with a `shard` label.
TEST(Sharding, StatusAndMetricsShowEveryShard) {
  TestCluster c(ShardedOptions());
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const ProgramResult st =
      RunProgram({c.synod_bin(), "status", "--json", "--host", c.admin_address(2)}, 20000);
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  const Json j = Json::parse(st.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << st.out;
  ASSERT_EQ(j["nodes"].size(), 3u) << st.out;
  ASSERT_EQ(j["shards"].size(), 6u) << st.out;
  int led = 0;
  for (const Json& n : j["nodes"]) {
    EXPECT_EQ(n.value("groups", 0), 7) << n.dump();  // six data shards and the meta shard
    led += n.value("groups_led", 0);
  }
  EXPECT_EQ(led, 7) << st.out;
  for (const Json& s : j["shards"]) EXPECT_NE(s.value("leader", uint64_t{0}), 0u) << s.dump();
  const ProgramResult text =
      RunProgram({c.synod_bin(), "status", "--host", c.admin_address(2)}, 20000);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("LEADS"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("0-2730"), std::string::npos) << text.out;  // the first shard's slots
  // Metrics: one series per group held, labelled; the shards a node leads are those it says.
  // (The metrics are published every 100 ms: a hand-back just before may show a moment later.)
  for (uint64_t id : c.ids()) {
    std::string body;
    int leading = 0, said = -1;
    EXPECT_TRUE(WaitUntil(5000,
                          [&] {
                            const HttpResult m = c.Admin(id, "GET", "/metrics");
                            body = m.body;
                            leading = 0;
                            for (int g = 1; g <= 7; ++g) {
                              const std::string shard = "{shard=\"" + std::to_string(g) + "\"}";
                              leading += body.find("synod_shard_raft_is_leader" + shard + " 1") !=
                                         std::string::npos;
                            }
                            said = c.Status(id).value("groups_led", -1);
                            return m.status == 200 && leading == said;
                          }))
        << "node " << id << ": " << leading << " shards led in /metrics, " << said << " in /status";
    for (int g = 1; g <= 7; ++g) {
      const std::string shard = "{shard=\"" + std::to_string(g) + "\"}";
      EXPECT_NE(body.find("synod_shard_raft_term" + shard), std::string::npos) << shard;
      EXPECT_NE(body.find("synod_shard_keys" + shard), std::string::npos) << shard;
    }
  }
}

// An idle cluster's groups quiesce (stop ticking) on every node; a read and a write wake their
// shard. A node leading quiesced shards that stops answering (SIGSTOP: its connections stay
// open, only its node beat stops) is noticed without the groups' ticks: the survivors elect
// new leaders with no client traffic to wake them, and every shard serves again.
TEST(Sharding, IdleShardsQuiesceAndAStoppedLeaderOfQuiescedShardsIsReplaced) {
  TestCluster c(ShardedOptions());
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const std::vector<std::string> keys = OneKeyPerShard(c);
  {
    Redis r(c.client_port(1));
    for (const std::string& k : keys) ASSERT_TRUE(r.Command({"SET", k, "before"}).IsOk());
  }
  auto all_quiesced = [&](uint64_t id) {
    const Json st = c.Status(id);
    return st.value("groups_quiesced", -1) == static_cast<int>(st["groups"].size());
  };
  auto led_by_3 = [&] {
    int n = 0;
    const Json st = c.Status(1);
    for (const Json& g : st["groups"]) n += g.value("leader", uint64_t{0}) == 3 ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(WaitUntil(10000, [&] {
    for (uint64_t id : c.ids()) {
      if (!all_quiesced(id)) return false;
    }
    return true;
  })) << c.Status(1).dump();
  {
    Redis r(c.client_port(2));
    EXPECT_EQ(r.Command({"GET", keys.front()}).str, "before");  // a quiesced shard wakes to serve
    ASSERT_TRUE(r.Command({"SET", keys.front(), "woken"}).IsOk());
  }
  ASSERT_TRUE(WaitUntil(10000, [&] { return all_quiesced(1) && all_quiesced(2); }));
  ASSERT_GE(led_by_3(), 1) << c.Status(1).dump();
  c.Stop(3);
  const int64_t stopped = NowMs();
  // Node 1's view: no shard is led by node 3 any more, with no request to wake them.
  EXPECT_TRUE(WaitUntil(
      10000, [&] { return led_by_3() == 0; }, 20))
      << c.Status(1).dump();
  std::cerr << "e2e: node 1 saw no shard led by the stopped node " << NowMs() - stopped
            << " ms after the SIGSTOP\n";
  ASSERT_TRUE(EveryShardTakesAWrite(c, keys, 1, "after"));
  Redis r(c.client_port(2));
  for (const std::string& k : keys) EXPECT_EQ(r.Command({"GET", k}).str, "after") << k;
  c.Cont(3);
}

// Six nodes, three replicas per shard: a node holds half the shards and forwards the rest to
// nodes it holds no replica of; the sixth node holds no replica of the meta shard and learns
// the replicated password from it.
TEST(Sharding, SixNodesServeShardsTheyHoldNoReplicaOf) {
  ClusterOptions o = ShardedOptions();
  o.nodes = 6;
  TestCluster c(o);
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  for (uint64_t id : c.ids()) {
    Redis w(c.client_port(id));
    ASSERT_TRUE(w.Command({"SET", "six:" + std::to_string(id), "v"}).IsOk()) << "via " << id;
  }
  for (uint64_t id : c.ids()) {
    Redis r(c.client_port(id));
    EXPECT_EQ(r.Command({"DBSIZE"}).integer, 6) << "via " << id;
    // INFO keyspace counts every shard, those this node holds no replica of too.
    EXPECT_NE(r.Command({"INFO", "keyspace"}).str.find("db0:keys=6,expires=0"), std::string::npos)
        << "via " << id;
    EXPECT_EQ(
        r.Command({"MGET", "six:1", "six:2", "six:3", "six:4", "six:5", "six:6"}).elements.size(),
        6u);
  }
  // Twelve shards of three replicas on six nodes: node 6 holds six of them, not the meta shard.
  const Json st = c.Status(6);
  EXPECT_LT(st["groups"].size(), 13u) << st.dump();
  Redis admin(c.client_port(1));
  ASSERT_TRUE(admin.Command({"CONFIG", "SET", "requirepass", "s3cret"}).IsOk());
  EXPECT_TRUE(WaitUntil(5000, [&] {
    Redis r(c.client_port(6), 2000);
    return r.Command({"GET", "six:1"}).ErrorStartsWith("NOAUTH");
  })) << "node 6 did not learn the password";
  Redis r(c.client_port(6));
  EXPECT_TRUE(r.Command({"AUTH", "s3cret"}).IsOk());
  EXPECT_EQ(r.Command({"GET", "six:1"}).str, "v");
}

}  // namespace
}  // namespace synod::e2e

namespace synod::e2e {
namespace {

// `synod shards --json` through node `via`: the data shards as (first slot -> group id).
std::map<int64_t, uint64_t> ShardStarts(const TestCluster& c, uint64_t via) {
  std::map<int64_t, uint64_t> out;
  const Json st = c.Status(via, 3000);
  if (!st.is_object() || !st.contains("shards")) return out;
  for (const Json& s : st["shards"]) {
    if (!s.contains("first_slot") || !s.contains("group")) continue;
    out[s["first_slot"].get<int64_t>()] = s["group"].get<uint64_t>();
  }
  return out;
}

// The writers take 50 more acknowledged writes each (they still work), then stop; none of them
// saw an error a client should not see.
void FinishWriters(Writer& w1, Writer& w2) {
  const size_t a = w1.acked_count(), b = w2.acked_count();
  ASSERT_TRUE(
      WaitUntil(10000, [&] { return w1.acked_count() > a + 50 && w2.acked_count() > b + 50; }));
  w1.Stop();
  w2.Stop();
  for (Writer* w : {&w1, &w2}) {
    EXPECT_EQ(w->unexpected_count(), 0u) << ::testing::PrintToString(w->unexpected_errors());
  }
}

// Every write the writers had acknowledged reads back through each node, and again through node
// 2 after a kill -9 and a restart (its shards come back from its database).
void ExpectAckedReadableAlsoAfterAKill9(TestCluster& c, std::initializer_list<Writer*> writers) {
  for (uint64_t via : {1, 2, 3}) {
    Redis r(c.client_port(via), 5000);
    for (Writer* w : writers) {
      const auto wrong = CheckValues(r, w->acked());
      EXPECT_TRUE(wrong.empty()) << "via " << via << ": " << ::testing::PrintToString(wrong);
    }
  }
  c.Kill9(2);
  c.Restart(2);
  ASSERT_NE(c.WaitForLeader(15000), 0u);
  ASSERT_TRUE(WaitUntil(15000, [&] {
    Redis probe(c.client_port(2), 1000);
    const Reply got = probe.Command({"GET", "probe"});
    return !got.IsError() && got.type != Reply::kIoError;
  }));
  Redis r(c.client_port(2), 5000);
  for (Writer* w : writers) {
    const auto wrong = CheckValues(r, w->acked());
    EXPECT_TRUE(wrong.empty()) << "after the restart: " << ::testing::PrintToString(wrong);
  }
}

// Splits while two clients write through every node: each split answers with the new shard,
// clients see no error but TRYAGAIN/CLUSTERDOWN retries at most, every acknowledged write is
// readable afterwards (also through a node restarted with kill -9, from its database), and
// every node's map and CLUSTER SLOTS show the new shards. Bad splits are clear errors.
TEST(Sharding, SplitsWhileWritingLoseNothingAndEveryNodeShowsTheNewShards) {
  TestCluster c(ShardedOptions({"--request-timeout-ms", "3000"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const std::map<int64_t, uint64_t> before = ShardStarts(c, 1);
  ASSERT_EQ(before.size(), 6u);
  Writer w1("sa", {c.client_port(1), c.client_port(2), c.client_port(3)}, 6000);
  Writer w2("sb", {c.client_port(3), c.client_port(1)}, 6000);
  w1.Start();
  w2.Start();
  ASSERT_TRUE(WaitUntil(10000, [&] { return w1.acked_count() > 50 && w2.acked_count() > 50; }));

  // Three splits through three nodes: two shards in their middle, then a new shard again.
  std::vector<uint64_t> created;
  const uint64_t first_group = before.begin()->second;
  const uint64_t last_group = before.rbegin()->second;
  for (const auto& [via, path] : std::vector<std::pair<uint64_t, std::string>>{
           {1, "/shards/split?id=" + std::to_string(first_group)},
           {2, "/shards/split?id=" + std::to_string(last_group) + "&at=16000"}}) {
    const HttpResult r = c.Admin(via, "POST", path, 20000);
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_TRUE(r.json.contains("new_shard")) << r.body;
    created.push_back(r.json["new_shard"].get<uint64_t>());
  }
  // The same split again: refused, by the node (its map shows 16000 as the shard's first slot:
  // 400) or by the shard (the node's map is a moment behind: the shard's range changed, 409).
  const HttpResult repeated =
      c.Admin(2, "POST", "/shards/split?id=" + std::to_string(last_group) + "&at=16000", 20000);
  EXPECT_TRUE(repeated.status == 400 || repeated.status == 409) << repeated.body;
  const HttpResult again =
      c.Admin(3, "POST", "/shards/split?id=" + std::to_string(created[0]), 20000);
  ASSERT_EQ(again.status, 200) << again.body;
  created.push_back(again.json["new_shard"].get<uint64_t>());
  EXPECT_EQ(std::set<uint64_t>(created.begin(), created.end()).size(), 3u);  // distinct ids
  // Bad input: no such shard, the meta shard, a slot outside the space, no id.
  EXPECT_EQ(c.Admin(1, "POST", "/shards/split?id=999").status, 404);
  EXPECT_EQ(c.Admin(1, "POST", "/shards/split?id=1").status, 400);
  EXPECT_EQ(c.Admin(1, "POST", "/shards/split?id=2&at=99999").status, 400);
  EXPECT_EQ(c.Admin(1, "POST", "/shards/split").status, 400);

  ASSERT_NO_FATAL_FAILURE(FinishWriters(w1, w2));
  // Every node's map: nine shards covering the slots, the same everywhere (within 5 s).
  for (uint64_t id : c.ids()) {
    EXPECT_TRUE(WaitUntil(5000,
                          [&] {
                            const auto m = ShardStarts(c, id);
                            return m.size() == 9 && Masters(c, id).size() == 9;
                          }))
        << "node " << id << " sees " << ShardStarts(c, id).size() << " shards";
  }
  // Metrics: the splits counted, and the new shards' gauges published.
  EXPECT_TRUE(WaitUntil(5000, [&] {
    const std::string m = c.Admin(1, "GET", "/metrics").body;
    return m.find("synod_shard_splits_total 3") != std::string::npos &&
           m.find("synod_shard_keys{shard=\"" + std::to_string(created[2]) + "\"}") !=
               std::string::npos;
  })) << c.Admin(1, "GET", "/metrics").body.substr(0, 2000);
  // Read back everything acknowledged, through each node; then again after a kill -9 and a
  // restart of node 2 (its shards come back from its database, split ones included).
  ASSERT_NO_FATAL_FAILURE(ExpectAckedReadableAlsoAfterAKill9(c, {&w1, &w2}));
  Redis dbsize(c.client_port(3), 5000);
  EXPECT_GT(dbsize.Command({"DBSIZE"}).integer, 0);
}

}  // namespace
}  // namespace synod::e2e

namespace synod::e2e {
namespace {

// --shard-max-bytes: shards that grow past it split by themselves, where their bytes halve,
// while the data stays readable; `synod shards` shows each shard's bytes.
TEST(Sharding, ShardsOverTheBoundSplitByThemselvesAndKeepEveryKey) {
  TestCluster c(ShardedOptions({"--shard-max-bytes", "40000"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  // About 300 KB over the six shards: each ~50 KB, over the bound.
  Redis w(c.client_port(1), 5000);
  std::map<std::string, std::string> written;
  for (int i = 0; i < 600; ++i) {
    const std::string k = "big" + std::to_string(i);
    const std::string v(500, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(w.Command({"SET", k, v}).IsOk()) << k;
    written[k] = v;
  }
  // Every shard ends at or under the bound (each split halves one), within 20 s.
  EXPECT_TRUE(WaitUntil(20000, [&] {
    const Json st = c.Status(1, 3000);
    if (!st.is_object() || !st.contains("shards")) return false;
    for (const Json& s : st["shards"]) {
      if (!s.contains("bytes") || s["bytes"].get<uint64_t>() > 40000) return false;
    }
    return st["shards"].size() > 6;
  })) << c.Status(1).dump();
  const size_t shards = ShardStarts(c, 1).size();
  EXPECT_GE(shards, 8u);
  std::cerr << "e2e: " << shards << " shards after the splits by size\n";
  for (uint64_t via : {1, 2, 3}) {
    Redis r(c.client_port(via), 5000);
    for (const auto& [k, v] : written) {
      const Reply got = r.Command({"GET", k});
      ASSERT_EQ(got.str, v) << "via " << via << " key " << k << ": " << got.ToString();
    }
  }
  const ProgramResult listing =
      RunProgram({c.synod_bin(), "shards", "--host", c.admin_address(2)}, 20000);
  ASSERT_EQ(listing.exit_code, 0) << listing.err;
  EXPECT_NE(listing.out.find("BYTES"), std::string::npos) << listing.out;
}

}  // namespace
}  // namespace synod::e2e

namespace synod::e2e {
namespace {

// Whether node `id` holds a replica of `group` (its /status "groups").
bool Holds(const TestCluster& c, uint64_t id, uint64_t group) {
  const Json st = c.Status(id, 3000);
  if (!st.is_object() || !st.contains("groups")) return false;
  for (const Json& g : st["groups"]) {
    if (g.value("group", uint64_t{0}) == group) return true;
  }
  return false;
}

// `synod shard move` while clients write: the target gets the shard, the source loses it with
// its data, nothing acknowledged is lost, and bad moves are clear errors.
TEST(Sharding, AReplicaMovesToAnotherNodeWhileClientsWriteAndTheSourceDeletesItsCopy) {
  // Placement off: the balance a move by hand upsets stays upset (it would move one back).
  ClusterOptions o = ShardedOptions({"--request-timeout-ms", "3000", "--placement", "off"});
  o.nodes = 4;
  TestCluster c(o);
  ASSERT_NE(c.WaitForLeader(10000), 0u);
  // Eight shards of three replicas on four nodes: the first (group 2) on nodes 1, 2 and 3.
  ASSERT_TRUE(WaitUntil(10000, [&] { return Holds(c, 1, 2) && !Holds(c, 4, 2); }));
  Writer w("mv", {c.client_port(2), c.client_port(4)}, 6000);
  w.Start();
  ASSERT_TRUE(WaitUntil(10000, [&] { return w.acked_count() > 50; }));
  // Moves run on the meta shard's leader: another node names it. (Once it is the preferred
  // one, node 1: a new cluster's first leader hands the meta shard over to it.)
  uint64_t meta_leader = 0;
  ASSERT_TRUE(WaitUntil(15000, [&] {
    meta_leader = c.Status(3).value("meta_leader", uint64_t{0});
    return meta_leader == 1;
  }));
  const uint64_t other = meta_leader == 3 ? 2 : 3;
  const HttpResult redirected = c.Admin(other, "POST", "/shards/move?id=2&from=1&to=4", 5000);
  EXPECT_EQ(redirected.status, 421) << redirected.body;
  EXPECT_NE(redirected.body.find("leader_admin"), std::string::npos) << redirected.body;
  // To the meta leader, following its redirect (leadership may move meanwhile).
  auto post = [&](const std::string& path, int64_t timeout_ms) {
    HttpResult r = c.Admin(other, "POST", path, timeout_ms);
    for (int hop = 0; hop < 3 && r.status == 421 && r.json.is_object(); ++hop) {
      r = c.Admin(r.json.value("leader", other), "POST", path, timeout_ms);
    }
    return r;
  };
  const HttpResult moved = post("/shards/move?id=2&from=1&to=4", 130000);
  ASSERT_EQ(moved.status, 200) << moved.body << c.LogTail(meta_leader, 30);
  EXPECT_TRUE(Holds(c, 4, 2));
  EXPECT_TRUE(WaitUntil(5000, [&] { return !Holds(c, 1, 2); })) << c.Status(1).dump();
  EXPECT_TRUE(WaitUntil(5000, [&] {
    return c.Admin(1, "GET", "/metrics").body.find("synod_replicas_destroyed_total 1") !=
           std::string::npos;
  }));
  // Every node's map names the new replicas (the descriptor's voters).
  EXPECT_TRUE(WaitUntil(5000, [&] {
    for (uint64_t id : c.ids()) {
      const Json st = c.Status(id, 3000);
      bool ok = false;
      for (const Json& s : st.value("shards", Json::array())) {
        if (s.value("group", uint64_t{0}) != 2) continue;
        std::set<uint64_t> voters;
        for (const Json& v : s["voters"]) voters.insert(v.get<uint64_t>());
        ok = voters == std::set<uint64_t>{2, 3, 4};
      }
      if (!ok) return false;
    }
    return true;
  }));
  // `synod node list`: node 4 holds seven replicas now (six, plus the moved one), node 1 five.
  EXPECT_TRUE(WaitUntil(5000, [&] {
    const ProgramResult list =
        RunProgram({c.synod_bin(), "node", "list", "--json", "--host", c.admin_address(2)}, 20000);
    const Json j = Json::parse(list.out, nullptr, /*allow_exceptions=*/false);
    if (!j.is_array() || j.size() != 4) return false;
    std::map<uint64_t, uint64_t> replicas;
    for (const Json& n : j) replicas[n.value("id", uint64_t{0})] = n.value("replicas", uint64_t{0});
    return replicas[4] == 7 && replicas[1] == 5;
  }));
  // Bad moves: the source holds none now; the target holds one; an unknown node; no shard.
  auto move = [&](const std::string& path) { return post(path, 10000).status; };
  EXPECT_EQ(move("/shards/move?id=2&from=1&to=4"), 200);  // asked again: done already

  EXPECT_EQ(move("/shards/move?id=2&from=2&to=3"), 400);
  EXPECT_EQ(move("/shards/move?id=2&from=2&to=9"), 404);
  EXPECT_EQ(move("/shards/move?id=99&from=2&to=1"), 404);
  EXPECT_EQ(move("/shards/move?id=2"), 400);
  const size_t a = w.acked_count();
  ASSERT_TRUE(WaitUntil(10000, [&] { return w.acked_count() > a + 50; }));
  w.Stop();
  EXPECT_EQ(w.unexpected_count(), 0u) << ::testing::PrintToString(w.unexpected_errors());
  // Node 1 restarted: it does not bring its old copy back; every acked write reads back.
  c.Restart(1);
  ASSERT_NE(c.WaitForLeader(15000), 0u);
  EXPECT_TRUE(WaitUntil(10000, [&] { return c.Status(1, 2000).is_object(); }));
  EXPECT_FALSE(Holds(c, 1, 2));
  Redis r(c.client_port(1), 5000);
  ASSERT_TRUE(WaitUntil(15000, [&] {
    Redis probe(c.client_port(1), 1000);
    const Reply got = probe.Command({"GET", "probe"});
    return !got.IsError() && got.type != Reply::kIoError;
  }));
  const auto wrong = CheckValues(r, w.acked());
  EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
}

}  // namespace
}  // namespace synod::e2e

namespace synod::e2e {
namespace {

// Data shards whose replica node `id` holds (its /status "groups", the meta shard left out).
size_t DataGroupsHeld(const TestCluster& c, uint64_t id) {
  const Json st = c.Status(id, 3000);
  if (!st.is_object() || !st.contains("groups")) return 0;
  size_t n = 0;
  for (const Json& g : st["groups"]) n += g.value("group", uint64_t{0}) != 1 ? 1 : 0;
  return n;
}

// Merges by hand while two clients write through every node: each merge answers with the shard
// that absorbed the other, clients see no error, every acknowledged write is readable afterwards
// (also through a node restarted with kill -9), every node's map and CLUSTER SLOTS show the
// fewer shards, the merged-away replicas are gone everywhere, and bad merges are clear errors.
TEST(Sharding, MergesWhileWritingLoseNothingAndEveryNodeShowsTheFewerShards) {
  TestCluster c(ShardedOptions({"--request-timeout-ms", "3000"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  const std::map<int64_t, uint64_t> before = ShardStarts(c, 1);
  ASSERT_EQ(before.size(), 6u);
  std::vector<uint64_t> g;  // the data shards in slot order
  for (const auto& [start, group] : before) g.push_back(group);
  Writer w1("ma", {c.client_port(1), c.client_port(2), c.client_port(3)}, 6000);
  Writer w2("mb", {c.client_port(3), c.client_port(1)}, 6000);
  w1.Start();
  w2.Start();
  ASSERT_TRUE(WaitUntil(10000, [&] { return w1.acked_count() > 50 && w2.acked_count() > 50; }));

  // The second shard into the one before it (by default), through node 1.
  const HttpResult m1 = c.Admin(1, "POST", "/shards/merge?id=" + std::to_string(g[1]), 25000);
  ASSERT_EQ(m1.status, 200) << m1.body << c.LogTail(1, 30);
  EXPECT_EQ(m1.json.value("into", uint64_t{0}), g[0]) << m1.body;
  EXPECT_EQ(m1.json.value("slots", std::string()), "0-5461") << m1.body;
  // The fifth into the one after it, through node 2.
  const HttpResult m2 =
      c.Admin(2, "POST",
              "/shards/merge?id=" + std::to_string(g[4]) + "&into=" + std::to_string(g[5]), 25000);
  ASSERT_EQ(m2.status, 200) << m2.body;
  EXPECT_EQ(m2.json.value("into", uint64_t{0}), g[5]) << m2.body;
  // The fourth into the third, by the command line through node 3.
  const ProgramResult m3 = RunProgram(
      {c.synod_bin(), "shard", "merge", std::to_string(g[3]), "--host", c.admin_address(3)}, 30000);
  ASSERT_EQ(m3.exit_code, 0) << m3.out << m3.err;
  EXPECT_NE(m3.out.find("\"into\":" + std::to_string(g[2])), std::string::npos) << m3.out;
  // Bad input: a shard merged away already (gone from the node's map, or frozen for good), no
  // such shard, the meta shard, a shard that is no neighbour, no id.
  const HttpResult gone = c.Admin(1, "POST", "/shards/merge?id=" + std::to_string(g[1]), 25000);
  EXPECT_TRUE(gone.status == 404 || gone.status == 409) << gone.body;
  EXPECT_EQ(c.Admin(1, "POST", "/shards/merge?id=999").status, 404);
  EXPECT_EQ(c.Admin(1, "POST", "/shards/merge?id=1").status, 400);
  EXPECT_EQ(c.Admin(1, "POST",
                    "/shards/merge?id=" + std::to_string(g[0]) + "&into=" + std::to_string(g[5]))
                .status,
            400);
  EXPECT_EQ(c.Admin(1, "POST", "/shards/merge").status, 400);

  ASSERT_NO_FATAL_FAILURE(FinishWriters(w1, w2));
  // Every node's map: three shards covering the slots; the merged-away replicas destroyed.
  for (uint64_t id : c.ids()) {
    EXPECT_TRUE(WaitUntil(10000,
                          [&] {
                            return ShardStarts(c, id).size() == 3 && Masters(c, id).size() == 3 &&
                                   DataGroupsHeld(c, id) == 3;
                          }))
        << "node " << id << " sees " << ShardStarts(c, id).size() << " shards and holds "
        << DataGroupsHeld(c, id);
  }
  EXPECT_TRUE(WaitUntil(5000, [&] {
    return c.Admin(1, "GET", "/metrics").body.find("synod_shard_merges_total 3") !=
           std::string::npos;
  }));
  ASSERT_NO_FATAL_FAILURE(ExpectAckedReadableAlsoAfterAKill9(c, {&w1, &w2}));
  EXPECT_EQ(DataGroupsHeld(c, 2), 3u);
}

// Shards that split by size merge back by themselves once their keys are deleted: the shards
// the splits made are absorbed by their neighbours, the six a new cluster starts with stay,
// and what is left stays readable and writable.
TEST(Sharding, SmallColdShardsMadeBySplitsMergeBackByThemselves) {
  TestCluster c(ShardedOptions({"--shard-max-bytes", "40000"}));
  ASSERT_NO_FATAL_FAILURE(WaitForSpreadLeaders(c));
  Redis w(c.client_port(1), 5000);
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(w.Command({"SET", "big" + std::to_string(i), std::string(500, 'x')}).IsOk());
  }
  ASSERT_TRUE(WaitUntil(20000, [&] {
    const Json st = c.Status(1, 3000);
    if (!st.is_object() || !st.contains("shards")) return false;
    for (const Json& s : st["shards"]) {
      if (!s.contains("bytes") || s["bytes"].get<uint64_t>() > 40000) return false;
    }
    return st["shards"].size() > 6;
  })) << c.Status(1).dump();
  const size_t split = ShardStarts(c, 1).size();
  for (int i = 10; i < 600; ++i)
    ASSERT_EQ(w.Command({"DEL", "big" + std::to_string(i)}).integer, 1);
  const int64_t deleted = NowMs();
  EXPECT_TRUE(WaitUntil(60000, [&] {
    return ShardStarts(c, 1).size() == 6 && ShardStarts(c, 3).size() == 6;
  })) << c.Status(1).dump();
  std::cerr << "e2e: " << split << " shards after the splits, 6 again " << NowMs() - deleted
            << " ms after the deletes\n";
  for (uint64_t via : {1, 2, 3}) {
    Redis r(c.client_port(via), 5000);
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(r.Command({"GET", "big" + std::to_string(i)}).str, std::string(500, 'x')) << i;
    }
    EXPECT_EQ(r.Command({"DBSIZE"}).integer, 10) << "via " << via;
  }
  for (uint64_t via : {1, 2, 3}) {
    Redis r(c.client_port(via), 5000);
    EXPECT_TRUE(r.Command({"SET", "after" + std::to_string(via), "v"}).IsOk());
  }
  EXPECT_TRUE(WaitUntil(10000, [&] { return DataGroupsHeld(c, 2) == 6; }));
}

}  // namespace
}  // namespace synod::e2e
