#include "check/key_view.h"

#include <algorithm>
#include <limits>

#include "common/assert.h"

namespace synod::check::internal {

KeyView::KeyView(const History& history, std::vector<uint32_t> ops)
    : history_(history), ops_(std::move(ops)) {
  SYNOD_ASSERT(!ops_.empty());
  std::sort(ops_.begin(), ops_.end(), [&](uint32_t a, uint32_t b) {
    const int64_t ca = history_[a].call_ns;
    const int64_t cb = history_[b].call_ns;
    return ca != cb ? ca < cb : a < b;
  });
  written_.assign(kFirstValueId, false);
  for (uint32_t i : ops_) {
    const Operation& op = history_[i];
    SYNOD_ASSERT(op.key == key());
    for (const auto* v : {&op.value, &op.expected}) {
      if (v->has_value() && !ids_.contains(**v)) {
        ids_.emplace(**v, static_cast<int32_t>(ids_.size()) + kFirstValueId);
        written_.push_back(false);
      }
    }
    if (op.type == OpType::kPut || op.type == OpType::kCas) written_[Id(op.value)] = true;
  }
}

int32_t KeyView::Id(const std::optional<std::string>& value) const {
  if (!value.has_value()) return kAbsent;
  auto it = ids_.find(*value);
  SYNOD_ASSERT(it != ids_.end());
  return it->second;
}

bool KeyView::EverWritten(const std::optional<std::string>& value) const {
  if (!value.has_value()) return true;  // absent: the initial state
  auto it = ids_.find(*value);
  return it != ids_.end() && written_[it->second];
}

bool KeyView::Convert(uint32_t index, const Cut& cut, SearchOp* out) const {
  const Operation& op = history_[index];
  if (op.call_ns > cut.end_ns) return false;
  bool optional = op.unknown || op.return_ns > cut.end_ns;
  int64_t call_ns = op.call_ns;
  if (!cut.from_start && op.call_ns < cut.start_ns) {
    if (!op.unknown && op.return_ns < cut.start_ns) return false;
    optional = true;
    call_ns = cut.start_ns;
  }
  // A definitely failed get/put/del did nothing; a failed cas only read.
  const bool failed = !op.ok && !op.unknown;
  SearchKind kind = SearchKind::kGet;
  switch (op.type) {
    case OpType::kGet:
      if (optional || failed) return false;
      kind = SearchKind::kGet;
      break;
    case OpType::kPut:
    case OpType::kDel:
      if (failed) return false;
      kind = op.type == OpType::kPut ? SearchKind::kPut : SearchKind::kDel;
      break;
    case OpType::kCas:
      if (optional && failed) return false;
      kind = optional ? SearchKind::kCasOptional
                      : (op.ok ? SearchKind::kCasOk : SearchKind::kCasFailed);
      break;
  }
  *out = SearchOp{.kind = kind,
                  .value = Id(op.value),
                  .expected = Id(op.expected),
                  .optional = optional,
                  .call_ns = call_ns,
                  .return_ns = optional ? kNeverNs : op.return_ns,
                  .source = index};
  return true;
}

SearchProblem KeyView::Build(const Cut& cut) const {
  SearchProblem p;
  const size_t value_ids = ids_.size() + kFirstValueId;
  p.initial_state = cut.from_start ? kAbsent : kAnyState;
  p.may_be_initial.assign(value_ids, false);
  for (uint32_t index : ops_) {
    const Operation& op = history_[index];
    // Whatever a put or a cas called before the window may have written can be there at its
    // start, unless the operation is known to have written nothing.
    const bool may_write =
        (op.type == OpType::kPut || op.type == OpType::kCas) && (op.ok || op.unknown);
    if (!cut.from_start && op.call_ns < cut.start_ns && may_write) {
      p.may_be_initial[Id(op.value)] = true;
    }
    SearchOp s;
    if (Convert(index, cut, &s)) p.ops.push_back(s);
  }
  DropUnobservedWrites(&p, value_ids);
  return p;
}

WindowOp::Role KeyView::RoleOf(const SearchOp& op, const Cut& cut) const {
  const Operation& o = history_[op.source];
  if (o.unknown) return WindowOp::Role::kUnknown;
  if (!cut.from_start && o.call_ns < cut.start_ns) return WindowOp::Role::kStartedBefore;
  if (o.return_ns > cut.end_ns) return WindowOp::Role::kPendingAtEnd;
  return WindowOp::Role::kComplete;
}

// An optional write W of value v (called at c) can be dropped when no operation that might be
// linearized after it observes v: no get reads v, no cas expects v, and no cas failed, among
// operations that are optional or return at or after c. Proof: in a linearization that uses W,
// the state is v from W until the next write; nothing may sit in between (it would observe v),
// and the next write (a put or del: a successful cas would need to expect v) does not depend on
// the state. So removing W leaves a valid linearization. This matters because writes that
// timed out and never happened are common, and each would otherwise double the search.
void DropUnobservedWrites(SearchProblem* problem, size_t value_ids) {
  std::vector<int64_t> last_observed(value_ids, std::numeric_limits<int64_t>::min());
  int64_t last_failed_cas = std::numeric_limits<int64_t>::min();
  for (const SearchOp& op : problem->ops) {
    const int64_t until = op.optional ? kNeverNs : op.return_ns;
    if (op.kind == SearchKind::kGet) {
      last_observed[op.value] = std::max(last_observed[op.value], until);
    } else if (op.kind == SearchKind::kCasOk || op.kind == SearchKind::kCasOptional) {
      last_observed[op.expected] = std::max(last_observed[op.expected], until);
    } else if (op.kind == SearchKind::kCasFailed) {
      last_failed_cas = std::max(last_failed_cas, until);
    }
  }
  std::erase_if(problem->ops, [&](const SearchOp& op) {
    if (!op.optional || op.kind == SearchKind::kGet || op.kind == SearchKind::kCasFailed) {
      return false;
    }
    const int32_t written = op.kind == SearchKind::kDel ? kAbsent : op.value;
    return std::max(last_observed[written], last_failed_cas) < op.call_ns;
  });
}

}  // namespace synod::check::internal
