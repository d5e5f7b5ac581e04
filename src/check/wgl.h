// The search at the heart of the checker: is one register's (sub-)history linearizable?
//
// Wing & Gong's algorithm with Lowe's memoization ("Testing for linearizability", 2017), as
// Porcupine and Knossos use it. The calls and returns of all operations form one doubly linked
// list in time order. Scanning from the head, the search tries to linearize each operation
// whose call it meets (the model must accept it in the current state); a linearized operation
// is lifted out of the list and the scan restarts. Meeting the return of an operation not yet
// linearized means the choices so far were wrong: the last one is undone from a stack and the
// scan continues after it. A memo of (set of linearized operations, register value) pairs that
// were already explored prunes the search; Lowe showed this is what makes it practical.
//
// Optional operations (outcome unknown, or cut by a window) have no return event, so they may
// be linearized at any point after their call; the search succeeds as soon as every
// non-optional operation is linearized, which lets optional ones never take effect.
//
// Three reductions keep register histories tractable, each with its proof in wgl.cc: a read
// that is valid where the search stands is linearized at once with no alternative tried
// ("forced"); among interchangeable writes (same value, or values no one can observe, or dels)
// only the one that returns first is tried; and values nobody observes share one state, so the
// memo merges them. Measured on generated histories (testing.h), 10 clients x 2,000 operations
// on ONE key take about a million steps (five million with 2% unknown outcomes); on 50 keys,
// tens of thousands.
//
// This header is internal to check/; CheckHistory (checker.h) is the public entry point.
//
// Thread-safety: Search is a pure function of its arguments, apart from spending the budget.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "check/budget.h"

namespace synod::check::internal {

// Register values are interned per key: these two ids are special, the rest are values.
inline constexpr int32_t kAbsent = 0;    // the key does not exist
inline constexpr int32_t kAnyState = 1;  // not yet known: any value allowed by may_be_initial
inline constexpr int32_t kFirstValueId = 2;
inline constexpr int64_t kNeverNs = std::numeric_limits<int64_t>::max();

enum class SearchKind : uint8_t {
  kGet,         // reads `value`
  kPut,         // writes `value`
  kDel,         // writes kAbsent
  kCasOk,       // state == expected, then writes `value`
  kCasFailed,   // state != expected; writes nothing
  kCasOptional  // as kCasOk; only offered when optional (a failed cas is as good as none)
};

struct SearchOp {
  SearchKind kind = SearchKind::kGet;
  int32_t value = kAbsent;
  int32_t expected = kAbsent;
  bool optional = false;
  int64_t call_ns = 0;
  int64_t return_ns = 0;  // kNeverNs when optional
  uint32_t source = 0;    // index of the Operation in the History, for reports
};

struct SearchProblem {
  std::vector<SearchOp> ops;
  // kAbsent (a fresh store) or kAnyState (a window cut out of the middle of a history).
  int32_t initial_state = kAbsent;
  // Indexed by value id: values the register may hold initially when initial_state is
  // kAnyState. kAbsent is always allowed.
  std::vector<bool> may_be_initial;
};

enum class SearchOutcome { kLinearizable, kNotLinearizable, kBudgetExhausted };

// Searches for a linearization of `problem`. Spends one budget step per move.
SearchOutcome Search(const SearchProblem& problem, SearchBudget& budget);

// The register model: the state after `op` runs in `state`, or -1 when `op` cannot have
// produced its recorded result there. Exposed for tests.
int32_t ApplyOp(const SearchProblem& problem, int32_t state, const SearchOp& op);

}  // namespace synod::check::internal
