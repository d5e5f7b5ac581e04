// SimCluster, sharded (ClusterOptions::shards >= 1): requests routed by slot through each node's
// RequestRouter and forwarded over the simulated network, the nodes' maps kept in step with the
// meta shard's descriptors, and the groups a node is to hold opened (see cluster.h).
#include <algorithm>
#include <utility>

#include "cluster/logic/merge.h"
#include "cluster/logic/split.h"
#include "common/assert.h"
#include "common/slot.h"
#include "kv/state_machine.h"
#include "sim/cluster.h"
#include "sim/cluster_node.h"

namespace synod::sim {

void SimCluster::OpenWanted(Node& n) {
  if (!sharded() || !n.store || n.store->round_in_flight()) return;
  for (GroupId g : n.wanted) {
    if (n.store->HasGroup(g)) continue;
    // A group without a descriptor here (a split's new shard with records, after a restart
    // that read an older layout) reads its own slots from its stored state.
    const cluster::ShardDescriptor* d = n.map->Find(g);
    const storage::StateSpan span = g == cluster::kMetaGroup ? storage::StateSpan::Group()
                                    : d == nullptr
                                        ? storage::StateSpan::Slots(0, kSlotCount - 1)
                                        : storage::StateSpan::Slots(d->first_slot, d->last_slot);
    const Status added = n.store->AddGroup(g, span, {});
    if (!added.ok()) {
      // The disk refused the group's first records: the node's writes fail from now on, and
      // the fault's healing restarts it; it opens the group then.
      Trace("add-group-failed " + std::to_string(n.id.value()) + " " + std::to_string(g.value()));
      continue;
    }
    cluster::Replica* r = n.store->replica(g);
    Seen& seen = n.seen[g];
    seen = Seen{};
    seen.commit = r->raw_node().raft().log().committed();
    seen.applied = r->raw_node().raft().log().applied();
    Trace("add-group " + std::to_string(n.id.value()) + " " + std::to_string(g.value()));
  }
}

void SimCluster::SubmitRequest(NodeId id, const std::string& route_key, cluster::ShardRequest req,
                               std::function<void(cluster::ClientReply)> reply) {
  SYNOD_ASSERT(sharded());
  int64_t hop = rng_->Range(200 * kMicro, 2 * kMilli);
  uint64_t inc = node(id).incarnation;
  auto cb = std::make_shared<std::function<void(cluster::ClientReply)>>(std::move(reply));
  req.group = GroupOfKey(route_key);
  const uint16_t slot = KeySlot(route_key);
  req.slots = SlotRange{slot, slot};  // the router sends it wherever the slot is now
  auto shared = std::make_shared<cluster::ShardRequest>(std::move(req));
  loop_->After(hop, [this, id, inc, shared, cb] {
    OnNode(
        id, inc,
        [this, id, shared, cb] {
          Node& n = node(id);
          SetWallClock(n);
          shared->now_ms = WallMs(id);
          n.router->Call(
              *shared,
              [back = ReplyBack(cb)](cluster::ShardResponse r) {
                back(cluster::ClientReply{std::move(r.status), std::move(r.reply), r.index});
              },
              loop_->now());
          Pump(n);
        },
        true);
  });
}

namespace {

// The key a command is routed by: its key, else its first argument (a Redis command's first
// key), else the first sub-command's (a batch).
std::string RouteKeyOf(const kv::Command& cmd) {
  if (!cmd.key.empty()) return cmd.key;
  if (cmd.op == kv::Op::kRedis && cmd.args.size() > 1) return cmd.args[1];
  for (const kv::Command& sub : cmd.batch) {
    std::string k = RouteKeyOf(sub);
    if (!k.empty()) return k;
  }
  return "";
}

}  // namespace

void SimCluster::Route(Node& n, kv::Command cmd, cluster::ReplyFn reply) {
  // The session is the key's shard's in the initial layout, as a connection keeps the session
  // of the shard it first sent the key to; the router sends the command wherever the slot is
  // now (a split moved it), in that session: the new shard has a copy of the parent's.
  const std::string route_key = RouteKeyOf(cmd);
  const GroupId group = GroupOfKey(route_key);
  if (cmd.client_id != 0) {
    ShardSession& ss = shard_sessions_[{cmd.client_id, group}];
    uint64_t shard_seq = 0;
    if (auto it = ss.seqs.find(cmd.seq); it != ss.seqs.end()) {
      shard_seq = it->second;  // a retry
    } else if (cmd.seq > ss.last_seq) {
      ss.last_seq = cmd.seq;
      shard_seq = ++ss.shard_seq;
      ss.seqs[cmd.seq] = shard_seq;
    } else {
      // An attempt held up (on a paused node) past its client's later commands: the client
      // gave up on it; a real connection's reply would go nowhere either.
      Trace("late-attempt");
      return;
    }
    const uint64_t shard_client = cmd.client_id * 64 + group.value();
    session_origin_[{shard_client, shard_seq}] = {cmd.client_id, cmd.seq};
    cmd.client_id = shard_client;
    cmd.seq = shard_seq;
  }
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kWrite;
  req.group = group;
  if (!route_key.empty()) {
    const uint16_t slot = KeySlot(route_key);
    req.slots = SlotRange{slot, slot};
  }
  req.command = std::move(cmd);
  n.router->Call(
      std::move(req),
      [reply = std::move(reply)](cluster::ShardResponse r) {
        reply(cluster::ClientReply{std::move(r.status), std::move(r.reply), r.index});
      },
      loop_->now());
}

void SimCluster::SendCall(NodeId from, NodeId to, uint64_t id, std::string bytes, bool response) {
  if (nodes_.find(to) == nodes_.end()) return;
  if (!response) ++requests_forwarded_;
  Trace(std::to_string(from.value()) + ">" + std::to_string(to.value()) +
        (response ? " response " : " request ") + std::to_string(id));
  auto shared = std::make_shared<std::string>(std::move(bytes));
  net_->Send(from, to, [this, from, to, id, shared, response] {
    OnNode(
        to, node(to).incarnation,
        [this, from, to, id, shared, response] {
          Node& n = node(to);
          n.last_heard[from] = loop_->now();
          if (!n.router) return;
          if (response) {
            n.router->OnResponse(from, id, cluster::DecodeShardResponse(*shared), loop_->now());
          } else {
            SetWallClock(n);
            n.router->Serve(from, id, cluster::DecodeShardRequest(*shared));
          }
          Pump(n);
        },
        true);
  });
}

void SimCluster::SyncDescriptors(Node& n) {
  auto learn = [this](Node& n, const std::map<std::string, std::string>& stored) {
    const cluster::LearnResult learnt = cluster::LearnDescriptors(*n.map, stored, &n.meta_epochs);
    if (!learnt.bad.empty()) {
      Violate("node " + std::to_string(n.id.value()) + " read a bad descriptor from the meta " +
              "shard: " + learnt.bad.front());
    }
    for (const cluster::ShardDescriptor& d : learnt.updated) {
      Trace("descriptor " + std::to_string(n.id.value()) + " " + cluster::EncodeDescriptor(d));
    }
    if (n.map->clean()) n.saved_layout = n.map->layout();  // as the real node saves it
    if (!n.meta_epochs_known || !learnt.all_held) n.descriptors_due = true;
    n.meta_epochs_known = true;
    n.meta_merged = learnt.merged;
    // A replica of a shard merged into another (its tombstone is in the meta shard): destroyed
    // with its keys, as GroupHost::JoinListedGroups does.
    for (const auto& [g, t] : n.meta_merged) {
      n.wanted.erase(g);
      merged_groups_.insert(g);
      if (!n.store->HasGroup(g) || n.store->round_in_flight()) continue;
      const Status s = n.store->RemoveGroup(g, /*with_data=*/true);
      Trace("merged-replica-removed " + std::to_string(n.id.value()) + " " +
            std::to_string(g.value()) + " " + s.ToString());
    }
    // A shard that lists this node and that it holds no replica of (a split it missed): an
    // empty replica, which the shard's leader fills with a snapshot (GroupHost does the same).
    for (const cluster::ShardDescriptor& d : n.map->layout().shards) {
      const bool listed = std::find(d.voters.begin(), d.voters.end(), n.id) != d.voters.end() ||
                          std::find(d.learners.begin(), d.learners.end(), n.id) != d.learners.end();
      auto gone = n.destroyed_at_epoch.find(d.group);
      if (gone != n.destroyed_at_epoch.end() && d.epoch <= gone->second) continue;
      if (listed && split_groups_.contains(d.group) && !merged_groups_.contains(d.group)) {
        n.wanted.insert(d.group);
      }
    }
  };
  const cluster::Replica* meta = ReplicaOf(n, cluster::kMetaGroup);
  if (meta != nullptr && meta->IsMember() && meta->raw_node().raft().lead() != kNoNode) {
    const kv::StateMachine& sm = meta->state_machine();
    learn(n, cluster::SettingsWithPrefix(sm, "shard/"));
  } else if (!n.fetching) {
    // A node without a meta replica asks the meta shard (linearizably, through its router).
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kConfig;
    req.group = cluster::kMetaGroup;
    // Two names, so that the answer is an array of one answer per name (a single name's is
    // that answer alone); the node's fetch asks for requirepass too.
    req.args = {"requirepass", std::string(cluster::kDescriptorSettings)};
    n.fetching = true;
    n.router->Call(
        req,
        [this, id = n.id, inc = n.incarnation, names = req.args, learn](cluster::ShardResponse r) {
          Node& n = node(id);
          if (n.incarnation != inc || !n.up) return;
          n.fetching = false;
          logger_.Debug("event=descriptors_fetched node={} status=\"{}\" values={}", id.value(),
                        r.status.ToString(), r.reply.replies.size());
          if (!r.status.ok() || r.reply.replies.size() != names.size()) return;
          const std::map<std::string, std::string> got = cluster::SettingsOf(names, r.reply);
          learn(n, got);
        },
        loop_->now());
  }
  if (!n.meta_epochs_known) return;
  for (const cluster::ShardDescriptor& next : cluster::DescriptorsToPropose(
           *n.store, *n.map, n.meta_epochs, n.proposing, nullptr, &n.meta_merged)) {
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kWrite;
    req.group = cluster::kMetaGroup;
    req.command = cluster::ProposeDescriptorCommand(
        next, (uint64_t{1} << 60) | (n.id.value() << 40) | ++descriptor_sessions_);
    n.proposing.insert(next.group);
    Trace("propose-descriptor " + std::to_string(n.id.value()) + " " +
          cluster::EncodeDescriptor(next));
    n.router->Call(
        std::move(req),
        [this, id = n.id, inc = n.incarnation, g = next.group](cluster::ShardResponse r) {
          logger_.Debug("event=descriptor_proposed node={} group={} status=\"{}\" reply={}",
                        id.value(), g.value(), r.status.ToString(), r.reply.number);
          Node& n = node(id);
          if (n.incarnation != inc || !n.up) return;
          n.proposing.erase(g);
        },
        loop_->now());
  }
}

void SimCluster::TakeSplits(Node& n) {
  if (!sharded() || !n.store) return;
  // Replicas destroyed after their group removed this node: no longer to be held (a later
  // membership change that adds the node back wants the group again).
  for (GroupId g : n.store->TakeRemovedGroups()) {
    const cluster::ShardDescriptor* d = n.map->Find(g);
    n.destroyed_at_epoch[g] = d != nullptr ? d->epoch : 0;
    n.wanted.erase(g);
    n.seen.erase(g);
    Trace("destroyed " + std::to_string(n.id.value()) + " " + std::to_string(g.value()));
  }
  for (const cluster::StartedSplit& split : n.store->TakeStartedSplits()) {
    for (const cluster::ShardDescriptor& d : cluster::LearnSplit(*n.map, split)) {
      Trace("descriptor " + std::to_string(n.id.value()) + " " + cluster::EncodeDescriptor(d));
    }
    split_groups_.insert(split.child);
    n.wanted.insert(split.child);
    n.descriptors_due = true;
    if (n.map->clean()) n.saved_layout = n.map->layout();  // as GroupHost::LearnSplits
    // The new replica starts at the split's index: the checks follow it from there.
    if (const cluster::Replica* r = ReplicaOf(n, split.child)) {
      Seen& seen = n.seen[split.child];
      if (seen.applied == LogIndex(0)) {
        seen = Seen{};
        seen.commit = r->raw_node().raft().log().committed();
        seen.applied = r->raw_node().raft().log().applied();
      }
    }
    Trace("split " + std::to_string(n.id.value()) + " " + std::to_string(split.parent.value()) +
          " " + std::to_string(split.child.value()));
  }
  TakeMerges(n);
}

void SimCluster::TakeMerges(Node& n) {
  for (const cluster::AppliedMergeHere& merge : n.store->TakeMerges()) {
    // Decided in the absorbing shard's log: the merged shard's state is final (it applied
    // nothing after its freeze), and whatever is left of it is destroyed; the checks stop
    // following it.
    merged_groups_.insert(merge.from);
    n.wanted.erase(merge.from);
    for (const cluster::ShardDescriptor& d : cluster::LearnMerge(*n.map, merge)) {
      Trace("descriptor " + std::to_string(n.id.value()) + " " + cluster::EncodeDescriptor(d));
    }
    TombstoneDue(n, merge.from, merge.absorbed, merge.group, merge.epoch, /*mine=*/false);
    n.descriptors_due = true;  // the absorbing shard's leader proposes its wider descriptor
    if (n.map->clean()) n.saved_layout = n.map->layout();  // as GroupHost::LearnMerges
    Trace("merge " + std::to_string(n.id.value()) + " " + std::to_string(merge.from.value()) + " " +
          std::to_string(merge.group.value()));
  }
}

void SimCluster::TombstoneDue(Node& n, GroupId from, SlotRange slots, GroupId into, uint64_t epoch,
                              bool mine) {
  Node::DueTombstone& t = n.tombstones_due[from];
  t.slots = slots;
  t.into = into;
  t.epoch = std::max(t.epoch, epoch);
  t.mine = t.mine || mine;
  if (mine) WriteDueTombstones(n);
}

void SimCluster::OweAbsorbedTombstones(Node& n) {
  if (!n.meta_epochs_known) return;
  for (GroupId g : n.store->groups()) {
    const cluster::Replica* r = ReplicaOf(n, g);
    if (r == nullptr || r->raw_node().raft().role() != raft::Role::kLeader) continue;
    for (const kv::Absorbed& a :
         cluster::TombstonesOwed(r->state_machine().absorbed(), n.meta_merged)) {
      if (n.tombstones_due.contains(GroupId(a.group))) continue;
      Trace("tombstone-owed " + std::to_string(n.id.value()) + " " + std::to_string(a.group));
      TombstoneDue(n, GroupId(a.group), a.range, g, a.epoch, /*mine=*/false);
    }
  }
}

void SimCluster::WriteDueTombstones(Node& n) {
  for (auto it = n.tombstones_due.begin(); it != n.tombstones_due.end();) {
    const GroupId from = it->first;
    Node::DueTombstone& due = it->second;
    if (n.meta_merged.contains(from)) {
      it = n.tombstones_due.erase(it);
      continue;
    }
    ++it;
    const cluster::Replica* into = ReplicaOf(n, due.into);
    const bool leads = into != nullptr && into->raw_node().raft().role() == raft::Role::kLeader;
    if (due.in_flight || !(due.mine || leads)) continue;
    const uint64_t e = cluster::TombstoneEpoch(due.epoch, from, n.meta_epochs, *n.map);
    const cluster::ShardDescriptor t = cluster::MergedTombstone(from, due.slots, due.into, e);
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kWrite;
    req.group = cluster::kMetaGroup;
    req.command = cluster::ProposeDescriptorCommand(
        t, (uint64_t{1} << 60) | (n.id.value() << 40) | ++descriptor_sessions_);
    due.in_flight = true;
    Trace("propose-tombstone " + std::to_string(n.id.value()) + " " + cluster::EncodeDescriptor(t));
    n.router->Call(
        std::move(req),
        [this, id = n.id, inc = n.incarnation, from, e](cluster::ShardResponse r) {
          Node& n = node(id);
          if (n.incarnation != inc || !n.up) return;
          logger_.Debug("event=tombstone_proposed node={} group={} status=\"{}\"", id.value(),
                        from.value(), r.status.ToString());
          auto found = n.tombstones_due.find(from);
          if (found != n.tombstones_due.end()) {
            found->second.in_flight = false;
            found->second.epoch = std::max(found->second.epoch, e + 1);
          }
          n.descriptors_due = true;  // learn it back
        },
        loop_->now());
  }
}

namespace {
// How long a shard stays frozen before its leader resolves the merge: the real node's
// kFrozenResolveMs, shortened to fit a run (what matters is that it happens, after a while).
constexpr int64_t kFrozenResolveNs = 3 * kSecond;
}  // namespace

void SimCluster::ResolveFrozenShards(Node& n) {
  for (GroupId g : n.store->groups()) {
    const cluster::Replica* r = n.store->replica(g);
    const kv::StateMachine& sm = r->state_machine();
    if (r->raw_node().raft().role() != raft::Role::kLeader || !sm.frozen() || !sm.range()) {
      n.frozen_since.erase(g);
      continue;
    }
    const int64_t since = n.frozen_since.try_emplace(g, loop_->now()).first->second;
    if (n.merging.contains(g) || n.resolving.contains(g) ||
        loop_->now() < since + kFrozenResolveNs) {
      continue;
    }
    const kv::internal::Frozen frozen = *sm.frozen();
    const SlotRange slots = *sm.range();
    GroupId ask(frozen.into);
    for (int hops = 0; hops < 16 && n.meta_merged.contains(ask); ++hops) {
      ask = n.meta_merged.at(ask).merged_into;
    }
    n.resolving.insert(g);
    Trace("merge-resolve " + std::to_string(n.id.value()) + " " + std::to_string(g.value()) + " " +
          std::to_string(ask.value()));
    cluster::ResolveFrozen(
        *n.router, g, ask, frozen.token,
        [this, id = n.id] { return (uint64_t{3} << 60) | (id.value() << 40) | ++change_sessions_; },
        [this, id = n.id, inc = n.incarnation, g, slots, ask](Result<bool> merged) {
          Node& n = node(id);
          if (n.incarnation != inc || !n.up) return;
          n.resolving.erase(g);
          n.frozen_since[g] = loop_->now();
          logger_.Debug(
              "event=merge_resolved node={} group={} outcome=\"{}\"", id.value(), g.value(),
              !merged.ok() ? merged.status().ToString() : (*merged ? "merged" : "given up"));
          if (merged.ok() && *merged) TombstoneDue(n, g, slots, ask, 0, /*mine=*/true);
        });
  }
}

bool SimCluster::MergeSomeShard(NodeId via, env::Random& rng) {
  if (!sharded()) return false;
  Node& n = node(via);
  if (!n.up || n.paused || !n.router) return false;
  const std::vector<cluster::ShardDescriptor>& shards = n.map->layout().shards;
  if (shards.size() < 2) return false;
  const cluster::ShardDescriptor& d = shards[rng.Uniform(shards.size())];
  if (n.merging.contains(d.group)) return false;
  const GroupId group = d.group;
  ++merges_requested_;
  n.merging.insert(group);
  Trace("merge-request " + std::to_string(via.value()) + " " + std::to_string(group.value()));
  cluster::RunMerge(
      *n.router, *n.map, group, std::nullopt,
      [this, via] { return (uint64_t{3} << 60) | (via.value() << 40) | ++change_sessions_; },
      [this, via, inc = n.incarnation, group](Result<cluster::MergeResult> r) {
        if (r.ok()) ++merges_done_;
        logger_.Debug("event=merge_result node={} group={} status=\"{}\"", via.value(),
                      group.value(), r.ok() ? "OK" : r.status().ToString());
        Node& n = node(via);
        if (n.incarnation != inc || !n.up) return;
        n.merging.erase(group);
        if (r.ok()) TombstoneDue(n, r->from, r->absorbed, r->into, r->epoch, /*mine=*/true);
      });
  Pump(n);
  return true;
}

void SimCluster::MaybeSplitBySize(Node& n) {
  if (!sharded() || split_max_bytes_ == 0 || !n.store || !n.router) return;
  for (GroupId g : n.store->groups()) {
    if (split_groups_.size() >= split_by_size_max_) return;
    const cluster::Replica* r = n.store->replica(g);
    if (g == cluster::kMetaGroup || n.size_splits.contains(g) || !r->IsMember() ||
        r->raw_node().raft().role() != raft::Role::kLeader) {
      continue;
    }
    const cluster::SizeSplit d = cluster::DecideSizeSplit(r->state_machine(), split_max_bytes_);
    if (d.kind != cluster::SizeSplit::Kind::kSplit) continue;
    ++splits_requested_;
    n.size_splits.insert(g);
    Trace("split-by-size " + std::to_string(n.id.value()) + " " + std::to_string(g.value()) + " " +
          std::to_string(d.at));
    cluster::RunSplit(
        *n.router, *n.map, g, d.at,
        [this, id = n.id] { return (uint64_t{3} << 60) | (id.value() << 40) | ++change_sessions_; },
        [this, id = n.id, inc = n.incarnation, g](Result<cluster::SplitResult> r) {
          if (r.ok()) ++splits_done_;
          Node& n = node(id);
          if (n.incarnation == inc) n.size_splits.erase(g);
        });
  }
}

bool SimCluster::SplitSomeShard(NodeId via, env::Random& rng) {
  if (!sharded()) return false;
  Node& n = node(via);
  if (!n.up || n.paused || !n.router) return false;
  std::vector<const cluster::ShardDescriptor*> splittable;
  for (const cluster::ShardDescriptor& d : n.map->layout().shards) {
    if (d.last_slot > d.first_slot) splittable.push_back(&d);
  }
  if (splittable.empty()) return false;
  const cluster::ShardDescriptor& d = *splittable[rng.Uniform(splittable.size())];
  const auto at =
      static_cast<uint16_t>(d.first_slot + 1 + rng.Uniform(uint64_t{d.last_slot} - d.first_slot));
  ++splits_requested_;
  Trace("split-request " + std::to_string(via.value()) + " " + std::to_string(d.group.value()) +
        " " + std::to_string(at));
  cluster::RunSplit(
      *n.router, *n.map, d.group, at,
      [this, via] { return (uint64_t{3} << 60) | (via.value() << 40) | ++change_sessions_; },
      [this, via, group = d.group](Result<cluster::SplitResult> r) {
        if (r.ok()) ++splits_done_;
        logger_.Debug("event=split_result node={} group={} status=\"{}\"", via.value(),
                      group.value(), r.ok() ? "OK" : r.status().ToString());
      });
  Pump(n);
  return true;
}

bool SimCluster::DescriptorsConverged(std::string* why) const {
  if (!sharded()) return true;
  for (GroupId group : Groups()) {
    const Node* leader = AnyLeaderNode(group);
    if (leader == nullptr) {
      if (why != nullptr) *why = "no leader in group " + std::to_string(group.value());
      return false;
    }
    const raft::MembershipConfig& cfg = ReplicaOf(*leader, group)->raw_node().raft().config();
    const std::set<NodeId> voter_set = cfg.voters.Ids();
    const std::vector<NodeId> voters(voter_set.begin(), voter_set.end());
    const std::vector<NodeId> learners(cfg.learners.begin(), cfg.learners.end());
    const std::optional<SlotRange>& range = ReplicaOf(*leader, group)->state_machine().range();
    for (const auto& [id, n] : nodes_) {
      if (!n->up || n->map == nullptr || Failed(id)) continue;
      const cluster::ShardDescriptor* d = n->map->Find(group);
      const bool same_slots = d == nullptr || group == cluster::kMetaGroup || !range ||
                              (d->first_slot == range->first && d->last_slot == range->last);
      if (d == nullptr || !cluster::SameMembers(*d, voters, learners) || !same_slots) {
        if (why != nullptr) {
          *why = fmt::format(
              "node {} holds the descriptor \"{}\" of group {}, whose members are {} and slots "
              "{} (the node {} the meta shard's epochs{}{})",
              id.value(), d ? cluster::EncodeDescriptor(*d) : "none", group.value(), cfg.ToString(),
              range ? fmt::format("{}-{}", range->first, range->last) : "any",
              n->meta_epochs_known ? "read" : "has not read",
              n->fetching ? ", a read in flight" : "",
              ReplicaOf(*n, cluster::kMetaGroup) != nullptr
                  ? fmt::format(
                        ", holding a meta replica: {} lead {} config {}{}",
                        raft::RoleName(
                            ReplicaOf(*n, cluster::kMetaGroup)->raw_node().raft().role()),
                        ReplicaOf(*n, cluster::kMetaGroup)->raw_node().raft().lead().value(),
                        ReplicaOf(*n, cluster::kMetaGroup)->raw_node().raft().config().ToString(),
                        n->store->quiesced(cluster::kMetaGroup) ? " quiesced" : "")
                  : "");
        }
        return false;
      }
    }
  }
  return true;
}

std::vector<GroupId> SimCluster::Groups() const {
  if (!sharded()) return {opts_.replica.group};
  std::vector<GroupId> out{layout_->meta.group};
  for (const cluster::ShardDescriptor& d : layout_->shards) out.push_back(d.group);
  out.insert(out.end(), split_groups_.begin(), split_groups_.end());
  std::sort(out.begin(), out.end());
  std::erase_if(out, [this](GroupId g) { return merged_groups_.contains(g); });
  return out;
}

GroupId SimCluster::GroupOfKey(std::string_view key) const {
  if (!sharded()) return opts_.replica.group;
  const uint16_t slot = KeySlot(key);
  for (const cluster::ShardDescriptor& d : layout_->shards) {
    if (d.Covers(slot)) return d.group;
  }
  SYNOD_ASSERT_MSG(false, "sim: a slot no shard covers");
  return GroupId();
}
}  // namespace synod::sim
