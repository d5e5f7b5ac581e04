// SearchBudget: how much work the checker may do before it answers "unknown".
//
// Linearizability checking is NP-complete, so a hard history could keep the search busy for
// ever. The budget bounds it in two ways that the pure checker can honour without a clock:
// a maximum number of search steps, and an `expired` callback the caller injects (the CLI
// passes a wall-clock deadline; tests pass nothing and use steps). The callback is polled every
// kPollEverySteps steps, starting with the first, so an already expired budget stops the
// search at once.
//
// One budget is shared by every search of one CheckHistory call (all keys, and the searches
// that shrink a failing window), and keeps its count afterwards; pass a fresh one per check.
//
// Thread-safety: none; one search uses it at a time. `expired` is called on that thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>

namespace synod::check {

struct SearchBudget {
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();
  static constexpr uint64_t kPollEverySteps = 1024;

  // Steps a search may take in total. A step is one move of the search (try an operation,
  // or undo one); each costs well under a microsecond. Default: no limit.
  uint64_t steps_max = kUnlimited;
  // When set and returning true, the budget is spent. Default: never.
  std::function<bool()> expired;
  // Memory each search may use for its memo of visited (linearized set, register value)
  // pairs. Past it the search stays correct but stops remembering, so it may redo work.
  // An entry costs about 80 bytes plus 8 per 64 operations it cannot compress (memo.h).
  // Default: 512 MiB.
  size_t memo_bytes_max = size_t{512} << 20;

  // Bookkeeping, written by the checker.
  uint64_t steps_used = 0;
  bool exhausted = false;

  // Counts one step. Returns false, on this and every later call, once steps_max steps were
  // spent or `expired` said so.
  bool Spend() {
    if (exhausted) return false;
    if (steps_used >= steps_max ||
        (steps_used % kPollEverySteps == 0 && expired != nullptr && expired())) {
      exhausted = true;
      return false;
    }
    ++steps_used;
    return true;
  }
};

}  // namespace synod::check
