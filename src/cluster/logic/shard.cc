#include "cluster/logic/shard.h"

#include <cstdio>

namespace synod::cluster {

const ShardView* FindShard(const std::vector<ShardView>& shards, uint16_t slot) {
  for (const ShardView& s : shards) {
    if (s.desc.Covers(slot)) return &s;
  }
  return nullptr;
}

std::string ClusterNodeName(uint64_t cluster_id, NodeId node) {
  // splitmix64 of the cluster id and node id, three times over, then the node id itself: ids
  // look random (as Redis's do) yet a reader can still tell node 3 by the last digits.
  uint64_t z = cluster_id ^ (node.value() * 0x9E3779B97F4A7C15ull);
  uint64_t words[2];
  for (uint64_t& w : words) {
    z += 0x9E3779B97F4A7C15ull;
    uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    w = x ^ (x >> 31);
  }
  char out[41];
  std::snprintf(out, sizeof(out), "%016llx%016llx%08llx", static_cast<unsigned long long>(words[0]),
                static_cast<unsigned long long>(words[1]),
                static_cast<unsigned long long>(node.value() & 0xFFFFFFFFull));
  return std::string(out, 40);
}

}  // namespace synod::cluster
