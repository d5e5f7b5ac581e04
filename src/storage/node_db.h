// NodeDb: a node's one database, shared by every Raft group the node hosts, and the node-wide
// write that makes all of their changes durable together. The database is an Engine: RocksDB
// in the real node, an in-memory map in the simulator (engine.h); all of this runs on both.
//
// Every group's GroupStorage stages its records (log entries, hard state, snapshots, state
// machine changes) into the NodeDb's one staging batch, in the order the core thread makes
// them. A node write takes that batch whole — whatever every group staged since the last one —
// and writes it as one atomic RocksDB write with one fsync (group commit across groups): a
// round in which 50 groups append costs one fsync, not 50.
//
// Layout (every value is [u32 crc][payload], the CRC-32C of the key then the payload):
//   "C"                                 pb::WalHeader: magic "SYNODRDB", version, cluster id
//   "M" + name                          node metadata (PutMeta), an opaque value
//   "G" + group (u64 BE) + kind ...     one group's Raft state (see group_storage.h)
//   "D" + slot (u16 BE) + key           a key of a shard's state machine (group_storage.h)
// A group's Raft records are one contiguous range, and so is a slot's data whichever group owns
// the slot: a group is dropped with one range deletion, and moving or splitting a shard moves
// slot ranges without rewriting keys.
//
// Durability: what is staged is durable only once a node write carrying it returned OK.
// Writes happen in TakeWrite order, so after a crash the database holds a prefix of the staged
// records, write by write. Staged records not yet taken when the NodeDb is destroyed are
// dropped, as in a crash.
//
// Failure is node-wide and sticky: after one failed write every later write of every group is
// refused (kIoError) without touching the database, so that what is durable stays a prefix.
// The node must be restarted to recover.
//
// Thread-safety: one owner thread (the node's core thread) calls every method, except
// WriteTaken (any thread, one at a time, in TakeWrite order: it touches only the thread-safe
// rocksdb::DB), GetMeta and disk_bytes (any thread). Each TakeWrite is matched by one
// OnWritten on the owner thread, in the same order.
#pragma once

#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "storage/engine.h"

namespace synod::storage {

class GroupStorage;

class NodeDb {
 public:
  // One node write: the staging batch as TakeWrite found it. Moved between threads.
  struct Write {
    // Batches staged whole (StageBatch) and what was staged between them, in order; written
    // before `batch`, all as one atomic write (WriteTaken joins them on its thread).
    std::vector<rocksdb::WriteBatch> segments;
    rocksdb::WriteBatch batch;
    uint64_t saves = 0;   // the Saves of every group it carries (group-commit size, metrics)
    uint64_t groups = 0;  // how many groups staged records into it
    // Set when the database had already failed at TakeWrite: WriteTaken returns it and writes
    // nothing.
    Status refused;
  };

  // Opens (creating if missing) the RocksDB database in `dir` for `cluster_id`. Errors:
  //  - kFailedPrecondition: the directory belongs to another cluster, or has another format
  //    version (a database of an older build: start that node with a fresh data directory);
  //  - kCorruption: the cluster record is damaged, or the directory holds data but no record;
  //  - kIoError (or another code RocksDB gave): opening or writing the database failed.
  static Result<std::unique_ptr<NodeDb>> Open(const std::string& dir, uint64_t cluster_id,
                                              RocksOptions opts = {});
  // The same over an engine the caller keeps (the simulator's, which outlives a node's crash):
  // `name` stands for the directory in messages. REQUIRES: `engine` outlives the NodeDb.
  static Result<std::unique_ptr<NodeDb>> Open(Engine* engine, std::string name,
                                              uint64_t cluster_id);
  // REQUIRES: no write outstanding and no GroupStorage of this database left.
  ~NodeDb();
  NodeDb(const NodeDb&) = delete;
  NodeDb& operator=(const NodeDb&) = delete;

  uint64_t cluster_id() const { return cluster_id_; }
  const std::string& dir() const { return dir_; }
  // Whether Open created the database (it was empty).
  bool created() const { return created_; }
  // OK, or the kIoError that every write returns since one failed.
  const Status& failure() const { return failure_; }

  // Whether any group staged records since the last TakeWrite.
  bool has_staged() const {
    return !staged_groups_.empty() || staging_.Count() > 0 || !segments_.empty();
  }
  // Takes everything staged (by every group) as one write, leaving nothing staged; each group
  // that staged records learns that they ride on this write. On a failed database the result
  // carries the failure in `refused` and no batch.
  Write TakeWrite();
  // Writes `w` as one atomic write, fsynced when RocksOptions::sync. Any thread, one at a time,
  // in TakeWrite order. OK without writing when `w` is empty. Returns `w.refused` when set, and
  // kIoError without writing once an earlier write failed.
  Status WriteTaken(Write& w) const;
  // Owner thread: reports WriteTaken's result for the oldest outstanding write to the groups
  // it carried. A failure becomes the node's sticky failure().
  void OnWritten(const Status& written);
  // TakeWrite, WriteTaken and OnWritten at once on the owner thread; failure() afterwards.
  // REQUIRES: no write outstanding.
  Status Sync();
  // Writes taken and not yet reported.
  size_t writes_outstanding() const { return outstanding_.size(); }

  // The groups that have a hard state record in the database, in id order: the groups this
  // node held a replica of when it stopped. Errors: kCorruption (a malformed group key),
  // another code if RocksDB cannot read.
  Result<std::vector<GroupId>> StoredGroups() const;

  // Node-level metadata, outside every Raft log: a durable (synced), checksummed write of
  // `value` under `name`. Errors: kInvalidArgument (empty name, value over 16 MiB), kIoError
  // (failed, sticky). Independent of the groups' records: it may be written while a node write
  // is outstanding.
  Status PutMeta(std::string_view name, std::string_view value);
  // The value last put under `name`, or nullopt. kCorruption if it fails its checksum; another
  // code if RocksDB cannot read it. Any thread.
  Result<std::optional<std::string>> GetMeta(std::string_view name) const;
  // The bytes of the files in the data directory (SST files, WAL, manifest, ...), for metrics;
  // 0 if the directory cannot be listed. Any thread.
  uint64_t disk_bytes() const;

  // The database, for the GroupStorages of this node and for tests.
  Engine& engine() const { return *engine_; }

 private:
  friend class GroupStorage;

  NodeDb(std::string dir, uint64_t cluster_id);
  Status CheckOrCreateClusterRecord();
  // Where a group stages its records; the group calls Staged(itself) once per write.
  rocksdb::WriteBatch& staging() { return staging_; }
  // Stages a whole batch after everything staged so far, without copying it here (a streamed
  // snapshot's state, built off the core thread: WriteTaken joins it with the rest).
  void StageBatch(rocksdb::WriteBatch batch);
  void Staged(GroupStorage* group);
  // A GroupStorage going away: it must not be named by a later TakeWrite.
  void Forget(GroupStorage* group);
  // Writes `batch` from the owner thread at once (Open's records, PutMeta); a failure becomes
  // the sticky failure.
  Status WriteNow(rocksdb::WriteBatch* batch);
  // Records the first write failure as the sticky kIoError.
  void RecordFailure(const Status& cause);

  const std::string dir_;
  const uint64_t cluster_id_;
  std::unique_ptr<Engine> owned_engine_;
  Engine* engine_ = nullptr;
  bool created_ = false;
  rocksdb::WriteBatch staging_;
  std::vector<rocksdb::WriteBatch> segments_;  // see StageBatch and Write::segments
  // The groups that staged into staging_, in the order they first did; each once.
  std::vector<GroupStorage*> staged_groups_;
  // The groups each outstanding write carries, oldest first.
  std::deque<std::vector<GroupStorage*>> outstanding_;
  // Set by whichever thread sees a write fail, so that no later write lands after it.
  mutable std::atomic<bool> write_failed_{false};
  Status failure_;
};

}  // namespace synod::storage
