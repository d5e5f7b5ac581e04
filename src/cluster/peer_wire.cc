#include "cluster/peer_wire.h"

#include <fmt/format.h>

#include "common/assert.h"
#include "storage/raft_codec.h"

namespace synod::cluster::peer_wire {
namespace {

constexpr size_t kRaftHeaderBytes = 1 + 8;

}  // namespace

std::string EncodeRaft(GroupId group, const raft::Message& m) {
  SYNOD_ASSERT(group != kNoGroup);
  std::string out;
  out.push_back(static_cast<char>(Kind::kRaft));
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((group.value() >> (8 * i)) & 0xFF));
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
  uint64_t group = 0;
  for (int i = 0; i < 8; ++i) group |= uint64_t{static_cast<uint8_t>(payload[1 + i])} << (8 * i);
  if (group == 0) return Status::InvalidArgument("Raft envelope of group 0");
  Result<raft::Message> m = storage::DecodeMessage(payload.substr(kRaftHeaderBytes));
  if (!m.ok()) return m.status();
  return RaftEnvelope{GroupId(group), std::move(*m)};
}

}  // namespace synod::cluster::peer_wire
