// Where a shard splits by size, and SplitSlot's checks. (The split itself: kv/split_test.cc,
// store_test.cc, the simulator's split seeds and end to end.)
#include "cluster/logic/split.h"

#include <gtest/gtest.h>

#include <string>

#include "common/slot.h"
#include "kv/kv_test_util.h"

namespace synod::cluster {
namespace {

// A key of slot `slot` exactly (a hash tag found by search), distinct for each n.
std::string KeyOfSlot(uint16_t slot, int n) {
  for (int i = 0;; ++i) {
    const std::string tag = "t" + std::to_string(i);
    if (KeySlot(tag) == slot) return "{" + tag + "}" + std::to_string(n);
  }
}

kv::Command Set(const std::string& key, size_t bytes) {
  return kv::testing::Redis({"SET", key, std::string(bytes, 'x')});
}

TEST(SizeSplit, NothingBelowTheBoundOrWithoutARange) {
  kv::testing::Machine m;
  m.sm().SetRange(SlotRange{0, 99});
  m.Apply(Set(KeyOfSlot(5, 0), 100));
  EXPECT_EQ(DecideSizeSplit(m.sm(), 1000).kind, SizeSplit::Kind::kNone);
  EXPECT_EQ(DecideSizeSplit(m.sm(), 0).kind, SizeSplit::Kind::kNone);  // 0: never
  kv::testing::Machine meta;                                           // no range: the meta shard
  meta.Apply(Set("k", 5000));
  EXPECT_EQ(DecideSizeSplit(meta.sm(), 1000).kind, SizeSplit::Kind::kNone);
}

TEST(SizeSplit, TheSlotThatHalvesTheBytes) {
  kv::testing::Machine m;
  m.sm().SetRange(SlotRange{0, 99});
  // 10 slots of 100 bytes each in slots 10..19, and one big slot 60 of 1000: half is at 1000.
  for (uint16_t s = 10; s < 20; ++s) m.Apply(Set(KeyOfSlot(s, 0), 100));
  m.Apply(Set(KeyOfSlot(60, 0), 1000));
  const SizeSplit d = DecideSizeSplit(m.sm(), 1500);
  ASSERT_EQ(d.kind, SizeSplit::Kind::kSplit);
  // Slots 10..19 on the left (about 1,000 bytes with the keys), slot 60 on the right.
  EXPECT_GT(d.at, 19);
  EXPECT_LE(d.at, 60);
  // Even bytes per slot: the middle.
  kv::testing::Machine even;
  even.sm().SetRange(SlotRange{0, 99});
  for (uint16_t s = 0; s < 100; ++s) even.Apply(Set(KeyOfSlot(s, 0), 50));
  const SizeSplit e = DecideSizeSplit(even.sm(), 1000);
  ASSERT_EQ(e.kind, SizeSplit::Kind::kSplit);
  EXPECT_GE(e.at, 48);
  EXPECT_LE(e.at, 52);
}

TEST(SizeSplit, AllTheBytesInOneSlotCannotSplit) {
  kv::testing::Machine m;
  m.sm().SetRange(SlotRange{0, 99});
  for (int n = 0; n < 20; ++n) m.Apply(Set(KeyOfSlot(42, n), 100));
  EXPECT_EQ(DecideSizeSplit(m.sm(), 1000).kind, SizeSplit::Kind::kOneSlot);
  // A shard of one slot, likewise.
  kv::testing::Machine one;
  one.sm().SetRange(SlotRange{42, 42});
  for (int n = 0; n < 20; ++n) one.Apply(Set(KeyOfSlot(42, n), 100));
  EXPECT_EQ(DecideSizeSplit(one.sm(), 1000).kind, SizeSplit::Kind::kOneSlot);
  // A big slot at an edge with a little beside it: split beside it.
  kv::testing::Machine edge;
  edge.sm().SetRange(SlotRange{42, 99});
  for (int n = 0; n < 20; ++n) edge.Apply(Set(KeyOfSlot(42, n), 100));
  edge.Apply(Set(KeyOfSlot(50, 0), 10));
  const SizeSplit d = DecideSizeSplit(edge.sm(), 1000);
  ASSERT_EQ(d.kind, SizeSplit::Kind::kSplit);
  EXPECT_EQ(d.at, 43);
}

TEST(SplitSlot, TheMiddleByDefaultAndBadSlotsRefused) {
  ShardDescriptor d;
  d.group = GroupId(5);
  d.first_slot = 100;
  d.last_slot = 199;
  d.voters = {NodeId(1)};
  EXPECT_EQ(*SplitSlot(d, std::nullopt), 150);
  EXPECT_EQ(*SplitSlot(d, 101), 101);
  EXPECT_EQ(*SplitSlot(d, 199), 199);
  EXPECT_FALSE(SplitSlot(d, 100).ok());  // the left side would be empty
  EXPECT_FALSE(SplitSlot(d, 200).ok());
  EXPECT_FALSE(SplitSlot(d, 7).ok());
  d.last_slot = 100;
  EXPECT_FALSE(SplitSlot(d, std::nullopt).ok());  // one slot
  d.group = kMetaGroup;
  d.last_slot = 199;
  EXPECT_FALSE(SplitSlot(d, 150).ok());
}

TEST(LoadSplit, AShardOverTheBoundForAWholeWindowSplitsWhereItsWritesHalve) {
  LoadTracker t(/*window_seconds=*/3);
  const GroupId g(4);
  const SlotRange range{100, 199};
  // Slot 120 takes 300 writes a second, slot 180 takes 100, slot 150 takes 200.
  const std::map<GroupId, std::map<uint16_t, uint64_t>> second = {
      {g, {{120, 300}, {150, 200}, {180, 100}}}};
  t.AddSecond(second, {g});
  t.AddSecond(second, {g});
  EXPECT_EQ(t.Decide(g, range, 500).kind, SizeSplit::Kind::kNone);  // not a whole window yet
  t.AddSecond(second, {g});
  EXPECT_DOUBLE_EQ(t.Rate(g), 600);
  EXPECT_EQ(t.Decide(g, range, 600).kind, SizeSplit::Kind::kNone);  // not over the bound
  EXPECT_EQ(t.Decide(g, range, 0).kind, SizeSplit::Kind::kNone);    // never
  const SizeSplit d = t.Decide(g, range, 500);
  ASSERT_EQ(d.kind, SizeSplit::Kind::kSplit);
  EXPECT_EQ(d.at, 121);  // 300 | 300
  // A quiet second brings the average under: no split.
  t.AddSecond({}, {g});
  EXPECT_DOUBLE_EQ(t.Rate(g), 400);
  EXPECT_EQ(t.Decide(g, range, 500).kind, SizeSplit::Kind::kNone);
  // Not led any more: forgotten, and a new window when led again.
  t.AddSecond(second, {});
  EXPECT_DOUBLE_EQ(t.Rate(g), 0);
  t.AddSecond(second, {g});
  EXPECT_EQ(t.Decide(g, range, 500).kind, SizeSplit::Kind::kNone);
}

TEST(LoadSplit, AllTheWritesInOneSlotCannotSplit) {
  LoadTracker t(/*window_seconds=*/1);
  const GroupId g(4);
  t.AddSecond({{g, {{150, 5000}}}}, {g});
  EXPECT_EQ(t.Decide(g, SlotRange{100, 199}, 1000).kind, SizeSplit::Kind::kOneSlot);
  // At the edges of the range: a hot first slot splits after it, a hot last slot before it.
  t.AddSecond({{g, {{100, 5000}, {130, 10}}}}, {g});
  const SizeSplit first = t.Decide(g, SlotRange{100, 199}, 1000);
  ASSERT_EQ(first.kind, SizeSplit::Kind::kSplit);
  EXPECT_EQ(first.at, 101);
  t.AddSecond({{g, {{199, 5000}, {130, 10}}}}, {g});
  const SizeSplit last = t.Decide(g, SlotRange{100, 199}, 1000);
  ASSERT_EQ(last.kind, SizeSplit::Kind::kSplit);
  EXPECT_EQ(last.at, 199);
}

}  // namespace
}  // namespace synod::cluster
