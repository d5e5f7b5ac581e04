// The split of a shard's state machine: the range it owns, the split command, the right half's
// state, and the refusal of commands routed by a map from before the split.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/slot.h"
#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::KeyIn;
using testing::LoadRecords;
using testing::Machine;
using testing::Put;
using testing::Redis;
using testing::Routed;
using testing::WithSession;

Command SplitCmd(uint16_t first, uint16_t last, uint16_t at, uint64_t child) {
  return Redis({std::string(kSplitCommand), std::to_string(first), std::to_string(last),
                std::to_string(at), std::to_string(child), "4"});
}

TEST(SplitTest, TheRightHalfTakesItsKeysTombstonesSessionsAndSettings) {
  Machine m;
  m.sm().SetRange(SlotRange{0, 16383});
  std::vector<std::string> left;
  std::vector<std::string> right;
  for (int i = 0; i < 50; ++i) {
    left.push_back(KeyIn(0, 8191, i));
    right.push_back(KeyIn(8192, 16383, i));
    ASSERT_TRUE(m.Apply(Routed(Put(left.back(), "l" + std::to_string(i)))).ok());
    ASSERT_TRUE(m.Apply(Routed(Put(right.back(), "r" + std::to_string(i)))).ok());
  }
  // A deleted key on each side leaves a tombstone; one key on the right expires later.
  ASSERT_EQ(m.Apply(Routed(Redis({"DEL", right[0]}))).number, 1);
  ASSERT_EQ(m.Apply(Routed(Redis({"DEL", left[0]}))).number, 1);
  ASSERT_EQ(m.Apply(Routed(Redis({"PEXPIRE", right[1], "100000"}, 1000))).number, 1);
  ASSERT_TRUE(m.Apply(WithSession(Routed(Put(left[2], "s")), 77, 1)).ok());
  ASSERT_TRUE(m.Apply(Redis({std::string(kConfigSetCommand), "requirepass", "pw"})).ok());

  const LogIndex at_index = m.next_index();
  ASSERT_EQ(m.Apply(SplitCmd(0, 16383, 8192, 9)), Reply::Ok());
  std::optional<SplitOff> off = m.sm().TakeSplit();
  ASSERT_TRUE(off.has_value());
  EXPECT_FALSE(m.sm().TakeSplit().has_value());  // once
  EXPECT_EQ(off->child, 9u);
  EXPECT_EQ(off->epoch, 4u);
  EXPECT_EQ(off->range, (SlotRange{8192, 16383}));
  EXPECT_EQ(off->index, at_index);
  EXPECT_EQ(m.sm().range(), (SlotRange{0, 8191}));

  StateMachine child;
  child.Adopt(std::move(off->state));
  EXPECT_EQ(child.range(), (SlotRange{8192, 16383}));
  EXPECT_EQ(child.applied_index(), at_index);
  EXPECT_EQ(child.key_count(), 49u);  // right[0] was deleted
  EXPECT_EQ(m.sm().key_count(), 49u);
  for (int i = 1; i < 50; ++i) {
    EXPECT_EQ(child.Get(right[i]), "r" + std::to_string(i)) << i;
    EXPECT_FALSE(m.sm().Get(right[i]).has_value()) << i;
    EXPECT_FALSE(child.Get(left[i]).has_value()) << i;
  }
  EXPECT_EQ(child.keyspace().tombstones().count(right[0]), 1u);
  EXPECT_EQ(child.keyspace().tombstones().count(left[0]), 0u);
  EXPECT_EQ(m.sm().keyspace().tombstones().count(left[0]), 1u);
  EXPECT_EQ(m.sm().keyspace().tombstones().count(right[0]), 0u);
  EXPECT_EQ(child.keyspace().expires_count(), 1u);
  EXPECT_EQ(m.sm().keyspace().expires_count(), 0u);
  EXPECT_EQ(child.session_count(), 1u);
  EXPECT_EQ(child.config("requirepass"), "pw");
  EXPECT_EQ(child.clock_ms(), m.sm().clock_ms());

  // The halves survive a snapshot and a restore, ranges included.
  StateMachine copy;
  ASSERT_TRUE(copy.Restore(child.Snapshot()).ok());
  EXPECT_EQ(copy.Digest(), child.Digest());
  EXPECT_EQ(copy.range(), child.range());
  auto r = SnapshotRange(child.Snapshot());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (SlotRange{8192, 16383}));
  auto mr = MetaRange(m.sm().EncodeMeta());
  ASSERT_TRUE(mr.ok());
  EXPECT_EQ(*mr, (SlotRange{0, 8191}));
}

TEST(SplitTest, ACommandRoutedToTheOldOwnerIsRefusedAndChangesNothing) {
  Machine m;
  m.sm().SetRange(SlotRange{100, 200});
  const std::string right = KeyIn(150, 200, 1);
  const std::string left = KeyIn(100, 149, 2);
  ASSERT_EQ(m.Apply(SplitCmd(100, 200, 150, 5)), Reply::Ok());
  (void)m.sm().TakeSplit();
  const uint64_t digest = m.sm().Digest();
  Reply r = m.Apply(WithSession(Routed(Put(right, "v")), 8, 1));
  EXPECT_EQ(r.code, ReplyCode::kWrongShard);
  EXPECT_FALSE(m.sm().Get(right).has_value());
  // A retry of that seq is answered from the session: still refused, still nothing applied.
  EXPECT_EQ(m.Apply(WithSession(Routed(Put(right, "v")), 8, 1)).code, ReplyCode::kWrongShard);
  EXPECT_NE(m.sm().Digest(), digest);  // the session changed, nothing else
  EXPECT_FALSE(m.sm().Get(right).has_value());
  // A Redis write whose slots straddle the new boundary is refused whole.
  Command both = Redis({"MSET", left, "1", right, "2"});
  both.slots = SlotRange{KeySlot(left), KeySlot(right)};
  EXPECT_EQ(m.Apply(both).code, ReplyCode::kWrongShard);
  EXPECT_FALSE(m.sm().Get(left).has_value());
  // The slots it kept are served as before.
  EXPECT_TRUE(m.Apply(Routed(Put(left, "ok"))).ok());
  EXPECT_EQ(m.sm().Get(left), "ok");
  // Expiry proposed before the split skips the keys it gave away.
  EXPECT_EQ(m.Apply(testing::Expire({right}, 1)).number, 0);
}

TEST(SplitTest, ThePlantedBugAppliesStaleRoutes) {
  Options o;
  o.testing_bug_stale_route = true;
  Machine m(o);
  m.sm().SetRange(SlotRange{100, 200});
  ASSERT_EQ(m.Apply(SplitCmd(100, 200, 150, 5)), Reply::Ok());
  const std::string right = KeyIn(150, 200, 1);
  EXPECT_TRUE(m.Apply(Routed(Put(right, "v"))).ok());
  EXPECT_EQ(m.sm().Get(right), "v");
}

TEST(SplitTest, AStaleRepeatedOrMalformedSplitIsAnErrorAndChangesNothing) {
  Machine m;
  m.sm().SetRange(SlotRange{0, 999});
  EXPECT_TRUE(m.Apply(SplitCmd(0, 998, 500, 3)).is_error());  // not exactly the range
  EXPECT_TRUE(m.Apply(SplitCmd(0, 999, 0, 3)).is_error());    // the left side would be empty
  EXPECT_TRUE(m.Apply(SplitCmd(0, 999, 1000, 3)).is_error());
  EXPECT_TRUE(m.Apply(SplitCmd(0, 999, 500, 0)).is_error());  // no child id
  EXPECT_TRUE(m.Apply(Redis({std::string(kSplitCommand), "0", "999", "x", "3", "4"})).is_error());
  EXPECT_TRUE(m.Apply(Redis({std::string(kSplitCommand), "0", "999"})).is_error());
  m.sm().set_split_allowed(false);
  EXPECT_TRUE(m.Apply(SplitCmd(0, 999, 500, 3)).is_error());
  m.sm().set_split_allowed(true);
  EXPECT_FALSE(m.sm().TakeSplit().has_value());
  EXPECT_EQ(m.sm().range(), (SlotRange{0, 999}));
  EXPECT_EQ(m.Apply(SplitCmd(0, 999, 500, 3)), Reply::Ok());
  EXPECT_TRUE(m.sm().TakeSplit().has_value());
  EXPECT_TRUE(m.Apply(SplitCmd(0, 999, 500, 3)).is_error());  // repeated: the range changed
  // A shard without a range (the meta shard) never splits.
  Machine meta;
  EXPECT_TRUE(meta.Apply(SplitCmd(0, 16383, 500, 3)).is_error());
}

TEST(SplitTest, LoadingAStoreReadOverAWiderSpanKeepsOnlyTheOwnedSlots) {
  StateMachine sm;
  sm.SetRange(SlotRange{0, 8191});
  const std::string meta = sm.EncodeMeta();
  const std::string mine = KeyIn(0, 8191, 1);
  const std::string theirs = KeyIn(8192, 16383, 2);
  Value v;
  v.bytes = "x";
  StateMachine loaded;
  ASSERT_TRUE(LoadRecords(loaded, LogIndex(5), meta,
                          {{mine, EncodeValueRecord(v)}, {theirs, EncodeValueRecord(v)}})
                  .ok());
  EXPECT_EQ(loaded.key_count(), 1u);
  EXPECT_EQ(loaded.Get(mine), "x");
  EXPECT_EQ(loaded.range(), (SlotRange{0, 8191}));
}

TEST(SplitTest, TheAllocatorHandsOutDistinctIdsAboveTheFloor) {
  Machine m;
  const std::string cmd(kAllocateIdCommand);
  EXPECT_EQ(m.Apply(Redis({cmd, "group_seq", "7"})).number, 8);
  EXPECT_EQ(m.Apply(Redis({cmd, "group_seq", "7"})).number, 9);
  EXPECT_EQ(m.Apply(Redis({cmd, "group_seq", "20"})).number, 21);
  EXPECT_EQ(m.Apply(Redis({cmd, "group_seq", "3"})).number, 22);
  EXPECT_TRUE(m.Apply(Redis({cmd, "group_seq", "-1"})).is_error());
  EXPECT_TRUE(m.Apply(Redis({cmd, "group_seq"})).is_error());
}

TEST(SplitTest, CommandSlotsSurviveTheWireAndBadOnesAreRefused) {
  Command c = Put("k", "v");
  c.slots = SlotRange{3, 9};
  auto d = DecodeCommand(EncodeCommand(c));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->slots, c.slots);
  c.slots = std::nullopt;
  d = DecodeCommand(EncodeCommand(c));
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->slots.has_value());
  c.slots = SlotRange{9, 3};  // first > last
  EXPECT_FALSE(DecodeCommand(EncodeCommand(c)).ok());
}

}  // namespace
}  // namespace synod::kv
