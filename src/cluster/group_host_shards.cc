// GroupHost's part that changes shards: splits (by hand and by size) and the descriptors a
// node learns from the splits it applied, replica moves, and the replicas the Store destroyed
// after their removal (docs/sharding.md, "Splits" and "Moves and removed replicas").
#include <algorithm>
#include <sstream>
#include <string>

#include "cluster/group_host.h"
#include "cluster/logic/descriptors.h"

namespace synod::cluster {

void GroupHost::MoveShard(GroupId group, NodeId from, NodeId to, std::function<void(Status)> done) {
  // Every move runs on the meta shard's leader, beside the placement's (which then leaves the
  // shard alone until it is done).
  if (!is_leader()) return done(Status::NotLeader("moves go to the meta leader"));
  const ShardDescriptor* d = map_->Find(group);
  if (d == nullptr) return done(Status::NotFound("no shard " + std::to_string(group.value())));
  if (Status s = CheckMove(*d, from, to); !s.ok()) return done(s);
  if (!members_.contains(to)) {
    return done(Status::NotFound("node " + std::to_string(to.value()) +
                                 " is no node of this cluster (add it first)"));
  }
  if (moves_.contains(group)) {
    return done(Status::FailedPrecondition("a move of shard " + std::to_string(group.value()) +
                                           " is under way on this node"));
  }
  // A shard frozen for a merge (as its leader last told, kLoads) is about to go: a new
  // replica's snapshot could race the merge's write. The merge ends within seconds.
  if (const ShardBytes* load = FreshLoad(group); load != nullptr && load->frozen) {
    return done(Status::FailedPrecondition("shard " + std::to_string(group.value()) +
                                           " is frozen for a merge; move it after the merge"));
  }
  logger_.Info("event=move_requested group={} from={} to={}", group.value(), from.value(),
               to.value());
  moves_[group] =
      Move{from, to, ticks_ + 120 * kNoticeTicks, false, std::move(done), "by hand", ticks_};
  DriveMoves();
}

void GroupHost::DriveMoves() {
  const std::set<NodeId> live = LiveNodes();
  for (auto it = moves_.begin(); it != moves_.end();) {
    const GroupId g = it->first;
    Move& m = it->second;
    const ShardDescriptor* d = map_->Find(g);
    Status finished = Status::Ok();
    bool end = false;
    if (d == nullptr) {
      finished = Status::NotFound("shard " + std::to_string(g.value()) + " is gone (merged?)");
      end = true;
    } else if (!is_leader()) {
      // Moves run on the meta shard's leader; a new one picks up from the descriptors (the
      // steps taken stand), and two drivers would trip over each other.
      finished = Status::Unavailable(
          "this node no longer leads the meta shard; the move's steps taken stand");
      end = true;
    } else if (m.to != kNoNode && !live.contains(m.to)) {
      // Its target died on the way: waiting for it would hold the shard's repair (a learner
      // on a dead node is removed only once no move holds the shard) until the deadline.
      finished = Status::Unavailable("node " + std::to_string(m.to.value()) +
                                     ", the move's target, has not been heard from within "
                                     "--dead-node-timeout; the move's steps taken stand");
      end = true;
    } else if (ticks_ > m.deadline_tick) {
      finished = Status::Timeout("the move of shard " + std::to_string(g.value()) +
                                 " did not finish within two minutes");
      end = true;
    } else if (NextMoveStep(*d, m.from, m.to) == MoveStep::kDone) {
      end = true;
    }
    if (end) {
      logger_.Info("event=move_done group={} from={} to={} reason=\"{}\" seconds={} result=\"{}\"",
                   g.value(), m.from.value(), m.to.value(), m.reason,
                   (ticks_ - m.start_tick) / kNoticeTicks, finished.ToString());
      auto done = std::move(m.done);
      it = moves_.erase(it);
      done(std::move(finished));
      continue;
    }
    const MoveStep step = NextMoveStep(*d, m.from, m.to);
    if (m.step_in_flight || step == MoveStep::kWait) {
      ++it;
      continue;
    }
    raft::ConfChange cc;
    if (step == MoveStep::kAddLearner) {
      auto address = members_.find(m.to);
      if (address == members_.end()) {  // not in the address book yet: the node list brings it
        ++it;
        continue;
      }
      cc.changes.push_back({raft::ConfChangeType::kAddLearner, m.to});
      cc.context = FormatMemberList({{m.to, address->second}}, '\n');
    } else {
      cc.transition = raft::ConfChangeTransition::kJointImplicit;
      cc.changes.push_back({raft::ConfChangeType::kRemoveNode, m.from});
    }
    ShardRequest req;
    req.type = ShardRequest::Type::kConfChange;
    req.group = g;
    req.conf_change = cc.Encode();
    m.step_in_flight = true;
    logger_.Info("event=move_step group={} step={} node={}", g.value(),
                 step == MoveStep::kAddLearner ? "add_learner" : "remove_source",
                 (step == MoveStep::kAddLearner ? m.to : m.from).value());
    Call(std::move(req), [this, g, alive = alive_](ShardResponse r) {
      if (!*alive) return;
      auto found = moves_.find(g);
      if (found == moves_.end()) return;
      // The descriptor shows the change within a second or two; until then, no new step. A
      // refused step (a change pending, no leader) is tried again at the next second.
      found->second.step_in_flight = false;
      if (!r.status.ok()) {
        logger_.Info("event=move_step_refused group={} error=\"{}\"", g.value(),
                     r.status.ToString());
      } else {
        found->second.deadline_tick = std::max(found->second.deadline_tick, ticks_);
      }
    });
    ++it;
  }
}

void GroupHost::MaybeSplitBySize() {
  if (opts_.shard_max_bytes == 0) return;
  for (GroupId g : store_->groups()) {
    const Replica* r = store_->replica(g);
    if (g == kMetaGroup || size_splits_.contains(g) ||
        r->raw_node().raft().role() != raft::Role::kLeader) {
      continue;
    }
    if (auto t = split_retry_tick_.find(g); t != split_retry_tick_.end() && t->second > ticks_) {
      continue;
    }
    const SizeSplit d = DecideSizeSplit(r->state_machine(), opts_.shard_max_bytes);
    if (d.kind == SizeSplit::Kind::kOneSlot) {
      if (one_hot_slot_.insert(g).second) {
        logger_.Warn("event=split_impossible group={} bytes={} reason=one_slot", g.value(),
                     r->state_machine().keyspace().bytes());
      }
      continue;
    }
    one_hot_slot_.erase(g);
    if (d.kind != SizeSplit::Kind::kSplit) continue;
    logger_.Info("event=split_by_size group={} bytes={} max={} at={}", g.value(),
                 r->state_machine().keyspace().bytes(), opts_.shard_max_bytes, d.at);
    AutoSplit(g, d.at);
  }
}

void GroupHost::AutoSplit(GroupId g, uint16_t at) {
  size_splits_.insert(g);
  SplitShard(
      g, at,
      [this, g, alive = alive_](Result<SplitResult> r) {
        if (!*alive) return;
        size_splits_.erase(g);
        // After a failure (the shard changed meanwhile, no quorum) wait a few seconds.
        if (!r.ok()) split_retry_tick_[g] = ticks_ + 5 * kNoticeTicks;
        // Both halves measure their load afresh.
        load_.Forget(g);
      },
      /*automatic=*/true);
}

void GroupHost::MaybeSplitByLoad() {
  std::set<GroupId> led;
  for (GroupId g : store_->groups()) {
    const Replica* r = store_->replica(g);
    if (g != kMetaGroup && r->raw_node().raft().role() == raft::Role::kLeader) led.insert(g);
  }
  load_.AddSecond(router_->TakeWrites(), led);
  if (opts_.shard_max_writes_per_second <= 0) return;
  for (GroupId g : led) {
    const Replica* r = store_->replica(g);
    if (size_splits_.contains(g) || !r->state_machine().range()) continue;
    if (auto t = split_retry_tick_.find(g); t != split_retry_tick_.end() && t->second > ticks_) {
      continue;
    }
    const SizeSplit d =
        load_.Decide(g, *r->state_machine().range(), opts_.shard_max_writes_per_second);
    if (d.kind == SizeSplit::Kind::kOneSlot) {
      if (hot_slot_by_load_.insert(g).second) {
        logger_.Warn("event=split_impossible group={} writes_per_second={:.0f} reason=one_slot",
                     g.value(), load_.Rate(g));
      }
      continue;
    }
    if (d.kind != SizeSplit::Kind::kSplit) {
      if (load_.Rate(g) <= opts_.shard_max_writes_per_second) hot_slot_by_load_.erase(g);
      continue;
    }
    hot_slot_by_load_.erase(g);
    logger_.Info("event=split_by_load group={} writes_per_second={:.0f} max={:.0f} at={}",
                 g.value(), load_.Rate(g), opts_.shard_max_writes_per_second, d.at);
    AutoSplit(g, d.at);
  }
}

void GroupHost::LearnSplits() {
  bool learnt = false;
  for (const StartedSplit& split : store_->TakeStartedSplits()) {
    counters_.splits.fetch_add(1, std::memory_order_relaxed);
    for (const ShardDescriptor& d : LearnSplit(*map_, split)) {
      logger_.Info("event=descriptor_updated reason=split descriptor=\"{}\"", EncodeDescriptor(d));
      learnt = true;
    }
  }
  if (!learnt) return;
  SaveLayout();
  descriptors_due_ = true;  // the leaders propose both halves to the meta shard
}

void GroupHost::SplitShard(GroupId group, std::optional<uint16_t> at,
                           std::function<void(Result<SplitResult>)> done, bool automatic) {
  logger_.Info("event=split_requested group={} at={}", group.value(),
               at ? std::to_string(*at) : std::string("middle"));
  RunSplit(
      *router_, *map_, group, at, [this] { return NewSessionId(); },
      [this, group, done = std::move(done), alive = alive_](Result<SplitResult> r) {
        if (*alive) {
          if (r.ok()) {
            logger_.Info("event=split_done group={} child={} kept={}-{} moved={}-{}", group.value(),
                         r->child.value(), r->kept.first, r->kept.last, r->moved.first,
                         r->moved.last);
          } else {
            logger_.Info("event=split_failed group={} error=\"{}\"", group.value(),
                         r.status().ToString());
          }
        }
        done(std::move(r));
      },
      automatic);
  Kick();
}

void GroupHost::LoadDestroyed() {
  auto v = db_->GetMeta(kDestroyedMeta);
  if (!v.ok() || !v->has_value()) return;
  std::istringstream in(**v);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    try {
      destroyed_at_epoch_[GroupId(std::stoull(line.substr(0, eq)))] =
          std::stoull(line.substr(eq + 1));
    } catch (...) {
      logger_.Warn("event=bad_destroyed_entry line=\"{}\"", line);
    }
  }
}

void GroupHost::SaveDestroyed() {
  std::string out;
  for (const auto& [g, epoch] : destroyed_at_epoch_) {
    out += std::to_string(g.value()) + "=" + std::to_string(epoch) + "\n";
  }
  const Status s = db_->PutMeta(kDestroyedMeta, out);
  if (!s.ok()) logger_.Warn("event=destroyed_not_saved error=\"{}\"", s.ToString());
}

void GroupHost::ForgetRemovedGroups() {
  bool destroyed = false;
  for (GroupId g : store_->TakeRemovedGroups()) {
    counters_.replicas_removed.fetch_add(1, std::memory_order_relaxed);
    logger_.Info("event=replica_destroyed group={}", g.value());
    destroyed = true;
    // Not made again from a descriptor of this epoch or older, which still lists this node
    // until the shard's leader proposes the one without it.
    const ShardDescriptor* d = map_->Find(g);
    destroyed_at_epoch_[g] = d != nullptr ? d->epoch : 0;
  }
  if (destroyed) SaveDestroyed();
  // The deletion is staged: write it now rather than with the next round (an idle node may
  // have none for long, and the group must not come back from the database meanwhile, nor
  // after a crash). One synchronous write, rare.
  if (destroyed && !syncing_ && !store_->round_in_flight() && !stopped_) {
    const Status s = db_->Sync();
    if (!s.ok()) logger_.Warn("event=destroy_not_written error=\"{}\"", s.ToString());
  }
}

}  // namespace synod::cluster
