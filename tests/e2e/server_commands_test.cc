// The server and connection commands against real clusters (README.md): AUTH with the
// replicated requirepass, CONFIG GET/SET, CLIENT LIST/KILL, COMMAND GETKEYS, INFO, WAIT and
// LASTSAVE, with Redis's exact replies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

// Sends `bytes` on a new raw connection and reads until the server closes it (the bytes end
// with QUIT) or `timeout_ms` passes. For RESP3 replies, which this hiredis cannot parse.
std::string RawExchange(uint16_t port, const std::string& bytes, int64_t timeout_ms = 5000) {
  const int fd = Dial(port);
  if (fd < 0) return "";
  std::string out;
  if (SendAll(fd, bytes)) out = ReadUntilClosed(fd, timeout_ms);
  close(fd);
  return out;
}

ClusterOptions OneNode() {
  ClusterOptions o;
  o.nodes = 1;
  return o;
}

const char* const kNoAuth = "(error) NOAUTH Authentication required.";
const char* const kWrongPass =
    "(error) WRONGPASS invalid username-password pair or user is disabled.";

// A connection that has not authenticated, on a node that has applied the password: polls with
// new connections, since one accepted before the password applied stays authenticated.
bool WaitForNoAuth(uint16_t port) {
  return WaitUntil(10000, [port] {
    Redis r(port, 2000);
    return r.Command({"PING"}).ToString() == kNoAuth;
  });
}

TEST(ServerCommands, RequirepassIsReplicatedAndGatesNewConnectionsOnEveryNode) {
  TestCluster c;
  const uint64_t a = c.ids()[0], b = c.ids()[1], d = c.ids()[2];
  Redis ra(c.client_port(a));
  EXPECT_EQ(ra.Command({"AUTH", "pw"}).ToString(),
            "(error) ERR AUTH <password> called without any password configured for the default "
            "user. Are you sure your configuration is correct?");
  EXPECT_EQ(ra.Command({"AUTH", "default", "anything"}).ToString(), "OK");  // nopass
  EXPECT_EQ(ra.Command({"CONFIG", "SET", "requirepass", "s3cret"}).ToString(), "OK");
  // As Redis: a connection authenticated when no password was set stays so.
  EXPECT_EQ(ra.Command({"PING"}).ToString(), "PONG");
  EXPECT_EQ(ra.Command({"CONFIG", "GET", "requirepass"}).ToString(),
            "[\"requirepass\", \"s3cret\"]");

  ASSERT_TRUE(WaitForNoAuth(c.client_port(b))) << "node " << b << " never required the password";
  // `synod bench` (no password) counts the refusals by kind and keeps the server's first message
  // of each, to tell what went wrong.
  const ProgramResult bench =
      RunProgram({c.synod_bin(), "bench", "--host", "127.0.0.1:" + std::to_string(c.client_port(b)),
                  "--clients", "1", "--requests", "20", "--warmup", "0s", "--duration", "10s",
                  "--no-progress", "--json"},
                 30000);
  const Json report = Json::parse(bench.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(report.is_object()) << bench.out << bench.err;
  EXPECT_EQ(report["errors"].value("NOAUTH", 0), 20) << bench.out;
  EXPECT_EQ(report["error_samples"].value("NOAUTH", ""), "NOAUTH Authentication required.")
      << bench.out;
  Redis rb(c.client_port(b));
  EXPECT_EQ(rb.Command({"GET", "k"}).ToString(), kNoAuth);
  EXPECT_EQ(rb.Command({"CONFIG", "SET", "requirepass", ""}).ToString(), kNoAuth);
  // Unknown commands and wrong arity are reported first, as Redis does.
  EXPECT_EQ(rb.Command({"GET"}).ToString(),
            "(error) ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(rb.Command({"AUTH", "wrong"}).ToString(), kWrongPass);
  EXPECT_EQ(rb.Command({"AUTH", "admin", "s3cret"}).ToString(), kWrongPass);
  EXPECT_EQ(rb.Command({"AUTH", "a", "b", "c"}).ToString(), "(error) ERR syntax error");
  EXPECT_EQ(rb.Command({"HELLO", "2"}).ToString(),
            "(error) NOAUTH HELLO must be called with the client already authenticated, "
            "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate "
            "the client and select the RESP protocol version at the same time");
  EXPECT_EQ(rb.Command({"HELLO", "2", "AUTH", "default", "nope"}).ToString(), kWrongPass);
  EXPECT_EQ(rb.Command({"PING"}).ToString(), kNoAuth);
  EXPECT_EQ(rb.Command({"AUTH", "s3cret"}).ToString(), "OK");
  EXPECT_EQ(rb.Command({"SET", "k", "v"}).ToString(), "OK");
  EXPECT_EQ(rb.Command({"GET", "k"}).ToString(), "\"v\"");
  EXPECT_EQ(rb.Command({"AUTH", "default", "s3cret"}).ToString(), "OK");

  // HELLO 3 AUTH authenticates and switches to RESP3 in one step (raw bytes: RESP3 map).
  ASSERT_TRUE(WaitForNoAuth(c.client_port(d)));
  const std::string raw =
      RawExchange(c.client_port(d), "HELLO 3 AUTH default s3cret\r\nGET k\r\nQUIT\r\n");
  EXPECT_EQ(raw.rfind("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n", 0), 0u) << raw;
  EXPECT_NE(raw.find("$5\r\nproto\r\n:3\r\n"), std::string::npos) << raw;
  EXPECT_NE(raw.find("$1\r\nv\r\n+OK\r\n"), std::string::npos) << raw;
  const std::string refused = RawExchange(c.client_port(d), "HELLO 3 AUTH default x\r\nQUIT\r\n");
  EXPECT_EQ(refused, "-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n");

  // Clearing the password lets every new connection in again, cluster-wide.
  EXPECT_EQ(rb.Command({"CONFIG", "SET", "requirepass", ""}).ToString(), "OK");
  EXPECT_TRUE(WaitUntil(10000, [&] {
    Redis r(c.client_port(d), 2000);
    return r.Command({"GET", "k"}).ToString() == "\"v\"";
  }));
  Redis fresh(c.client_port(a));
  EXPECT_TRUE(WaitUntil(5000, [&] { return fresh.Command({"GET", "k"}).ToString() == "\"v\""; }));
}

// The CLIENT LIST line of the connection with `id` (empty when absent).
std::string ClientLine(Redis& r, long long id) {
  const Reply list = r.Command({"CLIENT", "LIST"});
  const std::string prefix = "id=" + std::to_string(id) + " ";
  size_t at = list.str.rfind(prefix, 0) == 0 ? 0 : list.str.find("\n" + prefix);
  if (at == std::string::npos) return "";
  if (at != 0) ++at;
  return list.str.substr(at, list.str.find('\n', at) - at);
}

std::string Field(const std::string& line, const std::string& name) {
  const size_t at = line.find(" " + name + "=");
  if (at == std::string::npos) return "(missing)";
  const size_t start = at + name.size() + 2;
  return line.substr(start, line.find(' ', start) - start);
}

TEST(ServerCommands, ClientListAndKill) {
  TestCluster c(OneNode());
  const uint16_t port = c.client_port(1);
  Redis admin(port), victim(port), other(port), old_form(port);
  const long long admin_id = admin.Command({"CLIENT", "ID"}).integer;
  const long long victim_id = victim.Command({"CLIENT", "ID"}).integer;
  const long long other_id = other.Command({"CLIENT", "ID"}).integer;
  old_form.Command({"PING"});

  // CLIENT LIST carries Redis's fields with true values.
  EXPECT_EQ(other.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(other.Command({"SET", "a", "1"}).ToString(), "QUEUED");
  const std::string line = ClientLine(admin, other_id);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(Field(line, "multi"), "1") << line;
  EXPECT_EQ(Field(line, "flags"), "x") << line;
  EXPECT_EQ(Field(line, "user"), "default") << line;
  EXPECT_EQ(Field(line, "resp"), "2") << line;
  EXPECT_EQ(Field(line, "db"), "0") << line;
  EXPECT_EQ(Field(line, "laddr"), "127.0.0.1:" + std::to_string(port)) << line;
  EXPECT_EQ(Field(line, "cmd"), "set") << line;
  EXPECT_EQ(other.Command({"DISCARD"}).ToString(), "OK");
  const std::string mine = admin.Command({"CLIENT", "INFO"}).str;
  EXPECT_EQ(mine.rfind("id=" + std::to_string(admin_id) + " addr=127.0.0.1:", 0), 0u) << mine;
  EXPECT_EQ(Field(mine, "multi"), "-1") << mine;
  EXPECT_EQ(Field(mine, "cmd"), "client|info") << mine;

  // New form by ID: the count, and the victim's connection is closed.
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "ID", std::to_string(victim_id)}).ToString(),
            "(integer) 1");
  EXPECT_EQ(victim.Command({"PING"}).type, Reply::kIoError);
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "ID", "999999"}).ToString(), "(integer) 0");
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "ID", "0"}).ToString(),
            "(error) ERR client-id should be greater than 0");
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "ID", "1", "BOGUS", "x"}).ToString(),
            "(error) ERR syntax error");
  // SKIPME yes is the default: the caller survives a filter that matches it.
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "ID", std::to_string(admin_id)}).ToString(),
            "(integer) 0");

  // By ADDR (new form), then the old form.
  const std::string other_addr = Field(" " + ClientLine(admin, other_id), "addr");
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "ADDR", other_addr, "SKIPME", "yes"}).ToString(),
            "(integer) 1");
  EXPECT_EQ(other.Command({"PING"}).type, Reply::kIoError);
  const std::string old_addr =
      Field(" " + ClientLine(admin, old_form.Command({"CLIENT", "ID"}).integer), "addr");
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", old_addr}).ToString(), "OK");
  EXPECT_EQ(old_form.Command({"PING"}).type, Reply::kIoError);
  EXPECT_EQ(admin.Command({"CLIENT", "KILL", "10.0.0.1:1"}).ToString(),
            "(error) ERR No such client");
  EXPECT_TRUE(ClientLine(admin, victim_id).empty());

  // SKIPME no kills the caller after its reply.
  EXPECT_EQ(
      admin.Command({"CLIENT", "KILL", "ID", std::to_string(admin_id), "SKIPME", "no"}).ToString(),
      "(integer) 1");
  EXPECT_EQ(admin.Command({"PING"}).type, Reply::kIoError);
}

TEST(ServerCommands, CommandGetKeysConfigLastsaveAndInfo) {
  TestCluster c(OneNode());
  const int64_t before = static_cast<int64_t>(std::time(nullptr));
  Redis r(c.client_port(1));
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"}).ToString(),
            "[\"a\", \"b\"]");
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYS", "get", "k"}).ToString(), "[\"k\"]");
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYS", "LCS", "x", "y"}).ToString(), "[\"x\", \"y\"]");
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYS", "NOPE", "k"}).ToString(),
            "(error) ERR Invalid command specified");
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYS", "GET"}).ToString(),
            "(error) ERR Invalid number of arguments specified for command");
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYS", "PING"}).ToString(),
            "(error) ERR The command has no key arguments");
  EXPECT_EQ(r.Command({"COMMAND", "GETKEYSANDFLAGS", "GET", "k"}).ToString(),
            "[[\"k\", [RO, access]]]");

  // LASTSAVE: the start time of a node that has not compacted yet.
  const Reply lastsave = r.Command({"LASTSAVE"});
  ASSERT_EQ(lastsave.type, REDIS_REPLY_INTEGER) << lastsave.ToString();
  EXPECT_GE(lastsave.integer, before - 60);
  EXPECT_LE(lastsave.integer, static_cast<int64_t>(std::time(nullptr)));

  // CONFIG GET/SET.
  EXPECT_EQ(r.Command({"CONFIG", "GET", "maxclients"}).ToString(), "[\"maxclients\", \"10000\"]");
  EXPECT_EQ(r.Command({"CONFIG", "GET", "maxc*", "databases"}).ToString(),
            "[\"maxclients\", \"10000\", \"databases\", \"1\"]");
  EXPECT_EQ(r.Command({"CONFIG", "SET", "databases", "2"}).ToString(),
            "(error) ERR CONFIG SET failed (possibly related to argument 'databases') - can't set "
            "immutable config");
  EXPECT_EQ(r.Command({"CONFIG", "SET", "nosuch", "1"}).ToString(),
            "(error) ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'");
  EXPECT_EQ(r.Command({"CONFIG", "SET", "maxclients", "x"}).ToString(),
            "(error) ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument "
            "couldn't be parsed into an integer");
  EXPECT_EQ(r.Command({"CONFIG", "REWRITE"}).type, REDIS_REPLY_ERROR);
  EXPECT_EQ(r.Command({"CONFIG", "SET", "maxclients", "2"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"CONFIG", "GET", "maxclients"}).ToString(), "[\"maxclients\", \"2\"]");
  {
    Redis second(c.client_port(1));
    EXPECT_EQ(second.Command({"PING"}).ToString(), "PONG");
    // The third is refused as it is accepted (raw: nothing is sent into the closing socket).
    EXPECT_EQ(RawExchange(c.client_port(1), ""), "-ERR max number of clients reached\r\n");
  }
  EXPECT_EQ(r.Command({"CONFIG", "SET", "maxclients", "10000"}).ToString(), "OK");

  // The output limit: a reply above the hard limit closes the connection.
  EXPECT_EQ(r.Command({"SET", "big", std::string(100000, 'x')}).ToString(), "OK");
  EXPECT_EQ(
      r.Command({"CONFIG", "SET", "client-output-buffer-limit", "normal 10kb 0 0"}).ToString(),
      "OK");
  EXPECT_EQ(r.Command({"CONFIG", "GET", "client-output-buffer-limit"}).elements.at(1).str,
            "normal 10240 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
  {
    Redis small(c.client_port(1));
    EXPECT_EQ(small.Command({"GET", "big"}).type, Reply::kIoError);
  }
  EXPECT_EQ(r.Command({"CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0"}).ToString(),
            "OK");
  EXPECT_EQ(r.Command({"GET", "big"}).str.size(), 100000u);

  // INFO keyspace: keys and keys with a TTL; sections case-insensitive; unknown ones empty.
  EXPECT_EQ(r.Command({"SET", "k", "v", "EX", "100"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"INFO", "KeySpace"}).str,
            "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n");
  EXPECT_EQ(r.Command({"INFO", "nosuchsection"}).ToString(), "\"\"");
  const std::string two = r.Command({"INFO", "clients", "server"}).str;
  EXPECT_EQ(two.rfind("# Server\r\n", 0), 0u) << two;
  EXPECT_NE(two.find("\r\n\r\n# Clients\r\nconnected_clients:1\r\n"), std::string::npos) << two;
  EXPECT_NE(two.find("maxclients:10000\r\n"), std::string::npos) << two;
  EXPECT_EQ(two.find("# Memory"), std::string::npos) << two;
  const std::string all = r.Command({"INFO", "everything"}).str;
  for (const std::string& s : std::vector<std::string>{
           "# Memory\r\nused_memory:", "used_memory_human:", "# Persistence\r\n",
           "rdb_last_save_time:" + std::to_string(lastsave.integer) + "\r\n", "aof_enabled:1\r\n",
           "loading:0\r\n", "blocked_clients:0\r\n",
           "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"}) {
    EXPECT_NE(all.find(s), std::string::npos) << s << " in " << all;
  }
  EXPECT_EQ(r.Command({"CONFIG", "RESETSTAT"}).ToString(), "OK");
  EXPECT_NE(r.Command({"INFO", "stats"}).str.find("total_commands_processed:1\r\n"),
            std::string::npos);
}

TEST(ServerCommands, WaitCountsReplicasHoldingTheConnectionsLastWrite) {
  TestCluster c;
  const uint64_t leader = c.WaitForLeader(15000);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> followers = c.LiveIds(leader);
  ASSERT_EQ(followers.size(), 2u);
  Redis rl(c.client_port(leader));
  // No write yet: the connected replicas at once.
  EXPECT_TRUE(WaitUntil(5000, [&] { return rl.Command({"WAIT", "2", "0"}).integer == 2; }));
  EXPECT_EQ(rl.Command({"SET", "w", "1"}).ToString(), "OK");
  EXPECT_EQ(rl.Command({"WAIT", "2", "1000"}).ToString(), "(integer) 2");
  EXPECT_EQ(rl.Command({"WAIT", "1", "-1"}).ToString(), "(error) ERR timeout is negative");
  EXPECT_EQ(rl.Command({"WAIT", "x", "0"}).ToString(),
            "(error) ERR value is not an integer or out of range");
  const std::string info = rl.Command({"INFO", "replication"}).str;
  EXPECT_NE(info.find("role:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port="),
            std::string::npos)
      << info;

  // With a follower paused, only one replica can acknowledge: WAIT 2 times out with 1.
  c.Stop(followers[0]);
  EXPECT_EQ(rl.Command({"SET", "w", "2"}).ToString(), "OK");
  const int64_t start = NowMs();
  EXPECT_EQ(rl.Command({"WAIT", "2", "500"}).ToString(), "(integer) 1");
  EXPECT_GE(NowMs() - start, 450);
  // A pending WAIT does not hold other clients up.
  Redis rl2(c.client_port(leader));
  ASSERT_TRUE(rl.Send({"WAIT", "2", "2000"}));
  EXPECT_EQ(rl2.Command({"GET", "w"}).ToString(), "\"2\"");
  EXPECT_NE(rl2.Command({"INFO", "clients"}).str.find("blocked_clients:1\r\n"), std::string::npos);
  c.Cont(followers[0]);
  EXPECT_EQ(rl.Receive().ToString(), "(integer) 2");

  // Through a follower WAIT asks the shard's leader, which counts the replicas holding it.
  Redis rf(c.client_port(followers[1]));
  EXPECT_EQ(rf.Command({"SET", "w", "3"}).ToString(), "OK");
  EXPECT_EQ(rf.Command({"WAIT", "2", "1000"}).ToString(), "(integer) 2");
}

}  // namespace
}  // namespace synod::e2e
