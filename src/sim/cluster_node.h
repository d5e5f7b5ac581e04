// SimCluster's node (internal to src/sim/cluster*.cc): what one simulated node holds — its disk
// or database, its Store or Replica, its router and map when sharded, and the checks' memory
// of it — and the transports its replicas and router send through. cluster.cc runs the nodes,
// cluster_shards.cc the sharded layout's routing and descriptors, cluster_checks.cc the
// invariants.
//
// Thread-safety: none (see cluster.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "sim/cluster.h"

namespace synod::sim {

// FNV-1a over `s`, continuing from `h`: the trace hash and the entries' hashes.
inline uint64_t Fnv(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

struct SimCluster::Node {
  NodeId id;
  std::unique_ptr<SimDisk> disk = std::make_unique<SimDisk>();
  std::unique_ptr<NodeTransport> transport;
  std::unique_ptr<storage::WalStorage> wal;
  // Node storage (ClusterOptions::node_storage): the real node's storage path — a NodeDb over
  // an in-memory engine that survives crashes, the group's GroupStorage in it, and the
  // node write the host makes durable (one at a time) after a simulated fsync. The group's
  // replica lives in the node's cluster::Store, as in the real node.
  storage::MemEngine engine;
  std::unique_ptr<storage::NodeDb> db;
  std::unique_ptr<cluster::Store> store;
  std::optional<storage::NodeDb::Write> write_in_flight;
  std::unique_ptr<cluster::Replica> owned_replica;  // WalStorage mode
  cluster::Replica* replica = nullptr;              // the one group's replica (unsharded)
  // Sharded: the node's view of the shards, its router, and the groups it is to hold (the
  // layout's, and those a membership change added it to).
  std::unique_ptr<cluster::ShardMap> map;
  std::unique_ptr<RequestOut> request_out;
  std::unique_ptr<cluster::RequestRouter> router;
  std::unique_ptr<compute::ScriptRunner> scripts;  // sharded: runs kScript requests
  std::set<GroupId> wanted;
  // Sharded: keeping the map in step with the descriptors in the meta shard, as the real node
  // does (cluster/logic/descriptors.h): the epochs the meta shard was last seen to hold, the
  // proposals in flight, the session they go in, a read in flight, and a membership change
  // applied since the last proposals.
  std::optional<cluster::Layout> saved_layout;  // the map as last learnt (survives crashes)
  cluster::HeldDescriptors meta_epochs;
  bool meta_epochs_known = false;
  std::set<GroupId> proposing;
  std::set<GroupId> size_splits;  // splits by size in flight
  // The epoch of its descriptor (in the node's map) when each group's replica was destroyed
  // here: only a newer descriptor that lists the node brings the group back, as on the real
  // node (GroupHost::destroyed_at_epoch_; it survives restarts there too).
  std::map<GroupId, uint64_t> destroyed_at_epoch;
  // Merges (cluster/logic/merge.h), as GroupHost keeps them: the tombstones the meta shard
  // holds, as last read; the tombstones due from this node; the merges it drives; and since when
  // each shard it leads has been seen frozen, with the resolutions in flight. All of it lives
  // in memory: a crash forgets it (the host's does too).
  struct DueTombstone {
    SlotRange slots;
    GroupId into;
    uint64_t epoch = 0;
    bool mine = false;  // this node drove the merge, or resolved it
    bool in_flight = false;
  };
  std::map<GroupId, cluster::ShardDescriptor> meta_merged;
  std::map<GroupId, DueTombstone> tombstones_due;
  std::set<GroupId> merging;
  std::map<GroupId, int64_t> frozen_since;
  std::set<GroupId> resolving;
  bool fetching = false;
  bool descriptors_due = false;
  bool started = false;  // ever booted (its disk holds a log)
  bool up = false;
  int64_t down_since = -1;  // when it crashed (-1: up, or never started)
  bool paused = false;
  uint64_t incarnation = 0;
  double clock_rate = 1.0;
  int64_t wall_skew_ms = 0;
  uint64_t ticks = 0;  // ticks in this incarnation, for the expiry cadence
  // Quiescence: when each peer was last heard from (any message), and the peers reported down.
  std::map<NodeId, int64_t> last_heard;
  std::set<NodeId> silent;
  std::vector<std::function<void()>> held;  // work held while paused
  std::map<GroupId, Seen> seen;             // per replica, in this incarnation
};

class SimCluster::RequestOut final : public cluster::RequestTransport {
 public:
  RequestOut(SimCluster* c, NodeId id) : c_(c), id_(id) {}
  void SendRequest(NodeId to, uint64_t id, const cluster::ShardRequest& req) override {
    c_->SendCall(id_, to, id, cluster::EncodeShardRequest(req), /*response=*/false);
  }
  void SendResponse(NodeId to, uint64_t id, const cluster::ShardResponse& resp) override {
    c_->SendCall(id_, to, id, cluster::EncodeShardResponse(resp), /*response=*/true);
  }
  void Wake() override {
    // Run the node's rounds after the current event (the real node posts a kick).
    c_->loop_->After(0, [c = c_, id = id_, inc = c_->node(id_).incarnation] {
      c->OnNode(
          id, inc, [c, id] { c->Pump(c->node(id)); }, true);
    });
  }

 private:
  SimCluster* c_;
  NodeId id_;
};

class SimCluster::NodeTransport final : public cluster::RaftTransport {
 public:
  NodeTransport(SimCluster* c, NodeId id) : c_(c), id_(id) {}
  void Send(GroupId group, raft::Message msg) override {
    c_->SendMessage(id_, group, std::move(msg));
  }
  void SendQuiesce(NodeId to, GroupId group, Term term, LogIndex index) override {
    ++c_->quiesce_notices_;
    c_->SendControl(id_, to, [from = id_, group, term, index](cluster::Store& s) {
      s.ReceiveQuiesce(from, group, term, index);
    });
  }
  void SendWake(NodeId to, GroupId group) override {
    c_->SendControl(id_, to,
                    [from = id_, group](cluster::Store& s) { s.ReceiveWake(from, group); });
  }
  void SendRemoved(NodeId to, GroupId group, LogIndex index) override {
    c_->SendControl(id_, to, [from = id_, group, index](cluster::Store& s) {
      s.ReceiveRemoved(from, group, index);
    });
  }

 private:
  SimCluster* c_;
  NodeId id_;
};

}  // namespace synod::sim
