// GroupHost's part that concerns merges (cluster/logic/merge.h; docs/sharding.md, "Merges"):
// merges by hand and of small, cold shards, what the map learns from a merge applied here, the
// tombstones of merged shards, and the shards left frozen by a merge nobody finished.
#include <algorithm>
#include <string>
#include <utility>

#include "cluster/group_host.h"
#include "cluster/logic/merge.h"

namespace synod::cluster {

void GroupHost::MergeShard(GroupId group, std::optional<GroupId> into,
                           std::function<void(Result<MergeResult>)> done) {
  if (merging_.contains(group)) {
    return done(Status::FailedPrecondition("a merge of shard " + std::to_string(group.value()) +
                                           " is under way here"));
  }
  logger_.Info("event=merge_requested group={} into={}", group.value(),
               into ? std::to_string(into->value()) : std::string("neighbour"));
  merging_.insert(group);
  RunMerge(
      *router_, *map_, group, into, [this] { return NewSessionId(); },
      [this, group, done = std::move(done), alive = alive_](Result<MergeResult> r) {
        if (*alive) {
          merging_.erase(group);
          if (r.ok()) {
            logger_.Info("event=merge_done group={} into={} slots={}-{} epoch={}", group.value(),
                         r->into.value(), r->slots.first, r->slots.last, r->epoch);
            TombstoneDue(r->from, r->absorbed, r->into, r->epoch, /*now=*/true);
          } else {
            logger_.Info("event=merge_failed group={} error=\"{}\"", group.value(),
                         r.status().ToString());
          }
        }
        done(std::move(r));
      });
  Kick();
}

void GroupHost::LearnMerges() {
  bool learnt = false;
  for (const AppliedMergeHere& merge : store_->TakeMerges()) {
    counters_.merges.fetch_add(1, std::memory_order_relaxed);
    TombstoneDue(merge.from, merge.absorbed, merge.group, merge.epoch, /*now=*/false);
    for (const ShardDescriptor& d : LearnMerge(*map_, merge)) {
      logger_.Info("event=descriptor_updated reason=merge from={} descriptor=\"{}\"",
                   merge.from.value(), EncodeDescriptor(d));
      learnt = true;
    }
  }
  if (!learnt) return;
  SaveLayout();
  descriptors_due_ = true;  // the absorbing shard's leader proposes its wider descriptor
}

void GroupHost::TombstoneDue(GroupId from, SlotRange slots, GroupId into, uint64_t epoch,
                             bool now) {
  if (meta_merged_.contains(from)) return;
  DueTombstone& t = tombstones_due_[from];
  t.slots = slots;
  t.into = into;
  t.epoch = std::max(t.epoch, epoch);
  t.mine = t.mine || now;
  if (now) WriteDueTombstones();
}

void GroupHost::OweAbsorbedTombstones() {
  if (!meta_epochs_known_) return;  // meta_merged_ not read yet
  for (GroupId g : store_->groups()) {
    const Replica* r = store_->replica(g);
    if (r->raw_node().raft().role() != raft::Role::kLeader) continue;
    for (const kv::Absorbed& a : TombstonesOwed(r->state_machine().absorbed(), meta_merged_)) {
      if (tombstones_due_.contains(GroupId(a.group))) continue;
      logger_.Info("event=tombstone_owed group={} into={} epoch={}", a.group, g.value(), a.epoch);
      TombstoneDue(GroupId(a.group), a.range, g, a.epoch, /*now=*/false);
    }
  }
}

void GroupHost::WriteDueTombstones() {
  for (auto it = tombstones_due_.begin(); it != tombstones_due_.end();) {
    const GroupId from = it->first;
    DueTombstone& due = it->second;
    if (meta_merged_.contains(from)) {
      it = tombstones_due_.erase(it);
      continue;
    }
    ++it;
    const Replica* into = store_->replica(due.into);
    const bool leads = into != nullptr && into->raw_node().raft().role() == raft::Role::kLeader;
    if (due.in_flight || !(due.mine || leads)) continue;
    const uint64_t e = TombstoneEpoch(due.epoch, from, meta_epochs_, *map_);
    const ShardDescriptor t = MergedTombstone(from, due.slots, due.into, e);
    ShardRequest req;
    req.type = ShardRequest::Type::kWrite;
    req.group = kMetaGroup;
    req.command = ProposeDescriptorCommand(t, NewSessionId());
    logger_.Info("event=tombstone_proposed descriptor=\"{}\"", EncodeDescriptor(t));
    due.in_flight = true;
    Call(std::move(req), [this, from, e, alive = alive_](ShardResponse r) {
      if (!*alive) return;
      auto found = tombstones_due_.find(from);
      if (found != tombstones_due_.end()) {
        found->second.in_flight = false;
        // Not stored (an older epoch than the meta shard's): above it next time.
        found->second.epoch = std::max(found->second.epoch, e + 1);
      }
      if (!r.status.ok() || r.reply.is_error()) {
        logger_.Info("event=tombstone_not_written group={} error=\"{}\"", from.value(),
                     r.status.ok() ? std::string(r.reply.message()) : r.status.ToString());
      }
      meta_read_due_ = true;  // learn it back at the next tick
    });
  }
}

void GroupHost::ResolveFrozenShards() {
  for (GroupId g : store_->groups()) {
    const Replica* r = store_->replica(g);
    const kv::StateMachine& sm = r->state_machine();
    if (r->raw_node().raft().role() != raft::Role::kLeader || !sm.frozen() || !sm.range()) {
      frozen_since_tick_.erase(g);
      continue;
    }
    const uint64_t since = frozen_since_tick_.try_emplace(g, ticks_).first->second;
    const uint64_t wait_ticks = static_cast<uint64_t>(kFrozenResolveMs) * kNoticeTicks / 1000;
    if (merging_.contains(g) || resolving_.contains(g) || ticks_ < since + wait_ticks) continue;
    const kv::internal::Frozen frozen = *sm.frozen();
    const SlotRange slots = *sm.range();
    resolving_.insert(g);
    logger_.Info("event=merge_resolving group={} into={} frozen_at={}", g.value(), frozen.into,
                 frozen.index.value());
    // The shard it was to merge into may itself have been merged since: ask the one that took
    // its slots (and its tokens), following the tombstones.
    GroupId ask(frozen.into);
    for (int hops = 0; hops < 16 && meta_merged_.contains(ask); ++hops) {
      ask = meta_merged_.at(ask).merged_into;
    }
    ResolveFrozen(
        *router_, g, ask, frozen.token, [this] { return NewSessionId(); },
        [this, g, slots, into = ask, alive = alive_](Result<bool> merged) {
          if (!*alive) return;
          resolving_.erase(g);
          frozen_since_tick_[g] = ticks_;  // again only after another wait
          if (!merged.ok()) {
            logger_.Info("event=merge_unresolved group={} error=\"{}\"", g.value(),
                         merged.status().ToString());
          } else if (*merged) {
            logger_.Info("event=merge_resolved group={} outcome=merged", g.value());
            TombstoneDue(g, slots, into, 0, /*now=*/true);
          } else {
            logger_.Info("event=merge_resolved group={} outcome=given_up", g.value());
          }
        });
  }
}

void GroupHost::MaybeMergeSmallShards() {
  if (opts_.shard_max_bytes == 0 || !is_leader() || ticks_ < auto_merge_after_tick_ ||
      !merging_.empty()) {
    return;
  }
  const uint64_t bytes_max = opts_.shard_max_bytes / 4;
  const double writes_max =
      opts_.shard_max_writes_per_second > 0 ? opts_.shard_max_writes_per_second / 4 : 1000;
  const std::vector<ShardDescriptor>& shards = map_->layout().shards;  // in slot order
  for (size_t i = 1; i < shards.size(); ++i) {
    const ShardDescriptor& left = shards[i - 1];
    const ShardDescriptor& right = shards[i];
    const ShardBytes* l = FreshLoad(left.group);
    const ShardBytes* r = FreshLoad(right.group);
    if (l == nullptr || r == nullptr || !r->mergeable || l->bytes + r->bytes > bytes_max ||
        static_cast<double>(l->writes_per_second) >= writes_max ||
        static_cast<double>(r->writes_per_second) >= writes_max || moves_.contains(left.group) ||
        moves_.contains(right.group) || !right.learners.empty() || !left.learners.empty()) {
      continue;
    }
    logger_.Info(
        "event=merge_small group={} into={} bytes={} writes_per_second={}/{} bound_bytes={}",
        right.group.value(), left.group.value(), l->bytes + r->bytes, l->writes_per_second,
        r->writes_per_second, bytes_max);
    auto_merge_after_tick_ = ticks_ + 60 * kNoticeTicks;  // until it ends
    MergeShard(right.group, left.group, [this, alive = alive_](Result<MergeResult> m) {
      if (!*alive) return;
      // The next one after the loads of the merged shard came in; a failure waits longer.
      auto_merge_after_tick_ = ticks_ + (m.ok() ? 3 : 30) * kNoticeTicks;
    });
    return;
  }
}

}  // namespace synod::cluster
