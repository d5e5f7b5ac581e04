#include "cluster/logic/move.h"

#include <gtest/gtest.h>

#include "cluster/logic/layout.h"

namespace synod::cluster {
namespace {

ShardDescriptor Shard(std::vector<NodeId> voters, std::vector<NodeId> learners = {}) {
  ShardDescriptor d;
  d.group = GroupId(4);
  d.voters = std::move(voters);
  d.learners = std::move(learners);
  return d;
}

TEST(Move, TheStepsInOrderNeverDropAVoterFirst) {
  const NodeId n1(1), n2(2), n3(3), n4(4);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2, n3}), n1, n4), MoveStep::kAddLearner);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2, n3}, {n4}), n1, n4), MoveStep::kWait);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2, n3, n4}), n1, n4), MoveStep::kRemoveSource);
  EXPECT_EQ(NextMoveStep(Shard({n2, n3, n4}), n1, n4), MoveStep::kDone);
  // The source gone some other way before the target came: add the target still.
  EXPECT_EQ(NextMoveStep(Shard({n2, n3}), n1, n4), MoveStep::kAddLearner);
}

TEST(Move, AnAdditionAndARemovalAloneTakeTheirOneStep) {
  const NodeId n1(1), n2(2), n3(3), n4(4);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2}), kNoNode, n4), MoveStep::kAddLearner);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2}, {n4}), kNoNode, n4), MoveStep::kWait);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2, n4}), kNoNode, n4), MoveStep::kDone);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2, n3, n4}), n3, kNoNode), MoveStep::kRemoveSource);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2}, {n3}), n3, kNoNode), MoveStep::kRemoveSource);
  EXPECT_EQ(NextMoveStep(Shard({n1, n2, n4}), n3, kNoNode), MoveStep::kDone);
}

TEST(Move, AMoveAskedAgainFinishesOrIsDone) {
  const NodeId n1(1), n2(2), n3(3), n4(4);
  // Interrupted with the target a learner: it goes on from there.
  EXPECT_TRUE(CheckMove(Shard({n1, n2, n3}, {n4}), n1, n4).ok());
  // Done: answered at once (the next step is kDone). So is any move whose end state holds
  // already (from a node that holds none to one that holds a voter).
  EXPECT_TRUE(CheckMove(Shard({n2, n3, n4}), n1, n4).ok());
  EXPECT_EQ(NextMoveStep(Shard({n2, n3, n4}), n1, n4), MoveStep::kDone);
  // Both voters: no telling a move under way from a move to a node that holds the shard.
  EXPECT_FALSE(CheckMove(Shard({n1, n2, n3, n4}), n1, n4).ok());
}

TEST(Move, NonsenseIsRefusedAtTheStart) {
  const NodeId n1(1), n2(2), n3(3), n4(4);
  EXPECT_TRUE(CheckMove(Shard({n1, n2, n3}), n1, n4).ok());
  EXPECT_FALSE(CheckMove(Shard({n1, n2, n3}), n4, NodeId(5)).ok());  // 4 holds nothing
  EXPECT_FALSE(CheckMove(Shard({n1, n2, n3}), n1, n2).ok());         // 2 holds one already
  EXPECT_FALSE(CheckMove(Shard({n1, n2, n3}), n1, n1).ok());
  EXPECT_FALSE(CheckMove(Shard({n1, n2, n3}, {n4}), n2, n3).ok());
  EXPECT_FALSE(CheckMove(Shard({n1, n2, n3}), n1, kNoNode).ok());
  ShardDescriptor meta = Shard({n1, n2, n3});
  meta.group = kMetaGroup;
  EXPECT_FALSE(CheckMove(meta, n1, n4).ok());
}

}  // namespace
}  // namespace synod::cluster
