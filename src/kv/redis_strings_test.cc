// Tests of Redis's string commands (redis_strings.cc) against the behaviour Redis 7 documents.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kv/keyspace.h"
#include "kv/redis.h"
#include "kv/redis_test_util.h"

namespace synod::kv {
namespace {

using testing::ShowReply;

class RedisStringsTest : public ::testing::Test {
 protected:
  static constexpr int64_t kNow = 1000000;

  // A write at the next log index, at the current time.
  std::string W(const Args& argv) {
    ks_.set_index(LogIndex(++index_));
    return ShowReply(ExecuteRedis(ks_, argv, ctx_));
  }
  // A read command on the read path.
  std::string R(const Args& argv) { return ShowReply(ExecuteRedisRead(ks_, argv, ctx_)); }

  const Value* Find(const std::string& key) const { return ks_.Find(key, ctx_.now_ms); }
  int64_t ExpireOf(const std::string& key) const {
    const Value* v = Find(key);
    return v == nullptr ? -1 : v->expire_ms;
  }
  LogIndex VersionOf(const std::string& key) const {
    const Value* v = Find(key);
    return v == nullptr ? LogIndex() : v->version;
  }

  Keyspace ks_;
  ExecContext ctx_{.now_ms = kNow};
  uint64_t index_ = 0;
};

constexpr const char* kSyntax = "-ERR syntax error";
constexpr const char* kNotInt = "-ERR value is not an integer or out of range";
constexpr const char* kTooLarge = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)";

TEST_F(RedisStringsTest, GetAndSetBasics) {
  EXPECT_EQ(R({"get", "k"}), "(nil)");
  EXPECT_EQ(W({"SET", "k", "v"}), "+OK");
  EXPECT_EQ(R({"GET", "k"}), "\"v\"");
  EXPECT_EQ(W({"set", "k", ""}), "+OK");
  EXPECT_EQ(R({"get", "k"}), "\"\"");
  EXPECT_EQ(VersionOf("k"), LogIndex(2));
  const std::string binary("a\0b\xff", 4);
  EXPECT_EQ(W({"set", binary, binary}), "+OK");
  EXPECT_EQ(Find(binary)->bytes, binary);
  // Arity is Redis's: GET exactly 2, SET at least 3.
  EXPECT_EQ(R({"get"}), "-ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(R({"get", "a", "b"}), "-ERR wrong number of arguments for 'get' command");
  EXPECT_EQ(W({"set", "k"}), "-ERR wrong number of arguments for 'set' command");
}

TEST_F(RedisStringsTest, SetNxXxGet) {
  EXPECT_EQ(W({"set", "k", "1", "XX"}), "(nil)");
  EXPECT_EQ(Find("k"), nullptr);
  EXPECT_EQ(W({"set", "k", "1", "nx"}), "+OK");
  EXPECT_EQ(W({"set", "k", "2", "NX"}), "(nil)");
  EXPECT_EQ(R({"get", "k"}), "\"1\"");
  EXPECT_EQ(W({"set", "k", "3", "xx"}), "+OK");
  EXPECT_EQ(R({"get", "k"}), "\"3\"");
  // GET returns the old value (or nil) instead of OK.
  EXPECT_EQ(W({"set", "k", "4", "GET"}), "\"3\"");
  EXPECT_EQ(W({"set", "new", "x", "get"}), "(nil)");
  EXPECT_EQ(R({"get", "new"}), "\"x\"");
  // Redis 7 allows NX with GET: the old value, and nothing set when the key exists.
  EXPECT_EQ(W({"set", "k", "5", "NX", "GET"}), "\"4\"");
  EXPECT_EQ(R({"get", "k"}), "\"4\"");
  EXPECT_EQ(W({"set", "nx2", "v", "GET", "NX"}), "(nil)");
  EXPECT_EQ(R({"get", "nx2"}), "\"v\"");
  // XX GET on a missing key: nil and still missing.
  EXPECT_EQ(W({"set", "missing", "v", "XX", "GET"}), "(nil)");
  EXPECT_EQ(Find("missing"), nullptr);
  // Repeating a flag is allowed; NX with XX is not.
  EXPECT_EQ(W({"set", "k", "6", "xx", "xx"}), "+OK");
  EXPECT_EQ(W({"set", "k", "7", "NX", "XX"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "7", "XX", "NX"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "7", "bogus"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "7", "nxx"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "7", "PERSIST"}), kSyntax);  // GETEX's option only
  EXPECT_EQ(R({"get", "k"}), "\"6\"");
}

TEST_F(RedisStringsTest, SetExpireOptions) {
  EXPECT_EQ(W({"set", "ex", "v", "EX", "10"}), "+OK");
  EXPECT_EQ(ExpireOf("ex"), kNow + 10000);
  EXPECT_EQ(W({"set", "px", "v", "px", "1500"}), "+OK");
  EXPECT_EQ(ExpireOf("px"), kNow + 1500);
  EXPECT_EQ(W({"set", "exat", "v", "exat", "2000"}), "+OK");
  EXPECT_EQ(ExpireOf("exat"), 2000000);
  EXPECT_EQ(W({"set", "pxat", "v", "PXAT", "1234567"}), "+OK");
  EXPECT_EQ(ExpireOf("pxat"), 1234567);
  // The same expire option twice: the last one wins.
  EXPECT_EQ(W({"set", "twice", "v", "ex", "10", "EX", "20"}), "+OK");
  EXPECT_EQ(ExpireOf("twice"), kNow + 20000);
  // Options combine in any order.
  EXPECT_EQ(W({"set", "ex", "w", "GET", "XX", "PX", "100"}), "\"v\"");
  EXPECT_EQ(ExpireOf("ex"), kNow + 100);
  // A plain SET drops the TTL.
  EXPECT_EQ(W({"set", "px", "w"}), "+OK");
  EXPECT_EQ(ExpireOf("px"), 0);

  // Keys vanish once their time has come, for readers and writers.
  ctx_.now_ms = kNow + 100;
  EXPECT_EQ(R({"get", "ex"}), "(nil)");
  EXPECT_EQ(Find("ex"), nullptr);
  EXPECT_EQ(W({"set", "ex", "again", "XX"}), "(nil)");  // expired counts as missing
  EXPECT_EQ(ks_.FindRaw("ex"), nullptr);                // and the write deleted it
  EXPECT_EQ(R({"get", "twice"}), "\"v\"");
  ctx_.now_ms = kNow + 20000;
  EXPECT_EQ(R({"get", "twice"}), "(nil)");
  EXPECT_EQ(R({"get", "px"}), "\"w\"");
}

TEST_F(RedisStringsTest, SetKeepTtl) {
  EXPECT_EQ(W({"set", "k", "1", "PX", "5000"}), "+OK");
  EXPECT_EQ(W({"set", "k", "2", "KEEPTTL"}), "+OK");
  EXPECT_EQ(ExpireOf("k"), kNow + 5000);
  EXPECT_EQ(R({"get", "k"}), "\"2\"");
  EXPECT_EQ(W({"set", "fresh", "1", "keepttl"}), "+OK");
  EXPECT_EQ(ExpireOf("fresh"), 0);
  EXPECT_EQ(W({"set", "k", "3", "KEEPTTL", "GET", "XX"}), "\"2\"");
  EXPECT_EQ(ExpireOf("k"), kNow + 5000);
  // KEEPTTL conflicts with every expire option, in either order.
  EXPECT_EQ(W({"set", "k", "v", "KEEPTTL", "EX", "10"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "PX", "10", "KEEPTTL"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "keepttl", "exat", "10"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "pxat", "10", "keepttl"}), kSyntax);
}

TEST_F(RedisStringsTest, SetExpireErrors) {
  // Two different expire options conflict.
  EXPECT_EQ(W({"set", "k", "v", "EX", "10", "PX", "10"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "PX", "10", "EXAT", "10"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "EXAT", "10", "PXAT", "10"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "PXAT", "10", "EX", "10"}), kSyntax);
  // An expire option without its value.
  EXPECT_EQ(W({"set", "k", "v", "EX"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "NX", "PX"}), kSyntax);
  // A syntax error is reported before a bad number.
  EXPECT_EQ(W({"set", "k", "v", "EX", "abc", "bogus"}), kSyntax);
  EXPECT_EQ(W({"set", "k", "v", "EX", "abc"}), kNotInt);
  EXPECT_EQ(W({"set", "k", "v", "EX", "1.5"}), kNotInt);
  EXPECT_EQ(W({"set", "k", "v", "EX", " 1"}), kNotInt);
  const std::string invalid = "-ERR invalid expire time in 'set' command";
  EXPECT_EQ(W({"set", "k", "v", "EX", "0"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "PX", "-1"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "EXAT", "0"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "PXAT", "-5"}), invalid);
  // Seconds that overflow when turned into ms, and relative times that overflow with now.
  EXPECT_EQ(W({"set", "k", "v", "EX", "9223372036854775"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "EXAT", "9223372036854776"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "PX", "9223372036854775807"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "PX", "9223372036853775808"}), invalid);
  EXPECT_EQ(W({"set", "k", "v", "PX", "9223372036853775807"}), "+OK");  // now + ms == INT64_MAX
  EXPECT_EQ(ExpireOf("k"), INT64_MAX);
  EXPECT_EQ(W({"set", "k2", "v", "PXAT", "9223372036854775807"}), "+OK");
  EXPECT_EQ(W({"set", "k3", "v", "EXAT", "9223372036854775"}), "+OK");
  EXPECT_EQ(ExpireOf("k3"), 9223372036854775000);
  EXPECT_EQ(W({"set", "bad", "v", "EX", "0"}), invalid);
  EXPECT_EQ(Find("bad"), nullptr);  // nothing stored on an error
}

TEST_F(RedisStringsTest, SetWithPastAbsoluteTimeDeletes) {
  EXPECT_EQ(W({"set", "k", "old"}), "+OK");
  EXPECT_EQ(W({"set", "k", "new", "PXAT", "1"}), "+OK");
  EXPECT_EQ(ks_.FindRaw("k"), nullptr);
  EXPECT_EQ(ks_.VersionOf("k", kNow), LogIndex(2));  // the deletion is a change (WATCH)
  EXPECT_EQ(W({"set", "k", "x"}), "+OK");
  EXPECT_EQ(W({"set", "k", "y", "EXAT", "1000", "GET"}), "\"x\"");  // == now: expired
  EXPECT_EQ(ks_.FindRaw("k"), nullptr);
  EXPECT_EQ(W({"set", "absent", "y", "PXAT", "999999"}), "+OK");
  EXPECT_EQ(ks_.FindRaw("absent"), nullptr);
  EXPECT_EQ(ks_.size(), 0u);
}

TEST_F(RedisStringsTest, SetLimits) {
  ctx_.value_bytes_max = 4;
  ctx_.key_bytes_max = 3;
  EXPECT_EQ(W({"set", "k", "12345"}), kTooLarge);
  EXPECT_EQ(W({"set", "k", "1234"}), "+OK");
  EXPECT_EQ(W({"set", "long", "1"}), "-ERR key exceeds the maximum key size");
  EXPECT_EQ(W({"setnx", "long", "1"}), "-ERR key exceeds the maximum key size");
  EXPECT_EQ(W({"getset", "k", "12345"}), kTooLarge);
  EXPECT_EQ(W({"setex", "k", "10", "12345"}), kTooLarge);
  EXPECT_EQ(W({"mset", "a", "1", "b", "12345"}), kTooLarge);
  EXPECT_EQ(Find("a"), nullptr);  // MSET is all or nothing
  EXPECT_EQ(W({"mset", "a", "1", "long", "1"}), "-ERR key exceeds the maximum key size");
  EXPECT_EQ(W({"incr", "long"}), "-ERR key exceeds the maximum key size");
  EXPECT_EQ(R({"get", "k"}), "\"1234\"");
}

TEST_F(RedisStringsTest, SetNxSetExPSetEx) {
  EXPECT_EQ(W({"setnx", "k", "1"}), ":1");
  EXPECT_EQ(W({"SETNX", "k", "2"}), ":0");
  EXPECT_EQ(R({"get", "k"}), "\"1\"");
  EXPECT_EQ(W({"setnx", "k"}), "-ERR wrong number of arguments for 'setnx' command");

  EXPECT_EQ(W({"set", "e", "old", "px", "5"}), "+OK");
  EXPECT_EQ(W({"setex", "e", "10", "v"}), "+OK");
  EXPECT_EQ(ExpireOf("e"), kNow + 10000);
  EXPECT_EQ(R({"get", "e"}), "\"v\"");
  EXPECT_EQ(W({"psetex", "p", "250", "v"}), "+OK");
  EXPECT_EQ(ExpireOf("p"), kNow + 250);
  EXPECT_EQ(W({"setex", "e", "0", "v"}), "-ERR invalid expire time in 'setex' command");
  EXPECT_EQ(W({"setex", "e", "-10", "v"}), "-ERR invalid expire time in 'setex' command");
  EXPECT_EQ(W({"psetex", "p", "0", "v"}), "-ERR invalid expire time in 'psetex' command");
  EXPECT_EQ(W({"psetex", "p", "9223372036854775807", "v"}),
            "-ERR invalid expire time in 'psetex' command");
  EXPECT_EQ(W({"setex", "e", "ten", "v"}), kNotInt);
  EXPECT_EQ(W({"setex", "e", "10"}), "-ERR wrong number of arguments for 'setex' command");
  EXPECT_EQ(ExpireOf("e"), kNow + 10000);  // untouched by the failures
  ctx_.now_ms = kNow + 250;
  EXPECT_EQ(R({"get", "p"}), "(nil)");
  EXPECT_EQ(R({"get", "e"}), "\"v\"");
}

TEST_F(RedisStringsTest, GetSetGetDel) {
  EXPECT_EQ(W({"getset", "k", "1"}), "(nil)");
  EXPECT_EQ(W({"set", "k", "2", "EX", "100"}), "+OK");
  EXPECT_EQ(W({"getset", "k", "3"}), "\"2\"");
  EXPECT_EQ(ExpireOf("k"), 0);  // GETSET drops the TTL
  EXPECT_EQ(R({"get", "k"}), "\"3\"");

  EXPECT_EQ(W({"getdel", "k"}), "\"3\"");
  EXPECT_EQ(Find("k"), nullptr);
  EXPECT_EQ(W({"getdel", "k"}), "(nil)");
  EXPECT_EQ(W({"set", "t", "v", "PX", "10"}), "+OK");
  ctx_.now_ms = kNow + 10;
  EXPECT_EQ(W({"getdel", "t"}), "(nil)");
  EXPECT_EQ(ks_.FindRaw("t"), nullptr);
  EXPECT_EQ(W({"getdel", "a", "b"}), "-ERR wrong number of arguments for 'getdel' command");
}

TEST_F(RedisStringsTest, GetEx) {
  EXPECT_EQ(W({"getex", "missing", "EX", "10"}), "(nil)");
  EXPECT_EQ(W({"getex", "missing", "EX", "0"}), "(nil)");  // key looked up first
  EXPECT_EQ(W({"set", "k", "v"}), "+OK");
  const LogIndex set_at = VersionOf("k");
  EXPECT_EQ(W({"getex", "k"}), "\"v\"");
  EXPECT_EQ(VersionOf("k"), set_at);  // no option: no change
  EXPECT_EQ(W({"getex", "k", "EX", "10"}), "\"v\"");
  EXPECT_EQ(ExpireOf("k"), kNow + 10000);
  EXPECT_EQ(W({"getex", "k", "px", "20"}), "\"v\"");
  EXPECT_EQ(ExpireOf("k"), kNow + 20);
  EXPECT_EQ(W({"getex", "k", "EXAT", "5000"}), "\"v\"");
  EXPECT_EQ(ExpireOf("k"), 5000000);
  EXPECT_EQ(W({"getex", "k", "PXAT", "5000001"}), "\"v\"");
  EXPECT_EQ(ExpireOf("k"), 5000001);
  EXPECT_EQ(W({"getex", "k", "PERSIST"}), "\"v\"");
  EXPECT_EQ(ExpireOf("k"), 0);
  const LogIndex persisted_at = VersionOf("k");
  EXPECT_EQ(W({"getex", "k", "persist"}), "\"v\"");
  EXPECT_EQ(VersionOf("k"), persisted_at);  // already persistent: not a change

  // Errors.
  EXPECT_EQ(W({"getex", "k", "EX", "10", "PX", "10"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "EX", "10", "PERSIST"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "PERSIST", "PXAT", "10"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "KEEPTTL"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "NX"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "GET"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "EX"}), kSyntax);
  EXPECT_EQ(W({"getex", "k", "EX", "x"}), kNotInt);
  EXPECT_EQ(W({"getex", "k", "EX", "0"}), "-ERR invalid expire time in 'getex' command");
  EXPECT_EQ(W({"getex", "k", "PX", "9223372036854775807"}),
            "-ERR invalid expire time in 'getex' command");
  EXPECT_EQ(W({"getex"}), "-ERR wrong number of arguments for 'getex' command");
  EXPECT_EQ(ExpireOf("k"), 0);

  // A time in the past: the value is returned and the key deleted.
  EXPECT_EQ(W({"getex", "k", "EXAT", "1"}), "\"v\"");
  EXPECT_EQ(ks_.FindRaw("k"), nullptr);
  EXPECT_EQ(W({"set", "k", "w"}), "+OK");
  EXPECT_EQ(W({"getex", "k", "PXAT", "1000000"}), "\"w\"");  // == now
  EXPECT_EQ(ks_.FindRaw("k"), nullptr);

  // A key that expired is missing for GETEX too.
  EXPECT_EQ(W({"set", "t", "v", "PX", "5"}), "+OK");
  ctx_.now_ms = kNow + 5;
  EXPECT_EQ(W({"getex", "t", "PERSIST"}), "(nil)");
}

TEST_F(RedisStringsTest, MGetMSetMSetNx) {
  EXPECT_EQ(W({"mset", "a", "1", "b", "2", "a", "3"}), "+OK");  // the last pair wins
  EXPECT_EQ(R({"mget", "a", "b", "c"}), "[\"3\" \"2\" (nil)]");
  EXPECT_EQ(W({"mset", "a"}), "-ERR wrong number of arguments for 'mset' command");
  EXPECT_EQ(W({"mset", "a", "1", "b"}), "-ERR wrong number of arguments for 'mset' command");
  EXPECT_EQ(R({"mget"}), "-ERR wrong number of arguments for 'mget' command");
  EXPECT_EQ(W({"set", "t", "v", "EX", "10"}), "+OK");
  EXPECT_EQ(W({"mset", "t", "w"}), "+OK");
  EXPECT_EQ(ExpireOf("t"), 0);  // MSET drops TTLs like SET

  EXPECT_EQ(W({"msetnx", "x", "1", "a", "9"}), ":0");  // a exists: nothing set
  EXPECT_EQ(Find("x"), nullptr);
  EXPECT_EQ(R({"get", "a"}), "\"3\"");
  EXPECT_EQ(W({"msetnx", "x", "1", "y", "2"}), ":1");
  EXPECT_EQ(R({"mget", "x", "y"}), "[\"1\" \"2\"]");
  EXPECT_EQ(W({"msetnx", "x", "1", "y"}), "-ERR wrong number of arguments for 'msetnx' command");
  // An expired key does not block MSETNX.
  EXPECT_EQ(W({"set", "e", "v", "PX", "1"}), "+OK");
  ctx_.now_ms = kNow + 1;
  EXPECT_EQ(W({"msetnx", "e", "new", "z", "1"}), ":1");
  EXPECT_EQ(R({"mget", "e", "z"}), "[\"new\" \"1\"]");
  EXPECT_EQ(ExpireOf("e"), 0);
}

TEST_F(RedisStringsTest, IncrDecr) {
  EXPECT_EQ(W({"incr", "n"}), ":1");
  EXPECT_EQ(W({"incrby", "n", "41"}), ":42");
  EXPECT_EQ(W({"decr", "n"}), ":41");
  EXPECT_EQ(W({"decrby", "n", "50"}), ":-9");
  EXPECT_EQ(W({"incrby", "n", "-1"}), ":-10");
  EXPECT_EQ(R({"get", "n"}), "\"-10\"");
  EXPECT_EQ(W({"decr", "fresh"}), ":-1");
  // The TTL is kept.
  EXPECT_EQ(W({"set", "t", "5", "EX", "100"}), "+OK");
  EXPECT_EQ(W({"incr", "t"}), ":6");
  EXPECT_EQ(ExpireOf("t"), kNow + 100000);
  EXPECT_EQ(VersionOf("t"), LogIndex(index_));
  // Values and arguments parse like Redis's string2ll.
  for (const char* bad : {"", "abc", " 1", "1 ", "+1", "01", "-0", "1.0", "9223372036854775808"}) {
    EXPECT_EQ(W({"set", "s", bad}), "+OK");
    EXPECT_EQ(W({"incr", "s"}), kNotInt) << bad;
    EXPECT_EQ(W({"incrby", "n", bad}), kNotInt) << bad;
  }
  EXPECT_EQ(R({"get", "n"}), "\"-10\"");
  // Overflow edges.
  EXPECT_EQ(W({"set", "m", "9223372036854775807"}), "+OK");
  EXPECT_EQ(W({"incr", "m"}), "-ERR increment or decrement would overflow");
  EXPECT_EQ(W({"incrby", "m", "0"}), ":9223372036854775807");
  EXPECT_EQ(W({"decrby", "m", "-1"}), "-ERR increment or decrement would overflow");
  EXPECT_EQ(W({"set", "m", "-9223372036854775807"}), "+OK");
  EXPECT_EQ(W({"decr", "m"}), ":-9223372036854775808");
  EXPECT_EQ(W({"decr", "m"}), "-ERR increment or decrement would overflow");
  EXPECT_EQ(R({"get", "m"}), "\"-9223372036854775808\"");
  EXPECT_EQ(W({"incrby", "m", "9223372036854775807"}), ":-1");
  EXPECT_EQ(W({"decrby", "m", "-9223372036854775808"}), "-ERR decrement would overflow");
  EXPECT_EQ(W({"incrby", "z", "-9223372036854775808"}), ":-9223372036854775808");
  EXPECT_EQ(W({"incr"}), "-ERR wrong number of arguments for 'incr' command");
  EXPECT_EQ(W({"decrby", "m"}), "-ERR wrong number of arguments for 'decrby' command");
}

TEST_F(RedisStringsTest, IncrByFloat) {
  EXPECT_EQ(W({"set", "f", "10.50"}), "+OK");
  EXPECT_EQ(W({"incrbyfloat", "f", "0.1"}), "\"10.6\"");
  EXPECT_EQ(W({"incrbyfloat", "f", "-5"}), "\"5.6\"");
  EXPECT_EQ(W({"set", "f", "5.0e3"}), "+OK");
  EXPECT_EQ(W({"incrbyfloat", "f", "2.0e2"}), "\"5200\"");
  EXPECT_EQ(R({"get", "f"}), "\"5200\"");  // stored as the formatted text
  EXPECT_EQ(W({"incrbyfloat", "new", "3"}), "\"3\"");
  EXPECT_EQ(W({"incrbyfloat", "new", "-3"}), "\"0\"");
  EXPECT_EQ(W({"set", "i", "1", "EX", "100"}), "+OK");
  EXPECT_EQ(W({"incrbyfloat", "i", "0.5"}), "\"1.5\"");
  EXPECT_EQ(ExpireOf("i"), kNow + 100000);  // the TTL is kept
  const std::string not_float = "-ERR value is not a valid float";
  EXPECT_EQ(W({"incrbyfloat", "i", "abc"}), not_float);
  EXPECT_EQ(W({"incrbyfloat", "i", ""}), not_float);
  EXPECT_EQ(W({"incrbyfloat", "i", " 1"}), not_float);
  EXPECT_EQ(W({"incrbyfloat", "i", "nan"}), not_float);
  EXPECT_EQ(W({"set", "s", "x"}), "+OK");
  EXPECT_EQ(W({"incrbyfloat", "s", "1"}), not_float);
  const std::string nan_inf = "-ERR increment would produce NaN or Infinity";
  EXPECT_EQ(W({"incrbyfloat", "i", "inf"}), nan_inf);
  EXPECT_EQ(W({"set", "big", "1e4932"}), "+OK");
  EXPECT_EQ(W({"incrbyfloat", "big", "1e4932"}), nan_inf);
  EXPECT_EQ(R({"get", "i"}), "\"1.5\"");
  EXPECT_EQ(W({"incrbyfloat", "i"}), "-ERR wrong number of arguments for 'incrbyfloat' command");
  ctx_.value_bytes_max = 3;
  EXPECT_EQ(W({"incrbyfloat", "i", "0.25"}), kTooLarge);  // "1.75" is 4 bytes
}

TEST_F(RedisStringsTest, AppendStrLen) {
  EXPECT_EQ(R({"strlen", "k"}), ":0");
  EXPECT_EQ(W({"append", "k", "Hello"}), ":5");
  EXPECT_EQ(W({"append", "k", " World"}), ":11");
  EXPECT_EQ(R({"get", "k"}), "\"Hello World\"");
  EXPECT_EQ(R({"strlen", "k"}), ":11");
  EXPECT_EQ(W({"append", "k", ""}), ":11");
  EXPECT_EQ(W({"append", "e", ""}), ":0");
  EXPECT_EQ(R({"get", "e"}), "\"\"");  // APPEND creates even an empty string
  EXPECT_EQ(W({"set", "t", "a", "PX", "100"}), "+OK");
  EXPECT_EQ(W({"append", "t", "b"}), ":2");
  EXPECT_EQ(ExpireOf("t"), kNow + 100);
  ctx_.value_bytes_max = 12;
  EXPECT_EQ(W({"append", "k", "!"}), ":12");
  EXPECT_EQ(W({"append", "k", "!"}), kTooLarge);
  EXPECT_EQ(W({"append", "n", "1234567890123"}), kTooLarge);
  EXPECT_EQ(R({"strlen", "k"}), ":12");
  EXPECT_EQ(R({"strlen", "k", "x"}), "-ERR wrong number of arguments for 'strlen' command");
  EXPECT_EQ(W({"append", "k"}), "-ERR wrong number of arguments for 'append' command");
}

TEST_F(RedisStringsTest, GetRange) {
  EXPECT_EQ(W({"set", "mykey", "This is a string"}), "+OK");
  EXPECT_EQ(R({"getrange", "mykey", "0", "3"}), "\"This\"");
  EXPECT_EQ(R({"getrange", "mykey", "-3", "-1"}), "\"ing\"");
  EXPECT_EQ(R({"getrange", "mykey", "0", "-1"}), "\"This is a string\"");
  EXPECT_EQ(R({"getrange", "mykey", "10", "100"}), "\"string\"");
  EXPECT_EQ(R({"getrange", "mykey", "5", "3"}), "\"\"");
  EXPECT_EQ(R({"getrange", "mykey", "16", "20"}), "\"\"");
  EXPECT_EQ(R({"getrange", "mykey", "-1", "-3"}), "\"\"");
  EXPECT_EQ(R({"getrange", "mykey", "-100", "2"}), "\"Thi\"");
  EXPECT_EQ(R({"getrange", "mykey", "-200", "-3"}), "\"This is a stri\"");
  // Redis 7 clamps a negative end before the string to 0 (a documented quirk).
  EXPECT_EQ(R({"getrange", "mykey", "0", "-100"}), "\"T\"");
  EXPECT_EQ(R({"getrange", "mykey", "-200", "-100"}), "\"T\"");
  EXPECT_EQ(R({"getrange", "mykey", "1", "-100"}), "\"\"");
  EXPECT_EQ(R({"getrange", "mykey", "-100", "-200"}), "\"\"");
  EXPECT_EQ(R({"getrange", "mykey", "-9223372036854775808", "9223372036854775807"}),
            "\"This is a string\"");
  EXPECT_EQ(R({"getrange", "missing", "0", "-1"}), "\"\"");
  EXPECT_EQ(W({"set", "empty", ""}), "+OK");
  EXPECT_EQ(R({"getrange", "empty", "0", "-1"}), "\"\"");
  EXPECT_EQ(R({"getrange", "empty", "-1", "-1"}), "\"\"");
  EXPECT_EQ(R({"getrange", "mykey", "a", "1"}), kNotInt);
  EXPECT_EQ(R({"getrange", "missing", "0", "b"}), kNotInt);  // checked before the key
  EXPECT_EQ(R({"getrange", "mykey", "0"}), "-ERR wrong number of arguments for 'getrange' command");
}

TEST_F(RedisStringsTest, SetRange) {
  EXPECT_EQ(W({"set", "key1", "Hello World"}), "+OK");
  EXPECT_EQ(W({"setrange", "key1", "6", "Redis"}), ":11");
  EXPECT_EQ(R({"get", "key1"}), "\"Hello Redis\"");
  EXPECT_EQ(W({"setrange", "key2", "6", "Redis"}), ":11");
  EXPECT_EQ(Find("key2")->bytes, std::string("\0\0\0\0\0\0Redis", 11));
  // Growing an existing string pads with zero bytes.
  EXPECT_EQ(W({"setrange", "key1", "13", "!"}), ":14");
  EXPECT_EQ(Find("key1")->bytes, std::string("Hello Redis\0\0!", 14));
  // An empty value writes nothing: a missing key stays missing, whatever the offset.
  EXPECT_EQ(W({"setrange", "none", "5", ""}), ":0");
  EXPECT_EQ(ks_.FindRaw("none"), nullptr);
  EXPECT_EQ(W({"setrange", "key1", "99999999999", ""}), ":14");
  EXPECT_EQ(W({"setrange", "key1", "-1", "x"}), "-ERR offset is out of range");
  EXPECT_EQ(W({"setrange", "key1", "x", "x"}), kNotInt);
  // The TTL is kept.
  EXPECT_EQ(W({"set", "t", "abc", "EX", "10"}), "+OK");
  EXPECT_EQ(W({"setrange", "t", "1", "X"}), ":3");
  EXPECT_EQ(R({"get", "t"}), "\"aXc\"");
  EXPECT_EQ(ExpireOf("t"), kNow + 10000);
  // Size limit, overflow included.
  ctx_.value_bytes_max = 16;
  EXPECT_EQ(W({"setrange", "key1", "15", "ab"}), kTooLarge);
  EXPECT_EQ(W({"setrange", "key1", "15", "a"}), ":16");
  EXPECT_EQ(W({"setrange", "big", "16", "a"}), kTooLarge);
  EXPECT_EQ(W({"setrange", "big", "9223372036854775807", "a"}), kTooLarge);
  EXPECT_EQ(ks_.FindRaw("big"), nullptr);
  EXPECT_EQ(W({"setrange", "k", "1"}), "-ERR wrong number of arguments for 'setrange' command");
}

TEST_F(RedisStringsTest, LcsDocsExamples) {
  EXPECT_EQ(W({"mset", "key1", "ohmytext", "key2", "mynewtext"}), "+OK");
  EXPECT_EQ(R({"lcs", "key1", "key2"}), "\"mytext\"");
  EXPECT_EQ(R({"LCS", "key1", "key2", "LEN"}), ":6");
  EXPECT_EQ(R({"lcs", "key1", "key2", "IDX"}),
            "{\"matches\" [[[:4 :7] [:5 :8]] [[:2 :3] [:0 :1]]] \"len\" :6}");
  EXPECT_EQ(R({"lcs", "key1", "key2", "IDX", "MINMATCHLEN", "4"}),
            "{\"matches\" [[[:4 :7] [:5 :8]]] \"len\" :6}");
  EXPECT_EQ(R({"lcs", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"}),
            "{\"matches\" [[[:4 :7] [:5 :8] :4]] \"len\" :6}");
  EXPECT_EQ(R({"lcs", "key1", "key2", "withmatchlen", "idx"}),
            "{\"matches\" [[[:4 :7] [:5 :8] :4] [[:2 :3] [:0 :1] :2]] \"len\" :6}");

  // The exact structure: a map of two entries, ranges as two-integer arrays.
  const Reply r = ExecuteRedisRead(
      ks_, {"lcs", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"}, ctx_);
  ASSERT_EQ(r.type, ReplyType::kMap);
  ASSERT_EQ(r.replies.size(), 4u);
  EXPECT_EQ(r.replies[0], Reply::Bulk("matches"));
  EXPECT_EQ(r.replies[2], Reply::Bulk("len"));
  EXPECT_EQ(r.replies[3], Reply::Int(6));
  const Reply& matches = r.replies[1];
  ASSERT_EQ(matches.type, ReplyType::kArray);
  ASSERT_EQ(matches.replies.size(), 1u);
  EXPECT_EQ(matches.replies[0],
            Reply::Array({Reply::Array({Reply::Int(4), Reply::Int(7)}),
                          Reply::Array({Reply::Int(5), Reply::Int(8)}), Reply::Int(4)}));
}

TEST_F(RedisStringsTest, LcsEdgesAndErrors) {
  EXPECT_EQ(W({"mset", "a", "foo", "b", "fao", "e", ""}), "+OK");
  EXPECT_EQ(R({"lcs", "a", "b"}), "\"fo\"");
  EXPECT_EQ(R({"lcs", "a", "b", "idx"}),
            "{\"matches\" [[[:2 :2] [:2 :2]] [[:0 :0] [:0 :0]]] \"len\" :2}");
  // Missing keys are empty strings.
  EXPECT_EQ(R({"lcs", "a", "missing"}), "\"\"");
  EXPECT_EQ(R({"lcs", "missing", "e", "LEN"}), ":0");
  EXPECT_EQ(R({"lcs", "a", "e", "IDX"}), "{\"matches\" [] \"len\" :0}");
  EXPECT_EQ(R({"lcs", "a", "a"}), "\"foo\"");
  EXPECT_EQ(R({"lcs", "a", "a", "idx", "withmatchlen"}),
            "{\"matches\" [[[:0 :2] [:0 :2] :3]] \"len\" :3}");
  // A negative MINMATCHLEN counts as 0.
  EXPECT_EQ(R({"lcs", "a", "b", "idx", "minmatchlen", "-5"}),
            "{\"matches\" [[[:2 :2] [:2 :2]] [[:0 :0] [:0 :0]]] \"len\" :2}");
  EXPECT_EQ(R({"lcs", "a", "b", "idx", "minmatchlen", "2"}), "{\"matches\" [] \"len\" :2}");
  // MINMATCHLEN and WITHMATCHLEN without IDX change nothing.
  EXPECT_EQ(R({"lcs", "a", "b", "minmatchlen", "2", "withmatchlen"}), "\"fo\"");
  // Errors.
  EXPECT_EQ(R({"lcs", "a", "b", "LEN", "IDX"}),
            "-ERR If you want both the length and indexes, please just use IDX.");
  EXPECT_EQ(R({"lcs", "a", "b", "minmatchlen"}), kSyntax);
  EXPECT_EQ(R({"lcs", "a", "b", "minmatchlen", "x"}), kNotInt);
  EXPECT_EQ(R({"lcs", "a", "b", "bogus"}), kSyntax);
  EXPECT_EQ(R({"lcs", "a"}), "-ERR wrong number of arguments for 'lcs' command");
  // The table's transient memory is bounded by proto-max-bulk-len: (3+1)*(3+1)*4 = 64 bytes.
  ctx_.value_bytes_max = 63;
  EXPECT_EQ(R({"lcs", "a", "b"}),
            "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
  ctx_.value_bytes_max = 64;
  EXPECT_EQ(R({"lcs", "a", "b", "LEN"}), ":2");
  // An expired key is missing.
  ctx_.value_bytes_max = 1 << 20;
  EXPECT_EQ(W({"set", "t", "foo", "PX", "1"}), "+OK");
  EXPECT_EQ(R({"lcs", "a", "t"}), "\"foo\"");
  ctx_.now_ms = kNow + 1;
  EXPECT_EQ(R({"lcs", "a", "t"}), "\"\"");
}

TEST_F(RedisStringsTest, LcsLongerStrings) {
  // Several gaps: ranges come out from the end of the strings backwards.
  EXPECT_EQ(W({"mset", "x", "ABCBDAB", "y", "BDCABA"}), "+OK");
  EXPECT_EQ(R({"lcs", "x", "y", "len"}), ":4");
  EXPECT_EQ(R({"lcs", "x", "y"}), "\"BDAB\"");
  EXPECT_EQ(R({"lcs", "x", "y", "idx", "withmatchlen"}),
            "{\"matches\" [[[:5 :6] [:3 :4] :2] [[:3 :4] [:0 :1] :2]] \"len\" :4}");
  EXPECT_EQ(W({"mset", "p", "abcdefgh", "q", "xxabcxxxdefgh"}), "+OK");
  EXPECT_EQ(R({"lcs", "p", "q"}), "\"abcdefgh\"");
  EXPECT_EQ(R({"lcs", "p", "q", "idx", "withmatchlen"}),
            "{\"matches\" [[[:3 :7] [:8 :12] :5] [[:0 :2] [:2 :4] :3]] \"len\" :8}");
}

TEST_F(RedisStringsTest, CommandTableAndArity) {
  struct Expect {
    const char* name;
    int arity;
    bool write;
  };
  const Expect expected[] = {
      {"get", 2, false},     {"mget", -2, false},  {"strlen", 2, false},     {"getrange", 4, false},
      {"lcs", -3, false},    {"set", -3, true},    {"setnx", 3, true},       {"setex", 4, true},
      {"psetex", 4, true},   {"getset", 3, true},  {"getdel", 2, true},      {"getex", -2, true},
      {"mset", -3, true},    {"msetnx", -3, true}, {"incr", 2, true},        {"decr", 2, true},
      {"incrby", 3, true},   {"decrby", 3, true},  {"incrbyfloat", 3, true}, {"append", 3, true},
      {"setrange", 4, true},
  };
  for (const Expect& e : expected) {
    const RedisCommand* c = FindRedisCommand(e.name);
    ASSERT_NE(c, nullptr) << e.name;
    EXPECT_EQ(c->arity, e.arity) << e.name;
    EXPECT_EQ(c->write != nullptr, e.write) << e.name;
    // Called directly with any argv, a command answers with an error, never crashes.
    for (size_t n = 0; n <= 6; ++n) {
      Args argv(n, "1");
      if (n > 0) argv[0] = e.name;
      ks_.set_index(LogIndex(++index_));
      const Reply r = c->write != nullptr ? c->write(ks_, argv, ctx_) : c->read(ks_, argv, ctx_);
      EXPECT_NE(r.type, ReplyType::kNone) << e.name << " argc " << n;
    }
  }
}

// Found by fuzz/kv_fuzz (fuzz/kv_corpus/crash_incr_above_value_max): with a value_bytes_max
// below 20, DECRBY stored a 16-digit result above it, a value no snapshot would load. Counters
// now refuse a result longer than the limit, as the legacy INCR op does, and change nothing.
TEST_F(RedisStringsTest, CountersRespectValueLimit) {
  ctx_.value_bytes_max = 12;
  EXPECT_EQ(W({"decrby", "n", "-9223372036854770"}), kTooLarge);
  EXPECT_EQ(Find("n"), nullptr);
  EXPECT_EQ(W({"incrby", "n", "999999999999"}), ":999999999999");  // 12 digits fit
  EXPECT_EQ(W({"incr", "n"}), kTooLarge);
  EXPECT_EQ(R({"get", "n"}), "\"999999999999\"");
  EXPECT_EQ(VersionOf("n"), LogIndex(index_ - 1));
  EXPECT_EQ(W({"decrby", "n", "1999999999999"}), kTooLarge);  // "-1000000000000" is 14 bytes
  EXPECT_EQ(W({"decr", "n"}), ":999999999998");
  ctx_.value_bytes_max = 1;
  EXPECT_EQ(W({"incr", "m"}), ":1");
  EXPECT_EQ(W({"decrby", "m", "2"}), kTooLarge);  // "-1"
  EXPECT_EQ(R({"get", "m"}), "\"1\"");
}

}  // namespace
}  // namespace synod::kv
