#include "cluster/logic/merge.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "cluster/logic/layout.h"
#include "cluster/logic/split.h"

namespace synod::cluster {

namespace {

std::string Id(GroupId g) { return std::to_string(g.value()); }

ShardRequest FrozenStateRead(GroupId group, uint64_t token) {
  ShardRequest req;
  req.type = ShardRequest::Type::kFrozenState;
  req.group = group;
  req.args = {std::to_string(token)};
  return req;
}

// One merge under way: what every step needs.
struct Merge {
  RequestRouter* router = nullptr;
  std::function<uint64_t()> new_session;
  std::function<void(Result<MergeResult>)> done;
  ShardDescriptor into;  // L, as the map had it
  ShardDescriptor from;  // R
  MergeResult result;
  uint64_t token = 0;
  uint64_t id_floor = 0;  // the highest group id the map knows
};
using MergePtr = std::shared_ptr<Merge>;

// After a failure past the freeze: L refuses the token for ever (or says it merged it), then R
// serves again (ResolveFrozen's two steps).
void GiveUp(const MergePtr& m, Status why) {
  ResolveFrozen(*m->router, m->from.group, m->into.group, m->token, m->new_session,
                [m, why = std::move(why)](Result<bool> merged) {
                  if (!merged.ok()) {
                    return m->done(Status(why.code(), std::string(why.message()) + "; shard " +
                                                          Id(m->from.group) +
                                                          " stays frozen until its leader "
                                                          "resolves the merge (" +
                                                          merged.status().ToString() + ")"));
                  }
                  if (*merged) return m->done(m->result);  // it had merged after all
                  m->done(why);
                });
}

void ProposeMerge(const MergePtr& m, std::string state) {
  ShardRequest req = FreshRedisWrite(
      m->into.group, m->new_session(),
      {std::string(kv::kMergeCommand), std::to_string(m->into.first_slot),
       std::to_string(m->into.last_slot), Id(m->from.group), std::to_string(m->token),
       std::to_string(m->result.epoch), std::move(state)});
  m->router->Call(std::move(req), [m](ShardResponse r) {
    const Status s = WriteOutcome(r);
    if (!s.ok()) return GiveUp(m, s);
    m->done(m->result);
  });
}

void ReadFrozenState(const MergePtr& m) {
  m->router->Call(FrozenStateRead(m->from.group, m->token), [m](ShardResponse r) {
    Status s = WriteOutcome(r);
    if (s.ok() && (r.reply.type != kv::ReplyType::kBulk || !r.reply.value)) {
      s = Status::Corruption("the frozen shard's state read answered no state");
    }
    if (!s.ok()) return GiveUp(m, s);
    ProposeMerge(m, std::move(*r.reply.value));
  });
}

void Freeze(const MergePtr& m) {
  m->token = m->new_session();
  m->router->Call(FreshRedisWrite(m->from.group, m->new_session(),
                                  {std::string(kv::kFreezeCommand), Id(m->into.group),
                                   std::to_string(m->token)}),
                  [m](ShardResponse r) {
                    const Status s = WriteOutcome(r);
                    // Unknown (a timeout): it may be frozen; its leader resolves it later.
                    if (!s.ok()) return m->done(s);
                    ReadFrozenState(m);
                  });
}

}  // namespace

Result<const ShardDescriptor*> MergeTarget(const ShardMap& map, GroupId group,
                                           std::optional<GroupId> into) {
  if (group == kMetaGroup) return Status::InvalidArgument("the meta shard does not merge");
  const ShardDescriptor* d = map.Find(group);
  if (d == nullptr) return Status::NotFound("no shard " + Id(group));
  const ShardDescriptor* before = d->first_slot > 0 ? &map.ForSlot(d->first_slot - 1) : nullptr;
  const ShardDescriptor* after =
      uint32_t{d->last_slot} + 1 < kSlotCount ? &map.ForSlot(d->last_slot + 1) : nullptr;
  if (into) {
    if (*into == group) return Status::InvalidArgument("a shard does not merge into itself");
    if (before != nullptr && before->group == *into) return before;
    if (after != nullptr && after->group == *into) return after;
    return Status::InvalidArgument(
        "shard " + Id(*into) + " does not hold the slots next to shard " + Id(group) + "'s (" +
        std::to_string(d->first_slot) + "-" + std::to_string(d->last_slot) + ")");
  }
  if (before != nullptr) return before;
  if (after != nullptr) return after;
  return Status::InvalidArgument("shard " + Id(group) + " is the only data shard");
}

void RunMerge(RequestRouter& router, const ShardMap& map, GroupId group,
              std::optional<GroupId> into, const std::function<uint64_t()>& new_session,
              std::function<void(Result<MergeResult>)> done) {
  Result<const ShardDescriptor*> target = MergeTarget(map, group, into);
  if (!target.ok()) return done(target.status());
  auto m = std::make_shared<Merge>();
  m->router = &router;
  m->new_session = new_session;
  m->done = std::move(done);
  m->into = **target;
  m->from = *map.Find(group);
  m->result.into = m->into.group;
  m->result.from = group;
  m->result.absorbed = SlotRange{m->from.first_slot, m->from.last_slot};
  m->result.slots = SlotRange{std::min(m->into.first_slot, m->from.first_slot),
                              std::max(m->into.last_slot, m->from.last_slot)};
  m->result.epoch = std::max(m->into.epoch, m->from.epoch) + 1;
  m->id_floor = kMetaGroup.value();
  for (const ShardDescriptor& d : map.layout().shards) {
    m->id_floor = std::max(m->id_floor, d.group.value());
  }
  // Not while a replica of either is being added (a move): its snapshot may be streaming into
  // the node's store over the slots the merge rewrites.
  for (const ShardDescriptor* d : {&m->into, &m->from}) {
    if (!d->learners.empty()) {
      return m->done(
          Status::FailedPrecondition("shard " + Id(d->group) +
                                     " has a replica being added (a move under way): merge once "
                                     "it is done"));
    }
  }
  // Its size first: nothing is frozen for a merge that could not go through.
  router.Call(FrozenStateRead(group, 0), [m](ShardResponse r) {
    Status s = WriteOutcome(r);
    if (s.ok() && r.reply.type != kv::ReplyType::kInteger) {
      s = Status::Corruption("the shard's size read answered no integer");
    }
    if (!s.ok()) return m->done(s);
    if (static_cast<uint64_t>(r.reply.number) > kMergeBytesMax) {
      return m->done(Status::FailedPrecondition(
          "shard " + Id(m->from.group) + " holds " + std::to_string(r.reply.number >> 20) +
          " MiB: a merged-away shard's keys travel through the other shard's log, at most " +
          std::to_string(kMergeBytesMax >> 20) + " MiB"));
    }
    // R's id is never given to a later split's shard: the meta shard's group id counter is
    // taken past every id the map knows before R can leave any map (a shard the cluster
    // started with was never counted, and a merged shard's tombstone is out of the map).
    ShardRequest alloc = FreshRedisWrite(kMetaGroup, m->new_session());
    alloc.command.args = {std::string(kv::kAllocateIdCommand), std::string(kGroupSeqSetting),
                          std::to_string(m->id_floor)};
    m->router->Call(alloc, [m](ShardResponse r2) {
      const Status s2 = WriteOutcome(r2);
      if (!s2.ok()) return m->done(s2);
      Freeze(m);
    });
  });
}

void ResolveFrozen(RequestRouter& router, GroupId group, GroupId into, uint64_t token,
                   const std::function<uint64_t()>& new_session,
                   std::function<void(Result<bool>)> done) {
  router.Call(FreshRedisWrite(into, new_session(),
                              {std::string(kv::kCancelMergeCommand), std::to_string(token)}),
              [&router, group, token, new_session, done = std::move(done)](ShardResponse r) {
                Status s = WriteOutcome(r);
                if (s.ok() && r.reply.type != kv::ReplyType::kInteger) {
                  s = Status::Corruption("the merge's cancel answered no integer");
                }
                if (!s.ok()) return done(s);
                if (r.reply.number == 1) return done(true);
                router.Call(
                    FreshRedisWrite(group, new_session(),
                                    {std::string(kv::kUnfreezeCommand), std::to_string(token)}),
                    [done](ShardResponse r2) {
                      const Status s2 = WriteOutcome(r2);
                      if (!s2.ok()) return done(s2);
                      done(false);
                    });
              });
}

ShardDescriptor MergedTombstone(GroupId from, SlotRange slots, GroupId into, uint64_t epoch) {
  ShardDescriptor t;
  t.group = from;
  t.first_slot = slots.first;
  t.last_slot = slots.last;
  t.epoch = epoch;
  t.merged_into = into;
  return t;
}

std::vector<kv::Absorbed> TombstonesOwed(const std::vector<kv::Absorbed>& absorbed,
                                         const std::map<GroupId, ShardDescriptor>& merged) {
  std::vector<kv::Absorbed> owed;
  for (const kv::Absorbed& a : absorbed) {
    if (!merged.contains(GroupId(a.group))) owed.push_back(a);
  }
  return owed;
}

uint64_t TombstoneEpoch(uint64_t due, GroupId from, const HeldDescriptors& held,
                        const ShardMap& map) {
  uint64_t e = due;
  if (auto h = held.find(from); h != held.end()) e = std::max(e, h->second.epoch + 1);
  if (const ShardDescriptor* d = map.Find(from)) e = std::max(e, d->epoch + 1);
  return e;
}

}  // namespace synod::cluster
