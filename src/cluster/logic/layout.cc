#include "cluster/logic/layout.h"

#include <algorithm>
#include <string>

namespace synod::cluster {

Result<std::vector<ShardDescriptor>> InitialLayout(std::vector<NodeId> nodes, int shards,
                                                   int replicas) {
  std::sort(nodes.begin(), nodes.end());
  if (nodes.empty()) return Status::InvalidArgument("a layout needs at least one node");
  if (nodes.front() == kNoNode || std::adjacent_find(nodes.begin(), nodes.end()) != nodes.end()) {
    return Status::InvalidArgument("node ids must be distinct and >= 1");
  }
  if (shards < 1 || shards > static_cast<int>(kSlotCount)) {
    return Status::InvalidArgument("--shards must be between 1 and " + std::to_string(kSlotCount) +
                                   ", not " + std::to_string(shards));
  }
  if (replicas < 1) {
    return Status::InvalidArgument("--replicas must be at least 1, not " +
                                   std::to_string(replicas));
  }
  const size_t n = nodes.size();
  const size_t r = std::min(static_cast<size_t>(replicas), n);
  const uint32_t base = kSlotCount / static_cast<uint32_t>(shards);
  const uint32_t extra = kSlotCount % static_cast<uint32_t>(shards);
  std::vector<ShardDescriptor> out;
  out.reserve(static_cast<size_t>(shards));
  uint32_t first = 0;
  for (uint32_t i = 0; i < static_cast<uint32_t>(shards); ++i) {
    const uint32_t size = base + (i < extra ? 1 : 0);
    ShardDescriptor d;
    d.group = GroupId(kFirstShardGroup.value() + i);
    d.first_slot = static_cast<uint16_t>(first);
    d.last_slot = static_cast<uint16_t>(first + size - 1);
    d.epoch = 1;
    for (size_t k = 0; k < r; ++k) d.voters.push_back(nodes[(i + k) % n]);
    out.push_back(std::move(d));
    first += size;
  }
  return out;
}

ShardDescriptor InitialMetaShard(std::vector<NodeId> nodes) {
  std::sort(nodes.begin(), nodes.end());
  ShardDescriptor d;
  d.group = kMetaGroup;
  d.epoch = 1;
  const size_t r = std::min(nodes.size(), static_cast<size_t>(kMetaReplicasMax));
  d.voters.assign(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(r));
  return d;
}

}  // namespace synod::cluster
