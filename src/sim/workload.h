// Workload: simulated clients issuing GET / PUT / DEL / CAS against the cluster and recording
// every operation for the linearizability checker.
//
// Each client has one operation in flight. An attempt goes to a random node and is retried
// (with the same client id and sequence number, so the state machine applies a write at most
// once) on timeouts and refusals until the operation's deadline. A write whose outcome was
// never learned is recorded as unknown; a read that never returned is recorded as unknown too
// (the checker ignores it).
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "check/operation.h"
#include "env/random.h"
#include "sim/cluster.h"
#include "sim/event_loop.h"

namespace synod::sim {

// Whether a refusal with this code means the command certainly never entered the log (so a
// retry cannot apply it twice and its sequence number may be reused).
bool CertainlyNotApplied(Code c);

struct WorkloadOptions {
  int clients = 6;
  int keys = 3;
  int64_t attempt_timeout_ns = 300 * kMilli;
  int64_t op_deadline_ns = 2 * kSecond;
  int64_t think_ns_max = 5 * kMilli;
  int64_t retry_backoff_ns = 20 * kMilli;
  // Quiet spells: no client starts an operation during [k*idle_every_ns, +idle_ns) for every
  // k, so that the cluster goes idle (groups quiesce) and must wake on the next request.
  // 0: none.
  int64_t idle_every_ns = 0;
  int64_t idle_ns = 0;
  // Sharded clusters: this share (0..100) of the compare-and-sets are an EVAL script
  // (kScriptCas) run by the key's shard leader, checked like the kv CAS. Drawn from a random
  // source of its own (`script_seed`), so the other draws stay as they were.
  int script_cas_percent = 0;
  uint64_t script_seed = 1;
};

// The compare-and-set as a script: KEYS[1]; ARGV[1] "1" when a value is expected (ARGV[2])
// and "0" when the key must be absent; ARGV[3] the new value. Returns 1 when it swapped.
inline constexpr char kScriptCas[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local ok = (ARGV[1] == '0' and v == false) or (ARGV[1] == '1' and v == ARGV[2]) "
    "if ok then redis.call('SET', KEYS[1], ARGV[3]) return 1 end return 0";

// `at`, or the end of the quiet spell it falls in (WorkloadOptions::idle_every_ns).
int64_t AfterQuietSpell(int64_t at, int64_t idle_every_ns, int64_t idle_ns);

class Workload {
 public:
  Workload(EventLoop* loop, env::Random* rng, SimCluster* cluster, WorkloadOptions opts);

  // Clients issue operations until virtual time `stop_at`.
  void Start(int64_t stop_at);
  // Each client reads every key once more (after the faults healed): a lost write shows up
  // in these reads.
  void StartFinalReads();
  bool Idle() const;
  // Another client's FLUSHALL (RedisWorkload) deleted every key between call_ns and
  // return_ns, or may have after call_ns (nullopt): recorded as a delete of each checked key,
  // so the checker knows of it. A FLUSHALL is atomic; per-key deletes are what a per-key
  // checker can use of it.
  void RecordFlush(int64_t client, int64_t call_ns, std::optional<int64_t> return_ns);

  const check::History& history() const { return history_; }
  // Writes acknowledged OK, by (client id, seq): each must have been applied.
  const std::set<std::pair<uint64_t, uint64_t>>& acked_writes() const { return acked_; }
  uint64_t ops_ok() const { return ops_ok_; }
  uint64_t ops_unknown() const { return ops_unknown_; }
  uint64_t scripts_ok() const { return scripts_ok_; }

 private:
  struct Client {
    int index = 0;
    uint64_t client_id = 0;
    uint64_t seq = 0;
    uint64_t value_counter = 0;
    bool busy = false;
    bool final_phase = false;
    std::vector<std::string> final_keys;
    // The operation in flight.
    check::Operation rec;
    kv::Command cmd;
    int64_t deadline = 0;
    bool maybe_applied = false;
    uint64_t attempt = 0;
    uint64_t op_attempt_base = 0;  // attempts of the operation in flight are > this
    std::vector<std::optional<std::string>> last_seen;  // per key, for CAS expectations
    bool script = false;  // the operation in flight is the script CAS (no session)
  };

  void Next(int c);
  void Issue(int c, kv::Command cmd, check::OpType type);
  void Attempt(int c);
  void OnReply(int c, uint64_t attempt, const cluster::ClientReply& r);
  void Finish(int c, const cluster::ClientReply* r);
  kv::Command RandomCommand(Client& cl, check::OpType* type);

  EventLoop* loop_;
  env::Random* rng_;
  SimCluster* cluster_;
  WorkloadOptions opts_;
  std::vector<Client> clients_;
  int64_t stop_at_ = 0;
  env::Random script_rng_{1};
  uint64_t scripts_ok_ = 0;
  check::History history_;
  std::set<std::pair<uint64_t, uint64_t>> acked_;
  uint64_t ops_ok_ = 0;
  uint64_t ops_unknown_ = 0;
};

}  // namespace synod::sim
