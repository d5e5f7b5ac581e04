// Merges of two shards' state machines (kv/state_machine.h, kFreezeCommand ... kUnfreezeCommand):
// the frozen shard refuses everything but its merge's commands and keeps its state; the
// absorbing shard takes its keys, sessions and slots; cancelled tokens are refused for ever.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/slot.h"
#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::KeyIn;
using testing::Machine;
using testing::Put;
using testing::Redis;
using testing::Routed;
using testing::WithSession;

Command Freeze(uint64_t into, uint64_t token) {
  return Redis({std::string(kFreezeCommand), std::to_string(into), std::to_string(token)});
}
Command MergeCmd(SlotRange mine, uint64_t from, uint64_t token, const std::string& state) {
  return Redis({std::string(kMergeCommand), std::to_string(mine.first), std::to_string(mine.last),
                std::to_string(from), std::to_string(token), "9", state});
}
Command Cancel(uint64_t token) {
  return Redis({std::string(kCancelMergeCommand), std::to_string(token)});
}
Command Unfreeze(uint64_t token) {
  return Redis({std::string(kUnfreezeCommand), std::to_string(token)});
}

// Two shards: L owns 0-8191, R 8192-16383, each with keys.
struct Pair {
  Machine l, r;
  std::vector<std::string> lkeys, rkeys;
  Pair() {
    l.sm().SetRange(SlotRange{0, 8191});
    r.sm().SetRange(SlotRange{8192, 16383});
    for (int i = 0; i < 20; ++i) {
      lkeys.push_back(KeyIn(0, 8191, i, "m"));
      rkeys.push_back(KeyIn(8192, 16383, i, "m"));
      EXPECT_TRUE(l.Apply(Routed(Put(lkeys.back(), "l" + std::to_string(i)))).ok());
      EXPECT_TRUE(r.Apply(Routed(Put(rkeys.back(), "r" + std::to_string(i)))).ok());
    }
  }
};

TEST(MergeTest, AFrozenShardRefusesEverythingButItsMergeAndKeepsItsState) {
  Pair p;
  const LogIndex at = p.r.next_index();
  EXPECT_EQ(p.r.Apply(Freeze(1, 77)).number, static_cast<int64_t>(at.value()));
  ASSERT_TRUE(p.r.sm().frozen().has_value());
  EXPECT_EQ(p.r.sm().frozen()->into, 1u);
  StateMachine before;
  ASSERT_TRUE(before.Restore(p.r.sm().Snapshot()).ok());
  const size_t sessions = p.r.sm().session_count();
  // A write in a session, a write without, an expiry: refused whole, no session made.
  EXPECT_EQ(p.r.Apply(WithSession(Routed(Put(p.rkeys[0], "x")), 5, 1)).code,
            ReplyCode::kWrongShard);
  EXPECT_EQ(p.r.Apply(Routed(Redis({"DEL", p.rkeys[1]}))).code, ReplyCode::kWrongShard);
  EXPECT_EQ(p.r.Apply(testing::Expire({p.rkeys[2]}, 1)).code, ReplyCode::kWrongShard);
  EXPECT_EQ(p.r.sm().session_count(), sessions);
  EXPECT_EQ(p.r.Value(p.rkeys[0]), "r0");
  EXPECT_FALSE(p.r.sm().Owns(uint16_t{9000}));
  // The same freeze again answers the same index; another merge's is refused; a split too.
  EXPECT_EQ(p.r.Apply(Freeze(1, 77)).number, static_cast<int64_t>(at.value()));
  EXPECT_TRUE(p.r.Apply(Freeze(3, 78)).is_error());
  EXPECT_EQ(p.r.Apply(Redis({std::string(kSplitCommand), "8192", "16383", "9000", "5", "2"})).code,
            ReplyCode::kWrongShard);
  EXPECT_FALSE(p.r.sm().TakeSplit().has_value());
  // Only the applied index moved: the state a merge carries is the freeze's.
  StateMachine after;
  ASSERT_TRUE(after.Restore(p.r.sm().Snapshot()).ok());
  EXPECT_TRUE(after.frozen().has_value());
  EXPECT_TRUE(after.keyspace() == before.keyspace());
  EXPECT_EQ(after.session_count(), before.session_count());
  EXPECT_EQ(after.clock_ms(), before.clock_ms());
  // Unfrozen by its token only; then it serves again.
  EXPECT_TRUE(p.r.Apply(Unfreeze(78)).is_error());
  EXPECT_TRUE(p.r.Apply(Unfreeze(77)).ok());
  EXPECT_TRUE(p.r.Apply(Routed(Put(p.rkeys[0], "x"))).ok());
  EXPECT_EQ(p.r.Value(p.rkeys[0]), "x");
}

TEST(MergeTest, TheAbsorbingShardTakesKeysSessionsAndSlots) {
  Pair p;
  // Sessions: client 5 wrote to both (a later seq in R), client 6 only to R.
  ASSERT_TRUE(p.l.Apply(WithSession(Routed(Put(p.lkeys[0], "a")), 5, 1)).ok());
  ASSERT_TRUE(p.r.Apply(WithSession(Routed(Put(p.rkeys[5], "e")), 5, 1)).ok());
  const Reply b = p.r.Apply(WithSession(Routed(Put(p.rkeys[0], "b")), 5, 2));
  const Reply c = p.r.Apply(WithSession(Routed(Put(p.rkeys[1], "c")), 6, 1));
  ASSERT_TRUE(b.ok() && c.ok());
  ASSERT_EQ(p.r.Apply(Routed(Redis({"PEXPIRE", p.rkeys[2], "100000"}, 1000))).number, 1);
  ASSERT_TRUE(p.r.Apply(Freeze(1, 77)).number > 0);
  const std::string state = p.r.sm().Snapshot();

  p.l.sm().set_track_changes(true);
  (void)p.l.sm().TakeChanges();
  ASSERT_EQ(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 77, state)), Reply::Ok());
  std::optional<MergeIn> in = p.l.sm().TakeMerge();
  ASSERT_TRUE(in.has_value());
  EXPECT_FALSE(p.l.sm().TakeMerge().has_value());
  EXPECT_EQ(in->from, 2u);
  EXPECT_EQ(in->epoch, 9u);
  EXPECT_EQ(in->range, (SlotRange{8192, 16383}));
  EXPECT_EQ(p.l.sm().range(), (SlotRange{0, 16383}));
  EXPECT_EQ(p.l.sm().key_count(), 40u);
  EXPECT_EQ(p.l.Value(p.rkeys[0]), "b");
  EXPECT_EQ(p.l.Value(p.rkeys[1]), "c");
  EXPECT_EQ(p.l.Value(p.lkeys[0]), "a");
  EXPECT_EQ(p.l.Read({"PTTL", p.rkeys[2]}, 1000).number, 100000);
  // Every absorbed key is a change to store.
  const StateChanges changes = p.l.sm().TakeChanges();
  EXPECT_GE(changes.data.size(), 20u);
  // Retries are answered from the absorbed sessions: client 5's seq 2 (R's) and client 6's.
  EXPECT_EQ(p.l.Apply(WithSession(Routed(Put(p.rkeys[0], "again")), 5, 2)), b);
  EXPECT_EQ(p.l.Value(p.rkeys[0]), "b");  // not applied again
  EXPECT_EQ(p.l.Apply(WithSession(Routed(Put(p.rkeys[1], "again")), 6, 1)), c);
  EXPECT_EQ(p.l.Value(p.rkeys[1]), "c");
  EXPECT_EQ(p.l.Apply(WithSession(Routed(Put(p.lkeys[0], "old")), 5, 1)).code,
            ReplyCode::kStaleRequest);
  // A WATCH from before the merge counts as changed (the floor rose to the merge's index).
  EXPECT_GE(p.l.sm().keyspace().tombstone_floor(), in->index);
  // The merged state survives a snapshot round trip with its tokens.
  StateMachine copy;
  ASSERT_TRUE(copy.Restore(p.l.sm().Snapshot()).ok());
  EXPECT_EQ(copy.Digest(), p.l.sm().Digest());
  // A cancel of the merged token says it merged; a second merge of it is refused.
  EXPECT_EQ(p.l.Apply(Cancel(77)).number, 1);
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 16383}, 2, 77, state)).is_error());
}

TEST(MergeTest, AMergeInItsOwnSessionIntoAShardFullOfSessionsKeepsTheBound) {
  // Regression: the merge's own session was added after the absorbed ones filled the table (an
  // assertion on every replica, for ever after).
  Options o;
  o.sessions_max = 3;
  Machine l(o), r(o);
  l.sm().SetRange(SlotRange{0, 8191});
  r.sm().SetRange(SlotRange{8192, 16383});
  for (uint64_t c = 1; c <= 3; ++c) {
    ASSERT_TRUE(l.Apply(WithSession(Routed(Put(KeyIn(0, 8191, 1, "m"), "l")), c, 1)).ok());
    ASSERT_TRUE(r.Apply(WithSession(Routed(Put(KeyIn(8192, 16383, 1, "m"), "r")), 10 + c, 1)).ok());
  }
  ASSERT_TRUE(r.Apply(WithSession(Freeze(1, 77), 20, 1)).number > 0);
  const Reply merged =
      l.Apply(WithSession(MergeCmd(SlotRange{0, 8191}, 2, 77, r.sm().Snapshot()), 21, 1));
  ASSERT_EQ(merged, Reply::Ok());
  EXPECT_EQ(l.sm().session_count(), 3u);
  // The merge's own session is kept (the latest): its retry is answered, not applied again.
  EXPECT_EQ(l.Apply(WithSession(MergeCmd(SlotRange{0, 8191}, 2, 77, r.sm().Snapshot()), 21, 1)),
            merged);
}

TEST(MergeTest, TheLatestTokensAreKeptWhateverTheirValues) {
  // Regression: the bounded token lists dropped the smallest, so a new (random) token was
  // usually dropped at once and its merge's decision forgotten: a merge given up could apply.
  Pair p;
  for (uint64_t t = 0; t < kMergeTokensMax + 10; ++t) {
    ASSERT_EQ(p.l.Apply(Cancel(UINT64_MAX - t)).number, 0);  // large ones first
  }
  ASSERT_EQ(p.l.Apply(Cancel(5)).number, 0);  // a small one, the latest: given up
  ASSERT_TRUE(p.r.Apply(Freeze(1, 5)).number > 0);
  StateMachine restored;
  ASSERT_TRUE(restored.Restore(p.l.sm().Snapshot()).ok());
  EXPECT_EQ(restored.Digest(), p.l.sm().Digest());
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 5, p.r.sm().Snapshot())).is_error());
  EXPECT_EQ(p.l.sm().range(), (SlotRange{0, 8191}));
  // The same after a snapshot round trip.
  Machine back;
  ASSERT_TRUE(back.sm().Restore(restored.Snapshot()).ok());
  EXPECT_TRUE(back.Apply(MergeCmd(SlotRange{0, 8191}, 2, 5, p.r.sm().Snapshot())).is_error());
  EXPECT_EQ(back.sm().range(), (SlotRange{0, 8191}));
}

TEST(MergeTest, TheAbsorbedShardsOwnMergeDecisionsCarryOver) {
  // R had absorbed a merge (token 9) and refused one (token 8) before it was frozen itself: the
  // shard that absorbs R answers for both (a frozen shard that waited for R asks it).
  Machine l, r, far;
  l.sm().SetRange(SlotRange{0, 8191});
  r.sm().SetRange(SlotRange{8192, 15999});
  far.sm().SetRange(SlotRange{16000, 16383});
  ASSERT_EQ(r.Apply(Cancel(8)).number, 0);
  ASSERT_TRUE(far.Apply(Freeze(2, 9)).number > 0);
  ASSERT_EQ(r.Apply(MergeCmd(SlotRange{8192, 15999}, 3, 9, far.sm().Snapshot())), Reply::Ok());
  ASSERT_TRUE(r.Apply(Freeze(1, 77)).number > 0);
  ASSERT_EQ(l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 77, r.sm().Snapshot())), Reply::Ok());
  EXPECT_EQ(l.sm().range(), (SlotRange{0, 16383}));
  EXPECT_EQ(l.Apply(Cancel(9)).number, 1);  // merged (into R, now into L)
  EXPECT_EQ(l.Apply(Cancel(8)).number, 0);  // refused still
  EXPECT_EQ(l.Apply(Cancel(77)).number, 1);
  // L records both shards it now stands for (R's own record came with R): its leader makes
  // sure the meta shard holds both tombstones. A snapshot and the stored meta keep them.
  const std::vector<Absorbed> both = {Absorbed{3, SlotRange{16000, 16383}, 9},
                                      Absorbed{2, SlotRange{8192, 16383}, 9}};
  EXPECT_EQ(l.sm().absorbed(), both);
  StateMachine copy;
  ASSERT_TRUE(copy.Restore(l.sm().Snapshot()).ok());
  EXPECT_EQ(copy.absorbed(), both);
  EXPECT_EQ(copy.Digest(), l.sm().Digest());
  StateMachine loaded;
  ASSERT_TRUE(loaded
                  .LoadState(
                      l.sm().applied_index(), l.sm().EncodeMeta(),
                      [](std::string*, std::string*) { return false; },
                      [](uint64_t*, std::string*) { return false; })
                  .ok());
  EXPECT_EQ(loaded.absorbed(), both);
  // Not a state that differs only there.
  StateMachine other;
  ASSERT_TRUE(other.Restore(r.sm().Snapshot()).ok());
  EXPECT_NE(other.absorbed(), both);
}

TEST(MergeTest, ACancelledTokenIsRefusedForEverAndBadMergesChangeNothing) {
  Pair p;
  ASSERT_TRUE(p.r.Apply(Freeze(1, 77)).number > 0);
  const std::string state = p.r.sm().Snapshot();
  // Wrong range, a state frozen for another token, not frozen, garbage, not adjacent.
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8000}, 2, 77, state)).is_error());
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 78, state)).is_error());
  Machine unfrozen;
  unfrozen.sm().SetRange(SlotRange{8192, 16383});
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 77, unfrozen.sm().Snapshot())).is_error());
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 77, "garbage")).is_error());
  Machine far;
  far.sm().SetRange(SlotRange{9000, 16383});
  ASSERT_TRUE(far.Apply(Freeze(1, 77)).number > 0);
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 77, far.sm().Snapshot())).is_error());
  EXPECT_TRUE(p.l.Apply(Redis({std::string(kMergeCommand), "x"})).is_error());
  EXPECT_EQ(p.l.sm().range(), (SlotRange{0, 8191}));
  EXPECT_EQ(p.l.sm().key_count(), 20u);
  // Cancelled first: the merge that comes after is refused, and R may unfreeze.
  EXPECT_EQ(p.l.Apply(Cancel(77)).number, 0);
  EXPECT_TRUE(p.l.Apply(MergeCmd(SlotRange{0, 8191}, 2, 77, state)).is_error());
  EXPECT_EQ(p.l.sm().range(), (SlotRange{0, 8191}));
  EXPECT_TRUE(p.r.Apply(Unfreeze(77)).ok());
  EXPECT_FALSE(p.r.sm().frozen().has_value());
}

TEST(MergeTest, TokensAreBoundedAndAutomaticSplitsMakeMergeableShards) {
  Machine m;
  m.sm().SetRange(SlotRange{0, 16383});
  for (uint64_t t = 1; t <= kMergeTokensMax + 10; ++t) ASSERT_EQ(m.Apply(Cancel(t)).number, 0);
  // The shards absorbed too: the latest kMergeTokensMax (1,034 merges of one-slot shards).
  for (uint64_t g = 0; g < kMergeTokensMax + 10; ++g) {
    const auto slot = static_cast<uint16_t>(16383 - g);
    Machine tiny;
    tiny.sm().SetRange(SlotRange{slot, slot});
    ASSERT_TRUE(tiny.Apply(Freeze(1, 5000 + g)).number > 0);
    m.sm().SetRange(SlotRange{0, static_cast<uint16_t>(slot - 1)});
    ASSERT_EQ(m.Apply(MergeCmd(*m.sm().range(), 100 + g, 5000 + g, tiny.sm().Snapshot())),
              Reply::Ok());
  }
  m.sm().SetRange(SlotRange{0, 16383});
  ASSERT_EQ(m.sm().absorbed().size(), kMergeTokensMax);
  EXPECT_EQ(m.sm().absorbed().front().group, 110u);
  EXPECT_EQ(m.sm().absorbed().back().group, 100 + kMergeTokensMax + 9);
  StateMachine copy;
  ASSERT_TRUE(copy.Restore(m.sm().Snapshot()).ok());
  EXPECT_EQ(copy.Digest(), m.sm().Digest());
  // A split by hand: the new shard is kept apart; an automatic one: mergeable.
  ASSERT_EQ(m.Apply(Redis({std::string(kSplitCommand), "0", "16383", "8192", "5", "2"})),
            Reply::Ok());
  EXPECT_FALSE(m.sm().TakeSplit()->state.mergeable);
  ASSERT_EQ(m.Apply(Redis({std::string(kSplitCommand), "0", "8191", "4096", "6", "3", "auto"})),
            Reply::Ok());
  EXPECT_TRUE(m.sm().TakeSplit()->state.mergeable);
  EXPECT_FALSE(m.sm().mergeable());
  EXPECT_TRUE(m.Apply(Redis({std::string(kSplitCommand), "0", "4095", "2048", "7", "4", "manual"}))
                  .is_error());
}

}  // namespace
}  // namespace synod::kv
