// The write-ahead log's on-disk framing: a WAL file is a sequence of records,
//
//   [u32 payload length][u32 CRC-32C of type+payload][u8 type][payload]
//
// little-endian. The first record is always a kHeader. The CRC covers the type byte so that a
// flipped type cannot turn one valid record into another; it does not cover the length, which
// is why ScanRecords double-checks a damaged record (see below).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace synod::storage {

// Record types. 0 is never used, so that a zero-filled tail never parses as a record.
// Values are stored on disk: never renumber.
enum class RecordType : uint8_t {
  kHeader = 1,     // pb::WalHeader: magic, version, cluster id
  kEntries = 2,    // pb::EntryBatch: a contiguous run of entries
  kHardState = 3,  // pb::HardState
  kSnapshot = 4,   // pb::Snapshot: snapshot metadata and the state machine image
};

inline constexpr size_t kRecordHeaderBytes = 9;
inline constexpr uint64_t kRecordPayloadBytesMax = 0xFFFFFFFFu;

// Appends one framed record to *out. REQUIRES: payload.size() <= kRecordPayloadBytesMax.
void AppendRecord(RecordType type, std::string_view payload, std::string* out);

// The same in two steps, for a payload serialized straight into *out (no intermediate copy):
// BeginRecord appends a frame header and returns where it starts; the caller appends the
// payload; FinishRecord fills in the length and checksum.
// REQUIRES (FinishRecord): at most kRecordPayloadBytesMax bytes were appended since.
size_t BeginRecord(RecordType type, std::string* out);
void FinishRecord(size_t start, std::string* out);

struct Record {
  RecordType type;
  std::string_view payload;  // points into the scanned buffer
  uint64_t offset = 0;       // of the record's first byte in the file
};

struct ScanResult {
  std::vector<Record> records;  // every valid record, in file order
  uint64_t valid_bytes = 0;     // the records end here; bytes after this are a damaged tail
  uint64_t tail_records = 0;    // incomplete or damaged records in that tail
};

// Splits a WAL file into its records.
//
// A damaged tail — a record whose length runs past the end of the file, or that fails its
// checksum, with nothing valid after it — is what a crash during an unsynced append leaves;
// it is reported (valid_bytes < file.size()), not returned as an error. A damaged record that
// is followed by a valid record anywhere later in the file (searched byte by byte, since the
// damage may be in the length field) is corruption of data that was once durable: kCorruption.
// A valid record of an unknown type is also kCorruption (a newer format we cannot read).
//
// The returned records point into `file`, which must outlive them.
Result<ScanResult> ScanRecords(std::string_view file);

}  // namespace synod::storage
