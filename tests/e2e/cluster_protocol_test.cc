// The Redis Cluster protocol end to end: CLUSTER replies as cluster-aware clients read them
// (CLUSTER NODES one line per node, also with six shards and after a node's kill -9),
// -MOVED under --cluster-redirects (and none without), redis-cli -c, redis-py's RedisCluster and
// the Node.js clients ioredis and node-redis in both modes (the Node.js ones across a kill -9 of
// a node), and the map after a leader failover.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

// The client port a CLUSTER SLOTS node entry names: [ip, port, id, metadata].
uint16_t PortOf(const Reply& node) { return static_cast<uint16_t>(node.elements.at(1).integer); }

// One line of CLUSTER NODES: <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv>
// <config-epoch> <link-state> <slot or range>...
struct NodesLine {
  std::string id;
  std::string addr;
  std::set<std::string> flags;
  std::string master;  // "-" for a master
  uint64_t epoch = 0;
  std::string link;
  std::vector<std::pair<int, int>> ranges;  // inclusive
};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  for (size_t next; (next = s.find(sep, at)) != std::string::npos; at = next + 1) {
    out.push_back(s.substr(at, next - at));
  }
  out.push_back(s.substr(at));
  return out;
}

// The lines of a CLUSTER NODES reply; a line not shaped as Redis 7 shapes it fails the test.
std::vector<NodesLine> ParseNodes(const Reply& reply) {
  EXPECT_EQ(reply.type, REDIS_REPLY_STRING) << reply.ToString();
  std::vector<NodesLine> out;
  for (size_t at = 0; at < reply.str.size();) {
    const size_t nl = reply.str.find('\n', at);
    EXPECT_NE(nl, std::string::npos) << "no newline after the last line: " << reply.str;
    if (nl == std::string::npos) break;
    const std::string text = reply.str.substr(at, nl - at);
    at = nl + 1;
    const std::vector<std::string> w = Split(text, ' ');
    EXPECT_GE(w.size(), 8u) << text;
    if (w.size() < 8) continue;
    NodesLine line;
    line.id = w[0];
    line.addr = w[1];
    line.master = w[3];
    line.link = w[7];
    EXPECT_EQ(line.id.size(), 40u) << text;
    EXPECT_EQ(line.id.find_first_not_of("0123456789abcdef"), std::string::npos) << text;
    for (const std::string& f : Split(w[2], ',')) line.flags.insert(f);
    line.epoch = std::stoull(w[6]);
    for (size_t i = 8; i < w.size(); ++i) {
      const std::vector<std::string> ends = Split(w[i], '-');
      EXPECT_LE(ends.size(), 2u) << text;
      line.ranges.emplace_back(std::stoi(ends.front()), std::stoi(ends.back()));
      EXPECT_LE(line.ranges.back().first, line.ranges.back().second) << text;
    }
    out.push_back(std::move(line));
  }
  return out;
}

// The master's name of each slot in a CLUSTER SLOTS reply ("" for a slot no range covers).
std::vector<std::string> SlotOwners(const Reply& slots) {
  std::vector<std::string> owner(16384);
  for (const Reply& range : slots.elements) {
    if (range.elements.size() < 3) continue;
    for (long long s = range.elements[0].integer; s <= range.elements[1].integer; ++s) {
      owner.at(static_cast<size_t>(s)) = range.elements[2].elements.at(2).str;
    }
  }
  return owner;
}

// CLUSTER NODES, read between two CLUSTER SLOTS that agree (so the map did not change in
// between), and the slot owners those name. False when the map kept changing.
bool ReadNodesAndSlots(Redis& r, std::vector<NodesLine>* nodes, std::vector<std::string>* owners) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    *owners = SlotOwners(r.Command({"CLUSTER", "SLOTS"}));
    const Reply reply = r.Command({"CLUSTER", "NODES"});
    if (SlotOwners(r.Command({"CLUSTER", "SLOTS"})) == *owners) {
      *nodes = ParseNodes(reply);
      return true;
    }
  }
  return false;
}

// What every CLUSTER NODES reply must say, read through the node named `myid`: one line per
// node, each name once, exactly one `myself` (this node); masters' slot ranges that cover every
// slot exactly once and name the masters CLUSTER SLOTS names (`owners`); and each slave naming a
// master of the reply, with its config epoch.
void ExpectNodesConsistent(const std::vector<NodesLine>& nodes, const std::string& myid,
                           const std::vector<std::string>& owners, size_t expected_lines) {
  EXPECT_EQ(nodes.size(), expected_lines);
  std::map<std::string, const NodesLine*> by_id;
  int myself = 0;
  for (const NodesLine& n : nodes) {
    EXPECT_TRUE(by_id.emplace(n.id, &n).second) << "node " << n.id << " listed twice";
    if (n.flags.contains("myself")) {
      ++myself;
      EXPECT_EQ(n.id, myid);
    }
    EXPECT_NE(n.flags.contains("master"), n.flags.contains("slave")) << n.id;
  }
  EXPECT_EQ(myself, 1);
  std::vector<int> covered(16384, 0);
  std::vector<std::string> from_nodes(16384);
  for (const NodesLine& n : nodes) {
    if (n.flags.contains("master")) {
      EXPECT_EQ(n.master, "-") << n.id;
      for (const auto& [first, last] : n.ranges) {
        ASSERT_GE(first, 0);
        ASSERT_LT(last, 16384);
        for (int s = first; s <= last; ++s) {
          ++covered[static_cast<size_t>(s)];
          from_nodes[static_cast<size_t>(s)] = n.id;
        }
      }
    } else {
      EXPECT_TRUE(n.ranges.empty()) << n.id;
      auto m = by_id.find(n.master);
      ASSERT_NE(m, by_id.end()) << n.id << " replicates unknown master " << n.master;
      EXPECT_TRUE(m->second->flags.contains("master")) << n.master;
      EXPECT_EQ(n.epoch, m->second->epoch) << "a replica shows its master's config epoch";
    }
  }
  for (size_t s = 0; s < covered.size(); ++s) {
    ASSERT_EQ(covered[s], 1) << "slot " << s << " is in " << covered[s] << " masters' ranges";
  }
  for (size_t s = 0; s < owners.size(); ++s) {
    ASSERT_EQ(from_nodes[s], owners[s]) << "CLUSTER NODES and SLOTS name different masters of "
                                        << "slot " << s;
  }
}

// Waits until node `via` reports the leader's client port as the master of every slot.
bool SlotsNameMaster(TestCluster& c, uint64_t via, uint64_t leader, int64_t timeout_ms) {
  return WaitUntil(timeout_ms, [&] {
    Redis r(c.client_port(via), 2000);
    const Reply slots = r.Command({"CLUSTER", "SLOTS"});
    return slots.elements.size() == 1 && slots.elements[0].elements.size() >= 3 &&
           PortOf(slots.elements[0].elements[2]) == c.client_port(leader);
  });
}

// The leader, and a follower whose CLUSTER SLOTS already names it.
// The leader may move once early on (to its preferred node): asked again until the two agree.
void LeaderAndFollower(TestCluster& c, uint64_t* leader, uint64_t* follower) {
  ASSERT_TRUE(WaitUntil(15000, [&] {
    *leader = c.WaitForLeader(10000);
    if (*leader == 0) return false;
    *follower = c.LiveIds(*leader).front();
    return SlotsNameMaster(c, *follower, *leader, 1000) && c.WaitForLeader(1000) == *leader;
  }));
}

TEST(ClusterProtocol, RepliesDescribeOneShardLedByTheLeader) {
  TestCluster c(ClusterOptions{.flags = {"--cluster-redirects"}});
  uint64_t leader = 0, follower = 0;
  ASSERT_NO_FATAL_FAILURE(LeaderAndFollower(c, &leader, &follower));
  Redis r(c.client_port(follower));

  const Reply slots = r.Command({"CLUSTER", "SLOTS"});
  ASSERT_EQ(slots.elements.size(), 1u) << slots.ToString();
  const Reply& range = slots.elements[0];
  ASSERT_EQ(range.elements.size(), 5u) << range.ToString();  // start, end, master, 2 replicas
  EXPECT_EQ(range.elements[0].integer, 0);
  EXPECT_EQ(range.elements[1].integer, 16383);
  std::set<uint16_t> ports;
  std::set<std::string> names;
  for (size_t i = 2; i < 5; ++i) {
    const Reply& n = range.elements[i];
    ASSERT_EQ(n.elements.size(), 4u) << n.ToString();
    EXPECT_EQ(n.elements[0].str, "127.0.0.1");
    EXPECT_EQ(n.elements[2].str.size(), 40u);
    EXPECT_EQ(n.elements[3].type, REDIS_REPLY_ARRAY);  // Redis 7's (empty) metadata
    ports.insert(PortOf(n));
    names.insert(n.elements[2].str);
  }
  EXPECT_EQ(ports.size(), 3u);
  EXPECT_EQ(names.size(), 3u);

  const Reply myid = r.Command({"CLUSTER", "MYID"});
  EXPECT_TRUE(names.contains(myid.str)) << myid.ToString();
  EXPECT_EQ(Redis(c.client_port(follower)).Command({"CLUSTER", "MYID"}).str, myid.str);

  std::vector<NodesLine> nodes;
  std::vector<std::string> owners;
  ASSERT_TRUE(ReadNodesAndSlots(r, &nodes, &owners));
  ASSERT_NO_FATAL_FAILURE(ExpectNodesConsistent(nodes, myid.str, owners, 3));
  int masters = 0;
  for (const NodesLine& n : nodes) {
    if (!n.flags.contains("master")) continue;
    ++masters;
    EXPECT_EQ(n.ranges, (std::vector<std::pair<int, int>>{{0, 16383}})) << n.id;
    EXPECT_TRUE(n.addr.starts_with("127.0.0.1:" + std::to_string(c.client_port(leader)) + "@"));
    EXPECT_EQ(n.link, "connected");
  }
  EXPECT_EQ(masters, 1);

  const Reply info = r.Command({"CLUSTER", "INFO"});
  EXPECT_NE(info.str.find("cluster_state:ok\r\n"), std::string::npos) << info.str;
  EXPECT_NE(info.str.find("cluster_slots_assigned:16384\r\n"), std::string::npos);
  EXPECT_NE(info.str.find("cluster_known_nodes:3\r\n"), std::string::npos);
  EXPECT_NE(r.Command({"INFO", "cluster"}).str.find("cluster_enabled:1"), std::string::npos);

  const Reply shards = r.Command({"CLUSTER", "SHARDS"});
  ASSERT_EQ(shards.elements.size(), 1u);
  ASSERT_EQ(shards.elements[0].elements.size(), 4u);  // "slots" [0 16383] "nodes" [...]
  EXPECT_EQ(shards.elements[0].elements[0].str, "slots");
  EXPECT_EQ(shards.elements[0].elements[3].elements.size(), 3u);

  EXPECT_EQ(r.Command({"CLUSTER", "KEYSLOT", "foo"}).integer, 12182);
  EXPECT_EQ(r.Command({"CLUSTER", "KEYSLOT", "{user1000}.following"}).integer,
            r.Command({"CLUSTER", "KEYSLOT", "user1000"}).integer);
  EXPECT_TRUE(r.Command({"CLUSTER", "COUNTKEYSINSLOT", "16384"})
                  .ErrorStartsWith("ERR Invalid or out of range slot"));
  EXPECT_TRUE(r.Command({"CLUSTER", "GETKEYSINSLOT", "1", "x"})
                  .ErrorStartsWith("ERR value is not an integer or out of range"));
  EXPECT_TRUE(r.Command({"CLUSTER", "MEET", "127.0.0.1", "1"}).ErrorStartsWith("ERR CLUSTER MEET"));
  EXPECT_TRUE(r.Command({"CLUSTER", "NOPE"}).ErrorStartsWith("ERR unknown subcommand 'NOPE'"));
  EXPECT_TRUE(r.Command({"CLUSTER"}).ErrorStartsWith("ERR wrong number of arguments"));

  // Keys in a slot, through the leader (a write there is not redirected).
  Redis w(c.client_port(leader));
  for (const char* k : {"{t}a", "{t}b", "{t}c"}) ASSERT_TRUE(w.Command({"SET", k, "1"}).IsOk());
  const std::string slot = std::to_string(r.Command({"CLUSTER", "KEYSLOT", "t"}).integer);
  EXPECT_EQ(w.Command({"CLUSTER", "COUNTKEYSINSLOT", slot}).integer, 3);
  const Reply keys = w.Command({"CLUSTER", "GETKEYSINSLOT", slot, "2"});
  EXPECT_EQ(keys.elements.size(), 2u) << keys.ToString();
  // The last slot too (its bound once wrapped to 0, and it always counted no key).
  const std::string last = "z4995";
  ASSERT_EQ(r.Command({"CLUSTER", "KEYSLOT", last}).integer, 16383);
  ASSERT_TRUE(w.Command({"SET", last, "1"}).IsOk());
  EXPECT_EQ(w.Command({"CLUSTER", "COUNTKEYSINSLOT", "16383"}).integer, 1);
  EXPECT_EQ(w.Command({"CLUSTER", "GETKEYSINSLOT", "16383", "5"}).elements.size(), 1u);
}

TEST(ClusterProtocol, RedirectsSendKeysToTheLeaderOnlyWhenAsked) {
  TestCluster c(ClusterOptions{.flags = {"--cluster-redirects"}});
  uint64_t leader = 0, follower = 0;
  ASSERT_NO_FATAL_FAILURE(LeaderAndFollower(c, &leader, &follower));
  Redis r(c.client_port(follower));
  const Reply moved = r.Command({"SET", "foo", "bar"});
  EXPECT_EQ(moved.str, "MOVED 12182 127.0.0.1:" + std::to_string(c.client_port(leader)))
      << moved.ToString();
  EXPECT_EQ(r.Command({"GET", "foo"}).str.substr(0, 6), "MOVED ");
  // Inside MULTI a redirected command aborts the transaction, as in Redis.
  ASSERT_TRUE(r.Command({"MULTI"}).IsOk());
  EXPECT_EQ(r.Command({"SET", "foo", "x"}).str.substr(0, 6), "MOVED ");
  EXPECT_TRUE(r.Command({"EXEC"}).ErrorStartsWith("EXECABORT"));
  // Keyless commands are served anywhere; READONLY reads are served by the replica.
  EXPECT_EQ(r.Command({"PING"}).str, "PONG");
  // redis-cli -c follows the redirection.
  EXPECT_EQ(RedisCli(c.client_port(follower), {"-c", "SET", "foo", "bar"}), "OK\n");
  EXPECT_EQ(RedisCli(c.client_port(follower), {"-c", "GET", "foo"}), "bar\n");
  ASSERT_TRUE(r.Command({"READONLY"}).IsOk());
  EXPECT_TRUE(WaitUntil(5000, [&] { return r.Command({"GET", "foo"}).str == "bar"; }));

  // Without the flag the same follower serves the key itself.
  TestCluster plain;
  const uint64_t plain_leader = plain.WaitForLeader(10000);
  ASSERT_NE(plain_leader, 0u);
  Redis p(plain.client_port(plain.LiveIds(plain_leader).front()));
  EXPECT_TRUE(p.Command({"SET", "foo", "bar"}).IsOk());
  EXPECT_EQ(p.Command({"GET", "foo"}).str, "bar");
}

// After the leader's kill -9 every survivor's CLUSTER SLOTS names a live master. (The new
// leader may hand the shard on to its preferred leader soon after, so the test asks for a live
// master that every survivor agrees on, not for one node.)
TEST(ClusterProtocol, TheMapNamesTheNewLeaderAfterAFailover) {
  TestCluster c(ClusterOptions{.flags = {"--cluster-redirects"}});
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  c.Kill9(leader);
  const int64_t start = NowMs();
  const std::vector<uint64_t> live = c.LiveIds(leader);
  auto master_via = [&](uint64_t id) -> uint16_t {
    Redis r(c.client_port(id), 2000);
    const Reply slots = r.Command({"CLUSTER", "SLOTS"});
    if (slots.elements.size() != 1 || slots.elements[0].elements.size() < 3) return 0;
    return PortOf(slots.elements[0].elements[2]);
  };
  uint64_t next = 0;
  ASSERT_TRUE(WaitUntil(10000, [&] {
    const uint16_t m = master_via(live[0]);
    if (m == 0 || m == c.client_port(leader) || master_via(live[1]) != m) return false;
    for (uint64_t id : live) {
      if (c.client_port(id) == m) next = id;
    }
    return next != 0;
  })) << "the survivors' CLUSTER SLOTS never agreed on a live master";
  std::cerr << "e2e: CLUSTER SLOTS named the new leader " << NowMs() - start
            << " ms after the kill\n";
  Redis r(c.client_port(next));
  EXPECT_TRUE(r.Command({"SET", "after", "failover"}).IsOk());
  // `synod shards` shows a live leader too.
  const uint64_t survivor = live.front();
  const ProgramResult shards =
      RunProgram({c.synod_bin(), "shards", "--json", "--host", c.admin_address(survivor)}, 20000);
  ASSERT_EQ(shards.exit_code, 0) << shards.err;
  const Json j = Json::parse(shards.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_array() && j.size() == 1) << shards.out;
  EXPECT_EQ(j[0].value("first_slot", -1), 0);
  EXPECT_EQ(j[0].value("last_slot", -1), 16383);
  const uint64_t shown = j[0].value("leader", uint64_t{0});
  EXPECT_TRUE(shown == live[0] || shown == live[1]) << shards.out;
  EXPECT_EQ(j[0]["voters"].size(), 3u);
  EXPECT_GE(j[0].value("keys", uint64_t{0}), 1u);
}

// The default layout (six shards, each node leading two), with or without redirects.
ClusterOptions SixShards(bool redirects) {
  ClusterOptions o;
  o.shards = 0;
  if (redirects) o.flags = {"--cluster-redirects"};
  return o;
}

// Once the shards have settled on their preferred leaders: a node that does not lead the
// first data shard (the one a client is given), or 0 on timeout.
uint64_t SettledFollower(TestCluster& c) {
  const uint64_t leader = c.WaitForLeader(10000);
  if (leader == 0 || !WaitForPreferredLeaders(c, 6)) return 0;
  return c.LiveIds(leader).front();
}

// redis-py's RedisCluster (Debian's python3-redis) writes and reads 10,000 keys across all
// slots of the default layout (six shards, each node leading two), with and without redirects
// (python/redis_cluster_test.py).
void RunRedisClusterScript(bool redirects) {
  const std::string python = "/usr/bin/python3";
  const std::string script =
      (std::filesystem::path(SYNOD_E2E_PYTHON_DIR) / "redis_cluster_test.py").string();
  ASSERT_TRUE(std::filesystem::exists(script)) << script;
  TestCluster c(SixShards(redirects));
  const uint64_t follower = SettledFollower(c);
  ASSERT_NE(follower, 0u) << "no leader, or the shards never settled on their preferred leaders";
  const int64_t start = NowMs();
  const ProgramResult res = RunProgram({python, script, std::to_string(c.client_port(follower)),
                                        redirects ? "redirects" : "plain", "3"},
                                       180000);
  std::cerr << "e2e: redis_cluster_test.py (" << (redirects ? "redirects" : "plain") << ") took "
            << NowMs() - start << " ms\n";
  EXPECT_EQ(res.exit_code, 0) << "stdout:\n" << res.out << "\nstderr:\n" << res.err;
  EXPECT_NE(res.out.find("redis-py cluster: all checks passed"), std::string::npos) << res.out;
}

// CLUSTER NODES prints each node once, as Redis does, though every node leads two of the six
// shards and follows in four: a master line with the two ranges it leads. After a node's
// kill -9 the survivors lead its shards, and it is a failed slave of one of them.
TEST(ClusterProtocol, NodesPrintsEachNodeOnceWithTheSlotsOfEveryShardItLeads) {
  TestCluster c(SixShards(/*redirects=*/true));
  ASSERT_NE(SettledFollower(c), 0u) << "the shards never settled on their preferred leaders";
  for (uint64_t via : c.ids()) {
    SCOPED_TRACE("via node " + std::to_string(via));
    Redis r(c.client_port(via));
    const std::string myid = r.Command({"CLUSTER", "MYID"}).str;
    std::vector<NodesLine> nodes;
    std::vector<std::string> owners;
    ASSERT_TRUE(ReadNodesAndSlots(r, &nodes, &owners)) << "the map kept changing";
    ASSERT_NO_FATAL_FAILURE(ExpectNodesConsistent(nodes, myid, owners, 3));
    for (const NodesLine& n : nodes) {
      EXPECT_TRUE(n.flags.contains("master")) << n.id;
      // The layout spreads leaders round robin: a node's two shards are not adjacent.
      EXPECT_EQ(n.ranges.size(), 2u) << n.id;
      EXPECT_EQ(n.link, "connected");
    }
  }

  const uint64_t victim = c.ids().back();
  const std::string victim_addr = "127.0.0.1:" + std::to_string(c.client_port(victim)) + "@";
  c.Kill9(victim);
  for (uint64_t via : c.LiveIds()) {
    SCOPED_TRACE("via node " + std::to_string(via));
    Redis r(c.client_port(via));
    const std::string myid = r.Command({"CLUSTER", "MYID"}).str;
    std::vector<NodesLine> nodes;
    std::vector<std::string> owners;
    // Until the survivors lead every shard and this node knows it: the victim leads nothing
    // (a slave) and is unreachable (fail).
    auto settled = [&] {
      if (!ReadNodesAndSlots(r, &nodes, &owners)) return false;
      for (const NodesLine& n : nodes) {
        if (n.addr.starts_with(victim_addr)) {
          return n.flags.contains("slave") && n.flags.contains("fail");
        }
      }
      return false;
    };
    ASSERT_TRUE(WaitUntil(15000, settled, 100)) << "the victim never became a failed slave";
    ASSERT_NO_FATAL_FAILURE(ExpectNodesConsistent(nodes, myid, owners, 3));
    int masters = 0;
    for (const NodesLine& n : nodes) {
      if (n.addr.starts_with(victim_addr)) {
        EXPECT_EQ(n.link, "disconnected");
      } else {
        EXPECT_TRUE(n.flags.contains("master")) << n.id;
        ++masters;
      }
    }
    EXPECT_EQ(masters, 2);
  }
}

TEST(ClusterProtocol, RedisPyClusterClientWorksWithRedirects) { RunRedisClusterScript(true); }
TEST(ClusterProtocol, RedisPyClusterClientWorksWithoutRedirects) { RunRedisClusterScript(false); }

// ---- the Node.js cluster clients (node/*.js) ----

// Installs ioredis and node-redis at the versions node/package-lock.json pins, once per build
// tree (node/install.sh: `npm ci` under flock, as the tests run in parallel). A failure fails
// the test: these tests must not pass by skipping.
void InstallNodeClients() {
  const std::string install = (std::filesystem::path(SYNOD_E2E_NODE_DIR) / "install.sh").string();
  const int64_t start = NowMs();
  const ProgramResult r = RunProgram({"sh", install, SYNOD_E2E_NODE_INSTALL_DIR}, 300000);
  ASSERT_EQ(r.exit_code, 0) << "could not install the Node.js clients with `npm ci` (they need "
                               "node, npm and the npm registry; scripts/deps.sh installs node "
                               "and npm):\n"
                            << r.out << r.err;
  if (!r.out.empty()) std::cerr << r.out << "e2e: took " << NowMs() - start << " ms\n";
}

// Runs node/<script> (ioredis_cluster_test.js or node_redis_cluster_test.js) against the default
// layout through one node. The script writes and reads 10,000 keys over every slot and the
// client's multi-key commands, then writes on in batches and says `ready` (a file in a directory
// both share); the test then kill -9s another node, which leads two of the six shards, and says
// `killed`. The script passes when its client refreshed its map by itself, writes to every
// shard succeed again without retries, and every acknowledged key reads back (node/common.js).
void RunNodeClusterScript(const std::string& script_name, bool redirects) {
  ASSERT_NO_FATAL_FAILURE(InstallNodeClients());
  const std::string script = (std::filesystem::path(SYNOD_E2E_NODE_DIR) / script_name).string();
  const std::string modules =
      (std::filesystem::path(SYNOD_E2E_NODE_INSTALL_DIR) / "node_modules").string();
  TestCluster c(SixShards(redirects));
  const uint64_t via = SettledFollower(c);
  ASSERT_NE(via, 0u) << "no leader, or the shards never settled on their preferred leaders";
  const std::filesystem::path sync = std::filesystem::path(c.dir()) / "node-sync";
  std::filesystem::create_directories(sync);

  const int64_t start = NowMs();
  ProgramResult res;
  std::atomic<bool> finished = false;
  // The script's own waits are bounded (30 s for the kill, 15 s for recovery), so this joins in
  // time; the jthread joins before the cluster is torn down even when an assertion returns early.
  const std::vector<std::string> argv = {"node",
                                         script,
                                         modules,
                                         std::to_string(c.client_port(via)),
                                         redirects ? "redirects" : "plain",
                                         "3",
                                         sync.string()};
  std::jthread runner([&] {
    res = RunProgram(argv, 120000);
    finished = true;
  });
  ASSERT_TRUE(
      WaitUntil(90000, [&] { return finished || std::filesystem::exists(sync / "ready"); }));
  if (!finished) {
    // The script says `ready` once its phase-2 writes flow, and writes on: the node dies under
    // them.
    const int64_t ready_ms = NowMs() - start;
    uint64_t victim = 0;
    Redis r(c.client_port(via), 2000);
    for (const Reply& range : r.Command({"CLUSTER", "SLOTS"}).elements) {
      for (uint64_t id : c.LiveIds(via)) {
        if (range.elements.size() >= 3 && PortOf(range.elements[2]) == c.client_port(id)) {
          victim = id;
        }
      }
    }
    ASSERT_NE(victim, 0u) << "no node but the client's leads a shard";
    c.Kill9(victim);
    std::ofstream(sync / "killed.tmp") << c.client_port(victim) << "\n";
    std::filesystem::rename(sync / "killed.tmp", sync / "killed");
    std::cerr << "e2e: " << script_name << " finished phase 1 in " << ready_ms
              << " ms; killed node " << victim << " (port " << c.client_port(victim) << ")\n";
  }
  runner.join();
  std::cerr << "e2e: " << script_name << " (" << (redirects ? "redirects" : "plain") << ") took "
            << NowMs() - start << " ms\n"
            << res.out;
  EXPECT_EQ(res.exit_code, 0) << "stdout:\n" << res.out << "\nstderr:\n" << res.err;
  EXPECT_NE(res.out.find("all checks passed"), std::string::npos) << res.out;
  EXPECT_NE(res.out.find("failover: killed"), std::string::npos) << res.out;
}

TEST(ClusterProtocol, IoredisClusterClientWorksWithRedirects) {
  RunNodeClusterScript("ioredis_cluster_test.js", true);
}
TEST(ClusterProtocol, IoredisClusterClientWorksWithoutRedirects) {
  RunNodeClusterScript("ioredis_cluster_test.js", false);
}
TEST(ClusterProtocol, NodeRedisClusterClientWorksWithRedirects) {
  RunNodeClusterScript("node_redis_cluster_test.js", true);
}
TEST(ClusterProtocol, NodeRedisClusterClientWorksWithoutRedirects) {
  RunNodeClusterScript("node_redis_cluster_test.js", false);
}

}  // namespace
}  // namespace synod::e2e
