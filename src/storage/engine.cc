#include "storage/engine.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>

#include <utility>

#include "common/assert.h"
#include "storage/rocks_format.h"

namespace synod::storage {

using format::FromRocks;
using format::View;

// ---- RocksEngine ----

RocksEngine::RocksEngine(std::string dir, const RocksOptions& opts)
    : dir_(std::move(dir)),
      env_(opts.env != nullptr ? opts.env : rocksdb::Env::Default()),
      sync_(opts.sync) {}

RocksEngine::~RocksEngine() {
  if (db_ == nullptr) return;
  // Nothing to do about a failed close: every acknowledged write was already synced, and the
  // next Open recovers from RocksDB's own log.
  const rocksdb::Status closed = db_->Close();
  (void)closed;
  db_.reset();
}

Result<std::unique_ptr<RocksEngine>> RocksEngine::Open(const std::string& dir, RocksOptions opts) {
  std::unique_ptr<RocksEngine> e(new RocksEngine(dir, opts));
  rocksdb::Options options;
  options.create_if_missing = true;
  options.env = e->env_;
  // RocksDB checks its files at open and, after a write error, stops accepting writes (sticky,
  // like NodeDb::failure()).
  options.paranoid_checks = true;
  // kPointInTimeRecovery (the default) drops a torn tail of RocksDB's own log, which only an
  // unsynced write can leave, as WalStorage does.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Bounds the informational LOG files RocksDB keeps in the directory.
  options.keep_log_file_num = 4;
  // A vector memtable: a write appends, and the memtable is sorted once when it is flushed.
  // The node reads its database only at start-up and when it builds a snapshot, so the
  // skiplist's sorted inserts (~10% of a leader's CPU under write load) bought nothing.
  options.memtable_factory.reset(new rocksdb::VectorRepFactory());
  options.allow_concurrent_memtable_write = false;  // only the skiplist supports it
  // Memtable flushes (a sort of the whole vector memtable) and compactions run at a lower CPU
  // priority than the core and storage threads: on a small machine a flush would otherwise
  // take a core from the write path for tens of milliseconds (the p99 of a write).
  for (auto pool : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW}) {
    (void)e->env_->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow);
  }
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) return FromRocks(s, fmt::format("opening the database in {}", dir));
  e->db_.reset(db);
  return e;
}

Status RocksEngine::Write(rocksdb::WriteBatch* batch) { return WriteWith(batch, sync_); }

Status RocksEngine::WriteNoSync(rocksdb::WriteBatch* batch) { return WriteWith(batch, false); }

Status RocksEngine::WriteWith(rocksdb::WriteBatch* batch, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  const rocksdb::Status s = db_->Write(wo, batch);
  if (!s.ok()) return FromRocks(s, "writing the database");
  return Status::Ok();
}

Result<std::optional<std::string>> RocksEngine::Get(std::string_view key,
                                                    std::string_view what) const {
  std::string value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, fmt::format("reading {}", what));
  return std::optional<std::string>(std::move(value));
}

Status RocksEngine::Scan(const std::vector<ScanRange>& ranges) const {
  // One database snapshot for every range: they are read as of one write.
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  Status result = Status::Ok();
  for (const ScanRange& r : ranges) {
    const rocksdb::Slice upper(r.end);
    rocksdb::ReadOptions ro;
    ro.snapshot = snap;
    ro.iterate_upper_bound = &upper;
    ro.fill_cache = false;  // scans happen at start-up and for snapshots: read once
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    // Bounded by the records in the range.
    for (it->Seek(r.begin); it->Valid() && result.ok(); it->Next()) {
      result = r.fn(View(it->key()), View(it->value()));
    }
    if (result.ok() && !it->status().ok()) result = FromRocks(it->status(), "scanning");
    if (!result.ok()) break;
  }
  db_->ReleaseSnapshot(snap);
  return result;
}

namespace {

class RocksView final : public EngineView {
 public:
  explicit RocksView(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) {}
  ~RocksView() override { db_->ReleaseSnapshot(snap_); }
  RocksView(const RocksView&) = delete;
  RocksView& operator=(const RocksView&) = delete;

  Result<std::optional<std::string>> Get(std::string_view key,
                                         std::string_view what) const override {
    rocksdb::ReadOptions ro;
    ro.snapshot = snap_;
    std::string value;
    const rocksdb::Status s = db_->Get(ro, rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, fmt::format("reading {}", what));
    return std::optional<std::string>(std::move(value));
  }

  Status Scan(const std::vector<ScanRange>& ranges) const override {
    for (const ScanRange& r : ranges) {
      const rocksdb::Slice upper(r.end);
      rocksdb::ReadOptions ro;
      ro.snapshot = snap_;
      ro.iterate_upper_bound = &upper;
      ro.fill_cache = false;  // read once, for another node
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
      Status result = Status::Ok();
      // Bounded by the records in the range.
      for (it->Seek(r.begin); it->Valid() && result.ok(); it->Next()) {
        result = r.fn(View(it->key()), View(it->value()));
      }
      if (result.ok() && !it->status().ok()) result = FromRocks(it->status(), "scanning");
      if (!result.ok()) return result;
    }
    return Status::Ok();
  }

 private:
  rocksdb::DB* const db_;
  const rocksdb::Snapshot* const snap_;
};

class MemView final : public EngineView {
 public:
  explicit MemView(std::map<std::string, std::string, std::less<>> records)
      : records_(std::move(records)) {}

  Result<std::optional<std::string>> Get(std::string_view key,
                                         std::string_view what) const override {
    (void)what;
    auto it = records_.find(key);
    if (it == records_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Status Scan(const std::vector<ScanRange>& ranges) const override {
    for (const ScanRange& r : ranges) {
      // Bounded by the records in the range.
      for (auto it = records_.lower_bound(r.begin);
           it != records_.end() && std::string_view(it->first) < std::string_view(r.end); ++it) {
        SYNOD_RETURN_IF_ERROR(r.fn(it->first, it->second));
      }
    }
    return Status::Ok();
  }

 private:
  const std::map<std::string, std::string, std::less<>> records_;
};

}  // namespace

std::shared_ptr<const EngineView> RocksEngine::NewView() const {
  return std::make_shared<RocksView>(db_.get());
}

std::shared_ptr<const EngineView> MemEngine::NewView() const {
  return std::make_shared<MemView>(records_);
}

Result<std::optional<std::string>> RocksEngine::FirstKey(std::string_view begin,
                                                         std::string_view end) const {
  const rocksdb::Slice upper(end.data(), end.size());
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  it->Seek(rocksdb::Slice(begin.data(), begin.size()));
  if (!it->status().ok()) return FromRocks(it->status(), "seeking");
  if (!it->Valid()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(View(it->key())));
}

uint64_t RocksEngine::disk_bytes() const {
  std::vector<rocksdb::Env::FileAttributes> files;
  if (!env_->GetChildrenFileAttributes(dir_, &files).ok()) return 0;
  uint64_t bytes = 0;
  for (const rocksdb::Env::FileAttributes& f : files) bytes += f.size_bytes;
  return bytes;
}

// ---- MemEngine ----

namespace {

// Applies a batch's records to the map, in order.
class MemApplier final : public rocksdb::WriteBatch::Handler {
 public:
  MemApplier(std::map<std::string, std::string, std::less<>>* records, uint64_t* bytes)
      : records_(records), bytes_(bytes) {}
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    Erase(View(key));
    *bytes_ += key.size() + value.size();
    records_->emplace(std::string(View(key)), std::string(View(value)));
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice& key) override {
    Erase(View(key));
    return rocksdb::Status::OK();
  }
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice& key) override {
    return DeleteCF(0, key);
  }
  rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice& begin,
                                const rocksdb::Slice& end) override {
    auto it = records_->lower_bound(View(begin));
    // Bounded by the records in the range.
    while (it != records_->end() && std::string_view(it->first) < View(end)) {
      *bytes_ -= it->first.size() + it->second.size();
      it = records_->erase(it);
    }
    return rocksdb::Status::OK();
  }

 private:
  void Erase(std::string_view key) {
    auto it = records_->find(key);
    if (it == records_->end()) return;
    *bytes_ -= it->first.size() + it->second.size();
    records_->erase(it);
  }
  std::map<std::string, std::string, std::less<>>* records_;
  uint64_t* bytes_;
};

}  // namespace

Status MemEngine::Write(rocksdb::WriteBatch* batch) {
  if (fail_writes_)
    return Status::IoError("writing the database: injected: No space left on device");
  MemApplier applier(&records_, &bytes_);
  const rocksdb::Status s = batch->Iterate(&applier);
  SYNOD_ASSERT_MSG(s.ok(), "a WriteBatch of ours did not replay");
  ++writes_;
  return Status::Ok();
}

Result<std::optional<std::string>> MemEngine::Get(std::string_view key,
                                                  std::string_view what) const {
  (void)what;
  auto it = records_.find(key);
  if (it == records_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status MemEngine::Scan(const std::vector<ScanRange>& ranges) const {
  for (const ScanRange& r : ranges) {
    // Bounded by the records in the range.
    for (auto it = records_.lower_bound(r.begin);
         it != records_.end() && std::string_view(it->first) < std::string_view(r.end); ++it) {
      SYNOD_RETURN_IF_ERROR(r.fn(it->first, it->second));
    }
  }
  return Status::Ok();
}

Result<std::optional<std::string>> MemEngine::FirstKey(std::string_view begin,
                                                       std::string_view end) const {
  auto it = records_.lower_bound(begin);
  if (it == records_.end() || std::string_view(it->first) >= end) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(it->first);
}

}  // namespace synod::storage
