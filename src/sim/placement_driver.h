// PlacementDriver: the real node's placement (cluster/logic/placement.h), run in a sharded
// simulation as the meta shard's leader runs it in a real cluster
// (cluster/group_host_placement.cc), together with the events it answers: spare nodes joining,
// nodes drained and forgotten, and nodes down long enough to count as dead (and coming back with
// the replicas they were removed from). Every half simulated second, from the view of the meta
// shard's leader (its map of the descriptors), it plans a round and carries out each move one
// membership step at a time (add the target as a learner, promote it once caught up, remove the
// source), as the real node does. Leader preferences are the real node's business only (the
// simulator does not balance leaders).
//
// Its checks: the run's usual invariants hold throughout (linearizability, no acknowledged
// write lost, slot ownership, digests), and once the faults stop, placement settles within a
// bounded simulated time (Settled: no change left to make and none under way).
//
// Thread-safety: none (the simulation's single thread).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "cluster/logic/placement.h"
#include "env/random.h"
#include "sim/cluster.h"
#include "sim/event_loop.h"

namespace synod::sim {

struct PlacementDriverOptions {
  int replicas = 3;
  int64_t dead_after_ns = 1500 * kMilli;  // down this long: dead
  int max_changes = 3;
  // While the faults run: chances per round of a spare joining, a node draining, and a node
  // going down for longer than dead_after_ns (then coming back).
  double join_chance = 0.08;
  double drain_chance = 0.04;
  double long_crash_chance = 0.04;
  // A planted bug: a move removes the old replica as soon as the new one is a learner, before
  // it caught up and became a voter (SimCluster::CheckVoters catches it).
  bool testing_bug_move_removes_early = false;
};

class PlacementDriver {
 public:
  PlacementDriver(EventLoop* loop, env::Random* rng, SimCluster* cluster,
                  PlacementDriverOptions opts);
  // Runs rounds until the simulation ends; events (joins, drains, long crashes) only until
  // `events_until`.
  void Start(int64_t events_until);
  // No change left to plan and none under way, every listed node up: else *why (if given).
  bool Settled(std::string* why) const;
  uint64_t moves_done() const { return moves_done_; }
  uint64_t joins() const { return joins_; }
  uint64_t drains() const { return drains_; }

 private:
  struct Move {
    NodeId from, to;
    int64_t deadline;
    std::string reason;
  };
  void Round();
  void MaybeEvents();
  cluster::PlacementInput Input(const cluster::Layout& layout) const;
  void DriveMoves(const cluster::Layout& layout);

  EventLoop* loop_;
  env::Random* rng_;
  SimCluster* c_;
  PlacementDriverOptions opts_;
  int64_t events_until_ = 0;
  std::set<NodeId> listed_;    // joined (the initial nodes and the spares that joined)
  std::set<NodeId> draining_;  // being drained
  std::map<GroupId, Move> moves_;
  uint64_t moves_done_ = 0;
  uint64_t joins_ = 0;
  uint64_t drains_ = 0;
};

}  // namespace synod::sim
