// LogStore: what a Replica needs from durable storage — Raft's log, hard state and snapshot,
// with the state machine's image inside the snapshot — and, optionally, the state machine's
// data itself with its applied index (persists_state()).
//
// Two implementations: WalStorage (a write-ahead log over one env::Disk; the simulator's) and
// GroupStorage (RocksDB; the real node's). Both serve Raft's reads from memory through
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
//  - A store that persists_state() also keeps the state machine's keys, client sessions and
//    applied index: StageState() adds them to the pending write, so they reach the disk in the
//    same atomic write as the Saves staged before them (or with the next Compact). A restart
//    then loads the state from the store (ForEachState) and replays only the entries after
//    state_applied(). Stores that do not (WalStorage) ignore StageState; the Replica restores
//    from the snapshot image and replays the log instead.
//
// Thread-safety: none; one thread owns a LogStore.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/slot.h"
#include "common/status.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace synod::storage {

// Changes to the persisted state machine, opaque to storage: keys, values and session bytes
// are whatever the state machine gives (kv::StateChanges converted by the Replica).
struct StateWrites {
  // Delete every stored key and session first (a snapshot replaced the whole state).
  bool reset = false;
  // Delete every stored key of these slots (first, last) first: a merge took them, and whatever
  // a replica of their old shard left here goes before the merged keys are written.
  std::optional<std::pair<uint16_t, uint16_t>> clear_slots;
  std::vector<std::pair<std::string, std::optional<std::string>>> data;   // nullopt = delete
  std::vector<std::pair<uint64_t, std::optional<std::string>>> sessions;  // by client id
  LogIndex applied;  // the applied index these changes bring the stored state to
  // The state machine's other replicated state (kv::StateMachine::EncodeMeta), when it changed.
  std::optional<std::string> meta;
};

// Called for each stored key (in key order) and each stored session (in client id order).
// Returning a non-OK status stops the iteration and is returned.
using StateDataFn = std::function<Status(std::string_view key, std::string_view value)>;
using StateSessionFn = std::function<Status(uint64_t client_id, std::string_view session)>;

// Whether `entries` may be appended after a log ending at `last` (what MemoryStorage::Append
// accepts): consecutive indexes, starting at 1 or later and no later than last+1 (no gap).
// kInvalidArgument naming the offending index otherwise. Shared by every LogStore's Save.
Status CheckEntriesFollow(const std::vector<raft::Entry>& entries, LogIndex last);

// The rules every LogStore's Save() checks before changing anything, given its current snapshot
// and in-memory log (MemoryStorage's own rules): kSnapshotOutOfDate when `snap` is not newer
// than `current` (a store without a snapshot takes any); kInvalidArgument when the entries do
// not follow (CheckEntriesFollow) or hs.commit lies beyond the resulting last index.
Status CheckSaveShape(const raft::Snapshot& current, const raft::Storage& memory,
                      const std::optional<raft::Snapshot>& snap,
                      const std::vector<raft::Entry>& entries,
                      const std::optional<raft::HardState>& hs);

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

  // Compact without the wait, for stores that persists_state(): the snapshot record and the
  // deletion of the folded entries join the pending write (after everything staged so far),
  // and the in-memory log is compacted once that write succeeded. Same checks and errors as
  // Compact (against the newest compaction staged or made). Default: Compact with no image.
  virtual Status StageCompact(LogIndex index, const raft::ConfState& cs) {
    return Compact(index, cs, std::string());
  }

  // The latest snapshot (saved or made by Compact); empty (index 0) if none.
  virtual const raft::Snapshot& snapshot() const = 0;
  virtual const raft::HardState& hard_state() const = 0;
  virtual uint64_t cluster_id() const = 0;
  // OK, or the kIoError every write returns since the disk failed.
  virtual const Status& failure() const = 0;

  // Whether this store keeps the state machine (see the class comment). Default: no.
  virtual bool persists_state() const { return false; }
  // Stages `w` after everything saved so far, for the next write (Sync or Compact). Does
  // nothing on a failed store (the next write reports it) or one that does not persist state.
  // REQUIRES: w.applied >= state_applied().
  virtual void StageState(const StateWrites& w) { (void)w; }
  // The applied index of the stored state as of Open plus every StageState since; 0 if the
  // store holds no state.
  virtual LogIndex state_applied() const { return {}; }
  // The meta bytes of the stored state as of Open plus every StageState since; "" if none
  // were ever stored (no state, or a store written before meta existed).
  virtual std::string state_meta() const { return {}; }
  // Stores that persists_state(): Compact may be given an empty image; Raft then gets its
  // snapshots from `source` when it must send one (raft::MemoryStorage::set_snapshot_source).
  virtual void SetSnapshotSource(raft::MemoryStorage::SnapshotSource source) { (void)source; }
  // The slots whose keys the stored state holds (a data shard's, after a split or a snapshot
  // changed them): later reads and resets of the state cover only these. Stores that keep no
  // state, or keep it under a prefix of their own, ignore it.
  virtual void SetStateSlots(SlotRange slots) { (void)slots; }
  // Reads the stored state (as of the last write) back; kCorruption when a record fails its
  // checksum or is malformed. Stores that keep no state call nothing and return OK.
  virtual Status ForEachState(const StateDataFn& data_fn, const StateSessionFn& session_fn) const {
    (void)data_fn;
    (void)session_fn;
    return Status::Ok();
  }

  // Streamed snapshots (cluster/snapshot_stream.h), for stores that persist the state and can
  // hand out a point-in-time view of it (GroupStorage); the others keep the image in the
  // snapshot. The sender's side: WantStateView asks for a view of the database at which the
  // stored state is exactly at `applied` (staged already), taken once the write carrying it is
  // durable; state_view_index() is then `applied` (0 wants none: a view not taken is dropped).
  // durable_state_applied(): the stored applied index as of the last durable write.
  virtual bool streams_state() const { return false; }
  virtual void WantStateView(LogIndex applied) { (void)applied; }
  virtual LogIndex state_view_index() const { return LogIndex(0); }
  virtual LogIndex durable_state_applied() const { return LogIndex(0); }
  // The receiver's side: stages the stored form of the state received by stream `stream`
  // (deposited by the host), after the Save of its snapshot, so that one write carries both.
  // kNotFound when nothing was deposited for it.
  virtual Status StageReceived(uint64_t stream) {
    (void)stream;
    return Status::NotFound("this store receives no streamed state");
  }
};

}  // namespace synod::storage
