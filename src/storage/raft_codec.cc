#include "storage/raft_codec.h"

#include <fmt/format.h>

#include <limits>
#include <utility>

#include "common/assert.h"

namespace synod::storage {
namespace {

pb::EntryType EntryTypeToProto(raft::EntryType t) {
  switch (t) {
    case raft::EntryType::kNormal:
      return pb::ENTRY_NORMAL;
    case raft::EntryType::kConfChange:
      return pb::ENTRY_CONF_CHANGE;
  }
  SYNOD_UNREACHABLE();
}

Result<raft::EntryType> EntryTypeFromProto(int t) {
  switch (t) {
    case pb::ENTRY_NORMAL:
      return raft::EntryType::kNormal;
    case pb::ENTRY_CONF_CHANGE:
      return raft::EntryType::kConfChange;
    default:
      return Status::InvalidArgument(fmt::format("unknown entry type {}", t));
  }
}

// One switch per direction, with no default on the raft side: adding a raft::MessageType
// without mapping it is a compile error (-Wswitch under -Werror).
pb::MessageType MessageTypeToProto(raft::MessageType t) {
  using T = raft::MessageType;
  switch (t) {
    case T::kHup:
      return pb::MSG_HUP;
    case T::kBeat:
      return pb::MSG_BEAT;
    case T::kProp:
      return pb::MSG_PROP;
    case T::kUnreachable:
      return pb::MSG_UNREACHABLE;
    case T::kSnapStatus:
      return pb::MSG_SNAP_STATUS;
    case T::kCheckQuorum:
      return pb::MSG_CHECK_QUORUM;
    case T::kApp:
      return pb::MSG_APP;
    case T::kAppResp:
      return pb::MSG_APP_RESP;
    case T::kVote:
      return pb::MSG_VOTE;
    case T::kVoteResp:
      return pb::MSG_VOTE_RESP;
    case T::kPreVote:
      return pb::MSG_PRE_VOTE;
    case T::kPreVoteResp:
      return pb::MSG_PRE_VOTE_RESP;
    case T::kSnap:
      return pb::MSG_SNAP;
    case T::kHeartbeat:
      return pb::MSG_HEARTBEAT;
    case T::kHeartbeatResp:
      return pb::MSG_HEARTBEAT_RESP;
    case T::kTransferLeader:
      return pb::MSG_TRANSFER_LEADER;
    case T::kTimeoutNow:
      return pb::MSG_TIMEOUT_NOW;
    case T::kReadIndex:
      return pb::MSG_READ_INDEX;
    case T::kReadIndexResp:
      return pb::MSG_READ_INDEX_RESP;
  }
  SYNOD_UNREACHABLE();
}

Result<raft::MessageType> MessageTypeFromProto(int t) {
  using T = raft::MessageType;
  switch (t) {
    case pb::MSG_HUP:
      return T::kHup;
    case pb::MSG_BEAT:
      return T::kBeat;
    case pb::MSG_PROP:
      return T::kProp;
    case pb::MSG_UNREACHABLE:
      return T::kUnreachable;
    case pb::MSG_SNAP_STATUS:
      return T::kSnapStatus;
    case pb::MSG_CHECK_QUORUM:
      return T::kCheckQuorum;
    case pb::MSG_APP:
      return T::kApp;
    case pb::MSG_APP_RESP:
      return T::kAppResp;
    case pb::MSG_VOTE:
      return T::kVote;
    case pb::MSG_VOTE_RESP:
      return T::kVoteResp;
    case pb::MSG_PRE_VOTE:
      return T::kPreVote;
    case pb::MSG_PRE_VOTE_RESP:
      return T::kPreVoteResp;
    case pb::MSG_SNAP:
      return T::kSnap;
    case pb::MSG_HEARTBEAT:
      return T::kHeartbeat;
    case pb::MSG_HEARTBEAT_RESP:
      return T::kHeartbeatResp;
    case pb::MSG_TRANSFER_LEADER:
      return T::kTransferLeader;
    case pb::MSG_TIMEOUT_NOW:
      return T::kTimeoutNow;
    case pb::MSG_READ_INDEX:
      return T::kReadIndex;
    case pb::MSG_READ_INDEX_RESP:
      return T::kReadIndexResp;
    default:
      return Status::InvalidArgument(fmt::format("unknown message type {}", t));
  }
}

void IdsToProto(const std::set<NodeId>& ids, google::protobuf::RepeatedField<uint64_t>* out) {
  out->Reserve(static_cast<int>(ids.size()));
  for (const NodeId id : ids) out->Add(id.value());
}

// A set of node ids: each non-zero (0 is kNoNode) and listed once (an encoder never repeats
// one, so a repeat means the bytes are not what we wrote).
Status IdsFromProto(const google::protobuf::RepeatedField<uint64_t>& ids, const char* what,
                    std::set<NodeId>* out) {
  for (const uint64_t id : ids) {
    if (id == 0) return Status::InvalidArgument(fmt::format("node id 0 in {}", what));
    if (!out->insert(NodeId(id)).second) {
      return Status::InvalidArgument(fmt::format("node id {} repeated in {}", id, what));
    }
  }
  return Status::Ok();
}

}  // namespace

void ToProto(const raft::Entry& e, pb::Entry* out) {
  out->Clear();
  out->set_term(e.term.value());
  out->set_index(e.index.value());
  out->set_type(EntryTypeToProto(e.type));
  out->set_data(e.data);
}

void ToProto(const raft::HardState& hs, pb::HardState* out) {
  out->Clear();
  out->set_term(hs.term.value());
  out->set_vote(hs.vote.value());
  out->set_commit(hs.commit.value());
}

void ToProto(const raft::ConfState& cs, pb::ConfState* out) {
  out->Clear();
  IdsToProto(cs.voters, out->mutable_voters());
  IdsToProto(cs.voters_outgoing, out->mutable_voters_outgoing());
  IdsToProto(cs.learners, out->mutable_learners());
  IdsToProto(cs.learners_next, out->mutable_learners_next());
  out->set_auto_leave(cs.auto_leave);
}

void ToProto(const raft::SnapshotMeta& meta, pb::SnapshotMeta* out) {
  out->Clear();
  out->set_index(meta.index.value());
  out->set_term(meta.term.value());
  ToProto(meta.conf_state, out->mutable_conf_state());
}

void ToProto(const raft::Snapshot& snap, pb::Snapshot* out) {
  out->Clear();
  ToProto(snap.meta, out->mutable_meta());
  out->set_data(snap.data);
}

void ToProto(const raft::Message& m, pb::Message* out) {
  out->Clear();
  out->set_type(MessageTypeToProto(m.type));
  out->set_to(m.to.value());
  out->set_from(m.from.value());
  out->set_term(m.term.value());
  out->set_log_term(m.log_term.value());
  out->set_index(m.index.value());
  out->mutable_entries()->Reserve(static_cast<int>(m.entries.size()));
  for (const raft::Entry& e : m.entries) ToProto(e, out->add_entries());
  out->set_commit(m.commit.value());
  if (m.snapshot.has_value()) ToProto(*m.snapshot, out->mutable_snapshot());
  out->set_reject(m.reject);
  out->set_reject_hint(m.reject_hint.value());
  out->set_context(m.context);
  out->set_sent_tick(m.sent_tick);
}

Result<raft::Entry> FromProto(pb::Entry&& p) {
  Result<raft::EntryType> type = EntryTypeFromProto(p.type());
  if (!type.ok()) return type.status();
  raft::Entry e;
  e.term = Term(p.term());
  e.index = LogIndex(p.index());
  e.type = *type;
  e.data = std::move(*p.mutable_data());
  return e;
}

Result<raft::Entry> FromProto(const pb::Entry& p) { return FromProto(pb::Entry(p)); }

Result<raft::HardState> FromProto(const pb::HardState& p) {
  raft::HardState hs;
  hs.term = Term(p.term());
  hs.vote = NodeId(p.vote());
  hs.commit = LogIndex(p.commit());
  return hs;
}

Result<raft::ConfState> FromProto(const pb::ConfState& p) {
  raft::ConfState cs;
  SYNOD_RETURN_IF_ERROR(IdsFromProto(p.voters(), "voters", &cs.voters));
  SYNOD_RETURN_IF_ERROR(IdsFromProto(p.voters_outgoing(), "voters_outgoing", &cs.voters_outgoing));
  SYNOD_RETURN_IF_ERROR(IdsFromProto(p.learners(), "learners", &cs.learners));
  SYNOD_RETURN_IF_ERROR(IdsFromProto(p.learners_next(), "learners_next", &cs.learners_next));
  cs.auto_leave = p.auto_leave();
  return cs;
}

Result<raft::SnapshotMeta> FromProto(const pb::SnapshotMeta& p) {
  Result<raft::ConfState> cs = FromProto(p.conf_state());
  if (!cs.ok()) return cs.status();
  raft::SnapshotMeta meta;
  meta.index = LogIndex(p.index());
  meta.term = Term(p.term());
  meta.conf_state = std::move(*cs);
  return meta;
}

Result<raft::Snapshot> FromProto(pb::Snapshot&& p) {
  Result<raft::SnapshotMeta> meta = FromProto(p.meta());
  if (!meta.ok()) return meta.status();
  raft::Snapshot snap;
  snap.meta = std::move(*meta);
  snap.data = std::move(*p.mutable_data());
  return snap;
}

Result<raft::Snapshot> FromProto(const pb::Snapshot& p) { return FromProto(pb::Snapshot(p)); }

namespace {

// `follows(entry, previous or nullptr)` names what is wrong with an entry's index, or "".
template <class Check>
Result<std::vector<raft::Entry>> EntriesFromProtoChecked(
    google::protobuf::RepeatedPtrField<pb::Entry>* entries, const Check& check) {
  std::vector<raft::Entry> out;
  out.reserve(static_cast<size_t>(entries->size()));
  for (pb::Entry& p : *entries) {
    Result<raft::Entry> e = FromProto(std::move(p));
    if (!e.ok()) return e.status();
    std::string wrong = check(*e, out.empty() ? nullptr : &out.back());
    if (!wrong.empty()) return Status::InvalidArgument(std::move(wrong));
    out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace

Result<std::vector<raft::Entry>> EntriesFromProto(
    google::protobuf::RepeatedPtrField<pb::Entry>* entries) {
  return EntriesFromProtoChecked(entries,
                                 [](const raft::Entry& e, const raft::Entry* prev) -> std::string {
                                   if (prev == nullptr || e.index == prev->index + 1) return {};
                                   return fmt::format("entry index {} does not follow {}",
                                                      e.index.value(), prev->index.value());
                                 });
}

Result<std::vector<raft::Entry>> UnindexedEntriesFromProto(
    google::protobuf::RepeatedPtrField<pb::Entry>* entries) {
  return EntriesFromProtoChecked(
      entries, [](const raft::Entry& e, const raft::Entry*) -> std::string {
        if (e.index == LogIndex(0)) return {};
        return fmt::format("a proposed entry carries index {}", e.index.value());
      });
}

Result<raft::Message> FromProto(pb::Message&& p) {
  Result<raft::MessageType> type = MessageTypeFromProto(p.type());
  if (!type.ok()) return type.status();
  // A proposal's entries have no index yet (the leader assigns them): a batch of them is a run
  // of zeros, not of consecutive indexes.
  Result<std::vector<raft::Entry>> entries = *type == raft::MessageType::kProp
                                                 ? UnindexedEntriesFromProto(p.mutable_entries())
                                                 : EntriesFromProto(p.mutable_entries());
  if (!entries.ok()) return entries.status();
  raft::Message m;
  m.type = *type;
  m.to = NodeId(p.to());
  m.from = NodeId(p.from());
  m.term = Term(p.term());
  m.log_term = Term(p.log_term());
  m.index = LogIndex(p.index());
  m.entries = std::move(*entries);
  m.commit = LogIndex(p.commit());
  if (p.has_snapshot()) {
    Result<raft::Snapshot> snap = FromProto(std::move(*p.mutable_snapshot()));
    if (!snap.ok()) return snap.status();
    m.snapshot = std::move(*snap);
  }
  m.reject = p.reject();
  m.reject_hint = LogIndex(p.reject_hint());
  m.context = std::move(*p.mutable_context());
  m.sent_tick = p.sent_tick();
  return m;
}

Result<raft::Message> FromProto(const pb::Message& p) { return FromProto(pb::Message(p)); }

std::string EncodeMessage(const raft::Message& m) {
  pb::Message p;
  ToProto(m, &p);
  std::string out;
  const bool serialized = p.SerializeToString(&out);
  SYNOD_ASSERT_MSG(serialized, "serializing a raft message failed");
  return out;
}

Result<raft::Message> DecodeMessage(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Status::InvalidArgument("raft message: larger than 2 GiB");
  }
  pb::Message p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument("raft message: not a valid protobuf encoding");
  }
  Result<raft::Message> m = FromProto(std::move(p));
  if (!m.ok())
    return Status::InvalidArgument(fmt::format("raft message: {}", m.status().message()));
  return m;
}

}  // namespace synod::storage
