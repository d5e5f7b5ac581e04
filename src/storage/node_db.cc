#include "storage/node_db.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "common/assert.h"
#include "storage/group_storage.h"
#include "storage/raft.pb.h"
#include "storage/rocks_format.h"

namespace synod::storage {

using format::MustStage;

namespace {

// "SYNODRDB" read as a little-endian u64: tells a Synod database from a WAL's header.
constexpr uint64_t kRocksMagic = 0x4244524F444F4E59ull;
// 1: one Raft group per database, unprefixed records. 2: many groups ("G" + group id + kind)
// and slot-prefixed data ("D" + slot + key), group 1 holding every slot. 3: the sharded layout
// (group 1 the meta shard with keys of its own, data shards from group 2, the layout in the
// node metadata).
constexpr uint32_t kRocksVersion = 3;

constexpr char kClusterKey[] = "C";
constexpr char kMetaPrefix = 'M';
constexpr size_t kMetaValueBytesMax = size_t{16} << 20;

std::string MetaKey(std::string_view name) {
  std::string key(1, kMetaPrefix);
  key.append(name);
  return key;
}

// "G" + the group id, big-endian: where a group's records begin.
std::string GroupKeyPrefix(uint64_t group) {
  std::string key(1, 'G');
  format::AppendU64Be(group, &key);
  return key;
}

}  // namespace

NodeDb::NodeDb(std::string dir, uint64_t cluster_id)
    : dir_(std::move(dir)), cluster_id_(cluster_id) {}

NodeDb::~NodeDb() {
  SYNOD_ASSERT_MSG(outstanding_.empty(), "NodeDb destroyed under a write");
  SYNOD_ASSERT_MSG(staged_groups_.empty(), "NodeDb destroyed before its groups");
}

Result<std::unique_ptr<NodeDb>> NodeDb::Open(const std::string& dir, uint64_t cluster_id,
                                             RocksOptions opts) {
  Result<std::unique_ptr<RocksEngine>> engine = RocksEngine::Open(dir, opts);
  if (!engine.ok()) return engine.status();
  std::unique_ptr<NodeDb> n(new NodeDb(dir, cluster_id));
  n->owned_engine_ = std::move(*engine);
  n->engine_ = n->owned_engine_.get();
  SYNOD_RETURN_IF_ERROR(n->CheckOrCreateClusterRecord());
  return n;
}

Result<std::unique_ptr<NodeDb>> NodeDb::Open(Engine* engine, std::string name,
                                             uint64_t cluster_id) {
  SYNOD_ASSERT(engine != nullptr);
  std::unique_ptr<NodeDb> n(new NodeDb(std::move(name), cluster_id));
  n->engine_ = engine;
  SYNOD_RETURN_IF_ERROR(n->CheckOrCreateClusterRecord());
  return n;
}

Status NodeDb::CheckOrCreateClusterRecord() {
  Result<std::optional<std::string>> value = engine_->Get(kClusterKey, "the cluster id record");
  if (!value.ok()) return value.status();
  if (value->has_value()) {
    pb::WalHeader header;
    SYNOD_RETURN_IF_ERROR(
        format::ParseFramed(kClusterKey, **value, "the cluster id record", &header));
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
  // The cluster record is the first write to a new database, so data without it is not ours.
  Result<std::optional<std::string>> any = engine_->FirstKey("", std::string(1, '\xff'));
  if (!any.ok()) return any.status();
  if (any->has_value()) {
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

void NodeDb::Staged(GroupStorage* group) {
  // Each group registers once per write (GroupStorage keeps the flag): no search here.
  staged_groups_.push_back(group);
}

void NodeDb::Forget(GroupStorage* group) {
  std::erase(staged_groups_, group);
  for (auto& carried : outstanding_) {
    SYNOD_ASSERT_MSG(std::find(carried.begin(), carried.end(), group) == carried.end(),
                     "a GroupStorage destroyed under a write that carries its records");
  }
}

void NodeDb::StageBatch(rocksdb::WriteBatch batch) {
  if (staging_.Count() > 0) {
    segments_.push_back(std::move(staging_));
    staging_.Clear();  // a moved-from WriteBatch is not valid until cleared
  }
  segments_.push_back(std::move(batch));
}

namespace {

// The batches as one, in order: a WriteBatch's form is its header (a u64 sequence number, a
// u32 LE count) and then its records, so the records of the others follow the first's and
// the counts add up (RocksDB's own WriteBatchInternal::Append does the same).
rocksdb::WriteBatch JoinBatches(const std::vector<rocksdb::WriteBatch>& segments,
                                const rocksdb::WriteBatch& last) {
  constexpr size_t kHeaderBytes = 12;
  std::string rep = segments.front().Data();  // on the storage thread: copies cost no core time
  uint64_t count = segments.front().Count();
  const auto add = [&](const rocksdb::WriteBatch& b) {
    if (b.Count() == 0) return;
    SYNOD_ASSERT(b.GetDataSize() >= kHeaderBytes);
    rep.append(b.Data(), kHeaderBytes, std::string::npos);
    count += b.Count();
  };
  for (size_t i = 1; i < segments.size(); ++i) add(segments[i]);
  add(last);
  SYNOD_ASSERT_MSG(count <= UINT32_MAX, "a node write of more than 2^32 records");
  for (int i = 0; i < 4; ++i) rep[8 + i] = static_cast<char>((count >> (8 * i)) & 0xff);
  rocksdb::WriteBatch joined(std::move(rep));
  SYNOD_ASSERT(joined.Count() == count);
  return joined;
}

}  // namespace

NodeDb::Write NodeDb::TakeWrite() {
  Write w;
  std::vector<GroupStorage*> groups = std::exchange(staged_groups_, {});
  if (!failure_.ok()) w.refused = failure_;  // the records are dropped: nothing may follow
  w.batch = std::move(staging_);
  staging_.Clear();  // a moved-from WriteBatch is not valid until cleared
  w.segments = std::exchange(segments_, {});
  if (!w.refused.ok()) {
    w.batch.Clear();
    w.segments.clear();
  }
  for (GroupStorage* g : groups) w.saves += g->OnTaken();
  w.groups = groups.size();
  outstanding_.push_back(std::move(groups));
  return w;
}

Status NodeDb::WriteTaken(Write& w) const {
  if (!w.refused.ok()) return w.refused;
  if (!w.segments.empty()) {
    w.batch = JoinBatches(w.segments, w.batch);
    w.segments.clear();
  }
  if (w.batch.Count() == 0) return Status::Ok();
  if (write_failed_.load(std::memory_order_acquire)) {
    return Status::IoError(
        "an earlier write failed; later ones are refused so that what is durable stays a "
        "prefix of what was saved");
  }
  Status s = engine_->Write(&w.batch);
  if (!s.ok()) write_failed_.store(true, std::memory_order_release);
  return s;
}

void NodeDb::OnWritten(const Status& written) {
  SYNOD_ASSERT_MSG(!outstanding_.empty(), "OnWritten without a TakeWrite");
  const std::vector<GroupStorage*> groups = std::move(outstanding_.front());
  outstanding_.pop_front();
  if (!written.ok()) RecordFailure(written);
  for (GroupStorage* g : groups) g->OnWritten(written);
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
  // One seek per group: after a group's first key, skip to the next group's range.
  std::string from = GroupKeyPrefix(0);
  for (;;) {
    Result<std::optional<std::string>> key = engine_->FirstKey(from, "H");
    if (!key.ok()) return key.status();
    if (!key->has_value()) break;
    const std::string& k = **key;
    if (k.size() < 1 + 8 + 1) {
      return Status::Corruption(
          fmt::format("malformed group record key '{}'", format::Printable(k)));
    }
    const uint64_t id = format::GetU64Be(k.data() + 1);
    if (id == 0) return Status::Corruption("a group record of group 0");
    std::string hard_state = GroupKeyPrefix(id);
    hard_state.push_back('H');
    Result<std::optional<std::string>> hs = engine_->Get(hard_state, "a group's hard state");
    if (!hs.ok()) return hs.status();
    if (hs->has_value()) groups.emplace_back(id);
    if (id == UINT64_MAX) break;
    from = GroupKeyPrefix(id + 1);
  }
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
  const std::string what = fmt::format("metadata '{}'", name);
  Result<std::optional<std::string>> value = engine_->Get(key, what);
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<std::string>();
  Result<std::string_view> payload = format::Unframe(key, **value, what);
  if (!payload.ok()) return payload.status();
  return std::optional<std::string>(std::string(*payload));
}

uint64_t NodeDb::disk_bytes() const { return engine_->disk_bytes(); }

Status NodeDb::WriteNow(rocksdb::WriteBatch* batch) {
  if (!failure_.ok()) return failure_;
  const Status s = engine_->Write(batch);
  if (s.ok()) return Status::Ok();
  write_failed_.store(true, std::memory_order_release);
  RecordFailure(s);
  return failure_;
}

void NodeDb::RecordFailure(const Status& cause) {
  SYNOD_ASSERT(!cause.ok());
  if (!failure_.ok()) return;  // the first failure is the one that explains the rest
  failure_ = Status::IoError(
      fmt::format("Raft storage refuses writes after a disk failure: {}", cause.message()));
}

}  // namespace synod::storage
