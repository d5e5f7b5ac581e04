#include "cluster/logic/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "cluster/logic/layout.h"

namespace synod::cluster {
namespace {

using K = PlacementAction::Kind;

std::vector<PlacementNode> Nodes(int n) {
  std::vector<PlacementNode> out;
  for (int i = 1; i <= n; ++i) out.push_back({NodeId(i), "", true, false});
  return out;
}

PlacementInput Cluster(int nodes, int initial_nodes, int shards) {
  std::vector<NodeId> ids;
  for (int i = 1; i <= initial_nodes; ++i) ids.push_back(NodeId(i));
  Result<Layout> l = MakeInitialLayout(ids, shards, 3);
  EXPECT_TRUE(l.ok());
  PlacementInput in;
  in.nodes = Nodes(nodes);
  in.meta = l->meta;
  in.shards = l->shards;
  return in;
}

ShardDescriptor* Find(PlacementInput& in, GroupId g) {
  if (g == kMetaGroup) return &in.meta;
  for (ShardDescriptor& d : in.shards) {
    if (d.group == g) return &d;
  }
  return nullptr;
}

void Erase(std::vector<NodeId>& v, NodeId n) {
  v.erase(std::remove(v.begin(), v.end(), n), v.end());
}

// Carries out an action the way the host does, all steps at once.
void Apply(PlacementInput& in, const PlacementAction& a) {
  if (a.kind == K::kForget) {
    std::erase_if(in.nodes, [&](const PlacementNode& n) { return n.id == a.from; });
    return;
  }
  ShardDescriptor* d = Find(in, a.group);
  ASSERT_NE(d, nullptr);
  if (a.kind == K::kLead) {
    auto it = std::find(d->voters.begin(), d->voters.end(), a.to);
    ASSERT_NE(it, d->voters.end());
    std::rotate(d->voters.begin(), it, it + 1);
    return;
  }
  if (a.to != kNoNode) {
    ASSERT_FALSE(std::count(d->voters.begin(), d->voters.end(), a.to)) << DescribeAction(a);
    d->voters.push_back(a.to);
  }
  if (a.from != kNoNode) {
    Erase(d->voters, a.from);
    Erase(d->learners, a.from);
  }
  ASSERT_FALSE(d->voters.empty()) << DescribeAction(a);
}

// Plans and applies until nothing is left to do; the number of rounds (-1: no end).
int Converge(PlacementInput& in, int max_rounds = 200) {
  for (int round = 0; round < max_rounds; ++round) {
    const std::vector<PlacementAction> actions = PlanPlacement(in);
    if (actions.empty()) return round;
    int changes = 0;
    for (const PlacementAction& a : actions) {
      if (a.kind != K::kLead && a.kind != K::kForget) ++changes;
      Apply(in, a);
    }
    EXPECT_LE(changes, in.max_changes);
  }
  return -1;
}

std::map<NodeId, int> Replicas(const PlacementInput& in) {
  std::map<NodeId, int> out;
  for (const PlacementNode& n : in.nodes) out[n.id] = 0;
  for (const ShardDescriptor& d : in.shards) {
    for (NodeId v : d.voters) ++out[v];
  }
  return out;
}

std::map<NodeId, int> Preferred(const PlacementInput& in) {
  std::map<NodeId, int> out;
  for (const PlacementNode& n : in.nodes) out[n.id] = 0;
  for (const ShardDescriptor& d : in.shards) ++out[d.voters.front()];
  return out;
}

int Spread(const std::map<NodeId, int>& m) {
  int lo = 1 << 30, hi = 0;
  for (const auto& [n, c] : m) {
    lo = std::min(lo, c);
    hi = std::max(hi, c);
  }
  return hi - lo;
}

TEST(Placement, AnInitialLayoutIsLeftAlone) {
  for (int nodes : {1, 3, 5}) {
    PlacementInput in = Cluster(nodes, nodes, 2 * nodes);
    EXPECT_TRUE(PlanPlacement(in).empty()) << nodes << " nodes";
  }
}

TEST(Placement, NewNodesGetTheirShareOfReplicasAndLeaders) {
  PlacementInput in = Cluster(5, 3, 6);
  // Both new nodes join the meta shard first, then replicas move over, three at a time.
  const std::vector<PlacementAction> first = PlanPlacement(in);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(DescribeAction(first[0]), "add group=1 to=4 reason=under-replicated");
  ASSERT_GE(Converge(in), 1);
  const auto replicas = Replicas(in);
  EXPECT_LE(Spread(replicas), 1) << ::testing::PrintToString(replicas);
  EXPECT_GE(replicas.at(NodeId(4)), 3);
  EXPECT_LE(Spread(Preferred(in)), 1) << ::testing::PrintToString(Preferred(in));
  EXPECT_EQ(in.meta.voters.size(), 5u);
  for (const ShardDescriptor& d : in.shards) EXPECT_EQ(d.voters.size(), 3u);
}

TEST(Placement, ADeadNodesReplicasMoveWhenAnotherNodeCanTakeThem) {
  PlacementInput in = Cluster(4, 4, 8);
  in.nodes[1].live = false;  // node 2
  ASSERT_GE(Converge(in), 1);
  for (const ShardDescriptor& d : in.shards) {
    EXPECT_EQ(d.voters.size(), 3u);
    EXPECT_FALSE(std::count(d.voters.begin(), d.voters.end(), NodeId(2))) << d.group.value();
  }
  // The meta shard has no spare node: node 2 stays in it (removing it would gain nothing).
  EXPECT_TRUE(std::count(in.meta.voters.begin(), in.meta.voters.end(), NodeId(2)));
  // Node 2 comes back: it gets replicas again.
  in.nodes[1].live = true;
  ASSERT_GE(Converge(in), 1);
  EXPECT_LE(Spread(Replicas(in)), 1);
}

TEST(Placement, ADeadNodeWithNoSpareIsLeftInPlace) {
  PlacementInput in = Cluster(3, 3, 6);
  in.nodes[2].live = false;
  for (const PlacementAction& a : PlanPlacement(in)) {
    // Only leader preferences move away from it.
    EXPECT_EQ(a.kind, K::kLead) << DescribeAction(a);
    EXPECT_EQ(a.from, NodeId(3));
  }
}

TEST(Placement, ADrainedNodeHoldsNothingAndIsForgotten) {
  PlacementInput in = Cluster(4, 4, 8);
  in.nodes[0].draining = true;  // node 1
  ASSERT_GE(Converge(in), 1);
  EXPECT_EQ(in.nodes.size(), 3u);
  for (const ShardDescriptor& d : in.shards) {
    EXPECT_EQ(d.voters.size(), 3u);
    EXPECT_FALSE(std::count(d.voters.begin(), d.voters.end(), NodeId(1)));
  }
  EXPECT_FALSE(std::count(in.meta.voters.begin(), in.meta.voters.end(), NodeId(1)));
  EXPECT_LE(Spread(Replicas(in)), 1);
}

TEST(Placement, DrainingBelowTheReplicaCountRemovesReplicas) {
  PlacementInput in = Cluster(3, 3, 3);
  in.nodes[2].draining = true;
  ASSERT_GE(Converge(in), 1);
  for (const ShardDescriptor& d : in.shards) EXPECT_EQ(d.voters.size(), 2u);
  EXPECT_EQ(in.nodes.size(), 2u);
}

TEST(Placement, ReplicasSpreadOverZones) {
  PlacementInput in = Cluster(6, 6, 6);
  const char* zones[] = {"a", "a", "b", "b", "c", "c"};
  for (int i = 0; i < 6; ++i) in.nodes[i].zone = zones[i];
  ASSERT_GE(Converge(in), 1);
  for (const ShardDescriptor& d : in.shards) {
    std::set<std::string> z;
    for (NodeId v : d.voters) z.insert(zones[v.value() - 1]);
    EXPECT_EQ(z.size(), 3u) << EncodeDescriptor(d);
  }
  EXPECT_LE(Spread(Replicas(in)), 1);
}

TEST(Placement, ChangesInFlightAreBounded) {
  PlacementInput in = Cluster(6, 3, 6);
  in.busy = {GroupId(2), GroupId(3)};
  in.max_changes = 3;
  std::vector<PlacementAction> actions = PlanPlacement(in);
  int changes = 0;
  for (const PlacementAction& a : actions) {
    EXPECT_FALSE(in.busy.contains(a.group)) << DescribeAction(a);
    changes += a.kind == K::kLead ? 0 : 1;
  }
  EXPECT_EQ(changes, 1);
  in.busy = {GroupId(2), GroupId(3), GroupId(4)};
  EXPECT_TRUE(PlanPlacement(in).empty());
}

TEST(Placement, ExtraReplicasGoAndMissingOnesCome) {
  PlacementInput in = Cluster(4, 4, 4);
  in.shards[0].voters = {NodeId(1), NodeId(2), NodeId(3), NodeId(4)};
  in.shards[1].voters = {NodeId(2)};
  const std::vector<PlacementAction> a = PlanPlacement(in);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].kind, K::kRemove);
  EXPECT_NE(a[0].from, NodeId(1)) << "the preferred leader stays";
  EXPECT_EQ(a[1].kind, K::kAdd);
  ASSERT_GE(Converge(in), 1);
  for (const ShardDescriptor& d : in.shards) EXPECT_EQ(d.voters.size(), 3u);
}

TEST(Placement, ALearnerIsLeftToCatchUpUnlessItsNodeIsGone) {
  PlacementInput in = Cluster(4, 4, 4);
  in.shards[0].learners = {NodeId(4)};
  for (const PlacementAction& a : PlanPlacement(in)) EXPECT_NE(a.group, in.shards[0].group);
  in.nodes[3].live = false;
  const std::vector<PlacementAction> a = PlanPlacement(in);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(DescribeAction(a[0]).substr(0, 24), "remove group=2 from=4 re");
}

// Random clusters and faults: placement always ends, replicas and preferences balanced.
TEST(Placement, RandomClustersConverge) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    std::mt19937 rng(seed);
    const int initial = 1 + static_cast<int>(rng() % 5);
    const int nodes = initial + static_cast<int>(rng() % 4);
    PlacementInput in = Cluster(nodes, initial, 1 + static_cast<int>(rng() % 12));
    in.max_changes = 1 + static_cast<int>(rng() % 4);
    std::set<NodeId> dead;
    for (PlacementNode& n : in.nodes) {
      const uint32_t r = rng() % 10;
      if (r == 0 && nodes > 1) {
        n.live = false;
        dead.insert(n.id);
      } else if (r == 1) {
        n.draining = true;
      }
      if (rng() % 3 == 0) n.zone = std::string(1, static_cast<char>('a' + rng() % 3));
    }
    const int rounds = Converge(in);
    ASSERT_GE(rounds, 0) << "seed " << seed;
    int usable = 0;
    std::map<NodeId, int> load;
    for (const PlacementNode& n : in.nodes) {
      EXPECT_FALSE(n.draining) << "seed " << seed << ": drained node " << n.id.value() << " kept";
      if (n.live && !n.draining) {
        ++usable;
        load[n.id] = 0;
      }
    }
    for (const ShardDescriptor& d : in.shards) {
      ASSERT_FALSE(d.voters.empty());
      int usable_voters = 0;
      for (NodeId v : d.voters) {
        if (load.contains(v)) {
          ++load[v];
          ++usable_voters;
        }
      }
      if (usable > 0) {
        EXPECT_EQ(usable_voters, std::min(3, usable))
            << "seed " << seed << " " << EncodeDescriptor(d);
      }
    }
    // Balanced within one replica, unless zones forbid it (a zone's nodes hold at most one
    // replica of a shard); with zones, every shard on as many zones as it can be.
    std::map<NodeId, std::string> zone_of;
    std::set<std::string> zones;
    bool zoned = false;
    for (const PlacementNode& n : in.nodes) {
      zone_of[n.id] = n.zone.empty() ? "#" + std::to_string(n.id.value()) : n.zone;
      zoned = zoned || !n.zone.empty();
      if (load.contains(n.id)) zones.insert(zone_of[n.id]);
    }
    if (usable > 0 && !zoned) {
      EXPECT_LE(Spread(load), 1) << "seed " << seed;
    }
    for (const ShardDescriptor& d : in.shards) {
      std::set<std::string> z;
      for (NodeId v : d.voters) {
        if (load.contains(v)) z.insert(zone_of[v]);
      }
      if (usable > 0) {
        EXPECT_EQ(z.size(), std::min<size_t>(3, zones.size()))
            << "seed " << seed << " " << EncodeDescriptor(d);
      }
    }
  }
}

std::map<NodeId, uint64_t> Bytes(const PlacementInput& in) {
  std::map<NodeId, uint64_t> out;
  for (const PlacementNode& n : in.nodes) out[n.id] = 0;
  for (const ShardDescriptor& d : in.shards) {
    for (NodeId v : d.voters) out[v] += in.bytes.at(d.group);
  }
  return out;
}

uint64_t ByteSpread(const std::map<NodeId, uint64_t>& m) {
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& [n, b] : m) {
    lo = std::min(lo, b);
    hi = std::max(hi, b);
  }
  return hi - lo;
}

constexpr uint64_t kMiB = 1 << 20;

// Four nodes, replicas balanced by count (three each), but the large shards sit together: the
// heavy node gives a large replica to the light one and takes a small one back, in one round,
// and after a few rounds every node is within 10% of the mean; the counts never move apart.
TEST(Placement, BytesBalanceBySwappingALargeReplicaForASmallOne) {
  PlacementInput in = Cluster(4, 4, 8);
  ASSERT_TRUE(PlanPlacement(in).empty());
  ASSERT_EQ(Spread(Replicas(in)), 0);
  // Node 1's shards are large, the others half as large (10% is reachable: 4.5 large
  // replicas a node on average).
  for (const ShardDescriptor& d : in.shards) {
    const bool on_1 = std::count(d.voters.begin(), d.voters.end(), NodeId(1)) > 0;
    in.bytes[d.group] = on_1 ? 100 * kMiB : 50 * kMiB;
  }
  const uint64_t before = ByteSpread(Bytes(in));
  const std::vector<PlacementAction> first = PlanPlacement(in);
  ASSERT_EQ(first.size(), 2u) << ::testing::PrintToString(first.size());
  EXPECT_EQ(first[0].reason, "bytes");
  EXPECT_EQ(first[0].from, first[1].to);
  EXPECT_EQ(first[0].to, first[1].from);
  ASSERT_GE(Converge(in), 0);
  EXPECT_EQ(Spread(Replicas(in)), 0);
  const std::map<NodeId, uint64_t> after = Bytes(in);
  EXPECT_LT(ByteSpread(after), before);
  uint64_t total = 0;
  uint64_t hi = 0;
  for (const auto& [n, b] : after) {
    total += b;
    hi = std::max(hi, b);
  }
  EXPECT_LE(hi * 10, total / 4 * 11) << "the heaviest node within 10% of the mean";
}

// Without every shard's bytes, or with a gap below kBytesSpreadMin, nothing moves for bytes.
TEST(Placement, BytesBalanceWaitsForEveryShardsBytesAndIgnoresSmallGaps) {
  PlacementInput in = Cluster(4, 4, 4);
  ASSERT_TRUE(PlanPlacement(in).empty());
  for (const ShardDescriptor& d : in.shards) in.bytes[d.group] = 1000;
  in.bytes[in.shards.front().group] = 1000 + kBytesSpreadMin / 2;
  EXPECT_TRUE(PlanPlacement(in).empty()) << "a gap below the minimum";
  in.bytes[in.shards.front().group] = 500 * kMiB;
  in.bytes.erase(in.shards.back().group);
  EXPECT_TRUE(PlanPlacement(in).empty()) << "a shard's bytes unknown";
}

// Random sizes on random clusters: byte balancing ends (each swap narrows the gap), keeps the
// counts within one, never widens the byte spread, and leaves no node above 10% over the mean
// unless no move or swap could narrow it.
TEST(Placement, RandomShardSizesConvergeByBytes) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    const int nodes = 3 + static_cast<int>(rng() % 5);
    PlacementInput in = Cluster(nodes, nodes, 3 + static_cast<int>(rng() % 14));
    in.max_changes = 2 + static_cast<int>(rng() % 3);
    for (const ShardDescriptor& d : in.shards) {
      in.bytes[d.group] = (rng() % 3 == 0 ? 400 : 20) * kMiB + rng() % (50 * kMiB);
    }
    const uint64_t before = ByteSpread(Bytes(in));
    ASSERT_GE(Converge(in), 0) << "seed " << seed;
    EXPECT_LE(Spread(Replicas(in)), 1) << "seed " << seed;
    EXPECT_LE(ByteSpread(Bytes(in)), before) << "seed " << seed;
    EXPECT_TRUE(PlanPlacement(in).empty()) << "seed " << seed;
  }
}

std::map<NodeId, uint64_t> LedWrites(const PlacementInput& in) {
  std::map<NodeId, uint64_t> out;
  for (const PlacementNode& n : in.nodes) out[n.id] = 0;
  for (const ShardDescriptor& d : in.shards) out[d.voters.front()] += in.writes.at(d.group);
  return out;
}

// Three nodes, each the preferred leader of two shards, but node 1 leads the two hot ones: it
// swaps a hot one for a cold one with a fellow voter (the counts stay), and once balanced
// nothing more moves.
TEST(Placement, LeaderWritesBalanceBySwappingAHotLeaderForAColdOne) {
  PlacementInput in = Cluster(3, 3, 6);
  ASSERT_TRUE(PlanPlacement(in).empty());
  ASSERT_EQ(Spread(Preferred(in)), 0);
  for (const ShardDescriptor& d : in.shards) {
    in.writes[d.group] = d.voters.front() == NodeId(1) ? 5000 : 500;
  }
  const uint64_t before = ByteSpread(LedWrites(in));
  const std::vector<PlacementAction> first = PlanPlacement(in);
  ASSERT_EQ(first.size(), 2u) << ::testing::PrintToString(first.size());
  EXPECT_EQ(first[0].kind, K::kLead);
  EXPECT_EQ(first[0].reason, "leader writes");
  EXPECT_EQ(first[0].from, NodeId(1));
  EXPECT_EQ(first[0].from, first[1].to);
  EXPECT_EQ(first[0].to, first[1].from);
  ASSERT_GE(Converge(in), 0);
  EXPECT_EQ(Spread(Preferred(in)), 0) << "the counts never move apart";
  EXPECT_LT(ByteSpread(LedWrites(in)), before);
  EXPECT_TRUE(PlanPlacement(in).empty());
}

// Without every shard's writes, or with a gap below kWritesSpreadMin, no leader moves for writes.
TEST(Placement, LeaderWritesWaitForEveryShardsLoadAndIgnoreSmallGaps) {
  PlacementInput in = Cluster(3, 3, 6);
  ASSERT_TRUE(PlanPlacement(in).empty());
  for (const ShardDescriptor& d : in.shards) in.writes[d.group] = 100;
  in.writes[in.shards.front().group] = 100 + kWritesSpreadMin / 2;
  EXPECT_TRUE(PlanPlacement(in).empty()) << "a gap below the minimum";
  in.writes[in.shards.front().group] = 100'000;
  in.writes.erase(in.shards.back().group);
  EXPECT_TRUE(PlanPlacement(in).empty()) << "a shard's writes unknown";
}

// Random loads on random clusters: leader-writes balancing ends (each hand-over narrows a gap),
// keeps the leader counts within one, and never widens the spread of led writes.
TEST(Placement, RandomShardWritesConvergeByLeaders) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    const int nodes = 3 + static_cast<int>(rng() % 5);
    PlacementInput in = Cluster(nodes, nodes, 3 + static_cast<int>(rng() % 14));
    ASSERT_GE(Converge(in), 0) << "seed " << seed;
    for (const ShardDescriptor& d : in.shards) {
      in.writes[d.group] = rng() % 4 == 0 ? 5000 + rng() % 20000 : rng() % 300;
    }
    const uint64_t before = ByteSpread(LedWrites(in));
    ASSERT_GE(Converge(in), 0) << "seed " << seed;
    EXPECT_LE(Spread(Preferred(in)), 1) << "seed " << seed;
    EXPECT_LE(ByteSpread(LedWrites(in)), before) << "seed " << seed;
  }
}

}  // namespace
}  // namespace synod::cluster
