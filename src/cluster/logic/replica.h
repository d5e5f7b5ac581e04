// Replica: one node's member of one Raft group, with its log storage and state machine — the
// "node driver" that runs Raft's Ready loop, answers clients and serves linearizable reads.
//
// Written once and used by both the deterministic simulator and the real node: it touches the
// world only through RaftTransport (sending messages) and a storage::LogStore (WalStorage
// over an env::Disk in the simulator, GroupStorage in the real node). It reads no clock: time
// is Tick(), and request timeouts are counted in ticks.
//
// State persistence: with a LogStore that persists_state() (GroupStorage), the state machine
// tracks its changes and every FinishReady stages them with the applied index into the store's
// next write, and Create loads the state from the store and has Raft replay only the entries
// after its applied index. Otherwise Create restores the snapshot image and replays the log
// after the snapshot.
//
// The host drives it from one thread:
//   - Tick() every tick interval; Receive() every message; Submit() every client request;
//   - when HasReady() and !persisting(): BeginReady(). If it returns true, a sync is in
//     flight: call FinishReady() once the disk reports it durable (the simulator does so after
//     a simulated fsync latency; the real node after its fsync). If it returns false, call
//     FinishReady() at once.
//
// Replies: every submitted request gets exactly one reply, within request_timeout_ticks.
//  - OK with the kv::Reply: the command was applied (writes) or read at a linearizable point.
//  - kTimeout: the outcome is unknown (a write may or may not have been applied). Given at
//    the timeout, or as soon as the leader changes (the request may have died with it).
//  - kProposalDropped / kUnavailable / kNotLeader: the command was certainly not applied;
//    retrying is safe.
//  - kIoError: this node's disk failed; it refuses writes until restarted.
//
// Sync modes (ReplicaOptions::sync_mode): with kReplica, BeginReady itself calls the store's
// Sync() (the simulator: its disk completes the sync later). With kHost, BeginReady only
// Save()s; when it returns true the host makes the saved changes durable off the core thread
// (the real node's storage thread, one RocksDB write per round for group commit) and then
// calls FinishReady(), or FailStorage() when the write failed.
//
// Thread-safety: none; one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cluster/logic/transport.h"
#include "common/log.h"
#include "common/status.h"
#include "kv/command.h"
#include "kv/state_machine.h"
#include "raft/raw_node.h"
#include "storage/log_store.h"

namespace synod::cluster {

// Bugs the simulator plants on purpose to show that its invariants and checker bite. Never
// set outside tests.
struct ReplicaBugs {
  // The leader answers linearizable reads from local state without ReadIndex or lease.
  bool stale_read = false;
  // Messages that must wait for the fsync (votes, append acks) are sent before it.
  bool ack_before_fsync = false;
};

struct ReplicaOptions {
  // The group this replica belongs to: every message it sends carries it. Default 1.
  GroupId group{1};
  raft::Config raft;  // raft.storage is set by Create from the WalStorage
  // Ticks after which a pending request is answered kTimeout. Default 50.
  int request_timeout_ticks = 50;
  // Bound on requests waiting for a reply; further ones are refused at once. Default 10000.
  size_t pending_requests_max = 10000;
  // Take a snapshot and compact the log once this many entries were applied since the last
  // one. Default 10000.
  uint64_t snapshot_entries = 10000;
  // With a store that persists_state(): stage the state machine's changes into the store only
  // once this many entries were applied since the last staging (and at FlushState). The log
  // holds those entries, so a restart replays them; meanwhile a key or session written many
  // times is written to the store once. 1 stages after every Ready. Default 1000.
  uint64_t state_flush_entries = 1000;
  // Batches of writes the leader keeps in flight (proposed, not yet committed). While this many
  // are, writes submitted meanwhile are held and proposed together when the oldest commits, so
  // that concurrent writers share fewer, larger rounds; a lone writer never waits (nothing of
  // its is in flight when its next write comes). 0 = no hold: propose at every Ready.
  size_t proposal_batches_in_flight = 2;
  // The hold ends early once this many writes (or kProposalHoldBytesMax bytes of them) wait, at
  // the next tick, or when this node is not the leader.
  size_t proposal_hold_max = 256;
  // ReadIndex requests (each confirming a batch of linearizable reads) this node keeps out at
  // once; reads arriving while this many are out wait and go together in the next. REQUIRES:
  // >= 1. Default 8.
  size_t read_batches_in_flight = 8;
  kv::Options kv;
  // Snapshots travel as streams the host runs (cluster/snapshot_stream.h) instead of as an
  // image inside the Raft message: the leader hands Raft a snapshot of the stored state at a
  // durable index (Snapshot::stream set, no image), and a follower installs a state the host
  // built and deposited (DepositStreamed). Needs a store that streams_state(); the real node's
  // setting. Off: the image is built on this thread and travels in the message.
  bool stream_snapshots = false;
  ReplicaBugs bugs;
  enum class SyncMode : uint8_t { kReplica, kHost };
  SyncMode sync_mode = SyncMode::kReplica;  // see the class comment
};

enum class ReadMode : uint8_t {
  kLinearizable,  // ReadIndex (or lease) then local read; the default
  kStale,         // local state as it is; may be behind the leader (READONLY)
};

struct ClientReply {
  Status status;  // see the class comment
  kv::Reply reply;
  LogIndex index;  // an applied write: the index of its entry (for WAIT); else 0
};
using ReplyFn = std::function<void(ClientReply)>;
// A read served against the local state machine once it may be (at a linearizable point for
// kLinearizable). Runs inside a Replica method; must not call back into the Replica.
using ReadFn = std::function<kv::Reply(const kv::StateMachine&)>;

// Events the simulator checks invariants on. All calls happen inside Replica methods.
class ReplicaObserver {
 public:
  virtual ~ReplicaObserver() = default;
  // This replica (of `group` on `node`) applied a committed entry (including empty and
  // membership entries).
  virtual void OnApply(NodeId node, GroupId group, const raft::Entry& entry) = 0;
  // This replica installed a snapshot covering up to meta.index.
  virtual void OnSnapshot(NodeId node, GroupId group, const raft::SnapshotMeta& meta) = 0;
  // The Ready handed out a new soft state (role, leader) at this term.
  virtual void OnSoftState(NodeId node, GroupId group, const raft::SoftState& ss, Term term) = 0;
};

// A split this replica applied (kv::kSplitCommand): the new shard's state, and what its
// replicas start from — the parent's membership and the term of the split's entry.
struct AppliedSplit {
  kv::SplitOff off;
  raft::ConfState conf;
  Term term;
  bool leader = false;  // this replica led the parent when it applied the split
};

class Replica {
 public:
  // Builds a replica on recovered storage: restores the state machine from the storage's
  // snapshot, then lets Raft replay the committed log. REQUIRES: wal outlives the replica.
  // With `adopt` (a split's new shard, whose storage holds the snapshot of the split's index
  // and nothing else), the state machine takes that state instead, and its sessions and meta
  // are staged for the store's next write (its keys are stored already, under their slots).
  static Result<std::unique_ptr<Replica>> Create(ReplicaOptions opts, RaftTransport* transport,
                                                 storage::LogStore* wal, ReplicaObserver* observer,
                                                 Logger logger,
                                                 kv::internal::State* adopt = nullptr);

  ~Replica();

  void Tick();
  // The host's wall clock (Unix ms), for stamping: a leader replaces the time a follower put on
  // a forwarded timed command (kv kRedis/kBatch/kExpire now_ms) by this one. 0 (the default,
  // and the simulator's) keeps the proposer's time.
  void set_wall_clock_ms(int64_t now_ms) { wall_clock_ms_ = now_ms; }
  // A message from a peer. Messages for another node are a programmer error.
  void Receive(raft::Message m);
  // A client command. Writes need a client id and sequence number (at-most-once); reads
  // (kGet) use `mode`.
  void Submit(const kv::Command& cmd, ReadMode mode, ReplyFn reply);
  // A read of any shape (MGET, EXISTS, DBSIZE): `fn` runs on the state machine once the read
  // is confirmed (kLinearizable) or at once (kStale). Batched with other reads into one
  // ReadIndex; never enters the log.
  void SubmitRead(ReadFn fn, ReadMode mode, ReplyFn reply);
  // Replicated expiry (leader only): proposes the deletion of up to `limit` keys whose expiry
  // is at or before `now_ms` (the host's clock), as one kv kExpire entry. Applying it deletes
  // each key that is still due by the entry's time, on every replica at the same index; no
  // replica deletes a key on its own. Returns the number of keys proposed (0 when not leader,
  // nothing is due, or the proposal was refused). Duplicates are harmless: a key already
  // deleted is skipped when applied.
  size_t ProposeExpiry(int64_t now_ms, size_t limit);
  // The transport could not deliver to `peer` (Raft then probes it instead of streaming).
  void ReportUnreachable(NodeId peer);
  // kHost sync mode: the host's durable write of the current Ready failed. The replica fails
  // (failed() is set) exactly as if its own Sync() had.
  void FailStorage(const Status& s);
  // Stages every state change not yet staged (see ReplicaOptions::state_flush_entries) into
  // the store's next write: at shutdown, so that a restart replays nothing.
  void FlushState();
  // The replica is about to be destroyed (removed from its group): every request still
  // waiting gets its answer now — a proposed write kTimeout (it may have been applied), a
  // write not proposed and a read kUnavailable (not applied: retry elsewhere).
  void AnswerAllPending();
  // The failure that stopped this replica (OK while healthy).
  const Status& failure() const { return failure_; }
  // The bytes of the log entries this replica applied since it was made (the rate its shard
  // is written at, in log bytes; moves never stream slower: cluster/logic/throttle.h).
  uint64_t applied_bytes() const { return applied_bytes_; }
  // Membership and leadership operations (replies OK when accepted, not when done).
  Status ProposeConfChange(const raft::ConfChange& cc);
  Status TransferLeadership(NodeId to);
  // Starts an election now (a split's new shard, on the node that led the parent).
  Status Campaign();
  // The splits applied since the last call, in log order (the Store starts their new shards).
  std::vector<AppliedSplit> TakeSplits() { return std::exchange(splits_, {}); }
  // The merges applied since the last call, in log order, with this replica's members at each
  // (the Store destroys this node's replica of each absorbed shard).
  struct AppliedMerge {
    kv::MergeIn in;
    raft::ConfState conf;
  };
  std::vector<AppliedMerge> TakeMerges() { return std::exchange(merges_, {}); }
  // Merged away while its Ready's write is in flight (Store::FinishMerges): its records'
  // deletion is staged, and it stages nothing more (no state, no snapshot) until destroyed.
  void Retire() { retired_ = true; }

  // Streamed snapshots (ReplicaOptions::stream_snapshots). The leader's side: the host ends
  // every streamed snapshot this replica handed out (a kSnap message with Snapshot::stream set)
  // with this call, whichever way it went; Raft learns the outcome, and the log, kept whole
  // while a stream is out (the follower needs the entries after it), may be compacted again.
  void StreamedSnapshotEnded(NodeId to, bool delivered);
  size_t streams_out() const { return streams_out_; }
  // Whether the state a streamed snapshot needs is staged and waits for a node write to make it
  // durable (the host then writes even when no Ready asks for it).
  bool WantsStateWrite() const {
    return armed_.has_value() && wal_->state_view_index() == LogIndex(0);
  }
  // The follower's side: the state stream `stream` brought (built off the core thread), for
  // the kSnap message the host delivers next with Snapshot::stream == `stream`. One at a time:
  // a newer deposit replaces one no snapshot used. The store holds its stored form
  // (LogStore::StageReceived).
  void DepositStreamed(uint64_t stream, kv::internal::State state);
  // The slots of the state deposited for `stream` (nullopt: none deposited, or any slot).
  std::optional<SlotRange> DepositedRange(uint64_t stream) const;

  bool HasReady() const;
  bool persisting() const { return persisting_; }
  // Takes a Ready, sends what may go at once, and writes the rest to the log. Returns true
  // when a sync is in flight (call FinishReady once durable), false when FinishReady may be
  // called at once. On a disk error the replica fails (failed() is set) and returns false.
  bool BeginReady();
  void FinishReady();

  NodeId id() const { return id_; }
  GroupId group() const { return opts_.group; }
  bool failed() const { return !failure_.ok(); }
  // Whether this replica is a voter or learner of the configuration it applied. One that is not
  // (removed from the group, or new and waiting for its first snapshot) holds no state of the
  // group worth serving and may never hear of a leader.
  bool IsMember() const;
  const raft::RawNode& raw_node() const { return *node_; }
  const kv::StateMachine& state_machine() const { return sm_; }
  // The state machine's applied index when Create returned: from the store's persisted state
  // (persists_state()), else from the snapshot. Entries after it were replayed from the log.
  LogIndex applied_at_start() const { return applied_at_start_; }
  size_t pending_requests() const;

  // Quiescence (see Store): whether this replica may stop ticking. As leader: nothing pending
  // (requests, held proposals, reads, a transfer, a membership change, an unsaved or unapplied
  // entry) and every member's log matches ours up to the commit index, which is our last index.
  // Only with ReadIndex reads: a lease is measured in ticks, so a leader that stops ticking
  // must not also be one that serves reads from its lease.
  bool QuiescableLeader() const;
  // As follower: `leader` at `term` says the group is idle at `index`; our log and commit
  // must end there, with no request of ours pending (a Ready still to run is fine: quiescence
  // stops only the ticks).
  bool QuiescableFollower(NodeId leader, Term term, LogIndex index) const;

 private:
  struct PendingWrite {
    ReplyFn reply;
    uint64_t deadline_tick;
  };
  struct PendingRead {
    ReadFn fn;
    ReplyFn reply;
    uint64_t deadline_tick;
  };

  Replica(ReplicaOptions opts, RaftTransport* transport, storage::LogStore* wal,
          ReplicaObserver* observer, Logger logger);

  // Healthy, and no client request or held proposal waits here.
  bool NoRequestsPending() const;
  Status LoadStoredState();
  Status ReplayConfChanges(LogIndex after, LogIndex upto);
  void StageStateChanges(bool force);
  Result<raft::Snapshot> BuildSnapshot();
  Result<raft::Snapshot> BuildImage() const;
  void SubmitWrite(const kv::Command& cmd, ReplyFn reply);
  void RestampForwarded(raft::Message& m);
  // Answers `reply` and returns true when the replica failed or is at its pending bound.
  bool RefuseIfUnable(ReplyFn& reply);
  void FlushReadBatch();
  // Applies entries[from, to).
  void ApplyCommitted(const std::vector<raft::Entry>& entries, size_t from, size_t to);
  void ApplyDurableCommitted();
  void ApplyConfChange(const raft::Entry& e);
  // A split entry (kv::kSplitCommand): applied with the state staged on both sides of it.
  kv::Reply ApplySplit(LogIndex index, const kv::Command& cmd, Term term);
  // A merge entry (kv::kMergeCommand): applied with the state staged on both sides of it, the
  // absorbed slots cleared first.
  kv::Reply ApplyMerge(LogIndex index, const kv::Command& cmd);
  // Points the store's state span at the state machine's slots (after a load, restore or split).
  void SyncStateSlots();
  void ServeReads();
  void FlushProposals();
  // The held writes are to be proposed now (see ReplicaOptions::proposal_hold_max).
  bool ProposalsDue() const;
  bool ReadBatchDue() const;
  void HandleReadStates(const raft::Ready& rd);
  void ExpireRequests();
  void MaybeCompact();
  void Fail(const Status& s);
  // Answers every request waiting here: a proposed write with `proposed` (its outcome is
  // unknown), a write not proposed and a read with `not_applied`.
  void AnswerPending(const Status& proposed, const Status& not_applied);
  void AbortOnLeaderChange();
  void SendAll(std::vector<raft::Message>& msgs);
  static void Answer(ReplyFn& fn, Status s, kv::Reply r = {}, LogIndex index = {});

  const NodeId id_;
  ReplicaOptions opts_;
  RaftTransport* transport_;
  storage::LogStore* wal_;
  ReplicaObserver* observer_;
  Logger logger_;
  kv::StateMachine sm_;
  std::unique_ptr<raft::RawNode> node_;

  uint64_t tick_ = 0;
  int64_t wall_clock_ms_ = 0;
  bool snapshot_source_set_ = false;  // the store builds snapshots through BuildSnapshot
  Status failure_;
  bool persisting_ = false;
  raft::Ready ready_;         // the Ready between BeginReady and FinishReady
  size_t applied_early_ = 0;  // ready_.committed_entries applied by BeginReady
  uint64_t applied_bytes_ = 0;
  LogIndex snapshot_index_;
  LogIndex applied_at_start_;
  // The store holds a state older than the one restored at Create: the first StageState must
  // replace it whole.
  bool state_reset_pending_ = false;
  NodeId known_leader_;               // the leader as of the last Ready's soft state
  std::vector<AppliedSplit> splits_;  // see TakeSplits
  std::vector<AppliedMerge> merges_;  // see TakeMerges
  bool retired_ = false;              // see Retire
  // The slots a merge took, to clear at the next staging (StateWrites::clear_slots).
  std::optional<std::pair<uint16_t, uint16_t>> clear_slots_;
  // Streamed snapshots: the snapshot whose stored state the leader waits for (armed, see
  // BuildSnapshot), the streams handed out and not yet ended, and a follower's deposit.
  std::optional<raft::SnapshotMeta> armed_;
  uint64_t armed_tick_ = 0;
  static constexpr uint64_t kArmedTicksMax = 1000;
  size_t streams_out_ = 0;
  struct Deposit {
    uint64_t stream = 0;
    kv::internal::State state;
  };
  std::optional<Deposit> deposited_;

  // Writes by (client_id, seq): several submissions of one retried command share an entry.
  std::map<std::pair<uint64_t, uint64_t>, std::vector<PendingWrite>> writes_;
  size_t write_count_ = 0;
  // Linearizable reads: collected into a batch, one ReadIndex per batch; then waiting for the
  // read index; then waiting for the state machine to reach it.
  std::vector<PendingRead> read_batch_;
  static constexpr uint64_t kReadIndexRetryTicks = 2;
  uint64_t read_index_tick_ = 0;  // tick_ when the last ReadIndex round went out
  // Writes submitted since the last Ready: proposed together as one multi-entry MsgProp, so a
  // round sends one MsgApp per follower and gets one acknowledgement back, not one per write.
  struct BatchedWrite {
    uint64_t client_id;
    uint64_t seq;
    ReplyFn reply;
  };
  std::vector<std::string> prop_batch_;
  std::vector<BatchedWrite> prop_waiters_;
  size_t prop_batch_bytes_ = 0;
  // The last index of each batch this leader proposed that may not be committed yet, oldest
  // first (pruned as the commit index passes them).
  std::deque<LogIndex> batches_in_flight_;
  uint64_t prop_batch_tick_ = 0;  // tick_ when the first of prop_batch_ arrived
  static constexpr size_t kProposalHoldBytesMax = 1 << 20;
  uint64_t next_read_ctx_ = 1;
  std::map<std::string, std::vector<PendingRead>> reads_by_ctx_;
  std::multimap<LogIndex, PendingRead> reads_by_index_;
};

}  // namespace synod::cluster
