#include "raft/quorum.h"

#include <algorithm>
#include <array>
#include <limits>
#include <vector>

#include "common/assert.h"

namespace synod::raft {

namespace {

// Configurations up to this size (every production group: 3, 5 or 7 voters) are sorted in a
// stack array, so CommittedIndex, which runs on every append response, never allocates.
constexpr size_t kStackVotersMax = 7;

// Insertion sort: for at most kStackVotersMax values it beats std::sort's set-up cost.
void SortSmall(uint64_t* values, size_t n) {
  for (size_t i = 1; i < n; ++i) {
    const uint64_t v = values[i];
    size_t j = i;
    while (j > 0 && values[j - 1] > v) {
      values[j] = values[j - 1];
      --j;
    }
    values[j] = v;
  }
}

// Appends the members of `ids` to `out` as "(1 2 3)".
void AppendIds(const std::set<NodeId>& ids, std::string* out) {
  out->push_back('(');
  bool first = true;
  for (NodeId id : ids) {
    if (!first) out->push_back(' ');
    first = false;
    out->append(std::to_string(id.value()));
  }
  out->push_back(')');
}

}  // namespace

const char* VoteResultName(VoteResult r) {
  switch (r) {
    case VoteResult::kPending:
      return "VotePending";
    case VoteResult::kLost:
      return "VoteLost";
    case VoteResult::kWon:
      return "VoteWon";
  }
  return "VoteUnknown";
}

uint64_t MajorityConfig::CommittedIndex(const AckedIndexer& acked) const {
  const size_t n = ids_.size();
  if (n == 0) {
    // An empty half constrains nothing, so that min() over a joint config is the other half.
    return std::numeric_limits<uint64_t>::max();
  }
  std::array<uint64_t, kStackVotersMax> stack_values;
  std::vector<uint64_t> heap_values;
  uint64_t* values = stack_values.data();
  if (n > kStackVotersMax) {
    heap_values.resize(n);
    values = heap_values.data();
  }
  size_t i = 0;
  for (NodeId id : ids_) values[i++] = acked.AckedIndex(id).value_or(0);
  SYNOD_ASSERT(i == n);
  if (n <= kStackVotersMax) {
    SortSmall(values, n);
  } else {
    std::sort(values, values + n);
  }
  // In ascending order, the value at n - quorum is acked by itself and every voter above it:
  // exactly a quorum (n/2 + 1) of voters acked at least that much, and no larger value has
  // as many.
  const size_t quorum = n / 2 + 1;
  return values[n - quorum];
}

VoteResult MajorityConfig::Vote(const std::map<NodeId, bool>& votes) const {
  if (ids_.empty()) return VoteResult::kWon;
  size_t yes = 0;
  size_t no = 0;
  for (NodeId id : ids_) {
    auto it = votes.find(id);
    if (it == votes.end()) continue;
    if (it->second) {
      ++yes;
    } else {
      ++no;
    }
  }
  const size_t quorum = ids_.size() / 2 + 1;
  const size_t missing = ids_.size() - yes - no;
  if (yes >= quorum) return VoteResult::kWon;
  if (yes + missing >= quorum) return VoteResult::kPending;
  return VoteResult::kLost;
}

std::string MajorityConfig::ToString() const {
  std::string out;
  AppendIds(ids_, &out);
  return out;
}

std::set<NodeId> JointConfig::Ids() const {
  std::set<NodeId> ids = incoming.ids();
  ids.insert(outgoing.ids().begin(), outgoing.ids().end());
  return ids;
}

uint64_t JointConfig::CommittedIndex(const AckedIndexer& acked) const {
  return std::min(incoming.CommittedIndex(acked), outgoing.CommittedIndex(acked));
}

VoteResult JointConfig::Vote(const std::map<NodeId, bool>& votes) const {
  const VoteResult in = incoming.Vote(votes);
  const VoteResult out = outgoing.Vote(votes);
  if (in == out) return in;  // both won, both lost or both pending
  if (in == VoteResult::kLost || out == VoteResult::kLost) return VoteResult::kLost;
  // One half won and the other is still pending.
  return VoteResult::kPending;
}

std::string JointConfig::ToString() const {
  std::string out = incoming.ToString();
  if (!outgoing.empty()) {
    out.append("&&");
    out.append(outgoing.ToString());
  }
  return out;
}

}  // namespace synod::raft
