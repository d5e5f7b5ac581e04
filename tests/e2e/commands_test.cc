// Tests 1 and 10 of the e2e suite (README.md): every command through every node, by hiredis,
// by redis-cli and by redis-benchmark, with exact replies.
#include <gtest/gtest.h>

#include <random>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

// Connection-level and server commands, whose replies do not depend on the data.
void CheckServerCommands(Redis& r, uint64_t id) {
  SCOPED_TRACE("node " + std::to_string(id));
  EXPECT_EQ(r.Command({"PING"}).ToString(), "PONG");
  EXPECT_EQ(r.Command({"PING", "hello there"}).ToString(), "\"hello there\"");
  EXPECT_EQ(r.Command({"ECHO", "a b\r\nc"}).ToString(), "\"a b\\x0d\\x0ac\"");
  EXPECT_EQ(r.Command({"SELECT", "0"}).ToString(), "OK");
  EXPECT_TRUE(r.Command({"SELECT", "1"}).ErrorStartsWith("ERR DB index is out of range"));
  EXPECT_EQ(r.Command({"READONLY"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"READWRITE"}).ToString(), "OK");
  const Reply all = r.Command({"COMMAND"});
  ASSERT_EQ(all.type, REDIS_REPLY_ARRAY) << all.ToString();
  const Reply count = r.Command({"COMMAND", "COUNT"});
  ASSERT_EQ(count.type, REDIS_REPLY_INTEGER) << count.ToString();
  EXPECT_EQ(static_cast<size_t>(count.integer), all.elements.size());
  EXPECT_GE(count.integer, 20);  // at least the commands the brief lists
  const Reply info = r.Command({"INFO"});
  ASSERT_EQ(info.type, REDIS_REPLY_STRING) << info.ToString();
  EXPECT_NE(info.str.find("# Server\r\n"), std::string::npos);
  EXPECT_NE(info.str.find("redis_version:"), std::string::npos);
  EXPECT_NE(info.str.find("synod_node_id:" + std::to_string(id) + "\r\n"), std::string::npos);
  EXPECT_NE(info.str.find("raft_role:"), std::string::npos);
  // Errors, with Redis's exact texts.
  EXPECT_EQ(r.Command({"GET"}).ToString(),
            "(error) ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(r.Command({"SET", "x"}).ToString(),
            "(error) ERR wrong number of arguments for 'set' command");
  EXPECT_EQ(r.Command({"NOSUCHCMD", "a", "b"}).ToString(),
            "(error) ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' ");
}

TEST(Commands, EveryCommandThroughEveryNodeByHiredis) {
  TestCluster c;
  auto conns = ConnectAll(c);
  for (uint64_t id : c.ids()) CheckServerCommands(*conns[id], id);
  const std::vector<uint64_t> ids = c.ids();
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint64_t id = ids[i];
    const uint64_t next = ids[(i + 1) % ids.size()];
    SCOPED_TRACE("writing through node " + std::to_string(id));
    Redis& r = *conns[id];
    const std::string k = "k" + std::to_string(id), v = "value of " + k;
    EXPECT_EQ(r.Command({"GET", k}).ToString(), "(nil)");
    EXPECT_EQ(r.Command({"SET", k, v}).ToString(), "OK");
    // Linearizable by default: the write is visible through every node at once.
    for (uint64_t j : ids) EXPECT_EQ(conns[j]->Command({"GET", k}).str, v) << "read on " << j;
    EXPECT_EQ(conns[next]->Command({"EXISTS", k, k, "missing"}).ToString(), "(integer) 2");
    EXPECT_EQ(r.Command({"INCR", "counter"}).ToString(), "(integer) " + std::to_string(i + 1));
    EXPECT_EQ(r.Command({"MSET", "a" + std::to_string(id), "1", "b" + std::to_string(id), "2"})
                  .ToString(),
              "OK");
    EXPECT_EQ(conns[next]
                  ->Command({"MGET", "a" + std::to_string(id), "b" + std::to_string(id), "zz"})
                  .ToString(),
              "[\"1\", \"2\", (nil)]");
    EXPECT_EQ(r.Command({"DEL", k, "missing"}).ToString(), "(integer) 1");
    EXPECT_EQ(conns[next]->Command({"GET", k}).ToString(), "(nil)");
    EXPECT_EQ(conns[next]->Command({"DEL", k}).ToString(), "(integer) 0");
  }
  EXPECT_EQ(conns[ids[0]]->Command({"SET", "text", "abc"}).ToString(), "OK");
  for (uint64_t id : ids) {
    EXPECT_EQ(conns[id]->Command({"INCR", "text"}).ToString(),
              "(error) ERR value is not an integer or out of range");
    EXPECT_EQ(conns[id]->Command({"GET", "counter"}).ToString(),
              "\"" + std::to_string(ids.size()) + "\"");
    // counter, a1..a3, b1..b3, text.
    EXPECT_EQ(conns[id]->Command({"DBSIZE"}).ToString(),
              "(integer) " + std::to_string(2 * ids.size() + 2));
  }
}

TEST(Commands, BinarySafeValuesThroughEveryNode) {
  TestCluster c;
  auto conns = ConnectAll(c);
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte.push_back(static_cast<char>(b));
  const std::string key = std::string("bin\0key\xff", 8);
  std::mt19937 rng(42);
  std::string big(1 << 20, '\0');
  for (char& ch : big) ch = static_cast<char>(rng());
  big[0] = '\0';
  big[1] = '\xff';
  EXPECT_EQ(conns[1]->Command({"SET", key, every_byte}).ToString(), "OK");
  EXPECT_EQ(conns[2]->Command({"SET", "big", big}).ToString(), "OK");
  EXPECT_EQ(conns[3]->Command({"SET", "empty", ""}).ToString(), "OK");
  for (uint64_t id : c.ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    const Reply v = conns[id]->Command({"GET", key});
    ASSERT_EQ(v.type, REDIS_REPLY_STRING) << v.ToString();
    EXPECT_EQ(v.str, every_byte);
    const Reply b = conns[id]->Command({"GET", "big"});
    ASSERT_EQ(b.type, REDIS_REPLY_STRING) << b.ToString();
    EXPECT_EQ(b.str.size(), big.size());
    EXPECT_TRUE(b.str == big) << "the 1 MiB value came back different";
    EXPECT_EQ(conns[id]->Command({"GET", "empty"}).ToString(), "\"\"");
    EXPECT_EQ(conns[id]->Command({"EXISTS", key, "empty"}).ToString(), "(integer) 2");
  }
}

// redis-cli prints replies raw when its output is not a terminal: bulk strings as they are, nil
// as an empty line, integers as digits, and an error as its text followed by an empty line
// (redis-cli 7 does so against Redis too); "(error)" and quotes are for terminals only.
TEST(Commands, EveryCommandThroughEveryNodeByRedisCli) {
  TestCluster c;
  const std::vector<uint64_t> ids = c.ids();
  const std::string count = RedisCli(c.client_port(1), {"COMMAND", "COUNT"});
  ASSERT_FALSE(count.empty());
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint16_t p = c.client_port(ids[i]);
    const uint16_t q = c.client_port(ids[(i + 1) % ids.size()]);
    const std::string n = std::to_string(ids[i]);
    SCOPED_TRACE("node " + n);
    EXPECT_EQ(RedisCli(p, {"PING"}), "PONG\n");
    EXPECT_EQ(RedisCli(p, {"ECHO", "hi there"}), "hi there\n");
    EXPECT_EQ(RedisCli(p, {"SET", "cli" + n, "hello \xff world"}), "OK\n");
    EXPECT_EQ(RedisCli(q, {"GET", "cli" + n}), "hello \xff world\n");
    EXPECT_EQ(RedisCli(q, {"EXISTS", "cli" + n, "nope"}), "1\n");
    EXPECT_EQ(RedisCli(p, {"INCR", "clicounter"}), std::to_string(i + 1) + "\n");
    EXPECT_EQ(RedisCli(p, {"MSET", "x" + n, "1", "y" + n, "2"}), "OK\n");
    EXPECT_EQ(RedisCli(q, {"MGET", "x" + n, "y" + n, "nope"}), "1\n2\n\n");
    EXPECT_EQ(RedisCli(p, {"DEL", "x" + n, "nope"}), "1\n");
    EXPECT_EQ(RedisCli(q, {"GET", "x" + n}), "\n");
    EXPECT_EQ(RedisCli(p, {"SELECT", "0"}), "OK\n");
    EXPECT_EQ(RedisCli(p, {"READONLY"}), "OK\n");
    EXPECT_EQ(RedisCli(p, {"READWRITE"}), "OK\n");
    EXPECT_EQ(RedisCli(p, {"COMMAND", "COUNT"}), count);
    EXPECT_NE(RedisCli(p, {"INFO", "server"}).find("redis_version:"), std::string::npos);
    EXPECT_EQ(RedisCli(p, {"GET"}), "ERR wrong number of arguments for 'get' command\n\n");
    EXPECT_EQ(RedisCli(p, {"SET", "t" + n, "abc"}), "OK\n");
    EXPECT_EQ(RedisCli(p, {"INCR", "t" + n}), "ERR value is not an integer or out of range\n\n");
  }
  // clicounter, cli1..3, y1..3, t1..3
  for (uint64_t id : ids) {
    EXPECT_EQ(RedisCli(c.client_port(id), {"DBSIZE"}), std::to_string(1 + 3 * ids.size()) + "\n");
  }
}

TEST(Commands, RedisBenchmarkRunsWithoutErrors) {
  TestCluster c;
  // A follower: every write is forwarded to the leader.
  const uint64_t leader = c.WaitForLeader(10000);
  ASSERT_NE(leader, 0u);
  const uint64_t target = c.LiveIds(leader).front();
  const ProgramResult r =
      RunProgram({"redis-benchmark", "-h", "127.0.0.1", "-p", std::to_string(c.client_port(target)),
                  "-t", "set,get,incr,mset", "-n", "2000", "-q"},
                 120000);
  std::cerr << r.out << r.err;
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.find("ERR"), std::string::npos);
  EXPECT_EQ(r.err.find("ERR"), std::string::npos);
  for (const char* test : {"SET: ", "GET: ", "INCR: ", "MSET (10 keys): "}) {
    EXPECT_NE(r.out.find(test), std::string::npos) << "no result line for " << test;
  }
  // redis-benchmark's INCR test increments "counter:__rand_int__"; 2000 of them all applied.
  Redis check(c.client_port(leader));
  EXPECT_EQ(check.Command({"GET", "counter:__rand_int__"}).ToString(), "\"2000\"");
}

}  // namespace
}  // namespace synod::e2e
