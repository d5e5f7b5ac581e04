// GroupStorage: one Raft group's durable storage in its node's database (NodeDb), served from
// an in-memory raft::MemoryStorage — the real node's LogStore. The database is RocksDB in the
// real node and an in-memory engine in the simulator (engine.h): the same code runs on both.
//
// Every change is applied to the MemoryStorage, which the Raft core reads through
// raft_storage(), and staged in the NodeDb's batch; a node write makes that batch durable as one
// atomic write. Open() rebuilds the MemoryStorage from the database and checks that what it
// read describes a consistent log.
//
// Many groups share one database: a GroupStorage is one group's part of it. Its records (every
// value is [u32 crc][payload], the CRC-32C of the key followed by the payload, little-endian,
// checked on every read) are, with every value is [u32 crc][payload], the CRC-32C of the
// key followed by the payload, little-endian, checked on every read) are, with
// G = "G" + group id (u64 BE):
//   G + "H"                  pb::HardState
//   G + "S"                  pb::Snapshot (meta and the state machine image)
//   G + "E" + index (u64 BE) pb::Entry; big-endian so that iteration is in index order
//   G + "A"                  the persisted state machine's applied index (u64 LE)
//   G + "B"                  the state machine's meta record (StateWrites::meta), opaque
//   G + "T" + id (u64 BE)    a state machine client session, as the state machine encoded it
// and the state machine's keys, where its StateSpan says:
//   "D" + slot (u16 BE) + key   kSlots: a shard's keys, by the key's hash slot, shared by all
//                               groups so that a slot's keys are one range whoever owns it
//   G + "D" + key               kGroup: a group's own keys (the meta shard)
// The checksum covers the key so that a value written under the wrong key (a misdirected
// write) fails it too. A mismatch is kCorruption naming the record; the node then refuses to
// serve rather than give a silently wrong answer.
//
// Durability: Save() writes nothing: it stages into the NodeDb's batch. Sync() writes
// everything staged since the last write (by every group of the NodeDb) as one batch, so a Save's
// entries and hard state are never torn apart, several Saves between Syncs are group-committed, and
// after a crash the database holds a prefix of the Saves, Save by Save. Saves not yet written when
// the GroupStorage is destroyed are dropped, as a crash would. Compact() is durable when it returns
// (it writes any pending batch first, in order).
//
// The state machine (persists_state()): StageState() appends its changes and applied index to
// the same pending batch as the Saves, so one write carries them together and the stored data
// always matches the stored applied index. Open() reads only the applied index; the Replica
// reads the rest with ForEachState(). The stored applied index may be below the snapshot's (a
// received snapshot is saved one write before the state it replaced): the Replica then
// restores from the snapshot image instead and rewrites the whole state.
//
// Failure is sticky (LogStore) and node-wide: after any failed write of the NodeDb, every later
// Save, Sync, Compact and PutMeta of every group returns the kIoError without touching the
// database; in-memory state stays readable. The node restarts (reopens) to recover.
//
// Thread-safety: one owner thread (the NodeDb's) calls every method, with these exceptions:
//  - WritePending() may run on another thread (the node's storage thread): it is
//    NodeDb::WriteTaken. TakePending/WritePending/OnPendingWritten are the NodeDb's node write
//    (TakeWrite/WriteTaken/OnWritten) seen from one group, kept for hosts of a single group.
//  - While a write carrying this group's records is outstanding, the owner must not call
//    Sync() or Compact() nor destroy the GroupStorage (all asserted). Save() is fine.
//  - GetMeta() and disk_bytes() may be called from any thread.
#pragma once

#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/slot.h"
#include "common/status.h"
#include "raft/storage.h"
#include "raft/types.h"
#include "storage/log_store.h"
#include "storage/node_db.h"

namespace synod::storage {

// Where a group's state machine keys live in the node's database (see the class comment).
struct StateSpan {
  enum class Kind : uint8_t {
    kSlots,  // "D" + slot + key, for the slots first_slot..last_slot (a data shard)
    kGroup,  // under the group's own prefix (the meta shard)
  };
  Kind kind = Kind::kSlots;
  uint16_t first_slot = 0;
  uint16_t last_slot = kSlotCount - 1;  // inclusive

  static StateSpan Slots(uint16_t first, uint16_t last) { return {Kind::kSlots, first, last}; }
  static StateSpan Group() { return {Kind::kGroup, 0, 0}; }
  bool operator==(const StateSpan&) const = default;
};

// Where a group's streamed state lies in the database (a streamed snapshot reads and writes
// these ranges and records as they are stored: same keys, same framing, on every node).
struct StateKeys {
  std::string data_begin, data_end;          // the state machine's keys
  std::string sessions_begin, sessions_end;  // its client sessions
  std::string meta, applied;                 // its meta record and applied index
  size_t data_prefix = 0;                    // bytes of a data key before the state's key
  size_t session_prefix = 0;                 // bytes of a session key before the client id
};

// A streamed snapshot's state as received, in its stored form (a batch that replaces the
// group's stored state whole), deposited by the host for StageReceived.
struct ReceivedState {
  rocksdb::WriteBatch batch;
  LogIndex applied;
  std::string meta;
};

// What Open() found in the database.
struct GroupRecoveryStats {
  bool created = false;         // the group had no records (for a standalone store: a new database)
  uint64_t entries_loaded = 0;  // entries after the snapshot, loaded into memory
  uint64_t stale_entries = 0;   // entries at or below the snapshot found and deleted
};

class GroupStorage final : public LogStore {
 public:
  // A node write, seen from one group (see the class comment).
  using PendingWrite = NodeDb::Write;
  // The group of a standalone store (the Open that takes a directory).
  static constexpr GroupId kStandaloneGroup{1};

  // Opens group `group` of the node's database `node` and loads its records; a group with no
  // records starts empty (recovery_stats().created). Errors:
  //  - kCorruption: a record failed its checksum or does not parse, or the records do not
  //    describe a consistent log (a gap, decreasing terms, a commit index beyond the log);
  //  - kInvalidArgument: group 0, or a slot span that is not 0 <= first <= last < kSlotCount;
  //  - another code if the database cannot be read or written.
  // REQUIRES: `node` outlives the store; one store per group.
  static Result<std::unique_ptr<GroupStorage>> Open(NodeDb* node, GroupId group, StateSpan span);

  // A store that owns its database: opens (creating if missing) the RocksDB NodeDb in `dir` for
  // `cluster_id` (see NodeDb::Open for its errors) and group kStandaloneGroup in it, holding
  // every slot.
  static Result<std::unique_ptr<GroupStorage>> Open(const std::string& dir, uint64_t cluster_id,
                                                    RocksOptions opts = {});

  // Saves not yet written are dropped when the store owns its database (see Durability), and
  // written by the next node write otherwise. REQUIRES: no write carrying its records
  // outstanding.
  ~GroupStorage() override;

  GroupStorage(const GroupStorage&) = delete;
  GroupStorage& operator=(const GroupStorage&) = delete;

  // What the Raft core reads (raft::Config::storage). Reflects every successful Save(),
  // written or not: the application must not act on durability before Sync().
  const raft::Storage& raft_storage() const override { return memory_; }

  // Applies, in this order, the snapshot, the entries and the hard state (each optional) to
  // raft_storage() and stages them for the next write: the snapshot replaces the log, entries
  // replace any of the same or a higher index. Errors, with nothing changed:
  //  - kSnapshotOutOfDate: snap is not newer than snapshot();
  //  - kInvalidArgument: entries not consecutive, leaving a gap after the log, or hs.commit
  //    beyond the resulting last index; an entry or snapshot of 2 GiB or more;
  //  - kIoError: the storage is failed (sticky).
  Status Save(const std::optional<raft::Snapshot>& snap, const std::vector<raft::Entry>& entries,
              const std::optional<raft::HardState>& hs) override;

  // Writes everything staged so far, by this group and every other group of the NodeDb, as
  // one atomic (fsynced) write (NodeDb::Sync). OK at once when nothing is staged. kIoError
  // when failed (sticky). REQUIRES: no node write outstanding.
  Status Sync() override;

  // The NodeDb's node write, for hosts of one group: TakePending is NodeDb::TakeWrite,
  // WritePending is NodeDb::WriteTaken (any thread), OnPendingWritten is NodeDb::OnWritten.
  PendingWrite TakePending() { return node_->TakeWrite(); }
  Status WritePending(PendingWrite& w) const { return node_->WriteTaken(w); }
  void OnPendingWritten(const Status& written) { node_->OnWritten(written); }

  // Takes a snapshot at `index` with the membership `cs` and the state machine's image of
  // everything applied up to `index`, and discards the entries up to it: any pending batch,
  // then the snapshot record and the deletion of those entries, as one durable write; only
  // then is raft_storage() compacted. Errors, with nothing changed unless noted:
  //  - kSnapshotOutOfDate: index <= snapshot().meta.index;
  //  - kInvalidArgument: index beyond the saved commit index (only applied entries can be
  //    folded into a snapshot), or an image of 2 GiB or more;
  //  - kIoError: the storage is failed (sticky), or the write failed (it then is; the pending
  //    batch is gone with it).
  // REQUIRES: no PendingWrite outstanding.
  Status Compact(LogIndex index, const raft::ConfState& cs,
                 std::string state_machine_image) override;

  // See LogStore::StageCompact: the compaction rides on the next TakePending (or Sync), and
  // OnPendingWritten compacts raft_storage() when that write succeeded. A snapshot saved
  // meanwhile that covers the index supersedes it. No PendingWrite restriction.
  Status StageCompact(LogIndex index, const raft::ConfState& cs) override;

  // The state machine kept beside the log (see the class comment and LogStore).
  bool persists_state() const override { return true; }
  // Stages `w` into the pending batch, after the Saves staged before it. Nothing on a failed
  // storage. REQUIRES: w.reset or w.applied >= state_applied().
  void StageState(const StateWrites& w) override;
  // The applied index read at Open (0 if none) or last staged.
  LogIndex state_applied() const override { return state_applied_; }
  std::string state_meta() const override { return state_meta_; }
  // A kSlots span becomes `slots`; a kGroup span stays.
  void SetStateSlots(SlotRange slots) override {
    if (span_.kind == StateSpan::Kind::kSlots) span_ = StateSpan::Slots(slots.first, slots.last);
  }
  void SetSnapshotSource(raft::MemoryStorage::SnapshotSource source) override {
    memory_.set_snapshot_source(std::move(source));
  }
  // Streamed snapshots (LogStore; cluster/snapshot_stream.h).
  bool streams_state() const override { return true; }
  void WantStateView(LogIndex applied) override;
  LogIndex state_view_index() const override { return view_ ? view_applied_ : LogIndex(0); }
  LogIndex durable_state_applied() const override { return durable_applied_; }
  Status StageReceived(uint64_t stream) override;
  // The view WantStateView asked for, once taken (then state_view_index() is 0 again), with
  // the keys to read from it. nullopt when there is none.
  struct StateView {
    LogIndex applied;
    std::shared_ptr<const EngineView> view;
    StateKeys keys;
    std::optional<SlotRange> range;  // a kSlots span's slots; nullopt for a kGroup span
  };
  std::optional<StateView> TakeStateView();
  // The host's deposit of what stream `stream` brought (one at a time: a newer one replaces an
  // older one that no snapshot used).
  void DepositReceived(uint64_t stream, ReceivedState state);
  // The keys of `group`'s state in `span`.
  static StateKeys KeysOf(GroupId group, StateSpan span);
  // An applied index record's value (its frame checked: kCorruption). Other records' frames:
  // format::Unframe (rocks_format.h).
  static Result<LogIndex> DecodeApplied(std::string_view key, std::string_view value);

  // Calls data_fn for each stored key in key order, then session_fn for each stored session
  // in client id order, as of the last write (staged changes not included). kCorruption,
  // naming the record, when one fails its checksum; otherwise the first non-OK status of a
  // callback, or of the database. Owner thread (the storage thread may be writing meanwhile).
  Status ForEachState(const StateDataFn& data_fn, const StateSessionFn& session_fn) const override;

  // The node's metadata and files (NodeDb::PutMeta, GetMeta, disk_bytes).
  Status PutMeta(std::string_view name, std::string_view value) {
    return node_->PutMeta(name, value);
  }
  Result<std::optional<std::string>> GetMeta(std::string_view name) const {
    return node_->GetMeta(name);
  }
  uint64_t disk_bytes() const { return node_->disk_bytes(); }

  // A replica removed from its group: stages the deletion of every record of the group and,
  // with `with_data`, of the state machine's keys in its span, into the node's next write. The
  // store is to be destroyed right after (nothing more may be staged for it).
  void StageDestroy(bool with_data);

  // The latest snapshot (saved or made by Compact); empty (index 0) if none.
  const raft::Snapshot& snapshot() const override { return snapshot_; }
  const raft::HardState& hard_state() const override { return memory_.hard_state(); }
  uint64_t cluster_id() const override { return node_->cluster_id(); }
  // OK, or the kIoError every write returns since the node's disk failed.
  const Status& failure() const override { return node_->failure(); }
  const GroupRecoveryStats& recovery_stats() const { return recovery_stats_; }
  // The Saves staged and not yet taken by a write.
  uint64_t pending_saves() const { return pending_saves_; }
  GroupId group() const { return group_; }
  const StateSpan& span() const { return span_; }
  NodeDb& node() { return *node_; }

  // Database keys, for tools and tests that inspect the database: log entry `index` of
  // `group`; the record of one `kind` letter of `group` (see the class comment); a key's
  // record in a kSlots span.
  static std::string EntryKey(GroupId group, LogIndex index);
  static std::string GroupKey(GroupId group, char kind);
  static std::string SlotDataKey(std::string_view key);

 private:
  friend class NodeDb;

  GroupStorage(NodeDb* node, GroupId group, StateSpan span);

  Status Load();
  Status LoadSnapshot();
  Status LoadHardState();
  Status LoadEntries();
  Status DeleteStaleEntries();
  Status LoadStateApplied();
  Status CheckSave(const std::optional<raft::Snapshot>& snap,
                   const std::vector<raft::Entry>& entries,
                   const std::optional<raft::HardState>& hs) const;
  void StageEntries(const std::vector<raft::Entry>& entries, LogIndex first_kept,
                    LogIndex old_last);
  // The node's staging batch; marks this group as having staged.
  rocksdb::WriteBatch& Stage();
  // NodeDb: a node write took this group's staged records; returns the Saves among them.
  uint64_t OnTaken();
  // NodeDb: the write that took them is done (durable when OK).
  void OnWritten(const Status& written);
  // Keys of this group's records.
  std::string Key(char kind) const;
  std::string EntryKey(LogIndex index) const { return EntryKey(group_, index); }
  std::string DataKey(std::string_view key) const;
  // The range of this group's state machine keys, and the part of a stored key before the
  // state machine's key.
  std::string DataBegin() const;
  std::string DataEnd() const;
  size_t DataKeyPrefixBytes() const;

  // Declared first, destroyed last: a standalone store's database.
  std::unique_ptr<NodeDb> owned_node_;
  NodeDb* const node_;
  const GroupId group_;
  StateSpan span_;  // see SetStateSlots
  raft::MemoryStorage memory_;
  // A copy of memory_'s snapshot: MemoryStorage hands its snapshot out only by value.
  raft::Snapshot snapshot_;
  // Saves applied to memory_ and staged, not yet taken by a write.
  uint64_t pending_saves_ = 0;
  // Registered with the NodeDb as having staged records for its next write.
  bool staged_ = false;
  LogIndex state_applied_;
  std::string state_meta_;
  // The applied index staged since the last write was taken, the one each outstanding write
  // carries (oldest first), and the one of the last durable write (see durable_state_applied).
  std::optional<LogIndex> applied_staged_;
  std::deque<std::optional<LogIndex>> applied_in_flight_;
  LogIndex durable_applied_;
  // WantStateView's index (0: none wanted), and the view taken for it.
  LogIndex view_wanted_;
  LogIndex view_applied_;
  std::shared_ptr<const EngineView> view_;
  void MaybeTakeView();
  // DepositReceived's.
  uint64_t received_stream_ = 0;
  std::optional<ReceivedState> received_;
  // Node writes carrying this group's records, taken and not yet reported.
  uint64_t writes_outstanding_ = 0;
  // A compaction staged (StageCompact), and those riding on the outstanding node writes that
  // carry this group's records, in write order (nullopt for a write without one).
  std::optional<raft::Snapshot> staged_compaction_;
  std::deque<std::optional<raft::Snapshot>> compactions_in_flight_;
  void FinishCompaction(const raft::Snapshot& snap);
  // The snapshot (no image) a compaction at `index` makes, after the checks both Compact and
  // StageCompact do: index > newest (kSnapshotOutOfDate), index <= the saved commit index.
  Result<raft::Snapshot> CompactionSnapshot(LogIndex index, LogIndex newest,
                                            const raft::ConfState& cs) const;
  GroupRecoveryStats recovery_stats_;
};

}  // namespace synod::storage
