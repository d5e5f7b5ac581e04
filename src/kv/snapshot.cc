// StateMachine's Snapshot, Restore and Digest: the whole replicated state in and out.
//
// The snapshot format is described in kv.proto: a SnapshotHeader, the entries in key order and
// the sessions in client id order, each record a varint byte length followed by the message.
// Records rather than one message because protobuf limits a message to 2 GiB.

#include <climits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/assert.h"
#include "kv/kv.pb.h"
#include "kv/state_machine.h"

namespace synod::kv {

namespace {

constexpr uint32_t kSnapshotFormatVersion = 2;
// Replies nest (EXEC of arrays): bounded so a crafted record cannot recurse deeply.
constexpr int kReplyDepthMax = 8;

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendRecord(const google::protobuf::MessageLite& m, std::string* out) {
  const size_t bytes = m.ByteSizeLong();
  SYNOD_ASSERT_MSG(bytes <= INT_MAX, "snapshot record above protobuf's 2 GiB limit");
  AppendVarint(bytes, out);
  const bool appended = m.AppendToString(out);
  SYNOD_ASSERT(appended);
}

// Reads the records of a snapshot front to back. Every failure (truncation, an overlong
// varint, a record that does not parse) is reported, never asserted: the bytes come from disk
// or from another node.
class RecordReader {
 public:
  explicit RecordReader(std::string_view in) : in_(in) {}

  bool Next(google::protobuf::MessageLite* m) {
    uint64_t bytes = 0;
    if (!ReadVarint(&bytes) || bytes > in_.size() || bytes > INT_MAX) return false;
    const bool parsed = m->ParseFromArray(in_.data(), static_cast<int>(bytes));
    in_.remove_prefix(bytes);
    return parsed;
  }

  bool done() const { return in_.empty(); }

 private:
  bool ReadVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {  // at most 10 bytes
      if (in_.empty()) return false;
      const auto byte = static_cast<uint8_t>(in_.front());
      in_.remove_prefix(1);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  std::string_view in_;
};

void ReplyToProto(const Reply& reply, pb::Reply* m) {
  m->set_code(static_cast<uint32_t>(reply.code));
  m->set_type(static_cast<uint32_t>(reply.type));
  if (reply.value.has_value()) m->set_value(*reply.value);
  m->set_success(reply.success);
  m->set_number(reply.number);
  for (const Reply& sub : reply.replies) ReplyToProto(sub, m->add_replies());
}

bool ReplyFromProto(pb::Reply* m, Reply* reply, int depth = 0) {
  if (m->code() > kReplyCodeMax || m->type() > kReplyTypeMax || depth > kReplyDepthMax) {
    return false;
  }
  reply->code = static_cast<ReplyCode>(m->code());
  reply->type = static_cast<ReplyType>(m->type());
  if (m->has_value()) reply->value = std::move(*m->mutable_value());
  reply->success = m->success();
  reply->number = m->number();
  reply->replies.resize(static_cast<size_t>(m->replies_size()));
  for (int i = 0; i < m->replies_size(); ++i) {
    if (!ReplyFromProto(m->mutable_replies(i), &reply->replies[static_cast<size_t>(i)],
                        depth + 1)) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string EncodeReply(const Reply& reply) {
  pb::Reply m;
  ReplyToProto(reply, &m);
  return m.SerializeAsString();
}

Result<Reply> DecodeReply(std::string_view data) {
  pb::Reply m;
  Reply out;
  if (!m.ParseFromArray(data.data(), static_cast<int>(data.size())) || !ReplyFromProto(&m, &out)) {
    return Status::InvalidArgument("not a kv reply");
  }
  return out;
}

namespace {

pb::StateMeta MetaToProto(const internal::State& state) {
  pb::StateMeta m;
  m.set_clock_ms(state.clock_ms);
  m.set_tombstone_floor(state.keys.tombstone_floor().value());
  m.set_flush_index(state.keys.flush_index().value());
  for (const auto& [k, v] : state.config) (*m.mutable_config())[k] = v;
  if (state.range) {
    m.set_has_range(true);
    m.set_range_first(state.range->first);
    m.set_range_last(state.range->last);
  }
  if (state.frozen) {
    m.set_frozen_into(state.frozen->into);
    m.set_frozen_token(state.frozen->token);
    m.set_frozen_index(state.frozen->index.value());
  }
  for (uint64_t t : state.merged_tokens) m.add_merged_tokens(t);
  for (uint64_t t : state.cancelled_tokens) m.add_cancelled_tokens(t);
  m.set_mergeable(state.mergeable);
  for (const Absorbed& a : state.absorbed) {
    pb::AbsorbedShard* out = m.add_absorbed();
    out->set_group(a.group);
    out->set_first(a.range.first);
    out->set_last(a.range.last);
    out->set_epoch(a.epoch);
  }
  return m;
}

void MetaFromProto(const pb::StateMeta& m, internal::State* state) {
  state->clock_ms = m.clock_ms();
  state->keys.LoadMeta(LogIndex(m.tombstone_floor()), LogIndex(m.flush_index()));
  for (const auto& [k, v] : m.config()) state->config.emplace(k, v);
  // Out-of-space values are clamped rather than trusted (MetaRangeValid says whether).
  if (m.has_range()) {
    state->range = SlotRange{static_cast<uint16_t>(std::min<uint32_t>(m.range_first(), 16383)),
                             static_cast<uint16_t>(std::min<uint32_t>(m.range_last(), 16383))};
  }
  if (m.frozen_token() != 0) {
    state->frozen = internal::Frozen{m.frozen_into(), m.frozen_token(), LogIndex(m.frozen_index())};
  }
  // Bounded as the state machine keeps them (a longer list keeps its latest).
  state->merged_tokens.assign(m.merged_tokens().begin(), m.merged_tokens().end());
  state->cancelled_tokens.assign(m.cancelled_tokens().begin(), m.cancelled_tokens().end());
  KeepLatestMergeRecords(state->merged_tokens);
  KeepLatestMergeRecords(state->cancelled_tokens);
  state->mergeable = m.mergeable();
  // Slots clamped (MetaRangeValid says whether they were valid); bounded likewise.
  for (const pb::AbsorbedShard& a : m.absorbed()) {
    const auto first = static_cast<uint16_t>(std::min<uint32_t>(a.first(), kSlotCount - 1));
    const auto last = static_cast<uint16_t>(std::min<uint32_t>(a.last(), kSlotCount - 1));
    state->absorbed.push_back(Absorbed{a.group(), SlotRange{first, last}, a.epoch()});
  }
  KeepLatestMergeRecords(state->absorbed);
}

bool MetaRangeValid(const pb::StateMeta& m) {
  for (const pb::AbsorbedShard& a : m.absorbed()) {
    if (a.first() > a.last() || a.last() >= kSlotCount) return false;
  }
  return !m.has_range() || (m.range_first() <= m.range_last() && m.range_last() < kSlotCount);
}

// Values in keyspace order, then tombstones in key order.
Status ReadEntries(RecordReader& reader, uint64_t count, const Options& options,
                   internal::State* state) {
  pb::SnapshotEntry m;
  std::optional<Keyspace::Key> last_value;
  std::optional<std::string> last_tombstone;
  for (uint64_t i = 0; i < count; ++i) {  // bounded: each record consumes input
    if (!reader.Next(&m)) return Status::Corruption("kv snapshot: bad entry record");
    if (m.key().size() > options.key_bytes_max || m.value().size() > options.value_bytes_max) {
      return Status::InvalidArgument("kv snapshot: key or value above this machine's bounds");
    }
    if (state->range && !state->range->Contains(KeySlot(m.key()))) {
      return Status::Corruption("kv snapshot: a key outside the shard's slots");
    }
    if (m.expire_ms() < 0 || m.version() > state->applied_index.value()) {
      return Status::Corruption("kv snapshot: an expiry or version out of range");
    }
    if (m.tombstone()) {
      if (last_tombstone && m.key() <= *last_tombstone) {
        return Status::Corruption("kv snapshot: tombstones not in strictly increasing order");
      }
      last_tombstone = m.key();
      if (!state->keys.LoadTombstone(std::move(*m.mutable_key()), LogIndex(m.version()))) {
        return Status::Corruption("kv snapshot: a tombstone for a live key");
      }
      continue;
    }
    Keyspace::Key key{KeyPosition(m.key()), m.key()};
    if (last_tombstone || (last_value && !Keyspace::Less()(*last_value, key))) {
      return Status::Corruption("kv snapshot: keys not in strictly increasing order");
    }
    Value v{.bytes = std::move(*m.mutable_value()),
            .expire_ms = m.expire_ms(),
            .version = LogIndex(m.version())};
    if (!state->keys.LoadValue(std::move(*m.mutable_key()), std::move(v))) {
      return Status::Corruption("kv snapshot: a key appears twice");
    }
    last_value = std::move(key);
  }
  return Status::Ok();
}

Status ReadSessions(RecordReader& reader, uint64_t count, internal::State* state) {
  pb::SnapshotSession m;
  for (uint64_t i = 0; i < count; ++i) {  // bounded: each record consumes input
    if (!reader.Next(&m)) return Status::Corruption("kv snapshot: bad session record");
    const uint64_t client_id = m.client_id();
    if (client_id == 0 ||
        (!state->sessions.empty() && client_id <= state->sessions.rbegin()->first)) {
      return Status::Corruption("kv snapshot: client ids not in strictly increasing order");
    }
    const LogIndex last_index(m.last_index());
    if (m.seq() == 0 || last_index == LogIndex(0) || last_index > state->applied_index) {
      return Status::Corruption("kv snapshot: session seq or index out of range");
    }
    internal::Session session{.seq = m.seq(), .last_index = last_index, .reply = Reply()};
    if (!ReplyFromProto(m.mutable_reply(), &session.reply)) {
      return Status::Corruption("kv snapshot: unknown reply code");
    }
    state->session_order.emplace(last_index, client_id);
    state->sessions.emplace_hint(state->sessions.end(), client_id, std::move(session));
  }
  return Status::Ok();
}

// FNV-1a, 64 bits: tiny, stable by definition (unlike std::hash) and good enough to tell
// replicas apart; it is a consistency check, not a defence against an adversary.
class Fnv1a {
 public:
  void Bytes(std::string_view s) {
    for (char c : s) {
      hash_ ^= static_cast<uint8_t>(c);
      hash_ *= 0x100000001b3ull;
    }
  }
  // Little-endian whatever the host, so the digest is the same everywhere.
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      hash_ ^= (v >> (8 * i)) & 0xff;
      hash_ *= 0x100000001b3ull;
    }
  }
  // Length-prefixed, so ("ab","c") and ("a","bc") hash differently.
  void String(std::string_view s) {
    U64(s.size());
    Bytes(s);
  }
  uint64_t hash() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace

std::string StateMachine::Snapshot() const {
  std::string out;
  pb::SnapshotHeader header;
  header.set_format_version(kSnapshotFormatVersion);
  header.set_applied_index(state_.applied_index.value());
  header.set_entry_count(state_.keys.size() + state_.keys.tombstone_count());
  header.set_session_count(state_.sessions.size());
  *header.mutable_meta() = MetaToProto(state_);
  AppendRecord(header, &out);

  pb::SnapshotEntry entry;
  for (const auto& [key, value] : state_.keys.map()) {
    entry.set_key(key.bytes);
    entry.set_value(value.bytes);
    entry.set_expire_ms(value.expire_ms);
    entry.set_version(value.version.value());
    entry.set_tombstone(false);
    AppendRecord(entry, &out);
  }
  for (const auto& [key, index] : state_.keys.tombstones()) {
    entry.Clear();
    entry.set_key(key);
    entry.set_version(index.value());
    entry.set_tombstone(true);
    AppendRecord(entry, &out);
  }
  pb::SnapshotSession session;
  for (const auto& [client_id, s] : state_.sessions) {
    session.Clear();
    session.set_client_id(client_id);
    session.set_seq(s.seq);
    session.set_last_index(s.last_index.value());
    ReplyToProto(s.reply, session.mutable_reply());
    AppendRecord(session, &out);
  }
  return out;
}

Status StateMachine::Restore(std::string_view snapshot) {
  RecordReader reader(snapshot);
  pb::SnapshotHeader header;
  if (!reader.Next(&header)) return Status::Corruption("kv snapshot: bad header record");
  if (header.format_version() != kSnapshotFormatVersion) {
    return Status::Corruption("kv snapshot: unknown format version");
  }
  if (header.session_count() > options_.sessions_max) {
    return Status::InvalidArgument("kv snapshot: more sessions than sessions_max");
  }
  // Build the new state aside and swap it in only once all of it checked out.
  internal::State next;
  next.keys = Keyspace(options_.tombstones_max);
  next.applied_index = LogIndex(header.applied_index());
  if (!MetaRangeValid(header.meta())) return Status::Corruption("kv snapshot: bad slot range");
  MetaFromProto(header.meta(), &next);
  SYNOD_RETURN_IF_ERROR(ReadEntries(reader, header.entry_count(), options_, &next));
  SYNOD_RETURN_IF_ERROR(ReadSessions(reader, header.session_count(), &next));
  if (!reader.done()) return Status::Corruption("kv snapshot: bytes after the last record");
  state_ = std::move(next);
  CheckInvariants();
  // Every key of the old state may be gone: a tracking host must replace all it stored.
  if (track_changes_) {
    changes_reset_ = true;
    touched_keys_.clear();
    touched_sessions_.clear();
  }
  AttachTracking();
  return Status::Ok();
}

std::string StateMachine::EncodeSession(const internal::Session& session) {
  pb::SnapshotSession m;
  m.set_seq(session.seq);
  m.set_last_index(session.last_index.value());
  ReplyToProto(session.reply, m.mutable_reply());
  std::string out;
  const bool serialized = m.SerializeToString(&out);
  SYNOD_ASSERT(serialized);
  return out;
}

Result<internal::Session> StateMachine::DecodeSession(std::string_view bytes) {
  pb::SnapshotSession m;
  if (bytes.size() > INT_MAX || !m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption("kv session: bytes do not parse");
  }
  if (m.seq() == 0 || m.last_index() == 0 || m.client_id() != 0) {
    return Status::Corruption("kv session: seq, index or client id out of range");
  }
  internal::Session session{.seq = m.seq(), .last_index = LogIndex(m.last_index()), .reply = {}};
  if (!ReplyFromProto(m.mutable_reply(), &session.reply)) {
    return Status::Corruption("kv session: unknown reply code");
  }
  return session;
}

Result<std::optional<SlotRange>> SnapshotRange(std::string_view snapshot) {
  RecordReader reader(snapshot);
  pb::SnapshotHeader header;
  if (!reader.Next(&header) || !MetaRangeValid(header.meta())) {
    return Status::Corruption("kv snapshot: bad header record");
  }
  internal::State s;
  MetaFromProto(header.meta(), &s);
  return s.range;
}

Result<std::optional<SlotRange>> MetaRange(std::string_view meta) {
  if (meta.empty()) return std::optional<SlotRange>();
  pb::StateMeta m;
  if (meta.size() > INT_MAX || !m.ParseFromArray(meta.data(), static_cast<int>(meta.size())) ||
      !MetaRangeValid(m)) {
    return Status::Corruption("kv state: the meta record does not parse");
  }
  internal::State s;
  MetaFromProto(m, &s);
  return s.range;
}

std::string StateMachine::EncodeMeta() const {
  std::string out;
  const bool serialized = MetaToProto(state_).SerializeToString(&out);
  SYNOD_ASSERT(serialized);
  // Never "": LoadState reads "" as a store written before meta existed (plain values), and
  // proto3 writes nothing at all for an all-default StateMeta (clock 0, no flush, no config).
  // So write its clock_ms = 0 explicitly then (field 1, varint 0): it parses as the same meta.
  if (out.empty()) out.assign("\x08\x00", 2);
  return out;
}

Status StateMachine::LoadState(
    LogIndex applied, std::string_view meta,
    const std::function<bool(std::string* key, std::string* value)>& next_data,
    const std::function<bool(uint64_t* client_id, std::string* session)>& next_session) {
  // Built aside and swapped in only once all of it checked out, as Restore does.
  internal::State next;
  next.keys = Keyspace(options_.tombstones_max);
  next.applied_index = applied;
  // A store written before meta existed holds plain values (no expiry, no versions).
  const bool legacy = meta.empty();
  if (!legacy) {
    pb::StateMeta m;
    if (meta.size() > INT_MAX || !m.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) {
      return Status::Corruption("kv state: the meta record does not parse");
    }
    if (!MetaRangeValid(m)) return Status::Corruption("kv state: bad slot range");
    MetaFromProto(m, &next);
  }
  std::string key;
  std::string value;
  // Bounded by the records the caller holds: each call consumes one.
  while (next_data(&key, &value)) {
    if (key.size() > options_.key_bytes_max) {
      return Status::InvalidArgument("kv state: key or value above this machine's bounds");
    }
    // A record of a slot this shard does not own is another shard's (the store may have been
    // read over a wider span than the shard has since a split): not ours to load.
    if (next.range && !next.range->Contains(KeySlot(key))) continue;
    DecodedRecord record;
    if (legacy) {
      record.value.bytes = std::move(value);
    } else {
      Result<DecodedRecord> r = DecodeRecord(value);
      if (!r.ok()) return r.status();
      record = std::move(*r);
    }
    if (record.value.bytes.size() > options_.value_bytes_max) {
      return Status::InvalidArgument("kv state: key or value above this machine's bounds");
    }
    if (record.value.version > applied) {
      return Status::Corruption("kv state: a key's version above the applied index");
    }
    const bool added = record.tombstone
                           ? next.keys.LoadTombstone(std::move(key), record.value.version)
                           : next.keys.LoadValue(std::move(key), std::move(record.value));
    if (!added) return Status::Corruption("kv state: a key appears twice");
  }
  uint64_t client_id = 0;
  std::string bytes;
  while (next_session(&client_id, &bytes)) {  // bounded likewise
    if (next.sessions.size() >= options_.sessions_max) {
      return Status::InvalidArgument("kv state: more sessions than sessions_max");
    }
    Result<internal::Session> session = DecodeSession(bytes);
    if (!session.ok()) return session.status();
    if (client_id == 0 || next.sessions.count(client_id) != 0) {
      return Status::Corruption("kv state: client id 0 or repeated");
    }
    if (session->last_index > applied) {
      return Status::Corruption("kv state: a session index above the applied index");
    }
    next.session_order.emplace(session->last_index, client_id);
    next.sessions.emplace(client_id, std::move(*session));
  }
  state_ = std::move(next);
  CheckInvariants();
  changes_reset_ = false;
  touched_keys_.clear();
  touched_sessions_.clear();
  changes_applied_ = applied;
  AttachTracking();
  return Status::Ok();
}

// The digest is FNV-1a over a canonical encoding: every integer as 8 little-endian bytes, every
// string as its length (so encoded) then its bytes, in this order: the tag string
// "synod.kv.state.v2", applied index, clock, tombstone floor, flush index, config count and each
// (name, value), key count, each (key, bytes, expire_ms, version) in keyspace order, tombstone
// count and each (key, index) in key order, session count, each session in client id order as
// (client_id, seq, last_index, reply), a reply being (code, type, has a value (0/1), value or
// "", success (0/1), number, sub-reply count, each sub-reply likewise). Changing any of this
// changes every digest: bump the tag.
namespace {
void HashReply(const Reply& r, Fnv1a& h) {
  h.U64(static_cast<uint64_t>(r.code));
  h.U64(static_cast<uint64_t>(r.type));
  h.U64(r.value.has_value() ? 1 : 0);
  h.String(r.value ? std::string_view(*r.value) : std::string_view());
  h.U64(r.success ? 1 : 0);
  h.U64(static_cast<uint64_t>(r.number));
  h.U64(r.replies.size());
  for (const Reply& sub : r.replies) HashReply(sub, h);
}
}  // namespace

uint64_t StateMachine::Digest() const {
  Fnv1a h;
  h.String("synod.kv.state.v2");
  h.U64(state_.applied_index.value());
  h.U64(static_cast<uint64_t>(state_.clock_ms));
  h.U64(state_.keys.tombstone_floor().value());
  h.U64(state_.keys.flush_index().value());
  h.U64(state_.config.size());
  for (const auto& [k, v] : state_.config) {
    h.String(k);
    h.String(v);
  }
  h.U64(state_.keys.size());
  for (const auto& [key, value] : state_.keys.map()) {
    h.String(key.bytes);
    h.String(value.bytes);
    h.U64(static_cast<uint64_t>(value.expire_ms));
    h.U64(value.version.value());
  }
  h.U64(state_.keys.tombstone_count());
  for (const auto& [key, index] : state_.keys.tombstones()) {
    h.String(key);
    h.U64(index.value());
  }
  h.U64(state_.sessions.size());
  // The range only when set, so that the digests of unsplit states stay what they were.
  if (state_.range) {
    h.String("range");
    h.U64(state_.range->first);
    h.U64(state_.range->last);
  }
  // Merges' state only when set, likewise.
  if (state_.frozen) {
    h.String("frozen");
    h.U64(state_.frozen->into);
    h.U64(state_.frozen->token);
    h.U64(state_.frozen->index.value());
  }
  if (!state_.merged_tokens.empty() || !state_.cancelled_tokens.empty() || state_.mergeable) {
    h.String("merges");
    h.U64(state_.merged_tokens.size());
    for (uint64_t t : state_.merged_tokens) h.U64(t);
    h.U64(state_.cancelled_tokens.size());
    for (uint64_t t : state_.cancelled_tokens) h.U64(t);
    h.U64(state_.mergeable ? 1 : 0);
  }
  if (!state_.absorbed.empty()) {
    h.String("absorbed");
    h.U64(state_.absorbed.size());
    for (const Absorbed& a : state_.absorbed) {
      h.U64(a.group);
      h.U64(a.range.first);
      h.U64(a.range.last);
      h.U64(a.epoch);
    }
  }
  for (const auto& [client_id, s] : state_.sessions) {
    h.U64(client_id);
    h.U64(s.seq);
    h.U64(s.last_index.value());
    HashReply(s.reply, h);
  }
  return h.hash();
}

}  // namespace synod::kv
