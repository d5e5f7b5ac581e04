// Membership changes through the log (Raft thesis §4.3): simple changes, joint consensus with
// automatic or explicit leave, the one-change-at-a-time rule, validation at proposal time,
// removed leaders, and learners.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

ConfChange CC(std::string_view text,
              ConfChangeTransition transition = ConfChangeTransition::kAuto) {
  auto cc = ConfChange::Parse(text);
  EXPECT_TRUE(cc.ok()) << text;
  ConfChange out = cc.ok() ? *cc : ConfChange{};
  out.transition = transition;
  return out;
}

std::set<NodeId> Ids(std::initializer_list<uint64_t> ids) {
  std::set<NodeId> out;
  for (uint64_t id : ids) out.insert(N(id));
  return out;
}

// Adds a node that is not (yet) a member: it starts from the group's bootstrap snapshot and
// learns of its membership from the log.
void AddJoiner(Network& net, uint64_t id, const ConfState& bootstrap) {
  net.Add(std::make_unique<TestNode>(id, NewStorage(bootstrap)));
}

bool IsLeaveJointApp(const Message& m) {
  if (m.type != MT::kApp) return false;
  for (const Entry& e : m.entries) {
    if (e.type != EntryType::kConfChange) continue;
    auto cc = ConfChange::Decode(e.data);
    if (cc.ok() && cc->IsLeaveJoint()) return true;
  }
  return false;
}

// Entering a joint configuration with auto leave: every member applies old && new, then the
// leader proposes the leave by itself and everyone ends in the new configuration.
TEST(MembershipTest, EnterJointAndAutoLeave) {
  Network net({1, 2, 3});
  AddJoiner(net, 4, MakeConf({1, 2, 3}));
  ASSERT_TRUE(net.Campaign(1).ok());
  net.DropIf(IsLeaveJointApp);  // hold the leave back to observe the joint phase
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("v4 r3")).ok());
  net.Stabilize();
  // (Node 4 first hears of the log together with the leave entry, so it is not checked here.)
  for (uint64_t id : {1, 2, 3}) {
    SCOPED_TRACE(id);
    const ConfState& cs = net.node(id).conf_state();
    EXPECT_EQ(cs.voters, Ids({1, 2, 4}));
    EXPECT_EQ(cs.voters_outgoing, Ids({1, 2, 3}));
    EXPECT_TRUE(cs.auto_leave);
  }
  // The leader already appended the leave entry after applying the joint config.
  const auto last = net.node(1).raft().log().AllEntries().back();
  ASSERT_EQ(last.type, EntryType::kConfChange);
  EXPECT_TRUE(ConfChange::Decode(last.data)->IsLeaveJoint());

  net.Recover();
  net.TickAll(3);
  for (uint64_t id : {1, 2, 4}) {
    SCOPED_TRACE(id);
    const ConfState& cs = net.node(id).conf_state();
    EXPECT_EQ(cs.voters, Ids({1, 2, 4}));
    EXPECT_TRUE(cs.voters_outgoing.empty());
    EXPECT_FALSE(cs.auto_leave);
    EXPECT_TRUE(net.node(id).conf_change_errors.empty());
  }
  EXPECT_EQ(net.Leader(), 1u);
}

// A voter demoted to learner keeps voting in the outgoing half until the joint config is
// left (learners_next), then becomes a learner that still receives the log.
TEST(MembershipTest, DemotionThroughJointConfig) {
  Network net({1, 2, 3});
  AddJoiner(net, 4, MakeConf({1, 2, 3}));
  ASSERT_TRUE(net.Campaign(1).ok());
  net.DropIf(IsLeaveJointApp);
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("l3 v4")).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(1).conf_state().learners_next, Ids({3}));
  EXPECT_TRUE(net.node(1).conf_state().learners.empty());
  net.Recover();
  net.TickAll(3);
  const ConfState& cs = net.node(1).conf_state();
  EXPECT_EQ(cs.voters, Ids({1, 2, 4}));
  EXPECT_EQ(cs.learners, Ids({3}));
  EXPECT_TRUE(cs.learners_next.empty());
  ASSERT_TRUE(net.Propose(1, "after").ok());
  EXPECT_EQ(net.node(3).applied_data, std::vector<std::string>{"after"});
}

// An explicit joint config stays until the application proposes the (empty) leave change.
TEST(MembershipTest, ExplicitLeave) {
  Network net({1, 2, 3});
  AddJoiner(net, 4, MakeConf({1, 2, 3}));
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("v4 r3", ConfChangeTransition::kJointExplicit)).ok());
  net.Stabilize();
  net.TickAll(5);
  EXPECT_EQ(net.node(1).conf_state().voters_outgoing, Ids({1, 2, 3}));
  EXPECT_FALSE(net.node(1).conf_state().auto_leave);
  // While joint, only the leave is accepted.
  EXPECT_EQ(net.raw(1).ProposeConfChange(CC("v5")).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(net.raw(1).ProposeConfChange(ConfChange{}).ok());
  net.Stabilize();
  for (uint64_t id : {1, 2, 4}) {
    EXPECT_EQ(net.node(id).conf_state().voters, Ids({1, 2, 4})) << id;
    EXPECT_TRUE(net.node(id).conf_state().voters_outgoing.empty()) << id;
  }
  // Not joint any more: nothing to leave.
  EXPECT_EQ(net.raw(1).ProposeConfChange(ConfChange{}).code(), Code::kFailedPrecondition);
}

// One change at a time: a second change is refused until the first is applied.
TEST(MembershipTest, SecondPendingChangeRefused) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("l4")).ok());
  const LogIndex last = net.node(1).last_index();
  EXPECT_EQ(net.raw(1).ProposeConfChange(CC("l5")).code(), Code::kFailedPrecondition);
  EXPECT_EQ(net.node(1).last_index(), last);
  EXPECT_TRUE(net.raw(1).Propose("data is fine").ok());
  net.Stabilize();
  EXPECT_EQ(net.node(1).conf_state().learners, Ids({4}));
  EXPECT_TRUE(net.raw(1).ProposeConfChange(CC("l5")).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(1).conf_state().learners, Ids({4, 5}));
}

// A change that could never apply is refused to the proposer, not committed and ignored.
TEST(MembershipTest, InvalidChangeRefusedAtProposal) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  const LogIndex last = net.node(1).last_index();
  EXPECT_EQ(net.raw(1).ProposeConfChange(CC("r1 r2 r3")).code(), Code::kInvalidArgument);
  ConfChange zero;
  zero.changes.push_back(ConfChangeSingle{ConfChangeType::kAddNode, kNoNode});
  EXPECT_EQ(net.raw(1).ProposeConfChange(zero).code(), Code::kInvalidArgument);
  EXPECT_EQ(net.node(1).last_index(), last);
  // Refusals leave no pending change behind.
  EXPECT_TRUE(net.raw(1).ProposeConfChange(CC("l4")).ok());
}

// A leader removed (or demoted to learner) steps down once the change applies; the remaining
// voters elect a leader among themselves, and the old leader never campaigns again.
TEST(MembershipTest, RemovedLeaderStepsDown) {
  for (const char* change : {"r1", "l1"}) {
    SCOPED_TRACE(change);
    Network net({1, 2, 3});
    ASSERT_TRUE(net.Campaign(1).ok());
    ASSERT_TRUE(net.raw(1).ProposeConfChange(CC(change)).ok());
    net.Stabilize();
    EXPECT_EQ(net.node(1).role(), Role::kFollower);
    for (uint64_t id : {1, 2, 3}) EXPECT_EQ(net.node(id).conf_state().voters, Ids({2, 3})) << id;
    EXPECT_EQ(net.raw(1).Propose("x").code(), Code::kProposalDropped);
    net.ClearLog();
    net.TickAll(50);
    const uint64_t leader = net.Leader();
    EXPECT_TRUE(leader == 2 || leader == 3) << leader;
    EXPECT_FALSE(SentBy(net.delivered, 1, MT::kVote));
    EXPECT_FALSE(SentBy(net.dropped, 1, MT::kVote));
    if (std::string(change) == "l1") {
      ASSERT_TRUE(net.Propose(leader, "learner sees it").ok());
      EXPECT_EQ(net.node(1).applied_data.back(), "learner sees it");
    }
  }
}

// Learners receive the log but never campaign, and neither their votes nor their
// acknowledgements count.
TEST(MembershipTest, LearnersNeverCampaign) {
  Network net({1, 2}, {}, {3});
  ASSERT_TRUE(net.Campaign(1).ok());
  const Term term = net.node(1).term();
  net.Isolate(3);
  net.Tick(3, 100);
  EXPECT_EQ(net.node(3).term(), term);
  EXPECT_EQ(net.node(3).role(), Role::kFollower);
  EXPECT_FALSE(SentBy(net.dropped, 3, MT::kVote));
  EXPECT_FALSE(SentBy(net.dropped, 3, MT::kPreVote));
  net.Recover();
  // Even told to by TimeoutNow.
  net.Send(Msg(MT::kTimeoutNow, 1, 3, term.value()));
  EXPECT_EQ(net.node(3).term(), term);
  EXPECT_EQ(net.Leader(), 1u);
}

TEST(MembershipTest, LearnerVotesAndAcksDoNotCount) {
  {
    Network net({1, 2}, {}, {3});
    net.Isolate(2);
    ASSERT_TRUE(net.Campaign(1).ok());
    EXPECT_NE(net.node(1).role(), Role::kLeader) << "won with a learner's vote";
  }
  {
    Network net({1, 2}, {}, {3});
    ASSERT_TRUE(net.Campaign(1).ok());
    const LogIndex commit = net.node(1).committed();
    net.Isolate(2);
    ASSERT_TRUE(net.Propose(1, "x").ok());
    EXPECT_EQ(net.node(3).last_index(), net.node(1).last_index()) << "the learner has it";
    EXPECT_EQ(net.node(1).committed(), commit) << "committed on a learner's acknowledgement";
  }
}

// A learner promoted to voter catches up, counts, and may then be elected.
TEST(MembershipTest, LearnerPromotion) {
  Network net({1, 2, 3}, {}, {4});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(1, "a").ok());
  EXPECT_EQ(net.node(4).applied_data, std::vector<std::string>{"a"});
  EXPECT_FALSE(net.node(4).raft().Promotable());
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("v4")).ok());
  net.Stabilize();
  for (uint64_t id : {1, 2, 3, 4}) {
    EXPECT_EQ(net.node(id).conf_state().voters, Ids({1, 2, 3, 4})) << id;
    EXPECT_TRUE(net.node(id).conf_state().learners.empty()) << id;
  }
  EXPECT_TRUE(net.node(4).raft().Promotable());
  ASSERT_TRUE(net.Campaign(4).ok());
  EXPECT_EQ(net.Leader(), 4u);
}

// A new node added as a voter receives the whole log; the quorum grows with it.
TEST(MembershipTest, AddedNodeCatchesUpAndCounts) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(1, "a").ok());
  AddJoiner(net, 4, MakeConf({1, 2, 3}));
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("v4")).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(4).applied_data, std::vector<std::string>{"a"});
  EXPECT_EQ(net.node(4).conf_state().voters, Ids({1, 2, 3, 4}));
  // Three of four are needed now.
  net.Isolate(3);
  net.Isolate(4);
  const LogIndex commit = net.node(1).committed();
  ASSERT_TRUE(net.Propose(1, "b").ok());
  EXPECT_EQ(net.node(1).committed(), commit);
}

// In a joint configuration an entry commits only with a majority of both halves.
TEST(MembershipTest, JointCommitNeedsBothMajorities) {
  Network net({1, 2, 3});
  AddJoiner(net, 4, MakeConf({1, 2, 3}));
  AddJoiner(net, 5, MakeConf({1, 2, 3}));
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(
      net.raw(1).ProposeConfChange(CC("v4 v5 r2 r3", ConfChangeTransition::kJointExplicit)).ok());
  net.Stabilize();
  ASSERT_EQ(net.node(1).conf_state().voters, Ids({1, 4, 5}));
  ASSERT_EQ(net.node(1).conf_state().voters_outgoing, Ids({1, 2, 3}));

  for (auto [a, b] : std::vector<std::pair<uint64_t, uint64_t>>{{4, 5}, {2, 3}}) {
    SCOPED_TRACE(a);
    net.Isolate(a);
    net.Isolate(b);
    const LogIndex commit = net.node(1).committed();
    ASSERT_TRUE(net.Propose(1, "x").ok());
    EXPECT_EQ(net.node(1).committed(), commit) << "committed by one half only";
    net.Recover();
    net.TickAll(3);
    EXPECT_EQ(net.node(1).committed(), net.node(1).last_index());
  }
}

// The leader that entered an auto-leave joint config crashed before its leave committed: the
// next leader proposes the leave itself once it has applied the joint config.
TEST(MembershipTest, NewLeaderFinishesAutoLeave) {
  Network net({1, 2, 3});
  AddJoiner(net, 4, MakeConf({1, 2, 3}));
  ASSERT_TRUE(net.Campaign(1).ok());
  net.DropIf(IsLeaveJointApp);
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("v4 l3")).ok());
  net.Stabilize();
  ASSERT_TRUE(net.node(2).conf_state().auto_leave);
  ASSERT_EQ(net.node(2).conf_state().learners_next, Ids({3}));
  // S1 crashes with the leave in its log only.
  net.Recover();
  net.Isolate(1);
  for (int i = 0; i < 5 && net.Leader() != 2; ++i) ASSERT_TRUE(net.Campaign(2).ok());
  ASSERT_EQ(net.Leader(), 2u);
  for (uint64_t id : {2, 3, 4}) {
    const ConfState& cs = net.node(id).conf_state();
    EXPECT_TRUE(cs.voters_outgoing.empty()) << id;
    EXPECT_FALSE(cs.auto_leave) << id;
    EXPECT_EQ(cs.voters, Ids({1, 2, 4})) << id;
    EXPECT_EQ(cs.learners, Ids({3})) << id;
  }
}

// A node must not campaign while a committed membership change is not applied yet: it would
// count votes with the wrong configuration.
TEST(MembershipTest, NoCampaignWithUnappliedConfChange) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3})));
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(1);
  app.log_term = T(1);
  Entry e;
  e.index = I(2);
  e.term = T(2);
  e.type = EntryType::kConfChange;
  e.data = CC("v4").Encode();
  app.entries.push_back(e);
  app.commit = I(2);
  ASSERT_TRUE(n.Step(app).ok());
  ASSERT_TRUE(n.raw().Campaign().ok());
  EXPECT_EQ(n.role(), Role::kFollower);
  n.Drain();  // applies the change
  EXPECT_EQ(n.conf_state().voters, Ids({1, 2, 3, 4}));
  ASSERT_TRUE(n.raw().Campaign().ok());
  EXPECT_EQ(n.role(), Role::kCandidate);
}

// A transfer to a node that the configuration then removes is abandoned at once.
TEST(MembershipTest, TransferAbortedWhenTransfereeRemoved) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(3);
  ASSERT_TRUE(net.raw(1).ProposeConfChange(CC("r3")).ok());
  ASSERT_TRUE(net.raw(1).TransferLeadership(N(3)).ok());
  ASSERT_EQ(net.node(1).raft().GetStatus().lead_transferee, N(3));
  net.Stabilize();
  EXPECT_EQ(net.node(1).conf_state().voters, Ids({1, 2}));
  EXPECT_EQ(net.node(1).raft().GetStatus().lead_transferee, kNoNode);
  EXPECT_TRUE(net.Propose(1, "x").ok());
  EXPECT_EQ(net.node(2).applied_data, std::vector<std::string>{"x"});
}

}  // namespace
}  // namespace synod::raft::test
