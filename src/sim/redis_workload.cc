#include "sim/redis_workload.h"

#include <utility>

#include "common/assert.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "sim/workload.h"

namespace synod::sim {

namespace {

// Far above the checked workload's ids (1000 + i, plus 1000 per expired session).
constexpr uint64_t kClientIdBase = uint64_t{1} << 40;

bool Is(const kv::Args& argv, std::string_view name) {
  return !argv.empty() && kv::redis::EqualsIgnoreCase(argv[0], name);
}

}  // namespace

RedisWorkload::RedisWorkload(EventLoop* loop, env::Random* rng, SimCluster* cluster,
                             RedisWorkloadOptions opts, FlushFn on_flush)
    : loop_(loop),
      rng_(rng),
      cluster_(cluster),
      opts_(opts),
      on_flush_(std::move(on_flush)),
      clients_(static_cast<size_t>(opts.clients)),
      next_client_id_(kClientIdBase) {
  for (Client& c : clients_) c.client_id = next_client_id_++;
}

void RedisWorkload::Start(int64_t stop_at) {
  stop_at_ = stop_at;
  for (int i = 0; i < opts_.clients; ++i) {
    loop_->After(rng_->Range(0, opts_.think_ns_max), [this, i] { Next(i); });
  }
}

bool RedisWorkload::Idle() const {
  for (const Client& c : clients_) {
    if (c.busy) return false;
  }
  return true;
}

void RedisWorkload::Abandon() {
  for (Client& c : clients_) {
    if (c.busy && c.flush && c.kind == Kind::kWrite) {
      on_flush_(static_cast<int64_t>(c.client_id), c.call_ns, std::nullopt);
    }
    c.busy = false;
    c.attempt++;
  }
}

std::string RedisWorkload::Key() {
  // A sharded cluster: one hash tag keeps every key in one shard, so that the multi-key
  // commands (RENAME, COPY, MSET, MULTI/EXEC) stay single-shard.
  return (cluster_->sharded() ? "{r}" : "r") +
         std::to_string(rng_->Uniform(static_cast<uint64_t>(opts_.keys)));
}

std::string RedisWorkload::Value(Client& cl) {
  // Numbers half of the time, so that INCR finds integers as often as not.
  if (rng_->Chance(0.5)) return std::to_string(rng_->Range(-5, 100));
  return "v" + std::to_string(cl.client_id % 1000) + "-" + std::to_string(++cl.value_counter);
}

std::string RedisWorkload::Ttl(int64_t lo, int64_t hi) {
  return std::to_string(rng_->Range(lo, hi));
}

kv::Args RedisWorkload::RandomSet(Client& cl) {
  kv::Args a{"SET", Key(), Value(cl)};
  uint64_t ttl = rng_->Uniform(4);
  if (ttl == 0) a.insert(a.end(), {"PX", Ttl(10, kTtlMaxMs)});
  if (ttl == 1) a.insert(a.end(), {"EX", "1"});
  if (ttl == 2 && rng_->Chance(0.3)) a.push_back("KEEPTTL");
  uint64_t cond = rng_->Uniform(4);
  if (cond == 0) a.push_back("NX");
  if (cond == 1) a.push_back("XX");
  if (rng_->Chance(0.2)) a.push_back("GET");
  return a;
}

kv::Args RedisWorkload::RandomExpire() {
  kv::Args a;
  uint64_t kind = rng_->Uniform(10);
  if (kind < 4) {
    a = {"EXPIRE", Key(), Ttl(1, kTtlMaxMs / 1000)};
  } else if (kind < 9) {
    a = {"PEXPIRE", Key(), Ttl(10, kTtlMaxMs)};
  } else {
    a = {"PEXPIRE", Key(), Ttl(-5, 0)};  // deletes the key at once
  }
  const char* flags[] = {"NX", "XX", "GT", "LT"};
  if (rng_->Chance(0.4)) a.push_back(flags[rng_->Uniform(4)]);
  return a;
}

// One write command; `in_batch` leaves out FLUSHALL (only a standalone one is reported).
kv::Args RedisWorkload::RandomWrite(Client& cl, bool in_batch) {
  uint64_t dice = rng_->Uniform(100);
  if (dice < 25) return RandomSet(cl);
  if (dice < 33) return {"INCR", Key()};
  if (dice < 39) return {"APPEND", Key(), Value(cl)};
  if (dice < 45) return rng_->Chance(0.5) ? kv::Args{"DEL", Key()} : kv::Args{"DEL", Key(), Key()};
  if (dice < 60) return RandomExpire();
  if (dice < 65) return {"PERSIST", Key()};
  if (dice < 71) return {"GETEX", Key(), "PX", Ttl(10, kTtlMaxMs)};
  if (dice < 76) return {"GETDEL", Key()};
  if (dice < 81) return {"RENAME", Key(), Key()};
  if (dice < 87) {
    kv::Args a{"COPY", Key(), Key()};
    if (rng_->Chance(0.5)) a.push_back("REPLACE");
    return a;
  }
  if (dice < 93) return {"MSET", Key(), Value(cl), Key(), Value(cl)};
  // A read inside EXEC, applied in the log. No FLUSHALL in a sharded cluster: it would reach
  // one shard only (the server scatters it; the simulator routes by key).
  if (dice < 99 || in_batch || cluster_->sharded()) return {"GET", Key()};
  return {"FLUSHALL"};
}

kv::Args RedisWorkload::RandomRead() {
  switch (rng_->Uniform(7)) {
    case 0:
      return {"GET", Key()};
    case 1:
      return {"TTL", Key()};
    case 2:
      return {"PTTL", Key()};
    case 3:
      return {"EXISTS", Key(), Key()};
    case 4:
      return {"SCAN", "0", "COUNT", "5"};
    case 5:
      return {"DBSIZE"};
    default:
      return {"PEXPIRETIME", Key()};
  }
}

kv::Command RedisWorkload::RandomBatch(Client& cl) {
  kv::Command b;
  b.op = kv::Op::kBatch;
  b.now_ms = 1;  // timed: the node that receives it stamps its clock
  int64_t n = rng_->Range(2, 4);
  for (int64_t i = 0; i < n; ++i) {
    kv::Command sub;
    sub.op = kv::Op::kRedis;
    sub.args = RandomWrite(cl, true);
    b.batch.push_back(std::move(sub));
  }
  return b;
}

void RedisWorkload::Next(int c) {
  Client& cl = clients_[static_cast<size_t>(c)];
  if (cl.busy || loop_->now() >= stop_at_) return;
  cl.busy = true;
  cl.flush = false;
  cl.maybe_applied = false;
  cl.call_ns = loop_->now();
  cl.deadline = loop_->now() + opts_.op_deadline_ns;
  cl.op_attempt_base = cl.attempt;
  uint64_t dice = rng_->Uniform(100);
  if (dice < 25) {
    cl.kind = Kind::kRead;
    cl.argv = RandomRead();
    // Some reads are READONLY (stale) ones: a lagging replica's view of expiry.
    cl.mode = rng_->Chance(0.3) ? cluster::ReadMode::kStale : cluster::ReadMode::kLinearizable;
  } else if (dice < 45) {
    cl.cmd = RandomBatch(cl);
    cl.kind = Kind::kWrite;
    if (rng_->Chance(0.5)) {  // MULTI/EXEC after WATCH: read the versions first
      cl.kind = Kind::kWatch;
      cl.mode = cluster::ReadMode::kLinearizable;
      cl.watch_keys = {Key()};
      if (rng_->Chance(0.5)) cl.watch_keys.push_back(Key());
    }
  } else {
    cl.kind = Kind::kWrite;
    cl.cmd = kv::Command{};
    cl.cmd.op = kv::Op::kRedis;
    cl.cmd.args = RandomWrite(cl, false);
    cl.cmd.now_ms = 1;
    cl.flush = Is(cl.cmd.args, "FLUSHALL");
  }
  if (cl.kind == Kind::kWrite) {
    cl.cmd.client_id = cl.client_id;
    cl.cmd.seq = ++cl.seq;
  }
  Attempt(c);
}

cluster::ReadFn RedisWorkload::ReadFn(NodeId target, const Client& cl) const {
  const SimCluster* cluster = cluster_;
  if (cl.kind == Kind::kRead) {
    return [cluster, target, argv = cl.argv](const kv::StateMachine& sm) {
      return kv::ExecuteRedisRead(sm.keyspace(), argv, sm.ReadContext(cluster->WallMs(target)));
    };
  }
  // WATCH: each key's version at the reader's time, and the index they were read at.
  return [cluster, target, keys = cl.watch_keys](const kv::StateMachine& sm) {
    int64_t now = sm.ReadContext(cluster->WallMs(target)).now_ms;
    std::vector<kv::Reply> versions;
    for (const std::string& k : keys) {
      versions.push_back(
          kv::Reply::Int(static_cast<int64_t>(sm.keyspace().VersionOf(k, now).value())));
    }
    kv::Reply r = kv::Reply::Array(std::move(versions));
    r.number = static_cast<int64_t>(sm.applied_index().value());
    return r;
  };
}

void RedisWorkload::Attempt(int c) {
  Client& cl = clients_[static_cast<size_t>(c)];
  if (loop_->now() >= cl.deadline) {
    Finish(c, nullptr);
    return;
  }
  uint64_t attempt = ++cl.attempt;
  // Nodes that are up (a spare never started would only eat the attempt's timeout).
  std::vector<NodeId> ids = cluster_->UpIds();
  if (ids.empty()) ids = cluster_->AllIds();
  NodeId target = ids[rng_->Uniform(ids.size())];
  auto on_reply = [this, c, attempt](cluster::ClientReply r) { OnReply(c, attempt, r); };
  if (cl.kind == Kind::kWrite) {
    cluster_->Submit(target, cl.cmd, cluster::ReadMode::kLinearizable, on_reply);
  } else if (cluster_->sharded()) {
    // Routed by slot like any request: a Redis read, or WATCH's versions, as the request
    // channel carries them.
    cluster::ShardRequest req;
    req.mode = cl.mode;
    if (cl.kind == Kind::kRead) {
      req.type = cluster::ShardRequest::Type::kRead;
      req.args = cl.argv;
    } else {
      req.type = cluster::ShardRequest::Type::kVersions;
      req.args = cl.watch_keys;
    }
    // Keyless reads (SCAN, DBSIZE) go to the shard of the workload's keys.
    std::string route = "{r}";
    if (cl.kind != Kind::kRead) {
      route = req.args[0];
    } else if (!Is(req.args, "SCAN") && !Is(req.args, "DBSIZE") && req.args.size() > 1) {
      route = req.args[1];
    }
    cluster_->SubmitRequest(target, route, std::move(req), on_reply);
  } else {
    cluster_->SubmitRead(target, ReadFn(target, cl), cl.mode, on_reply);
  }
  loop_->After(opts_.attempt_timeout_ns, [this, c, attempt] {
    Client& cl = clients_[static_cast<size_t>(c)];
    if (!cl.busy || cl.attempt != attempt) return;
    if (cl.kind == Kind::kWrite) cl.maybe_applied = true;
    Attempt(c);
  });
}

void RedisWorkload::OnReply(int c, uint64_t attempt, const cluster::ClientReply& r) {
  Client& cl = clients_[static_cast<size_t>(c)];
  if (!cl.busy || attempt <= cl.op_attempt_base) return;
  if (r.status.ok() && r.reply.code == kv::ReplyCode::kBadCommand) {
    cluster_->ReportViolation("redis workload: a well-formed command was refused as bad: " +
                              (cl.cmd.args.empty() ? std::string("batch") : cl.cmd.args[0]));
    return;
  }
  if (r.status.ok() && r.reply.ok()) {
    if (cl.kind != Kind::kWatch) return Finish(c, &r);
    StartWatchedWrite(cl, r.reply);
    // A client thinks between WATCH and EXEC; the longer, the likelier a conflict.
    loop_->After(rng_->Range(0, opts_.watch_exec_ns_max), [this, c] { Attempt(c); });
    return;
  }
  if (attempt != cl.attempt) return;
  bool write = cl.kind == Kind::kWrite;
  if (write && r.status.ok() && r.reply.code == kv::ReplyCode::kSessionExpired) {
    // A new client id; the operation goes on under it only when no earlier attempt can still
    // apply it under the old one (see Workload::OnReply).
    cl.client_id = next_client_id_++;
    cl.seq = cl.maybe_applied ? 0 : 1;
    if (cl.maybe_applied) return Finish(c, nullptr);
    cl.cmd.client_id = cl.client_id;
    cl.cmd.seq = 1;
  } else if (write && (r.status.ok() || !CertainlyNotApplied(r.status.code()))) {
    cl.maybe_applied = true;
  }
  cl.attempt++;  // retire this attempt's timer
  loop_->After(opts_.retry_backoff_ns, [this, c] { Attempt(c); });
}

// The versions are read: the batch goes out as EXEC with them as its watches.
void RedisWorkload::StartWatchedWrite(Client& cl, const kv::Reply& versions) {
  SYNOD_ASSERT(versions.replies.size() == cl.watch_keys.size());
  cl.cmd.watches.clear();
  for (size_t i = 0; i < cl.watch_keys.size(); ++i) {
    cl.cmd.watches.emplace_back(cl.watch_keys[i],
                                LogIndex(static_cast<uint64_t>(versions.replies[i].number)));
  }
  cl.cmd.watch_index = LogIndex(static_cast<uint64_t>(versions.number));
  cl.cmd.client_id = cl.client_id;
  cl.cmd.seq = ++cl.seq;
  cl.kind = Kind::kWrite;
  cl.maybe_applied = false;
  cl.op_attempt_base = ++cl.attempt;  // retires the read's timer; its replies no longer count
}

void RedisWorkload::Finish(int c, const cluster::ClientReply* r) {
  Client& cl = clients_[static_cast<size_t>(c)];
  cl.busy = false;
  cl.attempt++;
  bool write = cl.kind == Kind::kWrite;
  if (r == nullptr) {
    ++ops_failed_;
    if (write && !cl.maybe_applied) {
      --cl.seq;  // certainly not applied: the sequence number is free again
    } else if (write && cl.flush) {
      on_flush_(static_cast<int64_t>(cl.client_id), cl.call_ns, std::nullopt);
    }
  } else {
    ++ops_ok_;
    if (write) acked_.insert({cl.cmd.client_id, cl.cmd.seq});
    if (write && cl.flush) {
      on_flush_(static_cast<int64_t>(cl.client_id), cl.call_ns, loop_->now());
    }
    if (write && cl.cmd.op == kv::Op::kBatch) {
      ++(r->reply.type == kv::ReplyType::kNullArray ? execs_aborted_ : execs_committed_);
    }
    if (!write) CheckRead(cl, r->reply);
  }
  const int64_t at = AfterQuietSpell(loop_->now() + rng_->Range(0, opts_.think_ns_max),
                                     opts_.idle_every_ns, opts_.idle_ns);
  loop_->After(at - loop_->now(), [this, c] { Next(c); });
}

// No key can have more time to live than the longest TTL ever set, give or take the skew
// between the clock that stamped it and the clock that reads it.
void RedisWorkload::CheckRead(const Client& cl, const kv::Reply& reply) {
  if (reply.type != kv::ReplyType::kInteger) return;
  int64_t bound_ms = kTtlMaxMs + 2 * opts_.wall_skew_ms_max;
  int64_t ttl_ms = -1;
  if (Is(cl.argv, "PTTL")) ttl_ms = reply.number;
  if (Is(cl.argv, "TTL")) ttl_ms = reply.number * 1000 - 500;  // TTL rounds to the nearest second
  if (ttl_ms > bound_ms) {
    cluster_->ReportViolation(
        fmt::format("redis workload: {} {} = {} exceeds the longest TTL set "
                    "({} ms) plus twice the clock skew",
                    cl.argv[0], cl.argv[1], reply.number, kTtlMaxMs));
  }
}

}  // namespace synod::sim
