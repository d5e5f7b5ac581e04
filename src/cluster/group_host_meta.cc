// GroupHost's part that concerns the meta shard's replicated state: the settings (requirepass)
// a node without a meta replica fetches, and the shard descriptors every node learns from it
// and the shards' leaders propose to it (docs/sharding.md, "Descriptors in the meta shard").
#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "cluster/group_host.h"
#include "cluster/logic/descriptors.h"
#include "kv/state_machine.h"

namespace synod::cluster {

std::optional<std::string_view> GroupHost::RequirePass() const {
  if (const kv::StateMachine* meta = MetaStateMachine(/*need_leader=*/false)) {
    return meta->config("requirepass").value_or(std::string_view());
  }
  if (!fetched_requirepass_) return std::nullopt;
  return std::string_view(*fetched_requirepass_);
}

uint64_t GroupHost::NewSessionId() {
  // Distinct from every client's session and from this node's earlier ones.
  if (session_rng_ == 0) {
    session_rng_ = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}() ^
                   (opts_.id.value() << 48);
  }
  session_rng_ = session_rng_ * 6364136223846793005ull + 1442695040888963407ull;
  return session_rng_ == 0 ? 1 : session_rng_;
}

const kv::StateMachine* GroupHost::MetaStateMachine(bool need_leader) const {
  const Replica* r = store_->replica(kMetaGroup);
  if (r == nullptr || !r->IsMember()) return nullptr;
  if (need_leader && r->raw_node().raft().lead() == kNoNode) return nullptr;
  return &r->state_machine();
}

namespace {}  // namespace

std::string GroupHost::NodeSetting(NodeId n) { return "node/" + std::to_string(n.value()); }
std::string GroupHost::DrainSetting(NodeId n) { return "drain/" + std::to_string(n.value()); }
std::string GroupHost::NodeValue(const MemberAddress& a, const std::string& zone) {
  return a.peer + "/" + a.client + "/" + a.admin + (zone.empty() ? "" : " zone=" + zone);
}

void GroupHost::FetchReplicatedConfig() {
  if (const kv::StateMachine* meta = MetaStateMachine(/*need_leader=*/true)) {
    // Read only when the meta shard applied something since (a node of many shards reads
    // them all).
    if (!meta_epochs_known_ || meta->applied_index() != meta_applied_learnt_) {
      meta_applied_learnt_ = meta->applied_index();
      LearnDescriptors(SettingsWithPrefix(*meta, "shard/"));
      std::map<std::string, std::string> nodes = SettingsWithPrefix(*meta, "node/");
      nodes.merge(SettingsWithPrefix(*meta, "drain/"));
      LearnNodeList(nodes);
      LearnFunctions(SettingsWithPrefix(*meta, kFunctionPrefix));
    }
    FollowNodeList();
    return;
  }
  if (fetching_config_) return;
  fetching_config_ = true;
  // requirepass, every shard's descriptor, the node list.
  ShardRequest req;
  req.type = ShardRequest::Type::kConfig;
  req.group = kMetaGroup;
  req.args = {"requirepass", std::string(kDescriptorSettings), "node/*", "drain/*",
              std::string(kFunctionPrefix) + "*"};
  std::vector<std::string> names = req.args;
  Call(std::move(req), [this, names = std::move(names), alive = alive_](ShardResponse r) {
    if (!*alive) return;
    fetching_config_ = false;
    if (!r.status.ok()) return;  // tried again at the next second
    const std::vector<kv::Reply>& values = r.reply.replies;
    if (values.size() != names.size()) return;
    fetched_requirepass_ = values[0].value.value_or(std::string());
    const std::map<std::string, std::string> got = SettingsOf(names, r.reply);
    LearnDescriptors(got);
    LearnNodeList(got);
    LearnFunctions(got);
    FollowNodeList();
  });
}

void GroupHost::LearnFunctions(const std::map<std::string, std::string>& settings) {
  std::map<std::string, std::string> libs;
  for (const auto& [name, code] : settings) {
    if (name.starts_with(kFunctionPrefix) && !code.empty()) {
      libs.emplace(name.substr(std::string_view(kFunctionPrefix).size()), code);
    }
  }
  functions_ = std::move(libs);
}

void GroupHost::RefreshFunctions(std::function<void(Status)> done) {
  ShardRequest req;
  req.type = ShardRequest::Type::kConfig;
  req.group = kMetaGroup;
  // Two names, so that the answer is an array of one reply per name (one name gets its reply).
  req.args = {std::string(kFunctionPrefix) + "*", "requirepass"};
  std::vector<std::string> names = req.args;
  Call(std::move(req),
       [this, names = std::move(names), done = std::move(done), alive = alive_](ShardResponse r) {
         if (!*alive) return;
         if (r.status.ok() && r.reply.replies.size() != names.size()) {
           r.status = Status::Unavailable("the meta shard's answer does not match the question");
         }
         if (r.status.ok()) LearnFunctions(SettingsOf(names, r.reply));
         done(r.status);
       });
}

void GroupHost::ProposeFunctions(std::vector<std::pair<std::string, std::string>> changes,
                                 std::function<void(Status)> done) {
  std::vector<std::pair<std::string, std::string>> settings;
  for (auto& [lib, code] : changes) {
    settings.emplace_back(std::string(kFunctionPrefix) + lib, std::move(code));
  }
  ProposeMetaSettings(std::move(settings),
                      [this, done = std::move(done), alive = alive_](Status s) {
                        if (!*alive) return;
                        if (!s.ok()) return done(std::move(s));
                        // Learn it back before answering, so this node's next FCALL sees it.
                        RefreshFunctions([done](const Status&) { done(Status::Ok()); });
                      });
}

void GroupHost::LearnNodeList(const std::map<std::string, std::string>& settings) {
  std::map<NodeId, MemberAddress> nodes;
  std::map<NodeId, std::string> zones;
  std::set<NodeId> draining;
  auto id_of = [](std::string_view name, std::string_view prefix) -> std::optional<NodeId> {
    if (!name.starts_with(prefix)) return std::nullopt;
    uint64_t id = 0;
    const std::string_view digits = name.substr(prefix.size());
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (ec != std::errc() || end != digits.data() + digits.size() || id == 0) return std::nullopt;
    return NodeId(id);
  };
  for (const auto& [name, value] : settings) {
    if (std::optional<NodeId> n = id_of(name, "drain/")) {
      if (!value.empty()) draining.insert(*n);
      continue;
    }
    std::optional<NodeId> n = id_of(name, "node/");
    if (!n || value.empty()) continue;
    // "PEER/CLIENT/ADMIN[ zone=Z]"
    std::string_view addresses = value;
    std::string zone;
    if (const size_t sp = addresses.find(' '); sp != std::string_view::npos) {
      const std::string_view rest = addresses.substr(sp + 1);
      addresses = addresses.substr(0, sp);
      if (rest.starts_with("zone=")) zone = std::string(rest.substr(5));
    }
    Result<AddressBook> parsed =
        ParseMemberList(std::to_string(n->value()) + "=" + std::string(addresses));
    if (!parsed.ok() || parsed->size() != 1) {
      logger_.Warn("event=bad_node_entry node={} stored=\"{}\"", n->value(), value);
      continue;
    }
    nodes[*n] = parsed->begin()->second;
    if (!zone.empty()) zones[*n] = std::move(zone);
  }
  meta_nodes_ = std::move(nodes);
  meta_zones_ = std::move(zones);
  meta_draining_ = std::move(draining);
  meta_nodes_known_ = true;
}

void GroupHost::FollowNodeList() {
  if (!meta_nodes_known_ || stopped_) return;
  bool changed = false;
  for (const auto& [id, a] : meta_nodes_) {
    if (id == opts_.id) continue;  // we know our own addresses best
    auto it = members_.find(id);
    if (it != members_.end() && it->second == a) continue;
    logger_.Info("event=node_addresses_learned node={} addresses=\"{}\"", id.value(),
                 NodeValue(a, ""));
    members_[id] = a;
    if (!a.peer.empty()) transport_->SetPeer(id, a.peer);
    changed = true;
  }
  if (changed) SaveAddressBook();
  // Register (or re-register) this node's addresses and zone; once a start, or after they
  // changed. Only while listed or a member of some group: a node removed from the cluster stays
  // out of the list (a joining node is listed by the meta leader that adds it).
  auto self = members_.find(opts_.id);
  if (self == members_.end() || registering_) return;
  auto listed = meta_nodes_.find(opts_.id);
  bool member = listed != meta_nodes_.end();
  for (GroupId g : store_->groups()) member = member || store_->replica(g)->IsMember();
  if (!member) return;
  auto zone = meta_zones_.find(opts_.id);
  const std::string listed_zone = zone == meta_zones_.end() ? std::string() : zone->second;
  if (listed != meta_nodes_.end() && listed->second == self->second && listed_zone == opts_.zone) {
    return;
  }
  registering_ = true;
  const std::string value = NodeValue(self->second, opts_.zone);
  logger_.Info("event=node_registering addresses=\"{}\"", value);
  ProposeMetaSetting(NodeSetting(opts_.id), value, [this, alive = alive_](Status s) {
    if (!*alive) return;
    registering_ = false;
    if (!s.ok()) {
      logger_.Info("event=node_not_registered error=\"{}\"", s.ToString());
    }
  });
}

void GroupHost::ProposeMetaSetting(std::string name, std::string value,
                                   std::function<void(Status)> done) {
  ProposeMetaSettings({{std::move(name), std::move(value)}}, std::move(done));
}

void GroupHost::ProposeMetaSettings(std::vector<std::pair<std::string, std::string>> settings,
                                    std::function<void(Status)> done) {
  kv::Command cmd;
  cmd.op = kv::Op::kRedis;
  // A fresh session per proposal (a session whose first command was lost would refuse every
  // later one as expired); a retry of this one is answered from it.
  cmd.client_id = NewSessionId();
  cmd.seq = 1;
  cmd.args = {std::string(kv::kConfigSetCommand)};
  for (auto& [name, value] : settings) {
    cmd.args.push_back(std::move(name));
    cmd.args.push_back(std::move(value));
  }
  ShardRequest req;
  req.type = ShardRequest::Type::kWrite;
  req.group = kMetaGroup;
  req.command = std::move(cmd);
  Call(std::move(req), [this, done = std::move(done), alive = alive_](ShardResponse resp) {
    if (!*alive) return;
    Status s = resp.status;
    if (s.ok() && !resp.reply.ok()) s = Status::InvalidArgument(std::string(resp.reply.message()));
    done(std::move(s));
    meta_read_due_ = true;  // learn it back at the next tick (never from inside an answer)
  });
}

void GroupHost::LearnDescriptors(const std::map<std::string, std::string>& settings) {
  LearnResult learnt = cluster::LearnDescriptors(*map_, settings, &meta_epochs_);
  meta_merged_ = std::move(learnt.merged);
  for (const std::string& bad : learnt.bad) {
    logger_.Warn("event=bad_descriptor stored=\"{}\"", bad);
  }
  for (const ShardDescriptor& d : learnt.updated) {
    logger_.Info("event=descriptor_updated descriptor=\"{}\"", EncodeDescriptor(d));
  }
  // A new cluster: the leaders seed the descriptors the meta shard does not hold yet.
  if (!meta_epochs_known_ || !learnt.all_held) descriptors_due_ = true;
  meta_epochs_known_ = true;
  if (!learnt.updated.empty()) SaveLayout();
  JoinListedGroups();
}

void GroupHost::SaveLayout() {
  // A half-learnt change (a split's parent without its new shard) is not saved: the meta shard
  // gives the rest within a second, and a restart reads each group's own slots from its state.
  if (!map_->clean()) return;
  const Status s = db_->PutMeta(kLayoutMeta, EncodeLayout(map_->layout()));
  if (!s.ok()) logger_.Warn("event=layout_not_saved error=\"{}\"", s.ToString());
}

void GroupHost::JoinListedGroups() {
  // A shard that lists this node and that it holds no replica of (a split it missed, having
  // been behind or down): an empty replica, which its leader's snapshot fills. Never between a
  // round's start and end (the Store refuses); tried again at the next read.
  if (store_->round_in_flight()) return;
  std::vector<const ShardDescriptor*> all{&map_->layout().meta};
  for (const ShardDescriptor& s : map_->layout().shards) all.push_back(&s);
  for (const ShardDescriptor* shard : all) {
    const ShardDescriptor& d = *shard;
    if (store_->HasGroup(d.group) || meta_merged_.contains(d.group)) continue;
    if (auto it = destroyed_at_epoch_.find(d.group);
        it != destroyed_at_epoch_.end() && d.epoch <= it->second) {
      continue;  // destroyed here since; only a newer descriptor that lists it brings it back
    }
    if (!d.Lists(opts_.id)) continue;
    const Status s = store_->AddGroup(d.group,
                                      d.group == kMetaGroup
                                          ? storage::StateSpan::Group()
                                          : storage::StateSpan::Slots(d.first_slot, d.last_slot),
                                      {});
    logger_.Info("event=replica_created group={} slots={}-{} result=\"{}\"", d.group.value(),
                 d.first_slot, d.last_slot, s.ToString());
  }
  // A replica of a shard merged into another (its tombstone is in the meta shard): whatever it
  // holds is the other shard's now (or was, for a replica that lagged). Its keys go unless the
  // absorbing shard's replica here owns their slots already.
  for (GroupId g : store_->groups()) {
    auto t = meta_merged_.find(g);
    if (t == meta_merged_.end() || store_->replica(g)->persisting()) continue;
    const Status s = store_->RemoveGroup(g, /*with_data=*/true);
    logger_.Info("event=merged_replica_removed group={} into={} result=\"{}\"", g.value(),
                 t->second.merged_into.value(), s.ToString());
  }
  // An empty replica (made when a descriptor listed this node, no snapshot since) of a shard
  // whose descriptor no longer lists it: its learner was removed before it got anything (a move
  // given up, a node drained meanwhile). No member will ever tell it (it knows of none), and it
  // holds nothing: it goes.
  for (GroupId g : store_->groups()) {
    const ShardDescriptor* d = map_->Find(g);
    if (g == kMetaGroup || d == nullptr || store_->replica(g)->persisting() ||
        !store_->HoldsNothing(g) || d->Lists(opts_.id)) {
      continue;
    }
    const Status s = store_->RemoveGroup(g, /*with_data=*/false);
    logger_.Info("event=empty_replica_removed group={} epoch={} result=\"{}\"", g.value(), d->epoch,
                 s.ToString());
  }
}

void GroupHost::ProposeDescriptors() {
  if (!meta_epochs_known_) return;
  bool retry = false;
  const std::vector<ShardDescriptor> proposals = DescriptorsToPropose(
      *store_, *map_, meta_epochs_, proposing_descriptors_, &retry, &meta_merged_);
  // A group passed over for now (a change pending, a proposal in flight): again next tick.
  if (retry) descriptors_due_ = true;
  for (const ShardDescriptor& next : proposals) {
    const GroupId g = next.group;
    ShardRequest req;
    req.type = ShardRequest::Type::kWrite;
    req.group = kMetaGroup;
    req.command = ProposeDescriptorCommand(next, NewSessionId());
    proposing_descriptors_.insert(g);
    logger_.Info("event=descriptor_proposed descriptor=\"{}\"", EncodeDescriptor(next));
    Call(std::move(req), [this, g, alive = alive_](ShardResponse resp) {
      if (!*alive) return;
      proposing_descriptors_.erase(g);
      if (!resp.status.ok()) {
        logger_.Info("event=descriptor_not_proposed group={} error=\"{}\"", g.value(),
                     resp.status.ToString());
      }
      meta_read_due_ = true;  // learn it back at the next tick (never from inside an answer)
    });
  }
}

}  // namespace synod::cluster
