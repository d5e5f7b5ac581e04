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

std::string EncodeRemoved(const std::vector<RemovedNotice>& notices) {
  std::string out;
  out.reserve(1 + 16 * notices.size());
  out.push_back(static_cast<char>(Kind::kRemoved));
  for (const RemovedNotice& n : notices) {
    PutU64(n.group.value(), &out);
    PutU64(n.index, &out);
  }
  return out;
}

Result<std::vector<RemovedNotice>> DecodeRemoved(std::string_view payload) {
  SYNOD_RETURN_IF_ERROR(CheckRecords(payload, Kind::kRemoved, 16, "removal notice"));
  std::vector<RemovedNotice> out;
  for (size_t at = 1; at < payload.size(); at += 16) {
    RemovedNotice n{GroupId(GetU64(payload.substr(at))), GetU64(payload.substr(at + 8))};
    if (n.group == kNoGroup) return Status::InvalidArgument("removal notice for group 0");
    out.push_back(n);
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

}  // namespace synod::cluster::peer_wire
