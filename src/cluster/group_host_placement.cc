// GroupHost's part that concerns membership and placement (docs/sharding.md, "Placement"): nodes
// added to and removed from the cluster and drained (the meta leader's membership commands),
// and every second the meta shard's leader reads the node list (zones, draining nodes), judges
// which nodes are alive (heard from within --dead-node-timeout), plans with
// cluster/logic/placement.h, and carries the plan out: membership changes as moves
// (group_host_shards.cc), leader preferences and forgotten nodes as meta shard writes.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cluster/group_host.h"
#include "cluster/logic/descriptors.h"
#include "cluster/logic/placement.h"
#include "common/address.h"
#include "env/asio/steady_clock.h"
#include "raft/confchange.h"

namespace synod::cluster {

using env::SteadyNowNs;

void GroupHost::ChangeMembership(std::vector<GroupId> groups, raft::ConfChange cc,
                                 std::function<void(Status)> done) {
  // One request per group; the first error wins, OK once all answered.
  struct Join {
    size_t left = 0;
    Status first_error;
    std::function<void(Status)> done;
  };
  auto j = std::make_shared<Join>();
  j->done = std::move(done);
  if (groups.empty()) return j->done(Status::Ok());
  j->left = groups.size();
  const std::string encoded = cc.Encode();
  for (GroupId g : groups) {
    ShardRequest req;
    req.type = ShardRequest::Type::kConfChange;
    req.group = g;
    req.conf_change = encoded;
    Call(std::move(req), [j, g](ShardResponse r) {
      if (!r.status.ok() && j->first_error.ok()) {
        j->first_error = Status(r.status.code(), "shard " + std::to_string(g.value()) + ": " +
                                                     std::string(r.status.message()));
      }
      if (--j->left == 0) j->done(j->first_error);
    });
  }
}

void GroupHost::AddMember(NodeId id, const MemberAddress& address,
                          std::function<void(Status)> done) {
  if (!is_leader()) return done(Status::NotLeader("membership changes go to the meta leader"));
  if (id == kNoNode) return done(Status::InvalidArgument("member ids start at 1"));
  if (Status s = SplitHostPort(address.peer, PortZero::kRefused).status(); !s.ok()) {
    return done(s);
  }
  if (meta_nodes_.contains(id) || KnownMember(id)) {
    return done(
        Status::FailedPrecondition("node " + std::to_string(id.value()) + " is already a member"));
  }
  // Into this node's address book at once (the placement's first change for it carries its
  // addresses too), and into the node list, which every node follows.
  members_[id] = address;
  transport_->SetPeer(id, address.peer);
  SaveAddressBook();
  logger_.Info("event=node_added node={} addresses=\"{}\"", id.value(), NodeValue(address, ""));
  ProposeMetaSetting(NodeSetting(id), NodeValue(address, ""), std::move(done));
}

bool GroupHost::KnownMember(NodeId id) const {
  std::vector<const ShardDescriptor*> all{&map_->layout().meta};
  for (const ShardDescriptor& d : map_->layout().shards) all.push_back(&d);
  for (const ShardDescriptor* d : all) {
    if (std::find(d->voters.begin(), d->voters.end(), id) != d->voters.end() ||
        std::find(d->learners.begin(), d->learners.end(), id) != d->learners.end()) {
      return true;
    }
  }
  const raft::MembershipConfig& cfg = meta_replica()->raw_node().raft().config();
  return cfg.IsVoter(id) || cfg.IsLearner(id);
}

void GroupHost::RemoveMember(NodeId id, std::function<void(Status)> done) {
  if (!is_leader()) return done(Status::NotLeader("membership changes go to the meta leader"));
  if (!KnownMember(id) && !meta_nodes_.contains(id)) {
    return done(Status::NotFound("node " + std::to_string(id.value()) + " is not a member"));
  }
  raft::ConfChange cc;
  cc.transition = raft::ConfChangeTransition::kJointImplicit;
  cc.changes.push_back({raft::ConfChangeType::kRemoveNode, id});
  // Every group that lists it (the meta shard as its replica here knows it).
  std::vector<GroupId> groups;
  const raft::MembershipConfig& meta = meta_replica()->raw_node().raft().config();
  if (meta.IsVoter(id) || meta.IsLearner(id)) groups.push_back(kMetaGroup);
  for (const ShardDescriptor& d : map_->layout().shards) {
    if (std::find(d.voters.begin(), d.voters.end(), id) != d.voters.end() ||
        std::find(d.learners.begin(), d.learners.end(), id) != d.learners.end()) {
      groups.push_back(d.group);
    }
  }
  // Once out of every group, out of the node list too: answered when the membership change
  // is done, the entry deleted meanwhile (a failure is logged; the removed node, no longer a
  // member of any group, does not register again).
  ChangeMembership(std::move(groups), std::move(cc),
                   [this, id, done = std::move(done), alive = alive_](Status s) {
                     if (*alive && s.ok() && !stopped_) {
                       for (const std::string& name : {NodeSetting(id), DrainSetting(id)}) {
                         ProposeMetaSetting(name, "", [id, this](Status d) {
                           if (!d.ok()) {
                             logger_.Warn("event=node_entry_not_removed node={} error=\"{}\"",
                                          id.value(), d.ToString());
                           }
                         });
                       }
                     }
                     done(std::move(s));
                   });
}

void GroupHost::DrainNode(NodeId id, std::function<void(Status)> done) {
  if (!is_leader()) return done(Status::NotLeader("node removals go to the meta leader"));
  if (!meta_nodes_.contains(id)) {
    return done(
        Status::NotFound("node " + std::to_string(id.value()) + " is not in the node list"));
  }
  if (!meta_draining_.contains(id)) {
    const std::set<NodeId> live = LiveNodes();
    int others = 0;
    for (const auto& [n, a] : meta_nodes_) {
      others += n != id && live.contains(n) && !meta_draining_.contains(n) ? 1 : 0;
    }
    if (others == 0) {
      return done(Status::FailedPrecondition("node " + std::to_string(id.value()) +
                                             " is the last live node: its data has nowhere to go"));
    }
  }
  logger_.Info("event=node_drain_requested node={}", id.value());
  ProposeMetaSetting(DrainSetting(id), "1", std::move(done));
}

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
  // Shards' bytes heard within five seconds (a shard without one holds byte balancing back).
  for (const ShardDescriptor& d : in.shards) {
    if (const ShardBytes* b = FreshLoad(d.group)) {
      in.bytes[d.group] = b->bytes;
      in.writes[d.group] = b->writes_per_second;
      // A shard frozen for a merge is about to go: no replica of it is added or moved (a new
      // replica's snapshot could race the merge's write on its node).
      if (b->frozen) in.busy.insert(d.group);
    }
    if (merging_.contains(d.group)) in.busy.insert(d.group);
  }

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
