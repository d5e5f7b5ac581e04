// The record framing shared by NodeDb and GroupStorage (internal to storage/): every value is
// [u32 crc][payload], the CRC-32C of the key followed by the payload, little-endian, so that a
// value written under the wrong key (a misdirected write) fails its check too. Also the one
// conversion of RocksDB's status into ours.
#pragma once

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <google/protobuf/message_lite.h>

#include "common/status.h"

namespace synod::storage::format {

inline constexpr size_t kCrcBytes = 4;
// Protocol Buffers cannot serialize or parse a message of 2 GiB or more.
inline constexpr size_t kProtoBytesMax = static_cast<size_t>(std::numeric_limits<int>::max());

// The status RocksDB's `s` means for us; `context` says what was being done. REQUIRES: !s.ok().
Status FromRocks(const rocksdb::Status& s, std::string_view context);

inline std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// The framed value of `payload` under `key`.
std::string FrameBytes(std::string_view key, std::string_view payload);
// The framed value of a protobuf message under `key`. REQUIRES: it is under 2 GiB.
std::string FrameMessage(std::string_view key, const google::protobuf::MessageLite& m);
// The payload of a framed value read under `key`; kCorruption naming `what` if it is damaged.
Result<std::string_view> Unframe(std::string_view key, std::string_view value,
                                 std::string_view what);
// Checks and parses a framed protobuf value; kCorruption naming `what` if anything is wrong.
Status ParseFramed(std::string_view key, std::string_view value, std::string_view what,
                   google::protobuf::MessageLite* m);
// Crashes unless a WriteBatch accepted a record (it refuses only values of 4 GiB or more,
// which every caller rules out first).
void MustStage(const rocksdb::Status& s);

// Big-endian fixed-width integers: keys that embed them sort in numeric order.
void AppendU64Be(uint64_t v, std::string* out);
uint64_t GetU64Be(const char* in);
// A key for error messages: printable bytes as they are, others as \xNN, at most 64.
std::string Printable(std::string_view key);

}  // namespace synod::storage::format
