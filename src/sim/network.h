// SimNetwork: the simulated network between nodes.
//
// Every directed link has a latency distribution, a loss and a duplication probability;
// reordering follows from jitter. Partitions block directed links (so one-way partitions are
// possible); clogging adds a large delay to a link for a while. Decisions use the simulation's
// seeded Random, so a seed fixes every delivery.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "common/ids.h"
#include "env/random.h"
#include "sim/event_loop.h"

namespace synod::sim {

struct LinkProfile {
  int64_t latency_min_ns = 200 * kMicro;
  int64_t latency_max_ns = 2 * kMilli;
  double loss = 0;       // probability a message is lost
  double duplicate = 0;  // probability a message is delivered twice
};

class SimNetwork {
 public:
  SimNetwork(EventLoop* loop, env::Random* rng) : loop_(loop), rng_(rng) {}

  void SetDefaultProfile(const LinkProfile& p) { default_ = p; }
  // Blocks or unblocks the directed link from -> to.
  void Block(NodeId from, NodeId to) { blocked_.insert({from, to}); }
  void Unblock(NodeId from, NodeId to) { blocked_.erase({from, to}); }
  // Delays every message on from -> to by an extra `extra_ns` until Unclog.
  void Clog(NodeId from, NodeId to, int64_t extra_ns) { clogged_[{from, to}] = extra_ns; }
  void Unclog(NodeId from, NodeId to) { clogged_.erase({from, to}); }
  // Removes every partition and clog.
  void HealAll() {
    blocked_.clear();
    clogged_.clear();
  }
  bool Blocked(NodeId from, NodeId to) const { return blocked_.count({from, to}) != 0; }
  // A human-readable list of blocked links ("1->2 3->1").
  std::string Describe() const;

  // Schedules `deliver` (0, 1 or 2 times) according to the link's state. Blocking is checked
  // both at send and at delivery time, so a partition also cuts messages in flight.
  void Send(NodeId from, NodeId to, std::function<void()> deliver);

  uint64_t sent() const { return sent_; }
  uint64_t dropped() const { return dropped_; }

 private:
  int64_t Latency(NodeId from, NodeId to);

  EventLoop* loop_;
  env::Random* rng_;
  LinkProfile default_;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  std::map<std::pair<NodeId, NodeId>, int64_t> clogged_;
  uint64_t sent_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace synod::sim
