// Shards: how the 16384 hash slots are divided among Raft groups, and how a node names the
// shards and nodes to Redis Cluster clients.
//
// A shard owns a contiguous range of slots and is one Raft group. Its descriptor carries an
// epoch that changes whenever the descriptor does (a split, a move, a membership change), so
// that a request routed by an old descriptor can be told apart. Today a node derives its one
// shard from its group (every slot, epoch 1); the meta shard will hold the descriptors.
//
// Thread-safety: values and pure functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/ids.h"
#include "common/slot.h"

namespace synod::cluster {

struct ShardDescriptor {
  GroupId group;
  uint16_t first_slot = 0;
  uint16_t last_slot = kSlotCount - 1;  // inclusive
  uint64_t epoch = 1;
  // The voters; in a layout (layout.h) the first is the preferred leader.
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;  // in id order
  // A tombstone: the shard was merged into this group (docs/sharding.md, "Merges"); it has no
  // members then, and its replicas are destroyed wherever they are left. kNoGroup: a live shard.
  GroupId merged_into;

  bool Covers(uint16_t slot) const { return slot >= first_slot && slot <= last_slot; }
  // Whether `n` is a voter or a learner.
  bool Lists(NodeId n) const {
    return std::find(voters.begin(), voters.end(), n) != voters.end() ||
           std::find(learners.begin(), learners.end(), n) != learners.end();
  }
};

// A shard as one node sees it now: its descriptor and the leader it last heard of.
struct ShardView {
  ShardDescriptor desc;
  NodeId leader;  // kNoNode when unknown
};

// The shard of `slot` among `shards`, or nullptr when none covers it.
const ShardView* FindShard(const std::vector<ShardView>& shards, uint16_t slot);

// A node's name as Redis Cluster shows it (CLUSTER MYID, NODES, SLOTS, SHARDS): 40 lower-case
// hex digits, the same for a node of a cluster on every node and across restarts.
std::string ClusterNodeName(uint64_t cluster_id, NodeId node);

}  // namespace synod::cluster
