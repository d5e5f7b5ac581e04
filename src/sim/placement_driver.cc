#include "sim/placement_driver.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "cluster/logic/layout.h"
#include "cluster/logic/move.h"

namespace synod::sim {

namespace {

const cluster::ShardDescriptor* FindIn(const cluster::Layout& l, GroupId g) {
  if (g == cluster::kMetaGroup) return &l.meta;
  for (const cluster::ShardDescriptor& d : l.shards) {
    if (d.group == g) return &d;
  }
  return nullptr;
}

}  // namespace

PlacementDriver::PlacementDriver(EventLoop* loop, env::Random* rng, SimCluster* cluster,
                                 PlacementDriverOptions opts)
    : loop_(loop), rng_(rng), c_(cluster), opts_(opts) {}

void PlacementDriver::Start(int64_t events_until) {
  events_until_ = events_until;
  for (NodeId id : c_->AllIds()) {
    if (c_->Started(id)) listed_.insert(id);
  }
  loop_->After(500 * kMilli, [this] { Round(); });
}

cluster::PlacementInput PlacementDriver::Input(const cluster::Layout& layout) const {
  cluster::PlacementInput in;
  // The node list: the nodes that joined, and any node a descriptor names (a membership fault
  // may add a spare to a shard directly: it has joined then).
  std::set<NodeId> listed = listed_;
  for (const cluster::ShardDescriptor* d : {&layout.meta}) {
    listed.insert(d->voters.begin(), d->voters.end());
    listed.insert(d->learners.begin(), d->learners.end());
  }
  for (const cluster::ShardDescriptor& d : layout.shards) {
    listed.insert(d.voters.begin(), d.voters.end());
    listed.insert(d.learners.begin(), d.learners.end());
  }
  for (NodeId id : listed) {
    const int64_t down = c_->DownSince(id);
    const bool live = c_->Started(id) && (down < 0 || loop_->now() - down < opts_.dead_after_ns);
    in.nodes.push_back({id, "", live, draining_.contains(id)});
  }
  in.meta = layout.meta;
  in.shards = layout.shards;
  in.replicas = opts_.replicas;
  in.meta_replicas = cluster::kMetaReplicasMax;
  for (const auto& [g, m] : moves_) in.busy.insert(g);
  // A shard frozen for a merge is left alone, as the real node's placement does (a replica's
  // snapshot could race the merge's write).
  for (const cluster::ShardDescriptor& d : layout.shards) {
    if (c_->Frozen(d.group)) in.busy.insert(d.group);
  }
  in.max_changes = opts_.max_changes;
  return in;
}

void PlacementDriver::Round() {
  loop_->After(500 * kMilli, [this] { Round(); });
  if (loop_->now() < events_until_) MaybeEvents();
  const std::optional<NodeId> meta_leader = c_->Leader(cluster::kMetaGroup);
  if (!meta_leader) return;
  const std::optional<cluster::Layout> layout = c_->MapOf(*meta_leader);
  if (!layout) return;
  DriveMoves(*layout);
  using K = cluster::PlacementAction::Kind;
  for (const cluster::PlacementAction& a : cluster::PlanPlacement(Input(*layout))) {
    switch (a.kind) {
      case K::kMove:
      case K::kAdd:
      case K::kRemove:
        if (moves_.contains(a.group)) break;
        c_->Trace("placement " + cluster::DescribeAction(a));
        moves_[a.group] = Move{a.from, a.to, loop_->now() + 20 * kSecond, a.reason};
        break;
      case K::kForget:
        c_->Trace("placement " + cluster::DescribeAction(a));
        listed_.erase(a.from);
        draining_.erase(a.from);
        break;
      case K::kLead:
        break;  // the real node's (see the file comment)
    }
  }
  DriveMoves(*layout);
}

void PlacementDriver::DriveMoves(const cluster::Layout& layout) {
  for (auto it = moves_.begin(); it != moves_.end();) {
    const GroupId g = it->first;
    const Move& m = it->second;
    const cluster::ShardDescriptor* d = FindIn(layout, g);
    // A target judged dead ends the move, as on the real node (GroupHost::DriveMoves).
    const int64_t down = m.to == kNoNode ? -1 : c_->DownSince(m.to);
    const bool target_dead = down >= 0 && loop_->now() - down >= opts_.dead_after_ns;
    if (d == nullptr || loop_->now() > m.deadline || target_dead) {
      it = moves_.erase(it);
      continue;
    }
    const cluster::MoveStep step = cluster::NextMoveStep(*d, m.from, m.to);
    if (step == cluster::MoveStep::kDone) {
      ++moves_done_;
      it = moves_.erase(it);
      continue;
    }
    ++it;
    // The configuration may be ahead of the descriptor: propose only what it still lacks.
    const std::optional<NodeId> leader = c_->Leader(g);
    if (!leader) continue;
    const raft::MembershipConfig cfg = c_->Membership(g);
    if (cfg.IsJoint()) continue;
    raft::ConfChange cc;
    if (step == cluster::MoveStep::kAddLearner) {
      if (cfg.IsVoter(m.to) || cfg.IsLearner(m.to)) continue;
      if (!c_->IsUp(m.to)) continue;
      cc.changes.push_back({raft::ConfChangeType::kAddLearner, m.to});
      if (m.from != kNoNode) c_->NoteReplacement(g, m.to, m.from);
    } else if (step == cluster::MoveStep::kWait && opts_.testing_bug_move_removes_early &&
               m.from != kNoNode) {
      if (!cfg.IsVoter(m.from) && !cfg.IsLearner(m.from)) continue;
      cc.transition = raft::ConfChangeTransition::kJointImplicit;
      cc.changes.push_back({raft::ConfChangeType::kRemoveNode, m.from});
      c_->NoteMoveRemoval(g, m.from);
    } else if (step == cluster::MoveStep::kWait) {
      // The real node's leader promotes a learner once caught up (GroupHost).
      if (!cfg.IsLearner(m.to) || !c_->CaughtUp(*leader, g, m.to, 64)) continue;
      cc.transition = raft::ConfChangeTransition::kJointImplicit;
      cc.changes.push_back({raft::ConfChangeType::kAddNode, m.to});
    } else {
      if (!cfg.IsVoter(m.from) && !cfg.IsLearner(m.from)) continue;
      cc.transition = raft::ConfChangeTransition::kJointImplicit;
      cc.changes.push_back({raft::ConfChangeType::kRemoveNode, m.from});
      c_->NoteMoveRemoval(g, m.from);
    }
    c_->Trace("placement-step " + std::to_string(g.value()) + " " + cc.ToString());
    (void)c_->ProposeConfChange(*leader, g, cc);
  }
}

void PlacementDriver::MaybeEvents() {
  std::vector<NodeId> spares, usable;
  for (NodeId id : c_->AllIds()) {
    if (!listed_.contains(id)) {
      spares.push_back(id);
    } else if (!draining_.contains(id) && c_->IsUp(id)) {
      usable.push_back(id);
    }
  }
  if (!spares.empty() && rng_->Chance(opts_.join_chance)) {
    // A spare (or a node drained and forgotten earlier) joins.
    const NodeId id = spares[rng_->Uniform(spares.size())];
    if (!c_->Started(id)) c_->StartSpare(id);
    if (c_->IsUp(id)) {
      listed_.insert(id);
      ++joins_;
      c_->Trace("placement-join " + std::to_string(id.value()));
    }
  }
  if (usable.size() > 2 && draining_.empty() && rng_->Chance(opts_.drain_chance)) {
    const NodeId id = usable[rng_->Uniform(usable.size())];
    draining_.insert(id);
    ++drains_;
    c_->Trace("placement-drain " + std::to_string(id.value()));
  }
  if (usable.size() > 3 && rng_->Chance(opts_.long_crash_chance)) {
    // Down for longer than the dead-node timeout: its replicas are made again elsewhere; when it
    // comes back, the members tell it which of its replicas are stale.
    const NodeId id = usable[rng_->Uniform(usable.size())];
    c_->Trace("placement-long-crash " + std::to_string(id.value()));
    c_->Crash(id);
    loop_->After(opts_.dead_after_ns + rng_->Range(500 * kMilli, 2500 * kMilli),
                 [this, id] { c_->Restart(id); });
  }
}

bool PlacementDriver::Settled(std::string* why) const {
  const std::optional<NodeId> meta_leader = c_->Leader(cluster::kMetaGroup);
  if (!meta_leader) {
    if (why != nullptr) *why = "the meta shard has no leader";
    return false;
  }
  const std::optional<cluster::Layout> layout = c_->MapOf(*meta_leader);
  if (!layout) {
    if (why != nullptr) *why = "the meta leader has no map";
    return false;
  }
  if (!moves_.empty()) {
    if (why != nullptr) {
      *why = "moves under way:";
      for (const auto& [g, m] : moves_) {
        *why += " group " + std::to_string(g.value()) + " " + std::to_string(m.from.value()) +
                "->" + std::to_string(m.to.value()) + " (" + m.reason + ")";
      }
    }
    return false;
  }
  // A shard frozen for a merge is left out of the plan (Input): settled only once the merge
  // ended one way or the other.
  for (const cluster::ShardDescriptor& d : layout->shards) {
    if (c_->Frozen(d.group)) {
      if (why != nullptr) *why = "shard " + std::to_string(d.group.value()) + " is frozen";
      return false;
    }
  }
  for (const cluster::PlacementAction& a : cluster::PlanPlacement(Input(*layout))) {
    if (a.kind == cluster::PlacementAction::Kind::kLead) continue;
    if (why != nullptr) *why = "placement still plans: " + cluster::DescribeAction(a);
    return false;
  }
  for (NodeId id : listed_) {
    if (!c_->IsUp(id)) {
      if (why != nullptr) *why = "node " + std::to_string(id.value()) + " is down";
      return false;
    }
  }
  return true;
}

}  // namespace synod::sim
