#include "cluster/logic/layout.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace synod::cluster {
namespace {

std::vector<NodeId> Nodes(int n) {
  std::vector<NodeId> out;
  for (int i = n; i >= 1; --i) out.emplace_back(static_cast<uint64_t>(i));  // any order
  return out;
}

// Every slot in exactly one shard, in order, with no gap.
void ExpectCoversEverySlotOnce(const std::vector<ShardDescriptor>& shards) {
  uint32_t next = 0;
  for (const ShardDescriptor& s : shards) {
    EXPECT_EQ(s.first_slot, next);
    EXPECT_GE(s.last_slot, s.first_slot);
    next = uint32_t{s.last_slot} + 1;
  }
  EXPECT_EQ(next, kSlotCount);
}

TEST(LayoutTest, SixShardsOnThreeNodesSpreadReplicasAndLeaders) {
  Result<std::vector<ShardDescriptor>> l = InitialLayout(Nodes(3), 6, 3);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  ASSERT_EQ(l->size(), 6u);
  ExpectCoversEverySlotOnce(*l);
  std::map<NodeId, int> leads;
  for (size_t i = 0; i < l->size(); ++i) {
    const ShardDescriptor& s = (*l)[i];
    EXPECT_EQ(s.group, GroupId(2 + i));
    EXPECT_EQ(s.epoch, 1u);
    ASSERT_EQ(s.voters.size(), 3u);
    EXPECT_EQ(std::set<NodeId>(s.voters.begin(), s.voters.end()).size(), 3u);
    ++leads[s.voters.front()];
  }
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(leads[NodeId(uint64_t(i))], 2) << "node " << i;
  // 16384 / 6 = 2730 rest 4: the first four shards have one slot more.
  EXPECT_EQ((*l)[0].last_slot - (*l)[0].first_slot + 1, 2731);
  EXPECT_EQ((*l)[5].last_slot - (*l)[5].first_slot + 1, 2730);
}

TEST(LayoutTest, MoreNodesThanReplicasBalanceTheReplicas) {
  Result<std::vector<ShardDescriptor>> l = InitialLayout(Nodes(5), 10, 3);
  ASSERT_TRUE(l.ok());
  ExpectCoversEverySlotOnce(*l);
  std::map<NodeId, int> held, leads;
  for (const ShardDescriptor& s : *l) {
    ASSERT_EQ(s.voters.size(), 3u);
    EXPECT_EQ(std::set<NodeId>(s.voters.begin(), s.voters.end()).size(), 3u);
    for (NodeId v : s.voters) ++held[v];
    ++leads[s.voters.front()];
  }
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(held[NodeId(uint64_t(i))], 6) << "node " << i;
    EXPECT_EQ(leads[NodeId(uint64_t(i))], 2) << "node " << i;
  }
}

TEST(LayoutTest, ReplicasAreCappedAtTheNodeCountAndOneNodeWorks) {
  Result<std::vector<ShardDescriptor>> l = InitialLayout(Nodes(1), 2, 3);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 2u);
  for (const ShardDescriptor& s : *l) EXPECT_EQ(s.voters, std::vector<NodeId>{NodeId(1)});
  Result<std::vector<ShardDescriptor>> all = InitialLayout(Nodes(2), int(kSlotCount), 3);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), kSlotCount);
  ExpectCoversEverySlotOnce(*all);
}

TEST(LayoutTest, TheSameInputsGiveTheSameLayoutWhateverTheOrder) {
  std::vector<NodeId> a{NodeId(3), NodeId(1), NodeId(7)};
  std::vector<NodeId> b{NodeId(7), NodeId(3), NodeId(1)};
  auto la = InitialLayout(a, 5, 2);
  auto lb = InitialLayout(b, 5, 2);
  ASSERT_TRUE(la.ok() && lb.ok());
  for (size_t i = 0; i < la->size(); ++i) {
    EXPECT_EQ((*la)[i].voters, (*lb)[i].voters);
    EXPECT_EQ((*la)[i].first_slot, (*lb)[i].first_slot);
  }
}

TEST(LayoutTest, BadInputsAreRefused) {
  EXPECT_EQ(InitialLayout({}, 2, 3).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(InitialLayout(Nodes(3), 0, 3).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(InitialLayout(Nodes(3), int(kSlotCount) + 1, 3).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(InitialLayout(Nodes(3), 2, 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(InitialLayout({NodeId(1), NodeId(1)}, 2, 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(InitialLayout({NodeId(0), NodeId(1)}, 2, 1).status().code(), Code::kInvalidArgument);
}

TEST(LayoutTest, TheMetaShardTakesUpToFiveNodes) {
  EXPECT_EQ(InitialMetaShard(Nodes(3)).voters.size(), 3u);
  const ShardDescriptor m = InitialMetaShard(Nodes(7));
  EXPECT_EQ(m.group, kMetaGroup);
  EXPECT_EQ(m.voters, (std::vector<NodeId>{NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)}));
}

}  // namespace
}  // namespace synod::cluster
