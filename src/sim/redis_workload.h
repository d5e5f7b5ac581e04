// RedisWorkload: background clients issuing Redis commands (kv::Op::kRedis), MULTI/EXEC
// batches with and without WATCH, and Redis reads, alongside the checked Workload.
//
// Its purpose is to drive the paths the checked workload does not: relative TTLs stamped by
// skewed node clocks and restamped by the leader, the leader's replicated expiry, WATCH
// versions, FLUSHALL. Its replies are not checked against a model; what catches bugs is the
// cluster's invariants (replicas at one index hold one digest, so expiry must be deterministic),
// the final check that expired keys were collected, "no acknowledged write lost", and a bound
// on TTLs: no PTTL read may exceed the longest TTL the workload sets plus twice the clock skew.
//
// Keys are "r0".."rN" (the checked workload's are "k0".."kM"), so it never touches the checked
// keys, except through FLUSHALL: every FLUSHALL is reported through `on_flush` so that the
// checked history can record it as a delete of each checked key.
//
// Sessions are at-most-once like the checked workload's: one operation in flight per client,
// retried with the same (client id, seq) until its deadline, a new client id after
// kSessionExpired. Every operation is bounded by its deadline.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "env/random.h"
#include "kv/command.h"
#include "sim/cluster.h"
#include "sim/event_loop.h"

namespace synod::sim {

struct RedisWorkloadOptions {
  int clients = 2;
  int keys = 8;
  int64_t attempt_timeout_ns = 300 * kMilli;
  int64_t op_deadline_ns = 2 * kSecond;
  int64_t think_ns_max = 40 * kMilli;
  int64_t retry_backoff_ns = 20 * kMilli;
  int64_t watch_exec_ns_max = 50 * kMilli;  // between reading the WATCH versions and EXEC
  // The cluster's bound on wall clock skew (ClusterOptions::wall_skew_ms_max): a TTL read on
  // one node of a key stamped on another may look longer by up to twice it.
  int64_t wall_skew_ms_max = 0;
  // Quiet spells, as WorkloadOptions's.
  int64_t idle_every_ns = 0;
  int64_t idle_ns = 0;
};

class RedisWorkload {
 public:
  // A FLUSHALL that took effect (return_ns set) or may have (nullopt) after call_ns.
  using FlushFn =
      std::function<void(int64_t client, int64_t call_ns, std::optional<int64_t> return_ns)>;

  RedisWorkload(EventLoop* loop, env::Random* rng, SimCluster* cluster, RedisWorkloadOptions opts,
                FlushFn on_flush);

  // Clients issue operations until virtual time `stop_at`.
  void Start(int64_t stop_at);
  bool Idle() const;
  // The run is over: a FLUSHALL still in flight is reported as of unknown outcome.
  void Abandon();

  // The longest TTL any command of the workload sets, in ms.
  static constexpr int64_t kTtlMaxMs = 2000;

  // Writes acknowledged OK, by (client id, seq): each must have been applied.
  const std::set<std::pair<uint64_t, uint64_t>>& acked_writes() const { return acked_; }
  uint64_t ops_ok() const { return ops_ok_; }
  uint64_t ops_failed() const { return ops_failed_; }
  uint64_t execs_committed() const { return execs_committed_; }
  uint64_t execs_aborted() const { return execs_aborted_; }

 private:
  enum class Kind : uint8_t { kRead, kWatch, kWrite };
  struct Client {
    uint64_t client_id = 0;
    uint64_t seq = 0;
    uint64_t value_counter = 0;
    bool busy = false;
    // The operation in flight.
    Kind kind = Kind::kRead;
    kv::Args argv;  // kRead: the read command
    cluster::ReadMode mode = cluster::ReadMode::kLinearizable;
    std::vector<std::string> watch_keys;  // kWatch: the keys whose versions are read first
    kv::Command cmd;                      // kWatch (then kWrite): the write
    bool flush = false;                   // the write is a FLUSHALL
    int64_t call_ns = 0;
    int64_t deadline = 0;
    bool maybe_applied = false;
    uint64_t attempt = 0;
    uint64_t op_attempt_base = 0;  // attempts of the operation in flight are > this
  };

  void Next(int c);
  void Attempt(int c);
  void OnReply(int c, uint64_t attempt, const cluster::ClientReply& r);
  void StartWatchedWrite(Client& cl, const kv::Reply& versions);
  void Finish(int c, const cluster::ClientReply* r);
  void CheckRead(const Client& cl, const kv::Reply& reply);
  cluster::ReadFn ReadFn(NodeId target, const Client& cl) const;

  std::string Key();
  std::string Value(Client& cl);
  std::string Ttl(int64_t lo, int64_t hi);
  kv::Args RandomWrite(Client& cl, bool in_batch);
  kv::Args RandomSet(Client& cl);
  kv::Args RandomExpire();
  kv::Args RandomRead();
  kv::Command RandomBatch(Client& cl);

  EventLoop* loop_;
  env::Random* rng_;
  SimCluster* cluster_;
  RedisWorkloadOptions opts_;
  FlushFn on_flush_;
  std::vector<Client> clients_;
  uint64_t next_client_id_;
  int64_t stop_at_ = 0;
  std::set<std::pair<uint64_t, uint64_t>> acked_;
  uint64_t ops_ok_ = 0;
  uint64_t ops_failed_ = 0;
  uint64_t execs_committed_ = 0;
  uint64_t execs_aborted_ = 0;
};

}  // namespace synod::sim
