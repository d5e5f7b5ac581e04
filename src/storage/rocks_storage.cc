#include "storage/rocks_storage.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>

#include <limits>
#include <utility>

#include "common/assert.h"
#include "storage/crc32c.h"
#include "storage/raft.pb.h"
#include "storage/raft_codec.h"

namespace synod::storage {
namespace {

// "SYNODRDB" read as a little-endian u64: tells a Synod database from a WAL's header.
constexpr uint64_t kRocksMagic = 0x4244524F444F4E59ull;
constexpr uint32_t kRocksVersion = 1;

constexpr char kClusterKey[] = "C";
constexpr char kHardStateKey[] = "H";
constexpr char kSnapshotKey[] = "S";
constexpr char kEntryPrefix = 'E';
// The first key after every entry key: the exclusive end of the entries' range. No kind of
// record uses this prefix.
constexpr char kEntryRangeEnd[] = "F";
constexpr char kMetaPrefix = 'M';
// The persisted state machine: its applied index, its keys ("D" + key) and its client sessions
// ("T" + client id, u64 BE; "S" is the snapshot record). Each range ends at the next letter,
// which no record uses as a prefix of a state key.
constexpr char kStateAppliedKey[] = "A";
constexpr char kStateMetaKey[] = "B";
constexpr char kStateDataPrefix[] = "D";
constexpr char kStateDataEnd[] = "E";  // below every entry key ("E" + 8 bytes)
constexpr char kStateSessionPrefix[] = "T";
constexpr char kStateSessionEnd[] = "U";
constexpr size_t kSessionKeyBytes = 1 + 8;
constexpr size_t kEntryKeyBytes = 1 + 8;

constexpr size_t kCrcBytes = 4;
// Protocol Buffers cannot serialize or parse a message of 2 GiB or more.
constexpr size_t kProtoBytesMax = static_cast<size_t>(std::numeric_limits<int>::max());
// A generous bound on an entry's encoding other than its data (three varints and two tags).
constexpr size_t kEntryOverheadBytesMax = 64;
constexpr size_t kMetaValueBytesMax = size_t{16} << 20;
// Open() hands entries to the MemoryStorage in runs of this many, so that loading a long log
// does not hold it twice in memory.
constexpr size_t kLoadRunEntriesMax = 4096;

// The one conversion of RocksDB's status into ours. `context` says what was being done.
Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  SYNOD_ASSERT(!s.ok());
  const std::string message = fmt::format("{}: {}", context, s.ToString());
  if (s.IsCorruption()) return Status::Corruption(message);
  if (s.IsNotFound()) return Status::NotFound(message);
  if (s.IsInvalidArgument() || s.IsNotSupported()) return Status::InvalidArgument(message);
  return Status::IoError(message);
}

void PutU32Le(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint32_t GetU32Le(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(in[i])} << (8 * i);
  return v;
}

uint32_t FrameCrc(std::string_view key, std::string_view payload) {
  return Crc32cExtend(Crc32c(key), payload);
}

// A framed value: kCrcBytes of placeholder that SealFrame fills, then the payload.
std::string NewFrame() { return std::string(kCrcBytes, '\0'); }

void SealFrame(std::string_view key, std::string* frame) {
  SYNOD_ASSERT(frame->size() >= kCrcBytes);
  const std::string_view payload = std::string_view(*frame).substr(kCrcBytes);
  PutU32Le(FrameCrc(key, payload), frame->data());
}

std::string FrameMessage(std::string_view key, const google::protobuf::MessageLite& m) {
  SYNOD_ASSERT_MSG(m.ByteSizeLong() < kProtoBytesMax, "record too large, not checked");
  std::string frame = NewFrame();
  const bool serialized = m.AppendToString(&frame);
  SYNOD_ASSERT_MSG(serialized, "serializing a record failed");
  SealFrame(key, &frame);
  return frame;
}

// The payload of a framed value read under `key`; kCorruption naming `what` if it is damaged.
Result<std::string_view> Unframe(std::string_view key, std::string_view value,
                                 std::string_view what) {
  if (value.size() < kCrcBytes) {
    return Status::Corruption(fmt::format("{} is truncated ({} bytes)", what, value.size()));
  }
  const std::string_view payload = value.substr(kCrcBytes);
  if (GetU32Le(value.data()) != FrameCrc(key, payload)) {
    return Status::Corruption(fmt::format("{} failed its checksum", what));
  }
  return payload;
}

// Checks and parses a framed protobuf value; kCorruption naming `what` if anything is wrong.
Status ParseFramed(std::string_view key, std::string_view value, std::string_view what,
                   google::protobuf::MessageLite* m) {
  Result<std::string_view> payload = Unframe(key, value, what);
  if (!payload.ok()) return payload.status();
  if (payload->size() >= kProtoBytesMax ||
      !m->ParseFromArray(payload->data(), static_cast<int>(payload->size()))) {
    return Status::Corruption(fmt::format("{} is not a valid {}", what, m->GetTypeName()));
  }
  return Status::Ok();
}

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

std::string MetaKey(std::string_view name) {
  std::string key(1, kMetaPrefix);
  key.append(name);
  return key;
}

std::string StateDataKey(std::string_view key) {
  std::string k(kStateDataPrefix);
  k.append(key);
  return k;
}

std::string StateSessionKey(uint64_t client_id) {
  std::string key(kSessionKeyBytes, '\0');
  key[0] = kStateSessionPrefix[0];
  for (size_t i = 1; i < kSessionKeyBytes; ++i) {
    key[i] = static_cast<char>((client_id >> (8 * (kSessionKeyBytes - 1 - i))) & 0xFF);
  }
  return key;
}

// A state key for error messages: printable bytes as they are, others as \xNN, at most 64.
std::string Printable(std::string_view key) {
  std::string out;
  for (size_t i = 0; i < key.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (key.size() > 64) out += "...";
  return out;
}

std::string FrameBytes(std::string_view key, std::string_view payload) {
  std::string frame = NewFrame();
  frame.append(payload);
  SealFrame(key, &frame);
  return frame;
}

std::string FrameApplied(LogIndex applied) {
  char payload[8];
  for (int i = 0; i < 8; ++i) payload[i] = static_cast<char>((applied.value() >> (8 * i)) & 0xFF);
  return FrameBytes(kStateAppliedKey, std::string_view(payload, sizeof(payload)));
}

Result<uint64_t> EntryKeyIndex(std::string_view key) {
  if (key.size() != kEntryKeyBytes || key[0] != kEntryPrefix) {
    return Status::Corruption(fmt::format("malformed log entry key of {} bytes", key.size()));
  }
  uint64_t index = 0;
  for (size_t i = 1; i < kEntryKeyBytes; ++i) index = (index << 8) | static_cast<uint8_t>(key[i]);
  return index;
}

// The entry stored under `key`, checked against its key's index.
Result<raft::Entry> DecodeEntry(std::string_view key, std::string_view value) {
  Result<uint64_t> index = EntryKeyIndex(key);
  if (!index.ok()) return index.status();
  const std::string what = fmt::format("log entry {}", *index);
  pb::Entry p;
  SYNOD_RETURN_IF_ERROR(ParseFramed(key, value, what, &p));
  Result<raft::Entry> e = FromProto(std::move(p));
  if (!e.ok()) return Status::Corruption(fmt::format("{}: {}", what, e.status().message()));
  if (e->index != LogIndex(*index)) {
    return Status::Corruption(fmt::format("{} holds index {}", what, e->index.value()));
  }
  return e;
}

Result<std::string> EncodeSnapshot(const raft::Snapshot& snap) {
  pb::Snapshot p;
  ToProto(snap, &p);
  const size_t bytes = p.ByteSizeLong();
  if (bytes >= kProtoBytesMax) {
    return Status::InvalidArgument(fmt::format("snapshot of {} bytes reaches 2 GiB", bytes));
  }
  return FrameMessage(kSnapshotKey, p);
}

void MustStage(const rocksdb::Status& s) {
  // A WriteBatch without max_bytes refuses only values of 4 GiB or more, which Save rules out.
  SYNOD_ASSERT_MSG(s.ok(), "staging a checked record in a WriteBatch failed");
}

}  // namespace

std::string RocksStorage::EntryKey(LogIndex index) {
  std::string key(kEntryKeyBytes, '\0');
  key[0] = kEntryPrefix;
  const uint64_t v = index.value();
  for (size_t i = 1; i < kEntryKeyBytes; ++i) {
    key[i] = static_cast<char>((v >> (8 * (kEntryKeyBytes - 1 - i))) & 0xFF);
  }
  return key;
}

RocksStorage::RocksStorage(std::string dir, uint64_t cluster_id, const RocksOptions& opts)
    : dir_(std::move(dir)),
      cluster_id_(cluster_id),
      env_(opts.env != nullptr ? opts.env : rocksdb::Env::Default()),
      sync_(opts.sync) {}

RocksStorage::~RocksStorage() {
  SYNOD_ASSERT_MSG(writes_outstanding_ == 0, "RocksStorage destroyed under a PendingWrite");
  if (db_ == nullptr) return;
  // Nothing to do about a failed close: every acknowledged write was already synced, and the
  // next Open recovers from RocksDB's own log.
  const rocksdb::Status closed = db_->Close();
  (void)closed;
  db_.reset();
}

Result<std::unique_ptr<RocksStorage>> RocksStorage::Open(const std::string& dir,
                                                         uint64_t cluster_id, RocksOptions opts) {
  std::unique_ptr<RocksStorage> s(new RocksStorage(dir, cluster_id, opts));
  SYNOD_RETURN_IF_ERROR(s->OpenDb());
  SYNOD_RETURN_IF_ERROR(s->CheckOrCreateClusterRecord());
  if (s->recovery_stats_.created) return s;
  SYNOD_RETURN_IF_ERROR(s->LoadSnapshot());
  SYNOD_RETURN_IF_ERROR(s->LoadHardState());
  SYNOD_RETURN_IF_ERROR(s->LoadEntries());
  // Entries and their hard state are written in one batch, so even a crash cannot leave a
  // commit index beyond the log: this is damage, or a log edited by hand.
  const LogIndex last = s->memory_.LastIndex();
  if (s->hard_state().commit > last) {
    return Status::Corruption(fmt::format("hard state commit index {} is beyond the last index {}",
                                          s->hard_state().commit.value(), last.value()));
  }
  SYNOD_RETURN_IF_ERROR(s->LoadStateApplied());
  if (s->recovery_stats_.stale_entries > 0) SYNOD_RETURN_IF_ERROR(s->DeleteStaleEntries());
  return s;
}

Status RocksStorage::OpenDb() {
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

Status RocksStorage::CheckOrCreateClusterRecord() {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), kClusterKey, &value);
  if (s.ok()) {
    pb::WalHeader header;
    SYNOD_RETURN_IF_ERROR(ParseFramed(kClusterKey, View(value), "the cluster id record", &header));
    if (header.magic() != kRocksMagic) {
      return Status::Corruption(fmt::format("{} is not a Synod data directory (bad magic)", dir_));
    }
    if (header.version() != kRocksVersion) {
      return Status::FailedPrecondition(
          fmt::format("data directory {} has format version {}; this build reads version {}", dir_,
                      header.version(), kRocksVersion));
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
  MustStage(batch.Put(kClusterKey, FrameMessage(kClusterKey, header)));
  SYNOD_RETURN_IF_ERROR(WriteNow(&batch));
  recovery_stats_.created = true;
  return Status::Ok();
}

Status RocksStorage::LoadSnapshot() {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), kSnapshotKey, &value);
  if (s.IsNotFound()) return Status::Ok();
  if (!s.ok()) return FromRocks(s, "reading the snapshot");
  pb::Snapshot p;
  SYNOD_RETURN_IF_ERROR(ParseFramed(kSnapshotKey, View(value), "the snapshot", &p));
  value.Reset();  // the image may be large; hold it once
  Result<raft::Snapshot> snap = FromProto(std::move(p));
  if (!snap.ok()) {
    return Status::Corruption(fmt::format("the snapshot: {}", snap.status().message()));
  }
  snapshot_ = *snap;
  const Status applied = memory_.ApplySnapshot(std::move(*snap));
  SYNOD_ASSERT_MSG(applied.ok(), "a fresh MemoryStorage refused a snapshot");
  return Status::Ok();
}

Status RocksStorage::LoadHardState() {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), kHardStateKey, &value);
  if (s.IsNotFound()) return Status::Ok();
  if (!s.ok()) return FromRocks(s, "reading the hard state");
  pb::HardState p;
  SYNOD_RETURN_IF_ERROR(ParseFramed(kHardStateKey, View(value), "the hard state", &p));
  Result<raft::HardState> hs = FromProto(p);
  if (!hs.ok()) {
    return Status::Corruption(fmt::format("the hard state: {}", hs.status().message()));
  }
  memory_.SetHardState(*hs);
  return Status::Ok();
}

Status RocksStorage::LoadEntries() {
  const LogIndex snap_index = snapshot_.meta.index;
  LogIndex next = snap_index + 1;
  Term prev_term = snapshot_.meta.term;
  std::vector<raft::Entry> run;
  const rocksdb::Slice upper(kEntryRangeEnd);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  ro.fill_cache = false;  // read once, at start-up
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  // Bounded by the entries in the database.
  for (it->Seek(EntryKey(LogIndex(0))); it->Valid(); it->Next()) {
    Result<raft::Entry> e = DecodeEntry(View(it->key()), View(it->value()));
    if (!e.ok()) return e.status();
    // Left by a crash between writing a snapshot and deleting what it covers (RocksStorage
    // writes both at once; kept for databases written otherwise). Raft never reads them.
    if (e->index <= snap_index) {
      ++recovery_stats_.stale_entries;
      continue;
    }
    if (e->index != next) {
      return Status::Corruption(fmt::format("log entry {} is missing (the next stored is {})",
                                            next.value(), e->index.value()));
    }
    if (e->term < prev_term) {
      return Status::Corruption(fmt::format("log entry {} has term {}, below the term {} before it",
                                            next.value(), e->term.value(), prev_term.value()));
    }
    prev_term = e->term;
    ++next;
    run.push_back(std::move(*e));
    if (run.size() >= kLoadRunEntriesMax) {
      SYNOD_RETURN_IF_ERROR(memory_.Append(run));
      run.clear();
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the log entries");
  SYNOD_RETURN_IF_ERROR(memory_.Append(run));
  recovery_stats_.entries_loaded = next.value() - snap_index.value() - 1;
  SYNOD_ASSERT(memory_.LastIndex() == next - 1);
  return Status::Ok();
}

Status RocksStorage::DeleteStaleEntries() {
  rocksdb::WriteBatch batch;
  MustStage(batch.DeleteRange(EntryKey(LogIndex(0)), EntryKey(snapshot_.meta.index + 1)));
  return WriteNow(&batch);
}

Status RocksStorage::CheckSave(const std::optional<raft::Snapshot>& snap,
                               const std::vector<raft::Entry>& entries,
                               const std::optional<raft::HardState>& hs) const {
  SYNOD_RETURN_IF_ERROR(CheckSaveShape(snapshot_, memory_, snap, entries, hs));
  for (const raft::Entry& e : entries) {
    if (e.data.size() >= kProtoBytesMax - kEntryOverheadBytesMax) {
      return Status::InvalidArgument(
          fmt::format("entry {} of {} bytes reaches 2 GiB", e.index.value(), e.data.size()));
    }
  }
  return Status::Ok();
}

Status RocksStorage::Save(const std::optional<raft::Snapshot>& snap,
                          const std::vector<raft::Entry>& entries,
                          const std::optional<raft::HardState>& hs) {
  if (!failure_.ok()) return failure_;
  SYNOD_RETURN_IF_ERROR(CheckSave(snap, entries, hs));
  std::string snap_value;
  if (snap.has_value()) {
    Result<std::string> v = EncodeSnapshot(*snap);
    if (!v.ok()) return v.status();
    snap_value = std::move(*v);
  }
  // Nothing below can fail: the Save is staged whole or not at all.
  const LogIndex first_kept = snap.has_value() ? snap->meta.index + 1 : memory_.FirstIndex();
  const LogIndex old_last = snap.has_value() ? snap->meta.index : memory_.LastIndex();
  if (snap.has_value()) {
    MustStage(pending_.Put(kSnapshotKey, snap_value));
    // The snapshot replaces the whole log (MemoryStorage::ApplySnapshot), not only its prefix.
    MustStage(pending_.DeleteRange(EntryKey(LogIndex(0)), kEntryRangeEnd));
  }
  StageEntries(entries, first_kept, old_last);
  if (hs.has_value()) {
    pb::HardState p;
    ToProto(*hs, &p);
    MustStage(pending_.Put(kHardStateKey, FrameMessage(kHardStateKey, p)));
  }
  ++pending_saves_;

  if (snap.has_value()) {
    snapshot_ = *snap;
    const Status applied = memory_.ApplySnapshot(*snap);
    SYNOD_ASSERT_MSG(applied.ok(), "snapshot checked as newer was refused");
  }
  const Status appended = memory_.Append(entries);
  SYNOD_ASSERT_MSG(appended.ok(), "entries checked by CheckSave were refused");
  if (hs.has_value()) memory_.SetHardState(*hs);
  return Status::Ok();
}

void RocksStorage::StageEntries(const std::vector<raft::Entry>& entries, LogIndex first_kept,
                                LogIndex old_last) {
  // Entries below the log's first index are already in the snapshot; MemoryStorage ignores
  // them, and so does the disk.
  if (entries.empty() || entries.back().index < first_kept) return;
  const LogIndex new_last = entries.back().index;
  // A batch applies its operations in order, so the entries put below survive this deletion
  // of the overwritten suffix's higher indexes.
  if (new_last < old_last) {
    MustStage(pending_.DeleteRange(EntryKey(new_last + 1), EntryKey(old_last + 1)));
  }
  pb::Entry p;
  for (const raft::Entry& e : entries) {
    if (e.index < first_kept) continue;
    ToProto(e, &p);
    const std::string key = EntryKey(e.index);
    MustStage(pending_.Put(key, FrameMessage(key, p)));
  }
}

Status RocksStorage::Sync() {
  if (!failure_.ok()) return failure_;
  SYNOD_ASSERT_MSG(writes_outstanding_ == 0, "Sync while a PendingWrite is outstanding");
  PendingWrite w = TakePending();
  const Status written = WritePending(w);
  OnPendingWritten(written);
  return failure_;
}

RocksStorage::PendingWrite RocksStorage::TakePending() {
  PendingWrite w;
  ++writes_outstanding_;
  if (!failure_.ok()) {
    w.refused = failure_;
    return w;
  }
  w.batch = std::move(pending_);
  pending_.Clear();  // a moved-from WriteBatch is not valid until cleared
  w.saves = std::exchange(pending_saves_, 0);
  compactions_in_flight_.push_back(std::exchange(staged_compaction_, std::nullopt));
  return w;
}

Status RocksStorage::WritePending(PendingWrite& w) const {
  if (!w.refused.ok()) return w.refused;
  if (w.batch.Count() == 0) return Status::Ok();
  if (write_failed_.load(std::memory_order_acquire)) {
    return Status::IoError(
        "an earlier write failed; later ones are refused so that what is "
        "durable stays a prefix of what was saved");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  const rocksdb::Status s = db_->Write(wo, &w.batch);
  if (!s.ok()) {
    write_failed_.store(true, std::memory_order_release);
    return FromRocks(s, "writing the Raft log");
  }
  return Status::Ok();
}

void RocksStorage::OnPendingWritten(const Status& written) {
  SYNOD_ASSERT_MSG(writes_outstanding_ > 0, "OnPendingWritten without a TakePending");
  --writes_outstanding_;
  std::optional<raft::Snapshot> compaction;
  if (!compactions_in_flight_.empty()) {  // empty when the write was refused before staging
    compaction = std::move(compactions_in_flight_.front());
    compactions_in_flight_.pop_front();
  }
  if (!written.ok()) {
    RecordFailure(written);
    return;
  }
  if (compaction) FinishCompaction(*compaction);
}

Status RocksStorage::StageCompact(LogIndex index, const raft::ConfState& cs) {
  if (!failure_.ok()) return failure_;
  LogIndex newest = snapshot_.meta.index;
  if (staged_compaction_ && staged_compaction_->meta.index > newest) {
    newest = staged_compaction_->meta.index;
  }
  for (const auto& c : compactions_in_flight_) {
    if (c && c->meta.index > newest) newest = c->meta.index;
  }
  Result<raft::Snapshot> snap = CompactionSnapshot(index, newest, cs);
  if (!snap.ok()) return snap.status();
  Result<std::string> value = EncodeSnapshot(*snap);
  if (!value.ok()) return value.status();
  MustStage(pending_.Put(kSnapshotKey, *value));
  MustStage(pending_.DeleteRange(EntryKey(LogIndex(0)), EntryKey(index + 1)));
  staged_compaction_ = std::move(*snap);
  return Status::Ok();
}

Result<raft::Snapshot> RocksStorage::CompactionSnapshot(LogIndex index, LogIndex newest,
                                                        const raft::ConfState& cs) const {
  if (index <= newest) {
    return Status(Code::kSnapshotOutOfDate, "compaction index not after the newest snapshot");
  }
  if (index > hard_state().commit) {
    return Status::InvalidArgument(fmt::format("compaction index {} beyond the commit index {}",
                                               index.value(), hard_state().commit.value()));
  }
  Result<Term> term = memory_.TermAt(index);
  SYNOD_ASSERT_MSG(term.ok(), "a committed index after the snapshot has no term");
  raft::Snapshot snap;
  snap.meta = raft::SnapshotMeta{index, *term, cs};
  return snap;
}

void RocksStorage::FinishCompaction(const raft::Snapshot& snap) {
  // A snapshot saved after the compaction was staged (one received from the leader) replaced
  // the log it would fold: nothing left to do.
  if (snap.meta.index <= snapshot_.meta.index) return;
  Result<Term> term = memory_.TermAt(snap.meta.index);
  SYNOD_ASSERT_MSG(term.ok() && *term == snap.meta.term,
                   "the log changed under a staged compaction of committed entries");
  raft::ConfState cs = snap.meta.conf_state;
  Result<raft::Snapshot> created = memory_.CreateSnapshot(snap.meta.index, &cs, std::string());
  SYNOD_ASSERT_MSG(created.ok(), "CreateSnapshot refused a staged compaction");
  const Status compacted = memory_.Compact(snap.meta.index);
  SYNOD_ASSERT_MSG(compacted.ok(), "Compact refused a staged compaction");
  snapshot_ = std::move(*created);
}

Status RocksStorage::Compact(LogIndex index, const raft::ConfState& cs,
                             std::string state_machine_image) {
  if (!failure_.ok()) return failure_;
  SYNOD_ASSERT_MSG(writes_outstanding_ == 0, "Compact while a PendingWrite is outstanding");
  Result<raft::Snapshot> checked = CompactionSnapshot(index, snapshot_.meta.index, cs);
  if (!checked.ok()) return checked.status();
  raft::Snapshot snap = std::move(*checked);
  snap.data = std::move(state_machine_image);
  const Term term = snap.meta.term;
  Result<std::string> value = EncodeSnapshot(snap);
  if (!value.ok()) return value.status();

  // Pending Saves first, in order, then the snapshot and the deletion of what it covers. A
  // compaction staged in pending_ is written with them and superseded by this one.
  staged_compaction_.reset();
  rocksdb::WriteBatch batch = std::move(pending_);
  pending_.Clear();  // a moved-from WriteBatch is not valid until cleared
  pending_saves_ = 0;
  MustStage(batch.Put(kSnapshotKey, *value));
  MustStage(batch.DeleteRange(EntryKey(LogIndex(0)), EntryKey(index + 1)));
  SYNOD_RETURN_IF_ERROR(WriteNow(&batch));

  // Only now that the disk has it: memory_ never runs ahead of a failed compaction.
  Result<raft::Snapshot> created = memory_.CreateSnapshot(index, &cs, std::move(snap.data));
  SYNOD_ASSERT_MSG(created.ok(), "CreateSnapshot refused a checked index");
  SYNOD_ASSERT(created->meta.term == term);
  const Status compacted = memory_.Compact(index);
  SYNOD_ASSERT_MSG(compacted.ok(), "Compact refused an index after the snapshot");
  snapshot_ = std::move(*created);
  return Status::Ok();
}

Status RocksStorage::LoadStateApplied() {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), kStateAppliedKey, &value);
  if (s.IsNotFound()) return Status::Ok();  // no state yet, or a database of an older build
  if (!s.ok()) return FromRocks(s, "reading the state's applied index");
  Result<std::string_view> payload =
      Unframe(kStateAppliedKey, View(value), "the state's applied index");
  if (!payload.ok()) return payload.status();
  if (payload->size() != 8) {
    return Status::Corruption(
        fmt::format("the state's applied index has {} bytes, not 8", payload->size()));
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>((*payload)[i])} << (8 * i);
  // The state of an entry is staged after the Save that made the entry committed, in the same
  // write or a later one, so the stored commit index is never behind it.
  if (LogIndex(v) > hard_state().commit) {
    return Status::Corruption(
        fmt::format("the state's applied index {} is beyond the commit "
                    "index {}",
                    v, hard_state().commit.value()));
  }
  state_applied_ = LogIndex(v);
  rocksdb::PinnableSlice meta;
  const rocksdb::Status ms =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), kStateMetaKey, &meta);
  if (ms.IsNotFound()) return Status::Ok();  // written by a build without meta
  if (!ms.ok()) return FromRocks(ms, "reading the state's meta record");
  Result<std::string_view> meta_payload = Unframe(kStateMetaKey, View(meta), "the state's meta");
  if (!meta_payload.ok()) return meta_payload.status();
  state_meta_ = std::string(*meta_payload);
  return Status::Ok();
}

void RocksStorage::StageState(const StateWrites& w) {
  if (!failure_.ok()) return;  // the next write reports the failure
  SYNOD_ASSERT_MSG(w.reset || w.applied >= state_applied_, "the stored state would move back");
  if (w.reset) {
    MustStage(pending_.DeleteRange(kStateDataPrefix, kStateDataEnd));
    MustStage(pending_.DeleteRange(kStateSessionPrefix, kStateSessionEnd));
  }
  for (const auto& [key, value] : w.data) {
    const std::string k = StateDataKey(key);
    // A value is at most kv::Options::value_bytes_max (512 MiB), far below WriteBatch's 4 GiB.
    MustStage(value ? pending_.Put(k, FrameBytes(k, *value)) : pending_.Delete(k));
  }
  for (const auto& [client_id, session] : w.sessions) {
    const std::string k = StateSessionKey(client_id);
    MustStage(session ? pending_.Put(k, FrameBytes(k, *session)) : pending_.Delete(k));
  }
  MustStage(pending_.Put(kStateAppliedKey, FrameApplied(w.applied)));
  state_applied_ = w.applied;
  if (w.meta) {
    MustStage(pending_.Put(kStateMetaKey, FrameBytes(kStateMetaKey, *w.meta)));
    state_meta_ = *w.meta;
  }
}

Status RocksStorage::ForEachState(const StateDataFn& data_fn,
                                  const StateSessionFn& session_fn) const {
  // One database snapshot for both ranges: they are read as of one write.
  const rocksdb::Snapshot* snap = db_->GetSnapshot();
  Status s = ForEachStateRange(snap, kStateDataPrefix, kStateDataEnd,
                               [&](std::string_view key, std::string_view payload) {
                                 return data_fn(key.substr(1), payload);
                               });
  if (s.ok()) {
    s = ForEachStateRange(
        snap, kStateSessionPrefix, kStateSessionEnd,
        [&](std::string_view key, std::string_view payload) {
          if (key.size() != kSessionKeyBytes) {
            return Status::Corruption(fmt::format("malformed session key of {} bytes", key.size()));
          }
          uint64_t id = 0;
          for (size_t i = 1; i < kSessionKeyBytes; ++i)
            id = (id << 8) | static_cast<uint8_t>(key[i]);
          return session_fn(id, payload);
        });
  }
  db_->ReleaseSnapshot(snap);
  return s;
}

Status RocksStorage::ForEachStateRange(
    const rocksdb::Snapshot* snap, std::string_view begin, std::string_view end,
    const std::function<Status(std::string_view key, std::string_view payload)>& fn) const {
  const rocksdb::Slice upper(end.data(), end.size());
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.iterate_upper_bound = &upper;
  ro.fill_cache = false;  // read once, at start-up
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  // Bounded by the records in the range.
  for (it->Seek(rocksdb::Slice(begin.data(), begin.size())); it->Valid(); it->Next()) {
    const std::string_view key = View(it->key());
    Result<std::string_view> payload =
        Unframe(key, View(it->value()), fmt::format("state record '{}'", Printable(key)));
    if (!payload.ok()) return payload.status();
    SYNOD_RETURN_IF_ERROR(fn(key, *payload));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the state machine");
  return Status::Ok();
}

Status RocksStorage::PutMeta(std::string_view name, std::string_view value) {
  if (!failure_.ok()) return failure_;
  if (name.empty()) return Status::InvalidArgument("metadata name is empty");
  if (value.size() > kMetaValueBytesMax) {
    return Status::InvalidArgument(
        fmt::format("metadata '{}' of {} bytes exceeds 16 MiB", name, value.size()));
  }
  const std::string key = MetaKey(name);
  std::string frame = NewFrame();
  frame.append(value);
  SealFrame(key, &frame);
  rocksdb::WriteBatch batch;
  MustStage(batch.Put(key, frame));
  return WriteNow(&batch);
}

Result<std::optional<std::string>> RocksStorage::GetMeta(std::string_view name) const {
  const std::string key = MetaKey(name);
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, fmt::format("reading metadata '{}'", name));
  Result<std::string_view> payload = Unframe(key, View(value), fmt::format("metadata '{}'", name));
  if (!payload.ok()) return payload.status();
  return std::optional<std::string>(std::string(*payload));
}

uint64_t RocksStorage::disk_bytes() const {
  std::vector<rocksdb::Env::FileAttributes> files;
  if (!env_->GetChildrenFileAttributes(dir_, &files).ok()) return 0;
  uint64_t bytes = 0;
  for (const rocksdb::Env::FileAttributes& f : files) bytes += f.size_bytes;
  return bytes;
}

Status RocksStorage::WriteNow(rocksdb::WriteBatch* batch) {
  SYNOD_ASSERT(failure_.ok());
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  const rocksdb::Status s = db_->Write(wo, batch);
  if (s.ok()) return Status::Ok();
  write_failed_.store(true, std::memory_order_release);
  RecordFailure(FromRocks(s, "writing the database"));
  return failure_;
}

void RocksStorage::RecordFailure(const Status& cause) {
  SYNOD_ASSERT(!cause.ok());
  if (!failure_.ok()) return;  // the first failure is the one that explains the rest
  failure_ = Status::IoError(
      fmt::format("Raft storage refuses writes after a disk failure: {}", cause.message()));
}

}  // namespace synod::storage
