// GroupHost: runs a node's Raft groups inside a real node process — the real-world twin of the
// simulator's SimCluster node. It wires the pure cluster::Store (a Replica per group over its
// storage::GroupStorage in the node's RocksDB NodeDb) to the disk (a storage thread), TCP
// (env::PeerTransport, each message in its group envelope) and time (an Asio steady timer that
// ticks), and keeps the member address book.
//
// Shards: the node holds the groups of its layout (cluster/logic/layout.h) that list it — the
// meta shard (group 1) on up to five nodes, and the data shards, each a contiguous slot range.
// Every initial node computes the same layout from the member list and --shards/--replicas and
// saves it in its NodeDb; a joining node gets it from the member that adds it.
//
// Routing (the Router interface, for the command handlers): a request names a shard; Call()
// hands it to the pure RequestRouter (cluster/logic/router.h), which runs it where it can be
// served — on this node's replica when it leads the shard (or, for a READONLY read, holds a
// replica), else on the leader's node over the request channel (peer_wire kRequest/kResponse),
// retrying transparently within the request timeout when a hop meets a node that does not lead
// (it names the leader), a stale route, a timeout, or a lost peer. A write carries its
// connection's session for the shard, so a retried write applies at most once.
// Leaders of shards a node does not host are learnt from those answers and from the leadership
// notices every node sends its peers (every second and when its set of led groups changes).
// Leaders are spread: a node leading a shard whose preferred leader (the layout's first voter)
// is caught up hands the leadership to it.
//
// Threading: everything but the durable writes runs on the core thread, the thread running the
// io_context passed in; no locks. Durable writes go to one storage thread: each Ready round that
// needs an fsync hands the round's whole staged RocksDB batch to it (group commit: every
// proposal, vote and append of the round, of every group, in one write and one fsync), and the
// core thread goes on receiving, proposing and sending while the fsync runs; the next round
// batches whatever arrived meanwhile. The storage thread only calls NodeDb::WriteTaken.
//
// Membership: a joining node is listed in the meta shard's node list; the meta shard's leader
// places replicas (group_host_placement.cc, cluster/logic/placement.h): moves, one membership
// step at a time, for joins, drains, dead nodes, balance and zones. A ConfChange's context
// carries the addresses of members it adds as "id=host:port" lines, so every replica learns
// them from the log, as every node learns them from the node list; the address book is also
// saved in RocksDB (node metadata) so a restarted node, or one that caught up by snapshot, can
// dial its peers. The leader of each group promotes a learner once it has caught up.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "cluster/logic/descriptors.h"
#include "cluster/logic/layout.h"
#include "cluster/logic/merge.h"
#include "cluster/logic/move.h"
#include "cluster/logic/replica.h"
#include "cluster/logic/request.h"
#include "cluster/logic/router.h"
#include "cluster/logic/shard.h"
#include "cluster/logic/shard_map.h"
#include "cluster/logic/split.h"
#include "cluster/logic/store.h"
#include "cluster/logic/throttle.h"
#include "cluster/peer_wire.h"
#include "cluster/snapshot_stream.h"
#include "common/address.h"
#include "common/log.h"
#include "common/status.h"
#include "compute/script_runner.h"
#include "env/asio/peer_transport.h"
#include "storage/group_storage.h"

namespace synod::cluster {

// Where a member listens: peers dial `peer`; clients use `client` (RESP); operators and the
// CLI use `admin` (HTTP). client and admin may be empty when unknown.
struct MemberAddress {
  std::string peer;
  std::string client;
  std::string admin;
  bool operator==(const MemberAddress&) const = default;
};
using AddressBook = std::map<NodeId, MemberAddress>;

struct HostOptions {
  NodeId id;
  uint64_t cluster_id = 0;
  std::string data_dir;     // RocksDB lives in data_dir/raft
  std::string peer_listen;  // where we accept peer connections ("host:port")
  // The bytes the node's Lua state may hold (scripts and their data). Default 64 MiB.
  size_t script_memory_bytes = 64ull << 20;
  MemberAddress self;  // our advertised addresses (self.peer defaults to peer_listen)
  // The voters of a new cluster. Used only when the data directory is new; empty when the node
  // joins an existing cluster (it then waits for the leader to send it a snapshot).
  AddressBook initial_cluster;
  // Members known at start when joining (from the join reply).
  AddressBook known_members;
  // The layout a new cluster bootstraps with: data shards (0: two per initial node) and
  // replicas per shard (capped at the node count). Must be the same on every initial node.
  int shards = 0;
  int replicas = 3;
  // A joining node: the cluster's layout (EncodeLayout), from the join reply.
  std::string join_layout;
  int64_t tick_ms = 50;
  int election_ticks = 10;
  int heartbeat_ticks = 2;
  int64_t request_timeout_ms = 5000;
  uint64_t snapshot_entries = 10000;
  uint64_t state_flush_entries = 1000;  // see ReplicaOptions
  // A shard led here whose keys and values hold more than this is split at the slot that
  // halves its bytes (cluster/logic/split.h, DecideSizeSplit); 0 never.
  uint64_t shard_max_bytes = 64ull << 20;
  // A shard led here that took more writes per second than this, on average over ten seconds,
  // is split at the slot that halves them (cluster/logic/split.h, LoadTracker); 0 never.
  double shard_max_writes_per_second = 0;
  // A learner whose match index is within this many entries of the leader's last index is
  // promoted to voter.
  uint64_t promote_lag_entries_max = 64;
  bool lease_reads = false;  // kLeaseBased reads instead of ReadIndex
  // Idle groups stop ticking (Store's quiescence); off with lease_reads. Default on.
  bool quiesce = true;
  // Placement (cluster/logic/placement.h), run by the meta shard's leader: this node's zone
  // (--zone, "" for none), how long a node may stay unheard of before its replicas are made
  // again elsewhere, whether placement runs at all, and how many membership changes it keeps
  // in flight at once.
  std::string zone;
  int64_t dead_node_timeout_ms = 60'000;
  bool placement = true;
  int placement_max_changes = 3;
  // Snapshots this node streams (moves, healing) slow down while its clients' p99 is above
  // this (cluster/logic/throttle.h), never below twice their shards' write rate; 0: never.
  double move_p99_target_ms = 50;
  storage::RocksOptions rocks;
};

// A membership change of a shard under way (a move by hand or by the placement logic), as
// /status shows it on the meta shard's leader.
struct MoveView {
  GroupId group;
  NodeId from;         // kNoNode: an addition
  NodeId to;           // kNoNode: a removal
  std::string step;    // "add learner", "catch up", "remove source"
  std::string reason;  // "by hand", or the placement's reason
  int64_t age_ms = 0;  // since it started
  // While the target catches up: the leader's last index and the target's match, when this node
  // leads the shard (0 otherwise).
  uint64_t leader_last = 0;
  uint64_t target_match = 0;
};

// One node of the node list as the meta shard's leader sees it.
struct NodeView {
  NodeId id;
  std::string zone;
  bool draining = false;
  bool live = true;         // heard from within the dead-node timeout (as this node knows)
  int64_t unheard_ms = -1;  // since the last message from it; -1 never, 0 for this node
};

// One member as /status and `synod status` show it.
struct MemberStatus {
  NodeId id;
  MemberAddress address;
  bool voter = false;
  bool connected = false;        // our transport's connection to it
  int64_t last_contact_ms = -1;  // since a message from it, -1 if never
  LogIndex match;                // leader only: replicated up to
};

// One group this node holds, as /status shows it.
struct GroupStatus {
  GroupId group;
  std::string role;
  Term term;
  NodeId leader;
  LogIndex commit;
  LogIndex applied;
  LogIndex last_index;
  uint64_t keys = 0;
  uint64_t bytes = 0;     // of the keys and values (kv::Keyspace::bytes)
  bool quiesced = false;  // idle: not ticking (Store's quiescence)
  // Over --shard-max-bytes with all of it in one slot: no split can divide it.
  bool one_hot_slot = false;
  // Frozen for a merge into this group (0: not merging).
  uint64_t merging_into = 0;
  // Writes per second over the last ten seconds, when this node leads it (0 otherwise).
  double writes_per_second = 0;
};

// The node as /status shows it: the top-level role, term, indexes and members are those of the
// first data shard this node holds (in a cluster of one data shard, the group holding every
// key), else the meta shard's; `groups` lists every group held.
struct HostStatus {
  NodeId id;
  uint64_t cluster_id = 0;
  std::string role;
  Term term;
  NodeId leader;
  LogIndex commit;
  LogIndex applied;
  LogIndex last_index;
  LogIndex snapshot_index;
  bool joint = false;
  std::string failure;  // empty when healthy
  std::vector<MemberStatus> members;
  uint64_t disk_bytes = 0;
  uint64_t keys = 0;  // in every data shard this node holds
  std::vector<GroupStatus> groups;
  int groups_led = 0;
  int groups_quiesced = 0;
};

// Counters the node exports as metrics. Written on the core thread, read by the admin thread.
struct HostCounters {
  std::atomic<uint64_t> proposals{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> sync_failures{0};
  std::atomic<uint64_t> ready_rounds{0};
  // Peer messages dropped: undecodable, misaddressed, or for a group this node does not host.
  std::atomic<uint64_t> peer_messages_dropped{0};
  // Requests this node sent to another (a hop each), served for another, and hops retried.
  std::atomic<uint64_t> requests_forwarded{0};
  std::atomic<uint64_t> requests_served{0};
  std::atomic<uint64_t> request_retries{0};
  // Leadership hand-offs to a shard's preferred leader.
  std::atomic<uint64_t> leader_balance_transfers{0};
  // Splits this node's replicas applied: new shards started here.
  std::atomic<uint64_t> splits{0};
  // Merges this node's replicas applied (each absorbed a neighbouring shard).
  std::atomic<uint64_t> merges{0};
  // Replicas destroyed here after they were removed from their group (a move, a removal).
  std::atomic<uint64_t> replicas_removed{0};
  // Latency of each storage-thread write (fsync), the callback in nanoseconds.
  std::function<void(int64_t)> observe_sync_ns;
};

// What command handlers reach: route a key's slot to its shard, run a request on a shard
// wherever it is served. Implemented by GroupHost; answers run on the core thread.
class Router {
 public:
  virtual ~Router() = default;
  // The data shard owning `slot`.
  virtual GroupId ShardOfSlot(uint16_t slot) const = 0;
  // Every data shard, in slot order.
  virtual std::vector<GroupId> DataShards() const = 0;
  // The data shards this node's replicas lead now, in slot order.
  virtual std::vector<GroupId> ShardsLedHere() const = 0;
  // Runs `req` on its shard (req.group) and answers exactly once, within the request timeout
  // and a little more: OK with the reply, or the error (kTimeout: the outcome of a write is
  // unknown; kNotLeader, kUnavailable, kProposalDropped: it was not applied).
  virtual void Call(ShardRequest req, ResponseFn done) = 0;
};

class GroupHost final : public ReplicaObserver, public Router {
 public:
  // Opens (or creates) the node's storage and builds the replica. Does not touch the network.
  // Errors: kFailedPrecondition (data of another cluster), kCorruption (damaged data; the node
  // must not serve), kIoError, kInvalidArgument (bad options).
  static Result<std::unique_ptr<GroupHost>> Open(asio::io_context& io, HostOptions opts,
                                                 Logger logger);
  ~GroupHost() override;

  // Listens for peers and starts ticking. kIoError if the peer address is taken.
  Status Start();
  // Scripts on this node (EVAL and its kin; the script cache).
  compute::ScriptRunner& scripts() { return *scripts_; }
  // Stops ticking and networking, waits for the storage thread. Idempotent.
  void Stop();

  // Router.
  GroupId ShardOfSlot(uint16_t slot) const override { return map_->ForSlot(slot).group; }
  std::vector<GroupId> DataShards() const override;
  std::vector<GroupId> ShardsLedHere() const override;
  void Call(ShardRequest req, ResponseFn done) override;

  // A local read of `group`'s state machine when this node holds it (INFO, CLUSTER
  // COUNTKEYSINSLOT): nullptr otherwise.
  const kv::StateMachine* LocalStateMachine(GroupId group) const;

  // The replicated `requirepass` as this node knows it: from its replica of the meta shard, or
  // (a node beyond the meta shard's replicas) as last fetched from the meta shard, every
  // second. nullopt while not yet known; "" when none is set.
  std::optional<std::string_view> RequirePass() const;
  // Function libraries (FUNCTION LOAD; docs/scripting.md), as this node last learnt them from
  // the meta shard (at once where it leads the meta shard, else within a second): name → code.
  const std::map<std::string, std::string>& FunctionLibraries() const { return functions_; }
  // Reads the libraries from the meta shard at a linearizable point into FunctionLibraries(),
  // then `done`.
  void RefreshFunctions(std::function<void(Status)> done);
  // Sets (code) or removes ("") libraries, in one meta shard write; then `done`.
  void ProposeFunctions(std::vector<std::pair<std::string, std::string>> changes,
                        std::function<void(Status)> done);

  // Membership of every group, proposed through each group's leader (this node must lead the
  // meta shard; kNotLeader otherwise). `done` gets the first error, or OK once every group took
  // the change. kFailedPrecondition when the node is already (or is not) a member.
  // Adding a member lists the node in the meta shard's node list (its addresses into every
  // node's address book); the placement logic gives it replicas. Removing one takes it out of
  // every group that lists it at once (for a node that is gone for good), then out of the list.
  void AddMember(NodeId id, const MemberAddress& address, std::function<void(Status)> done);
  void RemoveMember(NodeId id, std::function<void(Status)> done);
  // `synod node remove`: marks node `id` as draining in the meta shard; the placement logic
  // moves its replicas away, then forgets it. Meta leader only (kNotLeader otherwise);
  // kNotFound for a node not listed; kFailedPrecondition when no other usable node would be left.
  void DrainNode(NodeId id, std::function<void(Status)> done);
  // The moves under way here (the meta leader runs them all), and the node list with liveness.
  std::vector<MoveView> Moves() const;
  std::vector<NodeView> Nodes() const;
  // Splits data shard `group` at slot `at` (the middle of its slots when nullopt), from any
  // node (cluster/logic/split.h): `done` gets the halves, or the error (kInvalidArgument for a
  // slot that does not split it or a one-slot shard, kNotFound for no such shard,
  // kFailedPrecondition when the shard refused: it changed meanwhile, or its membership is).
  void SplitShard(GroupId group, std::optional<uint16_t> at,
                  std::function<void(Result<SplitResult>)> done, bool automatic = false);
  // Moves shard `group`'s replica from node `from` to node `to` (cluster/logic/move.h), from any
  // node: `done` gets OK once `to` is a voter and `from` no member (its replica then deletes
  // itself and its data), or the error: kInvalidArgument (CheckMove's), kNotFound (no such
  // shard, or `to` is no node of the cluster), kFailedPrecondition (a move of the shard is
  // under way here), kTimeout (not done within two minutes; the steps taken stand).
  void MoveShard(GroupId group, NodeId from, NodeId to, std::function<void(Status)> done);
  // Merges data shard `group` into its neighbour (`into`, or by default the shard before it),
  // from any node (cluster/logic/merge.h): `done` gets the result once the neighbour applied
  // it, or the error (kInvalidArgument: not neighbours, the meta shard, the only shard;
  // kNotFound: no such shard; kFailedPrecondition: too large, frozen already, or refused).
  void MergeShard(GroupId group, std::optional<GroupId> into,
                  std::function<void(Result<MergeResult>)> done);
  // Hands the leadership of every group this node leads to another voter (`to`, or each
  // group's most caught-up voter when kNoNode). The number of groups handed off.
  int TransferLeadership(NodeId to);
  // Shutting down: hands off every group led here, and keeps handing off any group this node
  // comes to lead again (a balancing peer may hand one back). The number handed off now.
  int Drain();
  // The groups this node leads.
  int groups_led() const;
  // Whether some group led here has another voter to take over (for a graceful hand-off).
  bool CanHandOff() const;

  HostStatus GetStatus() const;
  NodeId id() const { return opts_.id; }
  uint64_t cluster_id() const;
  // The node list as last read from the meta shard (every node's registered addresses).
  const std::map<NodeId, MemberAddress>& NodeList() const { return meta_nodes_; }
  // The shards as this node sees them now (Redis Cluster's view: CLUSTER SLOTS and friends).
  std::vector<ShardView> Shards() const;
  // The leader of the shard holding `slot`, as last heard; kNoNode when unknown.
  NodeId LeaderForSlot(uint16_t slot) const;
  // The meta shard's leader as last heard, and whether it is this node.
  NodeId leader() const;
  bool is_leader() const;
  const Layout& layout() const { return map_->layout(); }
  const AddressBook& address_book() const { return members_; }
  env::PeerTransport& transport() { return *transport_; }
  HostCounters& counters() { return counters_; }
  // Streamed snapshots' counters (sent, received, failed, bytes).
  const SnapshotStreamCounters& stream_counters() const { return streams_->counters(); }
  // The streams under way (core thread).
  std::vector<StreamView> Streams() const { return streams_->Views(); }
  // The snapshot streams' rate limit, bytes/s (0: none; see ThrottleStreams).
  uint64_t stream_rate() const { return streams_->rate(); }
  // A client request answered after `ns` (core thread): the moves' throttle watches them.
  void ObserveClientRequest(int64_t ns) { client_latency_.Observe(ns); }
  storage::NodeDb& db() { return *db_; }
  Store& store() { return *store_; }

  // ReplicaObserver
  void OnApply(NodeId node, GroupId group, const raft::Entry& entry) override;
  void OnSnapshot(NodeId node, GroupId group, const raft::SnapshotMeta& meta) override;
  void OnSoftState(NodeId node, GroupId group, const raft::SoftState& ss, Term term) override;

 private:
  GroupHost(asio::io_context& io, HostOptions opts, Logger logger);

  void LoadAddressBook();
  void SaveAddressBook();
  void LearnAddresses(const std::string& context);
  void ScheduleTick();
  void OnTick();
  // Runs the Ready loop on the core thread after any event.
  void Kick();
  void Drive();
  void StartSync();
  void OnSyncDone(const Status& s, int64_t took_ns);
  void MaybePromoteLearners();
  void MaybeBalanceLeaders();
  // Sends the groups this node leads to every peer when `force` or when the set changed.
  void NoticeLeaders(bool force);
  // A message from a peer's connection: decoded, checked, handed to the replica of its group.
  void OnPeerMessage(NodeId from, std::string_view payload);
  void OnRaftMessage(NodeId from, std::string_view payload);
  void OnRequest(NodeId from, std::string_view payload);
  void OnResponse(NodeId from, std::string_view payload);
  void OnLeaders(NodeId from, std::string_view payload);
  void OnQuiesce(NodeId from, std::string_view payload);
  void OnWake(NodeId from, std::string_view payload);
  void OnBeat(NodeId from, std::string_view payload);
  void OnRemoved(NodeId from, std::string_view payload);
  // Every heartbeat interval: the node beat to every peer, and the peers not heard from for an
  // election timeout reported to the Store (their quiesced groups wake and elect).
  void BeatAndWatchPeers();
  void Drop(NodeId from, const char* reason, const Status& s);

  // The leader hint for `group` (RequestRouter::LeaderHint).
  NodeId LeaderHint(GroupId group) const;
  // The router's counters into the metrics' (every tick).
  void SyncRouterCounters();
  // Proposes `cc` to each of `groups` through its leader: the first error, or OK once all took it.
  void ChangeMembership(std::vector<GroupId> groups, raft::ConfChange cc,
                        std::function<void(Status)> done);
  // Whether `id` is a member of some group as this node knows (descriptors, the meta replica).
  bool KnownMember(NodeId id) const;
  // The layout a new node derives (or loads, or was given).
  Status LoadLayout();
  const Replica* meta_replica() const;

  // The NodeDb metadata key of the node's layout (its latest view of the descriptors).
  static constexpr char kLayoutMeta[] = "layout";

  asio::io_context& io_;
  HostOptions opts_;
  Logger logger_;
  // The node's database, the layout and its leader hints, the groups held.
  std::unique_ptr<storage::NodeDb> db_;
  std::unique_ptr<ShardMap> map_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<env::PeerTransport> transport_;
  std::unique_ptr<SnapshotStreams> streams_;  // see snapshot_stream.h
  // The replica's RaftTransport: each message in its group envelope over transport_.
  class RaftOut final : public RaftTransport {
   public:
    explicit RaftOut(GroupHost* host) : host_(host) {}
    void Send(GroupId group, raft::Message msg) override;
    void SendQuiesce(NodeId to, GroupId group, Term term, LogIndex index) override;
    void SendWake(NodeId to, GroupId group) override;
    void SendRemoved(NodeId to, GroupId group, LogIndex index) override;

   private:
    GroupHost* host_;
  };
  RaftOut raft_transport_{this};
  // Routing: the request channel's pure half, and its sending half over transport_.
  class RequestOut final : public RequestTransport {
   public:
    explicit RequestOut(GroupHost* host) : host_(host) {}
    void SendRequest(NodeId to, uint64_t id, const ShardRequest& req) override;
    void SendResponse(NodeId to, uint64_t id, const ShardResponse& resp) override;
    void Wake() override;

   private:
    GroupHost* host_;
  };
  RequestOut request_out_{this};
  std::unique_ptr<RequestRouter> router_;
  std::unique_ptr<compute::ScriptRunner> scripts_;
  std::set<GroupId> led_;          // at the last leadership notice
  bool roles_changed_ = true;      // some replica's role changed since the last NoticeLeaders
  std::set<NodeId> silent_peers_;  // reported to the Store as down, not heard from since
  // A node without a replica of the meta shard: requirepass as last fetched from it.
  std::optional<std::string> fetched_requirepass_;
  std::map<std::string, std::string> functions_;  // FunctionLibraries()
  // Descriptors (docs/sharding.md): the meta shard holds each shard's under "shard/<group>" as
  // a versioned setting (its epoch the version). The epochs the meta shard was last seen to
  // hold; the groups whose descriptor this node is proposing; the session it proposes with.
  HeldDescriptors meta_epochs_;  // the descriptors the meta shard holds, as last read
  bool meta_epochs_known_ = false;
  LogIndex meta_applied_learnt_;  // the meta replica's applied index at the last LearnDescriptors
  bool descriptors_due_ = false;  // a membership change applied since the last proposal round
  std::set<GroupId> proposing_descriptors_;
  // Takes the descriptors a meta shard's state machine holds (a replica's, or the values a
  // node without one fetched: name -> stored value), newer epochs replacing the map's.
  void LearnDescriptors(const std::map<std::string, std::string>& settings);
  // Saves the map as this node's layout when it is clean.
  void SaveLayout();
  // Creates an empty replica of every shard that lists this node and has none here.
  void JoinListedGroups();
  // The shards this node's replicas split off since the last tick: the map learns both halves.
  void LearnSplits();
  // Merges (group_host_merges.cc; cluster/logic/merge.h). The merges this node's replicas
  // applied: the map takes each absorbing shard's wider descriptor, its leader proposes it.
  void LearnMerges();
  // The tombstone of shard `from` (its slots), merged into `into`, is due in the meta shard: the
  // node that drove the merge or resolved it writes it at once (`now`), and every node whose
  // replica applied the merge keeps it due and writes it while it leads `into`, every second,
  // until the meta shard holds it (at an epoch above its descriptor of `from`, at least
  // `epoch`). So a driver that died after the merge leaves no shard behind.
  void TombstoneDue(GroupId from, SlotRange slots, GroupId into, uint64_t epoch, bool now);
  void WriteDueTombstones();
  // Once the meta shard was read: the tombstones owed by the shards led here (TombstonesOwed)
  // are due from this node.
  void OweAbsorbedTombstones();
  struct DueTombstone {
    SlotRange slots;
    GroupId into;
    uint64_t epoch = 0;
    bool mine = false;  // driven or resolved here: written whoever leads `into`
    bool in_flight = false;
  };
  std::map<GroupId, DueTombstone> tombstones_due_;
  // Every second: a shard led here that stayed frozen for kFrozenResolveMs with no merge of it
  // driven here has its merge finished or given up (ResolveFrozen).
  void ResolveFrozenShards();
  // Every second on the meta leader: two neighbouring shards, the right one mergeable (made by
  // an automatic split), small (together under a quarter of --shard-max-bytes) and cold (each
  // under a quarter of --shard-max-writes-per-second, or 1000/s when that is off) merge; one at
  // a time.
  void MaybeMergeSmallShards();
  // Every kThrottleTicks: the snapshot streams' rate for the next interval, from the clients'
  // p99 and the streamed shards' write rate over the last (MoveThrottle).
  void ThrottleStreams();
  static constexpr uint64_t kThrottleTicks = 5;
  MoveThrottle throttle_;
  LatencyWindow client_latency_;
  uint64_t stream_bytes_seen_ = 0;                  // streams' bytes sent, at the last interval
  std::map<GroupId, uint64_t> applied_bytes_seen_;  // streamed groups' applied bytes, likewise
  // The tombstones of merged shards the meta shard holds, as last read.
  std::map<GroupId, ShardDescriptor> meta_merged_;
  std::set<GroupId> merging_;                      // shards being merged away by this node
  std::map<GroupId, uint64_t> frozen_since_tick_;  // shards led here seen frozen, since
  std::set<GroupId> resolving_;                    // ResolveFrozen in flight
  uint64_t auto_merge_after_tick_ = 0;             // the next automatic merge, not before
  // Leadership notices, the descriptor reads and the shard upkeep run every this many ticks.
  static constexpr uint64_t kNoticeTicks = 20;
  // The replicas the Store destroyed since the last round: logged, counted, not made again from
  // a descriptor that old, and their deletion written at once.
  void ForgetRemovedGroups();
  // Every second: splits the shards led here that hold more than shard_max_bytes.
  void MaybeSplitBySize();
  // Every second: the writes the shards led here took go into load_; a shard over
  // --shard-max-writes-per-second for a whole window splits at the slot that halves them.
  void MaybeSplitByLoad();
  // Splits `g` at `at` on its own account (by size or by load), one at a time per shard.
  void AutoSplit(GroupId g, uint16_t at);
  LoadTracker load_;
  // Each data shard's load as its leader last told (kLoads, every second), with the tick it
  // came: the meta leader balances placement by its bytes and merges small, cold shards (fresh
  // ones only).
  struct ShardBytes {
    uint64_t bytes = 0;
    uint64_t tick = 0;
    uint64_t writes_per_second = 0;
    bool mergeable = false;
    bool frozen = false;  // for a merge: placement leaves it alone
  };
  std::map<GroupId, ShardBytes> shard_bytes_;
  void NoteShardLoad(const peer_wire::LoadNotice& load);
  // `group`'s load when heard within five seconds, else nullptr.
  const ShardBytes* FreshLoad(GroupId group) const;
  void OnLoads(NodeId from, std::string_view payload);
  SnapshotStreamHost StreamHost();
  std::set<GroupId> hot_slot_by_load_;  // over the write bound, all in one slot
  // Every second: the next step of every move driven here (MoveShard).
  void DriveMoves();
  struct Move {
    NodeId from;
    NodeId to;
    uint64_t deadline_tick = 0;
    bool step_in_flight = false;
    std::function<void(Status)> done;
    std::string reason = "by hand";
    uint64_t start_tick = 0;
  };
  // Placement (cluster/logic/placement.h): every second on the meta shard's leader. The moves
  // it starts join moves_; leader preferences and forgotten nodes are meta shard writes.
  void RunPlacement();
  std::set<NodeId> LiveNodes() const;
  int64_t meta_leader_since_ns_ = 0;  // when this node last became the meta shard's leader
  std::set<GroupId> preferring_;      // leader preferences being proposed
  std::set<NodeId> forgetting_;       // drained nodes being taken off the list
  std::string last_placement_block_;  // why placement last did not run (logged once)
  std::map<GroupId, Move> moves_;
  // Groups whose replica was destroyed here (removed from them), with the map's epoch then.
  // Kept in the NodeDb (kDestroyedMeta, "group=epoch" lines) so that a restart does not make
  // them again from a saved layout that still lists this node.
  std::map<GroupId, uint64_t> destroyed_at_epoch_;
  static constexpr char kDestroyedMeta[] = "destroyed";
  void LoadDestroyed();
  void SaveDestroyed();
  std::set<GroupId> size_splits_;                 // splits by size in flight
  std::map<GroupId, uint64_t> split_retry_tick_;  // after a failed one: not before this tick
  std::set<GroupId> one_hot_slot_;                // over the bound, all in one slot
  // Every group this node leads whose members differ from its descriptor (or whose descriptor
  // the meta shard does not hold yet) gets its new descriptor proposed to the meta shard.
  void ProposeDescriptors();
  bool fetching_config_ = false;
  void FetchReplicatedConfig();
  // The node list (docs/sharding.md): the meta shard holds each node's addresses under
  // "node/<id>" ("PEER/CLIENT/ADMIN"); each node registers its own (after a start with other
  // addresses too), the meta leader removes a node it removed from the cluster, and every node
  // takes the others' addresses from it into its address book. As last read from the meta
  // shard; whether this node's registration is in flight.
  std::map<NodeId, MemberAddress> meta_nodes_;
  bool meta_nodes_known_ = false;
  bool registering_ = false;
  bool meta_read_due_ = false;  // a proposal to the meta shard was answered: read it back
  // This node's replica of the meta shard's state, when it is a member of the meta shard (not
  // removed from it, not waiting for its first snapshot) and, with `need_leader`, knows a leader
  // (a replica removed without knowing it never will); nullptr: ask the meta shard.
  const kv::StateMachine* MetaStateMachine(bool need_leader) const;
  // A new at-most-once session for one proposal of this node's to the meta shard.
  uint64_t NewSessionId();
  uint64_t session_rng_ = 0;
  // Takes the node list from the meta shard's "node/*" and "drain/*" settings into meta_nodes_,
  // meta_zones_ and meta_draining_.
  void LearnNodeList(const std::map<std::string, std::string>& settings);
  void LearnFunctions(const std::map<std::string, std::string>& settings);
  // The meta shard's settings that hold the function libraries: "function/<name>" = code.
  static constexpr std::string_view kFunctionPrefix = "function/";
  static std::string NodeSetting(NodeId n);   // "node/<id>": "PEER/CLIENT/ADMIN[ zone=Z]"
  static std::string DrainSetting(NodeId n);  // "drain/<id>": "1" while it drains
  static std::string NodeValue(const MemberAddress& a, const std::string& zone);
  std::map<NodeId, std::string> meta_zones_;  // the listed nodes' zones (when set)
  std::set<NodeId> meta_draining_;            // the listed nodes being drained
  // The address book follows the node list; this node registers itself when its entry differs.
  void FollowNodeList();
  // Proposes the setting `name` = `value` ("" deletes) to the meta shard.
  void ProposeMetaSetting(std::string name, std::string value, std::function<void(Status)> done);
  // Several settings in one meta shard write (an empty value removes one).
  void ProposeMetaSettings(std::vector<std::pair<std::string, std::string>> settings,
                           std::function<void(Status)> done);

  asio::steady_timer tick_timer_;
  // The storage thread: its own io_context kept alive by a work guard.
  asio::io_context storage_io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> storage_work_;
  std::thread storage_thread_;
  // The durable write in flight on the storage thread.
  struct SyncJob {
    storage::NodeDb::Write pending;
    Status result;
    int64_t took_ns = 0;
    std::atomic<bool> written{false};
  };
  std::shared_ptr<SyncJob> sync_job_;
  bool kick_scheduled_ = false;
  bool syncing_ = false;
  bool stopped_ = false;
  bool draining_ = false;
  uint64_t ticks_ = 0;
  AddressBook members_;  // every known member's addresses, self included
  HostCounters counters_;
  // Set while alive; callbacks posted to the core check it so none runs after destruction.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// "1=127.0.0.1:7101,2=127.0.0.1:7102/127.0.0.1:7002/127.0.0.1:7202" -> members: each is
// ID=PEER[/CLIENT[/ADMIN]]. kInvalidArgument on bad syntax, a zero or repeated id, or an
// address without a port. FormatMemberList is its inverse; one member per line with '\n' as
// the separator is accepted too (the ConfChange context form).
Result<AddressBook> ParseMemberList(const std::string& text);
std::string FormatMemberList(const AddressBook& members, char separator = ',');
// A cluster id derived from the initial voters' ids and peer addresses and a token, the same on
// every node started with the same list.
uint64_t DeriveClusterId(const AddressBook& members, const std::string& token);

}  // namespace synod::cluster
