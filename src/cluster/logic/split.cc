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
  const SlotRange range = *sm.range();
  const uint64_t total = ks.bytes();
  // The bytes before each slot boundary: find the slot where the running sum crosses half.
  uint64_t before = 0;   // bytes of the slots before `slot`
  uint64_t through = 0;  // ... through `slot`
  uint32_t slot = range.first;
  for (auto it = ks.map().begin(); it != ks.map().end();) {
    slot = static_cast<uint32_t>(it->first.pos >> 50);
    before = through;
    // Every key of this slot.
    for (; it != ks.map().end() && (it->first.pos >> 50) == slot; ++it) {
      through += it->first.bytes.size() + it->second.bytes.size();
    }
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

namespace {

// A write's outcome as a status: its Redis error reply, if it has one, is the error.
Status Outcome(const ShardResponse& r) {
  if (!r.status.ok()) return r.status;
  if (r.reply.is_error()) return Status::FailedPrecondition(r.reply.value.value_or("error"));
  if (!r.reply.ok()) return Status::FailedPrecondition(std::string(r.reply.message()));
  return Status::Ok();
}

// A Redis-shaped write to `group` as the first command of a fresh session (args to fill in).
ShardRequest FreshWrite(GroupId group, uint64_t session) {
  ShardRequest req;
  req.type = ShardRequest::Type::kWrite;
  req.group = group;
  req.command.op = kv::Op::kRedis;
  req.command.client_id = session;
  req.command.seq = 1;
  return req;
}

}  // namespace

void RunSplit(RequestRouter& router, const ShardMap& map, GroupId group, std::optional<uint16_t> at,
              const std::function<uint64_t()>& new_session,
              std::function<void(Result<SplitResult>)> done) {
  const ShardDescriptor* d = map.Find(group);
  if (d == nullptr) {
    return done(Status::NotFound("no shard " + std::to_string(group.value())));
  }
  Result<uint16_t> slot = SplitSlot(*d, at);
  if (!slot.ok()) return done(slot.status());
  uint64_t floor = kMetaGroup.value();
  for (const ShardDescriptor& s : map.layout().shards) floor = std::max(floor, s.group.value());

  ShardRequest alloc = FreshWrite(kMetaGroup, new_session());
  alloc.command.args = {std::string(kv::kAllocateIdCommand), std::string(kGroupSeqSetting),
                        std::to_string(floor)};
  // What the split proposal needs, as the map said when it began.
  ShardRequest split = FreshWrite(group, new_session());
  const SlotRange kept{d->first_slot, static_cast<uint16_t>(*slot - 1)};
  const SlotRange moved{*slot, d->last_slot};
  const uint64_t epoch = d->epoch + 1;
  router.Call(alloc, [&router, split = std::move(split), kept, moved, epoch,
                      done = std::move(done)](ShardResponse r) mutable {
    Status s = Outcome(r);
    if (s.ok() && (r.reply.type != kv::ReplyType::kInteger || r.reply.number <= 1)) {
      s = Status::Corruption("the meta shard's group id allocation answered no id");
    }
    if (!s.ok()) return done(s);
    const GroupId child(static_cast<uint64_t>(r.reply.number));
    split.command.args = {std::string(kv::kSplitCommand), std::to_string(kept.first),
                          std::to_string(moved.last),     std::to_string(moved.first),
                          std::to_string(child.value()),  std::to_string(epoch)};
    router.Call(std::move(split), [child, kept, moved, done = std::move(done)](ShardResponse r2) {
      Status s2 = Outcome(r2);
      if (!s2.ok()) return done(s2);
      done(SplitResult{child, kept, moved});
    });
  });
}

}  // namespace synod::cluster
