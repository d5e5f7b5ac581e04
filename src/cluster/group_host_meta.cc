// GroupHost's part that concerns the meta shard's replicated state: the settings (requirepass)
// a node without a meta replica fetches, and the shard descriptors every node learns from it
// and the shards' leaders propose to it (docs/sharding.md, "Descriptors in the meta shard").
#include <functional>
#include <map>
#include <random>
#include <string>

#include "cluster/group_host.h"
#include "env/asio/steady_clock.h"
#include "kv/state_machine.h"

namespace synod::cluster {

using env::SteadyNowNs;

std::optional<std::string_view> GroupHost::RequirePass() const {
  if (const kv::StateMachine* meta = LocalStateMachine(kMetaGroup)) {
    return meta->config("requirepass").value_or(std::string_view());
  }
  if (!fetched_requirepass_) return std::nullopt;
  return std::string_view(*fetched_requirepass_);
}

namespace {

std::string DescriptorSetting(GroupId g) { return "shard/" + std::to_string(g.value()); }

}  // namespace

void GroupHost::FetchReplicatedConfig() {
  if (const kv::StateMachine* meta = LocalStateMachine(kMetaGroup)) {
    // Only when the meta shard applied something since (a node of many shards reads them all).
    if (meta_epochs_known_ && meta->applied_index() == meta_applied_learnt_) return;
    meta_applied_learnt_ = meta->applied_index();
    LearnDescriptors([meta](const std::string& name) { return meta->config(name); });
    return;
  }
  if (fetching_config_) return;
  fetching_config_ = true;
  // requirepass, then every shard's descriptor.
  ShardRequest req;
  req.type = ShardRequest::Type::kConfig;
  req.group = kMetaGroup;
  req.args = {"requirepass", DescriptorSetting(kMetaGroup)};
  for (GroupId g : DataShards()) req.args.push_back(DescriptorSetting(g));
  std::vector<std::string> names = req.args;
  Call(std::move(req), [this, names = std::move(names), alive = alive_](ShardResponse r) {
    if (!*alive) return;
    fetching_config_ = false;
    if (!r.status.ok()) return;  // tried again at the next second
    const std::vector<kv::Reply>& values = r.reply.replies;
    if (values.size() != names.size()) return;
    fetched_requirepass_ = values[0].value.value_or(std::string());
    std::map<std::string, std::string> got;
    for (size_t i = 1; i < names.size(); ++i) {
      if (values[i].value) got[names[i]] = *values[i].value;
    }
    LearnDescriptors([&got](const std::string& name) -> std::optional<std::string_view> {
      auto it = got.find(name);
      if (it == got.end()) return std::nullopt;
      return std::string_view(it->second);
    });
  });
}

void GroupHost::LearnDescriptors(
    const std::function<std::optional<std::string_view>(const std::string&)>& stored) {
  std::vector<GroupId> groups{kMetaGroup};
  for (GroupId g : DataShards()) groups.push_back(g);
  bool changed = false;
  for (GroupId g : groups) {
    const std::optional<std::string_view> v = stored(DescriptorSetting(g));
    if (!v) {
      meta_epochs_.erase(g);
      continue;
    }
    const auto versioned = kv::ParseVersioned(*v);
    Result<ShardDescriptor> d = versioned ? DecodeDescriptor(versioned->second)
                                          : Result<ShardDescriptor>(Status::InvalidArgument("?"));
    if (!d.ok() || d->group != g || d->epoch != versioned->first) {
      logger_.Warn("event=bad_descriptor group={} stored=\"{}\"", g.value(), *v);
      continue;
    }
    meta_epochs_[g] = d->epoch;
    if (map_->Update(*d)) {
      changed = true;
      logger_.Info("event=descriptor_updated descriptor=\"{}\"", EncodeDescriptor(*d));
    }
  }
  // A new cluster: the leaders seed the descriptors the meta shard does not hold yet.
  if (!meta_epochs_known_ || meta_epochs_.size() < groups.size()) descriptors_due_ = true;
  meta_epochs_known_ = true;
  if (changed) {
    const Status s = db_->PutMeta(kLayoutMeta, EncodeLayout(map_->layout()));
    if (!s.ok()) logger_.Warn("event=layout_not_saved error=\"{}\"", s.ToString());
  }
}

void GroupHost::ProposeDescriptors() {
  if (!meta_epochs_known_) return;
  if (descriptor_session_ == 0) {
    descriptor_session_ = (static_cast<uint64_t>(SteadyNowNs()) * 0x9E3779B97F4A7C15ull) ^
                          (opts_.id.value() << 48) ^ std::random_device{}();
    if (descriptor_session_ == 0) descriptor_session_ = 1;
  }
  for (GroupId g : store_->groups()) {
    const Replica* r = store_->replica(g);
    const raft::Raft& raft = r->raw_node().raft();
    const ShardDescriptor* d = map_->Find(g);
    if (d == nullptr || raft.role() != raft::Role::kLeader || raft.config().IsJoint() ||
        raft.HasUnappliedConfChanges() || proposing_descriptors_.contains(g)) {
      continue;
    }
    const std::set<NodeId> voter_set = raft.config().voters.Ids();
    const std::vector<NodeId> voters(voter_set.begin(), voter_set.end());
    const std::vector<NodeId> learners(raft.config().learners.begin(),
                                       raft.config().learners.end());
    ShardDescriptor next;
    if (!SameMembers(*d, voters, learners)) {
      next = WithMembers(*d, voters, learners);
    } else if (!meta_epochs_.contains(g)) {
      next = *d;  // the meta shard does not hold it yet (a new cluster)
    } else {
      continue;
    }
    kv::Command cmd;
    cmd.op = kv::Op::kRedis;
    cmd.client_id = descriptor_session_;
    cmd.seq = ++descriptor_seq_;
    cmd.args = {std::string(kv::kVersionedSetCommand), DescriptorSetting(g),
                std::to_string(next.epoch), EncodeDescriptor(next)};
    ShardRequest req;
    req.type = ShardRequest::Type::kWrite;
    req.group = kMetaGroup;
    req.command = std::move(cmd);
    proposing_descriptors_.insert(g);
    logger_.Info("event=descriptor_proposed descriptor=\"{}\"", EncodeDescriptor(next));
    Call(std::move(req), [this, g, alive = alive_](ShardResponse resp) {
      if (!*alive) return;
      proposing_descriptors_.erase(g);
      if (!resp.status.ok()) {
        logger_.Info("event=descriptor_not_proposed group={} error=\"{}\"", g.value(),
                     resp.status.ToString());
      }
      FetchReplicatedConfig();  // learn it back (a meta replica: at once)
    });
  }
}

}  // namespace synod::cluster
