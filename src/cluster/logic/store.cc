#include "cluster/logic/store.h"

#include <utility>

#include "common/assert.h"
#include "env/random.h"
#include "kv/state_machine.h"

namespace synod::cluster {

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
    s.data = kv::StateMachine(opts_.replica.kv).Snapshot();
    SYNOD_RETURN_IF_ERROR(g.storage->Save(s, {}, raft::HardState{Term(1), kNoNode, LogIndex(1)}));
    // Durable at once: a member that forgot it bootstrapped would wait for a snapshot forever.
    SYNOD_RETURN_IF_ERROR(db_->Sync());
  }
  ReplicaOptions ro = opts_.replica;
  ro.group = group;
  ro.raft.id = opts_.self;
  ro.sync_mode = ReplicaOptions::SyncMode::kHost;
  // Drawn from the seed and the group: distinct, well-spread election timers per group.
  ro.raft.random_seed =
      env::Random(opts_.random_seed ^ (group.value() * 0x9E3779B97F4A7C15ull)).Next() | 1;
  auto replica = Replica::Create(std::move(ro), transport_, g.storage.get(), observer_,
                                 logger_.With("group=" + std::to_string(group.value()) + " "));
  if (!replica.ok()) return replica.status();
  g.replica = std::move(*replica);
  groups_.emplace(group, std::move(g));
  ready_.insert(group);
  return Status::Ok();
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

std::vector<GroupId> Store::groups() const {
  std::vector<GroupId> out;
  out.reserve(groups_.size());
  for (const auto& [id, g] : groups_) out.push_back(id);
  return out;
}

void Store::Tick() {
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
    return Status::NotFound("this node holds no replica of group " + std::to_string(group.value()));
  }
  Group& g = it->second;
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
  for (GroupId id : touched) {
    auto it = groups_.find(id);
    if (it == groups_.end()) continue;  // removed meanwhile
    Group& g = it->second;
    if (RunReadys(id, g)) {
      round_.push_back(id);
    } else if (g.replica->HasReady()) {
      ready_.insert(id);  // hit the bound: the rest waits for the next round
    }
  }
  // Staged records without a Ready waiting (a state flush) ride on the next round's write.
  if (round_.empty()) return false;
  round_in_flight_ = true;
  ++rounds_;
  return true;
}

void Store::FinishRound(const Status& written) {
  SYNOD_ASSERT_MSG(round_in_flight_, "FinishRound without a round in flight");
  round_in_flight_ = false;
  std::vector<GroupId> done = std::exchange(round_, {});
  for (GroupId id : done) {
    auto it = groups_.find(id);
    SYNOD_ASSERT(it != groups_.end());
    Replica& r = *it->second.replica;
    if (written.ok()) {
      r.FinishReady();
    } else {
      r.FailStorage(written);
    }
    ready_.insert(id);
  }
}

}  // namespace synod::cluster
