#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace synod {
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

uint32_t ExtendTable(uint32_t reg, std::string_view data) {
  for (const char c : data) {
    reg = kTable[(reg ^ static_cast<uint8_t>(c)) & 0xFFu] ^ (reg >> 8);
  }
  return reg;
}

#if defined(__x86_64__)
// SSE4.2's crc32 instruction computes exactly this CRC (Castagnoli, reflected), 8 bytes per
// instruction: every record the node writes or reads and every peer frame is checksummed, so
// the byte-at-a-time table showed in profiles. Chosen once at start-up by CPUID.
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t reg, std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t r = reg;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    r = _mm_crc32_u64(r, v);
    p += 8;
    n -= 8;
  }
  auto r32 = static_cast<uint32_t>(r);
  while (n > 0) {
    r32 = _mm_crc32_u8(r32, static_cast<uint8_t>(*p));
    ++p;
    --n;
  }
  return r32;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  // The running register is the complement of the published CRC; undo the final xor, feed the
  // bytes, redo it.
  uint32_t reg = ~crc;
#if defined(__x86_64__)
  if (kHaveSse42) return ~ExtendSse42(reg, data);
#endif
  return ~ExtendTable(reg, data);
}

uint32_t Crc32cExtendPortable(uint32_t crc, std::string_view data) {
  return ~ExtendTable(~crc, data);
}

uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

}  // namespace synod
