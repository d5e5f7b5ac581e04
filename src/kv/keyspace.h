// Keyspace: the keys of one shard with their values, expiry times and versions — the data a
// StateMachine replicates, in the shape Redis commands need.
//
// Order. Keys are kept sorted by position (KeyPosition: the Redis Cluster hash slot in the top
// 14 bits, then 50 bits of a hash of the key), then by bytes. So a slot's keys are one
// contiguous range (slot moves and splits work on ranges), and a SCAN cursor is a position:
// "continue with the keys at or after this position", which survives inserts and deletes
// between calls and returns every key present for the whole scan at least once.
//
// Time. The keyspace never reads a clock. Every call that depends on time takes `now_ms`
// (Unix milliseconds): at apply time the entry's logical time, for a read the reading node's
// clock. A key whose expire_ms is <= now is absent to every lookup; only a write at apply
// time (FindForWrite, or the state machine's replicated expiry) deletes it, so every replica
// deletes it at the same log index.
//
// Versions (WATCH). Every change stamps the key with the log index of the entry that made it.
// A deleted key leaves a tombstone with the deleting index, so "created and deleted again" is
// a change too. Tombstones are bounded (tombstones_max); when one is evicted the
// tombstone_floor rises to its index, and a watch taken before the floor can no longer be
// judged, so it counts as changed (EXEC aborts; the client retries, as after any conflict).
//
// Lookup. Beside the ordered map, a hash index from (position, bytes) to the map's node finds a
// key without descending the tree (a descent costs a cache miss per level on a large keyspace;
// it was the largest single item of a node's CPU under write load). Only a new key's insertion
// descends the tree. Copies rebuild the index; moves keep it (map nodes do not move).
//
// Change tracking: when a `touched` map is attached, every key whose value, expiry or tombstone
// changed is entered in it with its live value (nullptr once deleted), so that collecting the
// records needs no second lookup (the host persists them; see StateMachine::TakeChanges).
//
// Thread-safety: none; owned by its StateMachine.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/status.h"

namespace synod::kv {

// The Redis Cluster hash slot of a key: CRC16-XMODEM of the key (or of the text between the
// first '{' and the next '}', when non-empty) modulo 16384.
uint16_t KeySlot(std::string_view key);
// The key's position in the keyspace order (see the file comment).
uint64_t KeyPosition(std::string_view key);

struct Value {
  std::string bytes;
  int64_t expire_ms = 0;  // absolute Unix ms; 0 = no expiry
  LogIndex version;       // the index of the entry that last changed the key

  bool operator==(const Value&) const = default;
};

// The stored form of a key's record (value or tombstone), for hosts that persist keys one by
// one. Kind byte, then fields; see keyspace.cc.
std::string EncodeValueRecord(const Value& v);
std::string EncodeTombstoneRecord(LogIndex deleted_at);
struct DecodedRecord {
  bool tombstone = false;
  Value value;  // tombstone: only version (the deleting index) is set
};
Result<DecodedRecord> DecodeRecord(std::string_view bytes);

class Keyspace {
 public:
  struct Key {
    uint64_t pos;
    std::string bytes;
    bool operator==(const Key&) const = default;
  };
  struct KeyRef {
    uint64_t pos;
    std::string_view bytes;
  };
  struct Less {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      if (a.pos != b.pos) return a.pos < b.pos;
      return std::string_view(a.bytes) < std::string_view(b.bytes);
    }
  };
  using Map = std::map<Key, Value, Less>;
  // The hash index: bytes view the key stored in the map node.
  struct RefHash {
    size_t operator()(const KeyRef& r) const noexcept { return static_cast<size_t>(r.pos); }
  };
  struct RefEq {
    bool operator()(const KeyRef& a, const KeyRef& b) const noexcept {
      return a.pos == b.pos && a.bytes == b.bytes;
    }
  };
  using Index = std::unordered_map<KeyRef, Map::iterator, RefHash, RefEq>;

  // Default bound on tombstones kept for WATCH.
  static constexpr size_t kTombstonesMax = 100'000;

  explicit Keyspace(size_t tombstones_max = kTombstonesMax) : tombstones_max_(tombstones_max) {}
  Keyspace(const Keyspace& o);
  Keyspace& operator=(const Keyspace& o);
  Keyspace(Keyspace&&) noexcept = default;
  Keyspace& operator=(Keyspace&&) noexcept = default;

  // ---- reads (any replica, any time) ----

  // The live value of key at `now_ms`, or nullptr when absent or expired.
  const Value* Find(std::string_view key, int64_t now_ms) const;
  // Whatever is stored, expired or not (snapshots, tests, the legacy GET of the simulator).
  const Value* FindRaw(std::string_view key) const;
  const Map& map() const { return map_; }
  // Keys stored, expired ones not yet deleted included (what Redis's DBSIZE counts).
  size_t size() const { return map_.size(); }
  // The bytes of the keys and values stored (expired ones not yet deleted included; not the
  // tombstones, expiry times or indexes): what a shard's size is judged by (splits by size).
  uint64_t bytes() const { return bytes_; }
  size_t expires_count() const { return expiry_.size(); }
  size_t tombstone_count() const { return tombstones_.size(); }
  // The WATCH version of key at now_ms: its version when live; when absent, the index of the
  // entry that deleted it (its tombstone) or 0.
  LogIndex VersionOf(std::string_view key, int64_t now_ms) const;
  LogIndex tombstone_floor() const { return tombstone_floor_; }
  LogIndex flush_index() const { return flush_index_; }
  // Up to `limit` keys whose expiry is <= now_ms, earliest first.
  std::vector<std::string> Expired(int64_t now_ms, size_t limit) const;
  // The earliest expiry time held, or nullopt.
  std::optional<int64_t> NextExpiry() const;

  // ---- writes (apply time only; every change is stamped with the current index) ----

  // The index that writes stamp. The state machine sets it before each entry.
  void set_index(LogIndex index) { index_ = index; }
  // The live value of key for modification: an expired key is deleted first (a change) and
  // nullptr returned. After changing the value's bytes call Modified.
  Value* FindForWrite(std::string_view key, int64_t now_ms);
  // Creates or replaces key with `bytes` and `expire_ms` (0 = persistent).
  Value& Put(std::string_view key, std::string bytes, int64_t expire_ms);
  // Put for a key whose live value the caller holds (from FindForWrite): no second lookup.
  void Replace(std::string_view key, Value& v, std::string bytes, int64_t expire_ms);
  // Stamps a value changed in place with the current index; `old_size` is the size its bytes had
  // before the change (for bytes()).
  void Modified(std::string_view key, Value& v, size_t old_size);
  // Changes v's expiry (0 = persistent) and stamps it.
  void SetExpire(std::string_view key, Value& v, int64_t expire_ms);
  // Deletes key (live or expired). Returns whether it was stored.
  bool Erase(std::string_view key);
  // Deletes every key (FLUSHALL). Records flush_index instead of one tombstone per key.
  void Clear();
  // A split: moves every key (and tombstone) whose slot is first_slot or above into the
  // keyspace returned, which keeps this one's tombstone floor, flush index and bound. Neither
  // keyspace records the move as a change (the stored records stay where they are: under their
  // slot, which the other shard reads now). O(keys moved + tombstones) plus log n per key.
  Keyspace SplitOff(uint16_t first_slot);
  // A merge: takes every key of `other` (whose slots this one holds no key of), stamped with
  // the current index, and raises the tombstone floor to it (the other's versions and
  // tombstones belong to another log: a watch from before counts as changed). Each key is
  // recorded as a change. O(keys taken * log n).
  void Absorb(Keyspace&& other);

  // ---- restore ----

  // Adds a record while loading a state (keys in any order). Returns false when the key is
  // already present.
  bool LoadValue(std::string key, Value v);
  bool LoadTombstone(std::string key, LogIndex deleted_at);
  void LoadMeta(LogIndex tombstone_floor, LogIndex flush_index) {
    tombstone_floor_ = tombstone_floor;
    flush_index_ = flush_index;
  }
  // Tombstones in key order, for snapshots and digests.
  const std::map<std::string, LogIndex, std::less<>>& tombstones() const { return tombstones_; }

  // Change tracking (see the file comment). nullptr detaches.
  // A touched key: its live value as of the last change (nullptr: not stored now), or, when
  // !known, to be looked up (a key entered by the state machine rather than by the keyspace).
  // Values live in std::map nodes, which stay put until the key is erased, and Erase, Clear
  // and every other removal re-enter the key with nullptr first.
  struct Touched {
    const Value* value = nullptr;
    bool known = false;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using TouchedMap = std::unordered_map<std::string, Touched, StringHash, std::equal_to<>>;
  void set_touched(TouchedMap* touched) { touched_ = touched; }

  bool operator==(const Keyspace& o) const {
    return map_ == o.map_ && tombstones_ == o.tombstones_ &&
           tombstone_floor_ == o.tombstone_floor_ && flush_index_ == o.flush_index_;
  }

 private:
  void Touch(std::string_view key, const Value* now) {
    if (touched_ == nullptr) return;
    auto it = touched_->find(key);
    if (it == touched_->end()) it = touched_->emplace(key, Touched{}).first;
    it->second = Touched{now, true};
  }
  // The stored value of key (expired or not), or nullptr: through the index.
  Value* Lookup(std::string_view key) const;
  void RebuildIndex();
  void AddTombstone(std::string_view key);
  void DropTombstone(std::string_view key);
  void IndexExpiry(std::string_view key, int64_t old_ms, int64_t new_ms);

  size_t tombstones_max_;
  Map map_;
  Index lookup_;  // every key of map_ (see the file comment)
  std::set<std::pair<int64_t, std::string>, std::less<>> expiry_;  // (expire_ms, key)
  std::map<std::string, LogIndex, std::less<>> tombstones_;
  std::set<std::pair<LogIndex, std::string>, std::less<>> tombstone_order_;
  LogIndex tombstone_floor_;
  LogIndex flush_index_;
  LogIndex index_;
  uint64_t bytes_ = 0;  // see bytes()
  TouchedMap* touched_ = nullptr;
};

}  // namespace synod::kv
