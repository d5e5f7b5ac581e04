// WalStorage: Raft's durable storage as a write-ahead log on one env::Disk, served from an
// in-memory raft::MemoryStorage (etcd's wal + MemoryStorage, written for our Disk contract).
//
// Every change is appended to the disk as records (wal_format.h) and applied to the
// MemoryStorage, which the Raft core reads through raft_storage(). Open() rebuilds the
// MemoryStorage by replaying the records. Compact() folds the applied prefix of the log into a
// snapshot and rewrites the disk atomically, so the WAL stays bounded by the size of the
// snapshot plus the entries not yet compacted.
//
// How it serves Ready (raft/raw_node.h) step b: Save(rd.snapshot, rd.entries, rd.hard_state),
// then, when rd.must_sync, Sync(); send rd.messages_after_persist only once Sync() has
// returned OK (and, with a disk whose fsync completes later such as sim::SimDisk, once that
// disk reports completion).
//
// Durability: Save() makes nothing durable; Sync() makes everything saved so far durable.
// After a crash, Open() recovers every record that was synced and possibly some later ones,
// always a prefix of what was saved, record by record. Compact() is durable when it returns
// (Disk::Replace is), including any saved but unsynced records.
//
// Failure is sticky: once an Append, Sync or Replace of the disk fails (disk full, EIO), the
// state of the unsynced tail is unknown, so every later Save, Sync and Compact returns kIoError
// without touching the disk. The node must stop acknowledging anything and restart (reopen)
// to recover; it refuses writes rather than risk acknowledging one that may be lost. The
// in-memory state stays readable.
//
// Thread-safety: none. One thread (the node's core or storage thread) owns it and the Disk.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "env/disk.h"
#include "raft/storage.h"
#include "raft/types.h"
#include "storage/log_store.h"

namespace synod::storage {

// What Open() found on the disk.
struct RecoveryStats {
  bool created = false;           // the disk was empty and got a fresh header
  uint64_t records_replayed = 0;  // valid records applied, the header not included
  uint64_t torn_records = 0;      // incomplete or damaged records discarded from the tail
  uint64_t torn_bytes = 0;        // bytes discarded from the tail (the disk was rewritten)
};

class WalStorage final : public LogStore {
 public:
  // Opens the WAL on `disk`, replaying it; an empty disk gets a header for `cluster_id`.
  // A torn or damaged tail is discarded (see recovery_stats()) and the disk rewritten without
  // it, so that new records never follow garbage. Errors:
  //  - kFailedPrecondition: the WAL belongs to another cluster, or has a newer version;
  //  - kCorruption: a damaged record followed by valid ones (durable data was lost), a bad
  //    header, or records that do not describe a consistent log;
  //  - kIoError: reading or rewriting the disk failed.
  // `disk` is not owned and must outlive the WalStorage.
  static Result<std::unique_ptr<WalStorage>> Open(env::Disk* disk, uint64_t cluster_id);

  WalStorage(const WalStorage&) = delete;
  WalStorage& operator=(const WalStorage&) = delete;

  // What the Raft core reads (raft::Config::storage). Reflects every successful Save(),
  // synced or not: the application must not act on durability before Sync().
  const raft::Storage& raft_storage() const override { return memory_; }

  // Appends, in this order, the snapshot, the entries and the hard state (each optional) and
  // applies them to raft_storage(): the snapshot replaces the log, entries replace any of the
  // same or a higher index. Not durable until Sync(). Errors, with nothing written:
  //  - kSnapshotOutOfDate: snap is not newer than snapshot();
  //  - kInvalidArgument: entries not consecutive, leaving a gap after the log, or hs.commit
  //    beyond the resulting last index; a single entry or snapshot larger than 2 GiB;
  //  - kIoError: the WAL is failed (sticky, see above), or the disk append failed (it then is).
  Status Save(const std::optional<raft::Snapshot>& snap, const std::vector<raft::Entry>& entries,
              const std::optional<raft::HardState>& hs) override;

  // Makes everything saved so far durable. kIoError when failed (sticky).
  Status Sync() override;

  // Takes a snapshot at `index` with the membership `cs` and the state machine's image of
  // everything applied up to `index`, discards the entries up to it, and atomically rewrites
  // the disk as header + snapshot + hard state + the remaining entries. Errors:
  //  - kSnapshotOutOfDate: index <= snapshot().meta.index;
  //  - kInvalidArgument: index beyond the saved commit index (only applied entries can be
  //    folded into a snapshot), or the snapshot is larger than 2 GiB;
  //  - kIoError: the WAL is failed (sticky), or the rewrite failed (it then is).
  Status Compact(LogIndex index, const raft::ConfState& cs,
                 std::string state_machine_image) override;

  // The latest snapshot (saved or made by Compact); empty (index 0) if none.
  const raft::Snapshot& snapshot() const override { return snapshot_; }
  const raft::HardState& hard_state() const override { return memory_.hard_state(); }
  // The bytes of the WAL on the disk, synced or not.
  uint64_t wal_bytes() const { return wal_bytes_; }
  uint64_t cluster_id() const override { return cluster_id_; }
  const RecoveryStats& recovery_stats() const { return recovery_stats_; }
  // OK, or the kIoError every write returns since the disk failed.
  const Status& failure() const override { return failure_; }

 private:
  WalStorage(env::Disk* disk, uint64_t cluster_id) : disk_(disk), cluster_id_(cluster_id) {}

  Status Create();
  Status Recover(std::string_view content);
  Status ReplayRecords(std::string_view content);
  Status CheckHeader(std::string_view payload) const;
  Status ReplayEntries(std::string_view payload);
  Status ReplaySnapshot(std::string_view payload);
  Status ReplayHardState(std::string_view payload);
  Status CheckSave(const std::optional<raft::Snapshot>& snap,
                   const std::vector<raft::Entry>& entries,
                   const std::optional<raft::HardState>& hs) const;
  void ApplySnapshot(raft::Snapshot snap);
  Result<std::string> EncodeImage() const;
  // Records the first disk failure and returns the sticky error.
  Status Fail(const Status& cause);

  env::Disk* const disk_;
  const uint64_t cluster_id_;
  raft::MemoryStorage memory_;
  // A copy of memory_'s snapshot: MemoryStorage hands its snapshot out only by value.
  raft::Snapshot snapshot_;
  uint64_t wal_bytes_ = 0;
  RecoveryStats recovery_stats_;
  Status failure_;
};

}  // namespace synod::storage
