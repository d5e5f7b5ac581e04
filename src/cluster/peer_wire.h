// What the cluster layer sends between nodes over env::PeerTransport, whose messages are opaque
// byte strings. Each message starts with a one-byte kind:
//
//   kRaft (1):  [u8 1][u64 LE group id][storage::EncodeMessage of one raft::Message]
//
// The group id is the envelope that lets one connection per node pair carry every group's
// messages. Further kinds (a node-to-node request channel for forwarded client commands) get
// their own numbers; a receiver drops a kind it does not know, with a log line.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/ids.h"
#include "common/status.h"
#include "raft/types.h"

namespace synod::cluster::peer_wire {

enum class Kind : uint8_t {
  kRaft = 1,
};

struct RaftEnvelope {
  GroupId group;
  raft::Message message;
};

// The payload of a kRaft message. REQUIRES: group != kNoGroup.
std::string EncodeRaft(GroupId group, const raft::Message& m);
// Decodes a kRaft payload. kInvalidArgument for another kind, a truncated envelope, group 0, or
// a message that does not decode (storage::DecodeMessage's checks); never crashes on bad bytes.
Result<RaftEnvelope> DecodeRaft(std::string_view payload);
// The kind byte of a payload; 0 for an empty one.
uint8_t KindOf(std::string_view payload);

}  // namespace synod::cluster::peer_wire
