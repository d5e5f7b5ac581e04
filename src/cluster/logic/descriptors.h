// Descriptors in the meta shard (docs/sharding.md, "Descriptors in the meta shard"): the pure
// decisions of keeping a node's ShardMap in step with them, run by the real node (GroupHost) and
// the simulator alike. The hosts do the plumbing: read the settings (from the node's meta
// replica, or fetched from the meta shard's leader), and propose what these functions say.
//
// Each shard's descriptor is the meta shard's versioned setting "shard/<group>", stored as
// "<epoch> <descriptor line>" (kv::kVersionedSetCommand: only a newer epoch replaces it). The
// leader of a shard proposes a descriptor with its members and the next epoch after a
// membership change, and the layout's descriptor at epoch 1 while the meta shard holds none
// (a new cluster). Every node takes every descriptor of a newer epoch into its map.
//
// Thread-safety: pure functions over values the caller owns.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/logic/shard_map.h"
#include "cluster/logic/store.h"
#include "common/ids.h"
#include "kv/command.h"
#include "kv/state_machine.h"

namespace synod::cluster {

// The meta shard's setting that holds `group`'s descriptor.
std::string DescriptorSetting(GroupId group);

// A read of the meta shard's settings: the stored value of a name, nullopt when unset.
using SettingFn = std::function<std::optional<std::string_view>(const std::string&)>;

// The name of a kConfig read that asks for every descriptor (the settings "shard/...").
inline constexpr std::string_view kDescriptorSettings = "shard/*";
// The settings whose names start with `prefix`, from a meta shard's state machine (name ->
// value); what a kConfig read of "prefix*" answers.
std::map<std::string, std::string> SettingsWithPrefix(const kv::StateMachine& meta,
                                                      std::string_view prefix);

// The settings a kConfig read of several `names` answered (an array, nil for an unset one), as
// name -> value; empty when the reply does not have that shape. A name ending in '*' was
// answered with the names and values of every setting with that prefix.
std::map<std::string, std::string> SettingsOf(const std::vector<std::string>& names,
                                              const kv::Reply& reply);
// A SettingFn over such a map (which must outlive it).
SettingFn SettingsIn(const std::map<std::string, std::string>& settings);

// The descriptors the meta shard holds, by group, as a node last read them.
using HeldDescriptors = std::map<GroupId, ShardDescriptor>;

struct LearnResult {
  std::vector<ShardDescriptor> updated;  // took the map to a newer epoch
  std::vector<std::string> bad;          // stored values that are no descriptor of their group
  bool all_held = false;                 // the meta shard holds a descriptor of every group
  // The tombstones of merged shards the meta shard holds (kept out of `held` and the map).
  std::map<GroupId, ShardDescriptor> merged;
};

// Takes every descriptor the meta shard holds (`settings`: its "shard/..." settings) into the
// map, where newer (ShardMap::Update: new shards too), or of the same epoch and different (the
// meta shard's wins a tie: two nodes may have made different descriptors of one epoch, and only
// one landed). *held becomes what the meta shard holds.
LearnResult LearnDescriptors(ShardMap& map, const std::map<std::string, std::string>& settings,
                             HeldDescriptors* held);

// The descriptors this node is to propose: for every group whose replica here leads (its
// configuration not joint, no membership change committed and not applied) and that is not in
// `in_flight`, when the meta shard's descriptor of it is missing or does not name the replica's
// members and slots:
//  - the map's own, when it names them and is newer than the meta shard's (a new cluster's
//    layout at epoch 1, both halves of a split learnt here);
//  - else one with the replica's members and slots at the next epoch after the meta shard's and
//    the map's (and, for a shard neither knows, after every descriptor its slots overlap, so
//    that it outranks its parent's older one).
// A proposal's epoch is above every other shard's descriptor over its slots (a shard merged in
// may have changed while its merge ran).
// *retry (when given) becomes true when some group led here was passed over for a reason that
// passes by itself (a joint or pending configuration, entries committed and not applied yet, a
// proposal in flight): the host asks again soon rather than at its next periodic check (a
// learner whose descriptor waited ten seconds once stalled every move behind it).
// `merged`: the tombstones the meta shard holds (LearnResult::merged); a replica of one of
// those (one that lagged behind its shard's freeze) proposes nothing, since its descriptor
// would replace the tombstone.
std::vector<ShardDescriptor> DescriptorsToPropose(
    const Store& store, const ShardMap& map, const HeldDescriptors& held,
    const std::set<GroupId>& in_flight, bool* retry = nullptr,
    const std::map<GroupId, ShardDescriptor>* merged = nullptr);

// Takes both halves of a split applied here into the map (the parent's members for both, the
// split's epoch): this node routes by them at once, and its leaders propose them to the meta
// shard (DescriptorsToPropose: the map's epoch is newer than the meta shard's). Returns the
// descriptors the map took.
std::vector<ShardDescriptor> LearnSplit(ShardMap& map, const StartedSplit& split);

// Takes a merge applied here into the map: the absorbing shard's descriptor over both ranges, with
// its members at the merge, at an epoch above both shards' (the absorbed one is forgotten, owning
// no slot). Its leader proposes it to the meta shard. Returns the descriptors the map took.
std::vector<ShardDescriptor> LearnMerge(ShardMap& map, const AppliedMergeHere& merge);

// The meta shard write that proposes `d`, as the first command of the fresh at-most-once session
// `client_id` (one session per proposal: a session whose first command was lost refuses every
// later one as expired, which once left the leaders of shards unable to propose; a retry of the
// same proposal is answered from its session).
kv::Command ProposeDescriptorCommand(const ShardDescriptor& d, uint64_t client_id);

}  // namespace synod::cluster
