// The leader's half of the Raft core: proposals, replication and flow control, commitment,
// ReadIndex and lease reads, leadership transfer, check-quorum.
#include <algorithm>

#include "common/assert.h"
#include "raft/raft.h"

namespace synod::raft {

namespace {

// Adapts a progress map to the quorum code's AckedIndexer: the match index of each member.
class MatchIndexer final : public AckedIndexer {
 public:
  explicit MatchIndexer(const std::map<NodeId, Progress>& p) : p_(p) {}
  std::optional<uint64_t> AckedIndex(NodeId id) const override {
    auto it = p_.find(id);
    if (it == p_.end()) return std::nullopt;
    return it->second.match.value();
  }

 private:
  const std::map<NodeId, Progress>& p_;
};

// The newest leader tick each member acknowledged; the leader itself acks "now".
class AckedTickIndexer final : public AckedIndexer {
 public:
  AckedTickIndexer(const std::map<NodeId, Progress>& p, NodeId self, uint64_t now)
      : p_(p), self_(self), now_(now) {}
  std::optional<uint64_t> AckedIndex(NodeId id) const override {
    if (id == self_) return now_;
    auto it = p_.find(id);
    if (it == p_.end()) return std::nullopt;
    return it->second.acked_tick;
  }

 private:
  const std::map<NodeId, Progress>& p_;
  NodeId self_;
  uint64_t now_;
};

}  // namespace

Status Raft::StepLeader(LeaderRole& l, Message& m) {
  switch (m.type) {
    case MessageType::kBeat:
      BroadcastHeartbeat(l, {});
      return Status::Ok();
    case MessageType::kCheckQuorum:
      if (!QuorumActive(l)) {
        logger_.Warn("event=step_down reason=check_quorum term={}", term_.value());
        BecomeFollower(term_, kNoNode);
      }
      return Status::Ok();
    case MessageType::kProp:
      return LeaderPropose(l, m);
    case MessageType::kReadIndex:
      LeaderReadIndex(l, m);
      return Status::Ok();
    case MessageType::kTransferLeader:
      return LeaderTransfer(l, m);
    case MessageType::kAppResp:
      LeaderAppResp(l, m);
      return Status::Ok();
    case MessageType::kHeartbeatResp:
      LeaderHeartbeatResp(l, m);
      return Status::Ok();
    case MessageType::kSnapStatus: {
      auto it = l.progress.find(m.from);
      if (it == l.progress.end() || it->second.state != ProgressState::kSnapshot) {
        return Status::Ok();
      }
      Progress& pr = it->second;
      if (m.reject) pr.pending_snapshot = LogIndex(0);
      pr.BecomeProbe();
      // Wait for the follower's append response (or a heartbeat) before sending more: it
      // tells us where its log now ends.
      pr.msg_app_flow_paused = true;
      logger_.Debug("event=snapshot_status to={} failed={}", m.from.value(), m.reject);
      return Status::Ok();
    }
    case MessageType::kUnreachable: {
      auto it = l.progress.find(m.from);
      // Appends in flight were probably lost: fall back to probing.
      if (it != l.progress.end() && it->second.state == ProgressState::kReplicate) {
        it->second.BecomeProbe();
      }
      return Status::Ok();
    }
    case MessageType::kTimeoutNow:
    case MessageType::kHup:
    case MessageType::kApp:
    case MessageType::kHeartbeat:
    case MessageType::kSnap:
    case MessageType::kVote:
    case MessageType::kPreVote:
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kReadIndexResp:
      return Status::Ok();  // same-term messages a leader has no use for
  }
  SYNOD_UNREACHABLE();
}

Status Raft::LeaderPropose(LeaderRole& l, Message& m) {
  SYNOD_ASSERT_MSG(!m.entries.empty(), "raft: empty proposal");
  if (!l.progress.count(id_)) {
    return Status::ProposalDropped("this node was removed from the group and is stepping down");
  }
  if (l.lead_transferee != kNoNode) {
    return Status::ProposalDropped(fmt::format("leadership transfer to {} in progress; retry later",
                                               l.lead_transferee.value()));
  }
  for (const Entry& e : m.entries) {
    if (e.type != EntryType::kConfChange) continue;
    auto cc = ConfChange::Decode(e.data);
    if (!cc.ok()) return cc.status();
    if (l.pending_conf_index > log_.applied()) {
      return Status::FailedPrecondition(
          fmt::format("a membership change is pending (index {}, applied {})",
                      l.pending_conf_index.value(), log_.applied().value()));
    }
    if (config_.IsJoint() && !cc->IsLeaveJoint()) {
      return Status::FailedPrecondition("in a joint configuration: leave it first");
    }
    if (!config_.IsJoint() && cc->IsLeaveJoint()) {
      return Status::FailedPrecondition("not in a joint configuration: nothing to leave");
    }
    // Validate against the current configuration now, so that a change that could never
    // apply is refused to the proposer rather than committed and then ignored.
    auto next = synod::raft::ApplyConfChange(config_, *cc);
    if (!next.ok()) return next.status();
  }
  LogIndex first_new = log_.LastIndex() + 1;
  // Found before AppendEntries moves the entries into the log: the index of the last
  // membership change of the proposal, 0 if none.
  LogIndex last_conf;
  for (size_t i = 0; i < m.entries.size(); ++i) {
    if (m.entries[i].type == EntryType::kConfChange) last_conf = first_new + i;
  }
  if (!AppendEntries(l, m.entries)) {
    return Status::ResourceExhausted(
        "too many uncommitted log bytes: the group cannot reach a quorum; retry later");
  }
  if (last_conf != LogIndex(0)) l.pending_conf_index = last_conf;
  BroadcastAppend(l);
  return Status::Ok();
}

bool Raft::AppendEntries(LeaderRole& l, std::vector<Entry>& ents) {
  uint64_t bytes = 0;
  for (const Entry& e : ents) bytes += e.PayloadBytes();
  // The bound is soft by one proposal: a single large proposal on an empty log is accepted,
  // so that no proposal is refused forever.
  if (cfg_.max_uncommitted_bytes > 0 && l.uncommitted_bytes > 0 &&
      l.uncommitted_bytes + bytes > cfg_.max_uncommitted_bytes) {
    logger_.Debug("event=proposal_refused reason=uncommitted_bytes uncommitted={}",
                  l.uncommitted_bytes);
    return false;
  }
  l.uncommitted_bytes += bytes;
  LogIndex li = log_.LastIndex();
  for (size_t i = 0; i < ents.size(); ++i) {
    ents[i].term = term_;
    ents[i].index = li + (i + 1);
  }
  // Accepted: the entries move into the log (ents is left empty), uncopied.
  log_.Append(std::move(ents));
  // The leader's own progress moves when Advance reports these entries durable.
  return true;
}

void Raft::BroadcastAppend(LeaderRole& l) {
  for (auto& [id, pr] : l.progress) {
    if (id != id_) MaybeSendAppend(l, id, true);
  }
}

bool Raft::MaybeSendAppend(LeaderRole& l, NodeId to, bool send_if_empty) {
  Progress& pr = l.progress.at(to);
  if (pr.IsPaused()) return false;
  LogIndex prev_index = pr.next - 1;
  Result<Term> prev_term = log_.TermAt(prev_index);
  if (!prev_term.ok()) {
    // The entry before next was compacted. Whether anything was sent shows in the state:
    // SendSnapshot may send nothing (snapshot unavailable, follower inactive), and callers
    // loop while this returns true.
    SendSnapshot(l, to, pr);
    return pr.state == ProgressState::kSnapshot;
  }
  std::vector<Entry> ents;
  if (pr.state != ProgressState::kProbe || pr.next <= log_.LastIndex()) {
    auto r = log_.EntriesFrom(pr.next, cfg_.max_msg_bytes);
    if (!r.ok()) {
      SendSnapshot(l, to, pr);
      return pr.state == ProgressState::kSnapshot;
    }
    ents = std::move(r).value();
  }
  if (ents.empty() && !send_if_empty) return false;
  Message m;
  m.type = MessageType::kApp;
  m.to = to;
  m.index = prev_index;
  m.log_term = prev_term.value();
  m.commit = log_.committed();
  m.sent_tick = tick_now_;
  uint64_t bytes = 0;
  for (const Entry& e : ents) bytes += e.PayloadBytes();
  LogIndex last = ents.empty() ? prev_index : ents.back().index;
  m.entries = std::move(ents);
  pr.SentEntries(last, bytes);
  Send(std::move(m));
  return true;
}

void Raft::SendSnapshot(LeaderRole& l, NodeId to, Progress& pr) {
  if (!pr.recent_active) {
    // Snapshots are expensive: do not send one to a node we have not heard from lately.
    logger_.Debug("event=snapshot_skipped to={} reason=not_recently_active", to.value());
    return;
  }
  Result<Snapshot> snap = log_.GetSnapshot();
  if (!snap.ok()) {
    logger_.Debug("event=snapshot_unavailable to={} error=\"{}\"", to.value(),
                  snap.status().ToString());
    return;
  }
  SYNOD_ASSERT_MSG(!snap->IsEmpty(), "raft: entries compacted but no snapshot available");
  logger_.Info("event=send_snapshot to={} index={} term={} match={}", to.value(),
               snap->meta.index.value(), snap->meta.term.value(), pr.match.value());
  pr.BecomeSnapshot(snap->meta.index);
  pr.snapshot_sent_tick = tick_now_;
  pr.snapshot_reported = snap->stream != 0;
  Message m;
  m.type = MessageType::kSnap;
  m.to = to;
  m.snapshot = std::move(snap).value();
  Send(std::move(m));
}

void Raft::SendHeartbeat(LeaderRole& l, NodeId to, const std::string& context) {
  const Progress& pr = l.progress.at(to);
  Message m;
  m.type = MessageType::kHeartbeat;
  m.to = to;
  // Never tell a follower of a commit index beyond what it is known to hold: it could not
  // tell a committed entry from a stale one at that index.
  m.commit = std::min(pr.match, log_.committed());
  m.context = context;
  m.sent_tick = tick_now_;
  Send(std::move(m));
}

void Raft::BroadcastHeartbeat(LeaderRole& l, const std::string& context) {
  // Piggyback the newest pending read's context so that one round confirms every read.
  std::string ctx = context;
  if (ctx.empty()) {
    if (auto last = l.read_only.LastContext()) ctx = *last;
  }
  for (auto& [id, pr] : l.progress) {
    if (id != id_) SendHeartbeat(l, id, ctx);
  }
  l.read_round_due = false;  // the newest pending request, if any, rides on this one
  if (!ctx.empty()) {
    // A heartbeat that repeats the newest round's context (the periodic one, while that round
    // is out) is a retry of it, not a new round.
    if (l.read_rounds_out.empty() || l.read_rounds_out.back() != ctx) {
      l.read_rounds_out.push_back(ctx);
    }
  }
}

void Raft::SendTimeoutNow(LeaderRole& l, NodeId to) {
  l.lease_revoked = true;
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  Send(std::move(m));
}

bool Raft::MaybeCommit(LeaderRole& l) {
  MatchIndexer acked(l.progress);
  LogIndex mci(config_.voters.CommittedIndex(acked));
  if (cfg_.testing_bug_commit_old_term && mci > log_.committed() && mci <= log_.LastIndex()) {
    // The planted bug (simulator only): commit whatever a quorum holds, whatever its term.
    log_.CommitTo(mci);
    return true;
  }
  // MaybeCommit only moves the index for an entry of the current term (§3.6.2): counting
  // replicas of an older term's entry is not enough (Figure 3.7).
  return log_.MaybeCommit(mci, term_);
}

bool Raft::CommittedInCurrentTerm() const {
  return log_.ZeroTermOnError(log_.TermAt(log_.committed())) == term_;
}

void Raft::ReleasePendingReads(LeaderRole& l) {
  if (l.pending_reads.empty() || !CommittedInCurrentTerm()) return;
  std::vector<Message> pending;
  pending.swap(l.pending_reads);
  for (const Message& m : pending) ServeReadIndex(l, m);
}

void Raft::LeaderAppResp(LeaderRole& l, const Message& m) {
  auto it = l.progress.find(m.from);
  if (it == l.progress.end()) return;
  Progress& pr = it->second;
  pr.recent_active = true;
  pr.acked_tick = std::max(pr.acked_tick, m.sent_tick);
  if (m.reject) {
    // Fast backtracking: with the follower's hint (index, term), find the largest index at
    // which our log has a term <= the hint's term; entries above cannot match.
    LogIndex next_probe = m.reject_hint;
    if (m.log_term > Term(0)) next_probe = log_.FindConflictByTerm(m.reject_hint, m.log_term).first;
    logger_.Debug("event=app_rejected from={} index={} hint={} next_probe={}", m.from.value(),
                  m.index.value(), m.reject_hint.value(), next_probe.value());
    if (pr.MaybeDecrTo(m.index, next_probe)) {
      if (pr.state == ProgressState::kReplicate) pr.BecomeProbe();
      MaybeSendAppend(l, m.from, true);
    }
    return;
  }
  const bool was_paused = pr.IsPaused();
  if (!pr.MaybeUpdate(m.index) && !(pr.match == m.index && pr.state == ProgressState::kProbe)) {
    return;  // stale
  }
  if (pr.state == ProgressState::kProbe) {
    pr.BecomeReplicate();
  } else if (pr.state == ProgressState::kSnapshot && pr.match + 1 >= log_.FirstIndex()) {
    // The snapshot got the follower far enough that the log can take over.
    pr.BecomeProbe();
    pr.BecomeReplicate();
  } else if (pr.state == ProgressState::kReplicate) {
    pr.inflights.FreeLE(m.index);
  }
  if (MaybeCommit(l)) {
    ReleasePendingReads(l);
    BroadcastAppend(l);
  } else if (was_paused) {
    MaybeSendAppend(l, m.from, true);
  }
  // The window may have room for several more size-limited messages now.
  while (MaybeSendAppend(l, m.from, false)) {
  }
  if (m.from == l.lead_transferee && pr.match == log_.LastIndex()) {
    logger_.Info("event=transfer_target_caught_up to={}", m.from.value());
    SendTimeoutNow(l, m.from);
  }
}

void Raft::LeaderHeartbeatResp(LeaderRole& l, const Message& m) {
  auto it = l.progress.find(m.from);
  if (it == l.progress.end()) return;
  Progress& pr = it->second;
  pr.recent_active = true;
  pr.acked_tick = std::max(pr.acked_tick, m.sent_tick);
  if (pr.state == ProgressState::kSnapshot && !pr.snapshot_reported &&
      m.sent_tick > pr.snapshot_sent_tick) {
    // The follower answered a heartbeat sent after the snapshot, yet has not acknowledged the
    // snapshot: it was lost on the way (a dropped connection, a restart) and nobody may ever
    // report it. Probe from just after it: if it did arrive after all, the probe is accepted;
    // if not, the probe is refused and leads to a new snapshot. (Its acknowledgement may also
    // just be slower than the heartbeat's; then the probe is merely redundant.)
    logger_.Info("event=snapshot_presumed_lost to={} index={}", m.from.value(),
                 pr.pending_snapshot.value());
    pr.BecomeProbe();
  }
  // A heartbeat response is how appends to a stalled follower are retried (a probe that got
  // no answer, a window that may hold only lost appends). Once per tick is enough: ReadIndex
  // rounds send heartbeats far more often than the heartbeat interval, and each retry may
  // carry up to max_msg_bytes of entries to a follower that is not taking them.
  if (pr.heartbeat_retry_tick != tick_now_) {
    pr.heartbeat_retry_tick = tick_now_;
    RetryAppends(l, m.from, pr);
  }
  if (m.context.empty()) return;
  const std::map<NodeId, bool>* acks = l.read_only.Ack(m.from, m.context);
  if (acks == nullptr || config_.voters.Vote(*acks) != VoteResult::kWon) return;
  for (const ReadRequest& r : l.read_only.ReleaseThrough(m.context)) RespondToRead(r, r.index);
  // Rounds are released in the order they were sent: those whose request is gone are done.
  while (!l.read_rounds_out.empty() && !l.read_only.Contains(l.read_rounds_out.front())) {
    l.read_rounds_out.pop_front();
  }
  // Requests that arrived while the rounds were out and that no round out covers: one round
  // for all of them.
  UpdateReadRoundDue(l);
}

void Raft::UpdateReadRoundDue(LeaderRole& l) {
  std::optional<std::string> last = l.read_only.LastContext();
  l.read_round_due = last.has_value() &&
                     l.read_rounds_out.size() < cfg_.max_read_rounds_in_flight &&
                     (l.read_rounds_out.empty() || l.read_rounds_out.back() != *last);
}

void Raft::RetryAppends(LeaderRole& l, NodeId to, Progress& pr) {
  pr.msg_app_flow_paused = false;
  if (pr.state == ProgressState::kReplicate && pr.inflights.Full() && pr.match < log_.LastIndex()) {
    // The window may hold only appends that were lost (the follower restarted, say), and
    // then no answer would ever free it. An empty append takes no slot: its acknowledgement
    // frees the window, its rejection sends the follower back to probing (as etcd does).
    Result<Term> prev_term = log_.TermAt(pr.next - 1);
    if (prev_term.ok()) {
      Message app;
      app.type = MessageType::kApp;
      app.to = to;
      app.index = pr.next - 1;
      app.log_term = prev_term.value();
      app.commit = log_.committed();
      app.sent_tick = tick_now_;
      Send(std::move(app));
    } else {
      // The entries in flight were compacted meanwhile: probe, which leads to a snapshot.
      pr.BecomeProbe();
      MaybeSendAppend(l, to, true);
    }
  } else if (pr.match < log_.LastIndex()) {
    MaybeSendAppend(l, to, true);
  }
}

void Raft::RespondToRead(const ReadRequest& req, LogIndex index) {
  if (req.from == kNoNode || req.from == id_) {
    read_states_.push_back(ReadState{index, req.context});
    return;
  }
  Message resp;
  resp.type = MessageType::kReadIndexResp;
  resp.to = req.from;
  resp.index = index;
  resp.context = req.context;
  Send(std::move(resp));
}

void Raft::LeaderReadIndex(LeaderRole& l, const Message& m) {
  if (config_.voters.incoming.size() == 1 && !config_.IsJoint() && config_.voters.Contains(id_)) {
    // A single voter is its own quorum: the commit index is current by definition.
    RespondToRead(ReadRequest{log_.committed(), m.from, m.context}, log_.committed());
    return;
  }
  if (!CommittedInCurrentTerm()) {
    // Until this term's first entry commits, the leader's commit index may lag the true one
    // (§6.4 step 1): queue the read.
    l.pending_reads.push_back(m);
    return;
  }
  ServeReadIndex(l, m);
}

void Raft::ServeReadIndex(LeaderRole& l, const Message& m) {
  ReadRequest req{log_.committed(), m.from, m.context};
  if (cfg_.read_only_option == ReadOnlyOption::kLeaseBased && LeaseValid(l)) {
    RespondToRead(req, req.index);
    return;
  }
  // The confirming round must start after the request arrived, so the rounds out (if any)
  // cannot confirm it: it waits for the next (see LeaderRole::read_round_due).
  if (l.read_only.Add(std::move(req), id_)) UpdateReadRoundDue(l);
}

void Raft::FlushReadRound() {
  LeaderRole* l = leader();
  if (l != nullptr && l->read_round_due) BroadcastHeartbeat(*l, {});
}

bool Raft::LeaseValid(const LeaderRole& l) const {
  if (l.lease_revoked || l.lead_transferee != kNoNode) return false;
  AckedTickIndexer acked(l.progress, id_, tick_now_);
  uint64_t start = config_.voters.CommittedIndex(acked);
  // Followers that acknowledged a message sent at `start` refuse votes until their clocks
  // advance election_ticks past its receipt; allow for clocks running faster than ours.
  uint64_t lease = static_cast<uint64_t>(cfg_.election_ticks - cfg_.lease_clock_drift_ticks);
  return start > 0 && tick_now_ < start + lease;
}

Status Raft::LeaderTransfer(LeaderRole& l, const Message& m) {
  NodeId transferee = m.from;
  auto it = l.progress.find(transferee);
  if (it == l.progress.end() || !config_.IsVoter(transferee)) {
    return Status::InvalidArgument(
        fmt::format("cannot transfer leadership to {}: not a voter", transferee.value()));
  }
  if (transferee == id_) return Status::Ok();                // already the leader
  if (l.lead_transferee == transferee) return Status::Ok();  // already in progress
  if (l.lead_transferee != kNoNode) {
    logger_.Info("event=transfer_aborted transferee={} reason=superseded",
                 l.lead_transferee.value());
    AbortLeaderTransfer(l);
  }
  logger_.Info("event=transfer_start transferee={} match={} last_index={}", transferee.value(),
               it->second.match.value(), log_.LastIndex().value());
  // The transfer must finish within one election timeout, or it is abandoned (TickHeartbeat).
  election_elapsed_ = 0;
  l.lead_transferee = transferee;
  if (it->second.match == log_.LastIndex()) {
    SendTimeoutNow(l, transferee);
  } else {
    MaybeSendAppend(l, transferee, true);
  }
  return Status::Ok();
}

void Raft::AbortLeaderTransfer(LeaderRole& l) { l.lead_transferee = kNoNode; }

bool Raft::QuorumActive(LeaderRole& l) const {
  std::map<NodeId, bool> active;
  for (auto& [id, pr] : l.progress) {
    if (id == id_) {
      active.emplace(id, true);
      continue;
    }
    if (!pr.is_learner) active.emplace(id, pr.recent_active);
    pr.recent_active = false;  // start the next round
  }
  return config_.voters.Vote(active) == VoteResult::kWon;
}

void Raft::SyncProgressWithConfig(LeaderRole& l) {
  std::set<NodeId> ids = config_.AllIds();
  for (auto it = l.progress.begin(); it != l.progress.end();) {
    it = ids.count(it->first) ? std::next(it) : l.progress.erase(it);
  }
  for (NodeId id : ids) {
    auto it = l.progress.find(id);
    if (it == l.progress.end()) {
      Progress pr(log_.LastIndex() + 1, cfg_.max_inflight_msgs, cfg_.max_inflight_bytes,
                  config_.IsLearner(id));
      // A new member counts as active so that check-quorum does not depose the leader
      // before the member had a chance to answer.
      pr.recent_active = true;
      l.progress.emplace(id, std::move(pr));
    } else {
      it->second.is_learner = config_.IsLearner(id);
    }
  }
}

}  // namespace synod::raft
