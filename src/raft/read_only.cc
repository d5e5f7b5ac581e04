#include "raft/read_only.h"

#include "common/assert.h"

namespace synod::raft {

bool ReadOnlyQueue::Add(ReadRequest req, NodeId self) {
  if (seq_by_context_.count(req.context)) return false;
  uint64_t seq = first_seq_ + queue_.size();
  seq_by_context_.emplace(req.context, seq);
  Pending p{std::move(req), {}};
  p.acks.emplace(self, true);
  queue_.push_back(std::move(p));
  return true;
}

const std::map<NodeId, bool>* ReadOnlyQueue::Ack(NodeId from, const std::string& context) {
  auto it = seq_by_context_.find(context);
  if (it == seq_by_context_.end()) return nullptr;
  SYNOD_ASSERT(it->second >= first_seq_ && it->second - first_seq_ < queue_.size());
  Pending& p = queue_[it->second - first_seq_];
  p.acks[from] = true;
  return &p.acks;
}

std::vector<ReadRequest> ReadOnlyQueue::ReleaseThrough(const std::string& context) {
  std::vector<ReadRequest> out;
  auto it = seq_by_context_.find(context);
  if (it == seq_by_context_.end()) return out;
  uint64_t last = it->second;
  while (!queue_.empty() && first_seq_ <= last) {
    seq_by_context_.erase(queue_.front().req.context);
    out.push_back(std::move(queue_.front().req));
    queue_.pop_front();
    ++first_seq_;
  }
  return out;
}

std::vector<ReadRequest> ReadOnlyQueue::Clear() {
  std::vector<ReadRequest> out;
  out.reserve(queue_.size());
  for (Pending& p : queue_) out.push_back(std::move(p.req));
  first_seq_ += queue_.size();
  queue_.clear();
  seq_by_context_.clear();
  return out;
}

std::optional<std::string> ReadOnlyQueue::LastContext() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.back().req.context;
}

}  // namespace synod::raft
