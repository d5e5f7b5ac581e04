// RocksStorage: Raft's durable storage in one RocksDB database, served from an in-memory
// raft::MemoryStorage — the real node's LogStore (WalStorage is the simulator's).
//
// Every change is applied to the MemoryStorage, which the Raft core reads through
// raft_storage(), and staged in a pending rocksdb::WriteBatch; Sync() writes that batch as one
// atomic RocksDB write. Open() rebuilds the MemoryStorage from the database and checks that
// what it read describes a consistent log.
//
// Layout (default column family; every value is [u32 crc][payload], the CRC-32C of the key
// followed by the payload, little-endian, checked on every read):
//   "C"                  pb::WalHeader: magic "SYNODRDB", format version, cluster id
//   "H"                  pb::HardState
//   "S"                  pb::Snapshot (meta and the state machine image)
//   "E" + index (u64 BE) pb::Entry; big-endian so that iteration is in index order
//   "M" + name           node metadata (PutMeta), an opaque value
//   "A"                  the persisted state machine's applied index (u64 LE)
//   "B"                  the state machine's meta record (StateWrites::meta), opaque
//   "D" + key            a state machine key; the value is the key's record (StageState)
//   "T" + id (u64 BE)    a state machine client session, as the state machine encoded it
// The checksum covers the key so that a value written under the wrong key (a misdirected
// write) fails it too. A mismatch is kCorruption naming the record; the node then refuses to
// serve rather than give a silently wrong answer.
//
// Durability: Save() writes nothing. Sync() writes everything saved since the last write as
// one batch, so a Save's entries and hard state are never torn apart, several Saves between
// Syncs are group-committed, and after a crash the database holds a prefix of the Saves, Save
// by Save. Saves not yet written when the RocksStorage is destroyed are dropped, as a crash
// would. Compact() is durable when it returns (it writes any pending batch first, in order).
//
// The state machine (persists_state()): StageState() appends its changes and applied index to
// the same pending batch as the Saves, so one write carries them together and the stored data
// always matches the stored applied index. Open() reads only the applied index; the Replica
// reads the rest with ForEachState(). The stored applied index may be below the snapshot's (a
// received snapshot is saved one write before the state it replaced): the Replica then
// restores from the snapshot image instead and rewrites the whole state.
//
// Failure is sticky (LogStore): after any failed RocksDB write, every later Save, Sync,
// Compact and PutMeta returns the kIoError without touching the database; in-memory state
// stays readable. The node restarts (reopens) to recover.
//
// Thread-safety: one owner thread calls every method, with these exceptions:
//  - WritePending() may run on another thread (the node's storage thread), because it only
//    touches the rocksdb::DB, which is thread-safe. PendingWrites are written one at a time, in
//    the order TakePending() returned them (one thread draining a FIFO queue). Once one write
//    fails, WritePending() refuses every later one, so that what is durable stays a prefix.
//  - Each TakePending() is matched by one OnPendingWritten() on the owner thread, in the same
//    order. While a PendingWrite is outstanding (taken, not yet reported), the owner must not
//    call Sync() or Compact() nor destroy the RocksStorage (all asserted): those write from the
//    owner thread and would reorder writes or free the DB under the writer. Save() is fine.
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

#include "common/status.h"
#include "raft/storage.h"
#include "raft/types.h"
#include "storage/log_store.h"

namespace rocksdb {
class DB;
class Env;
class Snapshot;
}  // namespace rocksdb

namespace synod::storage {

struct RocksOptions {
  // RocksDB environment; nullptr = rocksdb::Env::Default(). Tests and the node's fault hook pass
  // a FaultInjectionFs-backed env (fault_fs.h). Not owned; must outlive the RocksStorage.
  rocksdb::Env* env = nullptr;
  // fsync on every write (Sync, Compact, PutMeta, Open's own writes). False only for benchmarks
  // that measure everything but the disk: a crash of the machine may then lose acknowledged
  // writes (a crash of the process does not).
  bool sync = true;
};

// What Open() found in the database.
struct RocksRecoveryStats {
  bool created = false;         // the database was empty and got a cluster id record
  uint64_t entries_loaded = 0;  // entries after the snapshot, loaded into memory
  uint64_t stale_entries = 0;   // entries at or below the snapshot found and deleted
};

class RocksStorage final : public LogStore {
 public:
  // The changes staged by Save() since the last TakePending(), as one RocksDB write. Moved
  // between threads; see the class comment for the contract.
  struct PendingWrite {
    rocksdb::WriteBatch batch;
    uint64_t saves = 0;  // the Saves the batch holds (group-commit size, for metrics)
    // Set when the storage had already failed at TakePending(): WritePending() returns it and
    // writes nothing.
    Status refused;
  };

  // Opens (creating if missing) the database in `dir` for `cluster_id` and loads it. Errors:
  //  - kFailedPrecondition: the directory belongs to another cluster, or a newer format;
  //  - kCorruption: a record failed its checksum or does not parse, or the records do not
  //    describe a consistent log (a gap, decreasing terms, a commit index beyond the log);
  //  - kIoError (or another code RocksDB gave): opening, reading or writing the database
  //    failed.
  static Result<std::unique_ptr<RocksStorage>> Open(const std::string& dir, uint64_t cluster_id,
                                                    RocksOptions opts = {});

  // Closes the database. Saves not yet written are dropped (see Durability).
  // REQUIRES: no PendingWrite outstanding.
  ~RocksStorage() override;

  RocksStorage(const RocksStorage&) = delete;
  RocksStorage& operator=(const RocksStorage&) = delete;

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

  // Writes everything saved so far as one atomic (fsynced) write: TakePending, WritePending,
  // OnPendingWritten. OK at once when nothing is pending. kIoError when failed (sticky).
  // REQUIRES: no PendingWrite outstanding.
  Status Sync() override;

  // The split form of Sync() for a storage thread. TakePending() (owner thread) moves the
  // staged batch out, leaving nothing pending; when the storage is failed the result carries
  // the failure in `refused` and no batch.
  PendingWrite TakePending();
  // Writes `w` as one atomic write (fsynced when RocksOptions::sync). Any thread, one write at
  // a time, in TakePending order. OK without writing when `w` is empty. Returns `w.refused`
  // when set, and kIoError without writing once an earlier write failed. The result is what
  // the caller passes to OnPendingWritten(); `w` is durable only when it is OK.
  Status WritePending(PendingWrite& w) const;
  // Owner thread: reports the result of WritePending() for the oldest outstanding PendingWrite.
  // A failure becomes the sticky failure().
  void OnPendingWritten(const Status& written);

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
  void SetSnapshotSource(raft::MemoryStorage::SnapshotSource source) override {
    memory_.set_snapshot_source(std::move(source));
  }
  // Calls data_fn for each stored key in key order, then session_fn for each stored session
  // in client id order, as of the last write (staged changes not included). kCorruption,
  // naming the record, when one fails its checksum; otherwise the first non-OK status of a
  // callback, or of RocksDB. Owner thread (the storage thread may be writing meanwhile).
  Status ForEachState(const StateDataFn& data_fn, const StateSessionFn& session_fn) const override;

  // Node-level metadata (the peer address book), outside the Raft log: a durable (synced),
  // checksummed write of `value` under `name`. Errors: kInvalidArgument (empty name, value over
  // 16 MiB), kIoError (failed, sticky).
  Status PutMeta(std::string_view name, std::string_view value);
  // The value last put under `name`, or nullopt. kCorruption if it fails its checksum; another
  // code if RocksDB cannot read it. Any thread.
  Result<std::optional<std::string>> GetMeta(std::string_view name) const;

  // The latest snapshot (saved or made by Compact); empty (index 0) if none.
  const raft::Snapshot& snapshot() const override { return snapshot_; }
  const raft::HardState& hard_state() const override { return memory_.hard_state(); }
  uint64_t cluster_id() const override { return cluster_id_; }
  // OK, or the kIoError every write returns since the disk failed.
  const Status& failure() const override { return failure_; }
  const RocksRecoveryStats& recovery_stats() const { return recovery_stats_; }
  // The Saves staged and not yet taken by a write.
  uint64_t pending_saves() const { return pending_saves_; }
  // The bytes of the files in the data directory (SST files, WAL, manifest, ...), for metrics;
  // 0 if the directory cannot be listed. Any thread.
  uint64_t disk_bytes() const;

  // The database key of log entry `index` (for tools and tests that inspect the database).
  static std::string EntryKey(LogIndex index);

 private:
  RocksStorage(std::string dir, uint64_t cluster_id, const RocksOptions& opts);

  Status OpenDb();
  Status CheckOrCreateClusterRecord();
  Status LoadSnapshot();
  Status LoadHardState();
  Status LoadEntries();
  Status DeleteStaleEntries();
  Status LoadStateApplied();
  Status ForEachStateRange(
      const rocksdb::Snapshot* snap, std::string_view begin, std::string_view end,
      const std::function<Status(std::string_view key, std::string_view payload)>& fn) const;
  Status CheckSave(const std::optional<raft::Snapshot>& snap,
                   const std::vector<raft::Entry>& entries,
                   const std::optional<raft::HardState>& hs) const;
  void StageEntries(const std::vector<raft::Entry>& entries, LogIndex first_kept,
                    LogIndex old_last);
  // Writes `batch` from the owner thread; a failure becomes the sticky failure.
  Status WriteNow(rocksdb::WriteBatch* batch);
  // Records the first write failure as the sticky kIoError.
  void RecordFailure(const Status& cause);

  const std::string dir_;
  const uint64_t cluster_id_;
  rocksdb::Env* const env_;
  const bool sync_;
  std::unique_ptr<rocksdb::DB> db_;
  raft::MemoryStorage memory_;
  // A copy of memory_'s snapshot: MemoryStorage hands its snapshot out only by value.
  raft::Snapshot snapshot_;
  // Saves applied to memory_ and not yet taken by a write; in Save order.
  rocksdb::WriteBatch pending_;
  uint64_t pending_saves_ = 0;
  LogIndex state_applied_;
  std::string state_meta_;
  // PendingWrites taken and not yet reported to OnPendingWritten.
  uint64_t writes_outstanding_ = 0;
  // A compaction staged into pending_ (StageCompact), and those riding on the outstanding
  // PendingWrites, in TakePending order (nullopt for a write without one).
  std::optional<raft::Snapshot> staged_compaction_;
  std::deque<std::optional<raft::Snapshot>> compactions_in_flight_;
  void FinishCompaction(const raft::Snapshot& snap);
  // The snapshot (no image) a compaction at `index` makes, after the checks both Compact and
  // StageCompact do: index > newest (kSnapshotOutOfDate), index <= the saved commit index.
  Result<raft::Snapshot> CompactionSnapshot(LogIndex index, LogIndex newest,
                                            const raft::ConfState& cs) const;
  // Set by whichever thread sees a RocksDB write fail, so that no later write lands after it.
  mutable std::atomic<bool> write_failed_{false};
  RocksRecoveryStats recovery_stats_;
  Status failure_;
};

}  // namespace synod::storage
