// Hash slots: how a key maps to one of Redis Cluster's 16384 slots, the unit of sharding.
//
// A key's slot is CRC16-XMODEM of the key modulo 16384, or of the text between the first '{'
// and the next '}' when that text is non-empty (a "hash tag": keys sharing a tag share a slot,
// so a client can keep related keys in one shard). Byte for byte what Redis Cluster computes,
// so cluster-aware clients route by themselves.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace synod {

// The number of hash slots; slots are 0 .. kSlotCount - 1.
inline constexpr uint32_t kSlotCount = 16384;

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis's crc16.c.
uint16_t Crc16(std::string_view bytes);

// The slot of `key` (see the file comment).
uint16_t KeySlot(std::string_view key);

// A contiguous range of slots, both ends included: what a shard owns, or the slots of a
// command's keys.
struct SlotRange {
  uint16_t first = 0;
  uint16_t last = kSlotCount - 1;

  bool Contains(uint16_t slot) const { return slot >= first && slot <= last; }
  bool Contains(const SlotRange& r) const { return r.first >= first && r.last <= last; }
  bool Overlaps(const SlotRange& r) const { return r.first <= last && first <= r.last; }
  uint32_t size() const { return uint32_t{last} - first + 1; }
  bool operator==(const SlotRange&) const = default;
};

}  // namespace synod
