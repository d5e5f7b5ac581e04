#include "storage/log_store.h"

#include <fmt/format.h>

namespace synod::storage {

Status CheckEntriesFollow(const std::vector<raft::Entry>& entries, LogIndex last) {
  if (entries.empty()) return Status::Ok();
  const LogIndex first = entries.front().index;
  if (first == LogIndex(0) || first > last + 1) {
    return Status::InvalidArgument(
        fmt::format("entries start at index {}, leaving a gap after last index {}", first.value(),
                    last.value()));
  }
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].index != entries[i - 1].index + 1) {
      return Status::InvalidArgument(fmt::format("entry index {} does not follow {}",
                                                 entries[i].index.value(),
                                                 entries[i - 1].index.value()));
    }
  }
  return Status::Ok();
}

Status CheckSaveShape(const raft::Snapshot& current, const raft::Storage& memory,
                      const std::optional<raft::Snapshot>& snap,
                      const std::vector<raft::Entry>& entries,
                      const std::optional<raft::HardState>& hs) {
  if (snap.has_value() && !current.IsEmpty() && snap->meta.index <= current.meta.index) {
    return Status(Code::kSnapshotOutOfDate, "snapshot not newer than the current one");
  }
  LogIndex last = snap.has_value() ? snap->meta.index : memory.LastIndex();
  SYNOD_RETURN_IF_ERROR(CheckEntriesFollow(entries, last));
  // Append truncates the log after the last new entry, unless every entry is compacted.
  const LogIndex first = snap.has_value() ? snap->meta.index + 1 : memory.FirstIndex();
  if (!entries.empty() && entries.back().index >= first) last = entries.back().index;
  if (hs.has_value() && hs->commit > last) {
    return Status::InvalidArgument(
        fmt::format("commit index {} beyond the last index {}", hs->commit.value(), last.value()));
  }
  return Status::Ok();
}

}  // namespace synod::storage
