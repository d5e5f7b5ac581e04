// Scripts (EVAL, EVALSHA, SCRIPT) against a 3-node cluster of several shards: replies compared
// byte for byte with Debian's redis-server 7.0 run beside it; read-modify-write scripts from
// many connections on every node lose no update; redis-py's lock acquires and releases.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

std::string Encode(const std::vector<std::string>& argv) {
  std::string out = "*" + std::to_string(argv.size()) + "\r\n";
  for (const std::string& a : argv) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// The raw bytes of the reply to `argv` (a connection of its own, closed by QUIT).
std::string RawReply(uint16_t port, const std::vector<std::string>& argv) {
  const int fd = Dial(port);
  if (fd < 0) return "(no connection)";
  SendAll(fd, Encode(argv) + Encode({"QUIT"}));
  std::string out = ReadUntilClosed(fd, 10000);
  close(fd);
  if (out.ends_with("+OK\r\n")) out.resize(out.size() - 5);
  return out;
}

// Debian's redis-server on a free port, in a directory of its own, for as long as it lives.
class RedisServer {
 public:
  RedisServer() {
    dir_ = std::filesystem::temp_directory_path() / ("synod-redis-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    port_ = static_cast<uint16_t>(26000 + getpid() % 3000);
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      freopen("/dev/null", "w", stdout);
      execlp("redis-server", "redis-server", "--port", std::to_string(port_).c_str(), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir_.c_str(), nullptr);
      _exit(127);
    }
    WaitUntil(5000, [this] { return RawReply(port_, {"PING"}) == "+PONG\r\n"; });
  }
  ~RedisServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  uint16_t port() const { return port_; }
  bool up() const { return RawReply(port_, {"PING"}) == "+PONG\r\n"; }

 private:
  std::filesystem::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

ClusterOptions ShardedOptions() {
  ClusterOptions o;
  o.shards = 0;  // Synod's default layout: two shards per node
  return o;
}

TEST(Scripting, RepliesMatchRedisByteForByte) {
  RedisServer redis;
  ASSERT_TRUE(redis.up()) << "redis-server did not start";
  TestCluster c(ShardedOptions());
  const uint16_t synod = c.client_port(2);
  // Every script declares its keys (a Redis Cluster rule: Synod runs a script on their shard).
  const std::vector<std::vector<std::string>> commands = {
      {"EVAL", "return 1", "0"},
      {"EVAL", "return {1,2,{3,'x'},nil,5}", "0"},
      {"EVAL", "return true", "0"},
      {"EVAL", "return false", "0"},
      {"EVAL", "return 3.99", "0"},
      {"EVAL", "return 1e20", "0"},
      {"EVAL", "return {ok='fine'}", "0"},
      {"EVAL", "return {err='My Error'}", "0"},
      {"EVAL", "return redis.error_reply('My Error')", "0"},
      {"EVAL", "return redis.error_reply('oops')", "0"},
      {"EVAL", "return redis.status_reply('a\\r\\nb')", "0"},
      {"EVAL", "error('boom')", "0"},
      {"EVAL", "error({err='TABLEERR x'})", "0"},
      {"EVAL", "return redis.call('incr',KEYS[1])", "1", "counter"},
      {"SET", "str", "abc"},
      {"EVAL", "return redis.call('incr',KEYS[1])", "1", "str"},
      {"EVAL", "return redis.pcall('incr',KEYS[1])", "1", "str"},
      {"EVAL", "return redis.pcall('incr',KEYS[1])['err']", "1", "str"},
      {"EVAL", "x = 5 return x", "0"},
      {"EVAL", "return undefinedvar", "0"},
      {"EVAL", "return os", "0"},
      {"EVAL", "return redis.call('nosuch')", "0"},
      {"EVAL", "return redis.call('get')", "0"},
      {"EVAL", "return redis.call()", "0"},
      {"EVAL", "return redis.call('multi')", "0"},
      {"EVAL", "return redis.call('set',KEYS[1],true)", "1", "k"},
      {"EVAL", "return redis.sha1hex('')", "0"},
      {"EVAL", "return 'x", "0"},
      {"EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"},
      {"EVAL", "return 1", "-1"},
      {"EVAL", "return 1", "2", "a"},
      {"EVAL", "return 1", "x"},
      {"EVAL",
       "redis.call('set',KEYS[1],'a') redis.call('append',KEYS[1],'b') "
       "return redis.call('get',KEYS[1])",
       "1", "k"},
      {"GET", "k"},
      {"EVAL_RO", "return redis.call('set',KEYS[1],'v')", "1", "k"},
      {"EVAL_RO", "return redis.call('get',KEYS[1])", "1", "k"},
      {"EVAL", "return {double=3.14}", "0"},
      {"EVAL", "return {map={a=1}}", "0"},
      {"EVAL", "return {big_number='123'}", "0"},
      {"EVAL", "return redis.REDIS_VERSION", "0"},
      {"EVAL", "return cjson.encode({1,2,3})", "0"},
      {"EVAL", "return bit.band(7,3)", "0"},
      {"EVAL", "return KEYS[1]..ARGV[1]", "1", "k", "arg"},
      {"EVAL", "return redis.call('mget',KEYS[1],KEYS[2])", "2", "{t}a", "{t}b"},
      {"EVAL", "redis.call('set',KEYS[1],'v','EX','100') return redis.call('ttl',KEYS[1])", "1",
       "ttl"},
      {"EVAL", "redis.call('set',KEYS[1],'1') error('after a write')", "1", "w"},
      {"GET", "w"},
      {"SCRIPT", "LOAD", "return 1"},
      {"SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "ffff"},
      {"EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"},
      {"SCRIPT", "KILL"},
      {"SCRIPT", "FLUSH", "BAD"},
      {"SCRIPT", "NOPE"},
      {"SCRIPT"},
      {"SCRIPT", "FLUSH"},
      {"EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"},
  };
  for (const auto& argv : commands) {
    std::string shown;
    for (const std::string& a : argv) shown += a + " ";
    EXPECT_EQ(RawReply(synod, argv), RawReply(redis.port(), argv)) << shown;
  }
}

TEST(Scripting, ReadModifyWriteScriptsFromEveryNodeLoseNoUpdate) {
  TestCluster c(ShardedOptions());
  const std::string body =
      "local v = tonumber(redis.call('get', KEYS[1]) or '0') "
      "redis.call('set', KEYS[1], v + 1) return v + 1";
  const std::vector<uint64_t> ids = c.ids();
  std::atomic<int> errors{0};
  constexpr int kThreads = 6;
  constexpr int kEach = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Redis r(c.client_port(ids[t % ids.size()]));
      const Reply sha = r.Command({"SCRIPT", "LOAD", body});
      for (int i = 0; i < kEach; ++i) {
        const Reply rep = r.Command({"EVALSHA", sha.str, "1", "counter"});
        if (rep.type != REDIS_REPLY_INTEGER) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (uint64_t id : ids) {
    Redis r(c.client_port(id));
    EXPECT_EQ(r.Command({"GET", "counter"}).str, std::to_string(kThreads * kEach)) << "node " << id;
  }
}

TEST(Scripting, RedisPyLockAcquiresAndReleases) {
  TestCluster c(ShardedOptions());
  const std::string program =
      "import redis, sys\n"
      "r = redis.Redis(port=int(sys.argv[1]))\n"
      "lock = r.lock('resource', timeout=10)\n"
      "assert lock.acquire(blocking=False)\n"
      "other = redis.Redis(port=int(sys.argv[2])).lock('resource', timeout=10)\n"
      "assert not other.acquire(blocking=False)\n"
      "lock.extend(5)\n"
      "lock.release()\n"
      "assert other.acquire(blocking=False)\n"
      "other.release()\n"
      "print('ok')\n";
  const ProgramResult p =
      RunProgram({"/usr/bin/python3", "-c", program, std::to_string(c.client_port(1)),
                  std::to_string(c.client_port(3))},
                 60000);
  EXPECT_EQ(p.exit_code, 0) << p.out << p.err;
  EXPECT_EQ(p.out, "ok\n") << p.err;
}

}  // namespace
}  // namespace synod::e2e
