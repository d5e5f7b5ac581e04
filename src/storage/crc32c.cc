#include "storage/crc32c.h"

#include <array>

namespace synod::storage {
namespace {

// The Castagnoli polynomial 0x1EDC6F41, bit-reversed (the CRC is computed LSB first).
constexpr uint32_t kPolyReversed = 0x82F63B78u;

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? kPolyReversed : 0u);
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  // The running register is the complement of the published CRC; undo the final xor, feed the
  // bytes, redo it.
  uint32_t reg = ~crc;
  for (const char c : data) {
    reg = kTable[(reg ^ static_cast<uint8_t>(c)) & 0xFFu] ^ (reg >> 8);
  }
  return ~reg;
}

uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

}  // namespace synod::storage
