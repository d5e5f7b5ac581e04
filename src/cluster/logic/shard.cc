#include "cluster/logic/shard.h"

#include <cstdio>

#include "env/random.h"

namespace synod::cluster {

const ShardView* FindShard(const std::vector<ShardView>& shards, uint16_t slot) {
  for (const ShardView& s : shards) {
    if (s.desc.Covers(slot)) return &s;
  }
  return nullptr;
}

std::string ClusterNodeName(uint64_t cluster_id, NodeId node) {
  // Two words drawn from the cluster and node ids, then the node id itself: names look random
  // (as Redis's do) yet a reader can still tell node 3 by the last digits.
  env::Random r(cluster_id ^ (node.value() * 0x9E3779B97F4A7C15ull));
  const uint64_t words[2] = {r.Next(), r.Next()};
  char out[41];
  std::snprintf(out, sizeof(out), "%016llx%016llx%08llx", static_cast<unsigned long long>(words[0]),
                static_cast<unsigned long long>(words[1]),
                static_cast<unsigned long long>(node.value() & 0xFFFFFFFFull));
  return std::string(out, 40);
}

}  // namespace synod::cluster
