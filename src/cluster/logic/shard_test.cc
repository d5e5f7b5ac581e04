#include "cluster/logic/shard.h"

#include <gtest/gtest.h>

#include <set>

namespace synod::cluster {
namespace {

TEST(ShardTest, FindShardGivesTheShardCoveringASlot) {
  std::vector<ShardView> shards(2);
  shards[0].desc.group = GroupId(2);
  shards[0].desc.first_slot = 0;
  shards[0].desc.last_slot = 8191;
  shards[1].desc.group = GroupId(3);
  shards[1].desc.first_slot = 8192;
  shards[1].desc.last_slot = 16383;
  EXPECT_EQ(FindShard(shards, 0)->desc.group, GroupId(2));
  EXPECT_EQ(FindShard(shards, 8191)->desc.group, GroupId(2));
  EXPECT_EQ(FindShard(shards, 8192)->desc.group, GroupId(3));
  EXPECT_EQ(FindShard(shards, 16383)->desc.group, GroupId(3));
  shards.pop_back();
  EXPECT_EQ(FindShard(shards, 9000), nullptr);
}

TEST(ShardTest, NodeNamesAreFortyHexDigitsStableAndDistinct) {
  const std::string a = ClusterNodeName(0xC1u, NodeId(1));
  EXPECT_EQ(a.size(), 40u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_EQ(a, ClusterNodeName(0xC1u, NodeId(1)));  // the same on every node, every start
  EXPECT_EQ(a.substr(32), "00000001");              // the node id shows in the last digits
  std::set<std::string> names;
  for (uint64_t cluster : {1u, 2u}) {
    for (uint64_t n = 1; n <= 50; ++n) names.insert(ClusterNodeName(cluster, NodeId(n)));
  }
  EXPECT_EQ(names.size(), 100u);
}

}  // namespace
}  // namespace synod::cluster
