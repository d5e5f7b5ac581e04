// Tests of Redis's keyspace commands (redis_keys.cc) against Redis's documented behaviour.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "kv/redis.h"
#include "kv/redis_test_util.h"

namespace synod::kv {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;  // Unix ms

// A reply as RESP-like text, so expectations read as what a client would see ($bulk).
std::string Show(const Reply& r) {
  return testing::ShowReply(r, {.bulk_open = "$", .bulk_close = ""});
}

class RedisKeysTest : public ::testing::Test {
 protected:
  RedisKeysTest() { ctx_.now_ms = kNow; }

  // Runs a command as the state machine applies it: a new log index per call.
  Reply Apply(const Args& argv) {
    ks_.set_index(LogIndex(++index_));
    return ExecuteRedis(ks_, argv, ctx_);
  }
  std::string W(const Args& argv) { return Show(Apply(argv)); }
  std::string R(const Args& argv) { return Show(ExecuteRedisRead(ks_, argv, ctx_)); }

  void Put(const std::string& key, const std::string& value, int64_t expire_ms = 0) {
    ks_.set_index(LogIndex(++index_));
    ks_.Put(key, value, expire_ms);
  }
  std::string ValueOf(const std::string& key) const {
    const Value* v = ks_.Find(key, ctx_.now_ms);
    return v == nullptr ? "(absent)" : v->bytes;
  }
  int64_t ExpireOf(const std::string& key) const {
    const Value* v = ks_.Find(key, ctx_.now_ms);
    return v == nullptr ? -2 : v->expire_ms;
  }
  // The keys of a KEYS reply, or of SCAN's second element.
  static std::multiset<std::string> KeySet(const Reply& array) {
    std::multiset<std::string> out;
    for (const Reply& r : array.replies) out.insert(r.value.value_or(""));
    return out;
  }

  Keyspace ks_;
  ExecContext ctx_;
  uint64_t index_ = 0;
};

// ---- GlobMatch ----

TEST(RedisKeysGlobTest, Wildcards) {
  using redis::GlobMatch;
  EXPECT_TRUE(GlobMatch("h?llo", "hello"));
  EXPECT_TRUE(GlobMatch("h?llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h?llo", "hllo"));
  EXPECT_TRUE(GlobMatch("h*llo", "hllo"));
  EXPECT_TRUE(GlobMatch("h*llo", "heeeello"));
  EXPECT_FALSE(GlobMatch("h*llo", "heeeellox"));
  EXPECT_TRUE(GlobMatch("*", "anything"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("**", "x"));
  EXPECT_TRUE(GlobMatch("", ""));
  EXPECT_FALSE(GlobMatch("", "a"));
  EXPECT_FALSE(GlobMatch("?", ""));
  EXPECT_TRUE(GlobMatch("a*", "a"));
  EXPECT_TRUE(GlobMatch("*a", "a"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch("*.txt", "notes.txt"));
  EXPECT_FALSE(GlobMatch("*.txt", "notes.txt.bak"));
  EXPECT_FALSE(GlobMatch("Hello", "hello"));  // case-sensitive
}

TEST(RedisKeysGlobTest, Classes) {
  using redis::GlobMatch;
  EXPECT_TRUE(GlobMatch("h[ae]llo", "hello"));
  EXPECT_TRUE(GlobMatch("h[ae]llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h[ae]llo", "hillo"));
  EXPECT_TRUE(GlobMatch("h[^e]llo", "hallo"));
  EXPECT_TRUE(GlobMatch("h[^e]llo", "hbllo"));
  EXPECT_FALSE(GlobMatch("h[^e]llo", "hello"));
  EXPECT_TRUE(GlobMatch("h[a-b]llo", "hallo"));
  EXPECT_TRUE(GlobMatch("h[a-b]llo", "hbllo"));
  EXPECT_FALSE(GlobMatch("h[a-b]llo", "hcllo"));
  EXPECT_TRUE(GlobMatch("h[b-a]llo", "hallo"));  // reversed ranges work, as in Redis
  EXPECT_TRUE(GlobMatch("[0-9][0-9]", "42"));
  EXPECT_FALSE(GlobMatch("[0-9][0-9]", "4x"));
  EXPECT_TRUE(GlobMatch("[^0-9]", "x"));
  EXPECT_FALSE(GlobMatch("[^0-9]", "5"));
  EXPECT_TRUE(GlobMatch("[\\]]", "]"));
  EXPECT_TRUE(GlobMatch("[a\\-z]", "-"));
  EXPECT_FALSE(GlobMatch("[a\\-z]", "b"));
  // An unterminated class runs to the end of the pattern.
  EXPECT_TRUE(GlobMatch("[abc", "b"));
  EXPECT_FALSE(GlobMatch("[abc", "d"));
  EXPECT_FALSE(GlobMatch("[", "["));
  EXPECT_TRUE(GlobMatch("[^", "x"));
  EXPECT_FALSE(GlobMatch("[]", "x"));
  // stringmatchlen's quirk: in "[a-]" the '-' takes ']' as the range's end (']' .. 'a'), so the
  // class goes on to the end of the pattern.
  EXPECT_TRUE(GlobMatch("[a-]x", "_"));
  EXPECT_TRUE(GlobMatch("[a-]x", "x"));
  EXPECT_FALSE(GlobMatch("[a-]x", "b"));
}

TEST(RedisKeysGlobTest, Escapes) {
  using redis::GlobMatch;
  EXPECT_TRUE(GlobMatch("h\\*llo", "h*llo"));
  EXPECT_FALSE(GlobMatch("h\\*llo", "hello"));
  EXPECT_TRUE(GlobMatch("\\?", "?"));
  EXPECT_FALSE(GlobMatch("\\?", "x"));
  EXPECT_TRUE(GlobMatch("\\[a]", "[a]"));
  EXPECT_TRUE(GlobMatch("a\\\\b", "a\\b"));
  EXPECT_TRUE(GlobMatch("ab\\", "ab\\"));  // a trailing backslash is literal
  EXPECT_TRUE(GlobMatch("*\\*", "xx*"));
  EXPECT_FALSE(GlobMatch("*\\*", "xx"));
}

TEST(RedisKeysGlobTest, BinaryBytes) {
  using redis::GlobMatch;
  const std::string key("a\0b\xff", 4);
  EXPECT_TRUE(GlobMatch(std::string("a\0?\xff", 4), key));
  EXPECT_TRUE(GlobMatch("a*", key));
  EXPECT_TRUE(GlobMatch(std::string("*[\x80-\xff]", 6), key));
}

TEST(RedisKeysGlobTest, PathologicalPatternsFinishFast) {
  using redis::GlobMatch;
  const std::string a50(50, 'a');
  const std::string a10k(10'000, 'a');
  // Redis's keyspace test: a pattern that takes exponential time when naively backtracked.
  EXPECT_FALSE(GlobMatch("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", a50));
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", a10k));
  EXPECT_TRUE(GlobMatch("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*", a10k));
  std::string stars;
  for (int i = 0; i < 5000; ++i) stars += "*a";
  EXPECT_FALSE(GlobMatch(stars + "b", a10k));
  EXPECT_TRUE(GlobMatch(stars, a10k));
}

// ---- DEL, UNLINK, EXISTS, TYPE, TOUCH ----

TEST_F(RedisKeysTest, DelCountsRemovedKeys) {
  Put("a", "1");
  Put("b", "2");
  EXPECT_EQ(W({"DEL", "a", "b", "c", "a"}), ":2");
  EXPECT_EQ(ValueOf("a"), "(absent)");
  EXPECT_EQ(W({"del", "a"}), ":0");
  EXPECT_EQ(W({"del"}), "-ERR wrong number of arguments for 'del' command");
}

TEST_F(RedisKeysTest, DelOfExpiredKeyCountsZeroAndDeletesIt) {
  Put("gone", "x", kNow - 1);
  EXPECT_EQ(W({"del", "gone"}), ":0");
  EXPECT_EQ(ks_.FindRaw("gone"), nullptr);
}

TEST_F(RedisKeysTest, UnlinkIsDel) {
  Put("a", "1");
  Put("b", "2");
  EXPECT_EQ(W({"unlink", "a", "b", "x"}), ":2");
  EXPECT_EQ(ks_.size(), 0u);
  EXPECT_EQ(W({"unlink"}), "-ERR wrong number of arguments for 'unlink' command");
}

TEST_F(RedisKeysTest, ExistsCountsRepeats) {
  Put("a", "1");
  Put("old", "1", kNow);  // expires exactly now: absent
  EXPECT_EQ(R({"exists", "a", "a", "b", "a"}), ":3");
  EXPECT_EQ(R({"EXISTS", "old"}), ":0");
  EXPECT_EQ(R({"exists"}), "-ERR wrong number of arguments for 'exists' command");
}

TEST_F(RedisKeysTest, TypeIsStringOrNone) {
  Put("a", "1");
  Put("old", "1", kNow - 5);
  EXPECT_EQ(R({"type", "a"}), "+string");
  EXPECT_EQ(R({"type", "b"}), "+none");
  EXPECT_EQ(R({"type", "old"}), "+none");
  EXPECT_EQ(R({"type"}), "-ERR wrong number of arguments for 'type' command");
  EXPECT_EQ(R({"type", "a", "b"}), "-ERR wrong number of arguments for 'type' command");
}

TEST_F(RedisKeysTest, TouchCountsExistingKeys) {
  Put("a", "1");
  Put("b", "1");
  EXPECT_EQ(R({"touch", "a", "b", "c"}), ":2");
  EXPECT_EQ(R({"touch"}), "-ERR wrong number of arguments for 'touch' command");
}

// ---- RENAME, RENAMENX ----

TEST_F(RedisKeysTest, RenameMovesValueAndTtl) {
  Put("src", "v", kNow + 10'000);
  EXPECT_EQ(W({"rename", "src", "dst"}), "+OK");
  EXPECT_EQ(ValueOf("src"), "(absent)");
  EXPECT_EQ(ValueOf("dst"), "v");
  EXPECT_EQ(ExpireOf("dst"), kNow + 10'000);
  EXPECT_EQ(R({"pttl", "dst"}), ":10000");
}

TEST_F(RedisKeysTest, RenameOverwritesDestinationAndItsTtl) {
  Put("src", "new");
  Put("dst", "old", kNow + 5000);
  EXPECT_EQ(W({"rename", "src", "dst"}), "+OK");
  EXPECT_EQ(ValueOf("dst"), "new");
  EXPECT_EQ(R({"ttl", "dst"}), ":-1");  // the source's (absent) TTL, not the destination's
  EXPECT_EQ(ks_.expires_count(), 0u);
}

TEST_F(RedisKeysTest, RenameErrors) {
  EXPECT_EQ(W({"rename", "nope", "x"}), "-ERR no such key");
  Put("old", "v", kNow - 1);
  EXPECT_EQ(W({"rename", "old", "x"}), "-ERR no such key");
  EXPECT_EQ(ks_.FindRaw("old"), nullptr);  // the write deleted the expired key
  EXPECT_EQ(W({"rename", "a"}), "-ERR wrong number of arguments for 'rename' command");
  EXPECT_EQ(W({"rename", "a", "b", "c"}), "-ERR wrong number of arguments for 'rename' command");
}

TEST_F(RedisKeysTest, RenameToItself) {
  EXPECT_EQ(W({"rename", "k", "k"}), "-ERR no such key");
  Put("k", "v", kNow + 1000);
  EXPECT_EQ(W({"rename", "k", "k"}), "+OK");
  EXPECT_EQ(ValueOf("k"), "v");
  EXPECT_EQ(ExpireOf("k"), kNow + 1000);
  EXPECT_EQ(W({"renamenx", "k", "k"}), ":0");
}

TEST_F(RedisKeysTest, RenameNx) {
  Put("a", "1", kNow + 2000);
  Put("b", "2");
  EXPECT_EQ(W({"renamenx", "a", "b"}), ":0");
  EXPECT_EQ(ValueOf("a"), "1");
  EXPECT_EQ(ValueOf("b"), "2");
  EXPECT_EQ(W({"renamenx", "a", "c"}), ":1");
  EXPECT_EQ(ValueOf("a"), "(absent)");
  EXPECT_EQ(ValueOf("c"), "1");
  EXPECT_EQ(ExpireOf("c"), kNow + 2000);
  EXPECT_EQ(W({"renamenx", "zz", "c"}), "-ERR no such key");
  // An expired destination counts as absent.
  Put("d", "old", kNow - 1);
  EXPECT_EQ(W({"renamenx", "c", "d"}), ":1");
  EXPECT_EQ(ValueOf("d"), "1");
}

TEST_F(RedisKeysTest, RenameRefusesOverlongDestination) {
  ctx_.key_bytes_max = 8;
  Put("a", "1");
  EXPECT_EQ(W({"rename", "a", "123456789"}), "-ERR key exceeds the maximum key size");
  EXPECT_EQ(ValueOf("a"), "1");
}

// ---- COPY ----

TEST_F(RedisKeysTest, CopyCopiesValueAndTtl) {
  Put("src", "v", kNow + 3000);
  EXPECT_EQ(W({"copy", "src", "dst"}), ":1");
  EXPECT_EQ(ValueOf("src"), "v");
  EXPECT_EQ(ValueOf("dst"), "v");
  EXPECT_EQ(ExpireOf("dst"), kNow + 3000);
  EXPECT_EQ(W({"copy", "missing", "dst2"}), ":0");
  EXPECT_EQ(ValueOf("dst2"), "(absent)");
}

TEST_F(RedisKeysTest, CopyReplace) {
  Put("src", "new");
  Put("dst", "old", kNow + 9000);
  EXPECT_EQ(W({"copy", "src", "dst"}), ":0");
  EXPECT_EQ(ValueOf("dst"), "old");
  EXPECT_EQ(W({"copy", "src", "dst", "REPLACE"}), ":1");
  EXPECT_EQ(ValueOf("dst"), "new");
  EXPECT_EQ(ExpireOf("dst"), 0);  // the source is persistent, so the copy is too
  // REPLACE with a missing source leaves the destination alone.
  EXPECT_EQ(W({"copy", "nothing", "dst", "replace"}), ":0");
  EXPECT_EQ(ValueOf("dst"), "new");
  // An expired destination is absent: no REPLACE needed.
  Put("stale", "x", kNow - 1);
  EXPECT_EQ(W({"copy", "src", "stale"}), ":1");
  EXPECT_EQ(ValueOf("stale"), "new");
}

TEST_F(RedisKeysTest, CopyOptionsAndErrors) {
  Put("src", "v");
  EXPECT_EQ(W({"copy", "src", "d1", "db", "0"}), ":1");
  EXPECT_EQ(W({"copy", "src", "d2", "DB", "0", "REPLACE", "replace"}), ":1");
  EXPECT_EQ(W({"copy", "src", "d3", "db", "1"}), "-ERR DB index is out of range");
  EXPECT_EQ(W({"copy", "src", "d3", "db", "-1"}), "-ERR DB index is out of range");
  EXPECT_EQ(W({"copy", "src", "d3", "db", "x"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(W({"copy", "src", "d3", "db", "99999999999"}),
            "-ERR value is not an integer or out of range");
  EXPECT_EQ(W({"copy", "src", "d3", "db"}), "-ERR syntax error");
  EXPECT_EQ(W({"copy", "src", "d3", "bogus"}), "-ERR syntax error");
  EXPECT_EQ(ValueOf("d3"), "(absent)");
  EXPECT_EQ(W({"copy", "src", "src"}), "-ERR source and destination objects are the same");
  EXPECT_EQ(W({"copy", "src"}), "-ERR wrong number of arguments for 'copy' command");
}

// ---- KEYS ----

TEST_F(RedisKeysTest, KeysMatchesPatternAndSkipsExpired) {
  for (const char* k : {"foo", "foobar", "bar", "fxo", "f"}) Put(k, "1");
  Put("foo_expired", "1", kNow - 1);
  const Reply all = ExecuteRedisRead(ks_, {"keys", "*"}, ctx_);
  EXPECT_EQ(KeySet(all), (std::multiset<std::string>{"bar", "f", "foo", "foobar", "fxo"}));
  const Reply foos = ExecuteRedisRead(ks_, {"KEYS", "f?o*"}, ctx_);
  EXPECT_EQ(KeySet(foos), (std::multiset<std::string>{"foo", "foobar", "fxo"}));
  EXPECT_EQ(R({"keys", "nomatch*"}), "[]");
  EXPECT_EQ(R({"keys"}), "-ERR wrong number of arguments for 'keys' command");
}

// ---- SCAN ----

class RedisKeysScanTest : public RedisKeysTest {
 protected:
  // One SCAN call; returns the next cursor and adds the keys to *seen.
  std::string ScanOnce(const std::string& cursor, std::multiset<std::string>* seen,
                       Args extra = {"COUNT", "7"}) {
    Args argv{"scan", cursor};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const Reply r = ExecuteRedisRead(ks_, argv, ctx_);
    EXPECT_EQ(r.type, ReplyType::kArray) << Show(r);
    if (r.type != ReplyType::kArray || r.replies.size() != 2) return "0";
    for (const std::string& k : KeySet(r.replies[1])) seen->insert(k);
    return r.replies[0].value.value_or("0");
  }
  // A whole scan; returns the keys seen and the number of calls.
  std::multiset<std::string> ScanAll(Args extra, int* calls = nullptr) {
    std::multiset<std::string> seen;
    std::string cursor = "0";
    int n = 0;
    do {
      cursor = ScanOnce(cursor, &seen, extra);
      ++n;
    } while (cursor != "0" && n < 100'000);
    if (calls != nullptr) *calls = n;
    return seen;
  }
};

TEST_F(RedisKeysScanTest, FullScanReturnsEveryKeyAndEndsWithZero) {
  std::set<std::string> keys;
  for (int i = 0; i < 1200; ++i) {
    keys.insert("key:" + std::to_string(i));
    Put("key:" + std::to_string(i), "v");
  }
  int calls = 0;
  const std::multiset<std::string> seen = ScanAll({"COUNT", "7"}, &calls);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), keys);
  EXPECT_EQ(seen.size(), keys.size());  // no key returned twice when nothing changes
  EXPECT_GE(calls, 1200 / 7);
  EXPECT_LE(calls, 1200 / 7 + 2);
}

TEST_F(RedisKeysScanTest, DefaultCountIsTen) {
  for (int i = 0; i < 25; ++i) Put("k" + std::to_string(i), "v");
  std::multiset<std::string> seen;
  const std::string cursor = ScanOnce("0", &seen, {});
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_NE(cursor, "0");
}

TEST_F(RedisKeysScanTest, CursorIsThePositionOfTheNextKey) {
  for (int i = 0; i < 30; ++i) Put("k" + std::to_string(i), "v");
  std::multiset<std::string> first;
  const std::string cursor = ScanOnce("0", &first, {"COUNT", "5"});
  // The next call starts exactly at the first key not yet returned.
  const auto& m = ks_.map();
  auto it = m.begin();
  std::advance(it, 5);
  EXPECT_EQ(cursor, std::to_string(it->first.pos));
  std::multiset<std::string> second;
  ScanOnce(cursor, &second, {"COUNT", "1"});
  EXPECT_EQ(second, (std::multiset<std::string>{it->first.bytes}));
}

TEST_F(RedisKeysScanTest, ChangesBetweenCallsNeverSkipStableKeys) {
  std::set<std::string> stable;
  for (int i = 0; i < 600; ++i) {
    stable.insert("stable:" + std::to_string(i));
    Put("stable:" + std::to_string(i), "v");
  }
  for (int i = 0; i < 300; ++i) Put("churn:" + std::to_string(i), "v");
  std::multiset<std::string> seen;
  std::string cursor = "0";
  int round = 0;
  do {
    cursor = ScanOnce(cursor, &seen, {"COUNT", "5"});
    // Between calls: delete some churn keys and add new ones all over the keyspace.
    Apply({"del", "churn:" + std::to_string(round)});
    Put("added:" + std::to_string(round), "v");
    Put("added:x" + std::to_string(round), "v");
    ++round;
  } while (cursor != "0" && round < 10'000);
  EXPECT_EQ(cursor, "0");
  for (const std::string& k : stable) EXPECT_EQ(seen.count(k), 1u) << k;
}

TEST_F(RedisKeysScanTest, MatchFiltersAfterVisiting) {
  for (int i = 0; i < 100; ++i) Put("user:" + std::to_string(i), "v");
  for (int i = 0; i < 100; ++i) Put("item:" + std::to_string(i), "v");
  const std::multiset<std::string> users = ScanAll({"MATCH", "user:*", "COUNT", "9"});
  EXPECT_EQ(users.size(), 100u);
  for (const std::string& k : users) EXPECT_EQ(k.rfind("user:", 0), 0u) << k;
  // COUNT bounds the keys visited, not returned: one call may return none while not done.
  std::multiset<std::string> seen;
  int empty_batches = 0;
  std::string cursor = "0";
  do {
    const size_t before = seen.size();
    cursor = ScanOnce(cursor, &seen, {"MATCH", "item:1?", "COUNT", "3"});
    if (seen.size() == before && cursor != "0") ++empty_batches;
  } while (cursor != "0");
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_GT(empty_batches, 0);
  EXPECT_EQ(ScanAll({"MATCH", "*"}).size(), 200u);
  // An empty pattern matches only the empty key; the last MATCH given wins.
  EXPECT_EQ(ScanAll({"MATCH", ""}).size(), 0u);
  Put("", "v");
  EXPECT_EQ(ScanAll({"MATCH", ""}), (std::multiset<std::string>{""}));
  EXPECT_EQ(ScanAll({"MATCH", "", "MATCH", "user:1"}), (std::multiset<std::string>{"user:1"}));
}

TEST_F(RedisKeysScanTest, TypeFilter) {
  for (int i = 0; i < 20; ++i) Put("k" + std::to_string(i), "v");
  EXPECT_EQ(ScanAll({"TYPE", "string"}).size(), 20u);
  EXPECT_EQ(ScanAll({"type", "STRING", "count", "3"}).size(), 20u);
  EXPECT_EQ(ScanAll({"TYPE", "hash"}).size(), 0u);
  EXPECT_EQ(ScanAll({"TYPE", "nosuchtype"}).size(), 0u);
}

TEST_F(RedisKeysScanTest, SkipsExpiredKeys) {
  Put("live", "v");
  Put("dead", "v", kNow - 1);
  Put("later", "v", kNow + 1);
  EXPECT_EQ(ScanAll({}), (std::multiset<std::string>{"later", "live"}));
}

TEST_F(RedisKeysScanTest, EmptyAndPastTheEnd) {
  EXPECT_EQ(R({"scan", "0"}), "[$0 []]");
  Put("a", "v");
  EXPECT_EQ(R({"scan", "18446744073709551615"}), "[$0 []]");
  EXPECT_EQ(R({"scan", "0"}), "[$0 [$a]]");
  EXPECT_EQ(R({"scan", "000"}), "[$0 [$a]]");
}

TEST_F(RedisKeysScanTest, Errors) {
  EXPECT_EQ(R({"scan", "x"}), "-ERR invalid cursor");
  EXPECT_EQ(R({"scan", "-1"}), "-ERR invalid cursor");
  EXPECT_EQ(R({"scan", ""}), "-ERR invalid cursor");
  EXPECT_EQ(R({"scan", "18446744073709551616"}), "-ERR invalid cursor");
  EXPECT_EQ(R({"scan", "1x"}), "-ERR invalid cursor");
  EXPECT_EQ(R({"scan", "0", "COUNT", "0"}), "-ERR syntax error");
  EXPECT_EQ(R({"scan", "0", "COUNT", "-3"}), "-ERR syntax error");
  EXPECT_EQ(R({"scan", "0", "COUNT", "many"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(R({"scan", "0", "COUNT"}), "-ERR syntax error");
  EXPECT_EQ(R({"scan", "0", "MATCH"}), "-ERR syntax error");
  EXPECT_EQ(R({"scan", "0", "BOGUS", "1"}), "-ERR syntax error");
  EXPECT_EQ(R({"scan"}), "-ERR wrong number of arguments for 'scan' command");
  // The cursor is checked before the options.
  EXPECT_EQ(R({"scan", "x", "COUNT", "0"}), "-ERR invalid cursor");
}

// ---- RANDOMKEY ----

TEST_F(RedisKeysTest, RandomKey) {
  EXPECT_EQ(R({"randomkey"}), "(nil)");
  std::set<std::string> keys;
  for (int i = 0; i < 50; ++i) {
    keys.insert("k" + std::to_string(i));
    Put("k" + std::to_string(i), "v");
  }
  std::set<std::string> picked;
  for (uint64_t i = 0; i < 400; ++i) {
    ctx_.random = i * 0x9e3779b97f4a7c15ull;
    const Reply r = ExecuteRedisRead(ks_, {"RANDOMKEY"}, ctx_);
    ASSERT_EQ(r.type, ReplyType::kBulk);
    EXPECT_EQ(keys.count(*r.value), 1u);
    picked.insert(*r.value);
  }
  EXPECT_GT(picked.size(), 20u);  // spread over the keyspace, not stuck on one key
  // Past the last position: wraps around to the first key.
  ctx_.random = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(R({"randomkey"}), "$" + ks_.map().begin()->first.bytes);
  EXPECT_EQ(R({"randomkey", "x"}), "-ERR wrong number of arguments for 'randomkey' command");
}

TEST_F(RedisKeysTest, RandomKeySkipsExpiredKeys) {
  for (int i = 0; i < 20; ++i) Put("dead" + std::to_string(i), "v", kNow - 1);
  Put("live", "v");
  for (uint64_t i = 0; i < 50; ++i) {
    ctx_.random = i * 0x9e3779b97f4a7c15ull;
    EXPECT_EQ(R({"randomkey"}), "$live");
  }
  Apply({"del", "live"});
  EXPECT_EQ(R({"randomkey"}), "(nil)");  // only expired keys left
}

// ---- EXPIRE family ----

TEST_F(RedisKeysTest, ExpireSetsRelativeAndAbsoluteTimes) {
  Put("k", "v");
  EXPECT_EQ(W({"expire", "k", "100"}), ":1");
  EXPECT_EQ(ExpireOf("k"), kNow + 100'000);
  EXPECT_EQ(W({"pexpire", "k", "1500"}), ":1");
  EXPECT_EQ(ExpireOf("k"), kNow + 1500);
  EXPECT_EQ(W({"expireat", "k", std::to_string(kNow / 1000 + 60)}), ":1");
  EXPECT_EQ(ExpireOf("k"), kNow + 60'000);
  EXPECT_EQ(W({"pexpireat", "k", std::to_string(kNow + 7)}), ":1");
  EXPECT_EQ(ExpireOf("k"), kNow + 7);
  EXPECT_EQ(ks_.expires_count(), 1u);
  EXPECT_EQ(W({"expire", "missing", "100"}), ":0");
  EXPECT_EQ(ValueOf("missing"), "(absent)");
}

TEST_F(RedisKeysTest, ExpireInThePastDeletes) {
  for (const char* k : {"a", "b", "c", "d", "e", "f"}) Put(k, "v");
  EXPECT_EQ(W({"expire", "a", "0"}), ":1");
  EXPECT_EQ(W({"expire", "b", "-10"}), ":1");
  EXPECT_EQ(W({"pexpire", "c", "0"}), ":1");
  EXPECT_EQ(W({"expireat", "d", "1"}), ":1");
  EXPECT_EQ(W({"pexpireat", "e", std::to_string(kNow)}), ":1");  // exactly now is past
  EXPECT_EQ(W({"pexpireat", "f", std::to_string(kNow + 1)}), ":1");
  for (const char* k : {"a", "b", "c", "d", "e"}) {
    EXPECT_EQ(ks_.FindRaw(k), nullptr) << k;
  }
  EXPECT_EQ(ValueOf("f"), "v");
  EXPECT_EQ(ks_.expires_count(), 1u);
}

TEST_F(RedisKeysTest, ExpireOnExpiredKeyDeletesItAndReturnsZero) {
  Put("k", "v", kNow - 1);
  EXPECT_EQ(W({"expire", "k", "100"}), ":0");
  EXPECT_EQ(ks_.FindRaw("k"), nullptr);
}

TEST_F(RedisKeysTest, ExpireErrors) {
  Put("k", "v");
  EXPECT_EQ(W({"expire", "k", "abc"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(W({"expire", "k", "1.5"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(W({"expire", "k", " 1"}), "-ERR value is not an integer or out of range");
  EXPECT_EQ(W({"expire", "k", "99999999999999999999"}),
            "-ERR value is not an integer or out of range");
  EXPECT_EQ(W({"expire", "k", "9223372036854775807"}),
            "-ERR invalid expire time in 'expire' command");
  EXPECT_EQ(W({"expire", "k", "-9223372036854775808"}),
            "-ERR invalid expire time in 'expire' command");
  EXPECT_EQ(W({"EXPIREAT", "k", "9223372036854775807"}),
            "-ERR invalid expire time in 'expireat' command");
  EXPECT_EQ(W({"pexpire", "k", "9223372036854775807"}),
            "-ERR invalid expire time in 'pexpire' command");
  EXPECT_EQ(W({"expire", "k", "10", "bogus"}), "-ERR Unsupported option bogus");
  EXPECT_EQ(W({"expire", "k"}), "-ERR wrong number of arguments for 'expire' command");
  EXPECT_EQ(W({"pexpireat", "k"}), "-ERR wrong number of arguments for 'pexpireat' command");
  // PEXPIREAT takes the largest absolute time there is.
  EXPECT_EQ(W({"pexpireat", "k", "9223372036854775807"}), ":1");
  EXPECT_EQ(ExpireOf("k"), std::numeric_limits<int64_t>::max());
}

TEST_F(RedisKeysTest, ExpireIncompatibleFlags) {
  Put("k", "v");
  const std::string nx = "-ERR NX and XX, GT or LT options at the same time are not compatible";
  const std::string gtlt = "-ERR GT and LT options at the same time are not compatible";
  EXPECT_EQ(W({"expire", "k", "10", "nx", "xx"}), nx);
  EXPECT_EQ(W({"expire", "k", "10", "NX", "GT"}), nx);
  EXPECT_EQ(W({"expire", "k", "10", "lt", "nx"}), nx);
  EXPECT_EQ(W({"expire", "k", "10", "gt", "lt"}), gtlt);
  // Options are checked before the time.
  EXPECT_EQ(W({"expire", "k", "abc", "gt", "lt"}), gtlt);
  EXPECT_EQ(ExpireOf("k"), 0);
  // XX with GT or LT is fine; repeated flags too.
  EXPECT_EQ(W({"expire", "k", "10", "xx", "gt"}), ":0");
  EXPECT_EQ(W({"expire", "k", "10", "nx", "nx"}), ":1");
}

TEST_F(RedisKeysTest, ExpireFlagsOnPersistentKey) {
  struct Case {
    const char* flag;
    const char* reply;
  };
  // A persistent key: NX sets, XX does not, GT never (infinite TTL), LT always.
  for (const Case& c : {Case{"NX", ":1"}, Case{"XX", ":0"}, Case{"GT", ":0"}, Case{"LT", ":1"}}) {
    Put("k", "v");
    EXPECT_EQ(W({"expire", "k", "100", c.flag}), c.reply) << c.flag;
    EXPECT_EQ(ExpireOf("k"), std::string(c.reply) == ":1" ? kNow + 100'000 : 0) << c.flag;
  }
}

TEST_F(RedisKeysTest, ExpireFlagsOnVolatileKey) {
  struct Case {
    const char* flag;
    int64_t seconds;
    const char* reply;
  };
  // Current TTL 100 s.
  const Case cases[] = {
      {"NX", 200, ":0"}, {"XX", 200, ":1"}, {"XX", 50, ":1"},  {"GT", 200, ":1"}, {"GT", 100, ":0"},
      {"GT", 50, ":0"},  {"LT", 50, ":1"},  {"LT", 100, ":0"}, {"LT", 200, ":0"},
  };
  for (const Case& c : cases) {
    Put("k", "v", kNow + 100'000);
    EXPECT_EQ(W({"expire", "k", std::to_string(c.seconds), c.flag}), c.reply)
        << c.flag << " " << c.seconds;
    const int64_t want = std::string(c.reply) == ":1" ? kNow + c.seconds * 1000 : kNow + 100'000;
    EXPECT_EQ(ExpireOf("k"), want) << c.flag << " " << c.seconds;
  }
  // XX GT together: both must hold.
  Put("k", "v", kNow + 100'000);
  EXPECT_EQ(W({"expire", "k", "200", "XX", "GT"}), ":1");
  EXPECT_EQ(W({"expire", "k", "150", "XX", "GT"}), ":0");
}

TEST_F(RedisKeysTest, ExpireFlagsWithPastTime) {
  // LT on a persistent key with a past time: the condition holds, so the key is deleted.
  Put("a", "v");
  EXPECT_EQ(W({"expire", "a", "-1", "LT"}), ":1");
  EXPECT_EQ(ks_.FindRaw("a"), nullptr);
  // GT never applies to a persistent key, past time or not.
  Put("b", "v");
  EXPECT_EQ(W({"expire", "b", "-1", "GT"}), ":0");
  EXPECT_EQ(ValueOf("b"), "v");
  // XX on a persistent key: nothing happens, even with a past time.
  EXPECT_EQ(W({"pexpire", "b", "-1", "XX"}), ":0");
  EXPECT_EQ(ValueOf("b"), "v");
}

// ---- TTL family ----

TEST_F(RedisKeysTest, TtlAndPttl) {
  EXPECT_EQ(R({"ttl", "missing"}), ":-2");
  EXPECT_EQ(R({"pttl", "missing"}), ":-2");
  Put("p", "v");
  EXPECT_EQ(R({"ttl", "p"}), ":-1");
  EXPECT_EQ(R({"pttl", "p"}), ":-1");
  Put("v", "v", kNow + 1499);
  EXPECT_EQ(R({"ttl", "v"}), ":1");  // rounds to nearest, as Redis's (ms+500)/1000
  EXPECT_EQ(R({"pttl", "v"}), ":1499");
  Put("v", "v", kNow + 1500);
  EXPECT_EQ(R({"ttl", "v"}), ":2");
  Put("v", "v", kNow + 499);
  EXPECT_EQ(R({"ttl", "v"}), ":0");
  Put("v", "v", kNow + 1);
  EXPECT_EQ(R({"pttl", "v"}), ":1");
  Put("gone", "v", kNow);
  EXPECT_EQ(R({"ttl", "gone"}), ":-2");
  EXPECT_EQ(R({"ttl"}), "-ERR wrong number of arguments for 'ttl' command");
  EXPECT_EQ(R({"pttl", "a", "b"}), "-ERR wrong number of arguments for 'pttl' command");
}

TEST_F(RedisKeysTest, ExpireTimeAndPExpireTime) {
  EXPECT_EQ(R({"expiretime", "missing"}), ":-2");
  EXPECT_EQ(R({"pexpiretime", "missing"}), ":-2");
  Put("p", "v");
  EXPECT_EQ(R({"expiretime", "p"}), ":-1");
  EXPECT_EQ(R({"pexpiretime", "p"}), ":-1");
  EXPECT_EQ(W({"expireat", "p", "1800000000"}), ":1");
  EXPECT_EQ(R({"expiretime", "p"}), ":1800000000");
  EXPECT_EQ(R({"pexpiretime", "p"}), ":1800000000000");
  EXPECT_EQ(W({"pexpireat", "p", "1800000000499"}), ":1");
  EXPECT_EQ(R({"expiretime", "p"}), ":1800000000");
  EXPECT_EQ(R({"pexpiretime", "p"}), ":1800000000499");
  EXPECT_EQ(R({"expiretime"}), "-ERR wrong number of arguments for 'expiretime' command");
}

TEST_F(RedisKeysTest, TtlOfTheLargestExpiryDoesNotOverflow) {
  Put("k", "v", std::numeric_limits<int64_t>::max());
  EXPECT_EQ(R({"expiretime", "k"}),
            ":" + std::to_string(std::numeric_limits<int64_t>::max() / 1000 + 1));
  EXPECT_EQ(R({"pexpiretime", "k"}), ":9223372036854775807");
}

TEST_F(RedisKeysTest, Persist) {
  Put("v", "x", kNow + 1000);
  Put("p", "x");
  EXPECT_EQ(W({"persist", "v"}), ":1");
  EXPECT_EQ(R({"ttl", "v"}), ":-1");
  EXPECT_EQ(ks_.expires_count(), 0u);
  EXPECT_EQ(W({"persist", "v"}), ":0");
  EXPECT_EQ(W({"persist", "p"}), ":0");
  EXPECT_EQ(W({"persist", "missing"}), ":0");
  Put("old", "x", kNow - 1);
  EXPECT_EQ(W({"persist", "old"}), ":0");
  EXPECT_EQ(ks_.FindRaw("old"), nullptr);
  EXPECT_EQ(W({"persist"}), "-ERR wrong number of arguments for 'persist' command");
}

TEST_F(RedisKeysTest, ExpiryChangesStampTheKeyVersion) {
  Put("k", "v");
  const LogIndex before = ks_.VersionOf("k", kNow);
  EXPECT_EQ(W({"expire", "k", "100"}), ":1");
  const LogIndex after = ks_.VersionOf("k", kNow);
  EXPECT_GT(after.value(), before.value());
  EXPECT_EQ(W({"expire", "k", "100", "NX"}), ":0");  // refused: no change
  EXPECT_EQ(ks_.VersionOf("k", kNow), after);
}

// ---- DBSIZE, FLUSHDB, FLUSHALL ----

TEST_F(RedisKeysTest, DbSize) {
  EXPECT_EQ(R({"dbsize"}), ":0");
  Put("a", "1");
  Put("b", "1");
  Put("old", "1", kNow - 1);  // stored until deleted, as Redis counts it
  EXPECT_EQ(R({"DBSIZE"}), ":3");
  EXPECT_EQ(R({"dbsize", "x"}), "-ERR wrong number of arguments for 'dbsize' command");
}

TEST_F(RedisKeysTest, FlushAllAndFlushDb) {
  for (int i = 0; i < 10; ++i) Put("k" + std::to_string(i), "v", i % 2 == 0 ? 0 : kNow + 1000);
  EXPECT_EQ(W({"flushall"}), "+OK");
  EXPECT_EQ(ks_.size(), 0u);
  EXPECT_EQ(ks_.expires_count(), 0u);
  EXPECT_EQ(R({"dbsize"}), ":0");
  Put("a", "1");
  EXPECT_EQ(W({"FLUSHDB", "ASYNC"}), "+OK");
  EXPECT_EQ(ks_.size(), 0u);
  Put("a", "1");
  EXPECT_EQ(W({"flushall", "sync"}), "+OK");
  EXPECT_EQ(ks_.size(), 0u);
  Put("a", "1");
  EXPECT_EQ(W({"flushall", "later"}), "-ERR syntax error");
  EXPECT_EQ(W({"flushdb", "async", "sync"}), "-ERR syntax error");
  EXPECT_EQ(ValueOf("a"), "1");
  EXPECT_EQ(ks_.flush_index(), LogIndex(index_ - 3));
}

// ---- registration and robustness ----

TEST_F(RedisKeysTest, CommandsAreRegisteredAsReadsOrWrites) {
  const char* reads[] = {"exists", "type", "keys",       "scan",        "randomkey", "touch",
                         "ttl",    "pttl", "expiretime", "pexpiretime", "dbsize"};
  const char* writes[] = {"del",     "unlink",   "rename",    "renamenx", "copy",    "expire",
                          "pexpire", "expireat", "pexpireat", "persist",  "flushdb", "flushall"};
  for (const char* name : reads) {
    const RedisCommand* c = FindRedisCommand(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_NE(c->read, nullptr) << name;
  }
  for (const char* name : writes) {
    const RedisCommand* c = FindRedisCommand(name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_NE(c->write, nullptr) << name;
  }
  EXPECT_EQ(FindRedisCommand("copy")->arity, -3);
  EXPECT_EQ(FindRedisCommand("rename")->arity, 3);
  EXPECT_EQ(FindRedisCommand("scan")->arity, -2);
  EXPECT_EQ(FindRedisCommand("expire")->arity, -3);
  EXPECT_EQ(FindRedisCommand("flushall")->arity, -1);
  EXPECT_EQ(FindRedisCommand("randomkey")->arity, 1);
}

// argv comes from a replicated log: calling the functions directly with any argument count
// (bypassing the arity check) gives a reply, never a crash.
TEST_F(RedisKeysTest, AnyArgvIsSafe) {
  const char* names[] = {
      "del",  "unlink",     "exists",      "type",    "rename",  "renamenx", "copy",      "keys",
      "scan", "randomkey",  "touch",       "expire",  "pexpire", "expireat", "pexpireat", "ttl",
      "pttl", "expiretime", "pexpiretime", "persist", "dbsize",  "flushdb",  "flushall"};
  const std::string words[] = {"k", "0", "-1", "nx", "db", "count", "match", "type", "[", "\\"};
  for (const char* name : names) {
    const RedisCommand* c = FindRedisCommand(name);
    ASSERT_NE(c, nullptr) << name;
    for (size_t n = 0; n <= 6; ++n) {
      for (size_t w = 0; w < std::size(words); ++w) {
        Put("k", "v", kNow + 1000);
        Args argv;
        if (n > 0) argv.push_back(name);
        for (size_t i = 1; i < n; ++i) argv.push_back(words[(w + i) % std::size(words)]);
        ks_.set_index(LogIndex(++index_));
        const Reply r = c->write != nullptr ? c->write(ks_, argv, ctx_) : c->read(ks_, argv, ctx_);
        EXPECT_NE(r.type, ReplyType::kNone) << name << " argc " << n;
      }
    }
  }
}

}  // namespace
}  // namespace synod::kv
