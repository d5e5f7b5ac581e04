#include "raft/inflights.h"

#include <algorithm>

#include "common/assert.h"

namespace synod::raft {

Inflights::Inflights(size_t size_max, uint64_t bytes_max)
    : size_max_(size_max), bytes_max_(bytes_max) {
  SYNOD_ASSERT_MSG(size_max > 0, "an inflights window must admit at least one message");
}

size_t Inflights::Slot(size_t offset) const {
  // offset <= count_ <= buffer_.size() and start_ < buffer_.size(), so one wrap suffices.
  SYNOD_ASSERT(offset <= buffer_.size());
  size_t slot = start_ + offset;
  if (slot >= buffer_.size()) slot -= buffer_.size();
  return slot;
}

void Inflights::Grow() {
  SYNOD_ASSERT(buffer_.size() < size_max_);
  // Start small and double: most followers keep only a few messages in flight, and a leader
  // of many groups should not pay size_max records per follower up front.
  const size_t new_size = buffer_.empty() ? 1 : std::min(buffer_.size() * 2, size_max_);
  std::vector<Record> grown(new_size);
  for (size_t i = 0; i < count_; ++i) grown[i] = buffer_[Slot(i)];
  buffer_ = std::move(grown);
  start_ = 0;
}

void Inflights::Add(LogIndex index, uint64_t bytes) {
  SYNOD_ASSERT_MSG(!Full(), "sent an append with a full inflights window");
  if (count_ > 0) {
    SYNOD_ASSERT_MSG(index > buffer_[Slot(count_ - 1)].index, "inflight indexes must increase");
  }
  if (count_ == buffer_.size()) Grow();
  buffer_[Slot(count_)] = Record{index, bytes};
  ++count_;
  bytes_ += bytes;
  SYNOD_ASSERT(count_ <= size_max_);
}

void Inflights::FreeLE(LogIndex index) {
  if (count_ == 0 || index < buffer_[start_].index) return;  // nothing acknowledged here
  size_t freed = 0;
  uint64_t freed_bytes = 0;
  // Records are sorted by index, so the acknowledged ones are a prefix.
  while (freed < count_) {
    const Record& r = buffer_[Slot(freed)];
    if (r.index > index) break;
    freed_bytes += r.bytes;
    ++freed;
  }
  SYNOD_ASSERT(freed_bytes <= bytes_);
  start_ = Slot(freed);
  count_ -= freed;
  bytes_ -= freed_bytes;
  if (count_ == 0) {
    // Restart at the front, so a window that drains often does not keep wrapping around.
    start_ = 0;
    SYNOD_ASSERT(bytes_ == 0);
  }
}

void Inflights::Reset() {
  // Keep the buffer: the follower will most likely fill the window again soon.
  start_ = 0;
  count_ = 0;
  bytes_ = 0;
}

bool Inflights::Full() const {
  return count_ == size_max_ || (bytes_max_ > 0 && bytes_ >= bytes_max_);
}

}  // namespace synod::raft
