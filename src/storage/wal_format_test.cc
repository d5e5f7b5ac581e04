#include "storage/wal_format.h"

#include <gtest/gtest.h>

#include <string>

#include "common/crc32c.h"

namespace synod::storage {
namespace {

TEST(WalFormatTest, FrameLayoutIsLittleEndianWithChecksumOfTypeAndPayload) {
  std::string out;
  AppendRecord(RecordType::kEntries, "abc", &out);
  ASSERT_EQ(out.size(), kRecordHeaderBytes + 3);
  EXPECT_EQ(out.substr(0, 4), std::string("\x03\x00\x00\x00", 4));
  const uint32_t crc =
      Crc32c(std::string("\x02"
                         "abc",
                         4));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(static_cast<uint8_t>(out[4 + i]), (crc >> (8 * i)) & 0xFFu) << i;
  }
  EXPECT_EQ(out[8], '\x02');
  EXPECT_EQ(out.substr(9), "abc");
}

TEST(WalFormatTest, ScansRecordsInOrder) {
  std::string file;
  AppendRecord(RecordType::kHeader, "h", &file);
  AppendRecord(RecordType::kEntries, "", &file);  // an empty payload is a valid record
  AppendRecord(RecordType::kHardState, "hs", &file);
  Result<ScanResult> scan = ScanRecords(file);
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->records.size(), 3u);
  EXPECT_EQ(scan->records[0].type, RecordType::kHeader);
  EXPECT_EQ(scan->records[1].payload, "");
  EXPECT_EQ(scan->records[1].offset, kRecordHeaderBytes + 1);
  EXPECT_EQ(scan->records[2].payload, "hs");
  EXPECT_EQ(scan->valid_bytes, file.size());
  EXPECT_EQ(scan->tail_records, 0u);
}

TEST(WalFormatTest, EveryTruncationOfTheLastRecordIsATornTail) {
  std::string file;
  AppendRecord(RecordType::kHeader, "header", &file);
  const size_t synced = file.size();
  AppendRecord(RecordType::kEntries, "the last record", &file);
  for (size_t cut = synced + 1; cut < file.size(); ++cut) {
    Result<ScanResult> scan = ScanRecords(std::string_view(file).substr(0, cut));
    ASSERT_TRUE(scan.ok()) << cut;
    EXPECT_EQ(scan->records.size(), 1u) << cut;
    EXPECT_EQ(scan->valid_bytes, synced) << cut;
    EXPECT_EQ(scan->tail_records, 1u) << cut;
  }
}

TEST(WalFormatTest, ZeroFilledTailIsATornTail) {
  std::string file;
  AppendRecord(RecordType::kHeader, "header", &file);
  const size_t valid = file.size();
  file.append(100, '\0');  // what some file systems leave after a crash that extended a file
  Result<ScanResult> scan = ScanRecords(file);
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->valid_bytes, valid);
  EXPECT_GE(scan->tail_records, 1u);
}

TEST(WalFormatTest, DamageFollowedByAValidRecordIsCorruption) {
  std::string file;
  AppendRecord(RecordType::kHeader, "header", &file);
  const size_t second = file.size();
  AppendRecord(RecordType::kEntries, "second record", &file);
  AppendRecord(RecordType::kHardState, "third", &file);
  // Every byte of the second record, the length field included: the third record is found
  // however the damage moved the framing.
  for (size_t i = second; i < second + kRecordHeaderBytes + 13; ++i) {
    std::string bad = file;
    bad[i] = static_cast<char>(bad[i] ^ 0x40);
    EXPECT_EQ(ScanRecords(bad).status().code(), Code::kCorruption) << i;
  }
}

TEST(WalFormatTest, UnknownTypeWithValidChecksumIsCorruption) {
  std::string file;
  AppendRecord(RecordType::kHeader, "header", &file);
  AppendRecord(static_cast<RecordType>(9), "future", &file);
  Result<ScanResult> scan = ScanRecords(file);
  EXPECT_EQ(scan.status().code(), Code::kCorruption);
  EXPECT_NE(scan.status().message().find("unknown type 9"), std::string_view::npos);
}

}  // namespace
}  // namespace synod::storage
