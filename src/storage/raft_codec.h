// Conversions between the Raft core's plain types (raft/types.h) and their Protocol Buffers
// forms (raft.proto), for the write-ahead log and the network transport.
//
// ToProto never fails; it replaces *out's whole content. FromProto and DecodeMessage validate what
// the schema cannot: enum values (proto3 enums are open), node ids (non-zero, no duplicates in a
// ConfState) and that a run of entries has consecutive indexes. Malformed input gives
// kInvalidArgument, never a crash: a message comes from the network and a payload from a disk that
// may have rotted. The WAL turns these errors into kCorruption.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "raft/types.h"
#include "storage/raft.pb.h"

namespace synod::storage {

void ToProto(const raft::Entry& e, pb::Entry* out);
void ToProto(const raft::HardState& hs, pb::HardState* out);
void ToProto(const raft::ConfState& cs, pb::ConfState* out);
void ToProto(const raft::SnapshotMeta& meta, pb::SnapshotMeta* out);
void ToProto(const raft::Snapshot& snap, pb::Snapshot* out);
void ToProto(const raft::Message& m, pb::Message* out);

// The rvalue overloads move the (possibly large) byte fields out of the proto instead of
// copying them.
Result<raft::Entry> FromProto(const pb::Entry& p);
Result<raft::Entry> FromProto(pb::Entry&& p);
Result<raft::HardState> FromProto(const pb::HardState& p);
Result<raft::ConfState> FromProto(const pb::ConfState& p);
Result<raft::SnapshotMeta> FromProto(const pb::SnapshotMeta& p);
Result<raft::Snapshot> FromProto(const pb::Snapshot& p);
Result<raft::Snapshot> FromProto(pb::Snapshot&& p);
Result<raft::Message> FromProto(const pb::Message& p);
Result<raft::Message> FromProto(pb::Message&& p);

// A run of entries (a message's or a WAL batch's). kInvalidArgument unless the indexes are
// consecutive.
Result<std::vector<raft::Entry>> EntriesFromProto(
    google::protobuf::RepeatedPtrField<pb::Entry>* entries);
// The entries of a proposal (MsgProp): not yet in the log, so index 0 each; any other index
// is kInvalidArgument.
Result<std::vector<raft::Entry>> UnindexedEntriesFromProto(
    google::protobuf::RepeatedPtrField<pb::Entry>* entries);

// The wire form of a Raft message, and back. DecodeMessage: kInvalidArgument when `bytes` is
// not a well-formed encoding of a valid message.
std::string EncodeMessage(const raft::Message& m);
Result<raft::Message> DecodeMessage(std::string_view bytes);

}  // namespace synod::storage
