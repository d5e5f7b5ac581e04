// Merges (`synod shard merge ID [--into OTHER]`, and automatic merges of small, cold shards;
// docs/sharding.md, "Merges"): the pure sequences any node runs through its RequestRouter, the
// real node and the simulator alike.
//
// Shard R (the one merged away) is absorbed by its neighbour L (the one that stays):
//  1. R's size is asked (at most kMergeBytesMax: its state travels through L's log);
//  2. R is frozen (kv::kFreezeCommand with a fresh token): from that entry on it applies
//     nothing else, so its state is final, and clients' commands for its slots are refused as
//     routed to the wrong shard (they retry: a pause, not an error);
//  3. R's frozen state is read from its leader (ShardRequest::kFrozenState);
//  4. it is proposed to L (kv::kMergeCommand): every replica of L takes R's keys and slots at
//     that entry, and its node's replica of R, if any, is destroyed (Store).
// The host then writes R's tombstone to the meta shard (a descriptor with merged=L and no
// members), which makes every node destroy what it still holds of R, and L's leader proposes
// L's wider descriptor (DescriptorsToPropose).
//
// Whether a merge happened is decided in L's log alone: a merge that fails after the freeze is
// given up by asking L to refuse its token (kv::kCancelMergeCommand): L answers that it merged
// it (then it is done after all) or that it never will, and only then is R unfrozen. A node
// that leads a shard frozen for longer than kFrozenResolveMs (its merge's driver died) does the
// same (ResolveFrozen).
//
// Thread-safety: none; the core thread (or the simulator's) runs it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "cluster/logic/descriptors.h"
#include "cluster/logic/router.h"
#include "cluster/logic/shard_map.h"
#include "common/ids.h"
#include "common/status.h"
#include "kv/state_machine.h"

namespace synod::cluster {

// The most bytes (keys and values) a merged-away shard may hold.
inline constexpr uint64_t kMergeBytesMax = 64ull << 20;
// How long a shard stays frozen before its leader gives the merge up (or finishes it).
inline constexpr int64_t kFrozenResolveMs = 20'000;

struct MergeResult {
  GroupId into;        // the shard that stays (L)
  GroupId from;        // the shard merged away (R)
  SlotRange slots;     // L's slots now
  SlotRange absorbed;  // R's
  uint64_t epoch = 0;  // L's descriptor's, and R's tombstone's
};

// The shard `group` merges into: `into` when given (it must hold the slots right before or
// right after `group`'s), else the one before it (the one after, for the shard holding slot
// 0). kInvalidArgument: the meta shard, a shard that is not a neighbour, the only data shard;
// kNotFound: no such shard.
Result<const ShardDescriptor*> MergeTarget(const ShardMap& map, GroupId group,
                                           std::optional<GroupId> into);

// Runs a merge of `group` into its neighbour (see the file comment). `done` gets the result
// once the merge applied, or the first error (R is unfrozen again first, when it was frozen
// and L refused the merge for ever); kFailedPrecondition at once while either shard's map
// descriptor lists a learner (a move under way).
void RunMerge(RequestRouter& router, const ShardMap& map, GroupId group,
              std::optional<GroupId> into, const std::function<uint64_t()>& new_session,
              std::function<void(Result<MergeResult>)> done);

// For a shard `group` frozen for a merge into `into` with `token` that nobody finishes: asks
// `into` to refuse the token; `done` gets true when it had merged it (the host writes the
// tombstone), false when R was unfrozen, or the error (tried again later).
void ResolveFrozen(RequestRouter& router, GroupId group, GroupId into, uint64_t token,
                   const std::function<uint64_t()>& new_session,
                   std::function<void(Result<bool>)> done);

// The tombstone of shard `from` (its slots), merged into `into`: no members, merged_into set,
// at `epoch`.
ShardDescriptor MergedTombstone(GroupId from, SlotRange slots, GroupId into, uint64_t epoch);

// The shards absorbed by a shard led here (its state's `absorbed` record) whose tombstones the
// meta shard (`merged`, its tombstones as last read) lacks: they are due from this node, which
// writes them while it leads the shard. So a tombstone owed by nodes that all crashed before
// writing it is still written, by the absorbing shard's next leader.
std::vector<kv::Absorbed> TombstonesOwed(const std::vector<kv::Absorbed>& absorbed,
                                         const std::map<GroupId, ShardDescriptor>& merged);

// The epoch to write shard `from`'s tombstone at: `due` (the merge's, or above a refused try),
// and above `from`'s descriptor as the meta shard (`held`) and the map hold it.
uint64_t TombstoneEpoch(uint64_t due, GroupId from, const HeldDescriptors& held,
                        const ShardMap& map);

}  // namespace synod::cluster
