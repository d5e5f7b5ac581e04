#include "storage/wal_storage.h"

#include <fmt/format.h>

#include <limits>
#include <utility>

#include "common/assert.h"
#include "storage/raft.pb.h"
#include "storage/raft_codec.h"
#include "storage/wal_format.h"

namespace synod::storage {
namespace {

// "SYNODWAL" read as a little-endian u64.
constexpr uint64_t kWalMagic = 0x4C4157444F4E5953ull;
constexpr uint32_t kWalVersion = 1;
// Entries are split into records of about this much data, so that no record (and no buffer
// that holds one while it is checked) grows with the size of a Save or of the log.
constexpr uint64_t kEntryBatchBytesMax = uint64_t{1} << 20;
// Protocol Buffers cannot serialize or parse a message of 2 GiB or more.
constexpr size_t kProtoBytesMax = static_cast<size_t>(std::numeric_limits<int>::max());
// A generous bound on a snapshot record's bytes other than the image (index, term, ConfState).
constexpr size_t kSnapshotMetaBytesMax = size_t{1} << 20;

Status AppendProtoRecord(RecordType type, const google::protobuf::MessageLite& m,
                         std::string* out) {
  const size_t bytes = m.ByteSizeLong();
  if (bytes > kProtoBytesMax) {
    return Status::InvalidArgument(fmt::format("WAL record of {} bytes exceeds 2 GiB", bytes));
  }
  const size_t start = BeginRecord(type, out);
  const bool serialized = m.AppendToString(out);
  SYNOD_ASSERT_MSG(serialized, "serializing a WAL record failed");
  FinishRecord(start, out);
  return Status::Ok();
}

std::string HeaderRecord(uint64_t cluster_id) {
  pb::WalHeader header;
  header.set_magic(kWalMagic);
  header.set_version(kWalVersion);
  header.set_cluster_id(cluster_id);
  std::string out;
  const Status st = AppendProtoRecord(RecordType::kHeader, header, &out);
  SYNOD_ASSERT(st.ok());  // a few bytes
  return out;
}

Status AppendSnapshotRecord(const raft::Snapshot& snap, std::string* out) {
  pb::Snapshot p;
  ToProto(snap, &p);
  return AppendProtoRecord(RecordType::kSnapshot, p, out);
}

void AppendHardStateRecord(const raft::HardState& hs, std::string* out) {
  pb::HardState p;
  ToProto(hs, &p);
  const Status st = AppendProtoRecord(RecordType::kHardState, p, out);
  SYNOD_ASSERT(st.ok());  // three integers
}

Status AppendEntryRecords(const std::vector<raft::Entry>& entries, std::string* out) {
  pb::EntryBatch batch;
  uint64_t batch_bytes = 0;
  for (const raft::Entry& e : entries) {
    ToProto(e, batch.add_entries());
    batch_bytes += e.PayloadBytes();
    if (batch_bytes >= kEntryBatchBytesMax) {
      SYNOD_RETURN_IF_ERROR(AppendProtoRecord(RecordType::kEntries, batch, out));
      batch.Clear();
      batch_bytes = 0;
    }
  }
  if (batch.entries_size() > 0) {
    SYNOD_RETURN_IF_ERROR(AppendProtoRecord(RecordType::kEntries, batch, out));
  }
  return Status::Ok();
}

// Entries and the hard state saved with them, as one record (see Save).
Status AppendBatchRecord(const std::vector<raft::Entry>& entries,
                         const std::optional<raft::HardState>& hs, std::string* out) {
  pb::EntryBatch batch;
  for (const raft::Entry& e : entries) ToProto(e, batch.add_entries());
  if (hs.has_value()) ToProto(*hs, batch.mutable_hard_state());
  return AppendProtoRecord(RecordType::kEntries, batch, out);
}

Status ParsePayload(std::string_view payload, google::protobuf::MessageLite* m) {
  if (payload.size() > kProtoBytesMax ||
      !m->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Status::InvalidArgument(fmt::format("payload is not a valid {}", m->GetTypeName()));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<WalStorage>> WalStorage::Open(env::Disk* disk, uint64_t cluster_id) {
  SYNOD_ASSERT(disk != nullptr);
  Result<std::string> content = disk->ReadAll();
  if (!content.ok()) {
    return Status::IoError(fmt::format("reading the WAL: {}", content.status().ToString()));
  }
  std::unique_ptr<WalStorage> wal(new WalStorage(disk, cluster_id));
  if (content->empty()) {
    SYNOD_RETURN_IF_ERROR(wal->Create());
  } else {
    SYNOD_RETURN_IF_ERROR(wal->Recover(*content));
  }
  return wal;
}

Status WalStorage::Create() {
  // Replace, not Append + Sync: the header is durable at once and can never be torn.
  const std::string header = HeaderRecord(cluster_id_);
  const Status st = disk_->Replace(header);
  if (!st.ok()) return Status::IoError(fmt::format("creating the WAL: {}", st.ToString()));
  wal_bytes_ = header.size();
  recovery_stats_.created = true;
  return Status::Ok();
}

Status WalStorage::Recover(std::string_view content) {
  Result<ScanResult> scan = ScanRecords(content);
  if (!scan.ok()) return scan.status();
  const std::vector<Record>& records = scan->records;
  if (records.empty() || records.front().type != RecordType::kHeader) {
    return Status::Corruption("WAL does not start with a valid header record");
  }
  SYNOD_RETURN_IF_ERROR(CheckHeader(records.front().payload));
  for (size_t i = 1; i < records.size(); ++i) {
    const Record& r = records[i];
    Status st;
    switch (r.type) {
      case RecordType::kHeader:
        st = Status::InvalidArgument("a second header record");
        break;
      case RecordType::kEntries:
        st = ReplayEntries(r.payload);
        break;
      case RecordType::kHardState:
        st = ReplayHardState(r.payload);
        break;
      case RecordType::kSnapshot:
        st = ReplaySnapshot(r.payload);
        break;
    }
    if (!st.ok()) {
      return Status::Corruption(fmt::format("WAL record at offset {}: {}", r.offset, st.message()));
    }
  }
  recovery_stats_.records_replayed = records.size() - 1;
  // Entries and their hard state are written as one record (see Save), so even a torn write
  // cannot leave a commit index beyond the log.
  if (hard_state().commit > memory_.LastIndex()) {
    return Status::Corruption(fmt::format("WAL commit index {} is beyond its last index {}",
                                          hard_state().commit.value(),
                                          memory_.LastIndex().value()));
  }
  recovery_stats_.torn_records = scan->tail_records;
  recovery_stats_.torn_bytes = content.size() - scan->valid_bytes;
  wal_bytes_ = scan->valid_bytes;
  if (scan->valid_bytes == content.size()) return Status::Ok();
  // Cut the torn tail off so that the next append does not land after garbage, which the next
  // recovery would take for a damaged record followed by valid ones.
  const Status st = disk_->Replace(content.substr(0, scan->valid_bytes));
  if (!st.ok()) return Status::IoError(fmt::format("truncating the WAL: {}", st.ToString()));
  return Status::Ok();
}

Status WalStorage::CheckHeader(std::string_view payload) const {
  pb::WalHeader header;
  if (!ParsePayload(payload, &header).ok() || header.magic() != kWalMagic) {
    return Status::Corruption("not a Synod WAL: bad header record");
  }
  if (header.version() != kWalVersion) {
    return Status::FailedPrecondition(
        fmt::format("WAL format version {} is not supported (this build reads version {})",
                    header.version(), kWalVersion));
  }
  if (header.cluster_id() != cluster_id_) {
    return Status::FailedPrecondition(fmt::format(
        "WAL belongs to cluster {:#018x}, but this node is configured for cluster {:#018x}; "
        "refusing to open another cluster's log",
        header.cluster_id(), cluster_id_));
  }
  return Status::Ok();
}

Status WalStorage::ReplayEntries(std::string_view payload) {
  pb::EntryBatch batch;
  SYNOD_RETURN_IF_ERROR(ParsePayload(payload, &batch));
  if (batch.entries_size() == 0) return Status::InvalidArgument("empty entry batch");
  Result<std::vector<raft::Entry>> entries = EntriesFromProto(batch.mutable_entries());
  if (!entries.ok()) return entries.status();
  SYNOD_RETURN_IF_ERROR(CheckEntriesFollow(*entries, memory_.LastIndex()));
  SYNOD_RETURN_IF_ERROR(memory_.Append(*entries));
  if (!batch.has_hard_state()) return Status::Ok();
  Result<raft::HardState> hs = FromProto(batch.hard_state());
  if (!hs.ok()) return hs.status();
  if (hs->commit > memory_.LastIndex()) {
    return Status::InvalidArgument("a batch's commit index is beyond its entries");
  }
  memory_.SetHardState(*hs);
  return Status::Ok();
}

Status WalStorage::ReplaySnapshot(std::string_view payload) {
  pb::Snapshot p;
  SYNOD_RETURN_IF_ERROR(ParsePayload(payload, &p));
  Result<raft::Snapshot> snap = FromProto(std::move(p));
  if (!snap.ok()) return snap.status();
  if (!snapshot_.IsEmpty() && snap->meta.index <= snapshot_.meta.index) {
    return Status::InvalidArgument("snapshot older than an earlier one");
  }
  ApplySnapshot(std::move(*snap));
  return Status::Ok();
}

Status WalStorage::ReplayHardState(std::string_view payload) {
  pb::HardState p;
  SYNOD_RETURN_IF_ERROR(ParsePayload(payload, &p));
  Result<raft::HardState> hs = FromProto(p);
  if (!hs.ok()) return hs.status();
  memory_.SetHardState(*hs);
  return Status::Ok();
}

void WalStorage::ApplySnapshot(raft::Snapshot snap) {
  snapshot_ = snap;
  const Status st = memory_.ApplySnapshot(std::move(snap));
  SYNOD_ASSERT_MSG(st.ok(), "snapshot checked as newer was refused");
}

Status WalStorage::CheckSave(const std::optional<raft::Snapshot>& snap,
                             const std::vector<raft::Entry>& entries,
                             const std::optional<raft::HardState>& hs) const {
  return CheckSaveShape(snapshot_, memory_, snap, entries, hs);
}

Status WalStorage::Save(const std::optional<raft::Snapshot>& snap,
                        const std::vector<raft::Entry>& entries,
                        const std::optional<raft::HardState>& hs) {
  if (!failure_.ok()) return failure_;
  SYNOD_RETURN_IF_ERROR(CheckSave(snap, entries, hs));
  std::string batch;
  if (snap.has_value()) SYNOD_RETURN_IF_ERROR(AppendSnapshotRecord(*snap, &batch));
  // A Ready's entries and hard state go into one record, so a torn write keeps both or
  // neither. Apart, either order loses: entries without their commit index let a node that
  // holds a membership change forget that the change before it committed (and campaign with
  // a configuration two changes old); a commit index without its entries would claim older,
  // conflicting entries at those indexes committed.
  if (!entries.empty()) {
    SYNOD_RETURN_IF_ERROR(AppendBatchRecord(entries, hs, &batch));
  } else if (hs.has_value()) {
    AppendHardStateRecord(*hs, &batch);
  }
  if (batch.empty()) return Status::Ok();

  // One Append for the whole batch: a crash can still tear it, but only at a record boundary
  // or inside a record, which recovery handles record by record.
  const Status st = disk_->Append(batch);
  if (!st.ok()) return Fail(st);
  wal_bytes_ += batch.size();

  if (snap.has_value()) ApplySnapshot(*snap);
  const Status appended = memory_.Append(entries);
  SYNOD_ASSERT_MSG(appended.ok(), "entries checked by CheckSave were refused");
  if (hs.has_value()) memory_.SetHardState(*hs);
  return Status::Ok();
}

Status WalStorage::Sync() {
  if (!failure_.ok()) return failure_;
  const Status st = disk_->Sync();
  if (!st.ok()) return Fail(st);
  return Status::Ok();
}

Status WalStorage::Compact(LogIndex index, const raft::ConfState& cs,
                           std::string state_machine_image) {
  if (!failure_.ok()) return failure_;
  if (index <= snapshot_.meta.index) {
    return Status(Code::kSnapshotOutOfDate, "compaction index not after the current snapshot");
  }
  if (index > hard_state().commit) {
    return Status::InvalidArgument(fmt::format("compaction index {} beyond the commit index {}",
                                               index.value(), hard_state().commit.value()));
  }
  // Leaves room for the snapshot's metadata in the record, so that EncodeImage cannot fail.
  if (state_machine_image.size() > kProtoBytesMax - kSnapshotMetaBytesMax) {
    return Status::InvalidArgument("state machine image too large for a WAL record (2 GiB)");
  }
  Result<raft::Snapshot> snap = memory_.CreateSnapshot(index, &cs, std::move(state_machine_image));
  SYNOD_ASSERT_MSG(snap.ok(), "CreateSnapshot refused a checked index");
  const Status compacted = memory_.Compact(index);
  SYNOD_ASSERT_MSG(compacted.ok(), "Compact refused an index after the snapshot");
  snapshot_ = std::move(*snap);

  Result<std::string> image = EncodeImage();
  // memory_ is already compacted; should the rewrite still fail, the disk no longer matches it.
  if (!image.ok()) return Fail(image.status());
  const Status st = disk_->Replace(*image);
  if (!st.ok()) return Fail(st);
  wal_bytes_ = image->size();
  return Status::Ok();
}

Result<std::string> WalStorage::EncodeImage() const {
  // Replay order: the snapshot resets the log, the hard state's commit is checked only after
  // the last record, and the entries follow the snapshot.
  std::string out = HeaderRecord(cluster_id_);
  SYNOD_RETURN_IF_ERROR(AppendSnapshotRecord(snapshot_, &out));
  AppendHardStateRecord(hard_state(), &out);
  const LogIndex first = memory_.FirstIndex();
  const LogIndex last = memory_.LastIndex();
  if (first <= last) {
    Result<std::vector<raft::Entry>> entries =
        memory_.Entries(first, last + 1, std::numeric_limits<uint64_t>::max());
    SYNOD_ASSERT_MSG(entries.ok(), "reading the uncompacted log failed");
    SYNOD_RETURN_IF_ERROR(AppendEntryRecords(*entries, &out));
  }
  return out;
}

Status WalStorage::Fail(const Status& cause) {
  SYNOD_ASSERT(!cause.ok());
  failure_ =
      Status::IoError(fmt::format("WAL refuses writes after a disk failure: {}", cause.ToString()));
  return failure_;
}

}  // namespace synod::storage
