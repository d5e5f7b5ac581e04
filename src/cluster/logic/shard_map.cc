#include "cluster/logic/shard_map.h"

#include <utility>

#include "common/assert.h"

namespace synod::cluster {

ShardMap::ShardMap(Layout layout) : layout_(std::move(layout)) {
  SYNOD_ASSERT(ValidateLayout(layout_).ok());
  for (size_t i = 0; i < layout_.shards.size(); ++i) {
    const ShardDescriptor& d = layout_.shards[i];
    for (uint32_t s = d.first_slot; s <= d.last_slot; ++s) by_slot_[s] = static_cast<uint16_t>(i);
  }
}

namespace {

// Data shards are in slot order, not group order, and a layout holds few: a linear scan.
template <typename L>
auto FindIn(L& layout, GroupId group) -> decltype(&layout.meta) {
  if (group == layout.meta.group) return &layout.meta;
  for (auto& d : layout.shards) {
    if (d.group == group) return &d;
  }
  return nullptr;
}

}  // namespace

const ShardDescriptor* ShardMap::Find(GroupId group) const { return FindIn(layout_, group); }

ShardDescriptor* ShardMap::FindMutable(GroupId group) { return FindIn(layout_, group); }

bool ShardMap::Update(const ShardDescriptor& d) {
  ShardDescriptor* cur = FindMutable(d.group);
  if (cur == nullptr || d.epoch <= cur->epoch || d.voters.empty()) return false;
  if (d.group != kMetaGroup && (d.first_slot != cur->first_slot || d.last_slot != cur->last_slot)) {
    return false;
  }
  *cur = d;
  return true;
}

NodeId ShardMap::leader(GroupId group) const {
  auto it = leaders_.find(group);
  return it == leaders_.end() ? kNoNode : it->second.node;
}

uint64_t ShardMap::leader_term(GroupId group) const {
  auto it = leaders_.find(group);
  return it == leaders_.end() ? 0 : it->second.term;
}

void ShardMap::NoteLeader(GroupId group, NodeId node, uint64_t term) {
  Hint& h = leaders_[group];
  if (term < h.term) return;
  if (term == h.term && node == kNoNode) return;  // a term's leader is not undone in that term
  h.node = node;
  h.term = term;
}

RouteDecision DecideRoute(const RouteInput& in) {
  SYNOD_ASSERT(in.shard != nullptr);
  if (in.hosted && (in.stale_ok || in.local_leader)) return {RouteAction::kLocal, kNoNode};
  if (in.leader != kNoNode && in.leader != in.self) return {RouteAction::kForward, in.leader};
  if (in.hosted && in.waited < in.wait_max) return {RouteAction::kWait, kNoNode};
  // No leader known (and no longer waiting for one here): ask the other voters in turn; the one
  // asked serves it or names the leader.
  const std::vector<NodeId>& v = in.shard->voters;
  const auto turn = static_cast<size_t>(in.attempt) + static_cast<size_t>(in.waited);
  for (size_t i = 0; i < v.size(); ++i) {
    const NodeId to = v[(turn + i) % v.size()];
    if (to != in.self) return {RouteAction::kForward, to};
  }
  return {RouteAction::kWait, kNoNode};
}

}  // namespace synod::cluster
