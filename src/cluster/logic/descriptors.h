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

namespace synod::cluster {

// The meta shard's setting that holds `group`'s descriptor.
std::string DescriptorSetting(GroupId group);

// A read of the meta shard's settings: the stored value of a name, nullopt when unset.
using SettingFn = std::function<std::optional<std::string_view>(const std::string&)>;

// The settings a kConfig read of several `names` answered (an array, nil for an unset one), as
// name -> value; empty when the reply does not have that shape.
std::map<std::string, std::string> SettingsOf(const std::vector<std::string>& names,
                                              const kv::Reply& reply);
// A SettingFn over such a map (which must outlive it).
SettingFn SettingsIn(const std::map<std::string, std::string>& settings);

struct LearnResult {
  std::vector<ShardDescriptor> updated;  // took the map to a newer epoch
  std::vector<std::string> bad;          // stored values that are no descriptor of their group
  bool all_held = false;                 // the meta shard holds a descriptor of every group
};

// Reads the descriptor of every group of `map` (the meta shard and the data shards) through
// `stored`; a newer epoch replaces the map's. *held becomes the epochs the meta shard holds.
LearnResult LearnDescriptors(ShardMap& map, const SettingFn& stored,
                             std::map<GroupId, uint64_t>* held);

// The descriptors this node is to propose: for every group whose replica here leads (its
// configuration not joint, no membership change committed and not applied) and that is not in
// `in_flight`, a descriptor with the replica's members and the next epoch when they differ
// from the map's, or the map's own when the meta shard holds none of the group yet.
std::vector<ShardDescriptor> DescriptorsToPropose(const Store& store, const ShardMap& map,
                                                  const std::map<GroupId, uint64_t>& held,
                                                  const std::set<GroupId>& in_flight);

// The meta shard write that proposes `d`, as the first command of the fresh at-most-once session
// `client_id` (one session per proposal: a session whose first command was lost refuses every
// later one as expired, which once left the leaders of shards unable to propose; a retry of the
// same proposal is answered from its session).
kv::Command ProposeDescriptorCommand(const ShardDescriptor& d, uint64_t client_id);

}  // namespace synod::cluster
