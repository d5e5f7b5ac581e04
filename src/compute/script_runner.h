// ScriptRunner: runs scripts on the shards this node leads (cluster::ScriptService) — the
// decision logic of scripting, shared by the real node and the simulator. Pure: time, and
// "run this later on this thread", come from the host (Env).
//
// A script request (ShardRequest::kScript) for a shard led here:
//  1. Latch: it waits until none of its declared keys is held by another script of the shard
//     (first come, first served), then holds them. Writes to held keys wait too (HoldWrite);
//     commands on other keys carry on. Once a script has run longer than busy_threshold_ms,
//     writes and reads of its keys are answered BUSY instead (Redis's busy-reply-threshold).
//  2. Run: in slices of slice_ns on the host's thread, each slice against the leader replica's
//     state machine as it is then (ScriptView: the script's own copies of its keys); between
//     slices the host handles everything else, so heartbeats and other shards never wait more
//     than a slice. A replica that stopped leading (or went) between slices ends the run with
//     kNotLeader: nothing was applied, and the router runs the script again at the new leader.
//  3. Commit: a script that wrote proposes its effects as one batch entry carrying every key it
//     touched with the version it saw (kv's WATCH check): applied whole, at one point, or refused
//     whole when any of those keys changed meanwhile (a write admitted before the latch, an
//     expiry, a leader change) — then the script runs again, up to kAttemptsMax times, else
//     TRYAGAIN. A script that wrote nothing confirms its reads at a linearizable read point
//     (ReadIndex): the versions must still hold there, else it runs again. A READONLY
//     connection's read-only script answers from its run at once.
// So a script's reads and writes take effect at one point between its call and its answer, and
// a leader deposed while a script ran never has effects computed from stale reads applied: they
// are refused by the version check wherever they end up.
//
// Thread-safety: none; the host's core thread (or the simulator's one thread).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/logic/router.h"
#include "cluster/logic/store.h"
#include "common/log.h"
#include "compute/lua_engine.h"
#include "compute/script_view.h"

namespace synod::compute {

struct ScriptRunnerOptions {
  // A slice of a run, in ns of the host's steady clock, and the pause after it before the next
  // one: a long script gets at most slice / (slice + pause) of the core thread, and every
  // other request waits at most a slice per step it takes through the event loop. Default
  // 1 ms and 1 ms.
  int64_t slice_ns = 1'000'000;
  int64_t slice_pause_ns = 1'000'000;
  // Redis's busy-reply-threshold (lua-time-limit): past it, commands on a script's keys get
  // BUSY. Default 5 s.
  int64_t busy_threshold_ms = 5000;
  // A run that cannot pause (inside a C function) is stopped after this long past its slice.
  int64_t unpausable_ms = 1000;
  LuaEngineOptions engine;
  // Effects are proposed in an at-most-once session of the runner's own per shard (a client id
  // drawn from this seed, a sequence number per proposal). Draw it at random per start.
  uint64_t session_seed = 1;
  // A planted bug for the simulator: a script's effects are proposed without the versions of
  // what it read, so effects computed from stale reads (a deposed or lagging leader's) apply.
  bool testing_bug_unchecked_effects = false;
};

class ScriptRunner : public cluster::ScriptService {
 public:
  struct Env {
    std::function<int64_t()> wall_ms;    // a script's time (Unix ms)
    std::function<int64_t()> steady_ns;  // slices and the busy threshold
    // Runs `fn` on this thread after `delay_ns` (0: soon), after the host's other work.
    std::function<void(int64_t delay_ns, std::function<void()> fn)> post;
  };

  static constexpr int kAttemptsMax = 8;

  // REQUIRES: store outlives the runner.
  static Result<std::unique_ptr<ScriptRunner>> Create(cluster::Store* store, Env env,
                                                      ScriptRunnerOptions opts, Logger logger);
  ~ScriptRunner() override;

  // cluster::ScriptService
  void Run(const cluster::ShardRequest& req, cluster::ReplyFn reply) override;
  bool HoldWrite(GroupId group, const kv::Command& cmd, std::function<void()> go,
                 cluster::ReplyFn reply) override;
  bool ReadBusy(GroupId group, const std::vector<std::string>& argv) override;
  int Kill(GroupId group, bool functions) override;

  // Every host tick: writes waiting behind a script past the busy threshold get BUSY.
  void Tick();
  // Answers every run and waiting write (the node is stopping). The destructor answers
  // nothing.
  void Stop();

  // The node's script cache (SCRIPT LOAD, EXISTS, FLUSH, EVALSHA's lookup).
  LuaEngine& engine() { return *engine_; }
  void set_busy_threshold_ms(int64_t ms) { opts_.busy_threshold_ms = ms; }
  int64_t busy_threshold_ms() const { return opts_.busy_threshold_ms; }

  struct Counters {
    uint64_t runs = 0;       // scripts started (attempts included)
    uint64_t conflicts = 0;  // runs again because a key changed
    uint64_t killed = 0;
    uint64_t pauses = 0;  // slices that ended before the script did
  };
  const Counters& counters() const { return counters_; }
  size_t running() const { return jobs_.size(); }

 private:
  struct Job;
  using JobPtr = std::shared_ptr<Job>;
  struct Waiter {
    JobPtr job;                     // a script waiting for its keys, or
    std::vector<std::string> keys;  // a write's keys,
    std::function<void()> go;       // what lets it go on,
    cluster::ReplyFn reply;         // and where its BUSY goes
  };

  ScriptRunner(cluster::Store* store, Env env, ScriptRunnerOptions opts, Logger logger);
  void Admit(const JobPtr& job);
  bool KeysFree(GroupId group, const std::vector<std::string>& keys) const;
  // Lets the waiters of `group` whose keys are free go, in order.
  void Release(const JobPtr& job);
  void Latch(const JobPtr& job);
  void Step(const JobPtr& job);
  void Commit(const JobPtr& job);
  void Again(const JobPtr& job);
  void Finish(const JobPtr& job, cluster::ClientReply reply);
  // The script holding a key of `keys` in `group` for longer than the busy threshold.
  bool Busy(GroupId group, const std::vector<std::string>& keys) const;

  cluster::Store* store_;
  Env env_;
  ScriptRunnerOptions opts_;
  Logger logger_;
  std::unique_ptr<LuaEngine> engine_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, JobPtr> jobs_;
  std::map<GroupId, std::unordered_map<std::string, JobPtr>> held_;
  std::map<GroupId, std::deque<Waiter>> waiting_;
  // Each shard's at-most-once session of the runner (the replica matches an answer to its
  // proposal by it): an id, and the last sequence number used under it.
  struct Session {
    uint64_t client_id = 0;
    uint64_t seq = 0;
  };
  std::map<GroupId, Session> sessions_;
  uint64_t session_generation_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Counters counters_;
};

}  // namespace synod::compute
