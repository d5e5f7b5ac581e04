// Keyspace: hash slots, ordering, expiry, versions and tombstones (WATCH), change tracking and
// the stored record format.

#include "kv/keyspace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace synod::kv {
namespace {

using Touched = Keyspace::TouchedMap;

// The touched keys, and a check that each carries the value the keyspace holds for it now.
std::set<std::string> Keys(const Touched& touched, const Keyspace& ks) {
  std::set<std::string> out;
  for (const auto& [key, t] : touched) {
    EXPECT_TRUE(t.known) << key;
    EXPECT_EQ(t.value, ks.FindRaw(key)) << key;
    out.insert(key);
  }
  return out;
}

// ---- hash slots and order ----

TEST(KeySlotTest, MatchesRedisCluster) {
  // Values from Redis's CLUSTER KEYSLOT.
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot(""), 0);
  // The text between the first '{' and the next '}' is hashed when it is not empty.
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("{foo}"), 12182);
  EXPECT_EQ(KeySlot("a{foo}b{bar}"), 12182);  // the first tag only
}

TEST(KeySlotTest, BraceEdgeCasesAsRedis) {
  // Expected values: CRC16-XMODEM of the hashed text, modulo 16384, by a bitwise reference.
  // "{}" is an empty tag: the whole key is hashed, even with a later non-empty tag.
  EXPECT_EQ(KeySlot("foo{}{bar}"), 8363);
  EXPECT_EQ(KeySlot("{}"), 15257);
  // The tag runs from the first '{' to the next '}': "{bar".
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  // A later tag after a non-empty one does not count.
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  // An unclosed '{' hashes the whole key.
  EXPECT_EQ(KeySlot("{"), 4092);
  EXPECT_EQ(KeySlot("foo{bar"), 15278);
  for (std::string_view k : {"", "{", "}", "{}", "}{", "a{b", "a}b{c}"}) {
    EXPECT_LT(KeySlot(k), 16384) << k;
  }
}

TEST(KeySlotTest, PositionCarriesTheSlotInTheTopBits) {
  for (std::string_view k : {"foo", "bar", "{user1000}.following", "", "x"}) {
    EXPECT_EQ(KeyPosition(k) >> 50, KeySlot(k)) << k;
  }
  // A hash tag keeps keys of one slot together, but they still get distinct positions.
  EXPECT_NE(KeyPosition("{t}a"), KeyPosition("{t}b"));
}

TEST(KeyspaceTest, KeysAreOrderedByPosition) {
  Keyspace ks;
  ks.set_index(LogIndex(1));
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("key:" + std::to_string(i));
  keys.push_back("{tag}x");
  keys.push_back("{tag}y");
  for (const std::string& k : keys) ks.Put(k, "v", 0);
  ASSERT_EQ(ks.size(), keys.size());
  const Keyspace::Key* prev = nullptr;
  bool saw_byte_disorder = false;
  for (const auto& [key, value] : ks.map()) {
    EXPECT_EQ(key.pos, KeyPosition(key.bytes));
    if (prev != nullptr) {
      EXPECT_TRUE(prev->pos < key.pos || (prev->pos == key.pos && prev->bytes < key.bytes));
      saw_byte_disorder = saw_byte_disorder || key.bytes < prev->bytes;
    }
    prev = &key;
  }
  EXPECT_TRUE(saw_byte_disorder);  // the order is by position, not by bytes
  // A slot's keys are one contiguous range.
  std::vector<uint16_t> slots;
  for (const auto& [key, value] : ks.map()) slots.push_back(KeySlot(key.bytes));
  EXPECT_TRUE(std::is_sorted(slots.begin(), slots.end()));
}

// Every stored key is found through the hash index, at the very node the ordered map holds.
void ExpectIndexMatchesMap(const Keyspace& ks) {
  for (const auto& [key, value] : ks.map()) {
    EXPECT_EQ(ks.FindRaw(key.bytes), &value) << key.bytes;
  }
}

TEST(KeyspaceTest, LookupIndexFollowsInsertsErasesClearsLoadsCopiesAndMoves) {
  Keyspace ks;
  ks.set_index(LogIndex(1));
  for (int i = 0; i < 500; ++i) ks.Put("k" + std::to_string(i), "v" + std::to_string(i), 0);
  for (int i = 0; i < 500; i += 3) ASSERT_TRUE(ks.Erase("k" + std::to_string(i)));
  ASSERT_TRUE(ks.LoadValue("loaded", Value{"l", 0, LogIndex(1)}));
  EXPECT_FALSE(ks.LoadValue("loaded", Value{"again", 0, LogIndex(1)}));
  ExpectIndexMatchesMap(ks);
  EXPECT_EQ(ks.FindRaw("k0"), nullptr);
  ASSERT_NE(ks.FindRaw("k1"), nullptr);
  EXPECT_EQ(ks.FindRaw("k1")->bytes, "v1");
  EXPECT_EQ(ks.FindRaw("loaded")->bytes, "l");

  // A copy finds its own nodes: changing or destroying the original leaves it intact.
  auto original = std::make_unique<Keyspace>(ks);
  Keyspace copy(*original);
  Keyspace assigned;
  assigned = *original;
  original->Put("k1", "changed", 0);
  original->Erase("k2");
  original.reset();
  for (const Keyspace* c : {&copy, &assigned}) {
    ExpectIndexMatchesMap(*c);
    EXPECT_EQ(c->FindRaw("k1")->bytes, "v1");
    ASSERT_NE(c->FindRaw("k2"), nullptr);
    EXPECT_EQ(c->size(), ks.size());
  }
  // A move keeps the nodes and so the index.
  Keyspace moved(std::move(copy));
  ExpectIndexMatchesMap(moved);
  EXPECT_EQ(moved.FindRaw("k4")->bytes, "v4");

  moved.Clear();
  EXPECT_EQ(moved.FindRaw("k1"), nullptr);
  moved.Put("k1", "again", 0);
  ExpectIndexMatchesMap(moved);
  EXPECT_EQ(moved.size(), 1u);
}

// ---- expiry ----

TEST(KeyspaceTest, FindHonoursExpiryAndFindRawDoesNot) {
  Keyspace ks;
  ks.set_index(LogIndex(3));
  ks.Put("k", "v", 1000);
  ks.Put("p", "forever", 0);
  ASSERT_NE(ks.Find("k", 999), nullptr);
  EXPECT_EQ(ks.Find("k", 999)->bytes, "v");
  EXPECT_EQ(ks.Find("k", 999)->expire_ms, 1000);
  EXPECT_EQ(ks.Find("k", 1000), nullptr);  // due at expire_ms itself
  EXPECT_EQ(ks.Find("k", 5000), nullptr);
  ASSERT_NE(ks.FindRaw("k"), nullptr);  // still stored until a write deletes it
  EXPECT_EQ(ks.FindRaw("k")->bytes, "v");
  EXPECT_EQ(ks.size(), 2u);
  EXPECT_EQ(ks.expires_count(), 1u);
  EXPECT_NE(ks.Find("p", INT64_MAX), nullptr);
  EXPECT_EQ(ks.Find("absent", 0), nullptr);
  EXPECT_EQ(ks.NextExpiry(), 1000);
}

TEST(KeyspaceTest, FindForWriteDeletesAnExpiredKeyAndLeavesATombstone) {
  Keyspace ks;
  Touched touched;
  ks.set_index(LogIndex(2));
  ks.Put("k", "v", 1000);
  ks.set_touched(&touched);
  ks.set_index(LogIndex(5));
  ASSERT_NE(ks.FindForWrite("k", 999), nullptr);  // not yet due: found, nothing changes
  EXPECT_TRUE(touched.empty());
  EXPECT_EQ(ks.FindForWrite("k", 1000), nullptr);
  EXPECT_EQ(ks.FindRaw("k"), nullptr);
  EXPECT_EQ(ks.size(), 0u);
  EXPECT_EQ(ks.expires_count(), 0u);
  EXPECT_EQ(ks.NextExpiry(), std::nullopt);
  ASSERT_EQ(ks.tombstones().count("k"), 1u);
  EXPECT_EQ(ks.tombstones().at("k"), LogIndex(5));
  EXPECT_EQ(ks.VersionOf("k", 1000), LogIndex(5));
  EXPECT_EQ(Keys(touched, ks), (std::set<std::string>{"k"}));
  EXPECT_EQ(ks.FindForWrite("absent", 0), nullptr);
  EXPECT_EQ(ks.tombstone_count(), 1u);  // an absent key leaves nothing
}

TEST(KeyspaceTest, ExpiredListsDueKeysEarliestFirstUpToTheLimit) {
  Keyspace ks;
  ks.set_index(LogIndex(1));
  ks.Put("c", "", 300);
  ks.Put("a", "", 100);
  ks.Put("b", "", 200);
  ks.Put("d", "", 400);
  ks.Put("p", "", 0);
  EXPECT_TRUE(ks.Expired(99, 10).empty());
  EXPECT_EQ(ks.Expired(100, 10), (std::vector<std::string>{"a"}));
  EXPECT_EQ(ks.Expired(300, 10), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ks.Expired(1000, 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ks.Expired(1000, 10), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(ks.Expired(1000, 0).empty());
  // Changing or removing an expiry moves the key in that order.
  Value* b = ks.FindForWrite("b", 0);
  ASSERT_NE(b, nullptr);
  ks.SetExpire("b", *b, 0);
  ks.Put("c", "new", 50);
  ks.Erase("d");
  EXPECT_EQ(ks.Expired(1000, 10), (std::vector<std::string>{"c", "a"}));
  EXPECT_EQ(ks.expires_count(), 2u);
  EXPECT_EQ(ks.NextExpiry(), 50);
}

// ---- versions and tombstones (WATCH) ----

TEST(KeyspaceTest, EveryChangeIsStampedWithTheCurrentIndex) {
  Keyspace ks;
  ks.set_index(LogIndex(4));
  Value& v = ks.Put("k", "1", 0);
  EXPECT_EQ(v.version, LogIndex(4));
  ks.set_index(LogIndex(7));
  Value* w = ks.FindForWrite("k", 0);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->version, LogIndex(4));  // looking is not changing
  w->bytes += "2";
  ks.Modified("k", *w, 1);
  EXPECT_EQ(ks.FindRaw("k")->version, LogIndex(7));
  EXPECT_EQ(ks.FindRaw("k")->bytes, "12");
  EXPECT_EQ(ks.bytes(), 3u);  // "k" and "12"
  ks.set_index(LogIndex(9));
  ks.SetExpire("k", *w, 5000);
  EXPECT_EQ(ks.FindRaw("k")->version, LogIndex(9));
  EXPECT_EQ(ks.FindRaw("k")->expire_ms, 5000);
  ks.set_index(LogIndex(11));
  ks.Put("k", "3", 0);  // a replace
  EXPECT_EQ(ks.FindRaw("k")->version, LogIndex(11));
  EXPECT_EQ(ks.expires_count(), 0u);
}

TEST(KeyspaceTest, VersionOfLiveAbsentAndDeletedKeys) {
  Keyspace ks;
  EXPECT_EQ(ks.VersionOf("never", 0), LogIndex(0));
  ks.set_index(LogIndex(3));
  ks.Put("k", "v", 0);
  EXPECT_EQ(ks.VersionOf("k", 0), LogIndex(3));
  ks.set_index(LogIndex(6));
  EXPECT_TRUE(ks.Erase("k"));
  EXPECT_FALSE(ks.Erase("k"));
  EXPECT_EQ(ks.VersionOf("k", 0), LogIndex(6));  // created and deleted is a change
  EXPECT_EQ(ks.tombstone_count(), 1u);
  // Recreating drops the tombstone.
  ks.set_index(LogIndex(8));
  ks.Put("k", "again", 0);
  EXPECT_EQ(ks.VersionOf("k", 0), LogIndex(8));
  EXPECT_EQ(ks.tombstone_count(), 0u);
  // An expired key not yet deleted is absent to WATCH too.
  ks.Put("e", "v", 100);
  EXPECT_EQ(ks.VersionOf("e", 99), LogIndex(8));
  EXPECT_EQ(ks.VersionOf("e", 100), LogIndex(0));
}

TEST(KeyspaceTest, EvictingATombstoneRaisesTheFloor) {
  Keyspace ks(/*tombstones_max=*/2);
  Touched touched;
  ks.set_touched(&touched);
  ks.set_index(LogIndex(1));
  for (const char* k : {"a", "b", "c", "d"}) ks.Put(k, "v", 0);
  ks.set_index(LogIndex(5));
  ks.Erase("b");
  ks.set_index(LogIndex(6));
  ks.Erase("a");
  EXPECT_EQ(ks.tombstone_count(), 2u);
  EXPECT_EQ(ks.tombstone_floor(), LogIndex(0));
  touched.clear();
  ks.set_index(LogIndex(9));
  ks.Erase("c");  // the oldest tombstone (b, deleted at 5) goes
  EXPECT_EQ(ks.tombstone_count(), 2u);
  EXPECT_EQ(ks.tombstone_floor(), LogIndex(5));
  EXPECT_EQ(ks.tombstones().count("b"), 0u);
  EXPECT_EQ(ks.VersionOf("b", 0), LogIndex(0));  // forgotten: the floor covers it
  EXPECT_EQ(ks.VersionOf("a", 0), LogIndex(6));
  EXPECT_EQ(ks.VersionOf("c", 0), LogIndex(9));
  EXPECT_EQ(Keys(touched, ks),
            (std::set<std::string>{"b", "c"}));  // the evicted tombstone is a change to persist
  ks.set_index(LogIndex(12));
  ks.Erase("d");
  EXPECT_EQ(ks.tombstone_floor(), LogIndex(6));
  EXPECT_EQ(ks.tombstone_count(), 2u);
  // The floor never goes down.
  ks.LoadMeta(LogIndex(100), LogIndex(0));
  ks.set_index(LogIndex(13));
  ks.Put("x", "", 0);
  ks.Erase("x");
  EXPECT_EQ(ks.tombstone_floor(), LogIndex(100));
}

TEST(KeyspaceTest, ClearSetsTheFlushIndexAndTouchesEveryKey) {
  Keyspace ks;
  ks.set_index(LogIndex(2));
  ks.Put("a", "1", 0);
  ks.Put("b", "2", 500);
  ks.Put("c", "3", 0);
  ks.set_index(LogIndex(3));
  ks.Erase("c");
  Touched touched;
  ks.set_touched(&touched);
  ks.set_index(LogIndex(10));
  ks.Clear();
  EXPECT_EQ(ks.flush_index(), LogIndex(10));
  EXPECT_EQ(ks.size(), 0u);
  EXPECT_EQ(ks.expires_count(), 0u);
  EXPECT_EQ(ks.tombstone_count(), 0u);  // the flush index stands for them all
  EXPECT_TRUE(ks.Expired(INT64_MAX, 10).empty());
  EXPECT_EQ(Keys(touched, ks), (std::set<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ks.VersionOf("a", 0), LogIndex(0));
  // Detached: no more tracking.
  ks.set_touched(nullptr);
  ks.Put("z", "", 0);
  EXPECT_EQ(touched.size(), 3u);
}

TEST(KeyspaceTest, ChangeTrackingSeesEveryKindOfWrite) {
  Keyspace ks;
  Touched touched;
  ks.set_index(LogIndex(1));
  ks.Put("a", "1", 0);
  ks.Put("b", "1", 0);
  ks.Put("c", "1", 0);
  ks.set_touched(&touched);
  ks.set_index(LogIndex(2));
  ks.Find("a", 0);
  ks.FindRaw("b");
  ks.VersionOf("c", 0);
  EXPECT_TRUE(touched.empty());  // reads change nothing
  Value* b = ks.FindForWrite("b", 0);
  ASSERT_NE(b, nullptr);
  ks.SetExpire("b", *b, 99);
  ks.Erase("c");
  ks.Put("d", "new", 0);
  EXPECT_EQ(Keys(touched, ks), (std::set<std::string>{"b", "c", "d"}));
}

TEST(KeyspaceTest, LoadRefusesDuplicatesAndTombstonesOfLiveKeys) {
  Keyspace ks;
  EXPECT_TRUE(ks.LoadValue("a", Value{.bytes = "1", .expire_ms = 70, .version = LogIndex(3)}));
  EXPECT_FALSE(ks.LoadValue("a", Value{.bytes = "2", .expire_ms = 0, .version = LogIndex(4)}));
  EXPECT_FALSE(ks.LoadTombstone("a", LogIndex(2)));
  EXPECT_TRUE(ks.LoadTombstone("t", LogIndex(5)));
  EXPECT_FALSE(ks.LoadTombstone("t", LogIndex(6)));
  EXPECT_FALSE(ks.LoadValue("t", Value{}));
  EXPECT_EQ(ks.FindRaw("a")->bytes, "1");
  EXPECT_EQ(ks.Expired(70, 10), (std::vector<std::string>{"a"}));
  EXPECT_EQ(ks.VersionOf("t", 0), LogIndex(5));
  ks.LoadMeta(LogIndex(4), LogIndex(2));
  EXPECT_EQ(ks.tombstone_floor(), LogIndex(4));
  EXPECT_EQ(ks.flush_index(), LogIndex(2));
}

// ---- records ----

TEST(KeyspaceRecordTest, ValueAndTombstoneRoundTrip) {
  const std::vector<Value> values = {
      Value{.bytes = "", .expire_ms = 0, .version = LogIndex(0)},
      Value{.bytes = "v", .expire_ms = 0, .version = LogIndex(1)},
      Value{.bytes = std::string("bin\0\xff\x80", 6),
            .expire_ms = 1'700'000'000'123,
            .version = LogIndex(300)},
      Value{.bytes = std::string(1000, 'x'), .expire_ms = INT64_MAX, .version = LogIndex::Max()},
  };
  for (const Value& v : values) {
    const std::string bytes = EncodeValueRecord(v);
    Result<DecodedRecord> r = DecodeRecord(bytes);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->tombstone);
    EXPECT_EQ(r->value, v);
  }
  for (LogIndex at : {LogIndex(0), LogIndex(1), LogIndex(128), LogIndex::Max()}) {
    Result<DecodedRecord> r = DecodeRecord(EncodeTombstoneRecord(at));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->tombstone);
    EXPECT_EQ(r->value.version, at);
    EXPECT_EQ(r->value.bytes, "");
    EXPECT_EQ(r->value.expire_ms, 0);
  }
  // The format is pinned: kind byte, varint version, varint expiry, bytes.
  EXPECT_EQ(EncodeValueRecord(Value{.bytes = "ab", .expire_ms = 300, .version = LogIndex(5)}),
            std::string("v\x05\xac\x02"
                        "ab",
                        6));
  EXPECT_EQ(EncodeTombstoneRecord(LogIndex(130)), std::string("t\x82\x01", 3));
}

TEST(KeyspaceRecordTest, CorruptRecordsAreRejected) {
  auto rejected = [](std::string_view bytes) {
    Result<DecodedRecord> r = DecodeRecord(bytes);
    return !r.ok() && r.status().code() == Code::kCorruption;
  };
  EXPECT_TRUE(rejected(""));
  EXPECT_TRUE(rejected(std::string("x\x01\x00", 3)));  // unknown kind
  EXPECT_TRUE(rejected(std::string("V\x01\x00", 3)));
  EXPECT_TRUE(rejected(EncodeTombstoneRecord(LogIndex(5)) + "z"));        // bytes after a tombstone
  EXPECT_TRUE(rejected("t"));                                             // no index
  EXPECT_TRUE(rejected("t\x85"));                                         // truncated varint
  EXPECT_TRUE(rejected("v"));                                             // no version
  EXPECT_TRUE(rejected("v\x85"));                                         // truncated version
  EXPECT_TRUE(rejected("v\x05"));                                         // no expiry
  EXPECT_TRUE(rejected("v\x05\xff"));                                     // truncated expiry
  EXPECT_TRUE(rejected(std::string("v\x01") + std::string(10, '\xff')));  // overlong varint
  // An expiry above INT64_MAX: 2^63 as a varint.
  EXPECT_TRUE(rejected(std::string("v\x01") + std::string(9, '\x80') + "\x01"));
  // Every truncation of a value record is either rejected or a shorter value.
  const Value v{.bytes = "abc", .expire_ms = 123456, .version = LogIndex(77777)};
  const std::string full = EncodeValueRecord(v);
  for (size_t n = 0; n < full.size(); ++n) {
    Result<DecodedRecord> r = DecodeRecord(std::string_view(full).substr(0, n));
    if (r.ok()) {
      EXPECT_NE(r->value, v);
    }
  }
}

}  // namespace
}  // namespace synod::kv

namespace synod::kv {
namespace {

// bytes() follows every change: puts, in-place changes, expiry, erases, a flush, a split, a
// reload; and always equals the sum over what is stored.
TEST(KeyspaceBytesTest, BytesCountKeysAndValuesThroughEveryKindOfChange) {
  Keyspace ks;
  auto sum = [&ks] {
    uint64_t n = 0;
    for (const auto& [k, v] : ks.map()) n += k.bytes.size() + v.bytes.size();
    return n;
  };
  ks.set_index(LogIndex(1));
  ks.Put("a", "xyz", 0);
  ks.Put("bb", "", 0);
  EXPECT_EQ(ks.bytes(), 6u);
  ks.Put("a", "longer value", 0);  // replaced
  EXPECT_EQ(ks.bytes(), sum());
  Value* v = ks.FindForWrite("bb", 0);
  ASSERT_NE(v, nullptr);
  const size_t was = v->bytes.size();
  v->bytes += "appended";
  ks.Modified("bb", *v, was);
  EXPECT_EQ(ks.bytes(), sum());
  ks.SetExpire("bb", *v, 10);
  EXPECT_EQ(ks.bytes(), sum());
  EXPECT_EQ(ks.FindForWrite("bb", 20), nullptr);  // expired: deleted
  EXPECT_EQ(ks.bytes(), sum());
  for (int i = 0; i < 200; ++i) ks.Put("key" + std::to_string(i), std::string(i, 'v'), 0);
  EXPECT_EQ(ks.bytes(), sum());
  EXPECT_TRUE(ks.Erase("key7"));
  EXPECT_EQ(ks.bytes(), sum());
  Keyspace right = ks.SplitOff(8192);
  EXPECT_EQ(ks.bytes(), sum());
  uint64_t right_sum = 0;
  for (const auto& [k, val] : right.map()) right_sum += k.bytes.size() + val.bytes.size();
  EXPECT_EQ(right.bytes(), right_sum);
  EXPECT_GT(right.bytes(), 0u);
  Keyspace copy(ks);
  EXPECT_EQ(copy.bytes(), ks.bytes());
  Keyspace loaded;
  for (const auto& [k, val] : ks.map()) ASSERT_TRUE(loaded.LoadValue(k.bytes, val));
  EXPECT_EQ(loaded.bytes(), ks.bytes());
  ks.Clear();
  EXPECT_EQ(ks.bytes(), 0u);
}

}  // namespace
}  // namespace synod::kv
