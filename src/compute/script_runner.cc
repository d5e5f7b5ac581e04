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
  std::string function;    // FCALL: the function of the library job->sha names
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

// Answers nothing (a crashed node does not): the host calls Stop() first when it should. The
// runs go now, with the engine: a job may outlive the runner in a replica's pending answer.
ScriptRunner::~ScriptRunner() {
  *alive_ = false;
  for (auto& [id, job] : jobs_) {
    job->run.reset();
    job->reply = nullptr;
  }
  for (auto& [g, q] : waiting_) {
    for (Waiter& w : q) {
      if (w.job) w.job->run.reset();
    }
  }
}

void ScriptRunner::Run(const cluster::ShardRequest& req, cluster::ReplyFn reply) {
  auto job = std::make_shared<Job>();
  job->id = next_id_++;
  job->group = req.group;
  job->read_only = (req.flags & cluster::ShardRequest::kScriptReadOnly) != 0;
  job->protocol = (req.flags & cluster::ShardRequest::kScriptResp3) != 0 ? 3 : 2;
  job->mode = req.mode;
  job->reply = std::move(reply);
  job->functions = (req.flags & cluster::ShardRequest::kScriptFunction) != 0;
  const size_t fixed = job->functions ? 2 : 1;
  auto refuse = [&job](std::string_view text) {
    auto done = std::move(job->reply);
    done(ReplyOf(kv::Reply::Err(std::string(text))));
  };
  if (req.args.size() < fixed + req.keys) return refuse("ERR malformed script request");
  if (job->functions) {
    Result<const LibraryInfo*> lib = engine_->LoadLibrary(req.args[0]);
    if (!lib.ok()) return refuse(lib.status().message());
    const FunctionInfo* f = (*lib)->Find(req.args[1]);
    if (f == nullptr) return refuse("ERR Function not found");
    job->sha = (*lib)->sha;
    job->function = req.args[1];
    job->read_only = job->read_only || f->no_writes;
  } else {
    Result<std::string> sha = engine_->Load(req.args[0]);
    if (!sha.ok()) return refuse(sha.status().message());
    job->sha = std::move(sha).value();
  }
  job->keys.assign(req.args.begin() + fixed, req.args.begin() + fixed + req.keys);
  job->args.assign(req.args.begin() + fixed + req.keys, req.args.end());
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
  if (job->functions) {
    // The library is cached by its code's SHA1 (Run loaded it; a flush in between reloads it
    // from the same code, which Run no longer has: then the run ends with an error).
    const LibraryInfo* lib = engine_->FindLibrary(job->sha);
    const FunctionInfo* f = lib == nullptr ? nullptr : lib->Find(job->function);
    if (f == nullptr) {
      return Finish(
          job,
          ReplyOf(kv::Reply::Err("ERR the function's library left this node's cache; try again")));
    }
    job->run =
        engine_->StartFunction(*lib, *f, job->keys, job->args, job->view.get(), std::move(ro));
  } else {
    if (!engine_->Has(job->sha)) {
      return Finish(
          job,
          ReplyOf(kv::Reply::Err("ERR the script left this node's cache while it ran; try again")));
    }
    job->run = engine_->Start(job->sha, job->keys, job->args, job->view.get(), std::move(ro));
  }
  Step(job);
}

void ScriptRunner::Step(const JobPtr& job) {
  if (job->reply == nullptr) return;  // answered (Stop)
  const cluster::Replica* r = store_->replica(job->group);
  // A READONLY connection's read-only script runs on any replica (stale, as its reads are).
  const bool stale = job->mode == cluster::ReadMode::kStale && job->read_only;
  const bool leads = r != nullptr && r->IsMember() &&
                     (stale || r->raw_node().raft().role() == raft::Role::kLeader);
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
    env_.post(opts_.slice_pause_ns, [this, job, alive = alive_] {
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
  Session& session = sessions_[job->group];
  if (session.client_id == 0) {
    session.client_id = (opts_.session_seed ^ (job->group.value() * 0x9e3779b97f4a7c15ull) ^
                         (++session_generation_ * 0xbf58476d1ce4e5b9ull)) |
                        1;
  }
  batch.client_id = session.client_id;
  batch.seq = ++session.seq;
  for (std::vector<std::string>& argv : job->view->TakeEffects()) {
    kv::Command sub;
    sub.op = kv::Op::kRedis;
    sub.args = std::move(argv);
    batch.batch.push_back(std::move(sub));
  }
  store_->Submit(
      job->group, batch, cluster::ReadMode::kLinearizable,
      [this, job, again_or, cr_client_id = batch.client_id,
       alive = alive_](cluster::ClientReply cr) {
        if (!*alive || job->reply == nullptr) return;
        if (!cr.status.ok()) return Finish(job, std::move(cr));
        // The runner's session was evicted: the next proposal opens a new one under a
        // new id (never the old id again: a proposal still in flight under it could
        // apply later and make a reused sequence number a duplicate).
        if (cr.reply.code == kv::ReplyCode::kSessionExpired) {
          Session& s = sessions_[job->group];
          if (s.client_id == cr_client_id) s = Session{};
        }
        if (cr.reply.type == kv::ReplyType::kNullArray ||
            cr.reply.code == kv::ReplyCode::kStaleRequest ||
            cr.reply.code == kv::ReplyCode::kSessionExpired) {
          return again_or(ReplyOf(
              kv::Reply::Err("TRYAGAIN the script's keys kept changing while it ran; nothing was "
                             "applied")));
        }
        if (!cr.reply.ok() && cr.reply.code != kv::ReplyCode::kWrongShard) {
          // Refused whole for another reason (the entry did not decode, say).
          return Finish(job, ReplyOf(kv::Reply::Err("ERR the script's writes were refused: " +
                                                    std::string(cr.reply.message()))));
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
