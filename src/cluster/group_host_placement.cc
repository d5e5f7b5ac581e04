// GroupHost's part that places replicas (docs/sharding.md, "Placement"): every second the meta
// shard's leader reads the node list (zones, draining nodes), judges which nodes are alive
// (heard from within --dead-node-timeout), plans with cluster/logic/placement.h, and carries
// the plan out: membership changes as moves (group_host_shards.cc), leader preferences and
// forgotten nodes as meta shard writes.
#include <algorithm>
#include <string>

#include "cluster/group_host.h"
#include "cluster/logic/descriptors.h"
#include "cluster/logic/placement.h"
#include "env/asio/steady_clock.h"

namespace synod::cluster {

using env::SteadyNowNs;

std::set<NodeId> GroupHost::LiveNodes() const {
  const int64_t now = SteadyNowNs();
  const int64_t timeout_ns = opts_.dead_node_timeout_ms * 1'000'000;
  // A node not heard from since this one led the meta shard gets a whole timeout first.
  const bool grace = meta_leader_since_ns_ == 0 || now - meta_leader_since_ns_ < timeout_ns;
  std::set<NodeId> live{opts_.id};
  for (const auto& ps : transport_->Stats()) {
    if ((ps.last_received_ns > 0 && now - ps.last_received_ns < timeout_ns) || grace) {
      live.insert(ps.id);
    }
  }
  if (grace) {
    for (const auto& [id, a] : meta_nodes_) live.insert(id);
  }
  return live;
}

std::vector<NodeView> GroupHost::Nodes() const {
  const int64_t now = SteadyNowNs();
  std::map<NodeId, int64_t> heard;
  for (const auto& ps : transport_->Stats()) heard[ps.id] = ps.last_received_ns;
  const std::set<NodeId> live = LiveNodes();
  std::vector<NodeView> out;
  for (const auto& [id, a] : meta_nodes_) {
    NodeView v;
    v.id = id;
    if (auto z = meta_zones_.find(id); z != meta_zones_.end()) v.zone = z->second;
    v.draining = meta_draining_.contains(id);
    v.live = live.contains(id);
    if (id == opts_.id) {
      v.unheard_ms = 0;
    } else if (auto h = heard.find(id); h != heard.end() && h->second > 0) {
      v.unheard_ms = (now - h->second) / 1'000'000;
    }
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<MoveView> GroupHost::Moves() const {
  std::vector<MoveView> out;
  for (const auto& [g, m] : moves_) {
    MoveView v;
    v.group = g;
    v.from = m.from;
    v.to = m.to;
    v.reason = m.reason;
    v.age_ms = static_cast<int64_t>((ticks_ - m.start_tick) * static_cast<uint64_t>(opts_.tick_ms));
    const ShardDescriptor* d = map_->Find(g);
    switch (d == nullptr ? MoveStep::kDone : NextMoveStep(*d, m.from, m.to)) {
      case MoveStep::kAddLearner:
        v.step = "add learner";
        break;
      case MoveStep::kWait:
        v.step = "catch up";
        break;
      case MoveStep::kRemoveSource:
        v.step = "remove source";
        break;
      case MoveStep::kDone:
        v.step = "done";
        break;
    }
    if (const Replica* r = store_->replica(g); r != nullptr && m.to != kNoNode) {
      const raft::Raft& raft = r->raw_node().raft();
      if (raft.role() == raft::Role::kLeader) {
        v.leader_last = raft.log().LastIndex().value();
        if (const raft::Progress* p = raft.progress(m.to)) v.target_match = p->match.value();
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

void GroupHost::RunPlacement() {
  if (!opts_.placement || stopped_ || !is_leader()) return;
  auto wait = [this](std::string why) {
    if (why == last_placement_block_) return;
    logger_.Info("event=placement_waiting reason=\"{}\"", why);
    last_placement_block_ = std::move(why);
  };
  if (!meta_nodes_known_ || !meta_epochs_known_) return wait("the meta shard is not read yet");
  if (!map_->clean()) return wait("a split is half learnt");
  // Every node that holds a replica must be listed (the nodes register within a second of
  // their start): a member missing from the list is more likely not registered yet than gone.
  std::vector<const ShardDescriptor*> all{&map_->layout().meta};
  for (const ShardDescriptor& d : map_->layout().shards) all.push_back(&d);
  for (const ShardDescriptor* d : all) {
    for (const auto* list : {&d->voters, &d->learners}) {
      for (NodeId n : *list) {
        if (!meta_nodes_.contains(n)) {
          return wait("node " + std::to_string(n.value()) + " holds replicas and is not listed");
        }
      }
    }
  }
  last_placement_block_.clear();

  PlacementInput in;
  for (const NodeView& v : Nodes()) in.nodes.push_back({v.id, v.zone, v.live, v.draining});
  in.meta = map_->layout().meta;
  in.shards = map_->layout().shards;
  in.replicas = opts_.replicas;
  in.meta_replicas = kMetaReplicasMax;
  for (const auto& [g, m] : moves_) in.busy.insert(g);
  in.max_changes = opts_.placement_max_changes;

  using K = PlacementAction::Kind;
  for (const PlacementAction& a : PlanPlacement(in)) {
    if (preferring_.contains(a.group) && a.kind != K::kForget) continue;
    switch (a.kind) {
      case K::kMove:
      case K::kAdd:
      case K::kRemove: {
        if (moves_.contains(a.group)) break;
        logger_.Info("event=placement action=\"{}\"", DescribeAction(a));
        // A large shard's snapshot takes time: ten minutes before the move is given up (its
        // steps stand; the next round picks up from the descriptor).
        const GroupId g = a.group;
        moves_[g] =
            Move{a.from, a.to, ticks_ + 600 * kNoticeTicks, false, [](Status) {}, a.reason, ticks_};
        break;
      }
      case K::kLead: {
        const ShardDescriptor* d = map_->Find(a.group);
        if (d == nullptr) break;
        auto it = std::find(d->voters.begin(), d->voters.end(), a.to);
        if (it == d->voters.end()) break;
        ShardDescriptor next = *d;
        std::rotate(next.voters.begin(), next.voters.begin() + (it - d->voters.begin()),
                    next.voters.begin() + (it - d->voters.begin()) + 1);
        uint64_t held = 0;
        if (auto h = meta_epochs_.find(a.group); h != meta_epochs_.end()) held = h->second.epoch;
        next.epoch = std::max(d->epoch, held) + 1;
        logger_.Info("event=placement action=\"{}\"", DescribeAction(a));
        ShardRequest req;
        req.type = ShardRequest::Type::kWrite;
        req.group = kMetaGroup;
        req.command = ProposeDescriptorCommand(next, NewSessionId());
        preferring_.insert(a.group);
        Call(std::move(req), [this, g = a.group, alive = alive_](ShardResponse resp) {
          if (!*alive) return;
          preferring_.erase(g);
          if (!resp.status.ok()) {
            logger_.Info("event=leader_preference_not_proposed group={} error=\"{}\"", g.value(),
                         resp.status.ToString());
          }
          meta_read_due_ = true;
        });
        break;
      }
      case K::kForget: {
        if (forgetting_.contains(a.from)) break;
        logger_.Info("event=placement action=\"{}\"", DescribeAction(a));
        forgetting_.insert(a.from);
        // The node entry first (the node is gone from the list), then the drain mark.
        ProposeMetaSetting(NodeSetting(a.from), "", [this, n = a.from, alive = alive_](Status s) {
          if (!*alive) return;
          if (!s.ok()) {
            forgetting_.erase(n);
            return;
          }
          ProposeMetaSetting(DrainSetting(n), "", [this, n, alive = alive_](Status) {
            if (*alive) forgetting_.erase(n);
          });
        });
        break;
      }
    }
  }
  if (!moves_.empty()) DriveMoves();
}

}  // namespace synod::cluster
