#include "cluster/logic/shard_map.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "common/assert.h"

namespace synod::cluster {

ShardMap::ShardMap(Layout layout) : layout_(std::move(layout)) {
  SYNOD_ASSERT(ValidateLayout(layout_).ok());
  for (const ShardDescriptor& d : layout_.shards) {
    data_[d.group] = d;
    for (uint32_t s = d.first_slot; s <= d.last_slot; ++s) by_slot_[s] = d.group;
  }
}

const ShardDescriptor* ShardMap::Find(GroupId group) const {
  if (group == layout_.meta.group) return &layout_.meta;
  auto it = data_.find(group);
  return it == data_.end() ? nullptr : &it->second;
}

bool ShardMap::Update(const ShardDescriptor& d, bool take_ties) {
  if (d.voters.empty()) return false;
  auto older = [&](const ShardDescriptor& cur) {
    if (d.epoch != cur.epoch) return d.epoch < cur.epoch;
    return !take_ties || EncodeDescriptor(d) == EncodeDescriptor(cur);
  };
  if (d.group == layout_.meta.group) {
    if (older(layout_.meta)) return false;
    layout_.meta = d;
    return true;
  }
  if (d.first_slot > d.last_slot || d.last_slot >= kSlotCount) return false;
  auto it = data_.find(d.group);
  if (it != data_.end() && older(it->second)) return false;
  data_[d.group] = d;
  Rebuild();
  return true;
}

bool ShardMap::ForgetMerged(const ShardDescriptor& tombstone) {
  // Whatever its epoch: a tombstone is written only once the merge applied, and group ids are
  // never reused.
  auto it = data_.find(tombstone.group);
  if (it == data_.end()) return false;
  const ShardDescriptor& mine = it->second;
  // Its slots, and those it kept owning for want of any descriptor over them.
  for (uint32_t s = 0; s < kSlotCount; ++s) {
    if (!mine.Covers(static_cast<uint16_t>(s)) && by_slot_[s] != mine.group) continue;
    bool covered = false;
    for (const auto& [g, d] : data_) {
      covered = covered || (g != mine.group && d.Covers(static_cast<uint16_t>(s)));
    }
    if (!covered) return false;
  }
  data_.erase(it);
  Rebuild();
  return true;
}

namespace {

// Which of two descriptors covering a slot owns it: the higher epoch, then the narrower range
// (a split's new shard against its parent's descriptor of the same epoch), then the higher id.
bool Outranks(const ShardDescriptor& a, const ShardDescriptor& b) {
  if (a.epoch != b.epoch) return a.epoch > b.epoch;
  const uint32_t wa = uint32_t{a.last_slot} - a.first_slot;
  const uint32_t wb = uint32_t{b.last_slot} - b.first_slot;
  if (wa != wb) return wa < wb;
  return a.group > b.group;
}

}  // namespace

void ShardMap::Rebuild() {
  // Paint every descriptor's slots from the lowest rank up: each slot ends with its owner.
  // Slots no descriptor covers keep the shard that owned them.
  std::vector<const ShardDescriptor*> order;
  order.reserve(data_.size());
  for (const auto& [g, d] : data_) order.push_back(&d);
  std::sort(order.begin(), order.end(),
            [](const ShardDescriptor* a, const ShardDescriptor* b) { return Outranks(*b, *a); });
  for (const ShardDescriptor* d : order) {
    for (uint32_t s = d->first_slot; s <= d->last_slot; ++s) by_slot_[s] = d->group;
  }
  // The shards that own a slot, in the order of their first one; the rest are forgotten.
  std::vector<GroupId> owners;
  std::set<GroupId> seen;
  for (uint32_t s = 0; s < kSlotCount; ++s) {
    if (seen.insert(by_slot_[s]).second) owners.push_back(by_slot_[s]);
  }
  std::erase_if(data_, [&](const auto& entry) { return !seen.contains(entry.first); });
  layout_.shards.clear();
  for (GroupId g : owners) layout_.shards.push_back(data_.at(g));
  clean_ = ValidateLayout(layout_).ok();
  // Clean also means each descriptor covers exactly what it owns.
  for (uint32_t s = 0; clean_ && s < kSlotCount; ++s) {
    clean_ = data_.at(by_slot_[s]).Covers(static_cast<uint16_t>(s));
  }
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
  // A hint naming a node that is no member of the shard (one a move took it away from, whose
  // last word was that it led) is stale: following it could loop until the deadline.
  const bool member = std::find(in.shard->voters.begin(), in.shard->voters.end(), in.leader) !=
                          in.shard->voters.end() ||
                      std::find(in.shard->learners.begin(), in.shard->learners.end(), in.leader) !=
                          in.shard->learners.end();
  if (in.leader != kNoNode && in.leader != in.self && member) {
    return {RouteAction::kForward, in.leader};
  }
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
