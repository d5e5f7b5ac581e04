// Redis's string, key, expiry and transaction commands against a 3-node cluster, with Redis's
// behaviour as the specification: exact replies through hiredis (the harness's Redis), the real
// redis-cli, raw TCP (inline commands, RESP3, pipelining) and redis-py (python/). Every test
// writes through one node and reads through another; the cluster-level tests check that a TTL
// ends on every replica at the same logical moment, that MULTI/EXEC is atomic (also across a
// kill -9 of the leader) and that WATCH sees a write made through another node.
//
// Note: the installed hiredis (0.14) has no RESP3 parser, so RESP3 is checked over a raw socket.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

// ---- helpers ----

// Connections to every node that read their local replica (READONLY).
std::map<uint64_t, std::unique_ptr<Redis>> ConnectAllReadOnly(const TestCluster& c) {
  auto out = ConnectAll(c);
  for (auto& [id, r] : out) EXPECT_EQ(r->Command({"READONLY"}).ToString(), "OK") << "node " << id;
  return out;
}

std::string Q(const std::string& s) { return "\"" + s + "\""; }
std::string I(long long n) { return "(integer) " + std::to_string(n); }
std::string E(const std::string& text) { return "(error) " + text; }
std::string Arity(const std::string& cmd) {
  return E("ERR wrong number of arguments for '" + cmd + "' command");
}
const std::string kSyntax = E("ERR syntax error");
const std::string kNotInt = E("ERR value is not an integer or out of range");

// Whether `r` is an integer within [lo, hi]; prints the reply otherwise.
::testing::AssertionResult IntIn(const Reply& r, long long lo, long long hi) {
  if (r.type == REDIS_REPLY_INTEGER && r.integer >= lo && r.integer <= hi) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << r.ToString() << " is not an integer in [" << lo << ", " << hi << "]";
}

// The string elements of an array reply, sorted.
std::vector<std::string> SortedStrings(const Reply& r) {
  std::vector<std::string> out;
  for (const Reply& e : r.elements) out.push_back(e.str);
  std::sort(out.begin(), out.end());
  return out;
}

// The lines of a program's output, sorted.
std::vector<std::string> SortedLines(const std::string& out) {
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < out.size();) {
    const size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) break;
    lines.push_back(out.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t LeaderOrFail(const TestCluster& c) { return c.WaitForLeader(10000); }

// The ids ordered leader first, then the followers.
std::vector<uint64_t> LeaderFirst(const TestCluster& c, uint64_t leader) {
  std::vector<uint64_t> out = {leader};
  for (uint64_t id : c.ids()) {
    if (id != leader) out.push_back(id);
  }
  return out;
}

// keys=N of INFO keyspace's db0 line (0 when there is none, as Redis omits an empty db).
long long InfoKeys(Redis& r, long long* expires = nullptr) {
  const Reply info = r.Command({"INFO", "keyspace"});
  if (info.type != REDIS_REPLY_STRING) return -1;
  const size_t at = info.str.find("db0:keys=");
  if (expires != nullptr) *expires = 0;
  if (at == std::string::npos) return 0;
  const size_t e = info.str.find("expires=", at);
  if (expires != nullptr && e != std::string::npos) *expires = std::stoll(info.str.substr(e + 8));
  return std::stoll(info.str.substr(at + 9));
}

// A plain TCP connection to a node, for bytes hiredis would not send or could not parse.
class RawConn {
 public:
  explicit RawConn(uint16_t port) : fd_(Dial(port)) {}
  ~RawConn() {
    if (fd_ >= 0) close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool ok() const { return fd_ >= 0; }

  bool Send(const std::string& bytes) { return SendAll(fd_, bytes); }

  // Reads until one complete RESP2/RESP3 value is buffered and returns its bytes; what was
  // read so far (possibly "") on EOF or after timeout_ms.
  std::string ReadValue(int64_t timeout_ms = 10000) {
    const int64_t deadline = NowMs() + timeout_ms;
    while (true) {
      const size_t end = ValueEnd(buf_, 0);
      if (end != std::string::npos) {
        std::string out = buf_.substr(0, end);
        buf_.erase(0, end);
        return out;
      }
      const int64_t left = deadline - NowMs();
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char chunk[65536];
      const ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) break;
      buf_.append(chunk, static_cast<size_t>(n));
    }
    std::string out;
    out.swap(buf_);
    return out;
  }

 private:
  // The end of the RESP value starting at `pos`, or npos when it is incomplete. Unknown type
  // bytes end the value at the end of the buffer (the test then sees the raw bytes).
  static size_t ValueEnd(const std::string& b, size_t pos) {
    if (pos >= b.size()) return std::string::npos;
    const size_t crlf = b.find("\r\n", pos);
    if (crlf == std::string::npos) return std::string::npos;
    const std::string line = b.substr(pos + 1, crlf - pos - 1);
    const size_t after = crlf + 2;
    long long n = 0;
    switch (b[pos]) {
      case '+':
      case '-':
      case ':':
      case '_':
      case ',':
      case '#':
      case '(':
        return after;
      case '$':
      case '=':
      case '!':
        n = std::atoll(line.c_str());
        if (n < 0) return after;
        return b.size() >= after + static_cast<size_t>(n) + 2 ? after + static_cast<size_t>(n) + 2
                                                              : std::string::npos;
      case '*':
      case '~':
      case '>':
      case '%':
      case '|': {
        n = std::atoll(line.c_str());
        if (n < 0) return after;
        if (b[pos] == '%' || b[pos] == '|') n *= 2;
        size_t at = after;
        for (long long i = 0; i < n; ++i) {
          at = ValueEnd(b, at);
          if (at == std::string::npos) return at;
        }
        return at;
      }
      default:
        return b.size();
    }
  }

  int fd_ = -1;
  std::string buf_;
};

// RESP encoding of a command, as a client sends it.
std::string Resp(const std::vector<std::string>& argv) {
  std::string out = "*" + std::to_string(argv.size()) + "\r\n";
  for (const std::string& a : argv) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// ---- RedisStrings ----

TEST(RedisStrings, SetVariantsWrittenThroughOneNodeReadThroughAnother) {
  TestCluster c;
  auto conns = ConnectAll(c);
  Redis& w = *conns[1];
  Redis& r = *conns[2];
  Redis& r3 = *conns[3];
  // EX / PX and KEEPTTL.
  EXPECT_EQ(w.Command({"SET", "s1", "v1", "EX", "100"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GET", "s1"}).ToString(), Q("v1"));
  EXPECT_TRUE(IntIn(r.Command({"TTL", "s1"}), 99, 100));
  EXPECT_EQ(w.Command({"SET", "s1", "v2", "KEEPTTL"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GET", "s1"}).ToString(), Q("v2"));
  EXPECT_TRUE(IntIn(r.Command({"TTL", "s1"}), 98, 100)) << "KEEPTTL keeps the TTL";
  EXPECT_EQ(w.Command({"SET", "s1", "v3"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"TTL", "s1"}).ToString(), I(-1)) << "a plain SET drops the TTL";
  EXPECT_EQ(w.Command({"SET", "s2", "v", "PX", "100000"}).ToString(), "OK");
  EXPECT_TRUE(IntIn(r3.Command({"PTTL", "s2"}), 95000, 100000));
  EXPECT_EQ(w.Command({"SET", "s3", "v", "EXAT", std::to_string(UnixMs() / 1000 + 200)}).ToString(),
            "OK");
  EXPECT_TRUE(IntIn(r.Command({"TTL", "s3"}), 198, 201));
  EXPECT_EQ(w.Command({"SET", "s3", "v", "PXAT", std::to_string(UnixMs() - 1000)}).ToString(),
            "OK");
  EXPECT_EQ(r.Command({"GET", "s3"}).ToString(), "(nil)") << "PXAT in the past";
  // NX / XX.
  EXPECT_EQ(w.Command({"SET", "s1", "x", "NX"}).ToString(), "(nil)");
  EXPECT_EQ(r.Command({"GET", "s1"}).ToString(), Q("v3"));
  EXPECT_EQ(w.Command({"SET", "snew", "x", "XX"}).ToString(), "(nil)");
  EXPECT_EQ(r.Command({"EXISTS", "snew"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"SET", "snew", "x", "NX"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GET", "snew"}).ToString(), Q("x"));
  EXPECT_EQ(w.Command({"SET", "snew", "y", "XX"}).ToString(), "OK");
  EXPECT_EQ(r3.Command({"GET", "snew"}).ToString(), Q("y"));
  // GET.
  EXPECT_EQ(w.Command({"SET", "s1", "new", "GET"}).ToString(), Q("v3"));
  EXPECT_EQ(r.Command({"GET", "s1"}).ToString(), Q("new"));
  EXPECT_EQ(w.Command({"SET", "sg", "first", "GET"}).ToString(), "(nil)");
  EXPECT_EQ(r.Command({"GET", "sg"}).ToString(), Q("first"));
  EXPECT_EQ(w.Command({"SET", "s1", "other", "NX", "GET"}).ToString(), Q("new"))
      << "SET NX GET (Redis 7) returns the old value and sets nothing";
  EXPECT_EQ(r.Command({"GET", "s1"}).ToString(), Q("new"));
  // Refused option combinations and values.
  EXPECT_EQ(w.Command({"SET", "s1", "v", "EX", "10", "PX", "100"}).ToString(), kSyntax);
  EXPECT_EQ(w.Command({"SET", "s1", "v", "NX", "XX"}).ToString(), kSyntax);
  EXPECT_EQ(w.Command({"SET", "s1", "v", "KEEPTTL", "EX", "10"}).ToString(), kSyntax);
  EXPECT_EQ(w.Command({"SET", "s1", "v", "EX"}).ToString(), kSyntax);
  EXPECT_EQ(w.Command({"SET", "s1", "v", "EX", "0"}).ToString(),
            E("ERR invalid expire time in 'set' command"));
  EXPECT_EQ(w.Command({"SET", "s1", "v", "PX", "-5"}).ToString(),
            E("ERR invalid expire time in 'set' command"));
  EXPECT_EQ(w.Command({"SET", "s1", "v", "EX", "ten"}).ToString(), kNotInt);
  EXPECT_EQ(r.Command({"GET", "s1"}).ToString(), Q("new")) << "refused SETs change nothing";
  // SETNX, SETEX, PSETEX.
  EXPECT_EQ(w.Command({"SETNX", "sn", "1"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"SETNX", "sn", "2"}).ToString(), I(0));
  EXPECT_EQ(r3.Command({"GET", "sn"}).ToString(), Q("1"));
  EXPECT_EQ(w.Command({"SETEX", "se", "100", "val"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GET", "se"}).ToString(), Q("val"));
  EXPECT_TRUE(IntIn(r.Command({"TTL", "se"}), 99, 100));
  EXPECT_EQ(w.Command({"SETEX", "se", "0", "val"}).ToString(),
            E("ERR invalid expire time in 'setex' command"));
  EXPECT_EQ(w.Command({"SETEX", "se", "abc", "val"}).ToString(), kNotInt);
  EXPECT_EQ(w.Command({"PSETEX", "pe", "100000", "pval"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GET", "pe"}).ToString(), Q("pval"));
  EXPECT_TRUE(IntIn(r.Command({"PTTL", "pe"}), 95000, 100000));
  EXPECT_EQ(w.Command({"PSETEX", "pe", "0", "v"}).ToString(),
            E("ERR invalid expire time in 'psetex' command"));
  // GETSET drops the TTL.
  EXPECT_EQ(w.Command({"GETSET", "gs", "a"}).ToString(), "(nil)");
  EXPECT_EQ(r.Command({"GETSET", "gs", "b"}).ToString(), Q("a"));
  EXPECT_EQ(r3.Command({"GET", "gs"}).ToString(), Q("b"));
  EXPECT_EQ(w.Command({"SETEX", "gst", "100", "x"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GETSET", "gst", "y"}).ToString(), Q("x"));
  EXPECT_EQ(r3.Command({"TTL", "gst"}).ToString(), I(-1));
  // GETDEL.
  EXPECT_EQ(w.Command({"GETDEL", "gd"}).ToString(), "(nil)");
  EXPECT_EQ(w.Command({"SET", "gd", "v"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GETDEL", "gd"}).ToString(), Q("v"));
  EXPECT_EQ(r3.Command({"GET", "gd"}).ToString(), "(nil)");
  EXPECT_EQ(w.Command({"EXISTS", "gd"}).ToString(), I(0));
  // GETEX.
  EXPECT_EQ(w.Command({"SET", "ge", "v"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GETEX", "ge"}).ToString(), Q("v"));
  EXPECT_EQ(r3.Command({"TTL", "ge"}).ToString(), I(-1));
  EXPECT_EQ(r.Command({"GETEX", "ge", "EX", "100"}).ToString(), Q("v"));
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "ge"}), 99, 100));
  EXPECT_EQ(w.Command({"GETEX", "ge", "PX", "50000"}).ToString(), Q("v"));
  EXPECT_TRUE(IntIn(r3.Command({"PTTL", "ge"}), 45000, 50000));
  EXPECT_EQ(w.Command({"GETEX", "ge", "EXAT", std::to_string(UnixMs() / 1000 + 300)}).ToString(),
            Q("v"));
  EXPECT_TRUE(IntIn(r.Command({"TTL", "ge"}), 298, 301));
  EXPECT_EQ(r.Command({"GETEX", "ge", "PERSIST"}).ToString(), Q("v"));
  EXPECT_EQ(r3.Command({"TTL", "ge"}).ToString(), I(-1));
  EXPECT_EQ(w.Command({"GETEX", "nokey", "EX", "10"}).ToString(), "(nil)");
  EXPECT_EQ(w.Command({"GETEX", "ge", "EX", "10", "PERSIST"}).ToString(), kSyntax);
  EXPECT_EQ(w.Command({"GETEX", "ge", "NX"}).ToString(), kSyntax);
  EXPECT_EQ(w.Command({"GETEX", "ge", "EX", "0"}).ToString(),
            E("ERR invalid expire time in 'getex' command"));
  EXPECT_EQ(w.Command({"GETEX", "ge", "PXAT", "1"}).ToString(), Q("v"));
  EXPECT_EQ(r.Command({"GET", "ge"}).ToString(), "(nil)") << "GETEX PXAT in the past deletes";
  // MSETNX.
  EXPECT_EQ(w.Command({"MSETNX", "m1", "a", "m2", "b"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"MSETNX", "m2", "c", "m3", "d"}).ToString(), I(0));
  EXPECT_EQ(r3.Command({"MGET", "m1", "m2", "m3"}).ToString(), "[\"a\", \"b\", (nil)]");
  EXPECT_EQ(w.Command({"MSETNX", "m1", "a", "m2"}).ToString(), Arity("msetnx"));
}

TEST(RedisStrings, CountersRangesAndLcsWrittenThroughOneNodeReadThroughAnother) {
  TestCluster c;
  auto conns = ConnectAll(c);
  Redis& w = *conns[2];
  Redis& r = *conns[3];
  // INCRBY / DECRBY.
  EXPECT_EQ(w.Command({"INCRBY", "c", "10"}).ToString(), I(10));
  EXPECT_EQ(r.Command({"INCRBY", "c", "-3"}).ToString(), I(7));
  EXPECT_EQ(w.Command({"DECRBY", "c", "20"}).ToString(), I(-13));
  EXPECT_EQ(r.Command({"DECR", "c"}).ToString(), I(-14));
  EXPECT_EQ(conns[1]->Command({"GET", "c"}).ToString(), Q("-14"));
  EXPECT_EQ(w.Command({"INCRBY", "c", "abc"}).ToString(), kNotInt);
  EXPECT_EQ(w.Command({"DECRBY", "c", "1.5"}).ToString(), kNotInt);
  EXPECT_EQ(w.Command({"SET", "big", "9223372036854775807"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"INCRBY", "big", "1"}).ToString(),
            E("ERR increment or decrement would overflow"));
  EXPECT_EQ(r.Command({"GET", "big"}).ToString(), Q("9223372036854775807"));
  EXPECT_EQ(w.Command({"SET", "text", "hello"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"INCRBY", "text", "1"}).ToString(), kNotInt);
  EXPECT_EQ(w.Command({"SETEX", "ttlcount", "100", "5"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"INCRBY", "ttlcount", "5"}).ToString(), I(10));
  EXPECT_TRUE(IntIn(w.Command({"TTL", "ttlcount"}), 99, 100)) << "INCRBY keeps the TTL";
  // INCRBYFLOAT (Redis's documented examples).
  EXPECT_EQ(w.Command({"SET", "f", "10.50"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"INCRBYFLOAT", "f", "0.1"}).ToString(), Q("10.6"));
  EXPECT_EQ(w.Command({"INCRBYFLOAT", "f", "-5"}).ToString(), Q("5.6"));
  EXPECT_EQ(conns[1]->Command({"GET", "f"}).ToString(), Q("5.6"));
  EXPECT_EQ(w.Command({"SET", "f2", "5.0e3"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"INCRBYFLOAT", "f2", "2.0e2"}).ToString(), Q("5200"));
  EXPECT_EQ(r.Command({"INCRBYFLOAT", "fnew", "1.5"}).ToString(), Q("1.5"));
  EXPECT_EQ(w.Command({"INCRBYFLOAT", "text", "1"}).ToString(),
            E("ERR value is not a valid float"));
  EXPECT_EQ(w.Command({"INCRBYFLOAT", "f", "abc"}).ToString(), E("ERR value is not a valid float"));
  // APPEND / STRLEN.
  EXPECT_EQ(w.Command({"APPEND", "ap", "Hello"}).ToString(), I(5));
  EXPECT_EQ(r.Command({"APPEND", "ap", " World"}).ToString(), I(11));
  EXPECT_EQ(conns[1]->Command({"GET", "ap"}).ToString(), Q("Hello World"));
  EXPECT_EQ(r.Command({"STRLEN", "ap"}).ToString(), I(11));
  EXPECT_EQ(r.Command({"STRLEN", "nokey"}).ToString(), I(0));
  // GETRANGE.
  EXPECT_EQ(w.Command({"SET", "gr", "This is a string"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GETRANGE", "gr", "0", "3"}).ToString(), Q("This"));
  EXPECT_EQ(r.Command({"GETRANGE", "gr", "-3", "-1"}).ToString(), Q("ing"));
  EXPECT_EQ(r.Command({"GETRANGE", "gr", "0", "-1"}).ToString(), Q("This is a string"));
  EXPECT_EQ(r.Command({"GETRANGE", "gr", "10", "100"}).ToString(), Q("string"));
  EXPECT_EQ(r.Command({"GETRANGE", "gr", "5", "2"}).ToString(), Q(""));
  EXPECT_EQ(r.Command({"GETRANGE", "nokey", "0", "10"}).ToString(), Q(""));
  EXPECT_EQ(r.Command({"GETRANGE", "gr", "a", "1"}).ToString(), kNotInt);
  // SETRANGE.
  EXPECT_EQ(w.Command({"SET", "sr", "Hello World"}).ToString(), "OK");
  EXPECT_EQ(w.Command({"SETRANGE", "sr", "6", "Redis"}).ToString(), I(11));
  EXPECT_EQ(r.Command({"GET", "sr"}).ToString(), Q("Hello Redis"));
  EXPECT_EQ(w.Command({"SETRANGE", "sr2", "6", "Redis"}).ToString(), I(11));
  EXPECT_EQ(r.Command({"GET", "sr2"}).ToString(), Q("\\x00\\x00\\x00\\x00\\x00\\x00Redis"));
  EXPECT_EQ(w.Command({"SETRANGE", "sr3", "5", ""}).ToString(), I(0));
  EXPECT_EQ(r.Command({"EXISTS", "sr3"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"SETRANGE", "sr", "-1", "x"}).ToString(), E("ERR offset is out of range"));
  EXPECT_EQ(w.Command({"SETRANGE", "sr", "x", "x"}).ToString(), kNotInt);
  // LCS (Redis's documented example).
  EXPECT_EQ(w.Command({"MSET", "key1", "ohmytext", "key2", "mynewtext"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"LCS", "key1", "key2"}).ToString(), Q("mytext"));
  EXPECT_EQ(r.Command({"LCS", "key1", "key2", "LEN"}).ToString(), I(6));
  EXPECT_EQ(r.Command({"LCS", "key1", "key2", "IDX"}).ToString(),
            "[\"matches\", [[[(integer) 4, (integer) 7], [(integer) 5, (integer) 8]], "
            "[[(integer) 2, (integer) 3], [(integer) 0, (integer) 1]]], \"len\", (integer) 6]");
  EXPECT_EQ(
      r.Command({"LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"}).ToString(),
      "[\"matches\", [[[(integer) 4, (integer) 7], [(integer) 5, (integer) 8], (integer) 4]], "
      "\"len\", (integer) 6]");
  EXPECT_EQ(r.Command({"LCS", "key1", "nokey"}).ToString(), Q(""));
  EXPECT_EQ(r.Command({"LCS", "key1", "key2", "IDX", "LEN"}).ToString(),
            E("ERR If you want both the length and indexes, please just use IDX."));
  EXPECT_EQ(r.Command({"LCS", "key1", "key2", "FOO"}).ToString(), kSyntax);
  EXPECT_EQ(r.Command({"LCS", "key1", "key2", "MINMATCHLEN", "x"}).ToString(), kNotInt);
}

// Redis's exact error texts, through every node (a follower forwards nothing it refuses).
TEST(RedisStrings, ErrorTextsAreRedisExactThroughEveryNode) {
  TestCluster c;
  auto conns = ConnectAll(c);
  ASSERT_EQ(conns[1]->Command({"SET", "str", "abc"}).ToString(), "OK");
  const std::vector<std::vector<std::string>> wrong_arity = {
      {"SETNX", "a"},
      {"SETEX", "a", "1"},
      {"PSETEX", "a", "1"},
      {"GETSET", "a"},
      {"GETDEL"},
      {"GETEX"},
      {"INCRBY", "a"},
      {"DECRBY", "a"},
      {"INCRBYFLOAT", "a"},
      {"APPEND", "a"},
      {"STRLEN"},
      {"GETRANGE", "a", "0"},
      {"SETRANGE", "a", "0"},
      {"LCS", "a"},
      {"DEL"},
      {"UNLINK"},
      {"TYPE"},
      {"RENAME", "a"},
      {"RENAMENX", "a"},
      {"COPY", "a"},
      {"KEYS"},
      {"SCAN"},
      {"RANDOMKEY", "x"},
      {"TOUCH"},
      {"EXPIRE", "a"},
      {"PEXPIRE", "a"},
      {"EXPIREAT", "a"},
      {"PEXPIREAT", "a"},
      {"TTL"},
      {"PTTL"},
      {"EXPIRETIME"},
      {"PEXPIRETIME"},
      {"PERSIST"},
      {"DBSIZE", "x"},
      {"MSET", "a"},
      {"MSETNX", "a"},
      {"MULTI", "x"},
      {"EXEC", "x"},
      {"DISCARD", "x"},
      {"WATCH"},
      {"GET", "a", "b"},
      {"SET", "a"},
  };
  const std::vector<std::vector<std::string>> syntax = {
      {"SET", "a", "b", "FOO"}, {"SET", "a", "b", "EX"},   {"SET", "a", "b", "XX", "NX"},
      {"GETEX", "str", "FOO"},  {"SCAN", "0", "FOO", "1"}, {"SCAN", "0", "COUNT", "0"},
      {"SCAN", "0", "COUNT"},   {"COPY", "a", "b", "FOO"}, {"LCS", "a", "b", "FOO"},
      {"FLUSHALL", "NOW"},      {"FLUSHALL", "a", "b"},
  };
  const std::vector<std::vector<std::string>> not_int = {
      {"INCR", "str"},
      {"INCRBY", "a", "x"},
      {"DECRBY", "a", "1.5"},
      {"SETEX", "a", "x", "v"},
      {"PSETEX", "a", "1.0", "v"},
      {"GETRANGE", "a", "x", "1"},
      {"SETRANGE", "a", "x", "v"},
      {"EXPIRE", "a", "x"},
      {"PEXPIREAT", "a", "9x"},
      {"SET", "a", "b", "EX", "x"},
      {"SCAN", "0", "COUNT", "x"},
  };
  for (uint64_t id : c.ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    Redis& r = *conns[id];
    for (const auto& argv : wrong_arity) {
      std::string name = argv[0];
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      EXPECT_EQ(r.Command(argv).ToString(), Arity(name)) << ::testing::PrintToString(argv);
    }
    for (const auto& argv : syntax) {
      EXPECT_EQ(r.Command(argv).ToString(), kSyntax) << ::testing::PrintToString(argv);
    }
    for (const auto& argv : not_int) {
      EXPECT_EQ(r.Command(argv).ToString(), kNotInt) << ::testing::PrintToString(argv);
    }
    EXPECT_EQ(r.Command({"INCRBYFLOAT", "str", "1"}).ToString(),
              E("ERR value is not a valid float"));
    EXPECT_EQ(r.Command({"SCAN", "abc"}).ToString(), E("ERR invalid cursor"));
    EXPECT_EQ(r.Command({"RENAME", "nokey", "b"}).ToString(), E("ERR no such key"));
    EXPECT_EQ(r.Command({"COPY", "str", "str"}).ToString(),
              E("ERR source and destination objects are the same"));
    EXPECT_EQ(r.Command({"EXPIRE", "str", "10", "FOO"}).ToString(),
              E("ERR Unsupported option FOO"));
    EXPECT_EQ(r.Command({"EXPIRE", "str", "10", "NX", "XX"}).ToString(),
              E("ERR NX and XX, GT or LT options at the same time are not compatible"));
    EXPECT_EQ(r.Command({"EXPIRE", "str", "10", "GT", "LT"}).ToString(),
              E("ERR GT and LT options at the same time are not compatible"));
    EXPECT_EQ(r.Command({"NOSUCH", "x"}).ToString(),
              E("ERR unknown command 'NOSUCH', with args beginning with: 'x' "));
    // Nothing above changed the data.
    EXPECT_EQ(r.Command({"GET", "str"}).ToString(), Q("abc"));
    EXPECT_EQ(r.Command({"DBSIZE"}).ToString(), I(1));
  }
}

// redis-cli (raw output, not a terminal): values as they are, nil as an empty line, errors
// followed by an empty line.
TEST(RedisStrings, RedisCliSubsetThroughOtherNodes) {
  TestCluster c;
  const uint16_t p1 = c.client_port(1), p2 = c.client_port(2), p3 = c.client_port(3);
  EXPECT_EQ(RedisCli(p1, {"SET", "k", "v", "EX", "100"}), "OK\n");
  EXPECT_EQ(RedisCli(p2, {"GET", "k"}), "v\n");
  const std::string ttl = RedisCli(p3, {"TTL", "k"});
  EXPECT_TRUE(ttl == "100\n" || ttl == "99\n") << ttl;
  EXPECT_EQ(RedisCli(p1, {"SET", "k", "w", "NX"}), "\n");
  EXPECT_EQ(RedisCli(p2, {"SET", "k", "w", "XX", "GET"}), "v\n");
  EXPECT_EQ(RedisCli(p3, {"GETEX", "k", "PERSIST"}), "w\n");
  EXPECT_EQ(RedisCli(p1, {"TTL", "k"}), "-1\n");
  EXPECT_EQ(RedisCli(p2, {"SETNX", "n", "1"}), "1\n");
  EXPECT_EQ(RedisCli(p3, {"INCRBY", "n", "41"}), "42\n");
  EXPECT_EQ(RedisCli(p1, {"INCRBYFLOAT", "n", "0.5"}), "42.5\n");
  EXPECT_EQ(RedisCli(p2, {"APPEND", "n", "x"}), "5\n");
  EXPECT_EQ(RedisCli(p3, {"GETRANGE", "n", "0", "1"}), "42\n");
  EXPECT_EQ(RedisCli(p1, {"MSETNX", "key1", "ohmytext", "key2", "mynewtext"}), "1\n");
  EXPECT_EQ(RedisCli(p2, {"LCS", "key1", "key2"}), "mytext\n");
  EXPECT_EQ(RedisCli(p3, {"LCS", "key1", "key2", "LEN"}), "6\n");
  EXPECT_EQ(RedisCli(p1, {"TYPE", "key1"}), "string\n");
  EXPECT_EQ(RedisCli(p2, {"RENAME", "key1", "key3"}), "OK\n");
  EXPECT_EQ(RedisCli(p3, {"EXISTS", "key1", "key3"}), "1\n");
  EXPECT_EQ(RedisCli(p1, {"COPY", "key3", "key4"}), "1\n");
  EXPECT_EQ(RedisCli(p2, {"GETDEL", "key4"}), "ohmytext\n");
  EXPECT_EQ(::testing::PrintToString(SortedLines(RedisCli(p3, {"KEYS", "key*"}))),
            ::testing::PrintToString(std::vector<std::string>{"key2", "key3"}));
  EXPECT_EQ(RedisCli(p1, {"EXPIRE", "key3", "100", "NX"}), "1\n");
  EXPECT_EQ(RedisCli(p2, {"EXPIRE", "key3", "100", "NX"}), "0\n");
  EXPECT_EQ(RedisCli(p3, {"PERSIST", "key3"}), "1\n");
  EXPECT_EQ(RedisCli(p1, {"DBSIZE"}), "4\n");  // k, n, key2, key3
  EXPECT_EQ(RedisCli(p2, {"RENAME", "nokey", "x"}), "ERR no such key\n\n");
  EXPECT_EQ(RedisCli(p3, {"SET", "a", "b", "FOO"}), "ERR syntax error\n\n");
  EXPECT_EQ(RedisCli(p1, {"INCRBY", "a", "x"}), "ERR value is not an integer or out of range\n\n");
  EXPECT_EQ(RedisCli(p2, {"GETDEL"}), "ERR wrong number of arguments for 'getdel' command\n\n");
  EXPECT_EQ(RedisCli(p3, {"FLUSHALL"}), "OK\n");
  EXPECT_EQ(RedisCli(p1, {"DBSIZE"}), "0\n");
  // redis-cli --scan iterates SCAN to the end (redis-cli 7.0 has no --count: its default).
  std::vector<std::string> mset = {"MSET"};
  for (int i = 0; i < 50; ++i) {
    mset.push_back("cli:" + std::to_string(i));
    mset.push_back("v");
  }
  EXPECT_EQ(RedisCli(p1, mset), "OK\n");
  const ProgramResult scan = RunProgram(
      {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(p2), "--scan", "--pattern", "cli:*"},
      20000);
  EXPECT_EQ(scan.exit_code, 0) << scan.err;
  const std::vector<std::string> lines = SortedLines(scan.out);
  const std::set<std::string> seen(lines.begin(), lines.end());
  EXPECT_EQ(seen.size(), 50u) << scan.out;
  EXPECT_EQ(lines.size(), 50u) << "a key reported twice:\n" << scan.out;
}

// Inline commands (what telnet sends): one command per line, replies in order.
TEST(RedisStrings, InlineCommandsOverRawTcp) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const uint64_t follower = c.LiveIds(leader).front();
  RawConn raw(c.client_port(follower));
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(raw.Send("SET inl 1\r\nGET inl\r\n"));
  std::string got = raw.ReadValue();
  got += raw.ReadValue();
  EXPECT_EQ(got, "+OK\r\n$1\r\n1\r\n");
  // Quoted arguments, a bare \n line end, and an empty line (ignored, as Redis does).
  ASSERT_TRUE(raw.Send("SET \"inl 2\" \"a b\\x41\"\n\r\nGET 'inl 2'\r\nINCR inl\r\nPING\r\n"));
  got.clear();
  for (int i = 0; i < 4; ++i) got += raw.ReadValue();
  EXPECT_EQ(got, "+OK\r\n$4\r\na bA\r\n:2\r\n+PONG\r\n");
  ASSERT_TRUE(raw.Send("GET\r\n"));
  EXPECT_EQ(raw.ReadValue(), "-ERR wrong number of arguments for 'get' command\r\n");
  Redis other(c.client_port(leader));
  EXPECT_EQ(other.Command({"MGET", "inl", "inl 2"}).ToString(), "[\"2\", \"a bA\"]");
}

// `pairs` pipelined SET/GET pairs then `incrs` INCRs of `counter` on one connection; every
// reply in order. Returns the number of wrong replies (the first few are reported).
size_t PipelineSetGet(Redis& r, const std::string& prefix, int pairs, const std::string& counter,
                      int incrs) {
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < pairs; ++i) {
    cmds.push_back({"SET", prefix + std::to_string(i), "v" + std::to_string(i)});
    cmds.push_back({"GET", prefix + std::to_string(i)});
  }
  // Counters in flight too: a reply out of order would show.
  for (int i = 0; i < incrs; ++i) cmds.push_back({"INCR", counter});
  const int64_t start = NowMs();
  const std::vector<Reply> replies = r.Pipeline(cmds);
  std::cerr << "e2e: " << cmds.size() << " pipelined commands took " << NowMs() - start << " ms\n";
  size_t bad = 0;
  for (int i = 0; i < pairs; ++i) {
    const std::string set = replies[2 * i].ToString(), get = replies[2 * i + 1].ToString();
    if (set != "OK" || get != Q("v" + std::to_string(i))) {
      if (++bad < 5) ADD_FAILURE() << "pair " << i << ": SET -> " << set << ", GET -> " << get;
    }
  }
  for (int i = 0; i < incrs; ++i) {
    const std::string got = replies[2 * pairs + i].ToString();
    if (got != I(i + 1) && ++bad < 5) ADD_FAILURE() << "INCR " << i << " -> " << got;
  }
  return bad;
}

TEST(RedisStrings, ThousandPipelinedSetGetRepliesInOrder) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const uint64_t follower = c.LiveIds(leader).front();
  Redis check(c.client_port(leader));
  {
    // 500 pairs and 20 INCRs: 1020 commands in flight at most.
    Redis r(c.client_port(follower));
    EXPECT_EQ(PipelineSetGet(r, "h", 500, "hc", 20), 0u) << "500 pipelined SET/GET pairs";
    EXPECT_EQ(check.Command({"MGET", "h0", "h499", "hc"}).ToString(), "[\"v0\", \"v499\", \"20\"]");
  }
  // 1000 pairs and 200 INCRs: 2200 commands, more than the node keeps in flight per
  // connection (it must stop reading, not drop the client).
  Redis r(c.client_port(follower));
  EXPECT_EQ(PipelineSetGet(r, "p", 1000, "pc", 200), 0u) << "1000 pipelined SET/GET pairs";
  EXPECT_EQ(check.Command({"DBSIZE"}).ToString(), I(1502));  // 500 + 1000 keys, 2 counters
  EXPECT_EQ(check.Command({"MGET", "p0", "p999", "pc"}).ToString(), "[\"v0\", \"v999\", \"200\"]");
}

// Regression: a pipelined read ran concurrently with the connection's earlier writes (and a
// write with its earlier reads), so a GET could miss the SET before it or see the SET after it.
// Each GET must see exactly the writes sent before it on this connection.
TEST(RedisStrings, PipelinedReadsSeeExactlyTheEarlierWritesOfTheConnection) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  for (uint64_t node : {leader, c.LiveIds(leader).front()}) {
    Redis r(c.client_port(node));
    ASSERT_EQ(r.Command({"SET", "seq", "0"}).ToString(), "OK");
    std::vector<std::vector<std::string>> cmds;
    for (int i = 1; i <= 300; ++i) {
      cmds.push_back({"GET", "seq"});
      cmds.push_back({"SET", "seq", std::to_string(i)});
      cmds.push_back({"EXISTS", "seq"});
    }
    const std::vector<Reply> replies = r.Pipeline(cmds);
    ASSERT_EQ(replies.size(), cmds.size());
    size_t bad = 0;
    for (int i = 1; i <= 300; ++i) {
      const std::string get = replies[3 * (i - 1)].ToString();
      if (get != Q(std::to_string(i - 1)) && ++bad < 5) {
        ADD_FAILURE() << "node " << node << ": GET #" << i << " -> " << get;
      }
    }
    EXPECT_EQ(bad, 0u) << "node " << node;
  }
}

// RESP3 over a raw socket (the installed hiredis 0.14 has no RESP3 parser).
TEST(RedisStrings, Resp3NullsAndMaps) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const uint64_t follower = c.LiveIds(leader).front();
  {
    Redis w(c.client_port(leader));
    ASSERT_EQ(w.Command({"MSET", "key1", "ohmytext", "key2", "mynewtext"}).ToString(), "OK");
  }
  RawConn raw(c.client_port(follower));
  ASSERT_TRUE(raw.ok());
  // RESP2 first.
  ASSERT_TRUE(raw.Send(Resp({"GET", "missing"})));
  EXPECT_EQ(raw.ReadValue(), "$-1\r\n");
  ASSERT_TRUE(raw.Send(Resp({"HELLO", "3"})));
  const std::string hello = raw.ReadValue();
  EXPECT_EQ(hello.rfind("%7\r\n", 0), 0u) << hello;
  EXPECT_NE(hello.find("$5\r\nproto\r\n:3\r\n"), std::string::npos) << hello;
  EXPECT_NE(hello.find("$6\r\nserver\r\n$5\r\nredis\r\n"), std::string::npos) << hello;
  ASSERT_TRUE(raw.Send(Resp({"GET", "missing"})));
  EXPECT_EQ(raw.ReadValue(), "_\r\n");
  ASSERT_TRUE(raw.Send(Resp({"MGET", "key1", "missing"})));
  EXPECT_EQ(raw.ReadValue(), "*2\r\n$8\r\nohmytext\r\n_\r\n");
  ASSERT_TRUE(raw.Send(Resp({"LCS", "key1", "key2", "IDX"})));
  EXPECT_EQ(raw.ReadValue(),
            "%2\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n"
            "*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n");
  ASSERT_TRUE(raw.Send(Resp({"LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"})));
  EXPECT_EQ(raw.ReadValue(),
            "%2\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n"
            "$3\r\nlen\r\n:6\r\n");
  ASSERT_TRUE(raw.Send(Resp({"GETDEL", "missing"})));
  EXPECT_EQ(raw.ReadValue(), "_\r\n");
  // A transaction aborted by WATCH is a RESP3 null, too.
  ASSERT_TRUE(raw.Send(Resp({"WATCH", "key1"})));
  EXPECT_EQ(raw.ReadValue(), "+OK\r\n");
  {
    Redis w(c.client_port(leader));
    ASSERT_EQ(w.Command({"SET", "key1", "changed"}).ToString(), "OK");
  }
  ASSERT_TRUE(raw.Send(Resp({"MULTI"}) + Resp({"SET", "key1", "mine"}) + Resp({"EXEC"})));
  EXPECT_EQ(raw.ReadValue(), "+OK\r\n");
  EXPECT_EQ(raw.ReadValue(), "+QUEUED\r\n");
  EXPECT_EQ(raw.ReadValue(), "_\r\n");
  // And back to RESP2.
  ASSERT_TRUE(raw.Send(Resp({"HELLO", "2"})));
  const std::string hello2 = raw.ReadValue();
  EXPECT_EQ(hello2.rfind("*14\r\n", 0), 0u) << hello2;
  ASSERT_TRUE(raw.Send(Resp({"GET", "missing"})));
  EXPECT_EQ(raw.ReadValue(), "$-1\r\n");
  ASSERT_TRUE(raw.Send(Resp({"GET", "key1"})));
  EXPECT_EQ(raw.ReadValue(), "$7\r\nchanged\r\n");
  // The harness's hiredis: a RESP2 null prints as (nil).
  Redis h(c.client_port(follower));
  EXPECT_EQ(h.Command({"GET", "missing"}).ToString(), "(nil)");
}

// ---- RedisKeys ----

TEST(RedisKeys, KeyCommandsWrittenThroughOneNodeReadThroughAnother) {
  TestCluster c;
  auto conns = ConnectAll(c);
  Redis& w = *conns[3];
  Redis& r = *conns[1];
  Redis& r2 = *conns[2];
  EXPECT_EQ(w.Command({"MSET", "a", "1", "b", "2", "c", "3", "d", "4"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"TYPE", "a"}).ToString(), "string");
  EXPECT_EQ(r.Command({"TYPE", "nokey"}).ToString(), "none");
  EXPECT_EQ(w.Command({"DEL", "a", "nokey", "a"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"GET", "a"}).ToString(), "(nil)");
  EXPECT_EQ(r2.Command({"UNLINK", "b", "c", "nokey"}).ToString(), I(2));
  EXPECT_EQ(r.Command({"EXISTS", "b", "c", "d"}).ToString(), I(1));
  // RENAME keeps the TTL; RENAMENX refuses a taken name.
  EXPECT_EQ(w.Command({"SET", "src", "v", "EX", "100"}).ToString(), "OK");
  EXPECT_EQ(w.Command({"RENAME", "src", "dst"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"GET", "src"}).ToString(), "(nil)");
  EXPECT_EQ(r.Command({"GET", "dst"}).ToString(), Q("v"));
  EXPECT_TRUE(IntIn(r2.Command({"TTL", "dst"}), 99, 100));
  EXPECT_EQ(w.Command({"RENAME", "dst", "dst"}).ToString(), "OK");
  EXPECT_EQ(w.Command({"RENAME", "src", "x"}).ToString(), E("ERR no such key"));
  EXPECT_EQ(w.Command({"SET", "taken", "t"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"RENAMENX", "dst", "taken"}).ToString(), I(0));
  EXPECT_EQ(r2.Command({"GET", "taken"}).ToString(), Q("t"));
  EXPECT_EQ(r.Command({"RENAMENX", "dst", "fresh"}).ToString(), I(1));
  EXPECT_EQ(w.Command({"MGET", "dst", "fresh"}).ToString(), "[(nil), \"v\"]");
  EXPECT_EQ(r.Command({"RENAMENX", "nokey", "x"}).ToString(), E("ERR no such key"));
  // COPY.
  EXPECT_EQ(w.Command({"COPY", "fresh", "c1"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"GET", "c1"}).ToString(), Q("v"));
  EXPECT_TRUE(IntIn(r.Command({"TTL", "c1"}), 98, 100)) << "COPY copies the TTL";
  EXPECT_EQ(r2.Command({"COPY", "taken", "c1"}).ToString(), I(0));
  EXPECT_EQ(r.Command({"GET", "c1"}).ToString(), Q("v"));
  EXPECT_EQ(r2.Command({"COPY", "taken", "c1", "REPLACE"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"GET", "c1"}).ToString(), Q("t"));
  EXPECT_EQ(r.Command({"TTL", "c1"}).ToString(), I(-1));
  EXPECT_EQ(w.Command({"COPY", "nokey", "c2"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"COPY", "taken", "c2", "DB", "0"}).ToString(), I(1));
  EXPECT_EQ(w.Command({"COPY", "c1", "c1"}).ToString(),
            E("ERR source and destination objects are the same"));
  // TOUCH, DBSIZE, KEYS, RANDOMKEY, FLUSHALL.
  EXPECT_EQ(w.Command({"FLUSHALL"}).ToString(), "OK");
  for (uint64_t id : c.ids()) EXPECT_EQ(conns[id]->Command({"DBSIZE"}).ToString(), I(0));
  EXPECT_EQ(r.Command({"RANDOMKEY"}).ToString(), "(nil)");
  EXPECT_EQ(
      w.Command({"MSET", "user:1", "a", "user:2", "b", "user:10", "c", "other", "d"}).ToString(),
      "OK");
  EXPECT_EQ(r.Command({"TOUCH", "user:1", "user:2", "nokey", "user:1"}).ToString(), I(3));
  for (uint64_t id : c.ids()) EXPECT_EQ(conns[id]->Command({"DBSIZE"}).ToString(), I(4));
  EXPECT_EQ(::testing::PrintToString(SortedStrings(r.Command({"KEYS", "user:?"}))),
            ::testing::PrintToString(std::vector<std::string>{"user:1", "user:2"}));
  EXPECT_EQ(::testing::PrintToString(SortedStrings(r2.Command({"KEYS", "user:*"}))),
            ::testing::PrintToString(std::vector<std::string>{"user:1", "user:10", "user:2"}));
  EXPECT_EQ(
      ::testing::PrintToString(SortedStrings(r.Command({"KEYS", "*"}))),
      ::testing::PrintToString(std::vector<std::string>{"other", "user:1", "user:10", "user:2"}));
  EXPECT_EQ(::testing::PrintToString(SortedStrings(r.Command({"KEYS", "[ou]*[^0-9]"}))),
            ::testing::PrintToString(std::vector<std::string>{"other"}));
  EXPECT_EQ(r.Command({"KEYS", "nomatch*"}).ToString(), "[]");
  const std::set<std::string> all = {"other", "user:1", "user:10", "user:2"};
  std::set<std::string> random_seen;
  for (int i = 0; i < 40; ++i) {
    const Reply k = conns[1 + i % 3]->Command({"RANDOMKEY"});
    ASSERT_EQ(k.type, REDIS_REPLY_STRING) << k.ToString();
    EXPECT_TRUE(all.count(k.str)) << k.str;
    random_seen.insert(k.str);
  }
  EXPECT_GE(random_seen.size(), 2u) << "40 RANDOMKEYs returned one key only";
  EXPECT_EQ(r2.Command({"FLUSHALL", "ASYNC"}).ToString(), "OK");
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(conns[id]->Command({"DBSIZE"}).ToString(), I(0));
    EXPECT_EQ(conns[id]->Command({"KEYS", "*"}).ToString(), "[]");
  }
  EXPECT_EQ(w.Command({"FLUSHDB"}).ToString(), "OK");
}

// SCAN with COUNT 10 over a few hundred keys, through each follower (one linearizable, one
// READONLY): every key exactly once... or at least once (Redis's guarantee), and nothing else.
TEST(RedisKeys, ScanThroughAFollowerSeesEveryKey) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  Redis w(c.client_port(leader));
  std::set<std::string> expected;
  std::vector<std::string> mset = {"MSET"};
  for (int i = 0; i < 300; ++i) {
    const std::string k = "key:" + std::to_string(i);
    expected.insert(k);
    mset.push_back(k);
    mset.push_back("v" + std::to_string(i));
  }
  ASSERT_EQ(w.Command(mset).ToString(), "OK");
  const uint64_t target = c.StatusNumber(leader, "commit");
  const std::vector<uint64_t> followers = c.LiveIds(leader);
  for (size_t f = 0; f < followers.size(); ++f) {
    const uint64_t id = followers[f];
    SCOPED_TRACE("follower " + std::to_string(id) + (f == 1 ? " (READONLY)" : ""));
    Redis r(c.client_port(id));
    if (f == 1) {
      ASSERT_TRUE(c.WaitForApplied(id, target, 5000));
      ASSERT_EQ(r.Command({"READONLY"}).ToString(), "OK");
    }
    std::multiset<std::string> seen;
    std::string cursor = "0";
    int calls = 0;
    size_t largest = 0;
    do {
      const Reply page = r.Command({"SCAN", cursor, "COUNT", "10"});
      ASSERT_EQ(page.type, REDIS_REPLY_ARRAY) << page.ToString();
      ASSERT_EQ(page.elements.size(), 2u) << page.ToString();
      ASSERT_EQ(page.elements[0].type, REDIS_REPLY_STRING) << page.ToString();
      cursor = page.elements[0].str;
      largest = std::max(largest, page.elements[1].elements.size());
      for (const Reply& k : page.elements[1].elements) seen.insert(k.str);
    } while (cursor != "0" && ++calls < 1000);
    EXPECT_EQ(cursor, "0") << "SCAN did not finish in 1000 calls";
    EXPECT_GE(calls, 10) << "COUNT 10 over 300 keys should take many calls";
    EXPECT_LE(largest, 40u) << "a COUNT 10 page was far larger than 10";
    const std::set<std::string> distinct(seen.begin(), seen.end());
    EXPECT_EQ(distinct, expected);
    EXPECT_EQ(seen.size(), expected.size()) << "keys returned twice (allowed by Redis, unexpected "
                                               "without writes)";
    std::cerr << "e2e: SCAN COUNT 10 through node " << id << ": " << calls + 1 << " calls, "
              << seen.size() << " keys\n";
    // MATCH and TYPE filters.
    std::set<std::string> matched;
    cursor = "0";
    calls = 0;
    do {
      const Reply page =
          r.Command({"SCAN", cursor, "MATCH", "key:1?", "COUNT", "50", "TYPE", "string"});
      ASSERT_EQ(page.elements.size(), 2u) << page.ToString();
      cursor = page.elements[0].str;
      for (const Reply& k : page.elements[1].elements) matched.insert(k.str);
    } while (cursor != "0" && ++calls < 1000);
    std::set<std::string> want;
    for (int i = 10; i < 20; ++i) want.insert("key:" + std::to_string(i));
    EXPECT_EQ(matched, want);
    const Reply none = r.Command({"SCAN", "0", "TYPE", "list", "COUNT", "1000"});
    EXPECT_EQ(none.ToString(), "[\"0\", []]");
  }
}

// ---- RedisExpiry ----

TEST(RedisExpiry, ExpireFamilyWithFlagsAcrossNodes) {
  TestCluster c;
  auto conns = ConnectAll(c);
  Redis& w = *conns[1];
  Redis& r = *conns[2];
  Redis& r3 = *conns[3];
  EXPECT_EQ(w.Command({"SET", "e", "v"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"TTL", "e"}).ToString(), I(-1));
  EXPECT_EQ(r.Command({"PTTL", "e"}).ToString(), I(-1));
  EXPECT_EQ(r.Command({"EXPIRETIME", "e"}).ToString(), I(-1));
  EXPECT_EQ(r.Command({"PEXPIRETIME", "e"}).ToString(), I(-1));
  EXPECT_EQ(r.Command({"TTL", "nokey"}).ToString(), I(-2));
  EXPECT_EQ(r.Command({"PTTL", "nokey"}).ToString(), I(-2));
  EXPECT_EQ(r.Command({"EXPIRETIME", "nokey"}).ToString(), I(-2));
  EXPECT_EQ(r.Command({"PEXPIRETIME", "nokey"}).ToString(), I(-2));
  // NX / XX / GT / LT on EXPIRE.
  EXPECT_EQ(w.Command({"EXPIRE", "e", "100", "XX"}).ToString(), I(0)) << "XX: no TTL yet";
  EXPECT_EQ(r.Command({"EXPIRE", "e", "100", "GT"}).ToString(), I(0))
      << "GT: no TTL counts as infinite";
  EXPECT_EQ(r.Command({"TTL", "e"}).ToString(), I(-1));
  EXPECT_EQ(w.Command({"EXPIRE", "e", "100", "NX"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "e"}), 99, 100));
  EXPECT_EQ(r.Command({"EXPIRE", "e", "200", "NX"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"EXPIRE", "e", "50", "GT"}).ToString(), I(0));
  EXPECT_EQ(r.Command({"EXPIRE", "e", "200", "GT"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "e"}), 199, 200));
  EXPECT_EQ(w.Command({"EXPIRE", "e", "300", "LT"}).ToString(), I(0));
  EXPECT_EQ(r.Command({"EXPIRE", "e", "150", "LT"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "e"}), 149, 150));
  EXPECT_EQ(w.Command({"EXPIRE", "e", "120", "XX"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "e"}), 119, 120));
  EXPECT_EQ(w.Command({"EXPIRE", "e", "130", "XX", "GT"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "e"}), 129, 130));
  EXPECT_EQ(w.Command({"SET", "p", "v"}).ToString(), "OK");
  EXPECT_EQ(r.Command({"EXPIRE", "p", "100", "LT"}).ToString(), I(1))
      << "LT: no TTL counts as infinite";
  EXPECT_TRUE(IntIn(r3.Command({"TTL", "p"}), 99, 100));
  EXPECT_EQ(w.Command({"EXPIRE", "nokey", "100"}).ToString(), I(0));
  // PEXPIRE / PTTL.
  EXPECT_EQ(w.Command({"PEXPIRE", "e", "100000"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r.Command({"PTTL", "e"}), 95000, 100000));
  EXPECT_EQ(w.Command({"PEXPIRE", "e", "200000", "LT"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"PEXPIRE", "e", "200000", "GT"}).ToString(), I(1));
  EXPECT_TRUE(IntIn(r.Command({"PTTL", "e"}), 195000, 200000));
  // EXPIREAT / PEXPIREAT with EXPIRETIME / PEXPIRETIME: exact.
  const int64_t at = UnixMs() / 1000 + 1000;
  EXPECT_EQ(w.Command({"EXPIREAT", "e", std::to_string(at)}).ToString(), I(1));
  EXPECT_EQ(r.Command({"EXPIRETIME", "e"}).ToString(), I(at));
  EXPECT_EQ(r3.Command({"PEXPIRETIME", "e"}).ToString(), I(at * 1000));
  EXPECT_TRUE(IntIn(r.Command({"TTL", "e"}), 998, 1000));
  EXPECT_EQ(w.Command({"EXPIREAT", "e", std::to_string(at + 10), "LT"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"EXPIREAT", "e", std::to_string(at - 10), "LT"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"EXPIRETIME", "e"}).ToString(), I(at - 10));
  const int64_t pat = (at + 500) * 1000 + 250;
  EXPECT_EQ(w.Command({"PEXPIREAT", "e", std::to_string(pat), "NX"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"PEXPIREAT", "e", std::to_string(pat), "XX"}).ToString(), I(1));
  EXPECT_EQ(r3.Command({"PEXPIRETIME", "e"}).ToString(), I(pat));
  EXPECT_EQ(r3.Command({"EXPIRETIME", "e"}).ToString(), I(at + 500)) << "rounded as Redis";
  EXPECT_EQ(w.Command({"PEXPIREAT", "e", std::to_string(pat - 1), "GT"}).ToString(), I(0));
  // PERSIST.
  EXPECT_EQ(r.Command({"PERSIST", "e"}).ToString(), I(1));
  EXPECT_EQ(r3.Command({"TTL", "e"}).ToString(), I(-1));
  EXPECT_EQ(w.Command({"PERSIST", "e"}).ToString(), I(0));
  EXPECT_EQ(w.Command({"PERSIST", "nokey"}).ToString(), I(0));
  // A time in the past deletes the key at once, on every node.
  EXPECT_EQ(w.Command({"SET", "gone1", "v"}).ToString(), "OK");
  EXPECT_EQ(w.Command({"SET", "gone2", "v"}).ToString(), "OK");
  EXPECT_EQ(w.Command({"SET", "gone3", "v"}).ToString(), "OK");
  EXPECT_EQ(w.Command({"EXPIRE", "gone1", "-1"}).ToString(), I(1));
  EXPECT_EQ(r.Command({"EXPIREAT", "gone2", "1"}).ToString(), I(1));
  EXPECT_EQ(r3.Command({"PEXPIRE", "gone3", "0"}).ToString(), I(1));
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(conns[id]->Command({"EXISTS", "gone1", "gone2", "gone3"}).ToString(), I(0));
    EXPECT_EQ(conns[id]->Command({"DBSIZE"}).ToString(), I(2)) << "node " << id;  // e, p
  }
}

// A key with PX 300 written through node 1 is there on every replica before its time, absent on
// every replica after it (local READONLY reads and linearizable ones alike), and then deleted
// everywhere by the leader's replicated expiry: DBSIZE, INFO keyspace and `synod status` agree.
TEST(RedisExpiry, KeyExpiresOnEveryReplicaAtTheSameMoment) {
  TestCluster c;
  ASSERT_NE(LeaderOrFail(c), 0u);
  auto def = ConnectAll(c);
  auto ro = ConnectAllReadOnly(c);
  ASSERT_EQ(def[2]->Command({"SET", "keep", "1"}).ToString(), "OK");
  const int64_t t0 = NowMs();
  ASSERT_EQ(def[1]->Command({"SET", "k", "v", "PX", "300"}).ToString(), "OK");
  const int64_t set_ms = NowMs() - t0;
  // Before its time: every replica has it (a READONLY read may run a moment behind the leader).
  for (uint64_t id : c.ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    Reply got;
    WaitUntil(
        std::max<int64_t>(0, t0 + 200 - NowMs()),
        [&] {
          got = ro[id]->Command({"GET", "k"});
          return got.ToString() == Q("v");
        },
        5);
    EXPECT_EQ(got.ToString(), Q("v")) << "READONLY read before expiry, " << NowMs() - t0
                                      << " ms after the SET (SET took " << set_ms << " ms)";
    EXPECT_TRUE(IntIn(ro[id]->Command({"PTTL", "k"}), 1, 300));
    long long expires = -1;
    EXPECT_EQ(InfoKeys(*ro[id], &expires), 2);
    EXPECT_EQ(expires, 1);
  }
  EXPECT_LT(NowMs() - t0, 300) << "the checks before expiry ran past the TTL: machine too slow";
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(0, t0 + 500 - NowMs())));
  // After it: absent everywhere, whatever the read mode.
  for (uint64_t id : c.ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    for (Redis* r : {ro[id].get(), def[id].get()}) {
      EXPECT_EQ(r->Command({"GET", "k"}).ToString(), "(nil)");
      EXPECT_EQ(r->Command({"EXISTS", "k"}).ToString(), I(0));
      EXPECT_EQ(r->Command({"TTL", "k"}).ToString(), I(-2));
      EXPECT_EQ(r->Command({"PTTL", "k"}).ToString(), I(-2));
      EXPECT_EQ(r->Command({"TYPE", "k"}).ToString(), "none");
      EXPECT_EQ(r->Command({"MGET", "k", "keep"}).ToString(), "[(nil), \"1\"]");
      EXPECT_EQ(r->Command({"KEYS", "*"}).ToString(), "[\"keep\"]");
      EXPECT_EQ(r->Command({"SCAN", "0", "COUNT", "100"}).ToString(), "[\"0\", [\"keep\"]]");
    }
  }
  // The leader's expiry deletes it on every replica.
  for (uint64_t id : c.ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    for (Redis* r : {ro[id].get(), def[id].get()}) {
      Reply n;
      const bool dropped = WaitUntil(5000, [&] {
        n = r->Command({"DBSIZE"});
        return n.ToString() == I(1);
      });
      EXPECT_TRUE(dropped) << "DBSIZE still " << n.ToString() << " 5 s after the expiry";
    }
    long long expires = -1;
    EXPECT_EQ(InfoKeys(*ro[id], &expires), 1);
    EXPECT_EQ(expires, 0);
    EXPECT_EQ(c.Status(id).value("keys", uint64_t{99}), 1u) << c.Status(id).dump();
  }
  const ProgramResult st =
      RunProgram({c.synod_bin(), "status", "--json", "--host", c.admin_address(1)}, 20000);
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  const Json parsed = Json::parse(st.out, nullptr, false);
  ASSERT_TRUE(parsed.is_object() && parsed["nodes"].is_array()) << st.out;
  const Json& rows = parsed["nodes"];
  EXPECT_EQ(rows.size(), 3u) << st.out;
  for (const Json& row : rows) {
    EXPECT_EQ(row.value("keys", uint64_t{99}), 1u) << "synod status: " << row.dump();
  }
}

// A follower serving READONLY reads treats an EXPIREd key as absent by its own clock, even when
// it is cut off from the rest (both others SIGSTOPped), so the leader's delete cannot reach it.
TEST(RedisExpiry, ExpiredKeyIsAbsentToStaleReadsOnAnIsolatedFollower) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> followers = c.LiveIds(leader);
  const uint64_t alone = followers[0], other = followers[1];
  Redis w(c.client_port(leader));
  ASSERT_EQ(w.Command({"MSET", "ek", "v", "keep", "1"}).ToString(), "OK");
  const int64_t t0 = NowMs();
  ASSERT_EQ(w.Command({"PEXPIRE", "ek", "800"}).ToString(), I(1));
  ASSERT_TRUE(c.WaitForApplied(alone, c.StatusNumber(leader, "commit"), 500));
  Redis ro(c.client_port(alone));
  ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
  ASSERT_EQ(ro.Command({"GET", "ek"}).ToString(), Q("v"));
  ASSERT_TRUE(IntIn(ro.Command({"PTTL", "ek"}), 1, 800));
  c.Stop(leader);
  c.Stop(other);
  ASSERT_LT(NowMs() - t0, 800) << "too slow: the key expired before the isolation";
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(0, t0 + 1000 - NowMs())));
  {
    SCOPED_TRACE("isolated READONLY follower " + std::to_string(alone));
    EXPECT_EQ(ro.Command({"GET", "ek"}).ToString(), "(nil)");
    EXPECT_EQ(ro.Command({"EXISTS", "ek", "keep"}).ToString(), I(1));
    EXPECT_EQ(ro.Command({"TTL", "ek"}).ToString(), I(-2));
    EXPECT_EQ(ro.Command({"PTTL", "ek"}).ToString(), I(-2));
    EXPECT_EQ(ro.Command({"STRLEN", "ek"}).ToString(), I(0));
    EXPECT_EQ(ro.Command({"TYPE", "ek"}).ToString(), "none");
    EXPECT_EQ(ro.Command({"MGET", "ek", "keep"}).ToString(), "[(nil), \"1\"]");
    EXPECT_EQ(ro.Command({"KEYS", "*"}).ToString(), "[\"keep\"]");
    EXPECT_EQ(ro.Command({"SCAN", "0", "COUNT", "100"}).ToString(), "[\"0\", [\"keep\"]]");
    EXPECT_EQ(ro.Command({"RANDOMKEY"}).ToString(), Q("keep"));
    EXPECT_EQ(ro.Command({"LCS", "ek", "keep"}).ToString(), Q(""));
    std::cerr << "e2e: isolated follower's DBSIZE (expired key not yet deleted by the leader): "
              << ro.Command({"DBSIZE"}).ToString() << "\n";
  }
  c.Cont(leader);
  c.Cont(other);
  ASSERT_NE(c.WaitForLeader(15000), 0u);
  for (uint64_t id : c.ids()) {
    SCOPED_TRACE("node " + std::to_string(id));
    Redis r(c.client_port(id));
    Reply n;
    EXPECT_TRUE(WaitUntil(10000,
                          [&] {
                            n = r.Command({"DBSIZE"});
                            return n.ToString() == I(1);
                          }))
        << "DBSIZE " << n.ToString();
    EXPECT_EQ(r.Command({"GET", "ek"}).ToString(), "(nil)");
    EXPECT_EQ(r.Command({"GET", "keep"}).ToString(), Q("1"));
  }
  EXPECT_EQ(ro.Command({"DBSIZE"}).ToString(), I(1));
}

// ---- RedisTransactions ----

TEST(RedisTransactions, MultiExecThroughAFollowerIsAppliedAtomically) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> order = LeaderFirst(c, leader);
  Redis f(c.client_port(order[1]));
  Redis other(c.client_port(order[2]));
  Redis l(c.client_port(leader));
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"INCR", "a"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"INCR", "b"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"SET", "c", "x"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"GET", "c"}).ToString(), "QUEUED");
  // Nothing is applied before EXEC.
  EXPECT_EQ(other.Command({"MGET", "a", "b", "c"}).ToString(), "[(nil), (nil), (nil)]");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(), "[(integer) 1, (integer) 1, OK, \"x\"]");
  for (Redis* r : {&f, &other, &l}) {
    EXPECT_EQ(r->Command({"MGET", "a", "b", "c"}).ToString(), "[\"1\", \"1\", \"x\"]");
  }
  // A command failing at EXEC time does not stop the others (Redis has no rollback).
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"SET", "t", "abc"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"INCR", "t"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"INCR", "a"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(),
            "[OK, (error) ERR value is not an integer or out of range, (integer) 2]");
  EXPECT_EQ(other.Command({"MGET", "t", "a"}).ToString(), "[\"abc\", \"2\"]");
  // Nested MULTI is refused without aborting; an empty transaction is an empty array.
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), E("ERR MULTI calls can not be nested"));
  EXPECT_EQ(f.Command({"SET", "d", "1"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(), "[OK]");
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(), "[]");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(), E("ERR EXEC without MULTI"));
  EXPECT_EQ(f.Command({"DISCARD"}).ToString(), E("ERR DISCARD without MULTI"));
  EXPECT_EQ(l.Command({"GET", "d"}).ToString(), Q("1"));
  // Pipelined MULTI ... EXEC from the leader and a follower at once.
  const std::vector<std::vector<std::string>> tx = {
      {"MULTI"}, {"INCR", "a"}, {"INCR", "b"}, {"EXEC"}};
  const auto r1 = f.Pipeline(tx);
  const auto r2 = l.Pipeline(tx);
  EXPECT_EQ(r1[3].type, REDIS_REPLY_ARRAY) << r1[3].ToString();
  EXPECT_EQ(r2[3].type, REDIS_REPLY_ARRAY) << r2[3].ToString();
  EXPECT_EQ(other.Command({"MGET", "a", "b"}).ToString(), "[\"4\", \"3\"]");
}

TEST(RedisTransactions, WatchSeesAWriteThroughAnotherNode) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> order = LeaderFirst(c, leader);
  // A on a follower, B on the other follower, a reader on the leader.
  Redis a(c.client_port(order[1]));
  Redis b(c.client_port(order[2]));
  Redis l(c.client_port(leader));
  ASSERT_EQ(l.Command({"SET", "k", "orig"}).ToString(), "OK");
  // Conflict: B's write lands between A's WATCH and EXEC.
  EXPECT_EQ(a.Command({"WATCH", "k"}).ToString(), "OK");
  EXPECT_EQ(b.Command({"SET", "k", "theirs"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"SET", "k", "mine"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"SET", "side", "effect"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"EXEC"}).ToString(), "(nil)") << "a null array: the transaction aborted";
  for (Redis* r : {&a, &b, &l}) {
    EXPECT_EQ(r->Command({"MGET", "k", "side"}).ToString(), "[\"theirs\", (nil)]");
  }
  // No conflict: EXEC applies (and the watch ended with the EXEC above).
  EXPECT_EQ(a.Command({"WATCH", "k", "nokey"}).ToString(), "OK");
  EXPECT_EQ(b.Command({"SET", "unrelated", "1"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"SET", "k", "mine"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"EXEC"}).ToString(), "[OK]");
  EXPECT_EQ(b.Command({"GET", "k"}).ToString(), Q("mine"));
  // A watched key that did not exist and was then created: conflict.
  EXPECT_EQ(a.Command({"WATCH", "created"}).ToString(), "OK");
  EXPECT_EQ(l.Command({"SET", "created", "x"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"DEL", "created"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"EXEC"}).ToString(), "(nil)");
  EXPECT_EQ(b.Command({"GET", "created"}).ToString(), Q("x"));
  // A watched key deleted through another node: conflict.
  EXPECT_EQ(a.Command({"WATCH", "created"}).ToString(), "OK");
  EXPECT_EQ(b.Command({"DEL", "created"}).ToString(), I(1));
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"SET", "created", "again"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"EXEC"}).ToString(), "(nil)");
  EXPECT_EQ(l.Command({"EXISTS", "created"}).ToString(), I(0));
  // UNWATCH forgets the watch: a later write does not abort.
  EXPECT_EQ(a.Command({"WATCH", "k"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"UNWATCH"}).ToString(), "OK");
  EXPECT_EQ(b.Command({"SET", "k", "theirs2"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"SET", "k", "mine2"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"EXEC"}).ToString(), "[OK]");
  EXPECT_EQ(l.Command({"GET", "k"}).ToString(), Q("mine2"));
  // DISCARD forgets the watch too.
  EXPECT_EQ(a.Command({"WATCH", "k"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"DISCARD"}).ToString(), "OK");
  EXPECT_EQ(b.Command({"SET", "k", "theirs3"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(a.Command({"SET", "k", "mine3"}).ToString(), "QUEUED");
  EXPECT_EQ(a.Command({"EXEC"}).ToString(), "[OK]");
  EXPECT_EQ(b.Command({"GET", "k"}).ToString(), Q("mine3"));
  // The conflict seen from the leader's side, with a pipelined WATCH ... EXEC.
  const auto replies = l.Pipeline({{"WATCH", "k"}, {"GET", "k"}});
  EXPECT_EQ(replies[1].ToString(), Q("mine3"));
  EXPECT_EQ(a.Command({"SET", "k", "from-a"}).ToString(), "OK");
  const auto tx = l.Pipeline({{"MULTI"}, {"SET", "k", "from-leader"}, {"EXEC"}});
  EXPECT_EQ(tx[2].ToString(), "(nil)");
  EXPECT_EQ(b.Command({"GET", "k"}).ToString(), Q("from-a"));
}

TEST(RedisTransactions, ExecAbortAfterAQueueingErrorAndDiscard) {
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> order = LeaderFirst(c, leader);
  Redis f(c.client_port(order[1]));
  Redis r(c.client_port(order[2]));
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"SET", "a", "1"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"NOSUCHCMD", "x"}).ToString(),
            E("ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' "));
  EXPECT_EQ(f.Command({"SET", "b", "1"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(),
            E("EXECABORT Transaction discarded because of previous errors."));
  EXPECT_EQ(r.Command({"MGET", "a", "b"}).ToString(), "[(nil), (nil)]");
  // Wrong arity while queueing aborts too.
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"SET", "a", "1"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"GET"}).ToString(), Arity("get"));
  EXPECT_EQ(f.Command({"EXEC"}).ToString(),
            E("EXECABORT Transaction discarded because of previous errors."));
  EXPECT_EQ(r.Command({"EXISTS", "a"}).ToString(), I(0));
  // The connection is usable again, outside a transaction.
  EXPECT_EQ(f.Command({"SET", "a", "plain"}).ToString(), "OK");
  // DISCARD drops the queue.
  EXPECT_EQ(f.Command({"MULTI"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"SET", "a", "discarded"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"INCR", "n"}).ToString(), "QUEUED");
  EXPECT_EQ(f.Command({"DISCARD"}).ToString(), "OK");
  EXPECT_EQ(f.Command({"EXEC"}).ToString(), E("ERR EXEC without MULTI"));
  EXPECT_EQ(r.Command({"MGET", "a", "n"}).ToString(), "[\"plain\", (nil)]");
  // The same through redis-cli is not possible (one command per run); pipelined through the
  // leader instead.
  Redis l(c.client_port(leader));
  const auto replies =
      l.Pipeline({{"MULTI"}, {"INCR", "n"}, {"BOGUS"}, {"INCR", "n"}, {"EXEC"}, {"GET", "n"}});
  EXPECT_EQ(replies[0].ToString(), "OK");
  EXPECT_EQ(replies[1].ToString(), "QUEUED");
  EXPECT_EQ(replies[2].ToString(), E("ERR unknown command 'BOGUS', with args beginning with: "));
  EXPECT_EQ(replies[3].ToString(), "QUEUED");
  EXPECT_EQ(replies[4].ToString(),
            E("EXECABORT Transaction discarded because of previous errors."));
  EXPECT_EQ(replies[5].ToString(), "(nil)");
}

// Several clients run MULTI; INCR x; INCR y; EXEC through different nodes for ~3 s while the
// leader is killed after ~1 s. A transaction is never half applied (x == y everywhere), and
// every EXEC answered with an array was applied (x >= their number).
TEST(RedisTransactions, MultiExecIsAtomicAcrossALeaderFailover) {
  TestCluster c({.flags = {"--request-timeout-ms", "2000"}});
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const std::vector<uint64_t> ids = c.ids();
  std::vector<uint16_t> ports;
  for (uint64_t id : ids) ports.push_back(c.client_port(id));

  struct ClientStats {
    std::atomic<int64_t> acked{0};
    std::atomic<int64_t> attempts{0};
    std::map<std::string, int> errors;    // first word -> count
    std::vector<std::string> unexpected;  // anything but CLUSTERDOWN/TRYAGAIN/io errors
    std::mutex mu;
  };
  constexpr int kClients = 3;
  std::vector<std::unique_ptr<ClientStats>> stats;
  for (int i = 0; i < kClients; ++i) stats.push_back(std::make_unique<ClientStats>());
  std::atomic<bool> stop{false};
  const int64_t start = NowMs();
  const int64_t end = start + 3000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      ClientStats& s = *stats[i];
      size_t port_index = static_cast<size_t>(i) % ports.size();
      auto conn = std::make_unique<Redis>(ports[port_index], 3000);
      auto note = [&s](const std::string& what, bool expected) {
        std::lock_guard<std::mutex> lock(s.mu);
        ++s.errors[what.substr(0, what.find(' '))];
        if (!expected && s.unexpected.size() < 20) s.unexpected.push_back(what);
      };
      while (!stop.load() && NowMs() < end) {
        if (!conn->connected()) {
          port_index = (port_index + 1) % ports.size();
          conn = std::make_unique<Redis>(ports[port_index], 3000);
          if (!conn->connected()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
          }
        }
        s.attempts.fetch_add(1);
        const auto replies = conn->Pipeline({{"MULTI"}, {"INCR", "x"}, {"INCR", "y"}, {"EXEC"}});
        bool io = false;
        for (const Reply& r : replies) io |= r.type == Reply::kIoError;
        if (io) {
          note("(io-error)", true);
          port_index = (port_index + 1) % ports.size();
          conn = std::make_unique<Redis>(ports[port_index], 3000);
          continue;
        }
        if (replies[0].ToString() != "OK" || replies[1].ToString() != "QUEUED" ||
            replies[2].ToString() != "QUEUED") {
          note("queueing: " + replies[0].ToString() + " " + replies[1].ToString() + " " +
                   replies[2].ToString(),
               false);
          continue;
        }
        const Reply& exec = replies[3];
        if (exec.type == REDIS_REPLY_ARRAY) {
          // Inside one transaction x and y move together: the replies are equal.
          if (exec.elements.size() != 2 || exec.elements[0].type != REDIS_REPLY_INTEGER ||
              exec.elements[0].integer != exec.elements[1].integer) {
            note("EXEC " + exec.ToString(), false);
          }
          s.acked.fetch_add(1);
        } else if (exec.ErrorStartsWith("CLUSTERDOWN") || exec.ErrorStartsWith("TRYAGAIN")) {
          note(exec.str, true);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        } else {
          note("EXEC " + exec.ToString(), false);
        }
      }
    });
  }
  // About a second of transactions, then kill -9 of the leader.
  const bool going = WaitUntil(5000, [&] {
    for (auto& s : stats) {
      if (s->acked.load() < 5) return false;
    }
    return NowMs() - start >= 1000;
  });
  const int64_t killed_at = NowMs() - start;
  c.Kill9(leader);
  int64_t acked_before_kill = 0;
  for (auto& s : stats) acked_before_kill += s->acked.load();
  for (auto& t : threads) t.join();
  EXPECT_TRUE(going) << "the clients did not get going";
  // A new leader, and transactions work again through every survivor.
  const uint64_t new_leader = c.WaitForLeader(15000);
  ASSERT_NE(new_leader, 0u);
  ASSERT_NE(new_leader, leader);
  int64_t after = 0;
  for (uint64_t id : c.LiveIds()) {
    Redis r(c.client_port(id));
    Reply exec;
    const bool ok = WaitUntil(
        10000,
        [&] {
          if (!r.connected()) r.Reconnect();
          const auto replies = r.Pipeline({{"MULTI"}, {"INCR", "x"}, {"INCR", "y"}, {"EXEC"}});
          exec = replies[3];
          return exec.type == REDIS_REPLY_ARRAY;
        },
        100);
    EXPECT_TRUE(ok) << "no transaction through node " << id
                    << " after the failover: " << exec.ToString();
    if (ok) ++after;
  }
  int64_t acked = after, attempts = after;
  for (auto& s : stats) {
    acked += s->acked.load();
    attempts += s->attempts.load();
    std::cerr << "e2e: client acked " << s->acked.load() << " of " << s->attempts.load()
              << " transactions; errors:";
    for (const auto& [word, n] : s->errors) std::cerr << " " << word << "=" << n;
    std::cerr << "\n";
    EXPECT_TRUE(s->unexpected.empty()) << ::testing::PrintToString(s->unexpected);
  }
  std::cerr << "e2e: leader " << leader << " killed after " << killed_at << " ms ("
            << acked_before_kill << " transactions acknowledged before); " << acked
            << " acknowledged in all\n";
  // Every survivor agrees, and no transaction was half applied.
  const uint64_t target = c.StatusNumber(new_leader, "commit");
  for (uint64_t id : c.LiveIds()) {
    SCOPED_TRACE("node " + std::to_string(id));
    Redis r(c.client_port(id));
    Reply xy;
    ASSERT_TRUE(WaitUntil(10000, [&] {
      xy = r.Command({"MGET", "x", "y"});
      return xy.type == REDIS_REPLY_ARRAY;
    })) << xy.ToString();
    ASSERT_EQ(xy.elements.size(), 2u);
    const long long x = std::atoll(xy.elements[0].str.c_str());
    const long long y = std::atoll(xy.elements[1].str.c_str());
    EXPECT_EQ(x, y) << "half a transaction applied: " << xy.ToString();
    EXPECT_GE(x, acked) << "acknowledged transactions lost";
    EXPECT_LE(x, attempts) << "more transactions applied than sent";
    ASSERT_TRUE(c.WaitForApplied(id, target, 10000));
    Redis ro(c.client_port(id));
    ASSERT_EQ(ro.Command({"READONLY"}).ToString(), "OK");
    EXPECT_EQ(ro.Command({"MGET", "x", "y"}).ToString(), xy.ToString()) << "the local replica";
  }
}

// ---- RedisPy ----

// The python3 whose `import redis` works: Debian's (where python3-redis installs) first, then
// the one on PATH. Empty when none.
std::string PythonWithRedis() {
  for (const std::string& py : {std::string("/usr/bin/python3"), std::string("python3")}) {
    if (py[0] == '/' && !std::filesystem::exists(py)) continue;
    const ProgramResult r = RunProgram({py, "-c", "import redis"}, 30000);
    if (r.exit_code == 0) return py;
  }
  return "";
}

std::string PythonScript() {
#ifdef SYNOD_E2E_PYTHON_DIR
  const std::filesystem::path dir = SYNOD_E2E_PYTHON_DIR;
#else
  const std::filesystem::path dir = std::filesystem::path(__FILE__).parent_path() / "python";
#endif
  return (dir / "redis_py_test.py").string();
}

TEST(RedisPy, ClientLibraryWorksAgainstTheCluster) {
  const std::string script = PythonScript();
  ASSERT_TRUE(std::filesystem::exists(script)) << "missing " << script;
  const std::string python = PythonWithRedis();
  ASSERT_FALSE(python.empty())
      << "no python3 with the redis module (apt-get install python3-redis; make test does)";
  TestCluster c;
  const uint64_t leader = LeaderOrFail(c);
  ASSERT_NE(leader, 0u);
  const uint64_t follower = c.LiveIds(leader).front();
  const int64_t start = NowMs();
  const ProgramResult r =
      RunProgram({python, script, std::to_string(c.client_port(follower))}, 120000);
  std::cerr << "e2e: " << python << " " << script << " took " << NowMs() - start << " ms\n";
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "\nstderr:\n" << r.err;
  EXPECT_NE(r.out.find("redis-py: all checks passed"), std::string::npos) << r.out << r.err;
  if (r.exit_code == 0) std::cerr << r.out;
}

}  // namespace
}  // namespace synod::e2e
