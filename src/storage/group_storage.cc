#include "storage/group_storage.h"

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
#include "common/crc32c.h"
#include "storage/raft.pb.h"
#include "storage/raft_codec.h"
#include "storage/rocks_format.h"

namespace synod::storage {

using format::FrameBytes;
using format::FrameMessage;
using format::kCrcBytes;
using format::kProtoBytesMax;
using format::MustStage;
using format::ParseFramed;
using format::Printable;
using format::Unframe;

namespace {

// The kinds of a group's records, after "G" + group id.
constexpr char kGroupPrefix = 'G';
constexpr char kHardStateKind = 'H';
constexpr char kSnapshotKind = 'S';
constexpr char kEntryKind = 'E';
// The first kind after the entries: the exclusive end of their range. No record uses it.
constexpr char kEntryEndKind = 'F';
constexpr char kStateAppliedKind = 'A';
constexpr char kStateMetaKind = 'B';
constexpr char kGroupDataKind = 'D';  // a kGroup span's keys; they end at kEntryKind
constexpr char kSessionKind = 'T';
constexpr char kSessionEndKind = 'U';
// A kSlots span's keys: "D" + slot (u16 BE) + key.
constexpr char kSlotDataPrefix = 'D';
constexpr size_t kGroupPrefixBytes = 1 + 8;
constexpr size_t kSessionKeyBytes = kGroupPrefixBytes + 1 + 8;
constexpr size_t kEntryKeyBytes = kGroupPrefixBytes + 1 + 8;
constexpr size_t kSlotDataPrefixBytes = 1 + 2;

// A bound on an entry's encoding other than its data (three varints and two tags).
constexpr size_t kEntryOverheadBytesMax = 64;
// Open() hands entries to the MemoryStorage in runs of this many, so that loading a long log
// does not hold it twice in memory.
constexpr size_t kLoadRunEntriesMax = 4096;

std::string SlotKeyPrefix(uint32_t slot) {
  SYNOD_ASSERT(slot <= kSlotCount);
  std::string k(1, kSlotDataPrefix);
  k.push_back(static_cast<char>((slot >> 8) & 0xFF));
  k.push_back(static_cast<char>(slot & 0xFF));
  return k;
}

std::string FrameApplied(std::string_view key, LogIndex applied) {
  char payload[8];
  for (int i = 0; i < 8; ++i) payload[i] = static_cast<char>((applied.value() >> (8 * i)) & 0xFF);
  return FrameBytes(key, std::string_view(payload, sizeof(payload)));
}

// The entry stored under `key` (an entry key of `group`), checked against its key's index.
Result<raft::Entry> DecodeEntry(GroupId group, std::string_view key, std::string_view value) {
  if (key.size() != kEntryKeyBytes || key[0] != kGroupPrefix ||
      format::GetU64Be(key.data() + 1) != group.value() || key[kGroupPrefixBytes] != kEntryKind) {
    return Status::Corruption(fmt::format("malformed log entry key '{}'", Printable(key)));
  }
  const uint64_t index = format::GetU64Be(key.data() + kGroupPrefixBytes + 1);
  const std::string what = fmt::format("log entry {}", index);
  pb::Entry p;
  SYNOD_RETURN_IF_ERROR(ParseFramed(key, value, what, &p));
  Result<raft::Entry> e = FromProto(std::move(p));
  if (!e.ok()) return Status::Corruption(fmt::format("{}: {}", what, e.status().message()));
  if (e->index != LogIndex(index)) {
    return Status::Corruption(fmt::format("{} holds index {}", what, e->index.value()));
  }
  return e;
}

Result<std::string> EncodeSnapshot(std::string_view key, const raft::Snapshot& snap) {
  pb::Snapshot p;
  ToProto(snap, &p);
  const size_t bytes = p.ByteSizeLong();
  if (bytes >= kProtoBytesMax) {
    return Status::InvalidArgument(fmt::format("snapshot of {} bytes reaches 2 GiB", bytes));
  }
  return FrameMessage(key, p);
}

}  // namespace

std::string GroupStorage::GroupKey(GroupId group, char kind) {
  std::string key(1, kGroupPrefix);
  format::AppendU64Be(group.value(), &key);
  key.push_back(kind);
  return key;
}

std::string GroupStorage::EntryKey(GroupId group, LogIndex index) {
  std::string key = GroupKey(group, kEntryKind);
  format::AppendU64Be(index.value(), &key);
  return key;
}

std::string GroupStorage::SlotDataKey(std::string_view key) {
  std::string k = SlotKeyPrefix(KeySlot(key));
  k.append(key);
  return k;
}

std::string GroupStorage::Key(char kind) const { return GroupKey(group_, kind); }

std::string GroupStorage::DataKey(std::string_view key) const {
  if (span_.kind == StateSpan::Kind::kGroup) {
    std::string k = Key(kGroupDataKind);
    k.append(key);
    return k;
  }
  const uint16_t slot = KeySlot(key);
  SYNOD_ASSERT_MSG(slot >= span_.first_slot && slot <= span_.last_slot,
                   "a state change to a key outside the group's slots");
  return SlotDataKey(key);
}

std::string GroupStorage::DataBegin() const {
  if (span_.kind == StateSpan::Kind::kGroup) return Key(kGroupDataKind);
  return SlotKeyPrefix(span_.first_slot);
}

std::string GroupStorage::DataEnd() const {
  if (span_.kind == StateSpan::Kind::kGroup) return Key(static_cast<char>(kGroupDataKind + 1));
  return SlotKeyPrefix(uint32_t{span_.last_slot} + 1);
}

size_t GroupStorage::DataKeyPrefixBytes() const {
  return span_.kind == StateSpan::Kind::kGroup ? kGroupPrefixBytes + 1 : kSlotDataPrefixBytes;
}

GroupStorage::GroupStorage(NodeDb* node, GroupId group, StateSpan span)
    : node_(node), group_(group), span_(span) {}

GroupStorage::~GroupStorage() {
  SYNOD_ASSERT_MSG(writes_outstanding_ == 0, "GroupStorage destroyed under a node write");
  node_->Forget(this);
}

Result<std::unique_ptr<GroupStorage>> GroupStorage::Open(NodeDb* node, GroupId group,
                                                         StateSpan span) {
  SYNOD_ASSERT(node != nullptr);
  if (group == kNoGroup) return Status::InvalidArgument("group id 0 is not a group");
  if (span.kind == StateSpan::Kind::kSlots &&
      (span.first_slot > span.last_slot || span.last_slot >= kSlotCount)) {
    return Status::InvalidArgument(fmt::format("slot span {}-{} is not within 0-{}",
                                               span.first_slot, span.last_slot, kSlotCount - 1));
  }
  std::unique_ptr<GroupStorage> s(new GroupStorage(node, group, span));
  SYNOD_RETURN_IF_ERROR(s->Load());
  return s;
}

Result<std::unique_ptr<GroupStorage>> GroupStorage::Open(const std::string& dir,
                                                         uint64_t cluster_id, RocksOptions opts) {
  Result<std::unique_ptr<NodeDb>> node = NodeDb::Open(dir, cluster_id, opts);
  if (!node.ok()) return node.status();
  NodeDb* raw = node->get();
  std::unique_ptr<GroupStorage> s(new GroupStorage(
      raw, kStandaloneGroup, StateSpan::Slots(0, static_cast<uint16_t>(kSlotCount - 1))));
  s->owned_node_ = std::move(*node);
  SYNOD_RETURN_IF_ERROR(s->Load());
  s->recovery_stats_.created = raw->created();
  return s;
}

Status GroupStorage::Load() {
  SYNOD_RETURN_IF_ERROR(LoadSnapshot());
  SYNOD_RETURN_IF_ERROR(LoadHardState());
  SYNOD_RETURN_IF_ERROR(LoadEntries());
  recovery_stats_.created = snapshot_.meta.index == LogIndex(0) &&
                            memory_.LastIndex() == LogIndex(0) && hard_state() == raft::HardState{};
  // Entries and their hard state are written in one batch, so even a crash cannot leave a
  // commit index beyond the log: this is damage, or a log edited by hand.
  const LogIndex last = memory_.LastIndex();
  if (hard_state().commit > last) {
    return Status::Corruption(fmt::format("hard state commit index {} is beyond the last index {}",
                                          hard_state().commit.value(), last.value()));
  }
  SYNOD_RETURN_IF_ERROR(LoadStateApplied());
  if (recovery_stats_.stale_entries > 0) SYNOD_RETURN_IF_ERROR(DeleteStaleEntries());
  return Status::Ok();
}

rocksdb::WriteBatch& GroupStorage::Stage() {
  if (!staged_) {  // once per node write, not once per record
    staged_ = true;
    node_->Staged(this);
  }
  return node_->staging();
}

uint64_t GroupStorage::OnTaken() {
  staged_ = false;
  ++writes_outstanding_;
  applied_in_flight_.push_back(std::exchange(applied_staged_, std::nullopt));
  compactions_in_flight_.push_back(std::exchange(staged_compaction_, std::nullopt));
  return std::exchange(pending_saves_, 0);
}

void GroupStorage::OnWritten(const Status& written) {
  SYNOD_ASSERT_MSG(writes_outstanding_ > 0, "OnWritten without a write carrying this group");
  --writes_outstanding_;
  SYNOD_ASSERT(!compactions_in_flight_.empty());
  std::optional<raft::Snapshot> compaction = std::move(compactions_in_flight_.front());
  compactions_in_flight_.pop_front();
  if (written.ok() && compaction) FinishCompaction(*compaction);
  SYNOD_ASSERT(!applied_in_flight_.empty());
  const std::optional<LogIndex> applied = applied_in_flight_.front();
  applied_in_flight_.pop_front();
  if (written.ok() && applied) {
    durable_applied_ = *applied;
    MaybeTakeView();
  }
}

// ---- streamed snapshots ----

void GroupStorage::WantStateView(LogIndex applied) {
  view_.reset();  // a newer one replaces a view nobody took
  view_wanted_ = applied;
  if (applied == LogIndex(0)) return;  // none wanted any more
  SYNOD_ASSERT_MSG(applied == state_applied_, "a view wanted of a state not staged");
  MaybeTakeView();
}

// The view is taken when the last durable write leaves the stored state exactly at the index
// wanted and nothing newer is staged or on its way: the database then holds that state. (A
// state staged later moves the wanted index on: the Replica asks again.)
void GroupStorage::MaybeTakeView() {
  if (view_wanted_ == LogIndex(0) || durable_applied_ != view_wanted_ || applied_staged_) return;
  for (const std::optional<LogIndex>& a : applied_in_flight_) {
    if (a) return;
  }
  view_ = node_->engine().NewView();
  view_applied_ = view_wanted_;
  view_wanted_ = LogIndex(0);
}

std::optional<GroupStorage::StateView> GroupStorage::TakeStateView() {
  if (!view_) return std::nullopt;
  StateView v{view_applied_, std::move(view_), KeysOf(group_, span_), std::nullopt};
  if (span_.kind == StateSpan::Kind::kSlots) v.range = SlotRange{span_.first_slot, span_.last_slot};
  return v;
}

StateKeys GroupStorage::KeysOf(GroupId group, StateSpan span) {
  StateKeys k;
  if (span.kind == StateSpan::Kind::kSlots) {
    k.data_begin = SlotKeyPrefix(span.first_slot);
    k.data_end = SlotKeyPrefix(uint32_t{span.last_slot} + 1);
    k.data_prefix = kSlotDataPrefixBytes;
  } else {
    k.data_begin = GroupKey(group, kGroupDataKind);
    k.data_end = GroupKey(group, static_cast<char>(kGroupDataKind + 1));
    k.data_prefix = kGroupPrefixBytes + 1;
  }
  k.sessions_begin = GroupKey(group, kSessionKind);
  k.sessions_end = GroupKey(group, kSessionEndKind);
  k.session_prefix = kGroupPrefixBytes + 1;
  k.meta = GroupKey(group, kStateMetaKind);
  k.applied = GroupKey(group, kStateAppliedKind);
  return k;
}

Result<LogIndex> GroupStorage::DecodeApplied(std::string_view key, std::string_view value) {
  Result<std::string_view> payload = Unframe(key, value, "the state's applied index");
  if (!payload.ok()) return payload.status();
  if (payload->size() != 8) {
    return Status::Corruption(
        fmt::format("the state's applied index has {} bytes, not 8", payload->size()));
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>((*payload)[i])} << (8 * i);
  return LogIndex(v);
}

void GroupStorage::DepositReceived(uint64_t stream, ReceivedState state) {
  received_stream_ = stream;
  received_ = std::move(state);
}

Status GroupStorage::StageReceived(uint64_t stream) {
  if (!received_ || received_stream_ != stream) {
    return Status::NotFound(fmt::format("no state received by stream {}", stream));
  }
  if (!failure().ok()) return failure();
  ReceivedState r = std::move(*received_);
  received_.reset();
  Stage();  // this group rides on the next write
  node_->StageBatch(std::move(r.batch));
  state_applied_ = r.applied;
  state_meta_ = std::move(r.meta);
  applied_staged_ = r.applied;
  return Status::Ok();
}

Status GroupStorage::LoadSnapshot() {
  const std::string key = Key(kSnapshotKind);
  Result<std::optional<std::string>> value = node_->engine().Get(key, "the snapshot");
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::Ok();
  pb::Snapshot p;
  SYNOD_RETURN_IF_ERROR(ParseFramed(key, **value, "the snapshot", &p));
  value->reset();  // the image may be large; hold it once
  Result<raft::Snapshot> snap = FromProto(std::move(p));
  if (!snap.ok()) {
    return Status::Corruption(fmt::format("the snapshot: {}", snap.status().message()));
  }
  snapshot_ = *snap;
  const Status applied = memory_.ApplySnapshot(std::move(*snap));
  SYNOD_ASSERT_MSG(applied.ok(), "a fresh MemoryStorage refused a snapshot");
  return Status::Ok();
}

Status GroupStorage::LoadHardState() {
  const std::string key = Key(kHardStateKind);
  Result<std::optional<std::string>> value = node_->engine().Get(key, "the hard state");
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::Ok();
  pb::HardState p;
  SYNOD_RETURN_IF_ERROR(ParseFramed(key, **value, "the hard state", &p));
  Result<raft::HardState> hs = FromProto(p);
  if (!hs.ok()) {
    return Status::Corruption(fmt::format("the hard state: {}", hs.status().message()));
  }
  memory_.SetHardState(*hs);
  return Status::Ok();
}

Status GroupStorage::LoadEntries() {
  const LogIndex snap_index = snapshot_.meta.index;
  LogIndex next = snap_index + 1;
  Term prev_term = snapshot_.meta.term;
  std::vector<raft::Entry> run;
  ScanRange range{EntryKey(LogIndex(0)), Key(kEntryEndKind), nullptr};
  // Bounded by the entries in the database.
  range.fn = [&](std::string_view key, std::string_view value) -> Status {
    Result<raft::Entry> e = DecodeEntry(group_, key, value);
    if (!e.ok()) return e.status();
    // Left by a crash between writing a snapshot and deleting what it covers (GroupStorage
    // writes both at once; kept for databases written otherwise). Raft never reads them.
    if (e->index <= snap_index) {
      ++recovery_stats_.stale_entries;
      return Status::Ok();
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
    return Status::Ok();
  };
  SYNOD_RETURN_IF_ERROR(node_->engine().Scan({std::move(range)}));
  SYNOD_RETURN_IF_ERROR(memory_.Append(run));
  recovery_stats_.entries_loaded = next.value() - snap_index.value() - 1;
  SYNOD_ASSERT(memory_.LastIndex() == next - 1);
  return Status::Ok();
}

Status GroupStorage::DeleteStaleEntries() {
  rocksdb::WriteBatch batch;
  MustStage(batch.DeleteRange(EntryKey(LogIndex(0)), EntryKey(snapshot_.meta.index + 1)));
  return node_->WriteNow(&batch);
}

Status GroupStorage::CheckSave(const std::optional<raft::Snapshot>& snap,
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

Status GroupStorage::Save(const std::optional<raft::Snapshot>& snap,
                          const std::vector<raft::Entry>& entries,
                          const std::optional<raft::HardState>& hs) {
  if (!failure().ok()) return failure();
  SYNOD_RETURN_IF_ERROR(CheckSave(snap, entries, hs));
  std::string snap_value;
  if (snap.has_value()) {
    Result<std::string> v = EncodeSnapshot(Key(kSnapshotKind), *snap);
    if (!v.ok()) return v.status();
    snap_value = std::move(*v);
  }
  // Nothing below can fail: the Save is staged whole or not at all.
  const LogIndex first_kept = snap.has_value() ? snap->meta.index + 1 : memory_.FirstIndex();
  const LogIndex old_last = snap.has_value() ? snap->meta.index : memory_.LastIndex();
  rocksdb::WriteBatch& batch = Stage();
  if (snap.has_value()) {
    MustStage(batch.Put(Key(kSnapshotKind), snap_value));
    // The snapshot replaces the whole log (MemoryStorage::ApplySnapshot), not only its prefix.
    MustStage(batch.DeleteRange(EntryKey(LogIndex(0)), Key(kEntryEndKind)));
  }
  StageEntries(entries, first_kept, old_last);
  if (hs.has_value()) {
    pb::HardState p;
    ToProto(*hs, &p);
    const std::string key = Key(kHardStateKind);
    MustStage(batch.Put(key, FrameMessage(key, p)));
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

void GroupStorage::StageEntries(const std::vector<raft::Entry>& entries, LogIndex first_kept,
                                LogIndex old_last) {
  // Entries below the log's first index are already in the snapshot; MemoryStorage ignores
  // them, and so does the disk.
  if (entries.empty() || entries.back().index < first_kept) return;
  const LogIndex new_last = entries.back().index;
  // A batch applies its operations in order, so the entries put below survive this deletion
  // of the overwritten suffix's higher indexes.
  rocksdb::WriteBatch& batch = Stage();
  if (new_last < old_last) {
    MustStage(batch.DeleteRange(EntryKey(new_last + 1), EntryKey(old_last + 1)));
  }
  pb::Entry p;
  for (const raft::Entry& e : entries) {
    if (e.index < first_kept) continue;
    ToProto(e, &p);
    const std::string key = EntryKey(e.index);
    MustStage(batch.Put(key, FrameMessage(key, p)));
  }
}

Status GroupStorage::Sync() {
  if (!failure().ok()) return failure();
  SYNOD_ASSERT_MSG(node_->writes_outstanding() == 0, "Sync while a node write is outstanding");
  return node_->Sync();
}

Status GroupStorage::StageCompact(LogIndex index, const raft::ConfState& cs) {
  if (!failure().ok()) return failure();
  LogIndex newest = snapshot_.meta.index;
  if (staged_compaction_ && staged_compaction_->meta.index > newest) {
    newest = staged_compaction_->meta.index;
  }
  for (const auto& c : compactions_in_flight_) {
    if (c && c->meta.index > newest) newest = c->meta.index;
  }
  Result<raft::Snapshot> snap = CompactionSnapshot(index, newest, cs);
  if (!snap.ok()) return snap.status();
  Result<std::string> value = EncodeSnapshot(Key(kSnapshotKind), *snap);
  if (!value.ok()) return value.status();
  rocksdb::WriteBatch& batch = Stage();
  MustStage(batch.Put(Key(kSnapshotKind), *value));
  MustStage(batch.DeleteRange(EntryKey(LogIndex(0)), EntryKey(index + 1)));
  staged_compaction_ = std::move(*snap);
  return Status::Ok();
}

Result<raft::Snapshot> GroupStorage::CompactionSnapshot(LogIndex index, LogIndex newest,
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

void GroupStorage::FinishCompaction(const raft::Snapshot& snap) {
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

Status GroupStorage::Compact(LogIndex index, const raft::ConfState& cs,
                             std::string state_machine_image) {
  if (!failure().ok()) return failure();
  SYNOD_ASSERT_MSG(writes_outstanding_ == 0 && node_->writes_outstanding() == 0,
                   "Compact while a node write is outstanding");
  Result<raft::Snapshot> checked = CompactionSnapshot(index, snapshot_.meta.index, cs);
  if (!checked.ok()) return checked.status();
  raft::Snapshot snap = std::move(*checked);
  snap.data = std::move(state_machine_image);
  const Term term = snap.meta.term;
  Result<std::string> value = EncodeSnapshot(Key(kSnapshotKind), snap);
  if (!value.ok()) return value.status();

  // Everything staged first, in order, then the snapshot and the deletion of what it covers. A
  // compaction staged before is written with them and superseded by this one.
  staged_compaction_.reset();
  rocksdb::WriteBatch& batch = Stage();
  MustStage(batch.Put(Key(kSnapshotKind), *value));
  MustStage(batch.DeleteRange(EntryKey(LogIndex(0)), EntryKey(index + 1)));
  SYNOD_RETURN_IF_ERROR(node_->Sync());

  // Only now that the disk has it: memory_ never runs ahead of a failed compaction.
  Result<raft::Snapshot> created = memory_.CreateSnapshot(index, &cs, std::move(snap.data));
  SYNOD_ASSERT_MSG(created.ok(), "CreateSnapshot refused a checked index");
  SYNOD_ASSERT(created->meta.term == term);
  const Status compacted = memory_.Compact(index);
  SYNOD_ASSERT_MSG(compacted.ok(), "Compact refused an index after the snapshot");
  snapshot_ = std::move(*created);
  return Status::Ok();
}

Status GroupStorage::LoadStateApplied() {
  Engine& engine = node_->engine();
  const std::string applied_key = Key(kStateAppliedKind);
  Result<std::optional<std::string>> value = engine.Get(applied_key, "the state's applied index");
  if (!value.ok()) return value.status();
  if (!value->has_value()) return Status::Ok();  // no state yet
  Result<LogIndex> applied = DecodeApplied(applied_key, **value);
  if (!applied.ok()) return applied.status();
  const uint64_t v = applied->value();
  // The state of an entry is staged after the Save that made the entry committed, in the same
  // write or a later one, so the stored commit index is never behind it.
  if (LogIndex(v) > hard_state().commit) {
    return Status::Corruption(
        fmt::format("the state's applied index {} is beyond the commit "
                    "index {}",
                    v, hard_state().commit.value()));
  }
  state_applied_ = LogIndex(v);
  durable_applied_ = state_applied_;
  const std::string meta_key = Key(kStateMetaKind);
  Result<std::optional<std::string>> meta = engine.Get(meta_key, "the state's meta record");
  if (!meta.ok()) return meta.status();
  if (!meta->has_value()) return Status::Ok();  // no meta staged yet
  Result<std::string_view> meta_payload = Unframe(meta_key, **meta, "the state's meta");
  if (!meta_payload.ok()) return meta_payload.status();
  state_meta_ = std::string(*meta_payload);
  return Status::Ok();
}

void GroupStorage::StageState(const StateWrites& w) {
  if (!failure().ok()) return;  // the next write reports the failure
  SYNOD_ASSERT_MSG(w.reset || w.applied >= state_applied_, "the stored state would move back");
  if (span_.kind == StateSpan::Kind::kSlots) {
    for (const auto& [key, value] : w.data) {
      const uint16_t slot = KeySlot(key);
      if (slot < span_.first_slot || slot > span_.last_slot) {
        // The state machine changed a key of a slot this group does not own (another shard's
        // since a split): writing it would overwrite that shard's record. Refuse every write
        // from now on rather than store it; the node stops acknowledging.
        node_->RecordFailure(Status::Corruption(
            fmt::format("group {} changed key '{}' of slot {}, outside its slots {}-{}",
                        group_.value(), Printable(key), slot, span_.first_slot, span_.last_slot)));
        return;
      }
    }
  }
  rocksdb::WriteBatch& batch = Stage();
  if (w.reset) {
    MustStage(batch.DeleteRange(DataBegin(), DataEnd()));
    MustStage(batch.DeleteRange(Key(kSessionKind), Key(kSessionEndKind)));
  }
  if (w.clear_slots && span_.kind == StateSpan::Kind::kSlots) {
    SYNOD_ASSERT_MSG(w.clear_slots->first >= span_.first_slot &&
                         w.clear_slots->second <= span_.last_slot &&
                         w.clear_slots->first <= w.clear_slots->second,
                     "clearing slots outside the group's");
    MustStage(batch.DeleteRange(SlotKeyPrefix(w.clear_slots->first),
                                SlotKeyPrefix(uint32_t{w.clear_slots->second} + 1)));
  }
  for (const auto& [key, value] : w.data) {
    const std::string k = DataKey(key);
    // A value is at most kv::Options::value_bytes_max (512 MiB), far below WriteBatch's 4 GiB.
    MustStage(value ? batch.Put(k, FrameBytes(k, *value)) : batch.Delete(k));
  }
  for (const auto& [client_id, session] : w.sessions) {
    std::string k = Key(kSessionKind);
    format::AppendU64Be(client_id, &k);
    MustStage(session ? batch.Put(k, FrameBytes(k, *session)) : batch.Delete(k));
  }
  const std::string applied_key = Key(kStateAppliedKind);
  MustStage(batch.Put(applied_key, FrameApplied(applied_key, w.applied)));
  state_applied_ = w.applied;
  applied_staged_ = w.applied;
  if (w.meta) {
    const std::string meta_key = Key(kStateMetaKind);
    MustStage(batch.Put(meta_key, FrameBytes(meta_key, *w.meta)));
    state_meta_ = *w.meta;
  }
}

void GroupStorage::StageDestroy(bool with_data) {
  if (!failure().ok()) return;
  rocksdb::WriteBatch& batch = Stage();
  std::string begin(1, kGroupPrefix);
  format::AppendU64Be(group_.value(), &begin);
  std::string end(1, kGroupPrefix);
  format::AppendU64Be(group_.value() + 1, &end);
  MustStage(batch.DeleteRange(begin, end));  // every record of the group, its own keys too
  if (with_data && span_.kind == StateSpan::Kind::kSlots) {
    MustStage(batch.DeleteRange(DataBegin(), DataEnd()));
  }
}

Status GroupStorage::ForEachState(const StateDataFn& data_fn,
                                  const StateSessionFn& session_fn) const {
  const size_t data_prefix = DataKeyPrefixBytes();
  // Checks a record's frame; an error names it by its key from `name_at` on.
  const auto unframe = [](std::string_view key, std::string_view value, size_t name_at) {
    return Unframe(key, value, fmt::format("state record '{}'", Printable(key.substr(name_at))));
  };
  std::vector<ScanRange> ranges;
  ranges.push_back({DataBegin(), DataEnd(), [&](std::string_view key, std::string_view value) {
                      Result<std::string_view> payload = unframe(key, value, data_prefix);
                      if (!payload.ok()) return payload.status();
                      return data_fn(key.substr(data_prefix), *payload);
                    }});
  ranges.push_back(
      {Key(kSessionKind), Key(kSessionEndKind), [&](std::string_view key, std::string_view value) {
         Result<std::string_view> payload = unframe(key, value, kGroupPrefixBytes);
         if (!payload.ok()) return payload.status();
         if (key.size() != kSessionKeyBytes) {
           return Status::Corruption(fmt::format("malformed session key of {} bytes", key.size()));
         }
         return session_fn(format::GetU64Be(key.data() + kGroupPrefixBytes + 1), *payload);
       }});
  // Both ranges as of one write.
  return node_->engine().Scan(ranges);
}

}  // namespace synod::storage
