// FormatCheckResult (declared in checker.h): the report `synod check` prints.
#include <fmt/format.h>

#include "check/checker.h"

namespace synod::check {
namespace {

std::string_view RoleNote(const WindowOp& op, const FailureWindow& w) {
  switch (op.role) {
    case WindowOp::Role::kComplete:
      return op.index == w.culprit ? "  <- returned last" : "";
    case WindowOp::Role::kUnknown:
      return "  (may or may not have taken effect)";
    case WindowOp::Role::kPendingAtEnd:
      return "  (still running at the end: may or may not have taken effect)";
    case WindowOp::Role::kStartedBefore:
      return "  (running at the start: may have taken effect before it)";
  }
  return "";
}

void FormatFailedKey(const History& history, const KeyResult& k, std::string* out) {
  *out +=
      fmt::format("\nkey {} ({} operations): not linearizable\n", QuoteValue(k.key), k.op_count);
  *out += fmt::format("  {}\n", k.explanation);
  const FailureWindow& w = *k.window;
  const std::string from = w.from_start ? "the start" : fmt::format("t={}", w.start_ns);
  *out += fmt::format("  {} window: {} operations from {} to t={}\n",
                      w.minimal ? "smallest" : "failing", w.ops.size(), from, w.end_ns);
  for (const WindowOp& op : w.ops) {
    *out += fmt::format("    op #{:<6} {}{}\n", op.index + 1, FormatOperation(history[op.index]),
                        RoleNote(op, w));
  }
}

std::string Summary(const History& history, const CheckResult& result) {
  size_t failed = 0;
  size_t unknown = 0;
  for (const KeyResult& k : result.keys) {
    failed += k.verdict == Verdict::kNotLinearizable ? 1 : 0;
    unknown += k.verdict == Verdict::kUnknown ? 1 : 0;
  }
  const size_t keys = result.keys.size();
  switch (result.verdict) {
    case Verdict::kLinearizable:
      return fmt::format("linearizable: {} operations on {} keys", history.size(), keys);
    case Verdict::kNotLinearizable:
      return fmt::format("NOT LINEARIZABLE: {} of {} keys cannot be linearized{}", failed, keys,
                         unknown > 0 ? fmt::format(" ({} undecided)", unknown) : "");
    case Verdict::kUnknown:
      return fmt::format(
          "UNKNOWN: the time or step budget ran out before {} of {} keys were decided{}", unknown,
          keys, unknown < keys ? "; the others are linearizable" : "");
  }
  return "";
}

}  // namespace

std::string FormatCheckResult(const History& history, const CheckResult& result) {
  std::string out = Summary(history, result) + "\n";
  std::vector<std::string_view> undecided;
  for (const KeyResult& k : result.keys) {
    if (k.verdict == Verdict::kNotLinearizable) FormatFailedKey(history, k, &out);
    if (k.verdict == Verdict::kUnknown) undecided.push_back(k.key);
  }
  if (!undecided.empty()) {
    constexpr size_t kNamedMax = 10;
    out += "\nundecided keys:";
    for (size_t i = 0; i < undecided.size() && i < kNamedMax; ++i) {
      out += " " + QuoteValue(std::string(undecided[i]));
    }
    if (undecided.size() > kNamedMax) {
      out += fmt::format(" (and {} more)", undecided.size() - kNamedMax);
    }
    out += "\n";
  }
  return out;
}

}  // namespace synod::check
