// ShardMap: one node's view of where every slot lives — the layout's descriptors, a slot-indexed
// table over them, and the leader it last heard of for each shard — and DecideRoute, the pure
// decision of where a request for a shard goes from this node.
//
// Leader hints come from three places: the node's own replicas (exact, read by the host), the
// replies to requests it forwarded (a node that is not the leader names the one it knows), and
// the leadership notices nodes send each other (cluster/peer_wire.h). A hint carries the term it
// was learnt at, and a hint of an older term never replaces a newer one, so that a late notice
// cannot undo a newer election's result.
//
// Thread-safety: none; the core thread owns it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "cluster/logic/layout.h"
#include "cluster/logic/shard.h"
#include "common/ids.h"
#include "common/slot.h"

namespace synod::cluster {

class ShardMap {
 public:
  // REQUIRES: ValidateLayout(layout) is OK.
  explicit ShardMap(Layout layout);

  // The meta shard and the data shards that own slots now, in the order of the first slot each
  // owns. While a change is half learnt (a split's narrowed parent without its new shard, say)
  // a data shard's descriptor may cover slots another owns, or none it owns: ForSlot decides.
  const Layout& layout() const { return layout_; }
  // Whether layout() is a clean layout (ValidateLayout): every slot covered by exactly the
  // descriptor that owns it. What a node saves (a half-learnt change is not worth keeping).
  bool clean() const { return clean_; }
  // The data shard that owns `slot` (one always does): among the descriptors covering it, the
  // one of the highest epoch, then the narrower, then the higher group id (see Update); when
  // none covers it (a split's parent learnt before its new shard), the one that owned it last.
  const ShardDescriptor& ForSlot(uint16_t slot) const { return data_.at(by_slot_[slot]); }
  // The descriptor of `group` (the meta shard or a data shard), nullptr when unknown.
  const ShardDescriptor* Find(GroupId group) const;
  // A descriptor as the meta shard holds it (or as a split or a stale route's refusal told
  // it): replaces the one of its group when its epoch is newer, or adds a group not known yet
  // (a split's new shard). Slots go to the highest epoch covering them: a split gives both
  // halves the next epoch after the parent's, so the new shard wins its slots from the
  // parent's older descriptor, learnt in either order. A data shard left owning no slot is
  // forgotten (merged away, or a stale descriptor). Returns whether the map changed.
  // With take_ties, a descriptor of the map's epoch that differs from the map's replaces it too
  // (the meta shard's, which wins a tie).
  bool Update(const ShardDescriptor& d, bool take_ties = false);
  // A merged shard's tombstone (ShardDescriptor::merged_into): its group is forgotten when the
  // other shards' descriptors cover all of its slots (else it keeps them until the absorbing
  // shard's wider descriptor comes). Returns whether the map changed.
  bool ForgetMerged(const ShardDescriptor& tombstone);

  // The leader last heard of for `group`, kNoNode when none.
  NodeId leader(GroupId group) const;
  uint64_t leader_term(GroupId group) const;
  // Records that `node` leads `group` in `term`, unless a hint of a later term is held. A node
  // of kNoNode with a term above the hint's clears it (an election is under way).
  void NoteLeader(GroupId group, NodeId node, uint64_t term);

 private:
  // Recomputes by_slot_ and layout_ from data_.
  void Rebuild();

  Layout layout_;
  bool clean_ = true;
  std::map<GroupId, ShardDescriptor> data_;  // every data shard known
  std::array<GroupId, kSlotCount> by_slot_{};
  struct Hint {
    NodeId node;
    uint64_t term = 0;
  };
  std::map<GroupId, Hint> leaders_;
};

// Where a request for one shard goes from this node.
enum class RouteAction : uint8_t {
  kLocal,    // run it on this node's replica
  kForward,  // send it to `to` over the request channel
  kWait,     // no node to send it to yet (an election under way): try again after a tick
};

struct RouteDecision {
  RouteAction action = RouteAction::kWait;
  NodeId to;  // kForward only
  bool operator==(const RouteDecision&) const = default;
};

struct RouteInput {
  NodeId self;
  const ShardDescriptor* shard = nullptr;
  NodeId leader;              // the best leader hint (the local replica's own view if hosted)
  bool hosted = false;        // this node holds a replica of the shard that is a member of it
  bool local_leader = false;  // ... and it leads
  bool stale_ok = false;      // a READONLY read: any replica may answer from its own state
  int attempt = 0;            // 0 for the first try; counts retries of one request
  // Ticks the request has waited for a leader so far, and how many a hosted shard waits before
  // its voters are asked instead (a replica removed from its group without knowing it, or cut
  // off, may never hear of a leader).
  int waited = 0;
  int wait_max = 20;
};

// The rules, in order: a READONLY read of a hosted shard is local; a shard led here is local; a
// known leader elsewhere gets it; with no leader known, a hosted shard waits up to `wait_max`
// ticks (its replica will hear of the election), and then, like a shard not hosted, is sent to
// one of its other voters in turn (by `attempt` and `waited`), which either serves it or names
// the leader in its refusal.
RouteDecision DecideRoute(const RouteInput& in);

}  // namespace synod::cluster
