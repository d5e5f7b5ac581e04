// LogStore: what a Replica needs from durable storage — Raft's log, hard state and snapshot,
// with the state machine's image inside the snapshot.
//
// Two implementations: WalStorage (a write-ahead log over one env::Disk; the simulator's) and
// RocksStorage (RocksDB; the real node's). Both serve Raft's reads from memory through
// raft_storage() and share one contract:
//  - Save() applies a Ready's snapshot, entries and hard state to raft_storage() at once and
//    stages them for the disk; nothing is durable until Sync() returns OK.
//  - After a crash, reopening recovers every synced change and possibly some later ones,
//    always a prefix of what was saved, Save by Save (a Save's entries and hard state are
//    never torn apart).
//  - Compact() folds the applied prefix of the log into a snapshot carrying the state
//    machine's image, durably, and drops the folded entries.
//  - Failure is sticky: after any disk error every later Save, Sync and Compact returns
//    kIoError without touching the disk; the node refuses writes until restarted.
//
// Thread-safety: none; one thread owns a LogStore.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace synod::storage {

class LogStore {
 public:
  virtual ~LogStore() = default;

  // What the Raft core reads (raft::Config::storage); reflects every successful Save().
  virtual const raft::Storage& raft_storage() const = 0;

  // Applies, in this order, the snapshot, the entries and the hard state (each optional):
  // the snapshot replaces the log, entries replace any of the same or a higher index.
  // Errors, with nothing changed: kSnapshotOutOfDate (snap not newer than snapshot()),
  // kInvalidArgument (entries not consecutive, a gap after the log, hs.commit beyond the last
  // index, a record too large), kIoError (failed, sticky).
  virtual Status Save(const std::optional<raft::Snapshot>& snap,
                      const std::vector<raft::Entry>& entries,
                      const std::optional<raft::HardState>& hs) = 0;

  // Makes everything saved so far durable. kIoError when failed (sticky).
  virtual Status Sync() = 0;

  // Takes a snapshot at `index` (<= the saved commit index, > snapshot().meta.index) with the
  // membership `cs` and the state machine's image of everything applied up to `index`, and
  // discards the entries up to it. Durable when it returns OK.
  virtual Status Compact(LogIndex index, const raft::ConfState& cs,
                         std::string state_machine_image) = 0;

  // The latest snapshot (saved or made by Compact); empty (index 0) if none.
  virtual const raft::Snapshot& snapshot() const = 0;
  virtual const raft::HardState& hard_state() const = 0;
  virtual uint64_t cluster_id() const = 0;
  // OK, or the kIoError every write returns since the disk failed.
  virtual const Status& failure() const = 0;
};

}  // namespace synod::storage
