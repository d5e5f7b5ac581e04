#include "raft/progress.h"

#include <gtest/gtest.h>

namespace synod::raft {
namespace {

LogIndex I(uint64_t i) { return LogIndex(i); }

// A follower in `state` with the given match and next.
Progress Make(ProgressState state, uint64_t match, uint64_t next, size_t inflight_max = 256) {
  Progress pr(I(next), inflight_max, 0, false);
  pr.match = I(match);
  pr.state = state;
  return pr;
}

TEST(ProgressTest, StateNames) {
  EXPECT_STREQ(ProgressStateName(ProgressState::kProbe), "StateProbe");
  EXPECT_STREQ(ProgressStateName(ProgressState::kReplicate), "StateReplicate");
  EXPECT_STREQ(ProgressStateName(ProgressState::kSnapshot), "StateSnapshot");
}

TEST(ProgressTest, NewProgressProbes) {
  Progress pr(I(11), 8, 1024, true);
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_EQ(pr.match, I(0));
  EXPECT_EQ(pr.next, I(11));
  EXPECT_EQ(pr.pending_snapshot, I(0));
  EXPECT_TRUE(pr.is_learner);
  EXPECT_FALSE(pr.recent_active);
  EXPECT_FALSE(pr.msg_app_flow_paused);
  EXPECT_FALSE(pr.IsPaused());
  EXPECT_EQ(pr.inflights.size_max(), 8u);
  EXPECT_EQ(pr.inflights.bytes_max(), 1024u);
}

TEST(ProgressTest, ToString) {
  Progress pr(I(2), 1, 0, true);
  pr.match = I(1);
  pr.state = ProgressState::kReplicate;
  pr.inflights.Add(I(123), 1);
  EXPECT_EQ(pr.ToString(), "StateReplicate match=1 next=2 learner paused inflight=1[full]");

  Progress snap(I(2), 4, 0, false);
  snap.match = I(1);
  snap.BecomeSnapshot(I(123));
  EXPECT_EQ(snap.ToString(), "StateSnapshot match=1 next=2 paused pendingSnap=123");

  Progress plain(I(6), 4, 0, false);
  plain.match = I(5);
  plain.BecomeReplicate();
  EXPECT_EQ(plain.ToString(), "StateReplicate match=5 next=6");
  plain.SentEntries(I(8), 10);
  EXPECT_EQ(plain.ToString(), "StateReplicate match=5 next=9 inflight=1");

  Progress probe(I(3), 4, 0, false);
  probe.SentEntries(I(3), 0);
  EXPECT_EQ(probe.ToString(), "StateProbe match=0 next=3 paused");
}

TEST(ProgressTest, IsPausedByState) {
  Progress probe = Make(ProgressState::kProbe, 0, 1);
  EXPECT_FALSE(probe.IsPaused());
  probe.msg_app_flow_paused = true;
  EXPECT_TRUE(probe.IsPaused());

  // In kReplicate only the window matters, not the probe flag.
  Progress repl = Make(ProgressState::kReplicate, 0, 1, 1);
  repl.msg_app_flow_paused = true;
  EXPECT_FALSE(repl.IsPaused());
  repl.inflights.Add(I(1), 0);
  EXPECT_TRUE(repl.IsPaused());

  Progress snap = Make(ProgressState::kProbe, 0, 1);
  snap.BecomeSnapshot(I(10));
  EXPECT_TRUE(snap.IsPaused());
}

TEST(ProgressTest, BecomeProbeFromReplicate) {
  Progress pr = Make(ProgressState::kReplicate, 1, 5);
  pr.inflights.Add(I(4), 10);
  pr.msg_app_flow_paused = true;
  pr.BecomeProbe();
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_EQ(pr.match, I(1));
  EXPECT_EQ(pr.next, I(2));
  EXPECT_EQ(pr.inflights.Count(), 0u);
  EXPECT_FALSE(pr.msg_app_flow_paused);
}

TEST(ProgressTest, BecomeProbeFromSnapshotSkipsTheSnapshot) {
  // The snapshot (index 10) may have been applied although its ack was lost.
  Progress pr = Make(ProgressState::kProbe, 1, 5);
  pr.BecomeSnapshot(I(10));
  pr.BecomeProbe();
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_EQ(pr.match, I(1));
  EXPECT_EQ(pr.next, I(11));
  EXPECT_EQ(pr.pending_snapshot, I(0));
}

TEST(ProgressTest, BecomeProbeFromSnapshotKeepsALargerMatch) {
  Progress pr = Make(ProgressState::kProbe, 1, 5);
  pr.BecomeSnapshot(I(10));
  pr.match = I(12);  // the follower got further on its own
  pr.next = I(13);
  pr.BecomeProbe();
  EXPECT_EQ(pr.next, I(13));
}

TEST(ProgressTest, BecomeReplicate) {
  Progress pr = Make(ProgressState::kProbe, 1, 5);
  pr.msg_app_flow_paused = true;
  pr.BecomeReplicate();
  EXPECT_EQ(pr.state, ProgressState::kReplicate);
  EXPECT_EQ(pr.match, I(1));
  EXPECT_EQ(pr.next, I(2));
  EXPECT_FALSE(pr.msg_app_flow_paused);
  EXPECT_FALSE(pr.IsPaused());
}

TEST(ProgressTest, BecomeSnapshot) {
  Progress pr = Make(ProgressState::kReplicate, 1, 5);
  pr.inflights.Add(I(3), 5);
  pr.BecomeSnapshot(I(10));
  EXPECT_EQ(pr.state, ProgressState::kSnapshot);
  EXPECT_EQ(pr.match, I(1));
  EXPECT_EQ(pr.next, I(5));  // unchanged until the snapshot is acknowledged or fails
  EXPECT_EQ(pr.pending_snapshot, I(10));
  EXPECT_EQ(pr.inflights.Count(), 0u);
}

TEST(ProgressTest, MaybeUpdate) {
  struct Case {
    uint64_t update;
    uint64_t want_match;
    uint64_t want_next;
    bool want_ok;
  };
  const uint64_t match = 3;
  const uint64_t next = 5;
  const Case cases[] = {
      {match - 1, match, next, false},         // does not decrease match or next
      {match, match, next, false},             // a duplicate ack
      {match + 1, match + 1, next, true},      // increases match, keeps next
      {match + 2, match + 2, next + 1, true},  // increases match and next
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("update=" + std::to_string(c.update));
    Progress pr = Make(ProgressState::kProbe, match, next);
    pr.msg_app_flow_paused = true;
    EXPECT_EQ(pr.MaybeUpdate(I(c.update)), c.want_ok);
    EXPECT_EQ(pr.match, I(c.want_match));
    EXPECT_EQ(pr.next, I(c.want_next));
    // Only a real ack unpauses the probe.
    EXPECT_EQ(pr.msg_app_flow_paused, !c.want_ok);
  }
}

TEST(ProgressTest, MaybeDecrTo) {
  struct Case {
    ProgressState state;
    uint64_t match;
    uint64_t next;
    uint64_t rejected;
    uint64_t match_hint;
    bool want_ok;
    uint64_t want_next;
  };
  const Case cases[] = {
      // kReplicate: a rejection at or below match is stale.
      {ProgressState::kReplicate, 5, 10, 5, 5, false, 10},
      {ProgressState::kReplicate, 5, 10, 4, 4, false, 10},
      // kReplicate: above match, restart right after match.
      {ProgressState::kReplicate, 5, 10, 9, 9, true, 6},
      // kProbe: only a rejection of next - 1 is current.
      {ProgressState::kProbe, 0, 10, 5, 5, false, 10},
      {ProgressState::kProbe, 0, 10, 9, 9, true, 9},
      {ProgressState::kProbe, 0, 2, 1, 1, true, 1},
      {ProgressState::kProbe, 0, 1, 0, 0, true, 1},
      // kProbe: jump back to the hint.
      {ProgressState::kProbe, 0, 10, 9, 2, true, 3},
      {ProgressState::kProbe, 0, 10, 9, 0, true, 1},
      // kProbe: never below match + 1, whatever the hint says.
      {ProgressState::kProbe, 4, 10, 9, 1, true, 5},
      // kProbe: a hint above the rejected index is ignored.
      {ProgressState::kProbe, 0, 10, 9, 20, true, 9},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(ProgressStateName(c.state)) + " match=" + std::to_string(c.match) +
                 " next=" + std::to_string(c.next) + " rejected=" + std::to_string(c.rejected) +
                 " hint=" + std::to_string(c.match_hint));
    Progress pr = Make(c.state, c.match, c.next);
    pr.msg_app_flow_paused = true;
    EXPECT_EQ(pr.MaybeDecrTo(I(c.rejected), I(c.match_hint)), c.want_ok);
    EXPECT_EQ(pr.match, I(c.match));
    EXPECT_EQ(pr.next, I(c.want_next));
    if (c.state == ProgressState::kProbe) {
      EXPECT_EQ(pr.msg_app_flow_paused, !c.want_ok);  // a current rejection unpauses
    }
  }
}

TEST(ProgressTest, ProbeIsUnpausedByAnAnswer) {
  Progress pr = Make(ProgressState::kProbe, 0, 3);
  pr.SentEntries(I(4), 100);
  EXPECT_TRUE(pr.IsPaused());
  EXPECT_EQ(pr.next, I(3));  // a probe does not advance next
  EXPECT_EQ(pr.inflights.Count(), 0u);
  ASSERT_TRUE(pr.MaybeDecrTo(I(2), I(1)));
  EXPECT_FALSE(pr.IsPaused());

  pr.SentEntries(I(3), 10);
  EXPECT_TRUE(pr.IsPaused());
  ASSERT_TRUE(pr.MaybeUpdate(I(3)));
  EXPECT_FALSE(pr.IsPaused());
}

TEST(ProgressTest, EmptyProbePausesToo) {
  Progress pr = Make(ProgressState::kProbe, 4, 5);
  pr.SentEntries(I(4), 0);  // an append without entries (e.g. to carry the commit index)
  EXPECT_TRUE(pr.IsPaused());
  EXPECT_EQ(pr.next, I(5));
}

TEST(ProgressTest, ReplicateStreamsUntilTheWindowIsFull) {
  Progress pr = Make(ProgressState::kReplicate, 5, 6, /*inflight_max=*/2);
  pr.SentEntries(I(8), 30);
  EXPECT_EQ(pr.next, I(9));
  EXPECT_FALSE(pr.IsPaused());
  pr.SentEntries(I(10), 30);
  EXPECT_EQ(pr.next, I(11));
  EXPECT_TRUE(pr.IsPaused());
  EXPECT_EQ(pr.inflights.Count(), 2u);
  EXPECT_EQ(pr.inflights.Bytes(), 60u);

  // The ack of the first message frees its slot.
  ASSERT_TRUE(pr.MaybeUpdate(I(8)));
  pr.inflights.FreeLE(I(8));
  EXPECT_FALSE(pr.IsPaused());
  EXPECT_EQ(pr.next, I(11));
}

TEST(ProgressTest, ReplicateEmptyAppendTakesNoSlot) {
  Progress pr = Make(ProgressState::kReplicate, 5, 6, 1);
  pr.SentEntries(I(5), 0);
  EXPECT_EQ(pr.next, I(6));
  EXPECT_EQ(pr.inflights.Count(), 0u);
  EXPECT_FALSE(pr.IsPaused());
}

TEST(ProgressTest, ReplicateByteWindow) {
  Progress pr(I(1), 100, 50, false);
  pr.BecomeReplicate();
  pr.SentEntries(I(3), 49);
  EXPECT_FALSE(pr.IsPaused());
  pr.SentEntries(I(4), 1);
  EXPECT_TRUE(pr.IsPaused());
}

TEST(ProgressDeathTest, InvalidUseCrashes) {
  EXPECT_DEATH(Progress(I(0), 4, 0, false), "next must exceed match");
  Progress pr = Make(ProgressState::kProbe, 0, 1);
  EXPECT_DEATH(pr.BecomeSnapshot(I(0)), "at least one entry");
  pr.BecomeSnapshot(I(5));
  EXPECT_DEATH(pr.SentEntries(I(6), 1), "snapshot is in flight");
  Progress repl = Make(ProgressState::kReplicate, 5, 10);
  EXPECT_DEATH(repl.SentEntries(I(7), 1), "an append starts at next");
}

}  // namespace
}  // namespace synod::raft
