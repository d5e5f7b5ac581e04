#include "cluster/peer_wire.h"

#include <fmt/format.h>

#include "common/assert.h"
#include "storage/raft_codec.h"

namespace synod::cluster::peer_wire {
namespace {

constexpr size_t kRaftHeaderBytes = 1 + 8;

void PutU64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t GetU64(std::string_view p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= uint64_t{static_cast<uint8_t>(p[static_cast<size_t>(i)])} << (8 * i);
  return v;
}

}  // namespace

std::string EncodeRaft(GroupId group, const raft::Message& m) {
  SYNOD_ASSERT(group != kNoGroup);
  std::string out;
  out.push_back(static_cast<char>(Kind::kRaft));
  PutU64(group.value(), &out);
  out += storage::EncodeMessage(m);
  return out;
}

uint8_t KindOf(std::string_view payload) {
  return payload.empty() ? 0 : static_cast<uint8_t>(payload[0]);
}

Result<RaftEnvelope> DecodeRaft(std::string_view payload) {
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kRaft)) {
    return Status::InvalidArgument(fmt::format("not a Raft message (kind {})", KindOf(payload)));
  }
  if (payload.size() < kRaftHeaderBytes) {
    return Status::InvalidArgument(
        fmt::format("Raft envelope truncated at {} bytes", payload.size()));
  }
  const uint64_t group = GetU64(payload.substr(1));
  if (group == 0) return Status::InvalidArgument("Raft envelope of group 0");
  Result<raft::Message> m = storage::DecodeMessage(payload.substr(kRaftHeaderBytes));
  if (!m.ok()) return m.status();
  return RaftEnvelope{GroupId(group), std::move(*m)};
}

std::string EncodeCall(Kind kind, uint64_t id, std::string_view body) {
  std::string out;
  out.reserve(9 + body.size());
  out.push_back(static_cast<char>(kind));
  PutU64(id, &out);
  out.append(body);
  return out;
}

Result<Call> DecodeCall(Kind kind, std::string_view payload) {
  if (KindOf(payload) != static_cast<uint8_t>(kind)) {
    return Status::InvalidArgument(
        fmt::format("expected kind {}, got {}", static_cast<int>(kind), KindOf(payload)));
  }
  if (payload.size() < 9) {
    return Status::InvalidArgument(fmt::format("call truncated at {} bytes", payload.size()));
  }
  return Call{GetU64(payload.substr(1)), payload.substr(9)};
}

std::string EncodeLeaders(const std::vector<LeaderNotice>& led) {
  std::string out;
  out.reserve(1 + 16 * led.size());
  out.push_back(static_cast<char>(Kind::kLeaders));
  for (const LeaderNotice& n : led) {
    PutU64(n.group.value(), &out);
    PutU64(n.term, &out);
  }
  return out;
}

Result<std::vector<LeaderNotice>> DecodeLeaders(std::string_view payload) {
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kLeaders) || (payload.size() - 1) % 16 != 0) {
    return Status::InvalidArgument(fmt::format("not a leadership notice ({} bytes, kind {})",
                                               payload.size(), KindOf(payload)));
  }
  std::vector<LeaderNotice> out;
  for (size_t at = 1; at < payload.size(); at += 16) {
    LeaderNotice n{GroupId(GetU64(payload.substr(at))), GetU64(payload.substr(at + 8))};
    if (n.group == kNoGroup) return Status::InvalidArgument("leadership notice for group 0");
    out.push_back(n);
  }
  return out;
}

namespace {

// Whole records of `record` bytes after the kind byte, else an error naming `what`.
Status CheckRecords(std::string_view payload, Kind kind, size_t record, const char* what) {
  if (KindOf(payload) != static_cast<uint8_t>(kind) || (payload.size() - 1) % record != 0) {
    return Status::InvalidArgument(
        fmt::format("not a {} ({} bytes, kind {})", what, payload.size(), KindOf(payload)));
  }
  return Status::Ok();
}

}  // namespace

std::string EncodeQuiesce(const std::vector<QuiesceNotice>& notices) {
  std::string out;
  out.reserve(1 + 24 * notices.size());
  out.push_back(static_cast<char>(Kind::kQuiesce));
  for (const QuiesceNotice& n : notices) {
    PutU64(n.group.value(), &out);
    PutU64(n.term, &out);
    PutU64(n.index, &out);
  }
  return out;
}

Result<std::vector<QuiesceNotice>> DecodeQuiesce(std::string_view payload) {
  SYNOD_RETURN_IF_ERROR(CheckRecords(payload, Kind::kQuiesce, 24, "quiesce notice"));
  std::vector<QuiesceNotice> out;
  for (size_t at = 1; at < payload.size(); at += 24) {
    QuiesceNotice n{GroupId(GetU64(payload.substr(at))), GetU64(payload.substr(at + 8)),
                    GetU64(payload.substr(at + 16))};
    if (n.group == kNoGroup) return Status::InvalidArgument("quiesce notice for group 0");
    out.push_back(n);
  }
  return out;
}

std::string EncodeWake(const std::vector<GroupId>& groups) {
  std::string out;
  out.reserve(1 + 8 * groups.size());
  out.push_back(static_cast<char>(Kind::kWake));
  for (GroupId g : groups) PutU64(g.value(), &out);
  return out;
}

Result<std::vector<GroupId>> DecodeWake(std::string_view payload) {
  SYNOD_RETURN_IF_ERROR(CheckRecords(payload, Kind::kWake, 8, "wake request"));
  std::vector<GroupId> out;
  for (size_t at = 1; at < payload.size(); at += 8) {
    const GroupId g(GetU64(payload.substr(at)));
    if (g == kNoGroup) return Status::InvalidArgument("wake request for group 0");
    out.push_back(g);
  }
  return out;
}

namespace {

// Records of a group and one u64 (`Field`): removal notices.
template <typename T, uint64_t T::*Field>
std::string EncodeGroupValues(Kind kind, const std::vector<T>& records) {
  std::string out;
  out.reserve(1 + 16 * records.size());
  out.push_back(static_cast<char>(kind));
  for (const T& r : records) {
    PutU64(r.group.value(), &out);
    PutU64(r.*Field, &out);
  }
  return out;
}

template <typename T, uint64_t T::*Field>
Result<std::vector<T>> DecodeGroupValues(std::string_view payload, Kind kind, const char* what) {
  SYNOD_RETURN_IF_ERROR(CheckRecords(payload, kind, 16, what));
  std::vector<T> out;
  for (size_t at = 1; at < payload.size(); at += 16) {
    T r;
    r.group = GroupId(GetU64(payload.substr(at)));
    r.*Field = GetU64(payload.substr(at + 8));
    if (r.group == kNoGroup) return Status::InvalidArgument(fmt::format("{} for group 0", what));
    out.push_back(r);
  }
  return out;
}

}  // namespace

std::string EncodeRemoved(const std::vector<RemovedNotice>& notices) {
  return EncodeGroupValues<RemovedNotice, &RemovedNotice::index>(Kind::kRemoved, notices);
}

Result<std::vector<RemovedNotice>> DecodeRemoved(std::string_view payload) {
  return DecodeGroupValues<RemovedNotice, &RemovedNotice::index>(payload, Kind::kRemoved,
                                                                 "removal notice");
}

std::string EncodeLoads(const std::vector<LoadNotice>& loads) {
  std::string out;
  out.reserve(1 + 25 * loads.size());
  out.push_back(static_cast<char>(Kind::kLoads));
  for (const LoadNotice& l : loads) {
    PutU64(l.group.value(), &out);
    PutU64(l.bytes, &out);
    PutU64(l.writes_per_second, &out);
    out.push_back(static_cast<char>((l.mergeable ? 1 : 0) | (l.frozen ? 2 : 0)));
  }
  return out;
}

Result<std::vector<LoadNotice>> DecodeLoads(std::string_view payload) {
  SYNOD_RETURN_IF_ERROR(CheckRecords(payload, Kind::kLoads, 25, "load notice"));
  std::vector<LoadNotice> out;
  for (size_t at = 1; at < payload.size(); at += 25) {
    LoadNotice l;
    l.group = GroupId(GetU64(payload.substr(at)));
    l.bytes = GetU64(payload.substr(at + 8));
    l.writes_per_second = GetU64(payload.substr(at + 16));
    const auto flags = static_cast<uint8_t>(payload[at + 24]);
    if (l.group == kNoGroup || flags > 3) {
      return Status::InvalidArgument("load notice for group 0 or with unknown flags");
    }
    l.mergeable = (flags & 1) != 0;
    l.frozen = (flags & 2) != 0;
    out.push_back(l);
  }
  return out;
}

std::string EncodeBeat(uint8_t flags) {
  std::string out;
  out.push_back(static_cast<char>(Kind::kBeat));
  out.push_back(static_cast<char>(flags));
  return out;
}

Result<uint8_t> DecodeBeat(std::string_view payload) {
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kBeat) || payload.size() != 2) {
    return Status::InvalidArgument(
        fmt::format("not a node beat ({} bytes, kind {})", payload.size(), KindOf(payload)));
  }
  return static_cast<uint8_t>(payload[1]);
}

namespace {

Status NotOfKind(std::string_view payload, Kind kind, const char* what) {
  return Status::InvalidArgument(fmt::format("not a {} ({} bytes, kind {}, expected {})", what,
                                             payload.size(), KindOf(payload),
                                             static_cast<int>(kind)));
}

}  // namespace

std::string EncodeSnapBegin(uint64_t stream, GroupId group, std::optional<SlotRange> range,
                            const raft::Message& m) {
  SYNOD_ASSERT(stream != 0 && group != kNoGroup);
  std::string out;
  out.push_back(static_cast<char>(Kind::kSnapBegin));
  PutU64(stream, &out);
  PutU64(group.value(), &out);
  out.push_back(range ? 1 : 0);
  const SlotRange r = range.value_or(SlotRange{0, 0});
  for (uint16_t v : {r.first, r.last}) {
    out.push_back(static_cast<char>(v & 0xFF));
    out.push_back(static_cast<char>(v >> 8));
  }
  out += storage::EncodeMessage(m);
  return out;
}

Result<SnapBegin> DecodeSnapBegin(std::string_view payload) {
  constexpr size_t kHeader = 1 + 8 + 8 + 1 + 4;
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kSnapBegin) || payload.size() < kHeader) {
    return NotOfKind(payload, Kind::kSnapBegin, "snapshot stream's start");
  }
  SnapBegin b;
  b.stream = GetU64(payload.substr(1));
  b.group = GroupId(GetU64(payload.substr(9)));
  if (b.stream == 0 || b.group == kNoGroup) {
    return Status::InvalidArgument("snapshot stream's start with stream or group 0");
  }
  const auto u16 = [&](size_t at) {
    return static_cast<uint16_t>(static_cast<uint8_t>(payload[at]) |
                                 (static_cast<uint8_t>(payload[at + 1]) << 8));
  };
  const auto has_range = static_cast<uint8_t>(payload[17]);
  if (has_range > 1) return Status::InvalidArgument("snapshot stream's start: bad range flag");
  if (has_range == 1) {
    const SlotRange r{u16(18), u16(20)};
    if (r.first > r.last || r.last >= kSlotCount) {
      return Status::InvalidArgument("snapshot stream's start: bad slot range");
    }
    b.range = r;
  }
  Result<raft::Message> m = storage::DecodeMessage(payload.substr(kHeader));
  if (!m.ok()) return m.status();
  if (m->type != raft::MessageType::kSnap || !m->snapshot || m->snapshot->IsEmpty()) {
    return Status::InvalidArgument("snapshot stream's start without a snapshot message");
  }
  b.message = std::move(*m);
  return b;
}

std::string EncodeSnapChunk(uint64_t stream, uint64_t seq, bool last, std::string_view records) {
  std::string out;
  out.reserve(18 + records.size());
  out.push_back(static_cast<char>(Kind::kSnapChunk));
  PutU64(stream, &out);
  PutU64(seq, &out);
  out.push_back(last ? 1 : 0);
  out.append(records);
  return out;
}

Result<SnapChunk> DecodeSnapChunk(std::string_view payload) {
  constexpr size_t kHeader = 1 + 8 + 8 + 1;
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kSnapChunk) || payload.size() < kHeader) {
    return NotOfKind(payload, Kind::kSnapChunk, "snapshot chunk");
  }
  SnapChunk c;
  c.stream = GetU64(payload.substr(1));
  c.seq = GetU64(payload.substr(9));
  const auto last = static_cast<uint8_t>(payload[17]);
  if (c.stream == 0 || last > 1) return Status::InvalidArgument("malformed snapshot chunk");
  c.last = last == 1;
  c.records = payload.substr(kHeader);
  return c;
}

std::string EncodeSnapAck(const SnapAck& a) {
  std::string out;
  out.push_back(static_cast<char>(Kind::kSnapAck));
  PutU64(a.stream, &out);
  PutU64(a.seq, &out);
  out.push_back(static_cast<char>(a.code));
  return out;
}

Result<SnapAck> DecodeSnapAck(std::string_view payload) {
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kSnapAck) || payload.size() != 18) {
    return NotOfKind(payload, Kind::kSnapAck, "snapshot acknowledgement");
  }
  SnapAck a;
  a.stream = GetU64(payload.substr(1));
  a.seq = GetU64(payload.substr(9));
  const auto code = static_cast<uint8_t>(payload[17]);
  if (a.stream == 0 || code > static_cast<uint8_t>(SnapAckCode::kRefused)) {
    return Status::InvalidArgument("malformed snapshot acknowledgement");
  }
  a.code = static_cast<SnapAckCode>(code);
  return a;
}

std::string EncodeSnapCancel(uint64_t stream) {
  std::string out;
  out.push_back(static_cast<char>(Kind::kSnapCancel));
  PutU64(stream, &out);
  return out;
}

Result<uint64_t> DecodeSnapCancel(std::string_view payload) {
  if (KindOf(payload) != static_cast<uint8_t>(Kind::kSnapCancel) || payload.size() != 9) {
    return NotOfKind(payload, Kind::kSnapCancel, "snapshot stream's cancel");
  }
  const uint64_t stream = GetU64(payload.substr(1));
  if (stream == 0) return Status::InvalidArgument("snapshot stream's cancel of stream 0");
  return stream;
}

}  // namespace synod::cluster::peer_wire
