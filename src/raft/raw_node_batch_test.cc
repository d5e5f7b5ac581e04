// RawNode::ProposeBatch: several payloads proposed as one proposal are appended in order as
// consecutive entries, travel to each follower in one append, commit and apply like single
// proposals, and are accepted or refused as a whole.
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
