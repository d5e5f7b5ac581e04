// Placement (docs/sharding.md, "Placement"): where the replicas of every shard should live and
// which of them should lead, decided by the meta shard's leader every second from what it
// knows — the node list (each node's zone, whether it is draining, whether it was heard from
// within --dead-node-timeout) and the shards' descriptors. The host carries out the actions one
// membership step at a time (move.h) and proposes the leader preferences as descriptors.
//
// Rules, in order (a shard gets at most one action per round; a shard with a change in flight
// or a learner being caught up gets none):
//  1. Repair: a replica on a node that is dead, draining or no longer listed is replaced — moved
//     to the best usable node (usable: listed, live, not draining) that holds none, or, for a
//     draining or unlisted node when no such node exists, removed (the operator asked for the
//     node to go; a dead node's replica stays until a replacement exists, since removing it
//     gains nothing). A learner on such a node is removed. A shard with fewer replicas than
//     min(replicas, usable nodes) gets one added; one with more voters than `replicas` loses the
//     one on the most loaded node (never its preferred leader while another choice exists). A
//     shard whose replicas share a zone while a usable node of a zone it lacks exists moves one.
//  2. Balance, only when no repair is planned or in flight: while the most loaded usable node
//     holds at least two replicas more than the least loaded, one replica moves from it to the
//     least loaded (a shard the latter holds none of, without losing zone diversity).
//  2b. Bytes, on a settled cluster whose replica counts need no move, when every shard's bytes
//     are known: while the usable node holding the most bytes holds more than 10% (and
//     kBytesSpreadMin) above the mean, it gives a replica of a large shard to the node holding
//     the fewest and takes one of a smaller shard back in the same round (a swap keeps the
//     counts; a plain move when the light node holds fewer replicas), the pair that brings the
//     two nearest each other, only when it narrows their gap (so it always ends).
//  3. Leaders: each data shard's preferred leader (its descriptor's first voter, which the
//     shard's leader hands the leadership to) is a usable node; while some usable node is the
//     preferred leader of two shards more than another voter of such a shard, one preference
//     moves. The meta shard keeps its own (it is not balanced).
//  3b. Leaders' writes, when the counts need no move and every shard's writes/s are known: the
//     node leading the most writes/s, when more than 10% (and kWritesSpreadMin) above the
//     mean, hands one preference to a fellow voter (only to one leading fewer shards) or swaps
//     a hot one for a colder one that voter leads, the choice that narrows their gap most, and
//     only when it does narrow it (so it ends). A leader does a shard's client work and sends
//     its log to the followers; every replica applies every write wherever it leads, so
//     replicas are balanced by count and bytes (2, 2b) and writes by where the leaders are.
// The best target: a node whose zone the shard's other replicas lack (when zones are set), then
// the fewest replicas, then the lowest id. At most `max_changes` membership changes in flight.
// A draining node that holds no replica any more is forgotten (kForget: its entries leave the
// node list).
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cluster/logic/shard.h"
#include "common/ids.h"

namespace synod::cluster {

struct PlacementNode {
  NodeId id;
  std::string zone;  // "" when the node has no --zone
  bool live = true;  // heard from within the dead-node timeout
  bool draining = false;
};

struct PlacementInput {
  std::vector<PlacementNode> nodes;  // the node list
  ShardDescriptor meta;
  std::vector<ShardDescriptor> shards;  // the data shards
  int replicas = 3;                     // per data shard
  int meta_replicas = 5;                // the meta shard's voters at most
  std::set<GroupId> busy;               // shards with a membership change in flight
  int max_changes = 3;                  // membership changes in flight at once, busy included
  // The bytes of each data shard's keys and values, as its leader last reported them (rule 2b
  // runs only when every shard has one).
  std::map<GroupId, uint64_t> bytes;
  // The writes/s of each data shard, as its leader last reported them (rule 3b runs only when
  // every shard has one).
  std::map<GroupId, uint64_t> writes;
};

// Below this gap between the nodes holding the most and the fewest bytes, they are balanced.
inline constexpr uint64_t kBytesSpreadMin = 8 << 20;
// Below this gap between the writes/s two nodes lead, they are balanced.
inline constexpr uint64_t kWritesSpreadMin = 200;

struct PlacementAction {
  enum class Kind : uint8_t {
    kMove,    // add `to` (learner, then voter), then remove `from`
    kAdd,     // add `to`
    kRemove,  // remove `from`
    kLead,    // make `to` the shard's preferred leader
    kForget,  // `from` is drained: out of the node list
  };
  Kind kind = Kind::kMove;
  GroupId group;
  NodeId from;
  NodeId to;
  std::string reason;  // "dead", "draining", "unlisted", "under-replicated", "balance", ...

  bool operator==(const PlacementAction&) const = default;
};

// The actions for this round (see the file comment); empty when all is in place.
std::vector<PlacementAction> PlanPlacement(const PlacementInput& in);

// "move group=4 from=1 to=5 reason=dead": for the log and for tests.
std::string DescribeAction(const PlacementAction& a);

}  // namespace synod::cluster
