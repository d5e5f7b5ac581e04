#include "cluster/logic/split.h"

#include <string>
#include <utility>

#include "cluster/logic/layout.h"
#include "kv/state_machine.h"

namespace synod::cluster {

Result<uint16_t> SplitSlot(const ShardDescriptor& d, std::optional<uint16_t> at) {
  if (d.group == kMetaGroup) return Status::InvalidArgument("the meta shard does not split");
  if (d.first_slot == d.last_slot) {
    return Status::InvalidArgument("shard " + std::to_string(d.group.value()) +
                                   " holds a single slot (" + std::to_string(d.first_slot) +
                                   "): it cannot split further");
  }
  const uint16_t slot =
      at.value_or(static_cast<uint16_t>((uint32_t{d.first_slot} + d.last_slot + 1) / 2));
  if (slot <= d.first_slot || slot > d.last_slot) {
    return Status::InvalidArgument(
        "slot " + std::to_string(slot) + " does not split shard " +
        std::to_string(d.group.value()) + " (slots " + std::to_string(d.first_slot) + "-" +
        std::to_string(d.last_slot) + "): give one after its first slot, up to its last");
  }
  return slot;
}

SizeSplit DecideSizeSplit(const kv::StateMachine& sm, uint64_t max_bytes) {
  const kv::Keyspace& ks = sm.keyspace();
  if (max_bytes == 0 || !sm.range() || ks.bytes() <= max_bytes) return {};
  // The bytes of each slot (the keys are in slot order), then the boundary that halves them.
  std::map<uint16_t, uint64_t> bytes;
  for (const auto& [key, value] : ks.map()) {
    bytes[static_cast<uint16_t>(key.pos >> 50)] += key.bytes.size() + value.bytes.size();
  }
  return HalvingSlot(bytes, *sm.range());
}

SizeSplit HalvingSlot(const std::map<uint16_t, uint64_t>& weight, SlotRange range) {
  uint64_t total = 0;
  for (const auto& [slot, w] : weight) {
    if (slot >= range.first && slot <= range.last) total += w;
  }
  if (total == 0) return {};
  // The weight before each slot boundary: find the slot where the running sum crosses half.
  uint64_t before = 0;   // of the slots before `slot`
  uint64_t through = 0;  // ... through `slot`
  uint32_t slot = range.first;
  for (const auto& [s, w] : weight) {
    if (s < range.first || s > range.last || w == 0) continue;
    slot = s;
    before = through;
    through += w;
    if (2 * through >= total) break;
  }
  if (through - before >= total) return {SizeSplit::Kind::kOneSlot, 0};  // all in one slot
  // Split before the slot or after it, whichever leaves the sides closer to halves.
  const auto gap = [total](uint64_t left) {
    return left > total - left ? 2 * left - total : total - 2 * left;
  };
  uint32_t at = gap(before) <= gap(through) ? slot : slot + 1;
  if (at <= range.first) at = slot + 1;
  if (at > range.last) at = slot;
  if (at <= range.first || at > range.last) return {SizeSplit::Kind::kOneSlot, 0};
  return {SizeSplit::Kind::kSplit, static_cast<uint16_t>(at)};
}

void LoadTracker::AddSecond(const std::map<GroupId, std::map<uint16_t, uint64_t>>& writes,
                            const std::set<GroupId>& led) {
  std::erase_if(seconds_, [&](const auto& g) { return !led.contains(g.first); });
  for (GroupId g : led) {
    auto& window = seconds_[g];
    auto it = writes.find(g);
    window.push_back(it == writes.end() ? std::map<uint16_t, uint64_t>{} : it->second);
    while (window.size() > static_cast<size_t>(window_)) window.pop_front();
  }
}

double LoadTracker::Rate(GroupId group) const {
  auto it = seconds_.find(group);
  if (it == seconds_.end() || it->second.empty()) return 0;
  uint64_t total = 0;
  for (const auto& second : it->second) {
    for (const auto& [slot, n] : second) total += n;
  }
  return static_cast<double>(total) / static_cast<double>(it->second.size());
}

SizeSplit LoadTracker::Decide(GroupId group, SlotRange range, double max_per_second) const {
  auto it = seconds_.find(group);
  if (max_per_second <= 0 || it == seconds_.end() ||
      it->second.size() < static_cast<size_t>(window_) || Rate(group) <= max_per_second) {
    return {};
  }
  std::map<uint16_t, uint64_t> per_slot;
  for (const auto& second : it->second) {
    for (const auto& [slot, n] : second) per_slot[slot] += n;
  }
  return HalvingSlot(per_slot, range);
}

void RunSplit(RequestRouter& router, const ShardMap& map, GroupId group, std::optional<uint16_t> at,
              const std::function<uint64_t()>& new_session,
              std::function<void(Result<SplitResult>)> done, bool automatic) {
  const ShardDescriptor* d = map.Find(group);
  if (d == nullptr) {
    return done(Status::NotFound("no shard " + std::to_string(group.value())));
  }
  Result<uint16_t> slot = SplitSlot(*d, at);
  if (!slot.ok()) return done(slot.status());
  uint64_t floor = kMetaGroup.value();
  for (const ShardDescriptor& s : map.layout().shards) floor = std::max(floor, s.group.value());

  ShardRequest alloc = FreshRedisWrite(kMetaGroup, new_session());
  alloc.command.args = {std::string(kv::kAllocateIdCommand), std::string(kGroupSeqSetting),
                        std::to_string(floor)};
  // What the split proposal needs, as the map said when it began.
  ShardRequest split = FreshRedisWrite(group, new_session());
  const SlotRange kept{d->first_slot, static_cast<uint16_t>(*slot - 1)};
  const SlotRange moved{*slot, d->last_slot};
  const uint64_t epoch = d->epoch + 1;
  router.Call(alloc, [&router, split = std::move(split), kept, moved, epoch, automatic,
                      done = std::move(done)](ShardResponse r) mutable {
    Status s = WriteOutcome(r);
    if (s.ok() && (r.reply.type != kv::ReplyType::kInteger || r.reply.number <= 1)) {
      s = Status::Corruption("the meta shard's group id allocation answered no id");
    }
    if (!s.ok()) return done(s);
    const GroupId child(static_cast<uint64_t>(r.reply.number));
    split.command.args = {std::string(kv::kSplitCommand), std::to_string(kept.first),
                          std::to_string(moved.last),     std::to_string(moved.first),
                          std::to_string(child.value()),  std::to_string(epoch)};
    if (automatic) split.command.args.emplace_back("auto");
    router.Call(std::move(split), [child, kept, moved, done = std::move(done)](ShardResponse r2) {
      Status s2 = WriteOutcome(r2);
      if (!s2.ok()) return done(s2);
      done(SplitResult{child, kept, moved});
    });
  });
}

}  // namespace synod::cluster
