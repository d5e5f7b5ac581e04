#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>

namespace synod {
namespace {

// Known answers: the standard check value and the iSCSI test vectors of RFC 3720 §B.4.
TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0x00000000u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  std::string descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  const std::string data = "the quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    const uint32_t head = Crc32c(std::string_view(data).substr(0, cut));
    EXPECT_EQ(Crc32cExtend(head, std::string_view(data).substr(cut)), Crc32c(data)) << cut;
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string data = "synod write-ahead log record";
  const uint32_t good = Crc32c(data);
  for (size_t i = 0; i < data.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      data[i] = static_cast<char>(data[i] ^ (1 << bit));
      EXPECT_NE(Crc32c(data), good) << i << ":" << bit;
      data[i] = static_cast<char>(data[i] ^ (1 << bit));
    }
  }
}

// The instruction path (SSE4.2 where present) and the table agree on every length and
// alignment, including the tails shorter than 8 bytes, and when extending a running CRC.
TEST(Crc32cTest, FastPathEqualsTable) {
  std::string data;
  uint32_t x = 12345;
  for (int i = 0; i < 300; ++i) {
    x = x * 1103515245u + 12345u;
    data.push_back(static_cast<char>(x >> 24));
  }
  for (size_t off = 0; off < 9; ++off) {
    for (size_t len = 0; off + len <= data.size(); len += (len < 40 ? 1 : 37)) {
      const std::string_view v(data.data() + off, len);
      EXPECT_EQ(Crc32cExtend(0, v), Crc32cExtendPortable(0, v)) << off << " " << len;
      EXPECT_EQ(Crc32cExtend(0xdeadbeefu, v), Crc32cExtendPortable(0xdeadbeefu, v));
    }
  }
}

}  // namespace
}  // namespace synod
