#include "cluster/logic/store.h"

#include <algorithm>
#include <utility>

#include "common/assert.h"
#include "env/random.h"
#include "kv/state_machine.h"

namespace synod::cluster {

namespace {

Status NotHeldStatus(GroupId group) {
  return Status::NotFound("this node holds no replica of group " + std::to_string(group.value()));
}

}  // namespace

Store::Store(StoreOptions opts, storage::NodeDb* db, RaftTransport* transport,
             ReplicaObserver* observer, Logger logger)
    : opts_(std::move(opts)),
      db_(db),
      transport_(transport),
      observer_(observer),
      logger_(std::move(logger)) {
  SYNOD_ASSERT(db_ != nullptr && transport_ != nullptr);
  SYNOD_ASSERT(opts_.self != kNoNode && opts_.ready_rounds_max > 0);
}

Store::~Store() {
  // Replicas first: each unregisters its snapshot source from its storage.
  for (auto& [id, g] : groups_) g.replica.reset();
}

Status Store::AddGroup(GroupId group, storage::StateSpan span, const std::set<NodeId>& voters) {
  if (groups_.contains(group)) {
    return Status::FailedPrecondition("group " + std::to_string(group.value()) + " is open");
  }
  if (round_in_flight_) return Status::FailedPrecondition("a node write is in flight");
  if (destroys_staged_.contains(group) || destroys_writing_.contains(group)) {
    // Opened now, it would read the records of the replica destroyed here, which the deletion
    // then drops under it (a restart would find its log cut): after the next write.
    return Status::FailedPrecondition("the deletion of group " + std::to_string(group.value()) +
                                      "'s destroyed replica is not written yet");
  }
  if (!voters.empty() && !voters.contains(opts_.self)) {
    return Status::InvalidArgument("node " + std::to_string(opts_.self.value()) +
                                   " is not among the voters of group " +
                                   std::to_string(group.value()));
  }
  auto storage = storage::GroupStorage::Open(db_, group, span);
  if (!storage.ok()) return storage.status();
  Group g;
  g.storage = std::move(*storage);
  if (g.storage->recovery_stats().created && !voters.empty()) {
    raft::Snapshot s;
    s.meta.index = LogIndex(1);
    s.meta.term = Term(1);
    for (NodeId v : voters) s.meta.conf_state.voters.insert(v);
    kv::StateMachine empty(opts_.replica.kv);
    // A data shard owns its slots from the start (a split hands part of them on).
    if (span.kind == storage::StateSpan::Kind::kSlots) {
      empty.SetRange(SlotRange{span.first_slot, span.last_slot});
    }
    s.data = empty.Snapshot();
    SYNOD_RETURN_IF_ERROR(g.storage->Save(s, {}, raft::HardState{Term(1), kNoNode, LogIndex(1)}));
    // Durable at once: a member that forgot it bootstrapped would wait for a snapshot forever.
    SYNOD_RETURN_IF_ERROR(db_->Sync());
  }
  auto replica = MakeReplica(group, g.storage.get(), nullptr);
  if (!replica.ok()) return replica.status();
  g.replica = std::move(*replica);
  groups_.emplace(group, std::move(g));
  ready_.insert(group);
  DeliverKept(group);
  return Status::Ok();
}

Result<std::unique_ptr<Replica>> Store::MakeReplica(GroupId group, storage::GroupStorage* storage,
                                                    kv::internal::State* adopt) {
  ReplicaOptions ro = opts_.replica;
  ro.group = group;
  ro.raft.id = opts_.self;
  ro.sync_mode = ReplicaOptions::SyncMode::kHost;
  // Drawn from the seed and the group: distinct, well-spread election timers per group.
  ro.raft.random_seed =
      env::Random(opts_.random_seed ^ (group.value() * 0x9E3779B97F4A7C15ull)).Next() | 1;
  return Replica::Create(std::move(ro), transport_, storage, observer_,
                         logger_.With("group=" + std::to_string(group.value()) + " "), adopt);
}

void Store::StartSplits(GroupId parent, Group& g) {
  std::vector<AppliedSplit> splits = g.replica->TakeSplits();
  for (AppliedSplit& split : splits) {
    Status s = StartSplit(parent, split);
    if (!s.ok()) {
      // The parent's state gave the slots away already: without the new replica this node
      // cannot serve them, and must not pretend to. Its storage is failed or corrupt.
      logger_.Error("event=split_start_failed group={} child={} error=\"{}\"", parent.value(),
                    split.off.child, s.ToString());
    }
  }
}

void Store::FinishMerges(GroupId id, Group& g) {
  for (Replica::AppliedMerge& m : g.replica->TakeMerges()) {
    const GroupId from(m.in.from);
    const std::optional<SlotRange>& range = g.replica->state_machine().range();
    merged_.push_back(AppliedMergeHere{id,
                                       from,
                                       range.value_or(m.in.range),
                                       m.in.range,
                                       m.in.epoch,
                                       {m.conf.voters.begin(), m.conf.voters.end()},
                                       {m.conf.learners.begin(), m.conf.learners.end()}});
    if (from == id || !groups_.contains(from)) continue;
    if (std::find(round_.begin(), round_.end(), from) != round_.end()) {
      // Its Ready is in flight: the replica goes when the round ends, but the deletion of its
      // records rides on this round's write, with the merge's (a crash between the two writes
      // would bring it back over keys that are the merged shard's now).
      groups_.at(from).storage->StageDestroy(/*with_data=*/false);
      groups_.at(from).replica->Retire();
      merged_away_.insert(from);
      continue;
    }
    logger_.Info("event=merged_replica_destroyed group={} into={}", from.value(), id.value());
    Destroy(from, /*with_data=*/false);
  }
}

Status Store::StartSplit(GroupId parent, AppliedSplit& split) {
  const GroupId child(split.off.child);
  if (const Replica* p = replica(parent); p != nullptr && p->state_machine().range()) {
    started_.push_back(StartedSplit{parent,
                                    child,
                                    *p->state_machine().range(),
                                    split.off.range,
                                    split.off.epoch,
                                    {split.conf.voters.begin(), split.conf.voters.end()},
                                    {split.conf.learners.begin(), split.conf.learners.end()}});
  }
  raft::HardState hs{split.term, kNoNode, split.off.index};
  if (auto it = groups_.find(child); it != groups_.end()) {
    Replica& existing = *it->second.replica;
    if (existing.IsMember() || existing.state_machine().applied_index() > LogIndex(0)) {
      // It got a snapshot from the new shard's leader first: it is that shard already.
      logger_.Info("event=split_child_exists group={} child={}", parent.value(), child.value());
      return Status::Ok();
    }
    // An empty replica made for the new shard's first messages: the split replaces it, but its
    // vote stands (it may have voted in a later term; voting again there could elect two).
    const raft::HardState& old = it->second.storage->hard_state();
    if (old.term >= hs.term) {
      hs.term = old.term;
      hs.vote = old.vote;
    }
    if (it->second.quiesced) --quiesced_count_;
    it->second.replica.reset();
    it->second.storage.reset();
    groups_.erase(it);
  }
  auto storage = storage::GroupStorage::Open(
      db_, child, storage::StateSpan::Slots(split.off.range.first, split.off.range.last));
  if (!storage.ok()) return storage.status();
  Group g;
  g.storage = std::move(*storage);
  raft::Snapshot snap;
  snap.meta.index = split.off.index;
  snap.meta.term = split.term;
  snap.meta.conf_state = split.conf;
  // No image: the state is stored beside the log (the parent's keys, this replica's sessions
  // and meta, staged by Replica::Create into the same write).
  SYNOD_RETURN_IF_ERROR(g.storage->Save(snap, {}, hs));
  auto replica = MakeReplica(child, g.storage.get(), &split.off.state);
  if (!replica.ok()) return replica.status();
  g.replica = std::move(*replica);
  if (split.leader) (void)g.replica->Campaign();
  groups_.emplace(child, std::move(g));
  ready_.insert(child);
  ++splits_;
  logger_.Info("event=split_started group={} child={} index={} slots={}-{}", parent.value(),
               child.value(), split.off.index.value(), split.off.range.first, split.off.range.last);
  DeliverKept(child);
  return Status::Ok();
}

bool Store::DestroyIfRemoved(GroupId id, Group& g) {
  const Replica& r = *g.replica;
  // A data shard's replica (its keys under slots) that holds a state (applied something) and is
  // no member of the configuration it applied: removed. Not a group with keys of its own (the
  // meta shard: a node removed from the cluster keeps it, for its status), and not a failed
  // replica (its state cannot be trusted either way).
  if (g.storage->span().kind != storage::StateSpan::Kind::kSlots || r.failed() || r.persisting() ||
      r.IsMember() || r.state_machine().applied_index() == LogIndex(0)) {
    return false;
  }
  logger_.Info("event=replica_removed group={} applied={}", id.value(),
               r.state_machine().applied_index().value());
  Destroy(id, /*with_data=*/true);
  return true;
}

void Store::Destroy(GroupId id, bool with_data, bool staged) {
  auto it = groups_.find(id);
  SYNOD_ASSERT(it != groups_.end());
  Group& g = it->second;
  // Its keys go only when no other replica here owns any of their slots (a split's half, a
  // replica that came back): those are that replica's records now.
  const std::optional<SlotRange> mine = g.replica->state_machine().range();
  bool shared = false;
  for (const auto& [other, og] : groups_) {
    if (other == id || !mine) continue;
    const std::optional<SlotRange>& theirs = og.replica->state_machine().range();
    shared = shared || (theirs && theirs->Overlaps(*mine));
  }
  if (!staged) {
    g.storage->StageDestroy(with_data && mine.has_value() && !shared);
    destroys_staged_.insert(id);
  }
  if (g.quiesced) --quiesced_count_;
  // Its clients are answered (they retry where the shard is now), never left waiting.
  g.replica->AnswerAllPending();
  g.replica.reset();
  g.storage.reset();
  groups_.erase(it);
  ready_.erase(id);
  merged_away_.erase(id);
  removed_.push_back(id);
  ++destroyed_;
}

Status Store::RemoveGroup(GroupId group, bool with_data) {
  if (round_in_flight_) return Status::FailedPrecondition("a node write is in flight");
  auto it = groups_.find(group);
  if (it == groups_.end()) return NotHeldStatus(group);
  if (it->second.replica->persisting()) {
    return Status::FailedPrecondition("group " + std::to_string(group.value()) + " is writing");
  }
  Destroy(group, with_data);
  return Status::Ok();
}

void Store::MaybeNoticeRemoval(GroupId group, const Group& g, NodeId from) {
  const Replica& r = *g.replica;
  const raft::MembershipConfig& cfg = r.raw_node().raft().config();
  const LogIndex applied = r.state_machine().applied_index();
  if (from == kNoNode || from == opts_.self || cfg.IsVoter(from) || cfg.IsLearner(from) ||
      !r.IsMember() || applied == LogIndex(0) || r.failed()) {
    return;
  }
  uint64_t& last = removal_notices_[{group, from}];
  const auto every = static_cast<uint64_t>(opts_.replica.raft.election_ticks);
  if (last != 0 && last + every > ticks_) return;
  last = ticks_ == 0 ? 1 : ticks_;
  transport_->SendRemoved(from, group, applied);
}

void Store::ReceiveRemoved(NodeId from, GroupId group, LogIndex index) {
  auto it = groups_.find(group);
  if (it == groups_.end() || round_in_flight_) return;
  Group& g = it->second;
  const Replica& r = *g.replica;
  const LogIndex applied = r.state_machine().applied_index();
  if (g.storage->span().kind != storage::StateSpan::Kind::kSlots || r.failed() || r.persisting() ||
      applied == LogIndex(0) || applied >= index) {
    return;
  }
  logger_.Info("event=replica_removed group={} applied={} notice_from={} notice_index={}",
               group.value(), applied.value(), from.value(), index.value());
  Destroy(group, /*with_data=*/true);
}

bool Store::SnapshotOverlaps(GroupId group, const raft::Message& m) const {
  if (m.type != raft::MessageType::kSnap || !m.snapshot) return false;
  Result<std::optional<SlotRange>> range = std::optional<SlotRange>();
  if (m.snapshot->stream != 0) {
    auto own = groups_.find(group);
    if (own != groups_.end()) range = own->second.replica->DepositedRange(m.snapshot->stream);
  } else {
    range = kv::SnapshotRange(m.snapshot->data);
  }
  if (!range.ok() || !*range) return false;  // the replica refuses a bad one itself
  if (!SlotsHeldByOthers(group, **range)) return false;
  logger_.Info("event=snapshot_deferred group={} slots={}-{}", group.value(), (*range)->first,
               (*range)->last);
  return true;
}

bool Store::HoldsNothing(GroupId group) const {
  auto it = groups_.find(group);
  if (it == groups_.end()) return false;
  const Group& g = it->second;
  return g.replica->state_machine().applied_index() == LogIndex(0) &&
         g.storage->snapshot().IsEmpty() && g.storage->state_applied() == LogIndex(0);
}

bool Store::SlotsHeldByOthers(GroupId group, SlotRange slots) const {
  for (const auto& [id, g] : groups_) {
    if (id == group || HoldsNothing(id)) continue;
    // Not only one that applied entries: a replica of a shard the cluster started with holds
    // its slots from its first snapshot on, and the writes it has yet to apply go to them.
    const std::optional<SlotRange>& range = g.replica->state_machine().range();
    if (range && range->Overlaps(slots)) return true;
  }
  return false;
}

void Store::KeepForLater(GroupId group, raft::Message m) {
  auto it = kept_.find(group);
  if (it == kept_.end()) {
    if (kept_.size() >= kKeptGroupsMax) return;
    it = kept_.emplace(group, std::vector<Kept>{}).first;
  }
  if (it->second.size() >= kKeptPerGroupMax) it->second.erase(it->second.begin());
  it->second.push_back(Kept{ticks_, std::move(m)});
}

void Store::DeliverKept(GroupId group) {
  auto it = kept_.find(group);
  if (it == kept_.end()) return;
  std::vector<Kept> kept = std::move(it->second);
  kept_.erase(it);
  for (Kept& k : kept) (void)Receive(group, std::move(k.m));
}

Replica* Store::replica(GroupId group) {
  auto it = groups_.find(group);
  return it == groups_.end() ? nullptr : it->second.replica.get();
}

const Replica* Store::replica(GroupId group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? nullptr : it->second.replica.get();
}

const storage::GroupStorage* Store::storage(GroupId group) const {
  auto it = groups_.find(group);
  return it == groups_.end() ? nullptr : it->second.storage.get();
}

storage::GroupStorage* Store::storage(GroupId group) {
  auto it = groups_.find(group);
  return it == groups_.end() ? nullptr : it->second.storage.get();
}

void Store::StreamedSnapshotEnded(GroupId group, NodeId to, bool delivered) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  it->second.replica->StreamedSnapshotEnded(to, delivered);
  ready_.insert(group);
}

std::vector<GroupId> Store::groups() const {
  std::vector<GroupId> out;
  out.reserve(groups_.size());
  for (const auto& [id, g] : groups_) out.push_back(id);
  return out;
}

void Store::Tick() {
  ++ticks_;
  const auto kept_ticks = static_cast<uint64_t>(2 * opts_.replica.raft.election_ticks);
  for (auto it = kept_.begin(); it != kept_.end();) {
    std::erase_if(it->second, [&](const Kept& k) { return k.tick + kept_ticks < ticks_; });
    it = it->second.empty() ? kept_.erase(it) : std::next(it);
  }
  std::erase_if(removal_notices_, [&](const auto& n) { return n.second + kept_ticks < ticks_; });
  for (auto& [id, g] : groups_) {
    if (g.quiesced) continue;
    // Judged on the state the last round left (a tick makes heartbeats pending).
    if (opts_.quiesce_after_ticks > 0) {
      if (!g.replica->QuiescableLeader()) {
        g.idle_ticks = 0;
      } else if (++g.idle_ticks >= opts_.quiesce_after_ticks) {
        Quiesce(g);
        continue;
      }
    }
    g.replica->Tick();
    ready_.insert(id);
    if (opts_.quiesce_after_ticks > 0) AskForALeader(id, g);
  }
}

void Store::AskForALeader(GroupId id, Group& g) {
  // A member that hears from no leader for an election timeout (restarted while the group was
  // quiesced: the leader sends nothing, and a learner never campaigns) asks every other member
  // to wake the group; the leader's next heartbeat then brings it level.
  const raft::Raft& raft = g.replica->raw_node().raft();
  // Not a replica removed from its group (it would wake the others forever).
  if (raft.lead() != kNoNode || raft.role() == raft::Role::kLeader || !g.replica->IsMember()) {
    g.leaderless_ticks = 0;
    return;
  }
  if (++g.leaderless_ticks < opts_.replica.raft.election_ticks) return;
  g.leaderless_ticks = 0;
  for (NodeId member : raft.config().AllIds()) {
    if (member != opts_.self) transport_->SendWake(member, id);
  }
}

void Store::Quiesce(Group& g) {
  const raft::Raft& raft = g.replica->raw_node().raft();
  g.quiesced = true;
  g.idle_ticks = 0;
  ++quiesced_count_;
  ++quiesces_;
  const GroupId group = g.replica->group();
  for (NodeId id : raft.config().AllIds()) {
    if (id != opts_.self) transport_->SendQuiesce(id, group, raft.term(), raft.log().LastIndex());
  }
}

void Store::Wake(GroupId id, Group& g, bool leader_spoke, NodeId down) {
  if (!g.quiesced) return;
  g.quiesced = false;
  g.idle_ticks = 0;
  --quiesced_count_;
  ready_.insert(id);
  const raft::Raft& raft = g.replica->raw_node().raft();
  const NodeId leader = raft.lead();
  if (!leader_spoke && leader != kNoNode && leader != opts_.self && leader != down) {
    transport_->SendWake(leader, id);
  }
}

void Store::ReceiveQuiesce(NodeId from, GroupId group, Term term, LogIndex index) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    ++dropped_;
    return;
  }
  Group& g = it->second;
  if (g.quiesced) return;
  if (!g.replica->QuiescableFollower(from, term, index)) {
    // Not there yet (a message in flight, a request of ours): the leader ticks on, and its
    // next heartbeats bring us level before it tries again.
    if (term == g.replica->raw_node().raft().term()) transport_->SendWake(from, group);
    return;
  }
  g.quiesced = true;
  ++quiesced_count_;
}

void Store::ReceiveWake(NodeId from, GroupId group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    ++dropped_;
    return;
  }
  const raft::MembershipConfig& cfg = it->second.replica->raw_node().raft().config();
  if (!cfg.IsVoter(from) && !cfg.IsLearner(from)) return;  // not a member (removed)
  Wake(group, it->second, /*leader_spoke=*/true);
}

void Store::PeerDown(NodeId peer) {
  if (quiesced_count_ == 0) return;
  for (auto& [id, g] : groups_) {
    if (g.quiesced && g.replica->raw_node().raft().lead() == peer) Wake(id, g, false, peer);
  }
}

bool Store::quiesced(GroupId group) const {
  auto it = groups_.find(group);
  return it != groups_.end() && it->second.quiesced;
}

Status Store::Receive(GroupId group, raft::Message m) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    ++dropped_;
    KeepForLater(group, std::move(m));
    return Status::NotFound("this node holds no replica of group " + std::to_string(group.value()));
  }
  Group& g = it->second;
  if (SnapshotOverlaps(group, m)) {
    ++dropped_;
    return Status::Ok();  // the leader sends it again once its probe finds it missing
  }
  MaybeNoticeRemoval(group, g, m.from);
  if (g.quiesced) Wake(group, g, m.from == g.replica->raw_node().raft().lead());
  g.replica->Receive(std::move(m));
  ready_.insert(group);
  return Status::Ok();
}

namespace {

Status NotHeld(GroupId group) {
  return Status::NotFound("this node holds no replica of group " + std::to_string(group.value()));
}

}  // namespace

void Store::Submit(GroupId group, const kv::Command& cmd, ReadMode mode, ReplyFn reply) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    reply(ClientReply{NotHeld(group), {}, {}});
    return;
  }
  Wake(group, it->second, false);
  it->second.replica->Submit(cmd, mode, std::move(reply));
  ready_.insert(group);
}

void Store::SubmitRead(GroupId group, ReadFn fn, ReadMode mode, ReplyFn reply) {
  auto it = groups_.find(group);
  if (it == groups_.end()) {
    reply(ClientReply{NotHeld(group), {}, {}});
    return;
  }
  Wake(group, it->second, false);
  it->second.replica->SubmitRead(std::move(fn), mode, std::move(reply));
  ready_.insert(group);
}

size_t Store::ProposeExpiry(int64_t now_ms, size_t limit_per_group) {
  size_t proposed = 0;
  for (auto& [id, g] : groups_) {
    const size_t n = g.replica->ProposeExpiry(now_ms, limit_per_group);
    if (n > 0) {
      Wake(id, g, false);
      ready_.insert(id);
    }
    proposed += n;
  }
  return proposed;
}

void Store::ReportUnreachable(NodeId peer) {
  for (auto& [id, g] : groups_) {
    if (!g.replica->raw_node().raft().config().AllIds().contains(peer)) continue;
    if (g.quiesced && g.replica->raw_node().raft().lead() == peer) Wake(id, g, false, peer);
    g.replica->ReportUnreachable(peer);
    ready_.insert(id);
  }
}

void Store::set_wall_clock_ms(int64_t now_ms) {
  for (auto& [id, g] : groups_) g.replica->set_wall_clock_ms(now_ms);
}

void Store::Touch(GroupId group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  Wake(group, it->second, false);
  ready_.insert(group);
}

bool Store::RunReadys(GroupId id, Group& g) {
  (void)id;
  Replica& r = *g.replica;
  for (int i = 0; i < opts_.ready_rounds_max && r.HasReady() && !r.persisting(); ++i) {
    if (r.BeginReady()) return true;
    r.FinishReady();
  }
  return false;
}

bool Store::BeginRound() {
  SYNOD_ASSERT_MSG(!round_in_flight_, "BeginRound while a node write is in flight");
  SYNOD_ASSERT(round_.empty());
  std::set<GroupId> touched = std::exchange(ready_, {});
  bool state_write_wanted = false;
  for (GroupId id : touched) {
    auto it = groups_.find(id);
    if (it == groups_.end()) continue;  // removed meanwhile
    Group& g = it->second;
    const bool needs_write = RunReadys(id, g);
    state_write_wanted = state_write_wanted || g.replica->WantsStateWrite();
    // Before the node write is taken: the new shard's records ride on it with the parent's.
    StartSplits(id, g);
    FinishMerges(id, g);
    if (needs_write) {
      round_.push_back(id);
    } else if (DestroyIfRemoved(id, g)) {
      continue;  // gone: its deletion rides on the next write
    } else if (g.replica->HasReady()) {
      ready_.insert(id);  // hit the bound: the rest waits for the next round
    }
  }
  // Staged records without a Ready waiting (a state flush) ride on the next round's write,
  // unless a streamed snapshot waits for them to be durable: then they go now.
  // A destroyed replica's deletion goes now too: the group may be added back only after it.
  if (round_.empty() && !(state_write_wanted && db_->has_staged()) && destroys_staged_.empty()) {
    return false;
  }
  destroys_writing_ = std::exchange(destroys_staged_, {});
  round_in_flight_ = true;
  ++rounds_;
  return true;
}

void Store::FinishRound(const Status& written) {
  SYNOD_ASSERT_MSG(round_in_flight_, "FinishRound without a round in flight");
  round_in_flight_ = false;
  destroys_writing_.clear();
  std::vector<GroupId> done = std::exchange(round_, {});
  for (GroupId id : done) {
    auto it = groups_.find(id);
    // Destroyed by a merge another group of this round applied just now (its Ready's write is
    // done; what it would apply the merge replaced).
    if (it == groups_.end()) continue;
    if (merged_away_.erase(id) != 0) {
      logger_.Info("event=merged_replica_destroyed group={}", id.value());
      Destroy(id, /*with_data=*/false, /*staged=*/true);
      continue;
    }
    Replica& r = *it->second.replica;
    if (written.ok()) {
      r.FinishReady();
      StartSplits(id, it->second);
      FinishMerges(id, it->second);
      if (DestroyIfRemoved(id, it->second)) continue;
    } else {
      r.FailStorage(written);
    }
    ready_.insert(id);
  }
}

}  // namespace synod::cluster
