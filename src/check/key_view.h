// KeyView: the operations of one key, and how to turn a time window of them into a search.
//
// Registers are independent, so a history is linearizable iff each key's sub-history is
// (Herlihy & Wing's locality; Horn & Kroening call it P-compositionality). The checker makes
// one KeyView per key and asks it for SearchProblems: the whole sub-history, or a Cut of it.
//
// A Cut [start, end] selects what a window of time says, in a way that is implied by the whole
// history (so a window that cannot be linearized proves the history cannot be):
//   - operations called after `end` are left out;
//   - an operation still running at `end` becomes optional (it may take effect later);
//   - unless the cut is from the start, operations that returned before `start` are left out,
//     those running at `start` become optional from `start` on (their effect may also have
//     happened before `start`), and the register starts in an unknown state: absent, or any
//     value an operation called before `start` may have written;
//   - an optional operation that can only read (a get, a failed cas) carries no information
//     and is left out; so is an optional write that nothing in the window can observe.
//
// Thread-safety: immutable after construction; refers to the History, which must outlive it.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "check/checker.h"
#include "check/operation.h"
#include "check/wgl.h"

namespace synod::check::internal {

struct Cut {
  bool from_start = true;  // true: no left edge, the register starts absent
  int64_t start_ns = 0;    // used when !from_start
  int64_t end_ns = kNeverNs;
};

class KeyView {
 public:
  // `ops` are indices into `history`, all of one key.
  KeyView(const History& history, std::vector<uint32_t> ops);

  const History& history() const { return history_; }
  std::string_view key() const { return history_[ops_.front()].key; }
  // Sorted by (call_ns, index).
  const std::vector<uint32_t>& ops() const { return ops_; }

  SearchProblem Build(const Cut& cut) const;
  // How a search operation built for `cut` takes part in it, for reports.
  WindowOp::Role RoleOf(const SearchOp& op, const Cut& cut) const;
  // True when some put or cas on this key (whatever its outcome) writes `value`.
  bool EverWritten(const std::optional<std::string>& value) const;

 private:
  int32_t Id(const std::optional<std::string>& value) const;
  // The search operation for history_[index] under `cut`, or false when it is left out.
  bool Convert(uint32_t index, const Cut& cut, SearchOp* out) const;

  const History& history_;
  std::vector<uint32_t> ops_;
  std::unordered_map<std::string_view, int32_t> ids_;  // value -> id >= kFirstValueId
  std::vector<bool> written_;                          // by id: some put/cas writes it
};

// Drops optional writes that no operation in the problem can observe (see key_view.cc).
void DropUnobservedWrites(SearchProblem* problem, size_t value_ids);

}  // namespace synod::check::internal
