#include "raft/raw_node.h"

#include <algorithm>

#include "common/assert.h"

namespace synod::raft {

bool Ready::Empty() const {
  return !soft_state && !hard_state && !snapshot && entries.empty() && committed_entries.empty() &&
         read_states.empty() && aborted_reads.empty() && messages.empty() &&
         messages_after_persist.empty();
}

namespace {

// An append that carries no entries only moves the follower's commit index (or probes it).
// When a later append to the same follower in the same Ready carries a commit index at least as
// high, it does all of that too (and is answered likewise), so the empty one is dropped: the
// leader broadcasts the commit as soon as it advances, and under load new entries for the same
// followers are usually proposed before the Ready goes out. Dropping a message is always safe
// in Raft; this one is merely redundant.
void DropSupersededEmptyAppends(std::vector<Message>& msgs) {
  if (msgs.size() < 2) return;
  // (peer, term, commit) of the latest append seen walking backwards.
  struct Later {
    NodeId to;
    Term term;
    LogIndex commit;
  };
  std::vector<Later> later;
  std::vector<bool> drop(msgs.size(), false);
  bool any = false;
  for (size_t i = msgs.size(); i-- > 0;) {
    const Message& m = msgs[i];
    if (m.type != MessageType::kApp) continue;
    auto it =
        std::find_if(later.begin(), later.end(), [&](const Later& l) { return l.to == m.to; });
    if (it == later.end()) {
      later.push_back({m.to, m.term, m.commit});
      continue;
    }
    if (m.entries.empty() && it->term == m.term && it->commit >= m.commit) {
      drop[i] = true;
      any = true;
    }
  }
  if (!any) return;
  size_t out = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (drop[i]) continue;
    if (out != i) msgs[out] = std::move(msgs[i]);
    ++out;
  }
  msgs.resize(out);
}

}  // namespace

Result<std::unique_ptr<RawNode>> RawNode::Create(const Config& config) {
  SYNOD_RETURN_IF_ERROR(config.Validate());
  auto init = config.storage->InitialState();
  if (!init.ok()) return init.status();
  if (!MembershipConfig::FromConfState(init->second).ok()) {
    return Status::Corruption("raft: storage holds an invalid membership configuration");
  }
  const HardState& hs = init->first;
  if (hs.commit > config.storage->LastIndex()) {
    return Status::Corruption("raft: persisted commit index is beyond the persisted log");
  }
  if (config.applied > config.storage->LastIndex()) {
    return Status::Corruption("raft: applied index is beyond the persisted log");
  }
  return std::unique_ptr<RawNode>(new RawNode(config));
}

RawNode::RawNode(const Config& config) : raft_(config) {
  prev_soft_ = raft_.soft_state();
  prev_hard_ = raft_.hard_state();
  prev_synced_hard_ = prev_hard_;
}

void RawNode::Tick() { raft_.Tick(); }

Status RawNode::Campaign() {
  Message m;
  m.type = MessageType::kHup;
  m.from = raft_.id();
  return raft_.StepInPlace(m);
}

Status RawNode::Propose(std::string data) {
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_.id();
  Entry e;
  e.data = std::move(data);
  m.entries.push_back(std::move(e));
  return raft_.StepInPlace(m);
}

Status RawNode::ProposeBatch(std::vector<std::string> data) {
  SYNOD_ASSERT_MSG(!data.empty(), "raft: empty proposal batch");
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_.id();
  m.entries.resize(data.size());
  for (size_t i = 0; i < data.size(); ++i) m.entries[i].data = std::move(data[i]);
  return raft_.StepInPlace(m);
}

Status RawNode::ProposeConfChange(const ConfChange& cc) {
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_.id();
  Entry e;
  e.type = EntryType::kConfChange;
  e.data = cc.Encode();
  m.entries.push_back(std::move(e));
  return raft_.StepInPlace(m);
}

Result<ConfState> RawNode::ApplyConfChange(const ConfChange& cc) {
  return raft_.ApplyConfChange(cc);
}

Status RawNode::Step(Message m) {
  if (IsLocalMessage(m.type)) {
    return Status::InvalidArgument(
        fmt::format("raft: local message {} received from the network", MessageTypeName(m.type)));
  }
  // Structural checks on what the core asserts: a peer's bad message is an error, not a crash.
  if (m.type == MessageType::kProp && m.entries.empty()) {
    return Status::InvalidArgument("raft: proposal without entries");
  }
  if (m.type == MessageType::kSnap && !m.snapshot.has_value()) {
    return Status::InvalidArgument("raft: snapshot message without a snapshot");
  }
  for (size_t i = 0; m.type == MessageType::kApp && i < m.entries.size(); ++i) {
    if (m.entries[i].index != m.index + (i + 1)) {
      return Status::InvalidArgument("raft: append entries do not follow its index");
    }
  }
  if (IsResponseMessage(m.type) && raft_.role() == Role::kLeader &&
      raft_.progress(m.from) == nullptr) {
    return Status::NotFound(fmt::format("raft: response from non-member {}", m.from.value()));
  }
  return raft_.StepInPlace(m);
}

Status RawNode::ReadIndex(std::string context) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.from = raft_.id();
  m.context = std::move(context);
  return raft_.StepInPlace(m);
}

Status RawNode::TransferLeadership(NodeId transferee) {
  Message m;
  m.type = MessageType::kTransferLeader;
  m.from = transferee;
  if (raft_.role() != Role::kLeader) {
    if (raft_.lead() == kNoNode) return Status::ProposalDropped("no leader to transfer from");
    // Ask the leader on the transferee's behalf.
    m.to = raft_.lead();
  }
  return raft_.StepInPlace(m);
}

void RawNode::ReportUnreachable(NodeId id) {
  Message m;
  m.type = MessageType::kUnreachable;
  m.from = id;
  (void)raft_.StepInPlace(m);
}

void RawNode::ReportSnapshot(NodeId id, SnapshotStatus status) {
  Message m;
  m.type = MessageType::kSnapStatus;
  m.from = id;
  m.reject = status == SnapshotStatus::kFailure;
  (void)raft_.StepInPlace(m);
}

bool RawNode::HasReady() const {
  const Raft& r = raft_;
  if (r.soft_state() != prev_soft_) return true;
  HardState hs = r.hard_state();
  if (!hs.IsEmpty() && hs != prev_hard_) return true;
  const RaftLog& log = r.log();
  if (log.HasPendingSnapshot()) return true;
  if (!log.unstable().entries().empty() || log.HasNextCommittedEntries()) return true;
  return raft_.HasPendingOutput();
}

Ready RawNode::GetReady() {
  SYNOD_ASSERT_MSG(!ready_outstanding_, "raft: GetReady called before Advance");
  raft_.FlushReadRound();
  Ready rd;
  SoftState ss = raft_.soft_state();
  if (ss != prev_soft_) rd.soft_state = ss;
  HardState hs = raft_.hard_state();
  if (hs != prev_hard_) rd.hard_state = hs;
  RaftLog& log = raft_.mutable_log();
  if (log.HasPendingSnapshot()) rd.snapshot = log.unstable().snapshot();
  rd.entries = log.unstable().entries();
  if (log.HasNextCommittedEntries()) rd.committed_entries = log.NextCommittedEntries();
  rd.messages.swap(raft_.msgs());
  DropSupersededEmptyAppends(rd.messages);
  rd.messages_after_persist.swap(raft_.msgs_after_persist());
  // The next round most likely sends about as many messages: reserving now saves regrowing
  // the queues (and moving every message again) log2(n) times per round.
  raft_.msgs().reserve(rd.messages.size());
  raft_.msgs_after_persist().reserve(rd.messages_after_persist.size());
  rd.read_states.swap(raft_.read_states());
  rd.aborted_reads.swap(raft_.aborted_reads());
  rd.must_sync = !rd.entries.empty() || rd.snapshot.has_value() ||
                 (rd.hard_state && (hs.term != prev_hard_.term || hs.vote != prev_hard_.vote));
  // A commit index handed out earlier without must_sync may not be durable. A synced Ready
  // carries it again, so that entries never become durable without the commit index known
  // when they were appended: a node holding a membership change must durably know that the
  // change before it committed, or after a crash it could campaign with a configuration two
  // changes old, whose quorums need not overlap the current ones.
  if (rd.must_sync && !rd.hard_state && hs != prev_synced_hard_) rd.hard_state = hs;
  if (rd.must_sync) prev_synced_hard_ = hs;

  // Accept the Ready: what it hands out is not handed out again.
  prev_soft_ = ss;
  prev_hard_ = hs;
  if (!rd.committed_entries.empty()) {
    log.AcceptApplying(rd.committed_entries.back().index);
    uint64_t bytes = 0;
    for (const Entry& e : rd.committed_entries) bytes += e.PayloadBytes();
    raft_.ReduceUncommittedBytes(bytes);
  }
  ready_outstanding_ = true;
  return rd;
}

void RawNode::Advance(const Ready& rd) {
  SYNOD_ASSERT_MSG(ready_outstanding_, "raft: Advance without a Ready");
  ready_outstanding_ = false;
  if (rd.snapshot) raft_.OnSnapshotPersisted(rd.snapshot->meta.index);
  if (!rd.entries.empty()) raft_.OnPersisted(rd.entries.back().index, rd.entries.back().term);
  if (rd.snapshot) raft_.OnApplied(rd.snapshot->meta.index);
  if (!rd.committed_entries.empty()) raft_.OnApplied(rd.committed_entries.back().index);
}

}  // namespace synod::raft
