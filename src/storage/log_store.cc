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

}  // namespace synod::storage
