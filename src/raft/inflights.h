// Inflights: the bounded window of append messages sent to one follower but not yet
// acknowledged (flow control, as in etcd's tracker.Inflights).
//
// The window is bounded both in messages (`size_max`) and in payload bytes (`bytes_max`,
// 0 = unbounded). The leader adds one record per kApp it sends in the replicate state, keyed
// by the index of the last entry in that message, and frees every record up to an index
// when the follower acknowledges it.
//
// Thread-safety: none; owned by the leader's Progress of one follower.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/ids.h"

namespace synod::raft {

class Inflights {
 public:
  // REQUIRES: size_max > 0.
  Inflights(size_t size_max, uint64_t bytes_max);

  // Records a message whose last entry is `index`, carrying `bytes` of payload.
  // REQUIRES: !Full(); `index` larger than every index already recorded.
  void Add(LogIndex index, uint64_t bytes);
  // Frees every record with index <= `index`.
  void FreeLE(LogIndex index);
  // Frees everything.
  void Reset();

  // True when no further message may be sent: count == size_max, or bytes >= bytes_max.
  bool Full() const;
  size_t Count() const { return count_; }
  uint64_t Bytes() const { return bytes_; }
  size_t size_max() const { return size_max_; }
  uint64_t bytes_max() const { return bytes_max_; }

 private:
  struct Record {
    LogIndex index;
    uint64_t bytes = 0;
  };
  // The buffer slot of the record `offset` places after the oldest one.
  size_t Slot(size_t offset) const;
  // Doubles the buffer (up to size_max_), moving the records to its front.
  void Grow();
  size_t size_max_;
  uint64_t bytes_max_;
  // A ring buffer of `count_` records starting at `start_`, grown lazily up to size_max_.
  std::vector<Record> buffer_;
  size_t start_ = 0;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace synod::raft
