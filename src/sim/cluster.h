// SimCluster: N simulated nodes — each a real cluster::Replica over a real WalStorage on a
// simulated disk, or over the real node's storage (a NodeDb and GroupStorage on an in-memory
// engine) — connected by a simulated network, in one thread, under one seed.
//
// Sharded (node storage, ClusterOptions::shards >= 1): the cluster is laid out as a real one
// (cluster/logic/layout.h: the meta shard and N data shards of contiguous slot ranges, each on
// `replicas` nodes); every node runs a cluster::Store of its groups and a RequestRouter, and a
// client request goes to the shard of its key's slot through the node it reached: served there
// when that node leads the shard, else forwarded over the simulated network (the real request
// codec on the wire) to the node it believes leads, retried on refusals, as the real node does.
// Client sessions are per (client, shard), as the real server keeps them per (connection,
// shard). Every invariant below holds per group; and every command a replica applies touches
// only keys whose slot its shard's descriptor covers.
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
//  - replicas that applied the same index hold equal state digests (checked at every index,
//    so expiry must delete the same keys at the same index everywhere);
//  - log matching between every pair of live nodes (checked every few events: it is costly;
//    mostly above the entries both applied, which state machine safety already covers).
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

#include "cluster/logic/descriptors.h"
#include "cluster/logic/layout.h"
#include "cluster/logic/replica.h"
#include "cluster/logic/router.h"
#include "cluster/logic/shard_map.h"
#include "cluster/logic/store.h"
#include "common/log.h"
#include "compute/script_runner.h"
#include "env/random.h"
#include "sim/event_loop.h"
#include "sim/network.h"
#include "sim/sim_disk.h"
#include "storage/group_storage.h"
#include "storage/node_db.h"
#include "storage/wal_storage.h"

namespace synod::sim {

struct ClusterOptions {
  int nodes = 3;        // initial voters, ids 1..nodes
  int spare_nodes = 2;  // ids nodes+1.. that may join later by membership change
  int64_t tick_ns = 10 * kMilli;
  double clock_drift_max = 0;  // each node's tick runs at a rate in [1-d, 1+d]
  int64_t fsync_min_ns = 100 * kMicro;
  int64_t fsync_max_ns = 1 * kMilli;
  bool torn_writes = false;  // a crash may keep a torn prefix of unsynced bytes
  // The real node's storage path instead of WalStorage on a SimDisk: a NodeDb over an
  // in-memory engine, the state machine persisted beside the log, and the host's sync mode (one
  // node write per round, made durable after the simulated fsync). A crash keeps or drops the
  // write in flight at random.
  bool node_storage = false;
  // node_storage only: the Store's quiescence (StoreOptions::quiesce_after_ticks; 0 off). Nodes
  // then beat to every peer each heartbeat interval, and a node reports a peer it has not heard
  // from for an election timeout to its Store (PeerDown), as the real node does.
  int quiesce_after_ticks = 0;
  // Wall clocks (Unix ms) for timed commands and expiry: simulated time plus a fixed epoch
  // (so that a wall time is never 0, which replicas read as "no clock") plus a per-node skew
  // drawn uniformly in [-wall_skew_ms_max, +wall_skew_ms_max], as NTP leaves real clocks.
  int64_t wall_epoch_ms = 1'700'000'000'000;
  int64_t wall_skew_ms_max = 20;
  // The leader's replicated expiry cycle: every expiry_every_ticks ticks it proposes the
  // deletion of up to expiry_limit due keys (0 ticks: never).
  int expiry_every_ticks = 2;
  size_t expiry_limit = 100;
  cluster::ReplicaOptions replica;  // raft.id is set per node
  // Sharded: every node runs scripts (kScript requests) with these options.
  compute::ScriptRunnerOptions scripts;
  uint64_t cluster_id = 0x5359'4E4F'4400'0001ull;
  // node_storage only: 0 keeps one group (replica.group) holding every slot on every node;
  // N >= 1 lays the cluster out in N data shards plus the meta shard, `replicas` voters each
  // (capped at `nodes`), and routes every request (see the class comment).
  int shards = 0;
  int replicas = 3;
  int64_t request_timeout_ms = 1000;  // sharded: the routers' request timeout
  // Sharded: the planted bug "stale-route" (kv::Options::testing_bug_stale_route and the
  // routers' RouterOptions::testing_bug_stale_route): requests served whatever their epoch
  // and slots. Set with replica.kv.testing_bug_stale_route.
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
  // A timed command (now_ms != 0) is stamped with the node's wall clock on arrival, as the
  // server's front end stamps what a client sends. Sharded: routed by its key's slot, under
  // the client's session for that shard.
  void Submit(NodeId id, const kv::Command& cmd, cluster::ReadMode mode,
              std::function<void(cluster::ClientReply)> reply);
  // Sharded only: a request (a Redis read, WATCH's versions) for the shard of `route_key`'s
  // slot, routed by node `id`; its now_ms is stamped with that node's clock on arrival.
  void SubmitRequest(NodeId id, const std::string& route_key, cluster::ShardRequest req,
                     std::function<void(cluster::ClientReply)> reply);
  bool sharded() const { return layout_.has_value(); }
  // The groups: the one group, or the meta shard and the data shards (ids in order).
  std::vector<GroupId> Groups() const;
  // The group that holds `key`.
  GroupId GroupOfKey(std::string_view key) const;
  // A read of any shape (Replica::SubmitRead), delivered like Submit.
  void SubmitRead(NodeId id, cluster::ReadFn fn, cluster::ReadMode mode,
                  std::function<void(cluster::ClientReply)> reply);
  // The node's wall clock now (Unix ms): simulated time, the epoch and the node's skew.
  int64_t WallMs(NodeId id) const;

  // Through node `via`'s replica of `group`. Sharded: a node the change adds as a learner
  // gets an empty replica of the group first (it waits for the leader's snapshot).
  Status ProposeConfChange(NodeId via, GroupId group, const raft::ConfChange& cc);
  Status TransferLeadership(NodeId via, GroupId group, NodeId to);
  // Sharded: splits a data shard through node `via` (cluster/logic/split.h) at a slot drawn
  // from `rng`, of a shard drawn from those the node's map holds with more than one slot.
  // Returns false when there was nothing to split or the node is down.
  bool SplitSomeShard(NodeId via, env::Random& rng);
  // Sharded: every node splits the shards it leads that hold more than `max_bytes` (as the real
  // node's --shard-max-bytes, cluster/logic/split.h DecideSizeSplit), until `max_new` shards
  // were made by splits. 0 bytes: never.
  void SetSplitBySize(uint64_t max_bytes, size_t max_new) {
    split_max_bytes_ = max_bytes;
    split_by_size_max_ = max_new;
  }
  uint64_t splits_requested() const { return splits_requested_; }
  uint64_t splits_done() const { return splits_done_; }
  // Sharded: merges a data shard into its neighbour through node `via` (cluster/logic/merge.h,
  // as `synod shard merge`), a shard drawn from those the node's map holds (the meta shard and
  // a lone data shard aside). The node then writes the merged shard's tombstone to the meta
  // shard, as the real node does; a shard left frozen by a merge nobody finished is resolved by
  // its leader after kFrozenResolveNs. Returns false when there was nothing to merge or the
  // node is down.
  bool MergeSomeShard(NodeId via, env::Random& rng);
  uint64_t merges_requested() const { return merges_requested_; }
  uint64_t merges_done() const { return merges_done_; }
  // Shards merged away (their merge applied by some replica of the shard that absorbed them).
  size_t merged_groups() const { return merged_groups_.size(); }

  // Queries.
  std::vector<NodeId> AllIds() const;
  std::vector<NodeId> UpIds() const;
  bool IsUp(NodeId id) const;
  bool IsPaused(NodeId id) const;
  // The leader of `group` with the highest term among up nodes, if any.
  std::optional<NodeId> Leader(GroupId group) const;
  // Whether a replica of the node failed (its disk refused a write): it serves nothing more.
  bool Failed(NodeId id) const;
  // The voters and learners of `group`'s configuration applied by the most advanced node.
  raft::MembershipConfig Membership(GroupId group) const;
  // For the placement driver: `learner`, being added to `group`, replaces a voter (a move): no
  // voter may go while it is a learner (CheckVoters), until it is promoted or removed.
  // `source` is the voter it replaces: that one may not go while `learner` is a learner.
  void NoteReplacement(GroupId group, NodeId learner, NodeId source) {
    replacements_[{group, learner}] = source;
  }
  // For the placement driver: it proposes the removal of voter `node` from `group` (a move's
  // last step). Only such removals are judged: the membership fault removes voters at random,
  // as an operator may (possibly the source of a move under way), and is not a move.
  void NoteMoveRemoval(GroupId group, NodeId node) { move_removals_.insert({group, node}); }
  // Sharded, for the placement driver: node `id`'s map of the shards (nullopt when down); since
  // when it is down (-1 when up or never started); whether it ever started; whether `member`'s
  // log on `leader`'s replica of `group` is within `lag` entries of the leader's last index.
  std::optional<cluster::Layout> MapOf(NodeId id) const;
  int64_t DownSince(NodeId id) const;
  bool Started(NodeId id) const;
  bool CaughtUp(NodeId leader, GroupId group, NodeId member, uint64_t lag) const;
  // Whether the leader of `group` (the most recent one up) holds it frozen for a merge.
  bool Frozen(GroupId group) const;

  // Called whenever a node reports becoming leader (the fault injector chases leaders).
  void SetOnLeader(std::function<void(NodeId, Term)> fn) { on_leader_ = std::move(fn); }

  // Invariants.
  void CheckAfterEvent();
  // Final checks once the cluster has settled: every live member converged to the same state.
  void CheckConverged();
  // Sharded: whether every live node's map holds, for every group, a descriptor with the
  // members of the group's configuration (the meta shard's descriptors followed the membership
  // changes). When not, *why (if given) says which node lags.
  bool DescriptorsConverged(std::string* why) const;
  // Whether every group has a leader and every live, healthy member of its configuration has
  // applied everything the leader committed. When not, *why (if given) says who lags.
  bool AllMembersCaughtUp(std::string* why) const;
  // Whether AllMembersCaughtUp and no live member holds a key whose expiry is more than
  // `overdue_ms` behind the leader's wall clock (the leader's expiry cycle must have deleted
  // it by now). When not, *why (if given) says which key lingers where.
  bool ExpiredKeysCollected(int64_t overdue_ms, std::string* why) const;
  // Fails the run with `what` (a client-side check, e.g. of the Redis workload's replies).
  void ReportViolation(std::string what) { Violate(std::move(what)); }
  bool violated() const { return violation_.has_value(); }
  const std::string& violation() const { return *violation_; }
  // Commands (client id, seq) that some node applied: for "no acknowledged write lost".
  const std::set<std::pair<uint64_t, uint64_t>>& applied_commands() const {
    return applied_commands_;
  }
  // kExpire entries applied, summed over nodes (the leader's expiry cycle at work).
  uint64_t expiry_applies() const { return expiry_applies_; }
  uint64_t quiesce_notices() const { return quiesce_notices_; }
  // Sharded: requests one node's router sent another (forwarded hops).
  uint64_t requests_forwarded() const { return requests_forwarded_; }
  // Sharded: new shards started by splits (on any node, counted once per shard).
  size_t split_groups() const { return split_groups_.size(); }
  // A running hash of everything that happened (messages, applies, faults): equal for two
  // runs of one seed.
  uint64_t trace_hash() const { return trace_hash_; }
  void Trace(std::string_view event);

  // ReplicaObserver.
  void OnApply(NodeId node, GroupId group, const raft::Entry& entry) override;
  void OnSnapshot(NodeId node, GroupId group, const raft::SnapshotMeta& meta) override;
  void OnSoftState(NodeId node, GroupId group, const raft::SoftState& ss, Term term) override;

 private:
  struct Node;
  class NodeTransport;
  class RequestOut;
  // What a node saw of one of its replicas in this incarnation (the checks' memory).
  struct Seen {
    LogIndex commit;  // highest commit index seen
    Term term;        // term and role at the last check
    bool was_leader = false;
    LogIndex applied;  // last index applied
  };
  // The invariants' memory of one group.
  struct Committed {
    Term term;
    uint64_t hash = 0;
    Term epoch;
  };
  struct GroupCheck {
    std::map<Term, NodeId> leader_by_term;
    // Every entry some node applied: its term, a hash of its type and data, and the highest
    // term any node had reached when it was first applied (it was committed in that term or
    // earlier, so every leader of a later term must hold it).
    std::map<LogIndex, Committed> committed;
    // The state digest some node had at each applied index, and which node.
    std::map<LogIndex, std::pair<NodeId, uint64_t>> digest_at;
    Term max_term_seen;
  };

  // The replicas the node holds (none when down), in group order; its replica of `group`.
  std::vector<std::pair<GroupId, cluster::Replica*>> Held(const Node& n) const;
  cluster::Replica* ReplicaOf(const Node& n, GroupId group) const;
  // Sharded, a data shard's membership entry about to apply on node `id`: the durability
  // margin. No voter is removed (or made a learner) while a learner of the shard stays one: a
  // move's new replica catches up and becomes a voter before the old one goes, so the shard
  // never has fewer full copies than before (the planted bug move-removes-early breaks it).
  void CheckVoters(NodeId id, GroupId group, const raft::Entry& e);
  std::map<std::pair<GroupId, NodeId>, NodeId> replacements_;  // see NoteReplacement
  std::set<std::pair<GroupId, NodeId>> move_removals_;         // see NoteMoveRemoval
  std::set<std::pair<GroupId, NodeId>> replaced_;  // sources a promoted replacement replaced
  uint64_t runners_made_ = 0;                      // script runners, for their sessions
  // Sharded: opens the groups the node is to hold that its Store does not yet (a round in
  // flight defers it to the next pump).
  void OpenWanted(Node& n);
  // Sharded: the node's map follows the meta shard's descriptors, and the shards it leads
  // propose theirs (cluster/logic/descriptors.h), as the real node does.
  void SyncDescriptors(Node& n);
  // Sharded: a client command routed through node n's router, under its (client, shard)
  // session.
  void Route(Node& n, kv::Command cmd, cluster::ReplyFn reply);
  // The request channel between nodes: delivery of a request or (`response`) an answer.
  void SendCall(NodeId from, NodeId to, uint64_t id, std::string bytes, bool response);
  // A live leader of `group` (the last in id order when several believe they lead), or
  // nullptr.
  const Node* AnyLeaderNode(GroupId group) const;
  Node& node(NodeId id);
  const Node& node(NodeId id) const;
  void Boot(Node& n, bool bootstrap);
  // Opens the node's storage and its replica: WalStorage and a Replica, or (node_storage) a
  // NodeDb and a cluster::Store holding the group. kIoError when the disk refuses.
  Status OpenWal(Node& n, bool bootstrap);
  Status OpenNodeStore(Node& n, bool bootstrap);
  // node_storage: the Store's rounds, each node write durable after a simulated fsync.
  void PumpStore(Node& n);
  // Runs `done` on the node after a simulated fsync latency (unless it crashed meanwhile; held
  // while it is paused), then pumps it.
  void AfterFsync(Node& n, std::function<void(Node&)> done);
  // node_storage: writes the node write in flight and reports it; its status.
  Status FinishNodeWrite(Node& n);
  void ScheduleTick(Node& n);
  // Runs fn on the node if it is still the same incarnation and up; holds it while paused.
  void OnNode(NodeId id, uint64_t incarnation, std::function<void()> fn, bool hold_if_paused);
  void Pump(Node& n);
  // Gives the replica the current wall clock, before anything that may stamp with it.
  void SetWallClock(Node& n);
  // A reply callback that delivers to `cb` after the network hop back to the client.
  cluster::ReplyFn ReplyBack(std::shared_ptr<std::function<void(cluster::ClientReply)>> cb);
  void SendMessage(NodeId from, GroupId group, raft::Message m);
  // A quiescence notice or node beat: `fn` runs on the receiving node's Store (if it is up and
  // its incarnation did not change), after the network hop.
  void SendControl(NodeId from, NodeId to, std::function<void(cluster::Store&)> fn);
  // Quiescence: the node beat, and the peers silent for an election timeout reported down.
  void BeatAndWatchPeers(Node& n);
  void Violate(std::string what);
  void CheckLogMatching(GroupId group, bool full);
  void CheckDigest(NodeId id, GroupId group, const kv::StateMachine& sm);
  void CheckLeaderCompleteness(NodeId leader, GroupId group, Term term);
  void CheckCommittedElectionSafe(GroupId group);
  // Sharded: every key `cmd` touches lies in the slots `group`'s replica on node `id` owns as
  // it applies it (its replicated range: the same on every replica at every index).
  void CheckOwnership(NodeId id, GroupId group, const kv::Command& cmd);
  // Sharded: node `n` splits what it leads that is over SetSplitBySize's bound.
  void MaybeSplitBySize(Node& n);
  // Sharded: the replicas node `n` destroyed since the last call (removed from their group), and
  // the splits its replicas applied: its map learns both
  // halves, it is to hold the new shard, and the checks start following the new shard.
  void TakeSplits(Node& n);
  // Sharded: the merges node `n`'s replicas applied since the last call: its map learns the
  // absorbing shard's wider range, the merged shard's tombstone is due from it, and the checks
  // stop following the merged shard (its state is final; what is left of it is destroyed).
  void TakeMerges(Node& n);
  // Sharded: node `n` writes the tombstones due from it to the meta shard (those of merges it
  // drove, and, while it leads the absorbing shard, those of every merge its replica applied)
  // until the meta shard holds them, as GroupHost::WriteDueTombstones.
  void WriteDueTombstones(Node& n);
  // Once node `n` read the meta shard: the tombstones owed by the shards it leads are due from
  // it (as GroupHost::OweAbsorbedTombstones).
  void OweAbsorbedTombstones(Node& n);
  // The tombstone of `from` (its slots, merged into `into`) is due from node `n` (as
  // GroupHost::TombstoneDue); `mine` (it drove or resolved the merge): written now, and kept due
  // whether or not it leads `into`.
  void TombstoneDue(Node& n, GroupId from, SlotRange slots, GroupId into, uint64_t epoch,
                    bool mine);
  // Sharded: the shards node `n` leads that stayed frozen longer than kFrozenResolveNs with no
  // merge under way here: the absorbing shard decides (cluster::ResolveFrozen), as
  // GroupHost::ResolveFrozenShards.
  void ResolveFrozenShards(Node& n);
  // Sharded, at the end: the shards' ranges (each as its most advanced replica holds it)
  // cover every slot exactly once.
  void CheckSlotsPartitioned();

  EventLoop* loop_;
  env::Random* rng_;
  SimNetwork* net_;
  ClusterOptions opts_;
  Logger logger_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::optional<cluster::Layout> layout_;  // sharded only
  std::map<GroupId, GroupCheck> checks_;
  std::set<std::pair<uint64_t, uint64_t>> applied_commands_;
  // Sharded: client sessions per (client, shard). A client's command with seq s for shard g
  // goes as seq t of the session (client_id * 64 + g): t counts the distinct seqs the client
  // sent to g, so a retry maps to the same t and a shard sees its sessions start at 1.
  struct ShardSession {
    uint64_t last_seq = 0;
    uint64_t shard_seq = 0;
    std::map<uint64_t, uint64_t> seqs;  // client seq -> session seq
  };
  std::map<std::pair<uint64_t, GroupId>, ShardSession> shard_sessions_;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, uint64_t>> session_origin_;
  std::optional<std::string> violation_;
  std::function<void(NodeId, Term)> on_leader_;
  uint64_t events_ = 0;
  uint64_t expiry_applies_ = 0;
  uint64_t quiesce_notices_ = 0;
  uint64_t requests_forwarded_ = 0;
  uint64_t descriptor_sessions_ = 0;  // sessions of the nodes' descriptor proposals, counted
  // Sharded: the groups splits created, and the splits asked for and done.
  std::set<GroupId> split_groups_;
  uint64_t splits_requested_ = 0;
  uint64_t splits_done_ = 0;
  uint64_t change_sessions_ = 0;  // sessions of splits and merges (ids above descriptors')
  uint64_t split_max_bytes_ = 0;
  size_t split_by_size_max_ = 0;
  // Sharded: the groups merged away, and the merges asked for and done.
  std::set<GroupId> merged_groups_;
  uint64_t merges_requested_ = 0;
  uint64_t merges_done_ = 0;
  uint64_t trace_hash_ = 0xcbf29ce484222325ull;
};

}  // namespace synod::sim
