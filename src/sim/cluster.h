// SimCluster: N simulated nodes — each a real cluster::Replica over a real WalStorage on a
// simulated disk — connected by a simulated network, in one thread, under one seed.
//
// It also watches the invariants of Raft after every event (it is the replicas' observer):
//  - at most one leader per term (election safety);
//  - leader completeness: a new leader's log holds every entry known to be committed;
//  - state machine safety: every node applies the same entry at a given index, with no gaps
//    (so applied prefixes are identical);
//  - a node's commit index never moves back while it is up;
//  - a leader's commit index advances only to an entry of its own term (§5.4.2);
//  - committed entries are safe from elections: no node lacking a committed entry could win
//    the votes of a quorum of live voters by the up-to-date rule (§5.4.1). This is Leader
//    Completeness checked before any election happens, so an unsafe commit is caught at once;
//  - log matching between every pair of live nodes (checked every few events: it is costly).
// The first violation is recorded and the run is failed.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/logic/replica.h"
#include "common/log.h"
#include "env/random.h"
#include "sim/event_loop.h"
#include "sim/network.h"
#include "sim/sim_disk.h"
#include "storage/wal_storage.h"

namespace synod::sim {

struct ClusterOptions {
  int nodes = 3;        // initial voters, ids 1..nodes
  int spare_nodes = 2;  // ids nodes+1.. that may join later by membership change
  int64_t tick_ns = 10 * kMilli;
  double clock_drift_max = 0;  // each node's tick runs at a rate in [1-d, 1+d]
  int64_t fsync_min_ns = 100 * kMicro;
  int64_t fsync_max_ns = 1 * kMilli;
  bool torn_writes = false;         // a crash may keep a torn prefix of unsynced bytes
  cluster::ReplicaOptions replica;  // raft.id is set per node
  uint64_t cluster_id = 0x5359'4E4F'4400'0001ull;
};

class SimCluster final : public cluster::ReplicaObserver {
 public:
  SimCluster(EventLoop* loop, env::Random* rng, SimNetwork* net, ClusterOptions opts,
             Logger logger);
  ~SimCluster() override;

  // Starts the initial voters (bootstrapping their storage with the initial configuration).
  void Start();

  // Node control. Each is a no-op when it does not apply (crashing a node that is down).
  void Crash(NodeId id);
  void Restart(NodeId id);
  void Pause(NodeId id);
  void Resume(NodeId id);
  // Starts a spare node with empty storage, so that it can join by membership change.
  void StartSpare(NodeId id);
  // Makes the node's disk refuse writes ("disk full") or accept them again.
  void SetDiskFull(NodeId id, bool full);

  // Sends a client command to node `id`; `reply` runs later (after the reply's network hop)
  // or never if the node is down, paused for good, or the request is lost.
  void Submit(NodeId id, const kv::Command& cmd, cluster::ReadMode mode,
              std::function<void(cluster::ClientReply)> reply);

  Status ProposeConfChange(NodeId via, const raft::ConfChange& cc);
  Status TransferLeadership(NodeId via, NodeId to);

  // Queries.
  std::vector<NodeId> AllIds() const;
  std::vector<NodeId> UpIds() const;
  bool IsUp(NodeId id) const;
  bool IsPaused(NodeId id) const;
  // The leader with the highest term among up nodes, if any.
  std::optional<NodeId> Leader() const;
  const cluster::Replica* replica(NodeId id) const;
  // The voters and learners of the configuration applied by the most advanced node.
  raft::MembershipConfig Membership() const;

  // Called whenever a node reports becoming leader (the fault injector chases leaders).
  void SetOnLeader(std::function<void(NodeId, Term)> fn) { on_leader_ = std::move(fn); }

  // Invariants.
  void CheckAfterEvent();
  // Final checks once the cluster has settled: every live member converged to the same state.
  void CheckConverged();
  // Whether a leader exists and every live, healthy member of its configuration has applied
  // everything the leader committed. When not, *why (if given) says who lags.
  bool AllMembersCaughtUp(std::string* why) const;
  bool violated() const { return violation_.has_value(); }
  const std::string& violation() const { return *violation_; }
  // Commands (client id, seq) that some node applied: for "no acknowledged write lost".
  const std::set<std::pair<uint64_t, uint64_t>>& applied_commands() const {
    return applied_commands_;
  }
  // A running hash of everything that happened (messages, applies, faults): equal for two
  // runs of one seed.
  uint64_t trace_hash() const { return trace_hash_; }
  void Trace(std::string_view event);

  // ReplicaObserver.
  void OnApply(NodeId node, const raft::Entry& entry) override;
  void OnSnapshot(NodeId node, const raft::SnapshotMeta& meta) override;
  void OnSoftState(NodeId node, const raft::SoftState& ss, Term term) override;

 private:
  struct Node;
  class NodeTransport;

  Node& node(NodeId id);
  const Node& node(NodeId id) const;
  void Boot(Node& n, bool bootstrap);
  void ScheduleTick(Node& n);
  // Runs fn on the node if it is still the same incarnation and up; holds it while paused.
  void OnNode(NodeId id, uint64_t incarnation, std::function<void()> fn, bool hold_if_paused);
  void Pump(Node& n);
  void SendMessage(NodeId from, raft::Message m);
  void Violate(std::string what);
  void CheckLogMatching();
  void CheckLeaderCompleteness(NodeId leader, Term term);
  void CheckCommittedElectionSafe();

  EventLoop* loop_;
  env::Random* rng_;
  SimNetwork* net_;
  ClusterOptions opts_;
  Logger logger_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;

  std::map<Term, NodeId> leader_by_term_;
  // Every entry some node applied: its term, a hash of its type and data, and the highest
  // term any node had reached when it was first applied (it was committed in that term or
  // earlier, so every leader of a later term must hold it).
  struct Committed {
    Term term;
    uint64_t hash = 0;
    Term epoch;
  };
  std::map<LogIndex, Committed> committed_;
  Term max_term_seen_;
  std::set<std::pair<uint64_t, uint64_t>> applied_commands_;
  std::optional<std::string> violation_;
  std::function<void(NodeId, Term)> on_leader_;
  uint64_t events_ = 0;
  uint64_t trace_hash_ = 0xcbf29ce484222325ull;
};

}  // namespace synod::sim
