// Storage: the Raft core's read-only view of the durable log (etcd's raft.Storage).
//
// The core reads persisted entries through this interface and never writes to it: the
// application persists what Ready hands it (entries, hard state, snapshot) into its own
// storage, which then serves these reads. MemoryStorage is the in-memory implementation used
// by tests, the simulator and benchmarks.
//
// Log positions: the storage holds a dummy entry at FirstIndex()-1 whose term is known (the
// last compacted entry, or the snapshot's last entry), followed by entries
// [FirstIndex(), LastIndex()].
//
// Thread-safety: the core calls these from its own thread only. MemoryStorage is not
// thread-safe; callers serialize access.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "common/status.h"
#include "raft/types.h"

namespace synod::raft {

class Storage {
 public:
  virtual ~Storage() = default;

  // The persisted hard state and membership at start-up.
  virtual Result<std::pair<HardState, ConfState>> InitialState() const = 0;

  // Entries in [lo, hi), stopping once their total payload exceeds max_bytes but always
  // returning at least one entry when lo < hi. Returns kCompacted if lo < FirstIndex(), and
  // kUnavailableEntries if hi > LastIndex()+1.
  virtual Result<std::vector<Entry>> Entries(LogIndex lo, LogIndex hi,
                                             uint64_t max_bytes) const = 0;

  // The term of entry i, for i in [FirstIndex()-1, LastIndex()]. kCompacted below that range,
  // kUnavailableEntries above it.
  virtual Result<Term> TermAt(LogIndex i) const = 0;

  virtual LogIndex FirstIndex() const = 0;
  virtual LogIndex LastIndex() const = 0;

  // The most recent snapshot. kUnavailable if one is being built (the core retries later).
  virtual Result<Snapshot> GetSnapshot() const = 0;
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  Result<std::pair<HardState, ConfState>> InitialState() const override;
  Result<std::vector<Entry>> Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const override;
  Result<Term> TermAt(LogIndex i) const override;
  LogIndex FirstIndex() const override;
  LogIndex LastIndex() const override;
  // The stored snapshot, or, when a source is set and a snapshot was taken, what the source
  // builds (see set_snapshot_source).
  Result<Snapshot> GetSnapshot() const override;

  // A host whose state machine persists itself (the real node) compacts without storing an
  // image (CreateSnapshot with empty data) and builds one only when Raft must send it: the
  // source returns a snapshot of the state as it is then — at an index at or after the stored
  // snapshot's, so the entries that follow it are still in the log.
  using SnapshotSource = std::function<Result<Snapshot>()>;
  void set_snapshot_source(SnapshotSource source) { source_ = std::move(source); }

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  const HardState& hard_state() const { return hard_state_; }

  // Replaces everything with the snapshot. Returns kSnapshotOutOfDate if it is older than the
  // current snapshot.
  Status ApplySnapshot(Snapshot snap);

  // Makes a snapshot of the state up to applied index i (data supplied by the state machine).
  // kSnapshotOutOfDate if i <= the current snapshot index.
  // REQUIRES: i <= LastIndex().
  Result<Snapshot> CreateSnapshot(LogIndex i, const ConfState* cs, std::string data);

  // Discards entries before compact_index; entry compact_index becomes the dummy entry.
  // kCompacted if already compacted that far.
  // REQUIRES: compact_index <= LastIndex().
  Status Compact(LogIndex compact_index);

  // Appends entries, truncating any conflicting suffix. Entries below FirstIndex() are
  // ignored. REQUIRES: entries contiguous and entries[0].index <= LastIndex()+1.
  Status Append(const std::vector<Entry>& entries);

 private:
  HardState hard_state_;
  Snapshot snapshot_;
  SnapshotSource source_;
  // ents_[0] is the dummy entry at FirstIndex()-1 (term known, no data).
  std::vector<Entry> ents_;
};

}  // namespace synod::raft
