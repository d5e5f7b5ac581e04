// Engine: the ordered key-value store under a node's NodeDb. Two implementations:
//  - RocksEngine: RocksDB in the node's data directory (the real node);
//  - MemEngine: an ordered map in memory (the simulator and pure tests).
// Everything above it — the node-wide write, every group's records and their checks — is the
// same code on both, so the simulator runs the real node's durability path.
//
// Contract: Write applies a batch atomically, and once it returns OK the batch is durable (a
// crash of the process or the machine keeps it; RocksEngine fsyncs unless told not to). A
// failed Write applies nothing. Reads see every successful Write. The batch type is RocksDB's
// WriteBatch: an in-memory record of puts, deletes and range deletions, no I/O.
//
// Thread-safety: Write may run on any thread (one at a time); reads may run concurrently with
// it. MemEngine: one thread only (the simulator's).
#pragma once

#include <rocksdb/write_batch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rocksdb {
class DB;
class Env;
}  // namespace rocksdb

namespace synod::storage {

// Called for each record of a scan, in key order; a non-OK status stops the scan.
using ScanFn = std::function<Status(std::string_view key, std::string_view value)>;
struct ScanRange {
  std::string begin;  // inclusive
  std::string end;    // exclusive
  ScanFn fn;
};

// A read-only view of an engine as of one point in time (RocksEngine: a RocksDB snapshot),
// readable from any thread while writes go on: what a streamed snapshot is read from
// (cluster/snapshot_stream.h). Released when the last reference goes; REQUIRES: the engine
// outlives it.
class EngineView {
 public:
  virtual ~EngineView() = default;
  virtual Result<std::optional<std::string>> Get(std::string_view key,
                                                 std::string_view what) const = 0;
  // Scans each range in turn (as Engine::Scan), as of the view's point in time.
  virtual Status Scan(const std::vector<ScanRange>& ranges) const = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Applies `batch` atomically and durably (see the file comment). Errors: kIoError (or the
  // code the store gave), with nothing applied.
  virtual Status Write(rocksdb::WriteBatch* batch) = 0;
  // The same without waiting for the disk: durable once a later Write returns (its sync covers
  // everything written before it), or lost with a crash of the machine before that. For bulk
  // data a later write makes count (a streamed snapshot's keys). Thread-safety as Write.
  virtual Status WriteNoSync(rocksdb::WriteBatch* batch) { return Write(batch); }
  // The value under `key`, or nullopt. `what` names the record in an error.
  virtual Result<std::optional<std::string>> Get(std::string_view key,
                                                 std::string_view what) const = 0;
  // Scans each range in turn, all as of one point in time. Returns the first non-OK status of
  // a callback, or the store's error.
  virtual Status Scan(const std::vector<ScanRange>& ranges) const = 0;
  // The first key in [begin, end), or nullopt.
  virtual Result<std::optional<std::string>> FirstKey(std::string_view begin,
                                                      std::string_view end) const = 0;
  // Bytes the store occupies (files on disk; held bytes in memory). Any thread.
  virtual uint64_t disk_bytes() const = 0;
  // A view of everything written so far. Owner thread (RocksEngine: any thread).
  virtual std::shared_ptr<const EngineView> NewView() const = 0;
};

struct RocksOptions {
  // RocksDB environment; nullptr = rocksdb::Env::Default(). Tests and the node's fault hook pass
  // a FaultInjectionFs-backed env (fault_fs.h). Not owned; must outlive the engine.
  rocksdb::Env* env = nullptr;
  // fsync on every write. False only for benchmarks that measure everything but the disk: a
  // crash of the machine may then lose acknowledged writes (a crash of the process does not).
  bool sync = true;
};

class RocksEngine final : public Engine {
 public:
  // Opens (creating if missing) the database in `dir`. kIoError (or RocksDB's code) on failure.
  static Result<std::unique_ptr<RocksEngine>> Open(const std::string& dir, RocksOptions opts = {});
  ~RocksEngine() override;

  Status Write(rocksdb::WriteBatch* batch) override;
  Status WriteNoSync(rocksdb::WriteBatch* batch) override;
  Result<std::optional<std::string>> Get(std::string_view key,
                                         std::string_view what) const override;
  Status Scan(const std::vector<ScanRange>& ranges) const override;
  Result<std::optional<std::string>> FirstKey(std::string_view begin,
                                              std::string_view end) const override;
  uint64_t disk_bytes() const override;
  std::shared_ptr<const EngineView> NewView() const override;

 private:
  RocksEngine(std::string dir, const RocksOptions& opts);
  Status WriteWith(rocksdb::WriteBatch* batch, bool sync);

  const std::string dir_;
  rocksdb::Env* const env_;
  const bool sync_;
  std::unique_ptr<rocksdb::DB> db_;
};

class MemEngine final : public Engine {
 public:
  MemEngine() = default;

  Status Write(rocksdb::WriteBatch* batch) override;
  Result<std::optional<std::string>> Get(std::string_view key,
                                         std::string_view what) const override;
  Status Scan(const std::vector<ScanRange>& ranges) const override;
  Result<std::optional<std::string>> FirstKey(std::string_view begin,
                                              std::string_view end) const override;
  uint64_t disk_bytes() const override { return bytes_; }
  // A copy of the records (O(records)): readable from any thread, as RocksEngine's is.
  std::shared_ptr<const EngineView> NewView() const override;

  // While set, every Write fails with kIoError "injected: No space left on device".
  void SetFailWrites(bool fail) { fail_writes_ = fail; }
  // Successful writes so far.
  uint64_t writes() const { return writes_; }
  // The records, for tests that damage or inspect them.
  std::map<std::string, std::string, std::less<>>& records() { return records_; }

 private:
  std::map<std::string, std::string, std::less<>> records_;
  uint64_t bytes_ = 0;
  uint64_t writes_ = 0;
  bool fail_writes_ = false;
};

}  // namespace synod::storage
