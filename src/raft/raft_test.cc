// Protocol extensions of the Raft thesis on top of Figure 2: pre-vote (§9.6), check-quorum
// (§6.2), leadership transfer (§3.10), and how proposals are routed or refused (no leader,
// follower forwarding, the uncommitted-bytes bound). In the spirit of etcd's raft_test.go.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

ConfigFn Features(bool pre_vote, bool check_quorum) {
  return [=](Config& c) {
    c.pre_vote = pre_vote;
    c.check_quorum = check_quorum;
  };
}

// ---------------------------------------------------------------------------------------------
// Pre-vote (§9.6)

// A pre-candidate asks about term+1 without adopting it; it adopts it only once a quorum
// said it could win, and then campaigns for real.
TEST(PreVoteTest, PreCandidateKeepsTermUntilItWinsThePreVote) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3})), Features(true, false));
  ASSERT_TRUE(n.raw().Campaign().ok());
  EXPECT_EQ(n.role(), Role::kPreCandidate);
  EXPECT_EQ(n.term(), T(1));
  EXPECT_EQ(n.raft().vote(), kNoNode);
  auto msgs = SortedByTo(n.Drain());
  ASSERT_EQ(msgs.size(), 2u);
  for (const Message& m : msgs) {
    EXPECT_EQ(m.type, MT::kPreVote);
    EXPECT_EQ(m.term, T(2));  // the term it would campaign for
    EXPECT_EQ(m.index, I(1));
    EXPECT_EQ(m.log_term, T(1));
  }
  EXPECT_FALSE(n.storage().hard_state().term > T(1)) << "a pre-vote must not persist a new term";

  ASSERT_TRUE(n.Step(Msg(MT::kPreVoteResp, 2, 1, 2)).ok());
  EXPECT_EQ(n.role(), Role::kCandidate);
  EXPECT_EQ(n.term(), T(2));
  EXPECT_EQ(n.raft().vote(), N(1));
  auto votes = OfType(n.Drain(), MT::kVote);
  EXPECT_EQ(votes.size(), 2u);
}

TEST(PreVoteTest, LostPreVoteReturnsToFollowerInSameTerm) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3})), Features(true, false));
  ASSERT_TRUE(n.raw().Campaign().ok());
  for (uint64_t id : {2, 3}) {
    Message r = Msg(MT::kPreVoteResp, id, 1, 1);
    r.reject = true;
    ASSERT_TRUE(n.Step(r).ok());
  }
  EXPECT_EQ(n.role(), Role::kFollower);
  EXPECT_EQ(n.term(), T(1));
}

TEST(PreVoteTest, RejectionWithHigherTermIsAdopted) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3})), Features(true, false));
  ASSERT_TRUE(n.raw().Campaign().ok());
  Message r = Msg(MT::kPreVoteResp, 2, 1, 5);
  r.reject = true;
  ASSERT_TRUE(n.Step(r).ok());
  EXPECT_EQ(n.role(), Role::kFollower);
  EXPECT_EQ(n.term(), T(5));
}

// The voter's side: granting a pre-vote changes neither its term nor its vote; a pre-vote for
// a term it already has is refused with its own term.
TEST(PreVoteTest, GrantingPreVoteLeavesVoterStateAlone) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3}), {}, HardState{T(2), N(3), I(1)}),
             Features(true, false));
  Message pv = Msg(MT::kPreVote, 2, 1, 3);
  pv.index = I(1);
  pv.log_term = T(1);
  ASSERT_TRUE(n.Step(pv).ok());
  auto msgs = n.Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type, MT::kPreVoteResp);
  EXPECT_FALSE(msgs[0].reject);
  EXPECT_EQ(msgs[0].term, T(3));
  EXPECT_EQ(n.term(), T(2));
  EXPECT_EQ(n.raft().vote(), N(3));

  Message stale = Msg(MT::kPreVote, 2, 1, 2);
  stale.index = I(1);
  stale.log_term = T(1);
  ASSERT_TRUE(n.Step(stale).ok());
  msgs = n.Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].reject);
  EXPECT_EQ(msgs[0].term, T(2));
}

// A single voter wins its pre-vote and its election on its own vote, at once.
TEST(PreVoteTest, SingleVoterWinsAtOnce) {
  TestNode n(1, NewStorage(MakeConf({1})), Features(true, true));
  ASSERT_TRUE(n.raw().Campaign().ok());
  EXPECT_EQ(n.role(), Role::kLeader);
  EXPECT_EQ(n.term(), T(2));
  n.Drain();
  EXPECT_EQ(n.committed(), I(2));
}

// A partitioned node that cannot win never raises its term with pre-vote; without pre-vote
// it raises it on every timeout.
TEST(PreVoteTest, IsolatedNodeDoesNotRaiseItsTerm) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(pre_vote);
    Network net({1, 2, 3}, Features(pre_vote, false));
    ASSERT_TRUE(net.Campaign(1).ok());
    const Term term = net.node(1).term();
    net.Isolate(3);
    net.Tick(3, 100);
    if (pre_vote) {
      EXPECT_EQ(net.node(3).term(), term);
      EXPECT_TRUE(SentBy(net.dropped, 3, MT::kPreVote));
      EXPECT_FALSE(SentBy(net.dropped, 3, MT::kVote));
    } else {
      EXPECT_GT(net.node(3).term(), term + 2);
    }
  }
}

// A node that rejoins after a partition, with a log missing committed entries, does not
// disturb the leader: its pre-votes are refused and it rejoins as a follower.
TEST(PreVoteTest, RejoiningNodeDoesNotDisruptLeader) {
  Network net({1, 2, 3}, Features(true, false));
  ASSERT_TRUE(net.Campaign(1).ok());
  const Term term = net.node(1).term();
  net.Isolate(3);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.Tick(3, 50);
  net.Recover();
  ASSERT_TRUE(net.raw(3).Campaign().ok());  // its timer fires just as it rejoins
  net.Stabilize();
  net.TickAll(30);
  EXPECT_EQ(net.Leader(), 1u);
  for (uint64_t id : {1, 2, 3}) EXPECT_EQ(net.node(id).term(), term) << id;
  EXPECT_EQ(net.node(3).raft().lead(), N(1));
  EXPECT_EQ(net.node(3).applied_data, std::vector<std::string>{"a"});
}

// With an up-to-date log, pre-vote alone cannot stop a rejoining node (a follower grants a
// pre-vote for a later term whenever the log qualifies); check-quorum's lease does: followers
// that heard from the leader recently ignore it.
TEST(PreVoteTest, CheckQuorumLeaseStopsUpToDateRejoiningNode) {
  for (bool check_quorum : {true, false}) {
    SCOPED_TRACE(check_quorum);
    Network net({1, 2, 3}, Features(true, check_quorum));
    ASSERT_TRUE(net.Campaign(1).ok());
    const Term term = net.node(1).term();
    net.Isolate(3);
    net.Tick(3, 50);
    net.Recover();
    ASSERT_TRUE(net.raw(3).Campaign().ok());
    net.Stabilize();
    if (check_quorum) {
      EXPECT_EQ(net.Leader(), 1u);
      EXPECT_EQ(net.node(1).term(), term);
      EXPECT_FALSE(SentBy(net.delivered, 3, MT::kVote));
    } else {
      EXPECT_EQ(net.Leader(), 3u);
      EXPECT_EQ(net.node(3).term(), term + 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Check-quorum (§6.2)

// A leader that has not heard from a quorum within an election timeout steps down; one that
// has keeps leading.
TEST(CheckQuorumTest, LeaderStepsDownWithoutQuorum) {
  Network net({1, 2, 3}, Features(false, true));
  ASSERT_TRUE(net.Campaign(1).ok());
  const int et = net.node(1).config().election_ticks;
  net.TickAll(5 * et);
  EXPECT_EQ(net.Leader(), 1u) << "a leader with an active quorum must keep leading";

  net.Isolate(1);
  // The first check after isolation still sees the activity from before it.
  net.Tick(1, et);
  EXPECT_EQ(net.node(1).role(), Role::kLeader);
  net.Tick(1, et);
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  EXPECT_EQ(net.node(1).raft().lead(), kNoNode);
}

// Learners are not part of the quorum that keeps a leader in place.
TEST(CheckQuorumTest, LearnersDoNotCountTowardsQuorum) {
  Network net({1, 2}, Features(false, true), {3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_EQ(net.Leader(), 1u);
  net.Cut(1, 2);
  const int et = net.node(1).config().election_ticks;
  net.Tick(1, 2 * et);
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  EXPECT_TRUE(SentBy(net.delivered, 3, MT::kHeartbeatResp)) << "the learner was reachable";
}

// Followers that heard from the leader within the election timeout ignore vote requests of
// a higher term (the leader's lease rests on it); once out of the lease they grant them.
TEST(CheckQuorumTest, FollowersIgnoreVotesWhileInLease) {
  Network net({1, 2, 3}, Features(false, true));
  ASSERT_TRUE(net.Campaign(1).ok());
  const Term term = net.node(1).term();
  ASSERT_TRUE(net.Campaign(3).ok());
  EXPECT_EQ(net.node(3).role(), Role::kCandidate);
  EXPECT_EQ(net.node(3).term(), term + 1);
  EXPECT_EQ(net.Leader(), 1u);
  EXPECT_EQ(net.node(1).term(), term);
  EXPECT_EQ(net.node(2).term(), term);
  EXPECT_EQ(net.node(2).raft().vote(), N(1));

  // Node 2 stops hearing from the leader; after an election timeout it grants the vote.
  net.Isolate(1);
  const int et = net.node(2).config().election_ticks;
  for (int i = 0; i < et; ++i) net.raw(2).Tick();
  net.Stabilize();
  for (int i = 0; i < 3 && net.node(3).role() != Role::kLeader; ++i) {
    ASSERT_TRUE(net.Campaign(3).ok());
  }
  EXPECT_EQ(net.node(3).role(), Role::kLeader);
}

// A candidate stuck in a higher term (its votes were ignored) is freed: with check-quorum,
// its answer to the stale leader's heartbeat carries its term, the leader steps down, and the
// group converges on one leader and one term.
TEST(CheckQuorumTest, StuckCandidateIsFreed) {
  Network net({1, 2, 3}, Features(false, true));
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Campaign(3).ok());
  ASSERT_EQ(net.node(3).role(), Role::kCandidate);
  const Term stuck = net.node(3).term();
  net.Tick(1);  // a heartbeat reaches the candidate
  EXPECT_EQ(net.node(1).role(), Role::kFollower);
  EXPECT_EQ(net.node(1).term(), stuck);
  net.TickAll(100);
  const uint64_t leader = net.Leader();
  ASSERT_NE(leader, 0u);
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.node(id).term(), net.node(leader).term()) << id;
    EXPECT_EQ(net.node(id).raft().lead(), N(leader)) << id;
  }
}

// ---------------------------------------------------------------------------------------------
// Leadership transfer (§3.10)

TEST(LeaderTransferTest, ToUpToDateFollower) {
  for (bool features : {false, true}) {
    SCOPED_TRACE(features);
    // With check-quorum the followers are in their lease: the transfer's vote passes anyway.
    Network net({1, 2, 3}, Features(features, features));
    ASSERT_TRUE(net.Campaign(1).ok());
    const Term term = net.node(1).term();
    net.ClearLog();
    ASSERT_TRUE(net.raw(1).TransferLeadership(N(2)).ok());
    net.Stabilize();
    EXPECT_EQ(net.Leader(), 2u);
    EXPECT_EQ(net.node(2).term(), term + 1);
    EXPECT_EQ(net.node(1).raft().lead(), N(2));
    EXPECT_EQ(CountType(net.delivered, MT::kTimeoutNow), 1u);
    EXPECT_FALSE(SentBy(net.delivered, 2, MT::kPreVote)) << "a transfer skips the pre-vote";
    auto votes = OfType(net.delivered, MT::kVote);
    ASSERT_FALSE(votes.empty());
    EXPECT_EQ(votes[0].context, "transfer");
  }
}

// A follower may ask for the transfer; the leader hands over to the node named, whoever asked.
TEST(LeaderTransferTest, RequestedThroughFollower) {
  for (uint64_t asker : {2, 3}) {
    SCOPED_TRACE(asker);
    Network net({1, 2, 3});
    ASSERT_TRUE(net.Campaign(1).ok());
    ASSERT_TRUE(net.raw(asker).TransferLeadership(N(2)).ok());
    net.Stabilize();
    EXPECT_EQ(net.Leader(), 2u);
  }
}

// A lagging transferee first receives the missing entries; TimeoutNow goes out only once its
// log matches the leader's, so the new leader holds every committed entry.
TEST(LeaderTransferTest, ToLaggingFollowerAfterCatchUp) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(3);
  for (const char* d : {"a", "b", "c"}) ASSERT_TRUE(net.Propose(1, d).ok());
  net.Recover();
  ASSERT_TRUE(net.raw(1).TransferLeadership(N(3)).ok());
  EXPECT_EQ(net.node(1).raft().GetStatus().lead_transferee, N(3));
  auto first = net.CollectAndTake();
  EXPECT_EQ(CountType(first, MT::kTimeoutNow), 0u) << "TimeoutNow before the target caught up";
  EXPECT_GE(CountType(first, MT::kApp), 1u);
  net.Send(first);
  EXPECT_EQ(net.Leader(), 3u);
  // When TimeoutNow was sent, 3 had acknowledged the leader's last index.
  LogIndex acked;
  for (const Message& m : net.delivered) {
    if (m.type == MT::kAppResp && m.from == N(3) && !m.reject) acked = std::max(acked, m.index);
    if (m.type == MT::kTimeoutNow) {
      EXPECT_EQ(acked, I(5));
      break;
    }
  }
  EXPECT_EQ(net.node(3).applied_data, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(LeaderTransferTest, ToNonVoterIsRefused) {
  Network net({1, 2, 3}, {}, {4});
  ASSERT_TRUE(net.Campaign(1).ok());
  for (uint64_t target : {4, 9}) {
    SCOPED_TRACE(target);
    Status s = net.raw(1).TransferLeadership(N(target));
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    net.Stabilize();
    EXPECT_EQ(net.Leader(), 1u);
    EXPECT_EQ(net.node(1).raft().GetStatus().lead_transferee, kNoNode);
    EXPECT_TRUE(net.Propose(1, "still serving").ok());
  }
  EXPECT_EQ(CountType(net.delivered, MT::kTimeoutNow), 0u);
}

TEST(LeaderTransferTest, ToSelfIsNoop) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  const Term term = net.node(1).term();
  ASSERT_TRUE(net.raw(1).TransferLeadership(N(1)).ok());
  net.Stabilize();
  EXPECT_EQ(net.Leader(), 1u);
  EXPECT_EQ(net.node(1).term(), term);
  EXPECT_TRUE(net.Propose(1, "x").ok());
}

// While a transfer is in progress the leader refuses proposals (they would delay the target's
// catch-up) with kProposalDropped; the transfer is abandoned after an election timeout, and
// proposals are accepted again.
TEST(LeaderTransferTest, AbortedAfterElectionTimeoutAndDropsProposalsMeanwhile) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(3);
  ASSERT_TRUE(net.raw(1).TransferLeadership(N(3)).ok());
  net.Stabilize();
  EXPECT_EQ(net.raw(1).Propose("x").code(), Code::kProposalDropped);
  // A proposal forwarded by a follower is dropped at the leader too.
  EXPECT_TRUE(net.raw(2).Propose("y").ok());
  net.Stabilize();
  ASSERT_EQ(net.step_errors.size(), 1u);
  EXPECT_EQ(net.step_errors[0].code(), Code::kProposalDropped);

  const int et = net.node(1).config().election_ticks;
  net.Tick(1, et - 1);
  EXPECT_EQ(net.node(1).raft().GetStatus().lead_transferee, N(3));
  net.Tick(1);
  EXPECT_EQ(net.node(1).raft().GetStatus().lead_transferee, kNoNode);
  EXPECT_EQ(net.Leader(), 1u);
  EXPECT_TRUE(net.Propose(1, "z").ok());
  EXPECT_EQ(net.node(2).applied_data, std::vector<std::string>{"z"});
}

// A second request for another target replaces the first.
TEST(LeaderTransferTest, NewTargetSupersedesPendingTransfer) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(3);
  ASSERT_TRUE(net.raw(1).TransferLeadership(N(3)).ok());
  net.Stabilize();
  ASSERT_EQ(net.node(1).raft().GetStatus().lead_transferee, N(3));
  ASSERT_TRUE(net.raw(1).TransferLeadership(N(2)).ok());
  net.Stabilize();
  EXPECT_EQ(net.Leader(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Proposals

// Without a known leader a proposal fails at once instead of waiting.
TEST(ProposalTest, NoLeaderFailsAtOnce) {
  Network net({1, 2, 3});
  EXPECT_EQ(net.raw(1).Propose("x").code(), Code::kProposalDropped);
  EXPECT_EQ(net.raw(1).ReadIndex("r").code(), Code::kProposalDropped);
  EXPECT_EQ(net.raw(1).TransferLeadership(N(2)).code(), Code::kProposalDropped);
  // A candidate knows no leader either.
  net.DropType(MT::kVote);
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_EQ(net.node(1).role(), Role::kCandidate);
  EXPECT_EQ(net.raw(1).Propose("x").code(), Code::kProposalDropped);
  net.Stabilize();
  for (uint64_t id : {1, 2, 3}) EXPECT_EQ(net.node(id).last_index(), I(1));
}

// A follower forwards proposals to the leader, which replicates them like its own.
TEST(ProposalTest, FollowerForwardsToLeader) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(2, "forwarded").ok());
  auto props = OfType(net.delivered, MT::kProp);
  ASSERT_EQ(props.size(), 1u);
  EXPECT_EQ(props[0].from, N(2));
  EXPECT_EQ(props[0].to, N(1));
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.node(id).applied_data, std::vector<std::string>{"forwarded"}) << id;
  }
}

TEST(ProposalTest, ForwardingCanBeDisabled) {
  Network net({1, 2, 3}, [](Config& c) { c.disable_proposal_forwarding = true; });
  ASSERT_TRUE(net.Campaign(1).ok());
  EXPECT_EQ(net.raw(2).Propose("x").code(), Code::kNotLeader);
  net.Stabilize();
  EXPECT_EQ(CountType(net.delivered, MT::kProp), 0u);
  EXPECT_TRUE(net.node(1).applied_data.empty());
}

// A leader cut off from its quorum refuses proposals once the uncommitted payload would pass
// max_uncommitted_bytes (kResourceExhausted), and accepts them again once entries commit.
TEST(ProposalTest, UncommittedBytesAreBounded) {
  Network net({1, 2, 3}, [](Config& c) { c.max_uncommitted_bytes = 100; });
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(1);
  const std::string ten(10, 'x');
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.Propose(1, ten).ok()) << i;
  EXPECT_EQ(net.raw(1).Propose(ten).code(), Code::kResourceExhausted);
  EXPECT_EQ(net.raw(1).Propose("y").code(), Code::kResourceExhausted);
  // Empty proposals carry no payload and are never refused.
  EXPECT_TRUE(net.raw(1).Propose("").ok());

  net.Recover();
  net.TickAll(3);
  ASSERT_EQ(net.node(1).committed(), net.node(1).last_index());
  EXPECT_EQ(net.node(2).applied_data.size(), 10u);
  EXPECT_TRUE(net.Propose(1, ten).ok());
}

// The bound is soft by one proposal: a single proposal larger than the bound is accepted when
// nothing is uncommitted, so that no proposal is refused forever.
TEST(ProposalTest, OversizedProposalAcceptedOnEmptyUncommittedLog) {
  Network net({1, 2, 3}, [](Config& c) { c.max_uncommitted_bytes = 100; });
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(1);
  EXPECT_TRUE(net.raw(1).Propose(std::string(1000, 'x')).ok());
  EXPECT_EQ(net.raw(1).Propose("y").code(), Code::kResourceExhausted);
}

}  // namespace
}  // namespace synod::raft::test
