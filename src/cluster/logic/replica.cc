#include "cluster/logic/replica.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "kv/redis.h"

namespace synod::cluster {

bool Replica::IsMember() const {
  const raft::Raft& raft = node_->raft();
  return raft.config().IsVoter(raft.id()) || raft.config().IsLearner(raft.id());
}

Replica::Replica(ReplicaOptions opts, RaftTransport* transport, storage::LogStore* wal,
                 ReplicaObserver* observer, Logger logger)
    : id_(opts.raft.id),
      opts_(std::move(opts)),
      transport_(transport),
      wal_(wal),
      observer_(observer),
      logger_(std::move(logger)),
      sm_(opts_.kv) {}

Result<std::unique_ptr<Replica>> Replica::Create(ReplicaOptions opts, RaftTransport* transport,
                                                 storage::LogStore* wal, ReplicaObserver* observer,
                                                 Logger logger, kv::internal::State* adopt) {
  SYNOD_ASSERT(transport != nullptr && wal != nullptr);
  std::unique_ptr<Replica> r(
      new Replica(std::move(opts), transport, wal, observer, std::move(logger)));
  const raft::Snapshot& snap = wal->snapshot();
  if (adopt != nullptr) {
    // A split's new shard: its state is the parent's right half as of the split's index, which
    // is the storage's snapshot.
    SYNOD_ASSERT(adopt->applied_index == snap.meta.index && wal->persists_state());
    r->sm_.set_track_changes(true);
    r->sm_.Adopt(std::move(*adopt));
    r->SyncStateSlots();
    const kv::StateChanges c = r->sm_.SessionsAndMeta();
    storage::StateWrites w;
    w.sessions = c.sessions;
    w.applied = c.applied;
    w.meta = c.meta;
    wal->StageState(w);
    r->snapshot_index_ = snap.meta.index;
    r->applied_at_start_ = snap.meta.index;
    raft::Config rc = r->opts_.raft;
    rc.storage = &wal->raft_storage();
    rc.applied = snap.meta.index;
    rc.logger = r->logger_;
    auto node = raft::RawNode::Create(rc);
    if (!node.ok()) return node.status();
    r->node_ = std::move(node).value();
    wal->SetSnapshotSource([raw = r.get()] { return raw->BuildSnapshot(); });
    r->snapshot_source_set_ = true;
    return r;
  }
  // The stored state is usable when it is at least as new as the snapshot; it may be older
  // when a crash came between saving a received snapshot and writing the state it replaced.
  const bool from_store = wal->persists_state() && wal->state_applied() > LogIndex(0) &&
                          wal->state_applied() >= snap.meta.index;
  // On before the snapshot's Restore, so that a store keeping the state gets all of it.
  r->sm_.set_track_changes(wal->persists_state());
  if (from_store) {
    SYNOD_RETURN_IF_ERROR(r->LoadStoredState());
  } else {
    if (wal->persists_state() && snap.meta.index > LogIndex(0) && snap.data.empty()) {
      // Compaction stores no image when the state persists itself, and writes that state in
      // the same batch: an older state beside an imageless snapshot cannot happen.
      return Status::Corruption("replica: the snapshot at index " +
                                std::to_string(snap.meta.index.value()) +
                                " has no image and the stored state (applied " +
                                std::to_string(wal->state_applied().value()) + ") is older");
    }
    if (!snap.data.empty()) {
      Status s = r->sm_.Restore(snap.data);
      if (!s.ok()) {
        return Status::Corruption("replica: the stored snapshot does not restore: " + s.ToString());
      }
      r->SyncStateSlots();
    }
    // Whatever the store held (a state older than the snapshot) is replaced by this one. A
    // replica with no snapshot yet (new, waiting for its leader's) holds no state and must
    // not reset: the keys under its slots may still be another replica's here (the parent of
    // a split this node has not applied yet).
    r->state_reset_pending_ = wal->persists_state() && snap.meta.index > LogIndex(0);
  }
  r->snapshot_index_ = snap.meta.index;
  r->applied_at_start_ = r->sm_.applied_index();
  raft::Config rc = r->opts_.raft;
  rc.storage = &wal->raft_storage();
  rc.applied = from_store ? wal->state_applied() : snap.meta.index;
  rc.logger = r->logger_;
  auto node = raft::RawNode::Create(rc);
  if (!node.ok()) return node.status();
  r->node_ = std::move(node).value();
  if (from_store) SYNOD_RETURN_IF_ERROR(r->ReplayConfChanges(snap.meta.index, rc.applied));
  if (wal->persists_state()) {
    wal->SetSnapshotSource([raw = r.get()] { return raw->BuildSnapshot(); });
    r->snapshot_source_set_ = true;
  }
  return r;
}

Replica::~Replica() {
  if (snapshot_source_set_) wal_->SetSnapshotSource(nullptr);
}

// The snapshot Raft sends a lagging follower. Streamed (ReplicaOptions::stream_snapshots): the
// state as stored at an index the store holds a view of; the host streams that view off this
// thread. Raft asks again (it retries at the follower's next heartbeat response) until the
// write that stores the state staged here is durable and the view is taken.
Result<raft::Snapshot> Replica::BuildSnapshot() {
  if (retired_) return Status::Unavailable("replica: merged away");
  if (!opts_.stream_snapshots || !wal_->streams_state()) return BuildImage();
  if (armed_ && wal_->state_view_index() == armed_->index) {
    raft::Snapshot snap;
    snap.meta = *armed_;
    snap.stream = armed_->index.value();
    armed_.reset();
    ++streams_out_;
    return snap;
  }
  if (armed_ && wal_->state_applied() == armed_->index) {
    return Status::Unavailable("replica: the snapshot's state is being written");
  }
  // Everything applied goes to the store's next write; its configuration and term are this
  // index's (a configuration changes only when its entry is applied).
  StageStateChanges(/*force=*/true);
  const LogIndex applied = sm_.applied_index();
  if (wal_->state_applied() != applied) {
    return Status::Unavailable("replica: the state could not be staged");
  }
  Result<Term> term = node_->raft().log().TermAt(applied);
  if (!term.ok()) {
    return Status::Unavailable("replica: no term for the applied index " +
                               std::to_string(applied.value()) + ": " + term.status().ToString());
  }
  armed_ = raft::SnapshotMeta{applied, *term, node_->raft().config().ToConfState()};
  armed_tick_ = tick_;
  wal_->WantStateView(applied);
  logger_.Info("event=snapshot_armed index={}", applied.value());
  if (wal_->state_view_index() == applied) return BuildSnapshot();  // durable already
  return Status::Unavailable("replica: the snapshot's state is being written");
}

void Replica::StreamedSnapshotEnded(NodeId to, bool delivered) {
  // A replica made again since (removed, then added) never handed this one out.
  if (streams_out_ == 0) return;
  --streams_out_;
  node_->ReportSnapshot(to,
                        delivered ? raft::SnapshotStatus::kFinish : raft::SnapshotStatus::kFailure);
}

void Replica::DepositStreamed(uint64_t stream, kv::internal::State state) {
  deposited_ = Deposit{stream, std::move(state)};
}

std::optional<SlotRange> Replica::DepositedRange(uint64_t stream) const {
  if (!deposited_ || deposited_->stream != stream) return std::nullopt;
  return deposited_->state.range;
}

// An image of the state as it is (see MaybeCompact): its index is the applied index, whose
// entry and configuration Raft knows.
Result<raft::Snapshot> Replica::BuildImage() const {
  const LogIndex applied = sm_.applied_index();
  Result<Term> term = node_->raft().log().TermAt(applied);
  if (!term.ok()) {
    return Status::Unavailable("replica: no term for the applied index " +
                               std::to_string(applied.value()) + ": " + term.status().ToString());
  }
  raft::Snapshot snap;
  snap.meta = raft::SnapshotMeta{applied, *term, node_->raft().config().ToConfState()};
  snap.data = sm_.Snapshot();
  logger_.Info("event=snapshot_built index={} bytes={}", applied.value(), snap.data.size());
  return snap;
}

void Replica::SyncStateSlots() {
  if (const std::optional<SlotRange>& range = sm_.range()) wal_->SetStateSlots(*range);
}

Status Replica::LoadStoredState() {
  // The stored state's own slots decide what is read: the host's span comes from its layout,
  // which may be older than the state (a split the layout had not caught up with).
  Result<std::optional<SlotRange>> stored_range = kv::MetaRange(wal_->state_meta());
  if (!stored_range.ok()) {
    return Status::Corruption("replica: the stored state's meta does not parse: " +
                              stored_range.status().ToString());
  }
  if (*stored_range) wal_->SetStateSlots(**stored_range);
  // LoadState pulls records while the store pushes them: hold them once, then move them in.
  std::vector<std::pair<std::string, std::string>> data;
  std::vector<std::pair<uint64_t, std::string>> sessions;
  Status s = wal_->ForEachState(
      [&](std::string_view key, std::string_view value) {
        data.emplace_back(key, value);
        return Status::Ok();
      },
      [&](uint64_t client_id, std::string_view session) {
        sessions.emplace_back(client_id, session);
        return Status::Ok();
      });
  if (!s.ok()) return s;
  size_t d = 0;
  size_t n = 0;
  s = sm_.LoadState(
      wal_->state_applied(), wal_->state_meta(),
      [&](std::string* key, std::string* value) {
        if (d == data.size()) return false;
        *key = std::move(data[d].first);
        *value = std::move(data[d].second);
        ++d;
        return true;
      },
      [&](uint64_t* client_id, std::string* session) {
        if (n == sessions.size()) return false;
        *client_id = sessions[n].first;
        *session = std::move(sessions[n].second);
        ++n;
        return true;
      });
  if (!s.ok()) {
    return Status::Corruption("replica: the stored state does not load: " + s.ToString());
  }
  return Status::Ok();
}

// Raft starts from the snapshot's membership and learns later changes only as the entries
// holding them are applied. The entries up to the stored state's applied index are not
// applied again, so their membership changes are replayed here, without the state machine.
Status Replica::ReplayConfChanges(LogIndex after, LogIndex upto) {
  constexpr uint64_t kReplayBytesMax = 4 << 20;
  LogIndex next = after + 1;
  // Bounded: every round moves `next` forward by at least one entry.
  while (next <= upto) {
    auto ents = wal_->raft_storage().Entries(next, upto + 1, kReplayBytesMax);
    if (!ents.ok()) {
      return Status::Corruption(
          "replica: entries below the stored state's applied index are "
          "missing: " +
          ents.status().ToString());
    }
    SYNOD_ASSERT(!ents->empty());
    for (const raft::Entry& e : *ents) {
      if (e.type == raft::EntryType::kConfChange) ApplyConfChange(e);
    }
    next = ents->back().index + 1;
  }
  return Status::Ok();
}

size_t Replica::pending_requests() const {
  size_t n = write_count_ + prop_waiters_.size() + read_batch_.size() + reads_by_index_.size();
  for (const auto& [ctx, reads] : reads_by_ctx_) n += reads.size();
  return n;
}

bool Replica::NoRequestsPending() const {
  return !failed() && pending_requests() == 0 && prop_batch_.empty();
}

bool Replica::QuiescableLeader() const {
  const raft::Raft& raft = node_->raft();
  if (raft.role() != raft::Role::kLeader || !NoRequestsPending() || persisting_ ||
      node_->HasReady()) {
    return false;
  }
  if (opts_.raft.read_only_option != raft::ReadOnlyOption::kSafe) return false;
  const raft::RaftLog& log = raft.log();
  const LogIndex last = log.LastIndex();
  if (log.committed() != last || log.applied() != last || raft.HasUnappliedConfChanges() ||
      raft.config().IsJoint()) {
    return false;
  }
  const raft::RaftStatus st = raft.GetStatus();
  if (st.lead_transferee != kNoNode) return false;
  for (const auto& [id, pr] : st.progress) {
    if (id != id_ && pr.match != last) return false;
  }
  return true;
}

bool Replica::QuiescableFollower(NodeId leader, Term term, LogIndex index) const {
  const raft::Raft& raft = node_->raft();
  if (raft.role() != raft::Role::kFollower || raft.term() != term || raft.lead() != leader ||
      !NoRequestsPending()) {
    return false;
  }
  const raft::RaftLog& log = raft.log();
  return log.LastIndex() == index && log.committed() == index;
}

void Replica::Answer(ReplyFn& fn, Status s, kv::Reply r, LogIndex index) {
  ReplyFn f = std::move(fn);
  f(ClientReply{std::move(s), std::move(r), index});
}

void Replica::Tick() {
  if (failed()) return;
  ++tick_;
  node_->Tick();
  ExpireRequests();
  // A snapshot armed and never asked for again (the follower caught up otherwise, left, or
  // this node stopped leading) must not hold the log's compaction and a database view.
  if (armed_ &&
      (node_->raft().role() != raft::Role::kLeader || tick_ > armed_tick_ + kArmedTicksMax)) {
    logger_.Info("event=snapshot_disarmed index={}", armed_->index.value());
    armed_.reset();
    wal_->WantStateView(LogIndex(0));
  }
}

void Replica::Receive(raft::Message m) {
  SYNOD_ASSERT(m.to == id_);
  if (failed()) return;
  // A replica that holds nothing (made empty to wait for its snapshot) grants no vote: it may be
  // a removed voter's replica made again from a descriptor older than the removal, and its vote
  // would count, in the configuration it left, for a candidate lacking committed entries (a
  // voter that lost its disk). A new member never needs it: it votes once it holds the log.
  if ((m.type == raft::MessageType::kVote || m.type == raft::MessageType::kPreVote) &&
      node_->raft().log().LastIndex() == LogIndex(0)) {
    logger_.Debug("event=vote_ignored reason=holds_nothing from={}", m.from.value());
    return;
  }
  if (m.type == raft::MessageType::kProp && wall_clock_ms_ > 0 &&
      node_->raft().role() == raft::Role::kLeader) {
    RestampForwarded(m);
  }
  Status s = node_->Step(std::move(m));
  if (!s.ok()) logger_.Debug("event=step_refused error=\"{}\"", s.ToString());
}

// A follower stamped the command with its own clock; the leader's replaces it, so that relative
// TTLs become absolute times by one clock (the leader's), as if the client had sent the command
// to the leader. Only timed commands are re-encoded (a decode and an encode per forwarded
// write); an entry that does not decode is left for the state machine to refuse everywhere.
void Replica::RestampForwarded(raft::Message& m) {
  for (raft::Entry& e : m.entries) {
    if (e.type != raft::EntryType::kNormal || e.data.empty()) continue;
    auto cmd = kv::DecodeCommand(e.data);
    if (!cmd.ok() || cmd->now_ms == 0) continue;
    cmd->now_ms = wall_clock_ms_;
    e.data = kv::EncodeCommand(*cmd);
  }
}

bool Replica::RefuseIfUnable(ReplyFn& reply) {
  if (failed()) {
    Answer(reply, Status::IoError("this node's disk failed; it refuses requests until restarted"));
    return true;
  }
  if (pending_requests() >= opts_.pending_requests_max) {
    Answer(reply, Status::ResourceExhausted("too many pending requests on this node"));
    return true;
  }
  return false;
}

void Replica::Submit(const kv::Command& cmd, ReadMode mode, ReplyFn reply) {
  if (RefuseIfUnable(reply)) return;
  if (cmd.op == kv::Op::kGet) {
    // Like a write, a read routed by slots this shard no longer owns (a split moved them) is
    // refused, never answered from the keys the shard no longer has.
    const std::optional<SlotRange> check =
        opts_.kv.testing_bug_stale_route ? std::nullopt : cmd.slots;
    SubmitRead(
        [key = cmd.key, check](const kv::StateMachine& sm) {
          if (check && !sm.Owns(*check)) return kv::Reply::Error(kv::ReplyCode::kWrongShard);
          kv::Reply r;
          if (auto v = sm.Get(key)) r.value = std::string(*v);
          return r;
        },
        mode, std::move(reply));
  } else {
    SubmitWrite(cmd, std::move(reply));
  }
}

void Replica::ReportUnreachable(NodeId peer) {
  if (failed()) return;
  node_->ReportUnreachable(peer);
}

void Replica::FailStorage(const Status& s) {
  SYNOD_ASSERT(!s.ok());
  Fail(s);
}

void Replica::SubmitWrite(const kv::Command& cmd, ReplyFn reply) {
  if (cmd.client_id == 0 || cmd.seq == 0) {
    Answer(reply, Status::InvalidArgument("a write needs a client id and a sequence number"));
    return;
  }
  if (prop_batch_.empty()) prop_batch_tick_ = tick_;
  prop_batch_.push_back(kv::EncodeCommand(cmd));
  prop_batch_bytes_ += prop_batch_.back().size();
  prop_waiters_.push_back(BatchedWrite{cmd.client_id, cmd.seq, std::move(reply)});
}

bool Replica::ProposalsDue() const {
  if (prop_batch_.empty()) return false;
  if (opts_.proposal_batches_in_flight == 0) return true;
  const raft::Raft& raft = node_->raft();
  // A follower forwards at once; the leader's hold is what batches.
  if (raft.role() != raft::Role::kLeader) return true;
  const LogIndex committed = raft.log().committed();
  size_t in_flight = 0;
  for (const LogIndex last : batches_in_flight_) in_flight += last > committed ? 1 : 0;
  if (in_flight < opts_.proposal_batches_in_flight) return true;
  // Bounds: a batch's size, and a hold that outlives a tick (no quorum, say: the writes are
  // then proposed, and time out as any other would).
  return prop_batch_.size() >= opts_.proposal_hold_max ||
         prop_batch_bytes_ >= kProposalHoldBytesMax || tick_ > prop_batch_tick_;
}

void Replica::FlushProposals() {
  if (!ProposalsDue()) return;
  prop_batch_bytes_ = 0;
  std::vector<BatchedWrite> waiters;
  waiters.swap(prop_waiters_);
  std::vector<std::string> batch;
  batch.swap(prop_batch_);
  Status s = node_->ProposeBatch(std::move(batch));
  if (!s.ok()) {
    // Refused before entering the log: certainly not applied.
    for (BatchedWrite& w : waiters) Answer(w.reply, s);
    return;
  }
  if (node_->raft().role() == raft::Role::kLeader) {
    const LogIndex committed = node_->raft().log().committed();
    while (!batches_in_flight_.empty() && batches_in_flight_.front() <= committed) {
      batches_in_flight_.pop_front();
    }
    batches_in_flight_.push_back(node_->raft().log().LastIndex());
  }
  const uint64_t deadline = tick_ + static_cast<uint64_t>(opts_.request_timeout_ticks);
  for (BatchedWrite& w : waiters) {
    writes_[{w.client_id, w.seq}].push_back(PendingWrite{std::move(w.reply), deadline});
    ++write_count_;
  }
}

size_t Replica::ProposeExpiry(int64_t now_ms, size_t limit) {
  // A shard frozen for a merge deletes nothing (it would refuse it): its keys expire where
  // they go.
  if (failed() || node_->raft().role() != raft::Role::kLeader || sm_.frozen()) return 0;
  std::vector<std::string> due = sm_.keyspace().Expired(now_ms, limit);
  if (due.empty()) return 0;
  kv::Command cmd;
  cmd.op = kv::Op::kExpire;
  cmd.args = std::move(due);
  cmd.now_ms = now_ms;
  if (!node_->Propose(kv::EncodeCommand(cmd)).ok()) return 0;
  return cmd.args.size();
}

void Replica::SubmitRead(ReadFn fn, ReadMode mode, ReplyFn reply) {
  if (RefuseIfUnable(reply)) return;
  bool local = mode == ReadMode::kStale;
  if (opts_.bugs.stale_read && node_->raft().role() == raft::Role::kLeader) local = true;
  if (local) {
    Answer(reply, Status::Ok(), fn(sm_));
    return;
  }
  read_batch_.push_back(PendingRead{std::move(fn), std::move(reply),
                                    tick_ + static_cast<uint64_t>(opts_.request_timeout_ticks)});
}

// At most read_batches_in_flight ReadIndex requests out at a time: reads that arrive while
// that many are out wait for one to come back and then go together, so under load a request
// confirms many reads instead of each read paying for its own heartbeats. Requests that got
// lost (a forwarded ReadIndex has no retry) hold the next one back for kReadIndexRetryTicks at
// most.
bool Replica::ReadBatchDue() const {
  return !read_batch_.empty() &&
         (reads_by_ctx_.size() < std::max<size_t>(opts_.read_batches_in_flight, 1) ||
          tick_ >= read_index_tick_ + kReadIndexRetryTicks);
}

void Replica::FlushReadBatch() {
  if (!ReadBatchDue()) return;
  read_index_tick_ = tick_;
  // One ReadIndex (one heartbeat round on the leader) confirms the whole batch.
  std::string ctx = std::to_string(id_.value()) + ":" + std::to_string(next_read_ctx_++);
  Status s = node_->ReadIndex(ctx);
  std::vector<PendingRead> batch;
  batch.swap(read_batch_);
  if (!s.ok()) {
    for (PendingRead& r : batch) Answer(r.reply, s);
    return;
  }
  reads_by_ctx_[ctx] = std::move(batch);
}

Status Replica::ProposeConfChange(const raft::ConfChange& cc) {
  if (failed()) return failure_;
  return node_->ProposeConfChange(cc);
}

Status Replica::TransferLeadership(NodeId to) {
  if (failed()) return failure_;
  return node_->TransferLeadership(to);
}

Status Replica::Campaign() {
  if (failed()) return failure_;
  return node_->Campaign();
}

bool Replica::HasReady() const {
  return !failed() && !persisting_ && (node_->HasReady() || ReadBatchDue() || ProposalsDue());
}

bool Replica::BeginReady() {
  SYNOD_ASSERT(!persisting_);
  if (failed()) return false;
  FlushProposals();
  FlushReadBatch();
  if (!node_->HasReady()) return false;
  ready_ = node_->GetReady();
  persisting_ = true;
  if (ready_.soft_state) {
    if (observer_ != nullptr)
      observer_->OnSoftState(id_, opts_.group, *ready_.soft_state, node_->raft().term());
    if (ready_.soft_state->lead != known_leader_) {
      if (known_leader_ != kNoNode) AbortOnLeaderChange();
      known_leader_ = ready_.soft_state->lead;
    }
  }
  // Step a of the Ready contract: leader traffic goes out while we write.
  SendAll(ready_.messages);
  HandleReadStates(ready_);
  Status s = wal_->Save(ready_.snapshot, ready_.entries, ready_.hard_state);
  if (s.ok() && ready_.snapshot && ready_.snapshot->stream != 0) {
    // The streamed state rides on the same write as the snapshot that replaced the log.
    const uint64_t stream = ready_.snapshot->stream;
    if (!deposited_ || deposited_->stream != stream ||
        deposited_->state.applied_index != ready_.snapshot->meta.index) {
      s = Status::FailedPrecondition("replica: no state deposited for streamed snapshot " +
                                     std::to_string(stream));
    } else {
      s = wal_->StageReceived(stream);
    }
  }
  if (s.ok() && ready_.must_sync && opts_.sync_mode == ReplicaOptions::SyncMode::kReplica) {
    s = wal_->Sync();
  }
  if (!s.ok()) {
    Fail(s);
    return false;
  }
  if (opts_.bugs.ack_before_fsync) SendAll(ready_.messages_after_persist);
  ApplyDurableCommitted();
  return ready_.must_sync;
}

// Committed entries that were durable here before this Ready (those below its first new entry)
// need not wait for this Ready's write: apply them, and answer their clients, now. Otherwise a
// write committed while the previous write was on disk would wait for one more. Entries of this
// Ready, a snapshot and membership changes keep the order of the contract (after the write).
void Replica::ApplyDurableCommitted() {
  applied_early_ = 0;
  if (ready_.snapshot) return;
  const std::vector<raft::Entry>& committed = ready_.committed_entries;
  const LogIndex first_new =
      ready_.entries.empty() ? LogIndex(UINT64_MAX) : ready_.entries.front().index;
  size_t n = 0;
  while (n < committed.size() && committed[n].index < first_new &&
         committed[n].type != raft::EntryType::kConfChange) {
    ++n;
  }
  if (n == 0) return;
  ApplyCommitted(committed, 0, n);
  applied_early_ = n;
  ServeReads();
}

void Replica::FinishReady() {
  if (!persisting_) return;  // BeginReady found nothing to do, or the node failed
  if (failed()) return;
  persisting_ = false;
  // Step c: promises resting on the disk go out only now that it is durable.
  if (!opts_.bugs.ack_before_fsync) SendAll(ready_.messages_after_persist);
  if (ready_.snapshot && ready_.snapshot->stream != 0) {
    // Built off the core thread and stored by this Ready's write (BeginReady).
    sm_.Adopt(std::move(deposited_->state));
    deposited_.reset();
    state_reset_pending_ = false;
  } else if (ready_.snapshot) {
    Status s = sm_.Restore(ready_.snapshot->data);
    if (!s.ok()) {
      Fail(Status::Corruption("replica: a received snapshot does not restore: " + s.ToString()));
      return;
    }
  }
  if (ready_.snapshot) {
    snapshot_index_ = ready_.snapshot->meta.index;
    // The reset that writes the new state replaces the keys of its slots (not the old span's:
    // slots given away by a split this replica never applied may be another shard's here now).
    SyncStateSlots();
    if (observer_ != nullptr) observer_->OnSnapshot(id_, opts_.group, ready_.snapshot->meta);
  }
  ApplyCommitted(ready_.committed_entries, std::exchange(applied_early_, 0),
                 ready_.committed_entries.size());
  StageStateChanges(/*force=*/false);
  node_->Advance(ready_);
  ready_ = raft::Ready{};
  ServeReads();
  MaybeCompact();
}

// The state applied by this Ready goes to the store's next write (the next Ready's, or a
// compaction's). The entries it came from are durable already, so a crash before that write
// only means replaying them; what matters is that data and applied index travel together.
void Replica::StageStateChanges(bool force) {
  if (!wal_->persists_state() || retired_) return;
  const LogIndex applied = sm_.applied_index();
  const uint64_t behind =
      applied > wal_->state_applied() ? applied.value() - wal_->state_applied().value() : 0;
  if (!force && !state_reset_pending_ &&
      behind < std::max<uint64_t>(opts_.state_flush_entries, 1)) {
    return;  // the log holds what was applied since; a restart replays it
  }
  kv::StateChanges c = sm_.TakeChanges();
  if (c.applied == wal_->state_applied() && !c.reset && !state_reset_pending_) {
    SYNOD_ASSERT(c.data.empty() && c.sessions.empty());
    return;  // nothing applied
  }
  storage::StateWrites w;
  // Both, always: a pending reset left set (when c.reset alone decided) would make the next
  // staging replace the whole stored state with only the keys touched since.
  const bool reset_pending = std::exchange(state_reset_pending_, false);
  w.reset = c.reset || reset_pending;
  w.data = std::move(c.data);
  w.sessions = std::move(c.sessions);
  w.applied = c.applied;
  w.meta = std::move(c.meta);
  w.clear_slots = clear_slots_;
  wal_->StageState(w);
}

void Replica::FlushState() {
  if (failed()) return;
  StageStateChanges(/*force=*/true);
}

void Replica::SendAll(std::vector<raft::Message>& msgs) {
  for (raft::Message& m : msgs) transport_->Send(opts_.group, std::move(m));
  msgs.clear();
}

void Replica::HandleReadStates(const raft::Ready& rd) {
  for (const raft::ReadState& rs : rd.read_states) {
    auto it = reads_by_ctx_.find(rs.context);
    if (it == reads_by_ctx_.end()) continue;  // expired meanwhile
    for (PendingRead& r : it->second) reads_by_index_.emplace(rs.index, std::move(r));
    reads_by_ctx_.erase(it);
  }
  for (const std::string& ctx : rd.aborted_reads) {
    auto it = reads_by_ctx_.find(ctx);
    if (it == reads_by_ctx_.end()) continue;
    for (PendingRead& r : it->second) {
      Answer(r.reply, Status::Unavailable("leadership changed before the read was confirmed"));
    }
    reads_by_ctx_.erase(it);
  }
  ServeReads();
}

void Replica::ServeReads() {
  while (!reads_by_index_.empty() && reads_by_index_.begin()->first <= sm_.applied_index()) {
    auto node = reads_by_index_.extract(reads_by_index_.begin());
    PendingRead& r = node.mapped();
    Answer(r.reply, Status::Ok(), r.fn(sm_));
  }
}

void Replica::ApplyCommitted(const std::vector<raft::Entry>& entries, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    const raft::Entry& e = entries[i];
    applied_bytes_ += e.data.size();
    if (observer_ != nullptr) observer_->OnApply(id_, opts_.group, e);
    if (e.type == raft::EntryType::kConfChange) {
      ApplyConfChange(e);
      (void)sm_.ApplyEntry(e.index, {});  // keeps the state machine's applied index in step
      continue;
    }
    if (e.data.empty()) {
      (void)sm_.ApplyEntry(e.index, {});  // a new leader's empty entry
      continue;
    }
    auto cmd = kv::DecodeCommand(e.data);
    if (!cmd.ok()) {
      (void)sm_.ApplyEntry(e.index, e.data);  // every replica records the same error
      continue;
    }
    const bool redis = cmd->op == kv::Op::kRedis && !cmd->args.empty();
    const bool split = redis && kv::redis::EqualsIgnoreCase(cmd->args[0], kv::kSplitCommand);
    const bool merge = redis && kv::redis::EqualsIgnoreCase(cmd->args[0], kv::kMergeCommand);
    kv::Reply reply = split   ? ApplySplit(e.index, *cmd, e.term)
                      : merge ? ApplyMerge(e.index, *cmd)
                              : sm_.Apply(e.index, *cmd);
    auto it = writes_.find({cmd->client_id, cmd->seq});
    if (it == writes_.end()) continue;
    for (PendingWrite& w : it->second) Answer(w.reply, Status::Ok(), reply, e.index);
    write_count_ -= it->second.size();
    writes_.erase(it);
  }
}

// The parent's keys of the moved slots stay where they are stored (under their slots), and the
// new shard reads them from there: so every change applied before the split is staged first,
// and the split (the parent's narrower range and applied index) right after, into the same
// write that will carry the new shard's records (the Store creates it before the next write).
kv::Reply Replica::ApplySplit(LogIndex index, const kv::Command& cmd, Term term) {
  StageStateChanges(/*force=*/true);
  sm_.set_split_allowed(!node_->raft().config().IsJoint());
  kv::Reply reply = sm_.Apply(index, cmd);
  std::optional<kv::SplitOff> off = sm_.TakeSplit();
  if (!off) return reply;
  SyncStateSlots();
  StageStateChanges(/*force=*/true);
  logger_.Info("event=split_applied index={} child={} slots={}-{} kept={}-{}", index.value(),
               off->child, off->range.first, off->range.last, sm_.range()->first,
               sm_.range()->last);
  splits_.push_back(AppliedSplit{std::move(*off), node_->raft().config().ToConfState(), term,
                                 node_->raft().role() == raft::Role::kLeader});
  return reply;
}

// The absorbed shard's keys come in the entry: whatever this node stored under their slots (its
// replica of that shard, which the Store destroys in this round, may lag) is deleted first, in
// the same write that stores the merged state.
kv::Reply Replica::ApplyMerge(LogIndex index, const kv::Command& cmd) {
  StageStateChanges(/*force=*/true);
  kv::Reply reply = sm_.Apply(index, cmd);
  std::optional<kv::MergeIn> in = sm_.TakeMerge();
  if (!in) return reply;
  SyncStateSlots();
  clear_slots_ = std::make_pair(in->range.first, in->range.last);
  StageStateChanges(/*force=*/true);
  clear_slots_.reset();
  logger_.Info("event=merge_applied index={} from={} slots={}-{} now={}-{} keys={}", index.value(),
               in->from, in->range.first, in->range.last, sm_.range()->first, sm_.range()->last,
               sm_.key_count());
  merges_.push_back(AppliedMerge{*in, node_->raft().config().ToConfState()});
  return reply;
}

void Replica::ApplyConfChange(const raft::Entry& e) {
  auto cc = raft::ConfChange::Decode(e.data);
  if (!cc.ok()) {
    logger_.Error("event=bad_conf_change index={} error=\"{}\"", e.index.value(),
                  cc.status().ToString());
    return;
  }
  auto cs = node_->ApplyConfChange(*cc);
  if (!cs.ok()) {
    logger_.Warn("event=conf_change_ignored index={} error=\"{}\"", e.index.value(),
                 cs.status().ToString());
  }
}

void Replica::ExpireRequests() {
  for (auto it = writes_.begin(); it != writes_.end();) {
    auto& waiters = it->second;
    for (auto w = waiters.begin(); w != waiters.end();) {
      if (w->deadline_tick > tick_) {
        ++w;
        continue;
      }
      Answer(w->reply, Status::Timeout("no quorum confirmed the write within the request timeout; "
                                       "it may or may not have been applied"));
      w = waiters.erase(w);
      --write_count_;
    }
    it = waiters.empty() ? writes_.erase(it) : std::next(it);
  }
  auto expire_reads = [this](std::vector<PendingRead>& reads) {
    for (auto r = reads.begin(); r != reads.end();) {
      if (r->deadline_tick > tick_) {
        ++r;
        continue;
      }
      Answer(r->reply, Status::Timeout("no quorum confirmed the read within the request timeout"));
      r = reads.erase(r);
    }
  };
  expire_reads(read_batch_);
  for (auto it = reads_by_ctx_.begin(); it != reads_by_ctx_.end();) {
    expire_reads(it->second);
    it = it->second.empty() ? reads_by_ctx_.erase(it) : std::next(it);
  }
  for (auto it = reads_by_index_.begin(); it != reads_by_index_.end();) {
    if (it->second.deadline_tick > tick_) {
      ++it;
      continue;
    }
    Answer(it->second.reply, Status::Timeout("the read was not served within the request timeout"));
    it = reads_by_index_.erase(it);
  }
}

// With a store that persists the state machine, compaction stores no image: the state up to
// the applied index is staged into the same write (so the store's state is never older than
// the snapshot), and an image is built only when a follower needs one (BuildSnapshot). Else
// the image is the snapshot's data.
void Replica::MaybeCompact() {
  // A follower being sent a streamed snapshot needs the entries after it once installed.
  if (armed_ || streams_out_ > 0) return;
  LogIndex applied = sm_.applied_index();
  if (applied.value() < snapshot_index_.value() + opts_.snapshot_entries) return;
  raft::ConfState cs = node_->raft().config().ToConfState();
  Status s;
  if (wal_->persists_state()) {
    // The state up to `applied` and the compaction go out with the next write, in one batch;
    // the core does not wait for a disk write of its own here.
    StageStateChanges(/*force=*/true);
    s = wal_->StageCompact(applied, cs);
  } else {
    s = wal_->Compact(applied, cs, sm_.Snapshot());
  }
  if (!s.ok()) {
    Fail(s);
    return;
  }
  logger_.Debug("event=compacted index={}", applied.value());
  snapshot_index_ = applied;
}

// A request forwarded to a leader that is gone (crashed, partitioned, deposed) would otherwise
// wait for its full timeout: its proposal or ReadIndex was dropped with the leader. Answer
// it now. A write may still be in the log and be applied later, so its outcome is unknown
// (kTimeout); a read has no effect and is simply refused.
void Replica::AbortOnLeaderChange() {
  batches_in_flight_.clear();
  for (auto& [key, waiters] : writes_) {
    for (PendingWrite& w : waiters) {
      Answer(w.reply, Status::Timeout("the leader changed before the write was confirmed; it "
                                      "may or may not have been applied"));
    }
  }
  writes_.clear();
  write_count_ = 0;
  const Status err = Status::Unavailable("the leader changed before the read was confirmed");
  for (auto& [ctx, reads] : reads_by_ctx_) {
    for (PendingRead& r : reads) Answer(r.reply, err);
  }
  reads_by_ctx_.clear();
}

void Replica::AnswerAllPending() {
  AnswerPending(Status::Timeout("this node's replica left the shard before the write was "
                                "confirmed; it may or may not have been applied"),
                Status::Unavailable("this node's replica left the shard"));
}

void Replica::AnswerPending(const Status& proposed, const Status& not_applied) {
  for (auto& [key, waiters] : writes_) {
    for (PendingWrite& w : waiters) Answer(w.reply, proposed);
  }
  writes_.clear();
  write_count_ = 0;
  for (BatchedWrite& w : prop_waiters_) Answer(w.reply, not_applied);  // never proposed
  prop_waiters_.clear();
  prop_batch_.clear();
  prop_batch_bytes_ = 0;
  for (PendingRead& r : read_batch_) Answer(r.reply, not_applied);
  read_batch_.clear();
  for (auto& [ctx, reads] : reads_by_ctx_) {
    for (PendingRead& r : reads) Answer(r.reply, not_applied);
  }
  reads_by_ctx_.clear();
  for (auto& [idx, r] : reads_by_index_) Answer(r.reply, not_applied);
  reads_by_index_.clear();
}

void Replica::Fail(const Status& s) {
  if (failed()) return;
  failure_ = s;
  persisting_ = false;
  logger_.Error("event=replica_failed error=\"{}\"", s.ToString());
  AnswerPending(Status::Timeout("this node's disk failed (" + s.ToString() +
                                "); the write may or may not have been applied"),
                Status::IoError("this node's disk failed: " + s.ToString()));
}

}  // namespace synod::cluster
