// RawNode::ProposeBatch: several payloads proposed as one proposal are appended in order as
// consecutive entries, travel to each follower in one append, commit and apply like single
// proposals, and are accepted or refused as a whole. An empty append that only carries the
// commit index is left out of a Ready that also sends the same follower new entries.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "raft/raft_test_util.h"
#include "raft/raw_node.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

std::vector<std::string> Payloads(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

TEST(ProposeBatchTest, LeaderAppendsInOrderAndSendsOneAppendPerFollower) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_EQ(net.Leader(), 1u);
  const LogIndex last = net.node(1).last_index();

  ASSERT_TRUE(net.raw(1).ProposeBatch(Payloads("b", 5)).ok());
  // The whole batch is in the leader's log, in order, at the next indexes of its term.
  const Raft& leader = net.node(1).raft();
  ASSERT_EQ(leader.log().LastIndex(), last + 5);
  std::vector<Entry> ents = leader.log().AllEntries();
  for (int i = 0; i < 5; ++i) {
    const Entry& e = ents[ents.size() - 5 + i];
    EXPECT_EQ(e.index, last + (i + 1));
    EXPECT_EQ(e.term, leader.term());
    EXPECT_EQ(e.data, "b" + std::to_string(i));
  }
  // One append per follower carries all five.
  std::vector<Message> apps;
  for (const Message& m : net.CollectAndTake()) {
    if (m.type == MT::kApp) apps.push_back(m);
  }
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    EXPECT_EQ(m.index, last);
    ASSERT_EQ(m.entries.size(), 5u);
    EXPECT_EQ(m.entries.front().data, "b0");
    EXPECT_EQ(m.entries.back().data, "b4");
  }
  net.Send(apps);
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.node(id).committed(), last + 5) << "node " << id;
    std::vector<std::string> want = Payloads("b", 5);
    const std::vector<std::string>& got = net.node(id).applied_data;
    ASSERT_GE(got.size(), want.size()) << "node " << id;
    EXPECT_EQ(std::vector<std::string>(got.end() - 5, got.end()), want) << "node " << id;
  }
}

TEST(ProposeBatchTest, FollowerForwardsTheWholeBatchToTheLeader) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  const LogIndex last = net.node(1).last_index();
  ASSERT_TRUE(net.raw(2).ProposeBatch(Payloads("f", 3)).ok());
  net.Stabilize();
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.node(id).committed(), last + 3) << "node " << id;
    const std::vector<std::string>& got = net.node(id).applied_data;
    ASSERT_GE(got.size(), 3u);
    EXPECT_EQ(std::vector<std::string>(got.end() - 3, got.end()), Payloads("f", 3));
  }
}

std::vector<Message> OfType(const std::vector<Message>& msgs, MessageType type) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == type) out.push_back(m);
  }
  return out;
}

// The acknowledgements of `apps` from their followers, after the followers handled them.
std::vector<Message> Acks(Network& net, const std::vector<Message>& apps) {
  net.Deliver(apps);
  std::vector<Message> acks;
  for (uint64_t id : {2, 3}) {
    for (const Message& m : net.node(id).Drain()) {
      if (m.type == MT::kAppResp) acks.push_back(m);
    }
  }
  return acks;
}

// When the commit index advances the leader tells the followers at once with an empty append;
// when it also has new entries for them before the Ready goes out, the append carrying the
// entries (and the same commit index) is the only one sent.
TEST(ProposeBatchTest, AnEmptyCommitAppendGivesWayToALaterAppendOfTheSameReady) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_EQ(net.Leader(), 1u);
  const LogIndex last = net.node(1).last_index();

  // Control: acknowledgements alone make the leader send empty appends with the new commit.
  ASSERT_TRUE(net.raw(1).ProposeBatch(Payloads("a", 2)).ok());
  std::vector<Message> apps = OfType(net.CollectAndTake(), MT::kApp);
  ASSERT_EQ(apps.size(), 2u);
  net.Deliver(Acks(net, apps));
  EXPECT_EQ(net.node(1).committed(), last + 2);
  std::vector<Message> out;
  ASSERT_TRUE(net.node(1).HandleReady(&out));
  std::vector<Message> commits = OfType(out, MT::kApp);
  ASSERT_EQ(commits.size(), 2u);
  for (const Message& m : commits) {
    EXPECT_TRUE(m.entries.empty());
    EXPECT_EQ(m.commit, last + 2);
  }
  net.Send(commits);

  // Acknowledgements, then new proposals, then the Ready: one append per follower.
  ASSERT_TRUE(net.raw(1).ProposeBatch(Payloads("b", 2)).ok());
  apps = OfType(net.CollectAndTake(), MT::kApp);
  ASSERT_EQ(apps.size(), 2u);
  net.Deliver(Acks(net, apps));
  EXPECT_EQ(net.node(1).committed(), last + 4);
  ASSERT_TRUE(net.raw(1).ProposeBatch(Payloads("c", 3)).ok());
  out.clear();
  ASSERT_TRUE(net.node(1).HandleReady(&out));
  apps = OfType(out, MT::kApp);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    ASSERT_EQ(m.entries.size(), 3u);
    EXPECT_EQ(m.entries.front().data, "c0");
    EXPECT_EQ(m.commit, last + 4);
  }
  // Nothing was lost: everything commits and applies everywhere.
  net.Send(apps);
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.node(id).committed(), last + 7) << "node " << id;
    EXPECT_EQ(net.node(id).applied_data.back(), "c2") << "node " << id;
  }
}

TEST(ProposeBatchTest, RefusedWithoutALeader) {
  Network net({1, 2, 3});
  EXPECT_EQ(net.raw(1).ProposeBatch(Payloads("x", 2)).code(), Code::kProposalDropped);
  EXPECT_EQ(net.node(1).last_index(), I(1));
}

TEST(ProposeBatchTest, AcceptedOrRefusedAsAWhole) {
  // The uncommitted bound admits one 100-byte batch and refuses the next whole, since no
  // follower answers.
  Network net({1, 2, 3}, [](Config& c) { c.max_uncommitted_bytes = 150; });
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(1);
  const LogIndex last = net.node(1).last_index();
  ASSERT_TRUE(net.raw(1).ProposeBatch({std::string(50, 'a'), std::string(50, 'b')}).ok());
  EXPECT_EQ(net.raw(1).ProposeBatch({std::string(30, 'c'), std::string(30, 'd')}).code(),
            Code::kResourceExhausted);
  EXPECT_EQ(net.node(1).last_index(), last + 2);
}

}  // namespace
}  // namespace synod::raft::test
