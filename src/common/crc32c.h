// CRC-32C (Castagnoli): the checksum of every write-ahead-log record.
//
// CRC-32C rather than the zlib CRC-32 because it detects more error patterns at the record
// sizes a log holds and is what LevelDB, RocksDB and ext4 use for the same job. SSE4.2's crc32
// instruction when the CPU has it (chosen once by CPUID), else one 256-entry table built at
// compile time; no Debian package in our dependency set offers it, and it is a few dozen lines.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace synod {

// The CRC-32C of `data` (reflected, initial value and final xor 0xFFFFFFFF), so that
// Crc32c("123456789") == 0xE3069283.
uint32_t Crc32c(std::string_view data);

// The CRC-32C of a ++ data, given crc == Crc32c(a): checksums data held in pieces without
// concatenating them. Crc32cExtend(0, data) == Crc32c(data).
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);
// The same function computed by the table alone. Crc32cExtend uses the CPU's crc32 instruction
// when it has one (SSE4.2); tests compare the two.
uint32_t Crc32cExtendPortable(uint32_t crc, std::string_view data);

}  // namespace synod
