#include "cluster/logic/descriptors.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "kv/state_machine.h"
#include "raft/raft.h"

namespace synod::cluster {

std::string DescriptorSetting(GroupId group) { return "shard/" + std::to_string(group.value()); }

std::map<std::string, std::string> SettingsWithPrefix(const kv::StateMachine& meta,
                                                      std::string_view prefix) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : meta.config_from(prefix)) {
    if (!std::string_view(name).starts_with(prefix)) break;
    out.emplace(name, value);
  }
  return out;
}

std::map<std::string, std::string> SettingsOf(const std::vector<std::string>& names,
                                              const kv::Reply& reply) {
  std::map<std::string, std::string> out;
  if (reply.replies.size() != names.size()) return out;
  for (size_t i = 0; i < names.size(); ++i) {
    const kv::Reply& r = reply.replies[i];
    if (names[i].ends_with('*')) {
      for (size_t j = 0; j + 1 < r.replies.size(); j += 2) {
        if (r.replies[j].value && r.replies[j + 1].value) {
          out[*r.replies[j].value] = *r.replies[j + 1].value;
        }
      }
    } else if (r.value) {
      out[names[i]] = *r.value;
    }
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

LearnResult LearnDescriptors(ShardMap& map, const std::map<std::string, std::string>& settings,
                             HeldDescriptors* held) {
  LearnResult out;
  held->clear();
  const std::string prefix = DescriptorSetting(GroupId(0)).substr(0, 6);  // "shard/"
  for (auto it = settings.lower_bound(prefix);
       it != settings.end() && it->first.starts_with(prefix); ++it) {
    const auto& [name, v] = *it;
    uint64_t id = 0;
    const std::string_view digits = std::string_view(name).substr(prefix.size());
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    const auto versioned = kv::ParseVersioned(v);
    Result<ShardDescriptor> d = versioned
                                    ? DecodeDescriptor(versioned->second)
                                    : Result<ShardDescriptor>(Status::InvalidArgument("no epoch"));
    if (ec != std::errc() || p != digits.data() + digits.size() || !d.ok() ||
        d->group != GroupId(id) || d->epoch != versioned->first) {
      out.bad.push_back(name + "=" + v);
      continue;
    }
    if (d->merged_into != kNoGroup) {
      out.merged[d->group] = *d;  // a tombstone: no shard to route to or place
      continue;
    }
    (*held)[d->group] = *d;
    if (map.Update(*d, /*take_ties=*/true)) out.updated.push_back(*d);
  }
  // A merged shard whose live descriptor outranked the absorbing shard's (it changed while the
  // merge ran) goes once the others cover its slots.
  for (const auto& [g, tombstone] : out.merged) map.ForgetMerged(tombstone);
  out.all_held = held->contains(map.layout().meta.group);
  for (const ShardDescriptor& d : map.layout().shards) {
    out.all_held = out.all_held && held->contains(d.group);
  }
  return out;
}

namespace {

// Whether `d` names these members and (for a data shard) these slots.
bool Describes(const ShardDescriptor& d, const std::vector<NodeId>& voters,
               const std::vector<NodeId>& learners, const std::optional<SlotRange>& slots) {
  if (!SameMembers(d, voters, learners)) return false;
  return d.group == kMetaGroup || !slots ||
         (d.first_slot == slots->first && d.last_slot == slots->last);
}

}  // namespace

std::vector<ShardDescriptor> DescriptorsToPropose(
    const Store& store, const ShardMap& map, const HeldDescriptors& held,
    const std::set<GroupId>& in_flight, bool* retry,
    const std::map<GroupId, ShardDescriptor>* merged) {
  std::vector<ShardDescriptor> out;
  if (retry != nullptr) *retry = false;
  for (GroupId g : store.groups()) {
    const Replica* r = store.replica(g);
    const raft::Raft& raft = r->raw_node().raft();
    // Not before the leader applied what it committed: a new leader with a split committed and
    // not applied would describe the parent's slots before the split.
    if (raft.role() != raft::Role::kLeader) continue;
    // Frozen for a merge: its descriptor stays until the merge's tombstone replaces it; and a
    // tombstone stays (regression: simulator seed 8039, a replica that lagged behind the freeze
    // led its shard after the merge and replaced the tombstone with its descriptor).
    if (r->state_machine().frozen() || (merged != nullptr && merged->contains(g))) continue;
    if (raft.config().IsJoint() || raft.HasUnappliedConfChanges() || in_flight.contains(g) ||
        r->state_machine().applied_index() < raft.log().committed()) {
      if (retry != nullptr) *retry = true;
      continue;
    }
    const std::set<NodeId> voter_set = raft.config().voters.Ids();
    const std::vector<NodeId> voters(voter_set.begin(), voter_set.end());
    const std::vector<NodeId> learners(raft.config().learners.begin(),
                                       raft.config().learners.end());
    // (A plain copy: GCC 12 sees an optional built by a conditional as maybe uninitialized.)
    std::optional<SlotRange> slots;
    if (g != kMetaGroup && r->state_machine().range()) {
      const SlotRange owned = *r->state_machine().range();
      slots.emplace(owned);
    }
    auto m_it = held.find(g);
    const ShardDescriptor* m = m_it == held.end() ? nullptr : &m_it->second;
    const ShardDescriptor* d = map.Find(g);
    if (m != nullptr && Describes(*m, voters, learners, slots)) continue;  // up to date
    // Above every other shard's descriptor over these slots (as the map and the meta shard hold
    // them): a shard merged in may have changed while its merge ran.
    uint64_t overlapped = 0;
    if (slots) {
      for (const ShardDescriptor& other : map.layout().shards) {
        if (other.group != g && SlotRange{other.first_slot, other.last_slot}.Overlaps(*slots)) {
          overlapped = std::max(overlapped, other.epoch);
        }
      }
      for (const auto& [og, other] : held) {
        if (og != g && og != kMetaGroup &&
            SlotRange{other.first_slot, other.last_slot}.Overlaps(*slots)) {
          overlapped = std::max(overlapped, other.epoch);
        }
      }
    }
    if (d != nullptr && Describes(*d, voters, learners, slots) &&
        (m == nullptr || d->epoch > m->epoch) && d->epoch > overlapped) {
      out.push_back(*d);
      continue;
    }
    if (d == nullptr && m == nullptr && (g == kMetaGroup || !slots)) continue;
    // The members and slots as they are, at the next epoch; the preferred leader stays first.
    const ShardDescriptor& base = m != nullptr ? *m : d != nullptr ? *d : ShardDescriptor{};
    ShardDescriptor next = WithMembers(base, voters, learners);
    next.group = g;
    if (slots) {
      next.first_slot = slots->first;
      next.last_slot = slots->last;
    }
    next.epoch =
        std::max({m != nullptr ? m->epoch : 0, d != nullptr ? d->epoch : 0, overlapped}) + 1;
    if (d == nullptr && slots) {
      // A shard this node leads that neither the map nor the meta shard knows (a split's new
      // shard, when the node that learnt it at the split restarted first): above every
      // descriptor its slots overlap, so that it outranks its parent's older one.
      const SlotRange mine{next.first_slot, next.last_slot};
      for (const ShardDescriptor& other : map.layout().shards) {
        if (SlotRange{other.first_slot, other.last_slot}.Overlaps(mine)) {
          next.epoch = std::max(next.epoch, other.epoch + 1);
        }
      }
    }
    out.push_back(std::move(next));
  }
  return out;
}

std::vector<ShardDescriptor> LearnSplit(ShardMap& map, const StartedSplit& split) {
  std::vector<ShardDescriptor> out;
  const ShardDescriptor* parent = map.Find(split.parent);
  if (parent == nullptr) return out;
  // The members as the split's entry found them (the same on every replica), in the parent's
  // order where it agrees (its preferred leader first).
  ShardDescriptor left = WithMembers(*parent, split.voters, split.learners);
  left.first_slot = split.kept.first;
  left.last_slot = split.kept.last;
  left.epoch = split.epoch;
  ShardDescriptor right = left;
  right.group = split.child;
  right.first_slot = split.moved.first;
  right.last_slot = split.moved.last;
  right.epoch = split.epoch;
  // The new shard first: until it is known, its slots stay with the parent.
  if (map.Update(right)) out.push_back(right);
  if (map.Update(left)) out.push_back(left);
  return out;
}

std::vector<ShardDescriptor> LearnMerge(ShardMap& map, const AppliedMergeHere& merge) {
  std::vector<ShardDescriptor> out;
  const ShardDescriptor* mine = map.Find(merge.group);
  if (mine == nullptr) return out;
  // A replica that lags applies a merge the map already knows of, or knows what came after (a
  // later split of the wider shard, learnt from the meta shard): an epoch made here above the
  // map's would outrank the real, later descriptors (regression: simulator seed 7231, a map
  // stuck on a merged range the shard had split since).
  if (mine->epoch >= merge.epoch) return out;
  ShardDescriptor d = WithMembers(*mine, merge.voters, merge.learners);
  d.first_slot = merge.slots.first;
  d.last_slot = merge.slots.last;
  // Above both shards' descriptors as this map has them (the merge's epoch is above them as
  // the merging node saw them).
  uint64_t epoch = std::max(merge.epoch, mine->epoch + 1);
  if (const ShardDescriptor* from = map.Find(merge.from)) epoch = std::max(epoch, from->epoch + 1);
  d.epoch = epoch;
  if (map.Update(d)) out.push_back(d);
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
