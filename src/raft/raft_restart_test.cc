// Restarting from storage in states a crash can leave behind.
#include <gtest/gtest.h>

#include "raft/raw_node.h"

namespace synod::raft {
namespace {

// Regression (found by the simulator): a crash can keep a received snapshot but tear off the
// hard state written after it, leaving a commit index below the snapshot. That used to trip
// an assertion at start-up; everything in a snapshot is committed, so the node starts with
// its commit index at the snapshot.
TEST(RaftRestartTest, CommitBelowTheSnapshotStartsAtTheSnapshot) {
  MemoryStorage storage;
  Snapshot snap;
  snap.meta.index = LogIndex(10);
  snap.meta.term = Term(3);
  snap.meta.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
  ASSERT_TRUE(storage.ApplySnapshot(snap).ok());
  storage.SetHardState(HardState{Term(3), NodeId(2), LogIndex(5)});
  Config c;
  c.id = NodeId(1);
  c.storage = &storage;
  c.applied = LogIndex(10);
  auto node = RawNode::Create(c);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ((*node)->raft().log().committed(), LogIndex(10));
  EXPECT_EQ((*node)->raft().term(), Term(3));
  EXPECT_EQ((*node)->raft().vote(), NodeId(2));
}

TEST(RaftRestartTest, CommitBeyondTheLogIsRefused) {
  MemoryStorage storage;
  Snapshot snap;
  snap.meta.index = LogIndex(1);
  snap.meta.term = Term(1);
  snap.meta.conf_state.voters = {NodeId(1)};
  ASSERT_TRUE(storage.ApplySnapshot(snap).ok());
  storage.SetHardState(HardState{Term(1), kNoNode, LogIndex(7)});
  Config c;
  c.id = NodeId(1);
  c.storage = &storage;
  auto node = RawNode::Create(c);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace synod::raft
