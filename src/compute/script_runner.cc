#include "compute/script_runner.h"

#include <algorithm>
#include <unordered_set>

#include "common/assert.h"
#include "kv/redis.h"

namespace synod::compute {

namespace {

constexpr char kBusy[] =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
constexpr char kKilled[] = "ERR Script killed by user with SCRIPT KILL...";

// The keys a write touches (a Redis command, or a batch of them).
void KeysOf(const kv::Command& cmd, std::vector<std::string>* out) {
  if (cmd.op == kv::Op::kBatch) {
    for (const kv::Command& sub : cmd.batch) KeysOf(sub, out);
    return;
  }
  if (cmd.op != kv::Op::kRedis || cmd.args.empty()) {
    if (!cmd.key.empty()) out->push_back(cmd.key);
    return;
  }
  const kv::RedisCommand* rc = kv::FindRedisCommand(cmd.args[0]);
  if (rc == nullptr) return;
  for (size_t p : kv::KeyPositions(*rc, cmd.args.size())) out->push_back(cmd.args[p]);
}

cluster::ClientReply ReplyOf(kv::Reply r, LogIndex index = LogIndex()) {
  cluster::ClientReply cr;
  cr.reply = std::move(r);
  cr.index = index;
  return cr;
}

}  // namespace

struct ScriptRunner::Job {
  uint64_t id = 0;
  GroupId group;
  std::string sha;
  std::vector<std::string> keys;
  std::vector<std::string> args;
  bool read_only = false;
  int protocol = 2;
  cluster::ReadMode mode = cluster::ReadMode::kLinearizable;
  cluster::ReplyFn reply;
  int attempt = 0;
  int64_t started_ns = 0;  // when it first held its keys
  int64_t slice_start_ns = 0;
  bool holds = false;     // its keys are latched
  bool proposed = false;  // its effects (or its read check) are out: no longer killable
  bool killed = false;
  bool functions = false;  // FCALL (FUNCTION KILL), not EVAL (SCRIPT KILL)
  std::unique_ptr<ScriptView> view;
  std::unique_ptr<LuaRun> run;
};

Result<std::unique_ptr<ScriptRunner>> ScriptRunner::Create(cluster::Store* store, Env env,
                                                           ScriptRunnerOptions opts,
                                                           Logger logger) {
  std::unique_ptr<ScriptRunner> r(
      new ScriptRunner(store, std::move(env), std::move(opts), std::move(logger)));
  auto engine = LuaEngine::Create(r->opts_.engine);
  if (!engine.ok()) return engine.status();
  r->engine_ = std::move(engine).value();
  return r;
}

ScriptRunner::ScriptRunner(cluster::Store* store, Env env, ScriptRunnerOptions opts, Logger logger)
    : store_(store), env_(std::move(env)), opts_(std::move(opts)), logger_(std::move(logger)) {}

ScriptRunner::~ScriptRunner() {
  *alive_ = false;
  Stop();
}

void ScriptRunner::Run(const cluster::ShardRequest& req, cluster::ReplyFn reply) {
  auto job = std::make_shared<Job>();
  job->id = next_id_++;
  job->group = req.group;
  job->read_only = (req.flags & cluster::ShardRequest::kScriptReadOnly) != 0;
  job->protocol = (req.flags & cluster::ShardRequest::kScriptResp3) != 0 ? 3 : 2;
  job->mode = req.mode;
  job->reply = std::move(reply);
  Result<std::string> sha = engine_->Load(req.args[0]);
  if (!sha.ok()) {
    auto done = std::move(job->reply);
    return done(ReplyOf(kv::Reply::Err(std::string(sha.status().message()))));
  }
  job->sha = std::move(sha).value();
  job->keys.assign(req.args.begin() + 1, req.args.begin() + 1 + req.keys);
  job->args.assign(req.args.begin() + 1 + req.keys, req.args.end());
  jobs_.emplace(job->id, job);
  Admit(job);
}

bool ScriptRunner::KeysFree(GroupId group, const std::vector<std::string>& keys) const {
  auto it = held_.find(group);
  if (it == held_.end()) return true;
  for (const std::string& k : keys) {
    if (it->second.contains(k)) return false;
  }
  return true;
}

void ScriptRunner::Admit(const JobPtr& job) {
  // First come, first served: behind anyone already waiting in this shard.
  auto wit = waiting_.find(job->group);
  if ((wit == waiting_.end() || wit->second.empty()) && KeysFree(job->group, job->keys)) {
    Latch(job);
    return Again(job);
  }
  Waiter w;
  w.job = job;
  w.keys = job->keys;
  waiting_[job->group].push_back(std::move(w));
}

void ScriptRunner::Latch(const JobPtr& job) {
  auto& held = held_[job->group];
  for (const std::string& k : job->keys) held[k] = job;
  job->holds = true;
  job->started_ns = env_.steady_ns();
}

// A new attempt: a fresh run over fresh copies of the keys.
void ScriptRunner::Again(const JobPtr& job) {
  ++counters_.runs;
  ++job->attempt;
  job->proposed = false;
  const cluster::Replica* r = store_->replica(job->group);
  int64_t now = env_.wall_ms();
  if (r != nullptr) now = std::max(now, r->state_machine().ReadContext(now).now_ms);
  ScriptViewOptions vo;
  vo.now_ms = now;
  vo.read_only = job->read_only;
  vo.random = static_cast<uint64_t>(env_.steady_ns());
  vo.log = [this, sha = job->sha](int level, std::string_view msg) {
    if (level >= 3) {
      logger_.Warn("event=script_log script={} message=\"{}\"", sha, msg);
    } else {
      logger_.Info("event=script_log script={} level={} message=\"{}\"", sha, level, msg);
    }
  };
  job->view = std::make_unique<ScriptView>(std::move(vo));
  LuaEngine::RunOptions ro;
  ro.caller_protocol = job->protocol;
  ro.should_pause = [this, j = job.get()] {
    return env_.steady_ns() - j->slice_start_ns > opts_.slice_ns;
  };
  const int64_t hook_ns = 20'000;  // about what kHookInstructions cost; a bound, not a clock
  ro.unpausable_hooks_max = std::max<int64_t>(1, opts_.unpausable_ms * 1'000'000 / hook_ns);
  job->run.reset();
  job->run = engine_->Start(job->sha, job->keys, job->args, job->view.get(), std::move(ro));
  Step(job);
}

void ScriptRunner::Step(const JobPtr& job) {
  if (job->reply == nullptr) return;  // answered (Stop)
  const cluster::Replica* r = store_->replica(job->group);
  const bool leads =
      r != nullptr && r->IsMember() && r->raw_node().raft().role() == raft::Role::kLeader;
  if (!leads && !job->killed) {
    cluster::ClientReply cr;
    cr.status =
        Status::NotLeader("this node stopped leading shard " + std::to_string(job->group.value()) +
                          " while a script ran; nothing of it was applied");
    return Finish(job, std::move(cr));
  }
  job->view->set_state(r != nullptr ? &r->state_machine() : nullptr);
  job->slice_start_ns = env_.steady_ns();
  const LuaRun::State s = job->run->Resume();
  job->view->set_state(nullptr);
  if (s == LuaRun::State::kPaused) {
    ++counters_.pauses;
    env_.post([this, job, alive = alive_] {
      if (*alive) Step(job);
    });
    return;
  }
  if (job->killed) {
    ++counters_.killed;
    return Finish(job, ReplyOf(kv::Reply::Err(kKilled)));
  }
  Commit(job);
}

void ScriptRunner::Commit(const JobPtr& job) {
  job->proposed = true;
  ScriptView& view = *job->view;
  auto again_or = [this, job](cluster::ClientReply on_give_up) {
    ++counters_.conflicts;
    if (job->attempt >= kAttemptsMax) return Finish(job, std::move(on_give_up));
    Again(job);
  };
  if (view.effects().empty()) {
    if (job->mode == cluster::ReadMode::kStale || view.Watches().empty()) {
      return Finish(job, ReplyOf(job->run->TakeResult()));
    }
    // Confirm the reads at a linearizable point: the versions seen must hold there.
    store_->SubmitRead(
        job->group,
        [watches = view.Watches(), at = view.watch_index(),
         now = view.now_ms()](const kv::StateMachine& sm) {
          const kv::Keyspace& ks = sm.keyspace();
          const int64_t t = sm.ReadContext(now).now_ms;
          bool same = !(at < ks.flush_index() || at < ks.tombstone_floor());
          for (size_t i = 0; same && i < watches.size(); ++i) {
            same = ks.VersionOf(watches[i].first, t) == watches[i].second;
          }
          return kv::Reply::Int(same ? 1 : 0);
        },
        cluster::ReadMode::kLinearizable,
        [this, job, again_or, alive = alive_](cluster::ClientReply cr) {
          if (!*alive || job->reply == nullptr) return;
          if (!cr.status.ok()) return Finish(job, std::move(cr));
          if (cr.reply.number == 1) return Finish(job, ReplyOf(job->run->TakeResult()));
          again_or(ReplyOf(kv::Reply::Err(
              "TRYAGAIN the script's keys kept changing while it ran; nothing was applied")));
        });
    return;
  }
  kv::Command batch;
  batch.op = kv::Op::kBatch;
  batch.now_ms = view.now_ms();
  if (!opts_.testing_bug_unchecked_effects) {
    batch.watches = view.Watches();
    batch.watch_index = view.watch_index();
  }
  batch.slots = view.slots();
  // The runner's session for the shard: a proposal is never sent twice, so the session only
  // satisfies the replica's rule that writes carry one (sessions are bounded; one per shard).
  batch.client_id = (opts_.session_seed ^ (job->group.value() * 0x9e3779b97f4a7c15ull)) | 1;
  batch.seq = ++seqs_[job->group];
  for (std::vector<std::string>& argv : job->view->TakeEffects()) {
    kv::Command sub;
    sub.op = kv::Op::kRedis;
    sub.args = std::move(argv);
    batch.batch.push_back(std::move(sub));
  }
  store_->Submit(job->group, batch, cluster::ReadMode::kLinearizable,
                 [this, job, again_or, alive = alive_](cluster::ClientReply cr) {
                   if (!*alive || job->reply == nullptr) return;
                   if (!cr.status.ok()) return Finish(job, std::move(cr));
                   // The runner's session was evicted: the next proposal starts a new one.
                   if (cr.reply.code == kv::ReplyCode::kSessionExpired) seqs_[job->group] = 0;
                   if (cr.reply.type == kv::ReplyType::kNullArray ||
                       cr.reply.code == kv::ReplyCode::kStaleRequest ||
                       cr.reply.code == kv::ReplyCode::kSessionExpired) {
                     return again_or(ReplyOf(kv::Reply::Err(
                         "TRYAGAIN the script's keys kept changing while it ran; nothing was "
                         "applied")));
                   }
                   if (cr.reply.code == kv::ReplyCode::kWrongShard) {
                     cluster::ClientReply moved;
                     moved.status = Status::NotLeader(
                         "the script's keys moved to another shard while it ran; nothing was "
                         "applied");
                     return Finish(job, std::move(moved));
                   }
                   Finish(job, ReplyOf(job->run->TakeResult(), cr.index));
                 });
}

void ScriptRunner::Finish(const JobPtr& job, cluster::ClientReply reply) {
  if (job->reply == nullptr) return;
  auto done = std::move(job->reply);
  job->reply = nullptr;
  jobs_.erase(job->id);
  job->run.reset();
  Release(job);
  done(std::move(reply));
}

void ScriptRunner::Release(const JobPtr& job) {
  if (job->holds) {
    job->holds = false;
    auto it = held_.find(job->group);
    if (it != held_.end()) {
      for (const std::string& k : job->keys) {
        auto h = it->second.find(k);
        if (h != it->second.end() && h->second == job) it->second.erase(h);
      }
      if (it->second.empty()) held_.erase(it);
    }
  }
  auto wit = waiting_.find(job->group);
  if (wit == waiting_.end()) return;
  // In order; a waiter goes when its keys are free and no earlier waiter still waiting wants
  // one of them.
  std::deque<Waiter>& q = wit->second;
  std::unordered_set<std::string> claimed;
  std::vector<Waiter> go;
  std::vector<JobPtr> start;
  for (auto it = q.begin(); it != q.end();) {
    bool free = KeysFree(job->group, it->keys);
    for (const std::string& k : it->keys) free = free && !claimed.contains(k);
    if (free && it->job) {  // a script holds its keys from here: later waiters see them held
      Latch(it->job);
      start.push_back(it->job);
      it = q.erase(it);
      continue;
    }
    if (free) {
      go.push_back(std::move(*it));
      it = q.erase(it);
      continue;
    }
    for (const std::string& k : it->keys) claimed.insert(k);
    ++it;
  }
  if (q.empty()) waiting_.erase(wit);
  // Only now, with the queue settled: a run may finish at once and release again.
  for (const JobPtr& j : start) Again(j);
  for (Waiter& w : go) w.go();
}

bool ScriptRunner::HoldWrite(GroupId group, const kv::Command& cmd, std::function<void()> go,
                             cluster::ReplyFn reply) {
  if (held_.empty() && waiting_.empty()) return false;
  std::vector<std::string> keys;
  KeysOf(cmd, &keys);
  if (keys.empty()) return false;
  auto wit = waiting_.find(group);
  bool behind = false;  // an earlier waiter wants one of these keys: keep the order
  if (wit != waiting_.end()) {
    for (const Waiter& w : wit->second) {
      for (const std::string& k : w.keys) {
        behind = behind || std::find(keys.begin(), keys.end(), k) != keys.end();
      }
    }
  }
  if (!behind && KeysFree(group, keys)) return false;
  if (Busy(group, keys)) {
    reply(ReplyOf(kv::Reply::Err(kBusy)));
    return true;
  }
  Waiter w;
  w.keys = std::move(keys);
  w.go = std::move(go);
  w.reply = std::move(reply);
  waiting_[group].push_back(std::move(w));
  return true;
}

bool ScriptRunner::Busy(GroupId group, const std::vector<std::string>& keys) const {
  auto it = held_.find(group);
  if (it == held_.end()) return false;
  const int64_t now = env_.steady_ns();
  for (const std::string& k : keys) {
    auto h = it->second.find(k);
    if (h != it->second.end() &&
        now - h->second->started_ns > opts_.busy_threshold_ms * 1'000'000) {
      return true;
    }
  }
  return false;
}

bool ScriptRunner::ReadBusy(GroupId group, const std::vector<std::string>& argv) {
  if (held_.empty() || argv.empty()) return false;
  const kv::RedisCommand* rc = kv::FindRedisCommand(argv[0]);
  if (rc == nullptr) return false;
  std::vector<std::string> keys;
  for (size_t p : kv::KeyPositions(*rc, argv.size())) keys.push_back(argv[p]);
  return Busy(group, keys);
}

int ScriptRunner::Kill(GroupId group, bool functions) {
  int n = 0;
  std::vector<JobPtr> victims;
  for (auto& [id, job] : jobs_) {
    if (job->group == group && job->functions == functions && !job->proposed && !job->killed) {
      victims.push_back(job);
    }
  }
  for (const JobPtr& job : victims) {
    ++n;
    if (!job->holds) {  // still waiting for its keys: answered now
      auto wit = waiting_.find(group);
      if (wit != waiting_.end()) {
        auto& q = wit->second;
        q.erase(std::remove_if(q.begin(), q.end(), [&](const Waiter& w) { return w.job == job; }),
                q.end());
        if (q.empty()) waiting_.erase(wit);
      }
      ++counters_.killed;
      Finish(job, ReplyOf(kv::Reply::Err(kKilled)));
      continue;
    }
    job->killed = true;
    if (job->run) job->run->Kill(kKilled);  // ends at its next slice
  }
  return n;
}

void ScriptRunner::Tick() {
  for (auto git = waiting_.begin(); git != waiting_.end();) {
    std::deque<Waiter>& q = git->second;
    for (auto it = q.begin(); it != q.end();) {
      if (!it->job && Busy(git->first, it->keys)) {
        auto reply = std::move(it->reply);
        it = q.erase(it);
        reply(ReplyOf(kv::Reply::Err(kBusy)));
      } else {
        ++it;
      }
    }
    git = q.empty() ? waiting_.erase(git) : std::next(git);
  }
}

void ScriptRunner::Stop() {
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& [g, q] : waiting) {
    for (Waiter& w : q) {
      if (w.job) continue;
      cluster::ClientReply cr;
      cr.status = Status::Unavailable("the node is shutting down");
      w.reply(std::move(cr));
    }
  }
  auto jobs = std::move(jobs_);
  jobs_.clear();
  held_.clear();
  for (auto& [id, job] : jobs) {
    if (job->reply == nullptr) continue;
    auto done = std::move(job->reply);
    job->reply = nullptr;
    job->run.reset();
    cluster::ClientReply cr;
    cr.status = job->proposed
                    ? Status::Timeout(
                          "the node shut down; the script may or may not have been "
                          "applied")
                    : Status::Unavailable("the node shut down; nothing of the script was applied");
    done(std::move(cr));
  }
}

}  // namespace synod::compute
