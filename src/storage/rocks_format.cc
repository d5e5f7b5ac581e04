#include "storage/rocks_format.h"

#include <fmt/format.h>

#include "common/assert.h"
#include "common/crc32c.h"

namespace synod::storage::format {
namespace {

void PutU32Le(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint32_t GetU32Le(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(in[i])} << (8 * i);
  return v;
}

uint32_t FrameCrc(std::string_view key, std::string_view payload) {
  return Crc32cExtend(Crc32c(key), payload);
}

void SealFrame(std::string_view key, std::string* frame) {
  SYNOD_ASSERT(frame->size() >= kCrcBytes);
  const std::string_view payload = std::string_view(*frame).substr(kCrcBytes);
  PutU32Le(FrameCrc(key, payload), frame->data());
}

}  // namespace

Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  SYNOD_ASSERT(!s.ok());
  const std::string message = fmt::format("{}: {}", context, s.ToString());
  if (s.IsCorruption()) return Status::Corruption(message);
  if (s.IsNotFound()) return Status::NotFound(message);
  if (s.IsInvalidArgument() || s.IsNotSupported()) return Status::InvalidArgument(message);
  return Status::IoError(message);
}

std::string FrameBytes(std::string_view key, std::string_view payload) {
  std::string frame(kCrcBytes, '\0');
  frame.append(payload);
  SealFrame(key, &frame);
  return frame;
}

std::string FrameMessage(std::string_view key, const google::protobuf::MessageLite& m) {
  SYNOD_ASSERT_MSG(m.ByteSizeLong() < kProtoBytesMax, "record too large, not checked");
  std::string frame(kCrcBytes, '\0');
  const bool serialized = m.AppendToString(&frame);
  SYNOD_ASSERT_MSG(serialized, "serializing a record failed");
  SealFrame(key, &frame);
  return frame;
}

Result<std::string_view> Unframe(std::string_view key, std::string_view value,
                                 std::string_view what) {
  if (value.size() < kCrcBytes) {
    return Status::Corruption(fmt::format("{} is truncated ({} bytes)", what, value.size()));
  }
  const std::string_view payload = value.substr(kCrcBytes);
  if (GetU32Le(value.data()) != FrameCrc(key, payload)) {
    return Status::Corruption(fmt::format("{} failed its checksum", what));
  }
  return payload;
}

Status ParseFramed(std::string_view key, std::string_view value, std::string_view what,
                   google::protobuf::MessageLite* m) {
  Result<std::string_view> payload = Unframe(key, value, what);
  if (!payload.ok()) return payload.status();
  if (payload->size() >= kProtoBytesMax ||
      !m->ParseFromArray(payload->data(), static_cast<int>(payload->size()))) {
    return Status::Corruption(fmt::format("{} is not a valid {}", what, m->GetTypeName()));
  }
  return Status::Ok();
}

void MustStage(const rocksdb::Status& s) {
  SYNOD_ASSERT_MSG(s.ok(), "staging a checked record in a WriteBatch failed");
}

void AppendU64Be(uint64_t v, std::string* out) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t GetU64Be(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

std::string Printable(std::string_view key) {
  std::string out;
  for (size_t i = 0; i < key.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (key.size() > 64) out += "...";
  return out;
}

}  // namespace synod::storage::format
