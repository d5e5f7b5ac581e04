#include "sim/network.h"

namespace synod::sim {

std::string SimNetwork::Describe() const {
  std::string s;
  for (const auto& [from, to] : blocked_) {
    if (!s.empty()) s += ' ';
    s += std::to_string(from.value()) + "->" + std::to_string(to.value());
  }
  return s.empty() ? "none" : s;
}

int64_t SimNetwork::Latency(NodeId from, NodeId to) {
  int64_t l = rng_->Range(default_.latency_min_ns, default_.latency_max_ns);
  auto it = clogged_.find({from, to});
  if (it != clogged_.end()) l += it->second;
  return l;
}

void SimNetwork::Send(NodeId from, NodeId to, std::function<void()> deliver) {
  ++sent_;
  if (Blocked(from, to) || rng_->Chance(default_.loss)) {
    ++dropped_;
    return;
  }
  int copies = rng_->Chance(default_.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    loop_->After(Latency(from, to), [this, from, to, deliver] {
      if (Blocked(from, to)) {
        ++dropped_;
        return;
      }
      deliver();
    });
  }
}

}  // namespace synod::sim
