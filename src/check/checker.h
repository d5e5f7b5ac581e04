// CheckHistory: is a history of register operations linearizable?
//
// A history is linearizable when every operation can be given one instant between its call
// and its return (any instant after its call, or none at all, when its outcome is unknown)
// such that, taken in the order of those instants, the operations behave like one register
// per key starting absent: a get returns the latest value written, a cas succeeds exactly when
// the register holds its `expected` value. See docs/check.md.
//
// Keys are checked independently (see key_view.h), smallest first, each by the Wing & Gong /
// Lowe search (wgl.h), all under one SearchBudget. When the budget runs out the answer for the
// keys not finished is kUnknown, never a guess.
//
// For every key that is not linearizable the result carries a FailureWindow, the smallest
// stretch of time whose operations already cannot be linearized:
//   1. end: the earliest return time b such that the history up to b (operations called by b;
//      those still running at b count as unknown) cannot be linearized from the empty store.
//      Any linearization of the whole history gives one of every such prefix, so the prefixes
//      fail from b on; a binary search finds b.
//   2. start: the latest call time a such that the operations of the Cut [a, b] (key_view.h)
//      cannot be linearized whatever the register held at a (absent or any value written by an
//      operation called before a). Cutting later only removes constraints, so again a binary
//      search finds a. When no such a exists the window starts at the start of the history.
// The window's operations are therefore a self-contained proof: no order of just them,
// starting from any state the register could have been in, explains what they returned.
//
// Thread-safety: a pure function of its arguments, apart from spending the budget.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "check/budget.h"
#include "check/operation.h"

namespace synod::check {

enum class Verdict : uint8_t {
  kLinearizable,
  kNotLinearizable,
  kUnknown,  // the budget ran out first
};

// "linearizable", "not linearizable", "unknown".
std::string_view VerdictName(Verdict verdict);

struct WindowOp {
  enum class Role : uint8_t {
    kComplete,       // called and returned inside the window: its result must be explained
    kUnknown,        // its outcome is unknown in the history: it may or may not have happened
    kPendingAtEnd,   // still running when the window ends: may or may not have happened yet
    kStartedBefore,  // running when the window starts: may have happened before or inside it
  };
  size_t index = 0;  // into the History
  Role role = Role::kComplete;
};

struct FailureWindow {
  bool from_start = true;     // true: from the start of the history, the register starts absent
  int64_t start_ns = 0;       // a: meaningful when !from_start
  int64_t end_ns = 0;         // b: the return time of `culprit`
  size_t culprit = 0;         // index of the operation whose return at b closes the window
  std::vector<WindowOp> ops;  // sorted by call time; gets and failed cas that can only be
                              // optional, and unobservable optional writes, are not listed
  bool minimal = true;        // false when the budget ran out while shrinking: still a valid proof
};

struct KeyResult {
  std::string key;
  Verdict verdict = Verdict::kLinearizable;
  size_t op_count = 0;                  // operations on this key in the history
  uint64_t steps = 0;                   // search steps spent on this key, window included
  std::optional<FailureWindow> window;  // set iff verdict == kNotLinearizable
  std::string explanation;              // one or two sentences; empty when linearizable
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;  // kNotLinearizable if any key is, else kUnknown
                                             // if any key is, else kLinearizable
  std::vector<KeyResult> keys;               // every key, sorted by key
};

// REQUIRES: every operation passes ValidateOperation.
CheckResult CheckHistory(const History& history, SearchBudget& budget);

// A multi-line report for people: the verdict, then each key that is not linearizable with its
// window (one operation per line, via FormatOperation), then the keys left unknown.
std::string FormatCheckResult(const History& history, const CheckResult& result);

}  // namespace synod::check
