// What the cluster layer sends between nodes over env::PeerTransport, whose messages are opaque
// byte strings. Each message starts with a one-byte kind:
//
//   kRaft (1):     [u8 1][u64 LE group id][storage::EncodeMessage of one raft::Message]
//   kRequest (2):  [u8 2][u64 LE request id][EncodeShardRequest]   (cluster/logic/request.h)
//   kResponse (3): [u8 3][u64 LE request id][EncodeShardResponse]  the answer to that id
//   kLeaders (4):  [u8 4]{[u64 LE group][u64 LE term]}*            groups the sender leads
//   kQuiesce (5):  [u8 5]{[u64 LE group][u64 LE term][u64 LE index]}*  groups gone quiet
//   kWake (6):     [u8 6]{[u64 LE group]}*                         wake these groups up
//   kBeat (7):     [u8 7][u8 flags]                                 the sender's node is alive
//   kRemoved (8):  [u8 8]{[u64 LE group][u64 LE index]}*            you are no member of these
//   kSnapBegin (9):  [u8 9][u64 LE stream][u64 LE group][u8 has range][u16 LE first][u16 LE last]
//                    [EncodeMessage of the kSnap, no image]
//   kSnapChunk (10): [u8 10][u64 LE stream][u64 LE seq][u8 last][records]
//   kSnapAck (11):   [u8 11][u64 LE stream][u64 LE seq][u8 code]   receiver -> sender
//   kSnapCancel (12): [u8 12][u64 LE stream]                        sender -> receiver
//   kLoads (13):   [u8 13]{[u64 LE group][u64 LE bytes][u64 LE writes/s][u8 flags]}*
//                                                                   the sender's led shards' loads
//
// A streamed snapshot (cluster/snapshot_stream.h): the sender's stream id (its own numbering)
// names it in every message of both directions; chunks are numbered from 0 and acknowledged
// once the receiver consumed them (code kChunkTaken), and the stream ends with the receiver's
// kDelivered or kRefused, or the sender's cancel.
//
// A removal notice answers a Raft message from a replica that its group no longer lists (its
// node was down while the group removed it, so it never applied its removal): the index is the
// sender's applied index, whose configuration (committed) does not list the receiver. The
// receiver destroys its replica when it applied less than that (Store::ReceiveRemoved).
//
// Quiescence (cluster/logic/store.h): a leader whose group went idle stops ticking and sends a
// quiesce notice (its term, the index every log ends at) to the other members; a member asks
// the leader to wake a group. Since quiesced followers do not tick, they learn of a dead
// leader from the node beat, sent to every peer each heartbeat interval: no beat for an
// election timeout, or a beat with flag 1 (the sender's storage failed: it can lead nothing),
// and the groups that node leads wake and elect another leader.
//
// The group id is the envelope that lets one connection per node pair carry every group's
// messages. Request ids are the sender's own: a response goes back on the responder's own
// connection to the sender and names the id it answers. A leadership notice tells every peer
// which groups the sender leads (periodically and when it changes), so that a node learns the
// leaders of shards it does not host. A receiver drops a kind it does not know, with a log line.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/slot.h"
#include "common/status.h"
#include "raft/types.h"

namespace synod::cluster::peer_wire {

enum class Kind : uint8_t {
  kRaft = 1,
  kRequest = 2,
  kResponse = 3,
  kLeaders = 4,
  kQuiesce = 5,
  kWake = 6,
  kBeat = 7,
  kRemoved = 8,
  kSnapBegin = 9,
  kSnapChunk = 10,
  kSnapAck = 11,
  kSnapCancel = 12,
  kLoads = 13,
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

// kRequest and kResponse: the kind, the id, then the body (not decoded here).
std::string EncodeCall(Kind kind, uint64_t id, std::string_view body);
struct Call {
  uint64_t id = 0;
  std::string_view body;  // points into the payload
};
// kInvalidArgument when the payload is not of `kind` or is shorter than its header.
Result<Call> DecodeCall(Kind kind, std::string_view payload);

// kLeaders.
struct LeaderNotice {
  GroupId group;
  uint64_t term = 0;
  bool operator==(const LeaderNotice&) const = default;
};
std::string EncodeLeaders(const std::vector<LeaderNotice>& led);
// kInvalidArgument for another kind, a length that is not whole records, or group 0.
Result<std::vector<LeaderNotice>> DecodeLeaders(std::string_view payload);

// kQuiesce.
struct QuiesceNotice {
  GroupId group;
  uint64_t term = 0;
  uint64_t index = 0;
  bool operator==(const QuiesceNotice&) const = default;
};
std::string EncodeQuiesce(const std::vector<QuiesceNotice>& notices);
// kInvalidArgument for another kind, a length that is not whole records, or group 0.
Result<std::vector<QuiesceNotice>> DecodeQuiesce(std::string_view payload);

// kWake.
std::string EncodeWake(const std::vector<GroupId>& groups);
Result<std::vector<GroupId>> DecodeWake(std::string_view payload);

// kRemoved: the same records as kQuiesce without the term.
struct RemovedNotice {
  GroupId group;
  uint64_t index = 0;
  bool operator==(const RemovedNotice&) const = default;
};
std::string EncodeRemoved(const std::vector<RemovedNotice>& notices);
// kInvalidArgument for another kind, a length that is not whole records, or group 0.
Result<std::vector<RemovedNotice>> DecodeRemoved(std::string_view payload);

// kLoads: with the periodic leadership notice, the bytes each shard the sender leads holds and
// the writes per second it took (what the meta shard's leader balances placement and merges
// small, cold shards by), whether an automatic merge may absorb it (flag bit 0), and whether it
// is frozen for a merge (flag bit 1: placement leaves it alone).
struct LoadNotice {
  GroupId group;
  uint64_t bytes = 0;
  uint64_t writes_per_second = 0;
  bool mergeable = false;
  bool frozen = false;
  bool operator==(const LoadNotice&) const = default;
};
std::string EncodeLoads(const std::vector<LoadNotice>& loads);
// kInvalidArgument for another kind, a length that is not whole records, or group 0.
Result<std::vector<LoadNotice>> DecodeLoads(std::string_view payload);

// kBeat.
inline constexpr uint8_t kBeatStorageFailed = 1;
std::string EncodeBeat(uint8_t flags);
// The flags; kInvalidArgument for another kind or length.
Result<uint8_t> DecodeBeat(std::string_view payload);

// kSnapBegin: the stream's Raft message (a kSnap whose image travels in the chunks).
// `range`: the slots of the state streamed (nullopt: a shard of its own keys, the meta shard's).
struct SnapBegin {
  uint64_t stream = 0;
  GroupId group;
  std::optional<SlotRange> range;
  raft::Message message;
};
std::string EncodeSnapBegin(uint64_t stream, GroupId group, std::optional<SlotRange> range,
                            const raft::Message& m);
// kInvalidArgument for another kind, a truncated header, stream or group 0, a range that is not
// first <= last < kSlotCount, or a message that does not decode or is not a kSnap with a
// snapshot.
Result<SnapBegin> DecodeSnapBegin(std::string_view payload);

// kSnapChunk.
struct SnapChunk {
  uint64_t stream = 0;
  uint64_t seq = 0;
  bool last = false;
  std::string_view records;  // points into the payload
};
std::string EncodeSnapChunk(uint64_t stream, uint64_t seq, bool last, std::string_view records);
// kInvalidArgument for another kind, a truncated header or stream 0.
Result<SnapChunk> DecodeSnapChunk(std::string_view payload);

// kSnapAck.
enum class SnapAckCode : uint8_t {
  kChunkTaken = 0,  // chunk `seq` was consumed: send more
  kDelivered = 1,   // the state is built and its snapshot handed to the replica
  kRefused = 2,     // the receiver gave the stream up (busy, no such group, bad data, timeout)
};
struct SnapAck {
  uint64_t stream = 0;
  uint64_t seq = 0;
  SnapAckCode code = SnapAckCode::kChunkTaken;
  bool operator==(const SnapAck&) const = default;
};
std::string EncodeSnapAck(const SnapAck& a);
// kInvalidArgument for another kind or length, stream 0 or an unknown code.
Result<SnapAck> DecodeSnapAck(std::string_view payload);

// kSnapCancel.
std::string EncodeSnapCancel(uint64_t stream);
Result<uint64_t> DecodeSnapCancel(std::string_view payload);

}  // namespace synod::cluster::peer_wire
