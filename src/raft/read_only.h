// ReadOnlyQueue: the leader's pending ReadIndex requests (Raft thesis §6.4).
//
// A read request records the commit index at the time it arrived and waits until a quorum of
// voters has acknowledged a heartbeat carrying its context: that proves this node was still
// the leader when the read arrived, so serving the state at that index is linearizable.
// Requests are released in arrival order: an ack for a later request also confirms every
// earlier one.
//
// Thread-safety: none; owned by the leader role.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "raft/quorum.h"
#include "raft/types.h"

namespace synod::raft {

struct ReadRequest {
  LogIndex index;  // the commit index when the request arrived
  NodeId from;     // who asked (this node, or a follower that forwarded it)
  std::string context;
};

class ReadOnlyQueue {
 public:
  // Adds a request unless one with the same context is pending (then it is a no-op and
  // returns false). `self` acknowledges it at once.
  bool Add(ReadRequest req, NodeId self);
  // Records that `from` acknowledged the heartbeat carrying `context`. Returns the acks so
  // far for that request, or nullptr if it is unknown (already released or never added).
  const std::map<NodeId, bool>* Ack(NodeId from, const std::string& context);
  // Removes and returns every request up to and including the one with `context`.
  std::vector<ReadRequest> ReleaseThrough(const std::string& context);
  // Removes and returns everything (the leader stepped down).
  std::vector<ReadRequest> Clear();

  // Whether a request with `context` is pending.
  bool Contains(const std::string& context) const { return seq_by_context_.count(context) > 0; }
  // The context of the newest pending request, if any.
  std::optional<std::string> LastContext() const;
  size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }

 private:
  struct Pending {
    ReadRequest req;
    std::map<NodeId, bool> acks;
  };
  std::deque<Pending> queue_;
  std::unordered_map<std::string, size_t> seq_by_context_;  // context -> sequence number
  uint64_t first_seq_ = 0;                                  // sequence of queue_.front()
};

}  // namespace synod::raft
