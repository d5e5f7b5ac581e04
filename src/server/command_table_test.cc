#include "server/command_table.h"

#include <gtest/gtest.h>

#include "kv/redis.h"
#include "server/command_impl.h"
#include "server/resp_server.h"

namespace synod::server {
namespace {

TEST(CommandTableTest, SortedUniqueAndLowerCase) {
  const auto& t = CommandTable();
  ASSERT_FALSE(t.empty());
  for (size_t i = 0; i < t.size(); ++i) {
    for (const char* c = t[i].name; *c != '\0'; ++c) EXPECT_FALSE(std::isupper(*c)) << t[i].name;
    if (i > 0) {
      EXPECT_LT(std::string(t[i - 1].name), std::string(t[i].name));
    }
    EXPECT_NE(t[i].handler, nullptr);
    EXPECT_NE(t[i].arity, 0) << t[i].name;
    // Write and read-only are exclusive; every keyed command says where its keys are.
    EXPECT_FALSE((t[i].flags & kWrite) && (t[i].flags & kReadOnly)) << t[i].name;
    if (t[i].first_key > 0) {
      EXPECT_GT(t[i].key_step, 0) << t[i].name;
    }
  }
}

TEST(CommandTableTest, LookupIsCaseInsensitive) {
  for (const char* name : {"get", "GET", "GeT", "mset", "MSET"}) {
    ASSERT_NE(FindCommand(name), nullptr) << name;
  }
  EXPECT_EQ(FindCommand("nosuchcommand"), nullptr);
  EXPECT_EQ(FindCommand(""), nullptr);
  EXPECT_EQ(FindCommand(std::string(1000, 'g')), nullptr);
}

TEST(CommandTableTest, ArityAsRedisDefinesIt) {
  const CommandSpec* get = FindCommand("get");
  ASSERT_NE(get, nullptr);
  EXPECT_TRUE(ArityOk(*get, 2));
  EXPECT_FALSE(ArityOk(*get, 1));
  EXPECT_FALSE(ArityOk(*get, 3));
  const CommandSpec* mset = FindCommand("mset");
  ASSERT_NE(mset, nullptr);
  EXPECT_FALSE(ArityOk(*mset, 2));
  EXPECT_TRUE(ArityOk(*mset, 3));
  EXPECT_TRUE(ArityOk(*mset, 5));
}

// The keyspace commands are declared twice, here (routing, COMMAND) and in kv (execution):
// the two must agree, and every command kv executes must be reachable.
TEST(CommandTableTest, KeyspaceEntriesAgreeWithKv) {
  for (const CommandSpec& c : CommandTable()) {
    if (c.handler != KvRead && c.handler != KvWrite) continue;
    const kv::RedisCommand* k = kv::FindRedisCommand(c.name);
    ASSERT_NE(k, nullptr) << c.name << " is routed to kv, which does not know it";
    EXPECT_EQ(c.arity, k->arity) << c.name;
    // kv's key specs (scripts latch and copy keys by them) are the server's.
    EXPECT_EQ(c.first_key, k->first_key) << c.name;
    EXPECT_EQ(c.last_key, k->last_key) << c.name;
    EXPECT_EQ(c.key_step, k->key_step) << c.name;
    if (c.handler == KvWrite) {
      EXPECT_NE(k->write, nullptr) << c.name << " is proposed as a write; kv reads it";
      EXPECT_TRUE(c.flags & kWrite) << c.name;
    } else {
      EXPECT_NE(k->read, nullptr) << c.name << " is served as a read; kv writes it";
      EXPECT_TRUE(c.flags & kReadOnly) << c.name;
    }
  }
  for (const kv::RedisCommand& k : kv::RedisCommands()) {
    const CommandSpec* c = FindCommand(k.name);
    ASSERT_NE(c, nullptr) << k.name << " is executed by kv but missing from the server table";
    EXPECT_TRUE(c->handler == KvRead || c->handler == KvWrite) << k.name;
  }
}

std::vector<std::string> GetKeys(const std::vector<std::string>& argv) {
  const CommandSpec* spec = FindCommand(argv.at(0));
  EXPECT_NE(spec, nullptr) << argv[0];
  if (spec == nullptr) return {};
  EXPECT_TRUE(ArityOk(*spec, argv.size())) << argv[0];
  std::vector<std::string> keys;
  for (size_t i : KeyPositions(*spec, argv.size())) keys.push_back(argv.at(i));
  return keys;
}

using Keys = std::vector<std::string>;

TEST(CommandTableTest, KeyPositionsAsCommandGetKeys) {
  EXPECT_EQ(GetKeys({"mset", "a", "1", "b", "2"}), (Keys{"a", "b"}));
  EXPECT_EQ(GetKeys({"get", "k"}), (Keys{"k"}));
  EXPECT_EQ(GetKeys({"lcs", "a", "b"}), (Keys{"a", "b"}));
  EXPECT_EQ(GetKeys({"lcs", "a", "b", "LEN"}), (Keys{"a", "b"}));
  EXPECT_EQ(GetKeys({"set", "k", "v", "EX", "10"}), (Keys{"k"}));
  EXPECT_EQ(GetKeys({"del", "x", "y", "z"}), (Keys{"x", "y", "z"}));
  EXPECT_EQ(GetKeys({"MGET", "x"}), (Keys{"x"}));
  EXPECT_EQ(GetKeys({"copy", "src", "dst", "REPLACE"}), (Keys{"src", "dst"}));
  EXPECT_EQ(GetKeys({"watch", "a", "b"}), (Keys{"a", "b"}));
  EXPECT_TRUE(GetKeys({"ping"}).empty());
  EXPECT_TRUE(GetKeys({"dbsize"}).empty());
  EXPECT_TRUE(GetKeys({"keys", "*"}).empty());
}

TEST(CommandTableTest, ServerCommandsAreDeclared) {
  for (const char* name : {"auth", "wait", "lastsave", "config", "client", "command", "info"}) {
    EXPECT_NE(FindCommand(name), nullptr) << name;
  }
  // Allowed before AUTH: exactly Redis's no-auth commands that Synod has.
  for (const CommandSpec& c : CommandTable()) {
    const std::string n = c.name;
    EXPECT_EQ((c.flags & kNoAuth) != 0, n == "auth" || n == "hello" || n == "quit") << n;
  }
}

TEST(RedisErrorTest, EveryFailureNamesItsClassAndWhetherItWasApplied) {
  EXPECT_EQ(RedisErrorFor(Status::ProposalDropped("no leader"), true).rfind("CLUSTERDOWN ", 0), 0u);
  const std::string timeout = RedisErrorFor(Status::Timeout("t"), true);
  EXPECT_EQ(timeout.rfind("TRYAGAIN ", 0), 0u);
  EXPECT_NE(timeout.find("may or may not have been applied"), std::string::npos);
  EXPECT_EQ(RedisErrorFor(Status::IoError("No space left on device"), true).rfind("MISCONF ", 0),
            0u);
  EXPECT_NE(RedisErrorFor(Status::IoError("No space left on device"), true)
                .find("No space left on device"),
            std::string::npos);
  EXPECT_EQ(RedisErrorFor(Status::Unavailable("leader changed"), false).rfind("CLUSTERDOWN", 0),
            0u);
}

}  // namespace
}  // namespace synod::server
