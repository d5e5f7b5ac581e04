// The initial layout of a new cluster: which shards exist, which slots each owns, on which nodes
// their replicas live and which replica should lead. Every initial node computes it from the same
// inputs (the initial member list and the --shards / --replicas flags) and gets the same answer,
// so a cluster can be bootstrapped without any node telling the others.
//
// Groups: 1 is the meta shard (kMetaGroup); data shards are 2, 3, ... in slot order.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cluster/logic/shard.h"
#include "common/ids.h"
#include "common/status.h"

namespace synod::cluster {

inline constexpr GroupId kMetaGroup{1};
inline constexpr GroupId kFirstShardGroup{2};
// The meta shard's replicas: the first this many initial nodes (in id order).
inline constexpr int kMetaReplicasMax = 5;

// `shards` data shards of contiguous slot ranges as equal as they can be (the first
// kSlotCount % shards get one slot more), each on min(replicas, nodes) distinct nodes. Replicas
// go round robin: shard i on the nodes i, i+1, ... (mod the node count, nodes in id order), and
// node i is its preferred leader, so that with shards a multiple of the node count every node
// holds as many replicas and leads as many shards as any other. Voters are listed preferred
// leader first. Errors: kInvalidArgument for no nodes, a repeated or zero node id, shards
// outside 1..kSlotCount, replicas < 1.
Result<std::vector<ShardDescriptor>> InitialLayout(std::vector<NodeId> nodes, int shards,
                                                   int replicas);

// The meta shard of a new cluster: every slot is irrelevant to it (it holds the descriptors),
// its voters the first min(kMetaReplicasMax, nodes) nodes in id order.
ShardDescriptor InitialMetaShard(std::vector<NodeId> nodes);

// A cluster's shards: the meta shard and the data shards, in slot order, which cover every slot
// exactly once. The meta shard owns the descriptors (docs/sharding.md, "Descriptors"); every
// node keeps its latest view of them in its NodeDb.
struct Layout {
  ShardDescriptor meta;
  std::vector<ShardDescriptor> shards;
};

// InitialLayout and InitialMetaShard together, checked by ValidateLayout.
Result<Layout> MakeInitialLayout(const std::vector<NodeId>& nodes, int shards, int replicas);
// kInvalidArgument unless: the meta shard is kMetaGroup with voters; data shards have distinct
// groups other than kMetaGroup, voters without repeats, and contiguous slot ranges in order
// from slot 0 to the last slot.
Status ValidateLayout(const Layout& layout);
// A text form, one shard per line ("meta group=1 epoch=1 voters=1,2,3 learners=" and
// "shard group=2 slots=0-2730 epoch=1 voters=1,2,3 learners="), for the NodeDb and for the
// join reply. DecodeLayout parses it and validates the result; never crashes on bad text.
std::string EncodeLayout(const Layout& layout);
Result<Layout> DecodeLayout(std::string_view text);
// One line of that form (no newline): "meta ..." for kMetaGroup, else "shard ...". The decoder
// checks the fields and the members (voters, no repeats, no node 0), not the slot coverage.
std::string EncodeDescriptor(const ShardDescriptor& d);
Result<ShardDescriptor> DecodeDescriptor(std::string_view line);

// Whether `d` lists exactly these members (in any order).
bool SameMembers(const ShardDescriptor& d, const std::vector<NodeId>& voters,
                 const std::vector<NodeId>& learners);
// `d` with these members and the next epoch; the preferred leader (d's first voter) stays
// first while it is a voter, the other voters and the learners in id order.
ShardDescriptor WithMembers(const ShardDescriptor& d, std::vector<NodeId> voters,
                            std::vector<NodeId> learners);

}  // namespace synod::cluster
