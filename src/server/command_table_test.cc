#include "server/command_table.h"

#include <gtest/gtest.h>

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
