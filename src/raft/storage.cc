#include "raft/storage.h"

#include <cstddef>
#include <utility>

#include "common/assert.h"

namespace synod::raft {

MemoryStorage::MemoryStorage() {
  // A fresh log starts with the dummy entry (index 0, term 0) so that the term of the entry
  // before FirstIndex() is always known, which is what matching a leader's first append needs.
  ents_.emplace_back();
}

Result<std::pair<HardState, ConfState>> MemoryStorage::InitialState() const {
  return std::make_pair(hard_state_, snapshot_.meta.conf_state);
}

Result<std::vector<Entry>> MemoryStorage::Entries(LogIndex lo, LogIndex hi,
                                                  uint64_t max_bytes) const {
  SYNOD_ASSERT_MSG(lo <= hi, "Entries: lo > hi");
  const LogIndex offset = ents_[0].index;
  if (lo <= offset) return Status(Code::kCompacted, "entries compacted");
  if (hi > LastIndex() + 1) return Status(Code::kUnavailableEntries, "entries beyond last index");
  if (lo == hi) return std::vector<Entry>();

  // Count first so that the result is built with one allocation and no entry is copied twice.
  const size_t begin = lo.value() - offset.value();
  const size_t end = hi.value() - offset.value();
  size_t limit = begin + 1;  // the first entry is always returned, whatever its size
  uint64_t bytes = ents_[begin].PayloadBytes();
  while (limit < end) {
    bytes += ents_[limit].PayloadBytes();
    if (bytes > max_bytes) break;
    ++limit;
  }
  return std::vector<Entry>(ents_.begin() + static_cast<ptrdiff_t>(begin),
                            ents_.begin() + static_cast<ptrdiff_t>(limit));
}

Result<Term> MemoryStorage::TermAt(LogIndex i) const {
  const LogIndex offset = ents_[0].index;
  if (i < offset) return Status(Code::kCompacted, "term compacted");
  const uint64_t pos = i.value() - offset.value();
  if (pos >= ents_.size()) return Status(Code::kUnavailableEntries, "term beyond last index");
  return ents_[pos].term;
}

LogIndex MemoryStorage::FirstIndex() const { return ents_[0].index + 1; }

LogIndex MemoryStorage::LastIndex() const { return ents_[0].index + (ents_.size() - 1); }

Result<Snapshot> MemoryStorage::GetSnapshot() const {
  if (source_ && snapshot_.meta.index > LogIndex(0)) {
    Result<Snapshot> built = source_();
    if (built.ok()) {
      SYNOD_ASSERT_MSG(built->meta.index >= snapshot_.meta.index,
                       "a built snapshot is older than the stored one");
    }
    return built;
  }
  return snapshot_;
}

Status MemoryStorage::ApplySnapshot(Snapshot snap) {
  // Like etcd, a storage that never had a snapshot accepts any, including one at index 0: an
  // application bootstraps a group by applying a snapshot that carries only the ConfState.
  const LogIndex current = snapshot_.meta.index;
  if (current != LogIndex(0) && snap.meta.index <= current) {
    return Status(Code::kSnapshotOutOfDate, "snapshot older than the current one");
  }
  Entry dummy;
  dummy.index = snap.meta.index;
  dummy.term = snap.meta.term;
  ents_.clear();
  ents_.push_back(std::move(dummy));
  snapshot_ = std::move(snap);
  return Status::Ok();
}

Result<Snapshot> MemoryStorage::CreateSnapshot(LogIndex i, const ConfState* cs, std::string data) {
  if (i <= snapshot_.meta.index) {
    return Status(Code::kSnapshotOutOfDate, "snapshot index not after the current one");
  }
  SYNOD_ASSERT_MSG(i <= LastIndex(), "CreateSnapshot beyond the last index");
  // Compact() may have moved the dummy past the snapshot index, so the entry must be in ents_.
  const LogIndex offset = ents_[0].index;
  SYNOD_ASSERT_MSG(i >= offset, "CreateSnapshot of a compacted index");
  snapshot_.meta.index = i;
  snapshot_.meta.term = ents_[i.value() - offset.value()].term;
  if (cs != nullptr) snapshot_.meta.conf_state = *cs;
  snapshot_.data = std::move(data);
  return snapshot_;
}

Status MemoryStorage::Compact(LogIndex compact_index) {
  const LogIndex offset = ents_[0].index;
  if (compact_index <= offset) return Status(Code::kCompacted, "already compacted");
  SYNOD_ASSERT_MSG(compact_index <= LastIndex(), "Compact beyond the last index");
  const size_t pos = compact_index.value() - offset.value();
  ents_.erase(ents_.begin(), ents_.begin() + static_cast<ptrdiff_t>(pos));
  // The new dummy keeps only its index and term; its payload was folded into a snapshot.
  ents_[0].type = EntryType::kNormal;
  ents_[0].data = std::string();
  return Status::Ok();
}

Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return Status::Ok();
  const LogIndex first = FirstIndex();
  const LogIndex entries_first = entries.front().index;
  const LogIndex entries_last = entries_first + (entries.size() - 1);
  SYNOD_ASSERT_MSG(entries.back().index == entries_last, "Append of non-contiguous entries");
  // Nothing new: every entry was already compacted into the snapshot.
  if (entries_last < first) return Status::Ok();

  // Skip the entries that are already compacted.
  size_t skip = 0;
  if (entries_first < first) skip = first.value() - entries_first.value();
  const uint64_t pos = entries[skip].index.value() - ents_[0].index.value();
  SYNOD_ASSERT_MSG(pos <= ents_.size(), "Append would leave a gap after the last index");
  // Drop the conflicting suffix (if any); the new entries replace it.
  // No reserve(): an exact reserve per append would defeat the vector's geometric growth.
  ents_.resize(pos);
  ents_.insert(ents_.end(), entries.begin() + static_cast<ptrdiff_t>(skip), entries.end());
  return Status::Ok();
}

}  // namespace synod::raft
