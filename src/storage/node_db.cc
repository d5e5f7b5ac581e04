#include "storage/node_db.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <utility>

#include "common/assert.h"
#include "storage/raft.pb.h"
#include "storage/rocks_format.h"
#include "storage/rocks_storage.h"

namespace synod::storage {

using format::FromRocks;
using format::MustStage;
using format::View;

namespace {

// "SYNODRDB" read as a little-endian u64: tells a Synod database from a WAL's header.
constexpr uint64_t kRocksMagic = 0x4244524F444F4E59ull;
// 1: one Raft group per database, unprefixed records. 2: many groups ("G" + group id + kind)
// and slot-prefixed data ("D" + slot + key).
constexpr uint32_t kRocksVersion = 2;

constexpr char kClusterKey[] = "C";
constexpr char kMetaPrefix = 'M';
constexpr size_t kMetaValueBytesMax = size_t{16} << 20;

std::string MetaKey(std::string_view name) {
  std::string key(1, kMetaPrefix);
  key.append(name);
  return key;
}

}  // namespace

NodeDb::NodeDb(std::string dir, uint64_t cluster_id, const RocksOptions& opts)
    : dir_(std::move(dir)),
      cluster_id_(cluster_id),
      env_(opts.env != nullptr ? opts.env : rocksdb::Env::Default()),
      sync_(opts.sync) {}

NodeDb::~NodeDb() {
  SYNOD_ASSERT_MSG(outstanding_.empty(), "NodeDb destroyed under a write");
  SYNOD_ASSERT_MSG(staged_groups_.empty(), "NodeDb destroyed before its groups");
  if (db_ == nullptr) return;
  // Nothing to do about a failed close: every acknowledged write was already synced, and the
  // next Open recovers from RocksDB's own log.
  const rocksdb::Status closed = db_->Close();
  (void)closed;
  db_.reset();
}

Result<std::unique_ptr<NodeDb>> NodeDb::Open(const std::string& dir, uint64_t cluster_id,
                                             RocksOptions opts) {
  std::unique_ptr<NodeDb> n(new NodeDb(dir, cluster_id, opts));
  SYNOD_RETURN_IF_ERROR(n->OpenDb());
  SYNOD_RETURN_IF_ERROR(n->CheckOrCreateClusterRecord());
  return n;
}

Status NodeDb::OpenDb() {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.env = env_;
  // RocksDB checks its files at open and, after a write error, stops accepting writes (sticky,
  // like our failure()).
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
    (void)env_->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow);
  }
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(options, dir_, &db);
  if (!s.ok()) return FromRocks(s, fmt::format("opening the database in {}", dir_));
  db_.reset(db);
  return Status::Ok();
}

Status NodeDb::CheckOrCreateClusterRecord() {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), kClusterKey, &value);
  if (s.ok()) {
    pb::WalHeader header;
    SYNOD_RETURN_IF_ERROR(
        format::ParseFramed(kClusterKey, View(value), "the cluster id record", &header));
    if (header.magic() != kRocksMagic) {
      return Status::Corruption(fmt::format("{} is not a Synod data directory (bad magic)", dir_));
    }
    if (header.version() != kRocksVersion) {
      return Status::FailedPrecondition(fmt::format(
          "data directory {} has format version {}; this build reads version {} (a directory "
          "written by another build: start this node with a new, empty data directory)",
          dir_, header.version(), kRocksVersion));
    }
    if (header.cluster_id() != cluster_id_) {
      return Status::FailedPrecondition(
          fmt::format("data directory {} belongs to cluster {:#018x}, not {:#018x}; refusing to "
                      "open another cluster's log",
                      dir_, header.cluster_id(), cluster_id_));
    }
    return Status::Ok();
  }
  if (!s.IsNotFound()) return FromRocks(s, "reading the cluster id record");
  // The cluster record is the first write to a new database, so data without it is not ours.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekToFirst();
  if (!it->status().ok()) return FromRocks(it->status(), "reading the database");
  if (it->Valid()) {
    return Status::Corruption(fmt::format(
        "data directory {} holds data but no cluster id record (not a Synod database?)", dir_));
  }
  pb::WalHeader header;
  header.set_magic(kRocksMagic);
  header.set_version(kRocksVersion);
  header.set_cluster_id(cluster_id_);
  rocksdb::WriteBatch batch;
  MustStage(batch.Put(kClusterKey, format::FrameMessage(kClusterKey, header)));
  SYNOD_RETURN_IF_ERROR(WriteNow(&batch));
  created_ = true;
  return Status::Ok();
}

void NodeDb::Staged(RocksStorage* group) {
  // A handful of groups stage in one round; a linear scan beats a set at that size.
  if (std::find(staged_groups_.begin(), staged_groups_.end(), group) == staged_groups_.end()) {
    staged_groups_.push_back(group);
  }
}

void NodeDb::Forget(RocksStorage* group) {
  std::erase(staged_groups_, group);
  for (auto& carried : outstanding_) {
    SYNOD_ASSERT_MSG(std::find(carried.begin(), carried.end(), group) == carried.end(),
                     "a RocksStorage destroyed under a write that carries its records");
  }
}

NodeDb::Write NodeDb::TakeWrite() {
  Write w;
  std::vector<RocksStorage*> groups = std::exchange(staged_groups_, {});
  if (!failure_.ok()) w.refused = failure_;  // the records are dropped: nothing may follow
  w.batch = std::move(staging_);
  staging_.Clear();  // a moved-from WriteBatch is not valid until cleared
  if (!w.refused.ok()) w.batch.Clear();
  for (RocksStorage* g : groups) w.saves += g->OnTaken();
  w.groups = groups.size();
  outstanding_.push_back(std::move(groups));
  return w;
}

Status NodeDb::WriteTaken(Write& w) const {
  if (!w.refused.ok()) return w.refused;
  if (w.batch.Count() == 0) return Status::Ok();
  if (write_failed_.load(std::memory_order_acquire)) {
    return Status::IoError(
        "an earlier write failed; later ones are refused so that what is durable stays a "
        "prefix of what was saved");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  const rocksdb::Status s = db_->Write(wo, &w.batch);
  if (!s.ok()) {
    write_failed_.store(true, std::memory_order_release);
    return FromRocks(s, "writing the Raft logs");
  }
  return Status::Ok();
}

void NodeDb::OnWritten(const Status& written) {
  SYNOD_ASSERT_MSG(!outstanding_.empty(), "OnWritten without a TakeWrite");
  const std::vector<RocksStorage*> groups = std::move(outstanding_.front());
  outstanding_.pop_front();
  if (!written.ok()) RecordFailure(written);
  for (RocksStorage* g : groups) g->OnWritten(written);
}

Status NodeDb::Sync() {
  if (!failure_.ok()) return failure_;
  SYNOD_ASSERT_MSG(outstanding_.empty(), "Sync while a write is outstanding");
  Write w = TakeWrite();
  const Status written = WriteTaken(w);
  OnWritten(written);
  return failure_;
}

Result<std::vector<GroupId>> NodeDb::StoredGroups() const {
  std::vector<GroupId> groups;
  const rocksdb::Slice upper("H");  // the first key after every "G" record
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  // One seek per group: after reading a group's first key, skip to the next group's range.
  it->Seek("G");
  while (it->Valid()) {
    const std::string_view key = View(it->key());
    if (key.size() < 1 + 8 + 1) {
      return Status::Corruption(
          fmt::format("malformed group record key '{}'", format::Printable(key)));
    }
    const uint64_t id = format::GetU64Be(key.data() + 1);
    if (id == 0) return Status::Corruption("a group record of group 0");
    std::string hard_state("G");
    format::AppendU64Be(id, &hard_state);
    hard_state.push_back('H');
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), hard_state, &value);
    if (s.ok()) {
      groups.emplace_back(id);
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "reading a group's hard state");
    }
    if (id == UINT64_MAX) break;
    std::string next("G");
    format::AppendU64Be(id + 1, &next);
    it->Seek(next);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing the stored groups");
  return groups;
}

Status NodeDb::PutMeta(std::string_view name, std::string_view value) {
  if (!failure_.ok()) return failure_;
  if (name.empty()) return Status::InvalidArgument("metadata name is empty");
  if (value.size() > kMetaValueBytesMax) {
    return Status::InvalidArgument(
        fmt::format("metadata '{}' of {} bytes exceeds 16 MiB", name, value.size()));
  }
  const std::string key = MetaKey(name);
  rocksdb::WriteBatch batch;
  MustStage(batch.Put(key, format::FrameBytes(key, value)));
  return WriteNow(&batch);
}

Result<std::optional<std::string>> NodeDb::GetMeta(std::string_view name) const {
  const std::string key = MetaKey(name);
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, fmt::format("reading metadata '{}'", name));
  Result<std::string_view> payload =
      format::Unframe(key, View(value), fmt::format("metadata '{}'", name));
  if (!payload.ok()) return payload.status();
  return std::optional<std::string>(std::string(*payload));
}

uint64_t NodeDb::disk_bytes() const {
  std::vector<rocksdb::Env::FileAttributes> files;
  if (!env_->GetChildrenFileAttributes(dir_, &files).ok()) return 0;
  uint64_t bytes = 0;
  for (const rocksdb::Env::FileAttributes& f : files) bytes += f.size_bytes;
  return bytes;
}

Status NodeDb::WriteNow(rocksdb::WriteBatch* batch) {
  if (!failure_.ok()) return failure_;
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  const rocksdb::Status s = db_->Write(wo, batch);
  if (s.ok()) return Status::Ok();
  write_failed_.store(true, std::memory_order_release);
  RecordFailure(FromRocks(s, "writing the database"));
  return failure_;
}

void NodeDb::RecordFailure(const Status& cause) {
  SYNOD_ASSERT(!cause.ok());
  if (!failure_.ok()) return;  // the first failure is the one that explains the rest
  failure_ = Status::IoError(
      fmt::format("Raft storage refuses writes after a disk failure: {}", cause.message()));
}

}  // namespace synod::storage
