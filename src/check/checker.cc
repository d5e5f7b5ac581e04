#include "check/checker.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "check/key_view.h"
#include "check/wgl.h"
#include "common/assert.h"

namespace synod::check {

using internal::Cut;
using internal::KeyView;
using internal::Search;
using internal::SearchOutcome;
using internal::SearchProblem;

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable:
      return "linearizable";
    case Verdict::kNotLinearizable:
      return "not linearizable";
    case Verdict::kUnknown:
      return "unknown";
  }
  SYNOD_UNREACHABLE();
}

namespace {

std::vector<int64_t> SortedUnique(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Step 1 of checker.h: the earliest end whose prefix cannot be linearized. Sets *minimal to
// false when the budget ran out (the answer is then a later end that is known to fail).
int64_t FindWindowEnd(const KeyView& view, SearchBudget& budget, bool* minimal) {
  std::vector<int64_t> ends;
  for (const auto& op : view.Build(Cut{}).ops) {
    if (!op.optional) ends.push_back(op.return_ns);
  }
  ends = SortedUnique(std::move(ends));
  SYNOD_ASSERT(!ends.empty());
  // Invariant: the prefix ending at ends[hi] fails (at first: it is the whole history); every
  // prefix ending before ends[lo] passes.
  size_t lo = 0;
  size_t hi = ends.size() - 1;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const SearchOutcome r = Search(view.Build(Cut{.end_ns = ends[mid]}), budget);
    if (r == SearchOutcome::kBudgetExhausted) {
      *minimal = false;
      break;
    }
    if (r == SearchOutcome::kNotLinearizable) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return ends[hi];
}

// Step 2 of checker.h: the latest start for which the window ending at end_ns still fails.
Cut FindWindowStart(const KeyView& view, int64_t end_ns, SearchBudget& budget, bool* minimal) {
  const Cut prefix{.end_ns = end_ns};
  std::vector<int64_t> starts;
  for (const auto& op : view.Build(prefix).ops) {
    if (!op.optional) starts.push_back(op.call_ns);
  }
  starts = SortedUnique(std::move(starts));
  // Invariant: starting at starts[lo] fails (lo == -1: from the start of the history);
  // starting at starts[hi] passes (hi == size: no complete operation is left).
  ptrdiff_t lo = -1;
  auto hi = static_cast<ptrdiff_t>(starts.size());
  while (*minimal && hi - lo > 1) {
    const ptrdiff_t mid = lo + (hi - lo) / 2;
    const Cut cut{.from_start = false, .start_ns = starts[mid], .end_ns = end_ns};
    const SearchOutcome r = Search(view.Build(cut), budget);
    if (r == SearchOutcome::kBudgetExhausted) {
      *minimal = false;
    } else if (r == SearchOutcome::kNotLinearizable) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  // Nothing called before the start: that is the start of the history, where the state is known.
  const int64_t first_call_ns = view.history()[view.ops().front()].call_ns;
  if (lo < 0 || starts[lo] <= first_call_ns) return prefix;
  return Cut{.from_start = false, .start_ns = starts[lo], .end_ns = end_ns};
}

FailureWindow FindWindow(const KeyView& view, SearchBudget& budget) {
  FailureWindow w;
  w.end_ns = FindWindowEnd(view, budget, &w.minimal);
  const Cut cut = FindWindowStart(view, w.end_ns, budget, &w.minimal);
  w.from_start = cut.from_start;
  w.start_ns = cut.start_ns;
  const SearchProblem p = view.Build(cut);
  // The culprit returns at the end: a window that fails has a complete operation returning at
  // its end, or a shorter window would fail, and then an earlier prefix. Should that reasoning
  // ever not hold, report the complete operation that returns last, rather than crash.
  bool have_culprit = false;
  int64_t culprit_return_ns = 0;
  for (const auto& op : p.ops) {
    w.ops.push_back(WindowOp{.index = op.source, .role = view.RoleOf(op, cut)});
    if (!op.optional && (!have_culprit || op.return_ns > culprit_return_ns)) {
      w.culprit = op.source;
      culprit_return_ns = op.return_ns;
      have_culprit = true;
    }
  }
  SYNOD_ASSERT(have_culprit);  // a window without complete operations cannot fail
  w.end_ns = culprit_return_ns;
  return w;
}

// A hint for the commonest kind of failure: a result that no write could have produced.
std::string NeverWrittenHint(const KeyView& view, const Operation& op, size_t index) {
  if (op.unknown || !op.ok) return "";
  if (op.type == OpType::kGet && !view.EverWritten(op.value)) {
    return fmt::format(" Op #{} read {}, which no operation on this key ever wrote.", index + 1,
                       QuoteValue(op.value));
  }
  if (op.type == OpType::kCas && !view.EverWritten(op.expected)) {
    return fmt::format(
        " Op #{} found {} (its cas succeeded), which no operation on this key "
        "ever wrote.",
        index + 1, QuoteValue(op.expected));
  }
  return "";
}

std::string Explain(const KeyView& view, const History& history, const FailureWindow& w) {
  std::string s = fmt::format(
      "The history of this key stops being linearizable at t={}, when op #{} returned: no "
      "order of the {} operations of the window, consistent with real time, explains their "
      "results, ",
      w.end_ns, w.culprit + 1, w.ops.size());
  s += w.from_start ? std::string("starting from the empty store.")
                    : fmt::format("whatever the key held at t={}.", w.start_ns);
  s += NeverWrittenHint(view, history[w.culprit], w.culprit);
  if (!w.minimal) s += " (The budget ran out while shrinking it: it may not be the smallest.)";
  return s;
}

// Groups operations by key; the map keeps keys sorted for the report.
std::vector<KeyView> SplitByKey(const History& history) {
  std::map<std::string_view, std::vector<uint32_t>> groups;
  for (size_t i = 0; i < history.size(); ++i) {
    groups[history[i].key].push_back(static_cast<uint32_t>(i));
  }
  std::vector<KeyView> views;
  views.reserve(groups.size());
  for (auto& [key, ops] : groups) views.emplace_back(history, std::move(ops));
  return views;
}

Verdict Combine(const std::vector<KeyResult>& keys) {
  Verdict v = Verdict::kLinearizable;
  for (const KeyResult& k : keys) {
    if (k.verdict == Verdict::kNotLinearizable) return k.verdict;
    if (k.verdict == Verdict::kUnknown) v = Verdict::kUnknown;
  }
  return v;
}

}  // namespace

CheckResult CheckHistory(const History& history, SearchBudget& budget) {
  SYNOD_ASSERT(history.size() < (size_t{1} << 31));
  for (const Operation& op : history) SYNOD_ASSERT(ValidateOperation(op).ok());
  const std::vector<KeyView> views = SplitByKey(history);
  CheckResult result;
  result.keys.resize(views.size());
  // Small keys first: a cheap violation is found even when a big key exhausts the budget.
  std::vector<size_t> order(views.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return views[a].ops().size() < views[b].ops().size();
  });
  for (size_t i : order) {
    KeyResult& k = result.keys[i];
    k.key = std::string(views[i].key());
    k.op_count = views[i].ops().size();
    const uint64_t before = budget.steps_used;
    const SearchOutcome r = Search(views[i].Build(Cut{}), budget);
    k.verdict = r == SearchOutcome::kLinearizable      ? Verdict::kLinearizable
                : r == SearchOutcome::kNotLinearizable ? Verdict::kNotLinearizable
                                                       : Verdict::kUnknown;
    if (k.verdict == Verdict::kUnknown) {
      k.explanation = "The search budget ran out before this key was decided.";
    }
    k.steps = budget.steps_used - before;
  }
  // Windows come second so that deciding every key has the first claim on the budget.
  for (size_t i = 0; i < views.size(); ++i) {
    KeyResult& k = result.keys[i];
    if (k.verdict != Verdict::kNotLinearizable) continue;
    const uint64_t before = budget.steps_used;
    k.window = FindWindow(views[i], budget);
    k.explanation = Explain(views[i], history, *k.window);
    k.steps += budget.steps_used - before;
  }
  result.verdict = Combine(result.keys);
  return result;
}

}  // namespace synod::check
