// GroupHost: runs a node's Raft groups inside a real node process — the real-world twin of the
// simulator's SimCluster node. It wires the pure cluster::Store (a Replica per group over its
// storage::GroupStorage in the node's RocksDB NodeDb) to the disk (a storage thread), TCP
// (env::PeerTransport, each message in its group envelope) and time (an Asio steady timer that
// ticks), and keeps the member address book. Today it holds one group, kGroup, with every slot;
// the sharded layout builds on the same Store.
//
// Threading: everything but the durable writes runs on the core thread, the thread running the
// io_context passed in; no locks. Durable writes go to one storage thread: each Ready round that
// needs an fsync hands the round's whole staged RocksDB batch to it (group commit: every
// proposal, vote and append of the round in one write and one fsync), and the core thread goes
// on receiving, proposing and sending while the fsync runs; the next round batches whatever
// arrived meanwhile. The storage thread only calls NodeDb::WriteTaken.
//
// Membership: a ConfChange's context carries the addresses of members it adds as
// "id=host:port" lines, so every replica learns them from the log; the address book is also
// saved in RocksDB (node metadata) so a restarted node, or one that caught up by snapshot,
// can dial its peers. The leader promotes a learner once it has caught up (joint consensus).
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

#include "cluster/logic/replica.h"
#include "cluster/logic/shard.h"
#include "cluster/logic/store.h"
#include "cluster/peer_wire.h"
#include "common/address.h"
#include "common/log.h"
#include "common/status.h"
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
  MemberAddress self;       // our advertised addresses (self.peer defaults to peer_listen)
  // The voters of a new cluster. Used only when the data directory is new; empty when the node
  // joins an existing cluster (it then waits for the leader to send it a snapshot).
  AddressBook initial_cluster;
  // Members known at start when joining (from the join reply).
  AddressBook known_members;
  int64_t tick_ms = 50;
  int election_ticks = 10;
  int heartbeat_ticks = 2;
  int64_t request_timeout_ms = 5000;
  uint64_t snapshot_entries = 10000;
  uint64_t state_flush_entries = 1000;  // see ReplicaOptions
  // A learner whose match index is within this many entries of the leader's last index is
  // promoted to voter.
  uint64_t promote_lag_entries_max = 64;
  bool lease_reads = false;  // kLeaseBased reads instead of ReadIndex
  storage::RocksOptions rocks;
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
  uint64_t keys = 0;
};

// Counters the node exports as metrics. Written on the core thread, read by the admin thread.
struct HostCounters {
  std::atomic<uint64_t> proposals{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> sync_failures{0};
  std::atomic<uint64_t> ready_rounds{0};
  // Peer messages dropped: undecodable, misaddressed, or for a group this node does not host.
  std::atomic<uint64_t> peer_messages_dropped{0};
  // Latency of each storage-thread write (fsync), the callback in nanoseconds.
  std::function<void(int64_t)> observe_sync_ns;
};

class GroupHost final : public ReplicaObserver {
 public:
  // Opens (or creates) the node's storage and builds the replica. Does not touch the network.
  // Errors: kFailedPrecondition (data of another cluster), kCorruption (damaged data; the node
  // must not serve), kIoError, kInvalidArgument (bad options).
  static Result<std::unique_ptr<GroupHost>> Open(asio::io_context& io, HostOptions opts,
                                                 Logger logger);
  ~GroupHost() override;

  // Listens for peers and starts ticking. kIoError if the peer address is taken.
  Status Start();
  // Stops ticking and networking, waits for the storage thread. Idempotent.
  void Stop();

  // Client requests; see Replica. The reply runs on the core thread.
  void Submit(const kv::Command& cmd, ReadMode mode, ReplyFn reply);
  void SubmitRead(ReadFn fn, ReadMode mode, ReplyFn reply);

  // Membership, proposed through Raft (forwarded to the leader by Raft when needed is NOT
  // supported for conf changes: these must run on the leader; kNotLeader otherwise).
  Status AddMember(NodeId id, const MemberAddress& address);
  Status RemoveMember(NodeId id);
  Status TransferLeadership(NodeId to);
  // The most caught-up voter other than this node, or kNoNode (for a graceful hand-off).
  NodeId BestTransferee() const;

  HostStatus GetStatus() const;
  NodeId id() const { return opts_.id; }
  uint64_t cluster_id() const;
  // The shards as this node sees them now (Redis Cluster's view: CLUSTER SLOTS and friends).
  std::vector<ShardView> Shards() const;
  // The leader of the shard holding `slot`, as last heard; kNoNode when unknown.
  NodeId LeaderForSlot(uint16_t slot) const;
  NodeId leader() const;
  bool is_leader() const;
  const AddressBook& address_book() const { return members_; }
  env::PeerTransport& transport() { return *transport_; }
  Replica& replica() { return *replica_; }
  HostCounters& counters() { return counters_; }
  storage::NodeDb& db() { return *db_; }
  Store& store() { return *store_; }

  // ReplicaObserver
  void OnApply(NodeId node, const raft::Entry& entry) override;
  void OnSnapshot(NodeId node, const raft::SnapshotMeta& meta) override;
  void OnSoftState(NodeId node, const raft::SoftState& ss, Term term) override;

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
  // A message from a peer's connection: decoded, checked, handed to the replica of its group.
  void OnPeerMessage(NodeId from, std::string_view payload);

  asio::io_context& io_;
  HostOptions opts_;
  Logger logger_;
  // The node's database and its groups (one today: kGroup, holding every slot).
  static constexpr GroupId kGroup{1};
  inline static const storage::StateSpan kGroupSpan =
      storage::StateSpan::Slots(0, static_cast<uint16_t>(kSlotCount - 1));
  std::unique_ptr<storage::NodeDb> db_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<env::PeerTransport> transport_;
  // The replica's RaftTransport: each message in its group envelope over transport_.
  class RaftOut final : public RaftTransport {
   public:
    explicit RaftOut(GroupHost* host) : host_(host) {}
    void Send(GroupId group, raft::Message msg) override;

   private:
    GroupHost* host_;
  };
  RaftOut raft_transport_{this};
  Replica* replica_ = nullptr;  // store_'s replica of kGroup
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
