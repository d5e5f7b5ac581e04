#include "sim/workload.h"

#include "common/assert.h"

namespace synod::sim {

namespace {

std::string KeyName(int k) { return "k" + std::to_string(k); }

}  // namespace

bool CertainlyNotApplied(Code c) {
  switch (c) {
    case Code::kProposalDropped:
    case Code::kUnavailable:
    case Code::kNotLeader:
    case Code::kResourceExhausted:
    case Code::kInvalidArgument:
    case Code::kIoError:
      return true;
    default:
      return false;
  }
}

Workload::Workload(EventLoop* loop, env::Random* rng, SimCluster* cluster, WorkloadOptions opts)
    : loop_(loop), rng_(rng), cluster_(cluster), opts_(opts), script_rng_(opts.script_seed) {
  clients_.resize(static_cast<size_t>(opts_.clients));
  for (int i = 0; i < opts_.clients; ++i) {
    Client& c = clients_[static_cast<size_t>(i)];
    c.index = i;
    c.client_id = 1000 + static_cast<uint64_t>(i);
    c.last_seen.resize(static_cast<size_t>(opts_.keys));
  }
}

void Workload::Start(int64_t stop_at) {
  stop_at_ = stop_at;
  for (int i = 0; i < opts_.clients; ++i) {
    loop_->After(rng_->Range(0, opts_.think_ns_max), [this, i] { Next(i); });
  }
}

void Workload::StartFinalReads() {
  for (int i = 0; i < opts_.clients; ++i) {
    Client& c = clients_[static_cast<size_t>(i)];
    c.final_phase = true;
    for (int k = 0; k < opts_.keys; ++k) c.final_keys.push_back(KeyName(k));
    if (!c.busy) loop_->After(0, [this, i] { Next(i); });
  }
}

void Workload::RecordFlush(int64_t client, int64_t call_ns, std::optional<int64_t> return_ns) {
  for (int k = 0; k < opts_.keys; ++k) {
    check::Operation rec;
    rec.client = client;
    rec.type = check::OpType::kDel;
    rec.key = KeyName(k);
    rec.call_ns = call_ns;
    rec.return_ns = return_ns.value_or(0);
    rec.unknown = !return_ns.has_value();
    history_.push_back(std::move(rec));
  }
}

bool Workload::Idle() const {
  for (const Client& c : clients_) {
    if (c.busy || (c.final_phase && !c.final_keys.empty())) return false;
  }
  return true;
}

kv::Command Workload::RandomCommand(Client& cl, check::OpType* type) {
  int k = static_cast<int>(rng_->Uniform(static_cast<uint64_t>(opts_.keys)));
  kv::Command cmd;
  cmd.key = KeyName(k);
  uint64_t dice = rng_->Uniform(100);
  std::string value = "c" + std::to_string(cl.index) + "-" + std::to_string(++cl.value_counter);
  if (dice < 40) {
    cmd.op = kv::Op::kGet;
    *type = check::OpType::kGet;
    return cmd;
  }
  cmd.client_id = cl.client_id;
  cmd.seq = ++cl.seq;
  if (dice < 75) {
    cmd.op = kv::Op::kPut;
    cmd.value = value;
    *type = check::OpType::kPut;
  } else if (dice < 90) {
    cmd.op = kv::Op::kCas;
    cmd.value = value;
    cmd.expected = cl.last_seen[static_cast<size_t>(k)];
    *type = check::OpType::kCas;
  } else {
    cmd.op = kv::Op::kDel;
    *type = check::OpType::kDel;
  }
  return cmd;
}

void Workload::Next(int c) {
  Client& cl = clients_[static_cast<size_t>(c)];
  if (cl.busy) return;
  if (cl.final_phase) {
    if (cl.final_keys.empty()) return;
    kv::Command cmd;
    cmd.op = kv::Op::kGet;
    cmd.key = cl.final_keys.back();
    cl.final_keys.pop_back();
    Issue(c, std::move(cmd), check::OpType::kGet);
    return;
  }
  if (loop_->now() >= stop_at_) return;
  check::OpType type;
  kv::Command cmd = RandomCommand(cl, &type);
  Issue(c, std::move(cmd), type);
}

void Workload::Issue(int c, kv::Command cmd, check::OpType type) {
  Client& cl = clients_[static_cast<size_t>(c)];
  cl.busy = true;
  cl.rec = check::Operation{};
  cl.rec.client = static_cast<int64_t>(cl.client_id);
  cl.rec.type = type;
  cl.rec.key = cmd.key;
  if (type == check::OpType::kPut || type == check::OpType::kCas) cl.rec.value = cmd.value;
  if (type == check::OpType::kCas) cl.rec.expected = cmd.expected;
  cl.rec.call_ns = loop_->now();
  // A share of the compare-and-sets go as the EVAL script (sharded clusters: scripts run on
  // the routed shard's leader). A script carries no session: its sequence number stays free.
  cl.script = type == check::OpType::kCas && cluster_->sharded() &&
              script_rng_.Uniform(100) < static_cast<uint64_t>(opts_.script_cas_percent);
  if (cl.script) {
    --cl.seq;
    cmd.client_id = 0;
    cmd.seq = 0;
  }
  cl.cmd = std::move(cmd);
  cl.deadline = loop_->now() + opts_.op_deadline_ns;
  cl.maybe_applied = false;
  cl.op_attempt_base = cl.attempt;
  Attempt(c);
}

void Workload::Attempt(int c) {
  Client& cl = clients_[static_cast<size_t>(c)];
  if (loop_->now() >= cl.deadline) {
    Finish(c, nullptr);
    return;
  }
  uint64_t attempt = ++cl.attempt;
  std::vector<NodeId> ids = cluster_->AllIds();
  NodeId target = ids[rng_->Uniform(ids.size())];
  if (cl.script) {
    const kv::Command& cmd = cl.cmd;
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kScript;
    req.keys = 1;
    req.args = {kScriptCas, cmd.key, cmd.expected ? "1" : "0", cmd.expected.value_or(""),
                cmd.value};
    cluster_->SubmitRequest(target, cmd.key, std::move(req),
                            [this, c, attempt](cluster::ClientReply r) { OnReply(c, attempt, r); });
  } else {
    cluster_->Submit(target, cl.cmd, cluster::ReadMode::kLinearizable,
                     [this, c, attempt](cluster::ClientReply r) { OnReply(c, attempt, r); });
  }
  loop_->After(opts_.attempt_timeout_ns, [this, c, attempt] {
    Client& cl = clients_[static_cast<size_t>(c)];
    if (!cl.busy || cl.attempt != attempt) return;
    cl.maybe_applied = true;  // the request may have reached a node and been applied
    // A script is not idempotent and holds no session: sent again, it could apply twice (or
    // see its own first attempt's write). Its outcome stays unknown.
    if (cl.script) return Finish(c, nullptr);
    Attempt(c);
  });
}

void Workload::OnReply(int c, uint64_t attempt, const cluster::ClientReply& r) {
  Client& cl = clients_[static_cast<size_t>(c)];
  // Attempt numbers grow across operations: a reply to an attempt of an earlier operation
  // says nothing about this one.
  if (!cl.busy || attempt <= cl.op_attempt_base) return;
  if (cl.script) {
    // The script's reply is 1 (swapped) or 0. An error reply (its keys kept changing, or moved
    // to another shard) applied nothing, nor does a refusal; a timeout may have applied it,
    // and a script is not idempotent: the operation then ends with an unknown outcome.
    if (r.status.ok() && r.reply.type == kv::ReplyType::kInteger) return Finish(c, &r);
    if (attempt != cl.attempt) return;
    if (!(r.status.ok() || CertainlyNotApplied(r.status.code()))) {
      cl.maybe_applied = true;
      return Finish(c, nullptr);
    }
    cl.attempt++;
    loop_->After(opts_.retry_backoff_ns, [this, c] { Attempt(c); });
    return;
  }
  // A success is definitive whichever attempt it answers: with one operation in flight per
  // client and the same sequence number on every attempt, it describes this operation.
  if (r.status.ok() && r.reply.ok()) {
    Finish(c, &r);
    return;
  }
  if (attempt != cl.attempt) return;
  if (r.status.ok() && r.reply.code == kv::ReplyCode::kSessionExpired) {
    // The state machine no longer knows this client (its first command never applied, or the
    // session was evicted): continue as a new client. This attempt was not applied, but an
    // earlier one still in flight may be, later, under the old id (seq 1 applied late opens the
    // session): then retrying under a new id could apply the operation twice, and the old
    // attempt's success would name a command that never ran. So unless every earlier attempt
    // was certainly refused, the operation ends with an unknown outcome.
    cl.client_id += 1000;
    cl.seq = cl.maybe_applied ? 0 : 1;
    if (cl.maybe_applied) return Finish(c, nullptr);
    cl.cmd.client_id = cl.client_id;
    cl.cmd.seq = 1;
  } else if (!r.status.ok() && CertainlyNotApplied(r.status.code())) {
    // This attempt certainly did nothing; an earlier one may still have.
  } else {
    cl.maybe_applied = true;
  }
  cl.attempt++;  // retire this attempt's timer
  loop_->After(opts_.retry_backoff_ns, [this, c] { Attempt(c); });
}

void Workload::Finish(int c, const cluster::ClientReply* r) {
  Client& cl = clients_[static_cast<size_t>(c)];
  cl.busy = false;
  cl.attempt++;
  check::Operation rec = cl.rec;
  rec.return_ns = loop_->now();
  bool is_write = rec.type != check::OpType::kGet;
  size_t k = static_cast<size_t>(std::stoi(rec.key.substr(1)));
  if (r == nullptr) {
    // Never learned the outcome. A read tells nothing; a write may or may not have happened.
    if (is_write && !cl.maybe_applied) {
      // Every attempt was refused before reaching the log: it certainly did not happen, and
      // its sequence number is free for the next write (a script holds none).
      if (!cl.script) --cl.seq;
    } else {
      rec.unknown = true;
      history_.push_back(std::move(rec));
      ++ops_unknown_;
    }
  } else {
    switch (rec.type) {
      case check::OpType::kGet:
        rec.value = r->reply.value;
        cl.last_seen[k] = r->reply.value;
        break;
      case check::OpType::kCas:
        rec.ok = cl.script ? r->reply.number == 1 : r->reply.success;
        if (rec.ok) cl.last_seen[k] = rec.value;
        if (cl.script) ++scripts_ok_;
        break;
      case check::OpType::kPut:
        cl.last_seen[k] = rec.value;
        break;
      case check::OpType::kDel:
        cl.last_seen[k] = std::nullopt;
        break;
    }
    if (is_write && !cl.script) acked_.insert({cl.cmd.client_id, cl.cmd.seq});
    history_.push_back(std::move(rec));
    ++ops_ok_;
  }
  const int64_t at = AfterQuietSpell(loop_->now() + rng_->Range(0, opts_.think_ns_max),
                                     opts_.idle_every_ns, opts_.idle_ns);
  loop_->After(at - loop_->now(), [this, c] { Next(c); });
}

int64_t AfterQuietSpell(int64_t at, int64_t idle_every_ns, int64_t idle_ns) {
  if (idle_every_ns <= 0 || idle_ns <= 0) return at;
  const int64_t start = at / idle_every_ns * idle_every_ns;
  return at < start + idle_ns ? start + idle_ns : at;
}

}  // namespace synod::sim
