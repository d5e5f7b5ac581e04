#include "cluster/logic/descriptors.h"

#include <utility>

#include "kv/state_machine.h"
#include "raft/raft.h"

namespace synod::cluster {

std::string DescriptorSetting(GroupId group) { return "shard/" + std::to_string(group.value()); }

std::map<std::string, std::string> SettingsOf(const std::vector<std::string>& names,
                                              const kv::Reply& reply) {
  std::map<std::string, std::string> out;
  if (reply.replies.size() != names.size()) return out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (reply.replies[i].value) out[names[i]] = *reply.replies[i].value;
  }
  return out;
}

SettingFn SettingsIn(const std::map<std::string, std::string>& settings) {
  return [&settings](const std::string& name) -> std::optional<std::string_view> {
    auto it = settings.find(name);
    if (it == settings.end()) return std::nullopt;
    return std::string_view(it->second);
  };
}

LearnResult LearnDescriptors(ShardMap& map, const SettingFn& stored,
                             std::map<GroupId, uint64_t>* held) {
  LearnResult out;
  std::vector<GroupId> groups{map.layout().meta.group};
  for (const ShardDescriptor& d : map.layout().shards) groups.push_back(d.group);
  for (GroupId g : groups) {
    const std::optional<std::string_view> v = stored(DescriptorSetting(g));
    if (!v) {
      held->erase(g);
      continue;
    }
    const auto versioned = kv::ParseVersioned(*v);
    Result<ShardDescriptor> d = versioned
                                    ? DecodeDescriptor(versioned->second)
                                    : Result<ShardDescriptor>(Status::InvalidArgument("no epoch"));
    if (!d.ok() || d->group != g || d->epoch != versioned->first) {
      out.bad.push_back(std::string(*v));
      continue;
    }
    (*held)[g] = d->epoch;
    if (map.Update(*d)) out.updated.push_back(*d);
  }
  out.all_held = held->size() >= groups.size();
  return out;
}

std::vector<ShardDescriptor> DescriptorsToPropose(const Store& store, const ShardMap& map,
                                                  const std::map<GroupId, uint64_t>& held,
                                                  const std::set<GroupId>& in_flight) {
  std::vector<ShardDescriptor> out;
  for (GroupId g : store.groups()) {
    const Replica* r = store.replica(g);
    const raft::Raft& raft = r->raw_node().raft();
    const ShardDescriptor* d = map.Find(g);
    if (d == nullptr || raft.role() != raft::Role::kLeader || raft.config().IsJoint() ||
        raft.HasUnappliedConfChanges() || in_flight.contains(g)) {
      continue;
    }
    const std::set<NodeId> voter_set = raft.config().voters.Ids();
    const std::vector<NodeId> voters(voter_set.begin(), voter_set.end());
    const std::vector<NodeId> learners(raft.config().learners.begin(),
                                       raft.config().learners.end());
    if (!SameMembers(*d, voters, learners)) {
      out.push_back(WithMembers(*d, voters, learners));
    } else if (!held.contains(g)) {
      out.push_back(*d);  // the meta shard does not hold it yet (a new cluster)
    }
  }
  return out;
}

kv::Command ProposeDescriptorCommand(const ShardDescriptor& d, uint64_t client_id) {
  kv::Command cmd;
  cmd.op = kv::Op::kRedis;
  cmd.client_id = client_id;
  cmd.seq = 1;
  cmd.args = {std::string(kv::kVersionedSetCommand), DescriptorSetting(d.group),
              std::to_string(d.epoch), EncodeDescriptor(d)};
  return cmd;
}

}  // namespace synod::cluster
