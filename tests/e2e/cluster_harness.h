// The end-to-end harness: real `synod start` processes on 127.0.0.1, real clients (hiredis,
// redis-cli, redis-benchmark), real faults (kill -9, SIGSTOP, the --fault-hooks endpoints).
//
// TestCluster starts N nodes with fork/exec, all in one process group that the harness creates
// (an idle "anchor" child leads it, so the group outlives any node), and kills the whole group
// with SIGKILL in its destructor, so that a failed assertion never leaves a node running. Each
// child also gets PR_SET_PDEATHSIG, so a crashed test binary takes its nodes with it. Ports are
// picked by binding 127.0.0.1 outside the ephemeral range and the 7001-7300 developer block,
// and every test has its own mkdtemp directory under /tmp, removed at the end: tests run in
// parallel (ctest -j2) without sharing anything.
//
// Every wait is bounded. When the current test has failed, the destructor prints the tail of
// every node's log, so CI output explains the failure.
//
// Thread-safety: TestCluster is driven by the test's main thread (it forks; a child's death
// signal follows the thread that forked it). Status/Admin/WaitFor* are safe from other threads
// too (they only read the node table, which changes only on the main thread while no other
// thread polls). Redis is one connection used by one thread.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace synod::e2e {

using Json = nlohmann::json;

// Milliseconds since an arbitrary point (steady clock), for measuring and deadlines.
int64_t NowMs();

// Polls `done` every `poll_ms` until it returns true or `timeout_ms` passed. Returns whether it
// became true.
bool WaitUntil(int64_t timeout_ms, const std::function<bool()>& done, int64_t poll_ms = 25);

// ---- Redis client ----

// One reply, copied out of hiredis. type is a REDIS_REPLY_* constant, or kIoError when the
// connection failed (str then holds hiredis's error text and the connection is unusable).
struct Reply {
  static constexpr int kIoError = -1;
  int type = kIoError;
  std::string str;
  long long integer = 0;
  std::vector<Reply> elements;

  bool IsOk() const { return type == REDIS_REPLY_STATUS && str == "OK"; }
  bool IsError() const { return type == REDIS_REPLY_ERROR; }
  bool IsNil() const { return type == REDIS_REPLY_NIL; }
  // An error reply whose text starts with `prefix` ("CLUSTERDOWN", "TRYAGAIN", ...).
  bool ErrorStartsWith(const std::string& prefix) const;
  // For assertion messages: `"OK"`, `(integer) 3`, `(error) ERR ...`, `(nil)`, ...
  std::string ToString() const;
};

// A blocking hiredis connection with a connect and a command timeout, so that a test never
// hangs on a stopped or partitioned node: a command that times out returns kIoError.
class Redis {
 public:
  explicit Redis(uint16_t port, int64_t timeout_ms = 10000);
  ~Redis();
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;

  bool connected() const { return ctx_ != nullptr && ctx_->err == 0; }
  // Why the connection failed (empty while it works).
  std::string error() const;
  // Drops the connection and dials again. Returns connected().
  bool Reconnect();
  void SetTimeout(int64_t timeout_ms);

  // Sends one command and waits for its reply. Binary-safe.
  Reply Command(const std::vector<std::string>& argv);
  // Sends all commands, then reads all replies (one round trip per socket buffer).
  std::vector<Reply> Pipeline(const std::vector<std::vector<std::string>>& commands);
  // The two halves of Command, for a reply awaited later (or never).
  bool Send(const std::vector<std::string>& argv);
  Reply Receive();

 private:
  void Connect();

  uint16_t port_;
  int64_t timeout_ms_;
  redisContext* ctx_ = nullptr;
};

// ---- raw TCP ----

// For bytes hiredis would not send or could not parse (RESP3, inline, malformed).

// A new connection to 127.0.0.1:port, or -1.
int Dial(uint16_t port);
// Sends every byte of `bytes`; false when the connection fails first.
bool SendAll(int fd, const std::string& bytes);
// Reads until the server closes the connection (EOF or reset) or `timeout_ms` passes; sets
// *closed to whether it closed.
std::string ReadUntilClosed(int fd, int64_t timeout_ms, bool* closed = nullptr);

// ---- child processes ----

struct ProgramResult {
  int exit_code = -1;  // -1: killed at the deadline or by a signal
  std::string out;     // stdout
  std::string err;     // stderr
  bool timed_out = false;
};

// Runs argv[0] (searched in PATH) with the arguments, captures its output, kills it at the
// deadline.
ProgramResult RunProgram(const std::vector<std::string>& argv, int64_t timeout_ms);

// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` and returns what it printed (stdout).
std::string RedisCli(uint16_t port, const std::vector<std::string>& args,
                     int64_t timeout_ms = 20000);

// ---- the cluster ----

struct HttpResult {
  int status = -1;  // HTTP status, -1 when the request failed (refused, timeout)
  std::string body;
  Json json;  // the body parsed, or null
};

struct ClusterOptions {
  int nodes = 3;
  // Flags given to every node's `synod start`, e.g. {"--snapshot-entries", "100"}.
  std::vector<std::string> flags;
  // --shards for every node. One data shard by default: most suites test one Raft group's
  // behaviour through the node (failover, isolation, crashes, commands), and a node's /status
  // then names that group's leader as "the leader". 0 is Synod's default layout (two shards
  // per node), which the sharding suites use.
  int shards = 1;
  bool fault_hooks = true;
  bool start = true;        // start the nodes in the constructor
  bool wait_leader = true;  // and wait until one is leader
  int64_t leader_wait_ms = 15000;
};

class TestCluster {
 public:
  explicit TestCluster(ClusterOptions options = {});
  ~TestCluster();
  TestCluster(const TestCluster&) = delete;
  TestCluster& operator=(const TestCluster&) = delete;

  // The node ids, in order (1..N, then nodes added with AddNode).
  std::vector<uint64_t> ids() const;
  const std::string& dir() const { return dir_; }
  uint16_t client_port(uint64_t id) const { return node(id).client_port; }
  std::string client_address(uint64_t id) const;
  std::string admin_address(uint64_t id) const;
  // Started and not killed/terminated (a SIGSTOPped node still counts as running).
  bool running(uint64_t id) const { return node(id).pid > 0; }
  bool stopped(uint64_t id) const { return node(id).sigstopped; }
  // Whether the process exited on its own (reaps it if so).
  bool Exited(uint64_t id);

  // Process control, by PID.
  void Start(uint64_t id);
  void Kill9(uint64_t id);
  void Stop(uint64_t id);  // SIGSTOP
  void Cont(uint64_t id);  // SIGCONT
  // SIGTERM, then waits up to timeout_ms for the exit. Returns the exit code, or -1 if it did
  // not exit in time (it is then killed) or died of a signal.
  int Term(uint64_t id, int64_t timeout_ms = 10000);
  // Starts the node again with the same flags and data (killing it first if it runs).
  void Restart(uint64_t id);
  // kill -9, then starts the node again on a new client port (its data and other ports kept).
  void RestartOnNewClientPort(uint64_t id);
  // Starts a new node with a fresh data directory and `--join <admin of join_via>`.
  // Returns its id.
  uint64_t AddNode(uint64_t join_via, const std::vector<std::string>& extra_flags = {});

  // GET /status of one node (null on failure, also for an unknown id such as 0).
  Json Status(uint64_t id, int64_t timeout_ms = 1500) const;
  // A number of node `id`'s /status ("commit", "applied", "term", ...), 0 on failure.
  uint64_t StatusNumber(uint64_t id, const char* field) const;
  HttpResult Admin(uint64_t id, const std::string& method, const std::string& path,
                   int64_t timeout_ms = 5000) const;
  // Polls the running, not stopped nodes (or only `among`) until one reports role "leader".
  // When several do (a deposed leader that has not heard yet), the highest term wins. Then
  // waits up to 2 s more for the others polled to name it as their leader (a follower that has
  // not heard from a new leader refuses writes at once). Returns its id, or 0 on timeout.
  uint64_t WaitForLeader(int64_t timeout_ms, const std::vector<uint64_t>& among = {}) const;
  // Waits until node `id` applied at least `index`. Returns whether it did in time.
  bool WaitForApplied(uint64_t id, uint64_t index, int64_t timeout_ms) const;
  // The running, not stopped node ids other than `except`.
  std::vector<uint64_t> LiveIds(uint64_t except = 0) const;

  // The last `lines` lines of the node's log.
  std::string LogTail(uint64_t id, size_t lines = 40) const;
  // Prints every node's log tail to stderr.
  void DumpLogs() const;
  const std::string& synod_bin() const { return bin_; }

 private:
  struct Node {
    uint64_t id = 0;
    uint16_t client_port = 0, peer_port = 0, admin_port = 0;
    std::string data;
    std::string log;
    std::vector<std::string> args;  // the full argv of `synod start`
    pid_t pid = 0;
    bool sigstopped = false;
  };

  Node& node(uint64_t id);
  const Node& node(uint64_t id) const;
  Node MakeNode(uint64_t id, const std::vector<uint16_t>& ports) const;
  std::string InitialCluster() const;
  void StartAnchor();
  void Reap(Node& n);

  ClusterOptions options_;
  std::string bin_;
  std::string dir_;
  pid_t pgid_ = 0;  // the anchor's pid, the group of every node
  std::map<uint64_t, Node> nodes_;
};

// Connections to every node of the cluster, by id; one that fails is reported (EXPECT).
std::map<uint64_t, std::unique_ptr<Redis>> ConnectAll(const TestCluster& c);

// Waits (up to 15 s) until a sharded cluster of `shards` data shards has settled: every live
// node's CLUSTER SLOTS names each shard's preferred leader (its first voter, from `synod shards
// --json`) as the master of its range. The first elections spread leaders at random and the
// nodes then hand each shard to its preferred leader, which changes the map once more; a test
// that reads the map (or counts leaders) waits for this first. False on timeout.
bool WaitForPreferredLeaders(const TestCluster& c, size_t shards);

// Binds `count` distinct free ports on 127.0.0.1 (held together, then released).
std::vector<uint16_t> PickPorts(size_t count);

}  // namespace synod::e2e
