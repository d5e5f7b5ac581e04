#include "check/wgl.h"

#include <algorithm>

#include "check/memo.h"
#include "common/assert.h"

namespace synod::check::internal {
namespace {

constexpr int32_t kInvalid = -1;

// The candidates at each point of the search are the calls met, scanning from the head, before
// the first return of a non-optional operation. Any order of trying them is complete. Ours
// makes two passes over them:
enum class Pass : uint8_t {
  // Reads (gets, failed cas) that are valid without changing the state. Such a read can be
  // linearized right now without loss of generality: in any linearization from here, moving it
  // to the front keeps every result (it changes nothing) and respects real time (it is a
  // candidate, so nothing left returned before it was called). So it is "forced": when the
  // search fails after it, it fails here, and no other candidate is tried. This removes most
  // of the branching of read-heavy histories.
  kForcedReads,
  // Every candidate, in time order. Optional writes are tried as early as possible: most
  // either never happened or were soon overwritten, and placing them at once lets them be
  // absorbed by the next write instead of piling up as choices still open. (Measured: trying
  // them last, or forbidding a write right after them, is much slower.)
  kAll,
};
constexpr Pass kPassOrder[] = {Pass::kForcedReads, Pass::kAll};
constexpr int kPasses = 2;

// One run of the search over one problem. Entry ids: 0 is the head sentinel, 2i+1 the call
// of op i, 2i+2 its return, 2n+1 the tail sentinel.
class WglSearch {
 public:
  WglSearch(const SearchProblem& problem, SearchBudget& budget);

  SearchOutcome Run();

 private:
  struct Frame {
    int32_t call;   // the call entry of the operation linearized
    int32_t saved;  // the state before it
    int pass;       // the pass that chose it
    bool forced;    // a read linearized without alternatives (Pass::kForcedReads)
  };
  enum class Attempt : uint8_t {
    kLinearized,  // done: a frame was pushed
    kRejected,    // the model refuses it here, or the result was explored already
    kDeadEnd,     // a forced read leads to an explored (so failed) point: so does this one
  };

  // Linearizes the operation of `call` when the model accepts it in state_ and the resulting
  // (set, state) pair is new, and pushes the choice on stack_.
  Attempt TryLinearize(int32_t call, int pass);
  // Undoes choices up to and including the latest one that has alternatives, and sets *pass
  // and *e to resume the scan after it. Returns false when there is none: no linearization.
  bool Backtrack(int32_t* known_left, int* pass, int32_t* e);

  static bool InPass(const SearchOp& op, int pass) {
    if (kPassOrder[pass] == Pass::kAll) return true;
    return !op.optional && (op.kind == SearchKind::kGet || op.kind == SearchKind::kCasFailed);
  }
  static bool IsCall(int32_t e) { return e % 2 == 1; }
  static int32_t OpOf(int32_t e) { return (e - 1) / 2; }
  int32_t Tail() const { return 2 * n_ + 1; }

  void LinkInTimeOrder();
  void Unlink(int32_t e) {
    next_[prev_[e]] = next_[e];
    prev_[next_[e]] = prev_[e];
  }
  void Relink(int32_t e) {
    next_[prev_[e]] = e;
    prev_[next_[e]] = e;
  }
  // Lifts an operation (its call and return) out of the list; Unlift undoes the latest Lift.
  void Lift(int32_t call) {
    Unlink(call);
    Unlink(call + 1);
  }
  void Unlift(int32_t call) {
    Relink(call + 1);
    Relink(call);
  }

  // Records, for each class of interchangeable writes, the candidate to try at this point.
  void ChooseWrites();

  SearchProblem p_;  // a canonical copy of the problem (Canonicalize)
  SearchBudget& budget_;
  const int32_t n_;
  std::vector<int32_t> class_of_;      // op -> its class of writes (ChooseWrites), or -1
  std::vector<int32_t> chosen_;        // class -> the op to try at this point
  std::vector<uint64_t> chosen_mark_;  // class -> chosen_ is current iff == mark_
  uint64_t mark_ = 0;
  std::vector<int32_t> next_;
  std::vector<int32_t> prev_;
  std::vector<uint32_t> bit_;  // op -> its bit in set_: non-optional ops first (memo.h)
  LinearizedSet set_;          // the operations linearized so far
  int32_t state_ = kAbsent;
  std::vector<Frame> stack_;  // at most n_ frames: one per linearized operation
  MemoTable memo_;
};

// Writes of a value that no operation of the problem can observe (no get reads it, no cas
// expects it) leave the register in states that no operation can tell apart: every get and
// successful cas fails there, every failed cas succeeds. Renaming all such values to one id
// lets the memo merge those states. Returns the number of value ids used.
int32_t Canonicalize(SearchProblem* p) {
  int32_t ids = kFirstValueId + 1;
  for (const SearchOp& op : p->ops) ids = std::max({ids, op.value + 1, op.expected + 1});
  std::vector<bool> observed(ids, false);
  for (const SearchOp& op : p->ops) {
    if (op.kind == SearchKind::kGet) observed[op.value] = true;
    if (op.kind != SearchKind::kGet && op.kind != SearchKind::kPut && op.kind != SearchKind::kDel) {
      observed[op.expected] = true;
    }
  }
  // kFirstValueId itself may be observed; use a fresh id for the merged class.
  const int32_t unobserved = ids;
  for (SearchOp& op : p->ops) {
    const bool writes = op.kind != SearchKind::kGet && op.kind != SearchKind::kDel &&
                        op.kind != SearchKind::kCasFailed;
    if (writes && op.value >= kFirstValueId && !observed[op.value]) op.value = unobserved;
  }
  return ids + 1;
}

size_t CountOptional(const SearchProblem& p) {
  return static_cast<size_t>(
      std::count_if(p.ops.begin(), p.ops.end(), [](const SearchOp& op) { return op.optional; }));
}

WglSearch::WglSearch(const SearchProblem& problem, SearchBudget& budget)
    : p_(problem),
      budget_(budget),
      n_(static_cast<int32_t>(problem.ops.size())),
      set_(problem.ops.size() - CountOptional(problem), CountOptional(problem)),
      state_(problem.initial_state),
      memo_(budget.memo_bytes_max) {
  SYNOD_ASSERT(problem.ops.size() < (size_t{1} << 30));
  const auto known = static_cast<uint32_t>(problem.ops.size() - CountOptional(problem));
  uint32_t next_known = 0;
  uint32_t next_optional = known;
  bit_.reserve(problem.ops.size());
  for (const SearchOp& op : problem.ops)
    bit_.push_back(op.optional ? next_optional++ : next_known++);
  const int32_t classes = Canonicalize(&p_);
  chosen_.assign(classes, -1);
  chosen_mark_.assign(classes, 0);
  class_of_.assign(n_, -1);
  for (int32_t i = 0; i < n_; ++i) {
    const SearchOp& op = p_.ops[i];
    if (op.kind == SearchKind::kPut) class_of_[i] = op.value;
    if (op.kind == SearchKind::kDel) class_of_[i] = kAbsent;
  }
  LinkInTimeOrder();
}

// Puts of the same value (after Canonicalize: also of two unobservable values), and dels, are
// interchangeable. Among the candidates of one class, only the one that returns first (optional
// ones never return; ties go to the earliest call) needs trying: if a linearization from here
// starts with another member W, swapping W with the chosen one C keeps it valid. Both have the
// same effect; C may go first since it is a candidate; and W may take C's place since whatever
// had to follow W in real time (called after W returned) was called after C returned too, so it
// already followed C. Without this, k concurrent writes whose values nobody reads would be
// tried in up to 2^k orders, and unknown writes that never happened would pile up as choices.
void WglSearch::ChooseWrites() {
  ++mark_;
  auto ret = [this](int32_t op) { return p_.ops[op].optional ? kNeverNs : p_.ops[op].return_ns; };
  for (int32_t e = next_[0]; e != Tail(); e = next_[e]) {
    const int32_t i = OpOf(e);
    if (!IsCall(e)) {
      if (!p_.ops[i].optional) return;  // the end of the candidates
      continue;
    }
    const int32_t c = class_of_[i];
    if (c >= 0 && (chosen_mark_[c] != mark_ || ret(i) < ret(chosen_[c]))) {
      chosen_[c] = i;
      chosen_mark_[c] = mark_;
    }
  }
}

void WglSearch::LinkInTimeOrder() {
  std::vector<int32_t> order;
  order.reserve(2 * n_);
  for (int32_t e = 1; e <= 2 * n_; ++e) order.push_back(e);
  // Calls sort before returns at equal times: operations that touch in time count as
  // concurrent, which gives the benefit of the doubt when the clock cannot separate them.
  auto time = [this](int32_t e) {
    const SearchOp& op = p_.ops[OpOf(e)];
    return IsCall(e) ? op.call_ns : (op.optional ? kNeverNs : op.return_ns);
  };
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const int64_t ta = time(a);
    const int64_t tb = time(b);
    if (ta != tb) return ta < tb;
    if (IsCall(a) != IsCall(b)) return IsCall(a);
    return a < b;
  });
  next_.assign(2 * n_ + 2, Tail());
  prev_.assign(2 * n_ + 2, 0);
  int32_t last = 0;
  for (int32_t e : order) {
    next_[last] = e;
    prev_[e] = last;
    last = e;
  }
  next_[last] = Tail();
  prev_[Tail()] = last;
}

SearchOutcome WglSearch::Run() {
  int32_t known_left = 0;
  for (const SearchOp& op : p_.ops) known_left += op.optional ? 0 : 1;
  if (known_left == 0) return SearchOutcome::kLinearizable;
  int pass = 0;
  int32_t e = next_[0];
  while (true) {
    if (!budget_.Spend()) return SearchOutcome::kBudgetExhausted;
    // Optional operations have no return here (they sort last at kNeverNs), so the first
    // non-optional return ends the candidates. One exists while known_left > 0.
    const bool region_end = e == Tail() || (!IsCall(e) && !p_.ops[OpOf(e)].optional);
    if (region_end && pass + 1 < kPasses) {
      ++pass;
      e = next_[0];
      ChooseWrites();
      continue;
    }
    Attempt attempt = Attempt::kRejected;
    if (!region_end && IsCall(e) && InPass(p_.ops[OpOf(e)], pass)) attempt = TryLinearize(e, pass);
    if (attempt == Attempt::kLinearized) {
      if (!p_.ops[OpOf(e)].optional && --known_left == 0) return SearchOutcome::kLinearizable;
      pass = 0;
      e = next_[0];
    } else if (region_end || attempt == Attempt::kDeadEnd) {
      // No candidate is left at this point: undo the latest choice and try the ones after it.
      if (!Backtrack(&known_left, &pass, &e)) return SearchOutcome::kNotLinearizable;
    } else {
      e = next_[e];
    }
  }
}

WglSearch::Attempt WglSearch::TryLinearize(int32_t call, int pass) {
  const int32_t i = OpOf(call);
  const int32_t c = class_of_[i];
  if (kPassOrder[pass] == Pass::kAll && c >= 0 && chosen_[c] != i) return Attempt::kRejected;
  const int32_t after = ApplyOp(p_, state_, p_.ops[i]);
  if (after == kInvalid) return Attempt::kRejected;
  const bool forced = kPassOrder[pass] == Pass::kForcedReads;
  if (forced && after != state_) return Attempt::kRejected;  // a read resolving kAnyState
  set_.Flip(bit_[i]);
  if (!memo_.Insert(set_, static_cast<uint64_t>(after))) {
    set_.Flip(bit_[i]);
    return forced ? Attempt::kDeadEnd : Attempt::kRejected;
  }
  SYNOD_ASSERT(stack_.size() < static_cast<size_t>(n_));
  stack_.push_back({.call = call, .saved = state_, .pass = pass, .forced = forced});
  state_ = after;
  Lift(call);
  return Attempt::kLinearized;
}

bool WglSearch::Backtrack(int32_t* known_left, int* pass, int32_t* e) {
  while (!stack_.empty()) {
    const Frame f = stack_.back();
    stack_.pop_back();
    const int32_t i = OpOf(f.call);
    set_.Flip(bit_[i]);
    state_ = f.saved;
    Unlift(f.call);
    *known_left += p_.ops[i].optional ? 0 : 1;
    // A forced read had no alternative: its failure is its parent's failure.
    if (!f.forced) {
      *pass = f.pass;
      *e = next_[f.call];
      if (kPassOrder[f.pass] == Pass::kAll) ChooseWrites();
      return true;
    }
  }
  return false;
}

}  // namespace

int32_t ApplyOp(const SearchProblem& problem, int32_t state, const SearchOp& op) {
  // True when the register may hold `want` now. An unknown initial state (kAnyState) takes the
  // first value an operation needs, if that value may have been there.
  auto holds = [&](int32_t want) {
    if (state != kAnyState) return state == want;
    return want == kAbsent || (static_cast<size_t>(want) < problem.may_be_initial.size() &&
                               problem.may_be_initial[want]);
  };
  switch (op.kind) {
    case SearchKind::kGet:
      return holds(op.value) ? op.value : kInvalid;
    case SearchKind::kPut:
      return op.value;
    case SearchKind::kDel:
      return kAbsent;
    case SearchKind::kCasOk:
    case SearchKind::kCasOptional:
      return holds(op.expected) ? op.value : kInvalid;
    case SearchKind::kCasFailed:
      // From kAnyState some value other than `expected` may have been there: stay unknown.
      // This is generous (it forgets "!= expected"), which is safe for a window (checker.h).
      return state == kAnyState || state != op.expected ? state : kInvalid;
  }
  SYNOD_UNREACHABLE();
}

SearchOutcome Search(const SearchProblem& problem, SearchBudget& budget) {
  WglSearch search(problem, budget);
  return search.Run();
}

}  // namespace synod::check::internal
