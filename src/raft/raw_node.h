// RawNode: the application's handle on one Raft replica (etcd's RawNode).
//
// The loop an application runs, from one thread:
//   1. feed inputs: Tick() on a timer, Step() for every message received, Propose() /
//      ReadIndex() / ... for client requests;
//   2. while HasReady(): rd = GetReady(); act on rd as its fields describe; Advance(rd).
//
// Thread-safety: none; all calls from one thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "raft/confchange.h"
#include "raft/raft.h"
#include "raft/types.h"

namespace synod::raft {

// What the application must do, in this order (the persistence contract):
//
//   a. `messages` may be sent at once, before or while persisting. They are a leader's
//      appends, heartbeats, snapshots, TimeoutNow and read responses; the thesis (§10.2.1)
//      lets a leader replicate entries before they are on its own disk, because the leader
//      counts itself towards a commit only after step d reports them durable.
//   b. Persist `snapshot`, `entries` and `hard_state` durably (one atomic write; fsync when
//      must_sync). Entries replace any entries of the same or a higher index already stored.
//   c. After b is durable, send `messages_after_persist`: votes, append acknowledgements and
//      everything else whose promise rests on the persisted state. Sending them earlier can
//      lose an acknowledged write or let a node vote twice in one term.
//   d. Apply `snapshot` (if any) and then `committed_entries` to the state machine, in order.
//      Committed entries may include entries of this very Ready's `entries`, which is why
//      they are applied only after b. Membership entries are applied with ApplyConfChange().
//   e. Call Advance(rd). Nothing of rd may be acted on again.
struct Ready {
  // Leader and role, when they changed since the last Ready. Volatile: never persisted.
  std::optional<SoftState> soft_state;
  // Term, vote and commit, when they changed. Persist in step b.
  std::optional<HardState> hard_state;
  // A snapshot received from the leader, to persist (b) and install (d).
  std::optional<Snapshot> snapshot;
  // Entries to append to stable storage (b).
  std::vector<Entry> entries;
  // Entries committed by a quorum, to apply in order (d).
  std::vector<Entry> committed_entries;
  // ReadIndex requests of this node that completed: once the applied index reaches
  // read_state.index, a read for its context is linearizable.
  std::vector<ReadState> read_states;
  // Contexts of this node's ReadIndex requests that will never complete because it stopped
  // being leader: fail or retry them.
  std::vector<std::string> aborted_reads;
  // Step a: may be sent before persisting.
  std::vector<Message> messages;
  // Step c: send only after b is durable.
  std::vector<Message> messages_after_persist;
  // Whether b needs an fsync: true when entries, term or vote changed. A commit index change
  // alone can be written lazily (a crash may lose it; the node learns it again); a Ready with
  // must_sync then carries hard_state again, so that the commit index known when entries
  // were appended is durable with them.
  bool must_sync = false;

  bool Empty() const;
};

enum class SnapshotStatus : uint8_t { kFinish, kFailure };

class RawNode {
 public:
  // Validates the config and loads the initial state from config.storage.
  static Result<std::unique_ptr<RawNode>> Create(const Config& config);

  // Advances logical time by one tick.
  void Tick();
  // Starts an election now (a voter only; a no-op on leaders and learners).
  Status Campaign();
  // Proposes data to be appended to the log. Errors: see Raft::Step. OK means accepted for
  // replication (or forwarded to the leader), not committed.
  Status Propose(std::string data);
  // Proposes several payloads as one proposal: they are appended in order as consecutive
  // entries and go to each follower in one append, where n Propose() calls would make n
  // appends (and n acknowledgements) per follower. This is how a busy node should hand over
  // the client requests of one loop iteration. All are accepted or none (errors as Propose).
  // REQUIRES: !data.empty().
  Status ProposeBatch(std::vector<std::string> data);
  // Proposes a membership change. kFailedPrecondition if one is pending.
  Status ProposeConfChange(const ConfChange& cc);
  // Applies a committed membership change entry's ConfChange; returns the new ConfState.
  Result<ConfState> ApplyConfChange(const ConfChange& cc);
  // Feeds a message from the network. Local message types and malformed messages (a proposal
  // without entries, a snapshot message without a snapshot, append entries that do not follow
  // its index) are refused with kInvalidArgument; responses from peers that are not members
  // with kNotFound.
  Status Step(Message m);
  // Requests a linearizable read; the answer comes back as a ReadState (or an aborted read)
  // carrying `context`, which should be unique among pending requests.
  Status ReadIndex(std::string context);
  // Asks the leader to hand leadership to `transferee`. The leader sends it TimeoutNow once
  // its log is caught up, or gives up after an election timeout.
  Status TransferLeadership(NodeId transferee);
  // The transport failed to reach `id` / finished or failed sending it a snapshot.
  void ReportUnreachable(NodeId id);
  void ReportSnapshot(NodeId id, SnapshotStatus status);

  bool HasReady() const;
  // Collects what the application must do now. REQUIRES: the previous Ready was advanced.
  Ready GetReady();
  // Reports that everything in rd was done (persisted, sent, applied).
  void Advance(const Ready& rd);

  RaftStatus GetStatus() const { return raft_.GetStatus(); }
  const Raft& raft() const { return raft_; }
  Raft& mutable_raft() { return raft_; }

 private:
  explicit RawNode(const Config& config);

  Raft raft_;
  SoftState prev_soft_;
  HardState prev_hard_;
  HardState prev_synced_hard_;  // the hard state as of the last Ready with must_sync
  bool ready_outstanding_ = false;
};

}  // namespace synod::raft
