// Cross-checks the checker against a brute-force oracle on thousands of small random histories:
// the verdict must agree, and every reported window must be a sound proof (the oracle finds no
// linearization of it from any state the register could have held) whose end is the earliest
// at which a prefix of the history fails.
//
// The oracle is written independently of wgl.cc/key_view.cc: it tries every order (with
// memoization) and every initial state, using the exact semantics of docs/check.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "check/checker.h"
#include "check/history_json.h"
#include "check/testing.h"

namespace synod::check {
namespace {

using Value = std::optional<std::string>;

struct OracleOp {
  OpType type;
  Value value;
  Value expected;
  bool ok;        // for known cas: did the comparison hold
  bool optional;  // may take effect after its call, or never
  int64_t call;
  int64_t ret;  // unused when optional
};

struct Cut {
  bool from_start = true;
  int64_t start = 0;
  int64_t end = std::numeric_limits<int64_t>::max();
};

// The sub-history a cut selects, following the rules in key_view.h.
std::vector<OracleOp> Select(const History& h, const Cut& cut) {
  std::vector<OracleOp> out;
  for (const Operation& op : h) {
    if (op.call_ns > cut.end) continue;
    bool optional = op.unknown || op.return_ns > cut.end;
    if (!cut.from_start && op.call_ns < cut.start) {
      if (!op.unknown && op.return_ns < cut.start) continue;
      optional = true;
    }
    const bool failed = !op.unknown && !op.ok;
    if (op.type != OpType::kCas && failed) continue;              // did nothing
    if (op.type == OpType::kGet && optional) continue;            // no information
    if (op.type == OpType::kCas && failed && optional) continue;  // a read, unknown
    out.push_back(
        {op.type, op.value, op.expected, op.ok || op.unknown, optional, op.call_ns, op.return_ns});
  }
  return out;
}

// The states the register may hold at the start of `cut`.
std::vector<Value> InitialStates(const History& h, const Cut& cut) {
  std::vector<Value> states = {std::nullopt};
  if (cut.from_start) return states;
  for (const Operation& op : h) {
    const bool writes = op.type == OpType::kPut || op.type == OpType::kCas;
    if (writes && op.call_ns < cut.start && (op.ok || op.unknown)) states.push_back(op.value);
  }
  return states;
}

class Oracle {
 public:
  explicit Oracle(std::vector<OracleOp> ops) : ops_(std::move(ops)) {}

  bool Linearizable(const std::vector<Value>& initial_states) {
    for (const Value& s : initial_states) {
      seen_.clear();
      if (Search(0, s)) return true;
    }
    return false;
  }

 private:
  // The state after ops_[i] in `s`, or false when it cannot run there.
  bool Apply(const OracleOp& op, const Value& s, Value* after) const {
    switch (op.type) {
      case OpType::kGet:
        *after = s;
        return s == op.value;
      case OpType::kPut:
      case OpType::kDel:
        *after = op.value;
        return true;
      case OpType::kCas:
        if (op.ok) {
          *after = op.value;
          return s == op.expected;
        }
        *after = s;
        return s != op.expected;
    }
    return false;
  }

  bool Search(uint32_t used, const Value& s) {
    bool done = true;
    for (size_t i = 0; i < ops_.size(); ++i) done &= ops_[i].optional || (used >> i & 1);
    if (done) return true;
    if (!seen_.insert({used, s}).second) return false;
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (used >> i & 1) continue;
      bool ready = true;  // every known op that returned before i was called is placed
      for (size_t j = 0; j < ops_.size(); ++j) {
        if (!(used >> j & 1) && !ops_[j].optional && ops_[j].ret < ops_[i].call) ready = false;
      }
      Value after;
      if (ready && Apply(ops_[i], s, &after) && Search(used | (1u << i), after)) return true;
    }
    return false;
  }

  std::vector<OracleOp> ops_;
  std::set<std::pair<uint32_t, Value>> seen_;
};

bool OracleLinearizable(const History& h, const Cut& cut) {
  return Oracle(Select(h, cut)).Linearizable(InitialStates(h, cut));
}

// A small random history on one key: mostly not linearizable.
History RandomHistory(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<Value> values = {std::nullopt, "a", "b", "c"};
  History h;
  const int n = 1 + pick(7);
  for (int i = 0; i < n; ++i) {
    Operation op;
    op.client = i;
    op.key = "k";
    op.type = static_cast<OpType>(pick(4));
    op.call_ns = pick(30);
    op.return_ns = op.call_ns + pick(10);
    if (op.type == OpType::kGet) op.value = values[pick(4)];
    if (op.type == OpType::kPut) op.value = values[1 + pick(3)];
    if (op.type == OpType::kCas) {
      op.value = values[pick(4)];
      op.expected = values[pick(4)];
    }
    op.ok = op.type == OpType::kCas ? pick(2) == 0 : pick(10) != 0;
    op.unknown = pick(7) == 0;
    h.push_back(op);
  }
  return h;
}

// A small linearizable history, sometimes with one read corrupted.
History GeneratedHistory(std::mt19937_64& rng) {
  History h = testing::GenerateLinearizableHistory({.clients = 3,
                                                    .ops_per_client = 2,
                                                    .keys = 1,
                                                    .unknown_fraction = 0.2,
                                                    .duration_ns_max = 30,
                                                    .seed = rng()});
  if (rng() % 2 == 0) {
    for (Operation& op : h) {
      if (op.type == OpType::kGet && !op.unknown && rng() % 2 == 0) op.value = "c0-0";
    }
  }
  return h;
}

// The distinct return times of the operations a whole-history search must explain.
std::vector<int64_t> KnownReturns(const History& h) {
  std::vector<int64_t> out;
  for (const OracleOp& op : Select(h, Cut{})) {
    if (!op.optional) out.push_back(op.ret);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void CheckAgainstOracle(const History& h, size_t* failures_seen) {
  SearchBudget budget;
  const CheckResult r = CheckHistory(h, budget);
  const bool expected = OracleLinearizable(h, Cut{});
  const std::string text = WriteHistoryJsonl(h).value();
  ASSERT_EQ(r.verdict, expected ? Verdict::kLinearizable : Verdict::kNotLinearizable) << text;
  if (expected) return;
  ++*failures_seen;
  const FailureWindow& w = *r.keys.at(0).window;
  ASSERT_TRUE(w.minimal);
  // Sound: the window alone cannot be linearized, from any state possible at its start.
  const Cut window{.from_start = w.from_start, .start = w.start_ns, .end = w.end_ns};
  EXPECT_FALSE(OracleLinearizable(h, window)) << text;
  // Its end is the first at which a prefix fails.
  EXPECT_FALSE(OracleLinearizable(h, Cut{.end = w.end_ns})) << text;
  for (int64_t end : KnownReturns(h)) {
    if (end < w.end_ns) {
      EXPECT_TRUE(OracleLinearizable(h, Cut{.end = end})) << text;
    }
  }
  EXPECT_EQ(h[w.culprit].return_ns, w.end_ns);
}

TEST(OracleTest, RandomHistoriesAgree) {
  std::mt19937_64 rng(12345);
  size_t failures = 0;
  for (int i = 0; i < 4000; ++i) {
    CheckAgainstOracle(RandomHistory(rng), &failures);
    if (HasFatalFailure()) return;
  }
  // Both verdicts are well represented.
  EXPECT_GT(failures, 1000u);
  EXPECT_LT(failures, 3900u);
}

TEST(OracleTest, GeneratedHistoriesAgree) {
  std::mt19937_64 rng(999);
  size_t failures = 0;
  for (int i = 0; i < 2000; ++i) {
    CheckAgainstOracle(GeneratedHistory(rng), &failures);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(failures, 100u);
  EXPECT_LT(failures, 1900u);
}

}  // namespace
}  // namespace synod::check
