#include "storage/wal_format.h"

#include <fmt/format.h>

#include "common/assert.h"
#include "common/crc32c.h"

namespace synod::storage {
namespace {

enum class FrameCheck : uint8_t { kValid, kIncomplete, kDamaged };

void PutU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

bool IsKnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(RecordType::kHeader) &&
         t <= static_cast<uint8_t>(RecordType::kSnapshot);
}

// Checks the frame starting at `pos`. When its length fits in the file, *size is set to the
// whole frame's size (header included), valid or not.
FrameCheck CheckFrame(std::string_view file, uint64_t pos, uint64_t* size) {
  SYNOD_ASSERT(pos <= file.size());
  const uint64_t remaining = file.size() - pos;
  if (remaining < kRecordHeaderBytes) return FrameCheck::kIncomplete;
  const uint64_t len = GetU32(file.data() + pos);
  if (len > remaining - kRecordHeaderBytes) return FrameCheck::kIncomplete;
  *size = kRecordHeaderBytes + len;
  const uint32_t stored_crc = GetU32(file.data() + pos + 4);
  // The checksummed bytes (type, then payload) are contiguous after the two u32 fields.
  if (Crc32c(file.substr(pos + 8, 1 + len)) != stored_crc) return FrameCheck::kDamaged;
  return FrameCheck::kValid;
}

// Whether a valid record of a known type starts at any offset >= from. Byte by byte, because a
// damaged length field means the next record's position is unknown. The type byte is checked
// first, which skips about 98% of the offsets without computing a checksum.
bool ValidRecordFollows(std::string_view file, uint64_t from) {
  for (uint64_t pos = from; pos + kRecordHeaderBytes <= file.size(); ++pos) {
    if (!IsKnownType(static_cast<uint8_t>(file[pos + 8]))) continue;
    uint64_t size = 0;
    if (CheckFrame(file, pos, &size) == FrameCheck::kValid) return true;
  }
  return false;
}

// The number of (damaged or incomplete) records in the tail starting at `pos`, following the
// length fields as long as they fit.
uint64_t CountTailRecords(std::string_view file, uint64_t pos) {
  uint64_t count = 0;
  while (pos < file.size()) {
    ++count;
    uint64_t size = 0;
    if (CheckFrame(file, pos, &size) == FrameCheck::kIncomplete) break;
    SYNOD_ASSERT(size >= kRecordHeaderBytes);  // so the loop advances
    pos += size;
  }
  return count;
}

}  // namespace

size_t BeginRecord(RecordType type, std::string* out) {
  const size_t start = out->size();
  out->append(kRecordHeaderBytes - 1, '\0');  // length and checksum, filled in by FinishRecord
  out->push_back(static_cast<char>(type));
  return start;
}

void FinishRecord(size_t start, std::string* out) {
  SYNOD_ASSERT(start + kRecordHeaderBytes <= out->size());
  const uint64_t len = out->size() - start - kRecordHeaderBytes;
  SYNOD_ASSERT_MSG(len <= kRecordPayloadBytesMax, "WAL record payload too large");
  const uint32_t crc = Crc32c(std::string_view(*out).substr(start + 8));
  std::string fields;
  PutU32(static_cast<uint32_t>(len), &fields);
  PutU32(crc, &fields);
  out->replace(start, fields.size(), fields);
}

void AppendRecord(RecordType type, std::string_view payload, std::string* out) {
  out->reserve(out->size() + kRecordHeaderBytes + payload.size());
  const size_t start = BeginRecord(type, out);
  out->append(payload);
  FinishRecord(start, out);
}

Result<ScanResult> ScanRecords(std::string_view file) {
  ScanResult result;
  uint64_t pos = 0;
  while (pos < file.size()) {
    uint64_t size = 0;
    if (CheckFrame(file, pos, &size) != FrameCheck::kValid) break;
    const uint8_t type = static_cast<uint8_t>(file[pos + 8]);
    if (!IsKnownType(type)) {
      return Status::Corruption(
          fmt::format("WAL record at offset {} has unknown type {} (a newer format?)", pos, type));
    }
    result.records.push_back(
        Record{static_cast<RecordType>(type),
               file.substr(pos + kRecordHeaderBytes, size - kRecordHeaderBytes), pos});
    pos += size;
  }
  result.valid_bytes = pos;
  if (pos == file.size()) return result;
  if (ValidRecordFollows(file, pos + 1)) {
    return Status::Corruption(fmt::format(
        "WAL record at offset {} of {} is damaged but valid records follow it; refusing to "
        "start on a log that lost durable data",
        pos, file.size()));
  }
  result.tail_records = CountTailRecords(file, pos);
  return result;
}

}  // namespace synod::storage
