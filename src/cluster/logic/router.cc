#include "cluster/logic/router.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <string>
#include <utility>

#include "cluster/logic/merge.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "raft/raft.h"

namespace synod::cluster {

namespace {

// A decimal u64 (a merge token).
bool ParseToken(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

struct RequestRouter::Attempt {
  ShardRequest req;
  ResponseFn done;
  int64_t deadline_ns = 0;
  int attempt = 0;
  bool maybe_applied = false;  // a write hop ended without a definite answer
  Status last_error;
  int waited = 0;                   // ticks waited for the local replica to know a leader
  bool waiting_for_leader = false;  // in waiting_ for that reason
};

RequestRouter::RequestRouter(RouterOptions opts, ShardMap* map, Store* store,
                             RequestTransport* transport, Logger logger)
    : opts_(opts),
      map_(map),
      store_(store),
      transport_(transport),
      logger_(std::move(logger)),
      next_request_id_(opts.first_request_id) {}

RequestRouter::~RequestRouter() { *alive_ = false; }

NodeId RequestRouter::LeaderHint(GroupId group, uint64_t* term) const {
  const Replica* r = store_->replica(group);
  if (r != nullptr && r->IsMember()) {
    const raft::Raft& raft = r->raw_node().raft();
    // The newer term wins: a replica cut off (or removed without knowing it) keeps naming an
    // old leader, while a refusal or a notice names the one of a later term. At the same term
    // the replica's view wins when it knows a leader.
    const uint64_t mine = raft.term().value();
    const uint64_t heard = map_->leader_term(group);
    if (mine > heard || (mine == heard && raft.lead() != kNoNode)) {
      if (term != nullptr) *term = mine;
      return raft.lead();
    }
  }
  if (term != nullptr) *term = map_->leader_term(group);
  // This node leads no replica of the group (it was removed or merged away since it last led
  // it): naming itself would send every asker back here for good.
  if (map_->leader(group) == opts_.self) return kNoNode;
  return map_->leader(group);
}

void RequestRouter::StampLeader(GroupId group, ShardResponse* r) const {
  r->leader = LeaderHint(group, &r->term);
}

void RequestRouter::Call(ShardRequest req, ResponseFn done, int64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  auto a = std::make_shared<Attempt>();
  a->req = std::move(req);
  a->done = std::move(done);
  a->deadline_ns = now_ns + (opts_.request_timeout_ms + 1000) * 1'000'000;
  Step(a, now_ns);
}

void RequestRouter::Step(const AttemptPtr& a, int64_t now_ns) {
  auto finish = [&a](Status s) {
    ShardResponse r;
    r.status = std::move(s);
    auto done = std::move(a->done);
    done(std::move(r));
  };
  if (stopped_) return finish(Status::Unavailable("the node is shutting down"));
  if (a->req.slots) {
    // Whichever shard owns the keys' slots now: a split since the last try moved them.
    const GroupId owner = map_->ForSlot(a->req.slots->first).group;
    if (map_->ForSlot(a->req.slots->last).group != owner) {
      // Keys of one shard when the command came, of two now: as Redis Cluster answers a
      // multi-key command whose slots are being moved — unless an earlier attempt may have
      // been applied (a lost answer): then that, never "not executed".
      if (a->maybe_applied) {
        return finish(Status::Timeout(
            "no answer from the shard before a split separated the command's keys; it may or "
            "may not have been applied"));
      }
      ShardResponse r;
      r.reply = kv::Reply::Err("TRYAGAIN Multiple keys request during rehashing of slot");
      auto done = std::move(a->done);
      return done(std::move(r));
    }
    a->req.group = owner;
  }
  const GroupId group = a->req.group;
  const ShardDescriptor* desc = map_->Find(group);
  if (desc == nullptr) {
    return finish(Status::InvalidArgument("no shard " + std::to_string(group.value())));
  }
  if (now_ns >= a->deadline_ns) {
    const std::string what = "shard " + std::to_string(group.value());
    if (a->maybe_applied || a->last_error.ok()) {
      return finish(Status::Timeout("no answer from the leader of " + what + " within " +
                                    std::to_string(opts_.request_timeout_ms) + " ms" +
                                    (a->req.type == ShardRequest::Type::kWrite
                                         ? "; it may or may not have been applied"
                                         : "")));
    }
    return finish(a->last_error);
  }
  if (routed() >= opts_.routed_max) {
    return finish(Status::ResourceExhausted("too many requests in flight to other nodes"));
  }
  // Routed by the descriptor held now: a retry after the map learnt a newer one carries it.
  a->req.epoch = desc->epoch;
  const Replica* local = store_->replica(group);
  RouteInput in;
  in.self = opts_.self;
  in.shard = desc;
  in.leader = LeaderHint(group, nullptr);
  // A replica that is no member (removed, or waiting for its first snapshot) may never hear of
  // a leader and holds nothing to serve: the shard counts as not hosted here.
  const bool member = local != nullptr && local->IsMember();
  in.hosted = member;
  in.local_leader = member && local->raw_node().raft().role() == raft::Role::kLeader;
  in.stale_ok =
      a->req.mode == ReadMode::kStale &&
      (a->req.type == ShardRequest::Type::kRead || a->req.type == ShardRequest::Type::kVersions ||
       (a->req.type == ShardRequest::Type::kScript &&
        (a->req.flags & ShardRequest::kScriptReadOnly) != 0));
  in.attempt = a->attempt;
  in.waited = a->waited;
  in.wait_max = opts_.hosted_wait_ticks;
  const RouteDecision d = DecideRoute(in);
  switch (d.action) {
    case RouteAction::kLocal:
      locals_.insert(a);
      ExecuteLocal(a->req, /*from_peer=*/false, [this, a, alive = alive_](ShardResponse r) {
        if (!*alive) return;
        locals_.erase(a);
        if (!a->done) return;  // answered already (Stop)
        // A local timeout: the leader changed or no quorum answered; the write may be applied.
        const bool timed_out = r.status.code() == Code::kTimeout;
        if (timed_out && a->deadline_ns - now_ns_ < opts_.request_timeout_ms * 1'000'000) {
          // Another local try could not end by the request's deadline: it ends here.
          a->maybe_applied = true;
          a->last_error = Status::Ok();
          a->deadline_ns = now_ns_;
          return Step(a, now_ns_);
        }
        OnAttemptResult(a, std::move(r), timed_out, now_ns_);
      });
      return;
    case RouteAction::kForward: {
      const uint64_t id = next_request_id_++;
      const int64_t hop_ms = std::max<int64_t>(500, opts_.request_timeout_ms / 2);
      hops_[id] = Hop{a, d.to, std::min(a->deadline_ns, now_ns + hop_ms * 1'000'000)};
      ++counters_.forwarded;
      transport_->SendRequest(d.to, id, a->req);
      return;
    }
    case RouteAction::kWait:
      a->waiting_for_leader = true;
      waiting_.push_back(a);
      return;
  }
}

void RequestRouter::OnAttemptResult(const AttemptPtr& a, ShardResponse r, bool maybe_applied,
                                    int64_t now_ns) {
  if (!a->done) return;
  if (r.status.ok() && r.reply.code == kv::ReplyCode::kWrongShard) {
    // Refused whole (nothing applied): the slots moved to another shard since it was routed.
    // Sent again once the map knows where (the refusal brought the descriptors).
    r.status = Status::NotLeader("stale route: the slots of the keys moved to another shard");
  }
  const Code code = r.status.code();
  // A script is not retried after a timeout: it may have been applied, and (unlike a write) it
  // carries no session that would apply it at most once.
  const bool retry = code == Code::kNotLeader || code == Code::kProposalDropped ||
                     code == Code::kUnavailable ||
                     (code == Code::kTimeout && a->req.type != ShardRequest::Type::kScript);
  if (!retry || stopped_) {
    r.never_applied_before = a->attempt > 0 && !a->maybe_applied;
    auto done = std::move(a->done);
    done(std::move(r));
    return;
  }
  // A timeout is an unknown outcome, whether this node's replica or the leader's node said so.
  const bool unknown = code == Code::kTimeout && a->req.type == ShardRequest::Type::kWrite;
  a->maybe_applied = a->maybe_applied || maybe_applied || unknown;
  a->last_error = r.status;
  ++a->attempt;
  ++counters_.retries;
  // A refusal that names another leader goes there at once, when that is now this node's best
  // hint too (a later term's hint could send it straight back); otherwise wait a tick (an
  // election, a transfer or a lost quorum takes at least that long to change); so does a stale
  // route (the map may learn the shard's new descriptor meanwhile).
  if (r.leader != kNoNode && r.leader != opts_.self && code == Code::kNotLeader &&
      r.descriptors.empty() && LeaderHint(a->req.group, nullptr) == r.leader) {
    Step(a, now_ns);
  } else {
    waiting_.push_back(a);
  }
}

void RequestRouter::OnResponse(NodeId from, uint64_t id, Result<ShardResponse> resp,
                               int64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  auto it = hops_.find(id);
  if (it == hops_.end() || it->second.to != from) return;  // answered after its hop timed out
  AttemptPtr a = std::move(it->second.attempt);
  hops_.erase(it);
  if (!resp.ok()) {
    logger_.Warn("event=peer_message_dropped reason=undecodable_response from={} error=\"{}\"",
                 from.value(), resp.status().message());
    ShardResponse bad;
    bad.status = Status::Timeout("the node serving it answered what does not decode");
    OnAttemptResult(a, std::move(bad), a->req.type == ShardRequest::Type::kWrite, now_ns);
    return;
  }
  ShardResponse r = std::move(resp).value();
  LearnFrom(from, r);
  if (r.leader != kNoNode || r.term > 0) map_->NoteLeader(a->req.group, r.leader, r.term);
  OnAttemptResult(a, std::move(r), false, now_ns);
}

void RequestRouter::LearnFrom(NodeId from, const ShardResponse& r) {
  // A stale route: learn the answering node's descriptors (only newer epochs replace ours).
  for (const std::string& bytes : r.descriptors) {
    Result<ShardDescriptor> d = DecodeDescriptor(bytes);
    if (d.ok() && map_->Update(*d)) {
      logger_.Info("event=descriptor_learned group={} epoch={} from={}", d->group.value(), d->epoch,
                   from.value());
    }
  }
}

void RequestRouter::AttachDescriptors(const ShardRequest& req, ShardResponse* r) const {
  std::set<GroupId> groups{req.group};
  if (req.slots) {
    groups.insert(map_->ForSlot(req.slots->first).group);
    groups.insert(map_->ForSlot(req.slots->last).group);
  }
  for (GroupId g : groups) {
    if (const ShardDescriptor* d = map_->Find(g)) r->descriptors.push_back(EncodeDescriptor(*d));
  }
}

void RequestRouter::ExpireHops(NodeId peer, int64_t now_ns) {
  std::vector<AttemptPtr> failed;
  for (auto it = hops_.begin(); it != hops_.end();) {
    if ((peer != kNoNode && it->second.to == peer) ||
        (peer == kNoNode && it->second.deadline_ns <= now_ns)) {
      failed.push_back(std::move(it->second.attempt));
      it = hops_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& a : failed) {
    ShardResponse r;
    r.status = Status::Timeout(peer != kNoNode ? "the node serving it became unreachable"
                                               : "the node serving it did not answer");
    // A write sent to a node that went away may have been applied there; try again next tick.
    OnAttemptResult(a, std::move(r), a->req.type == ShardRequest::Type::kWrite, now_ns);
  }
}

void RequestRouter::PeerUnreachable(NodeId peer, int64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  if (peer != kNoNode) ExpireHops(peer, now_ns);
}

void RequestRouter::Tick(int64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  ExpireHops(kNoNode, now_ns);
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& a : waiting) {
    if (std::exchange(a->waiting_for_leader, false)) ++a->waited;
    Step(a, now_ns);
  }
}

void RequestRouter::Stop() {
  if (stopped_) return;
  stopped_ = true;
  auto hops = std::move(hops_);
  auto waiting = std::move(waiting_);
  hops_.clear();
  waiting_.clear();
  for (auto& [id, hop] : hops) waiting.push_back(std::move(hop.attempt));
  // Those handed to this node's replica too: it may never answer now.
  for (const AttemptPtr& a : locals_) waiting.push_back(a);
  locals_.clear();
  for (auto& a : waiting) {
    if (!a->done) continue;
    ShardResponse r;
    r.status = a->req.type == ShardRequest::Type::kWrite
                   ? Status::Timeout("the node shut down; it may or may not have been applied")
                   : Status::Unavailable("the node shut down");
    auto done = std::move(a->done);
    done(std::move(r));
  }
}

void RequestRouter::Serve(NodeId from, uint64_t id, Result<ShardRequest> req) {
  // A script is not idempotent: a request delivered twice (a network that duplicates) runs
  // once. Its ids are unique per sending node and start (RouterOptions::first_request_id).
  if (req.ok() && req->type == ShardRequest::Type::kScript) {
    if (!scripts_seen_.insert({from, id}).second) return;
    scripts_seen_order_.push_back({from, id});
    if (scripts_seen_order_.size() > kScriptsSeenMax) {
      scripts_seen_.erase(scripts_seen_order_.front());
      scripts_seen_order_.pop_front();
    }
  }
  auto respond = [this, from, id, alive = alive_](ShardResponse r) {
    if (!*alive || stopped_) return;
    transport_->SendResponse(from, id, r);
  };
  if (!req.ok()) {
    // Answer it: the sender then fails its client's command at once instead of timing out.
    ShardResponse r;
    r.status = Status::InvalidArgument("request from node " + std::to_string(from.value()) +
                                       " does not decode: " + std::string(req.status().message()));
    return respond(std::move(r));
  }
  ++counters_.served;
  ExecuteLocal(*req, /*from_peer=*/true, std::move(respond));
}

void RequestRouter::ExecuteLocal(const ShardRequest& req, bool from_peer, ResponseFn done) {
  Replica* r = store_->replica(req.group);
  auto refuse = [&](Status s) {
    ShardResponse resp;
    resp.status = std::move(s);
    StampLeader(req.group, &resp);
    done(std::move(resp));
  };
  const ShardDescriptor* desc = map_->Find(req.group);
  // A sender that routed by an older descriptor learns ours. A newer one than ours is the
  // sender's news, not a stale route: the shard's replica (not the map) decides what it holds.
  if (desc != nullptr && req.epoch != 0 && req.epoch < desc->epoch &&
      !opts_.testing_bug_stale_route) {
    ShardResponse resp;
    resp.status = Status::NotLeader("stale route: shard " + std::to_string(req.group.value()) +
                                    " is at epoch " + std::to_string(desc->epoch) + ", not " +
                                    std::to_string(req.epoch));
    AttachDescriptors(req, &resp);
    StampLeader(req.group, &resp);
    return done(std::move(resp));
  }
  if (r == nullptr || desc == nullptr) {
    return refuse(Status::NotLeader("node " + std::to_string(opts_.self.value()) +
                                    " holds no replica of shard " +
                                    std::to_string(req.group.value())));
  }
  const bool leads = r->IsMember() && r->raw_node().raft().role() == raft::Role::kLeader;
  if (from_peer && !leads) {
    return refuse(Status::NotLeader("node " + std::to_string(opts_.self.value()) +
                                    " does not lead shard " + std::to_string(req.group.value())));
  }
  // The answer of a replica's reply, with this node's leader hint (and, when the shard refused
  // the keys' slots, this node's descriptors of where they are).
  ShardRequest head;  // what the refusal's descriptors depend on
  head.group = req.group;
  head.slots = req.slots;
  auto answer = [this, &head, &done]() {
    return [this, req_head = head, done = std::move(done), alive = alive_](ClientReply cr) {
      ShardResponse resp;
      resp.status = std::move(cr.status);
      resp.reply = std::move(cr.reply);
      resp.index = cr.index;
      if (*alive) {
        StampLeader(req_head.group, &resp);
        if (resp.reply.code == kv::ReplyCode::kWrongShard) AttachDescriptors(req_head, &resp);
      }
      done(std::move(resp));
    };
  };
  // A read checks the keys' slots against the shard's when it runs (a write: when it applies).
  const std::optional<SlotRange> check = opts_.testing_bug_stale_route ? std::nullopt : req.slots;
  const ReadMode mode = from_peer ? ReadMode::kLinearizable : req.mode;
  switch (req.type) {
    case ShardRequest::Type::kWrite: {
      if (req.command.op != kv::Op::kGet) ++counters_.proposals;
      if (req.command.op != kv::Op::kGet && leads && req.slots)
        ++writes_[req.group][req.slots->first];
      kv::Command cmd = req.command;
      if (req.slots) cmd.slots = req.slots;
      ReplyFn reply = answer();
      // A key a script holds: the write waits for it (or is answered BUSY).
      if (scripts_ != nullptr && leads &&
          scripts_->HoldWrite(
              req.group, cmd,
              [this, group = req.group, cmd, reply, alive = alive_] {
                if (*alive) store_->Submit(group, cmd, ReadMode::kLinearizable, reply);
              },
              reply)) {
        break;
      }
      store_->Submit(req.group, cmd, ReadMode::kLinearizable, std::move(reply));
      break;
    }
    case ShardRequest::Type::kScript:
    case ShardRequest::Type::kScriptKill: {
      // A read-only script of a READONLY connection runs on any replica here, as a read would.
      const bool stale_ok = !from_peer && req.type == ShardRequest::Type::kScript &&
                            req.mode == ReadMode::kStale &&
                            (req.flags & ShardRequest::kScriptReadOnly) != 0 && r->IsMember();
      if (!leads && !stale_ok) {
        return refuse(Status::NotLeader("node " + std::to_string(opts_.self.value()) +
                                        " does not lead shard " +
                                        std::to_string(req.group.value())));
      }
      if (scripts_ == nullptr) {
        return refuse(Status::InvalidArgument("this node runs no scripts"));
      }
      if (req.type == ShardRequest::Type::kScriptKill) {
        const int n = scripts_->Kill(req.group, (req.flags & ShardRequest::kScriptFunctions) != 0);
        ClientReply cr;
        cr.reply = kv::Reply::Int(n);
        answer()(std::move(cr));
        break;
      }
      ++counters_.proposals;
      scripts_->Run(req, answer());
      break;
    }
    case ShardRequest::Type::kRead:
      if (scripts_ != nullptr && leads && scripts_->ReadBusy(req.group, req.args)) {
        ClientReply cr;
        cr.reply = kv::Reply::Err(
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN "
            "NOSAVE.");
        answer()(std::move(cr));
        break;
      }
      store_->SubmitRead(
          req.group,
          [args = req.args, now = req.now_ms, random = req.random,
           check](const kv::StateMachine& sm) {
            if (check && !sm.Owns(*check)) return kv::Reply::Error(kv::ReplyCode::kWrongShard);
            kv::ExecContext ctx = sm.ReadContext(now);
            ctx.random = random;
            return kv::ExecuteRedisRead(sm.keyspace(), args, ctx);
          },
          mode, answer());
      break;
    case ShardRequest::Type::kVersions:
      store_->SubmitRead(
          req.group,
          [keys = req.args, now_ms = req.now_ms, check](const kv::StateMachine& sm) {
            if (check && !sm.Owns(*check)) return kv::Reply::Error(kv::ReplyCode::kWrongShard);
            const int64_t now = sm.ReadContext(now_ms).now_ms;
            kv::Reply out;
            out.number = static_cast<int64_t>(sm.applied_index().value());
            for (const std::string& k : keys) {
              out.replies.push_back(
                  kv::Reply::Int(static_cast<int64_t>(sm.keyspace().VersionOf(k, now).value())));
            }
            return out;
          },
          mode, answer());
      break;
    case ShardRequest::Type::kSlotKeys:
      store_->SubmitRead(
          req.group,
          [slot = req.index.value(), max = req.random,
           count = req.args == std::vector<std::string>{"count"}, now_ms = req.now_ms,
           bug = opts_.testing_bug_stale_route](const kv::StateMachine& sm) {
            if (!bug && !sm.Owns(static_cast<uint16_t>(slot % kSlotCount))) {
              return kv::Reply::Error(kv::ReplyCode::kWrongShard);
            }
            const int64_t now = sm.ReadContext(now_ms).now_ms;
            const kv::Keyspace::Map& m = sm.keyspace().map();
            std::vector<kv::Reply> keys;
            int64_t n = 0;
            // Bounded by the keys of one slot (compared by slot: (16383 + 1) << 50 wraps).
            for (auto it = m.lower_bound(kv::Keyspace::KeyRef{slot << 50, ""});
                 it != m.end() && (it->first.pos >> 50) == slot; ++it) {
              if (!count && keys.size() >= max) break;
              if (it->second.expire_ms != 0 && it->second.expire_ms <= now) continue;
              ++n;
              if (!count) keys.push_back(kv::Reply::Bulk(it->first.bytes));
            }
            return count ? kv::Reply::Int(n) : kv::Reply::Array(std::move(keys));
          },
          mode, answer());
      break;
    case ShardRequest::Type::kConfig:
      store_->SubmitRead(
          req.group,
          [names = req.args](const kv::StateMachine& sm) {
            auto one = [&sm](const std::string& name) {
              if (name.ends_with('*')) {  // every setting with that prefix, as name, value
                const std::string_view prefix = std::string_view(name).substr(0, name.size() - 1);
                std::vector<kv::Reply> pairs;
                for (const auto& [n, v] : sm.config_from(prefix)) {
                  if (!std::string_view(n).starts_with(prefix)) break;
                  pairs.push_back(kv::Reply::Bulk(n));
                  pairs.push_back(kv::Reply::Bulk(v));
                }
                return kv::Reply::Array(std::move(pairs));
              }
              std::optional<std::string_view> v = sm.config(name);
              return v ? kv::Reply::Bulk(std::string(*v)) : kv::Reply::Nil();
            };
            if (names.size() == 1) return one(names[0]);
            std::vector<kv::Reply> all;
            for (const std::string& n : names) all.push_back(one(n));
            return kv::Reply::Array(std::move(all));
          },
          mode, answer());
      break;
    case ShardRequest::Type::kKeyspace:
      store_->SubmitRead(
          req.group,
          [](const kv::StateMachine& sm) {
            return kv::Reply::Array(
                {kv::Reply::Int(static_cast<int64_t>(sm.keyspace().size())),
                 kv::Reply::Int(static_cast<int64_t>(sm.keyspace().expires_count()))});
          },
          mode, answer());
      break;
    case ShardRequest::Type::kFrozenState:
      store_->SubmitRead(
          req.group,
          [args = req.args](const kv::StateMachine& sm) {
            uint64_t token = 0;
            if (args.size() != 1 || !ParseToken(args[0], &token)) {
              return kv::Reply::Err("ERR merge: malformed state read");
            }
            if (token == 0) return kv::Reply::Int(static_cast<int64_t>(sm.keyspace().bytes()));
            if (!sm.frozen() || sm.frozen()->token != token) {
              return kv::Reply::Err("ERR merge: the shard is not frozen for this merge");
            }
            if (sm.keyspace().bytes() > kMergeBytesMax) {
              return kv::Reply::Err("ERR merge: the shard holds more than a merge carries");
            }
            return kv::Reply::Bulk(sm.Snapshot());
          },
          mode, answer());
      break;
    case ShardRequest::Type::kReplicasHolding: {
      // The leader counts the members other than itself whose match reached the index; any
      // other replica knows only that the write committed: a quorum holds it.
      const raft::Raft& raft = r->raw_node().raft();
      int64_t n = 0;
      if (leads) {
        for (NodeId id : raft.config().AllIds()) {
          const raft::Progress* p = raft.progress(id);
          if (id != opts_.self && p != nullptr && p->match >= req.index) ++n;
        }
      } else {
        n = static_cast<int64_t>(raft.config().voters.Ids().size() / 2);
      }
      ShardResponse resp;
      resp.number = n;
      StampLeader(req.group, &resp);
      done(std::move(resp));
      break;
    }
    case ShardRequest::Type::kConfChange: {
      if (!leads) {
        return refuse(Status::NotLeader("membership changes go to the leader"));
      }
      Result<raft::ConfChange> cc = raft::ConfChange::Decode(req.conf_change);
      if (!cc.ok()) return refuse(cc.status());
      const raft::MembershipConfig& cfg = r->raw_node().raft().config();
      for (const raft::ConfChangeSingle& c : cc->changes) {
        const bool member = cfg.IsVoter(c.node) || cfg.IsLearner(c.node);
        if (c.type == raft::ConfChangeType::kAddLearner && member) {
          return refuse(Status::FailedPrecondition("node " + std::to_string(c.node.value()) +
                                                   " is already a member of shard " +
                                                   std::to_string(req.group.value())));
        }
        if (c.type == raft::ConfChangeType::kRemoveNode && !member) {
          return refuse(Status::NotFound("node " + std::to_string(c.node.value()) +
                                         " is not a member of shard " +
                                         std::to_string(req.group.value())));
        }
      }
      Status s = r->ProposeConfChange(*cc);
      store_->Touch(req.group);  // called on the replica directly: give it a round
      ShardResponse resp;
      resp.status = std::move(s);
      StampLeader(req.group, &resp);
      done(std::move(resp));
      break;
    }
  }
  transport_->Wake();
}

}  // namespace synod::cluster
