#include "check/checker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "check/testing.h"

namespace synod::check {
namespace {

namespace t = testing;
using t::Cas;
using t::Del;
using t::Get;
using t::Put;
using t::Unknown;
using ::testing::HasSubstr;

Verdict Check(const History& h) {
  SearchBudget budget;
  return CheckHistory(h, budget).verdict;
}

constexpr Verdict kLin = Verdict::kLinearizable;
constexpr Verdict kNot = Verdict::kNotLinearizable;

TEST(CheckerTest, EmptyHistoryIsLinearizable) {
  SearchBudget budget;
  const CheckResult r = CheckHistory({}, budget);
  EXPECT_EQ(r.verdict, kLin);
  EXPECT_TRUE(r.keys.empty());
}

TEST(CheckerTest, Sequential) {
  EXPECT_EQ(Check({Get(1, "k", std::nullopt, 0, 1), Put(1, "k", "a", 2, 3), Get(2, "k", "a", 4, 5),
                   Put(2, "k", "b", 6, 7), Get(1, "k", "b", 8, 9)}),
            kLin);
}

TEST(CheckerTest, ConcurrentPutAndGetEitherOrder) {
  // The get overlaps the put, so it may see the value or not.
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 100), Get(2, "k", "a", 10, 50)}), kLin);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 100), Get(2, "k", std::nullopt, 10, 50)}), kLin);
  // Both concurrent with the put, but once one read saw it a later read must too.
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 100), Get(2, "k", "a", 10, 20),
                   Get(3, "k", std::nullopt, 30, 40)}),
            kNot);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 100), Get(2, "k", std::nullopt, 10, 20),
                   Get(3, "k", "a", 30, 40)}),
            kLin);
}

TEST(CheckerTest, TouchingIntervalsCountAsConcurrent) {
  // The get is called at the instant the put returns: the clock cannot order them.
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Get(2, "k", std::nullopt, 10, 20)}), kLin);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Get(2, "k", std::nullopt, 11, 20)}), kNot);
}

TEST(CheckerTest, StaleReadAfterCompletedWrite) {
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Put(1, "k", "b", 20, 30), Get(2, "k", "a", 40, 50)}),
            kNot);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Get(2, "k", std::nullopt, 20, 30)}), kNot);
}

TEST(CheckerTest, ReadOfAValueNeverWritten) {
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Get(2, "k", "z", 5, 50)}), kNot);
  EXPECT_EQ(Check({Get(2, "k", "z", 5, 50)}), kNot);
}

TEST(CheckerTest, Del) {
  EXPECT_EQ(
      Check({Put(1, "k", "a", 0, 10), Del(1, "k", 20, 30), Get(2, "k", std::nullopt, 40, 50)}),
      kLin);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Del(1, "k", 20, 30), Get(2, "k", "a", 40, 50)}), kNot);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), Del(1, "k", 20, 60), Get(2, "k", "a", 40, 50)}), kLin);
}

TEST(CheckerTest, CasSuccessAndFailure) {
  // Success: the register held `expected`.
  EXPECT_EQ(
      Check({Put(1, "k", "a", 0, 1), Cas(1, "k", "a", "b", true, 2, 3), Get(1, "k", "b", 4, 5)}),
      kLin);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 1), Cas(1, "k", "x", "b", true, 2, 3)}), kNot);
  // Failure: it did not, and nothing was written.
  EXPECT_EQ(
      Check({Put(1, "k", "a", 0, 1), Cas(1, "k", "x", "b", false, 2, 3), Get(1, "k", "a", 4, 5)}),
      kLin);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 1), Cas(1, "k", "a", "b", false, 2, 3)}), kNot);
  EXPECT_EQ(
      Check({Put(1, "k", "a", 0, 1), Cas(1, "k", "x", "b", false, 2, 3), Get(1, "k", "b", 4, 5)}),
      kNot);
  // A concurrent put can explain a failed comparison.
  EXPECT_EQ(
      Check({Put(1, "k", "a", 0, 1), Put(2, "k", "c", 2, 10), Cas(1, "k", "a", "b", false, 3, 4)}),
      kLin);
}

TEST(CheckerTest, CasWithNullExpectedMeansAbsent) {
  EXPECT_EQ(Check({Cas(1, "k", std::nullopt, "a", true, 0, 1), Get(1, "k", "a", 2, 3)}), kLin);
  EXPECT_EQ(Check({Cas(1, "k", std::nullopt, "a", true, 0, 1),
                   Cas(2, "k", std::nullopt, "b", true, 2, 3)}),
            kNot);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 1), Cas(2, "k", std::nullopt, "b", false, 2, 3)}), kLin);
  EXPECT_EQ(Check({Cas(2, "k", std::nullopt, "b", false, 2, 3)}), kNot);
  // A null new value deletes.
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 1), Cas(1, "k", "a", std::nullopt, true, 2, 3),
                   Get(1, "k", std::nullopt, 4, 5)}),
            kLin);
}

TEST(CheckerTest, IndeterminatePut) {
  const Operation base = Put(1, "k", "a", 0, 10);
  const Operation maybe = Unknown(Put(2, "k", "b", 20, 30));
  // Seen, or not seen, or seen later: all fine.
  EXPECT_EQ(Check({base, maybe, Get(3, "k", "b", 40, 50)}), kLin);
  EXPECT_EQ(Check({base, maybe, Get(3, "k", "a", 40, 50)}), kLin);
  EXPECT_EQ(Check({base, maybe, Get(3, "k", "a", 40, 50), Get(3, "k", "b", 1000, 1001)}), kLin);
  // Seen, then not seen again without another write: not linearizable.
  EXPECT_EQ(Check({base, maybe, Get(3, "k", "b", 40, 50), Get(3, "k", "a", 60, 70)}), kNot);
  // It cannot have taken effect before it was called.
  EXPECT_EQ(Check({base, Get(3, "k", "b", 11, 15), maybe}), kNot);
  // Its return time is irrelevant: it may take effect long after.
  Operation late = maybe;
  late.return_ns = 21;
  EXPECT_EQ(Check({base, late, Get(3, "k", "a", 40, 50), Get(3, "k", "b", 60, 70)}), kLin);
}

TEST(CheckerTest, IndeterminateCasAndDel) {
  const Operation base = Put(1, "k", "a", 0, 10);
  const Operation maybe_cas = Unknown(Cas(2, "k", "a", "b", false, 20, 30));
  EXPECT_EQ(Check({base, maybe_cas, Get(3, "k", "b", 40, 50)}), kLin);
  EXPECT_EQ(Check({base, maybe_cas, Get(3, "k", "a", 40, 50)}), kLin);
  EXPECT_EQ(Check({base, maybe_cas, Get(3, "k", "b", 40, 50), Get(3, "k", "a", 60, 70)}), kNot);
  // It can only write when the comparison holds.
  const Operation wrong_cas = Unknown(Cas(2, "k", "x", "b", true, 20, 30));
  EXPECT_EQ(Check({base, wrong_cas, Get(3, "k", "b", 40, 50)}), kNot);
  const Operation maybe_del = Unknown(Del(2, "k", 20, 30));
  EXPECT_EQ(Check({base, maybe_del, Get(3, "k", std::nullopt, 40, 50)}), kLin);
  EXPECT_EQ(Check({base, maybe_del, Get(3, "k", std::nullopt, 40, 50), Get(3, "k", "a", 60, 70)}),
            kNot);
}

TEST(CheckerTest, UnknownAndFailedReadsAreIgnored) {
  // An unknown get carries no information, whatever value it lists.
  Operation unknown_get = Unknown(Get(2, "k", std::nullopt, 20, 30));
  unknown_get.value = "nonsense";
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), unknown_get}), kLin);
  Operation failed_get = Get(2, "k", "nonsense", 20, 30);
  failed_get.ok = false;
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), failed_get}), kLin);
}

TEST(CheckerTest, FailedWriteDidNotHappen) {
  Operation failed = Put(2, "k", "b", 20, 30);
  failed.ok = false;
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), failed, Get(3, "k", "a", 40, 50)}), kLin);
  EXPECT_EQ(Check({Put(1, "k", "a", 0, 10), failed, Get(3, "k", "b", 40, 50)}), kNot);
}

TEST(CheckerTest, KeysAreIndependent) {
  // Each key alone is linearizable; a single register holding both could not be.
  const History h = {Put(1, "x", "a", 0, 10), Put(1, "y", "b", 20, 30), Get(2, "x", "a", 40, 50),
                     Get(2, "y", "b", 40, 50)};
  EXPECT_EQ(Check(h), kLin);

  History bad = h;
  bad.push_back(Get(3, "y", std::nullopt, 60, 70));
  SearchBudget budget;
  const CheckResult r = CheckHistory(bad, budget);
  EXPECT_EQ(r.verdict, kNot);
  ASSERT_EQ(r.keys.size(), 2u);
  EXPECT_EQ(r.keys[0].key, "x");
  EXPECT_EQ(r.keys[0].verdict, kLin);
  EXPECT_FALSE(r.keys[0].window.has_value());
  EXPECT_EQ(r.keys[1].key, "y");
  EXPECT_EQ(r.keys[1].verdict, kNot);
  EXPECT_EQ(r.keys[1].op_count, 3u);
  EXPECT_TRUE(r.keys[1].window.has_value());
}

// A register history whose every operation is fine except op #6 (index 5), a stale read.
History StaleReadHistory() {
  return {Put(1, "k", "v1", 0, 10),    Get(2, "k", "v1", 20, 30),  Put(1, "k", "v2", 40, 50),
          Get(2, "k", "v2", 60, 70),   Put(1, "k", "v3", 80, 90),  Get(2, "k", "v2", 100, 110),
          Put(1, "k", "v4", 120, 130), Get(2, "k", "v4", 140, 150)};
}

TEST(CheckerTest, WindowOfAStaleRead) {
  const History h = StaleReadHistory();
  SearchBudget budget;
  const CheckResult r = CheckHistory(h, budget);
  ASSERT_EQ(r.verdict, kNot);
  ASSERT_TRUE(r.keys[0].window.has_value());
  const FailureWindow& w = *r.keys[0].window;
  EXPECT_TRUE(w.minimal);
  EXPECT_FALSE(w.from_start);
  EXPECT_EQ(w.start_ns, 80);
  EXPECT_EQ(w.end_ns, 110);
  EXPECT_EQ(w.culprit, 5u);
  ASSERT_EQ(w.ops.size(), 2u);
  EXPECT_EQ(w.ops[0].index, 4u);
  EXPECT_EQ(w.ops[0].role, WindowOp::Role::kComplete);
  EXPECT_EQ(w.ops[1].index, 5u);

  const std::string report = FormatCheckResult(h, r);
  EXPECT_THAT(report, HasSubstr("NOT LINEARIZABLE: 1 of 1 keys cannot be linearized\n"));
  EXPECT_THAT(report, HasSubstr("smallest window: 2 operations from t=80 to t=110\n"
                                "    op #5      client 1 put \"k\" \"v3\"  [call 80, return 90]\n"
                                "    op #6      client 2 get \"k\" -> \"v2\"  [call 100, return "
                                "110]  <- returned last\n"));
  EXPECT_THAT(report, HasSubstr("stops being linearizable at t=110, when op #6 returned"));
}

std::vector<std::pair<size_t, WindowOp::Role>> Listed(const FailureWindow& w) {
  std::vector<std::pair<size_t, WindowOp::Role>> out;
  for (const WindowOp& op : w.ops) out.emplace_back(op.index, op.role);
  return out;
}

TEST(CheckerTest, WindowListsOptionalOperations) {
  using Role = WindowOp::Role;
  // The unknown put of v1 may explain the read of v1 after v2, but then nothing explains the
  // read of v2 after that.
  const History h = {Put(1, "k", "v1", 0, 10), Unknown(Put(4, "k", "v1", 1, 2)),
                     Put(1, "k", "v2", 40, 50), Get(2, "k", "v1", 55, 60),
                     Get(2, "k", "v2", 65, 70)};
  SearchBudget budget;
  const CheckResult r = CheckHistory(h, budget);
  ASSERT_EQ(r.verdict, kNot);
  const FailureWindow& w = *r.keys[0].window;
  EXPECT_EQ(w.start_ns, 55);
  EXPECT_EQ(w.end_ns, 70);
  EXPECT_EQ(w.culprit, 4u);
  using P = std::pair<size_t, Role>;
  EXPECT_EQ(Listed(w),
            (std::vector<P>{{1, Role::kUnknown}, {3, Role::kComplete}, {4, Role::kComplete}}));
  EXPECT_THAT(FormatCheckResult(h, r), HasSubstr("outcome unknown  [call 1, return ?]  (may or "
                                                 "may not have taken effect)"));

  // The put of v2 is still running when the window starts: it may have happened before.
  const History h2 = {Put(1, "k", "v1", 0, 10), Put(1, "k", "v2", 20, 100),
                      Get(2, "k", "v2", 30, 40), Get(2, "k", "v1", 50, 60)};
  SearchBudget budget2;
  const CheckResult r2 = CheckHistory(h2, budget2);
  ASSERT_EQ(r2.verdict, kNot);
  const FailureWindow& w2 = *r2.keys[0].window;
  EXPECT_EQ(w2.start_ns, 30);
  EXPECT_EQ(w2.end_ns, 60);
  EXPECT_EQ(
      Listed(w2),
      (std::vector<P>{{1, Role::kStartedBefore}, {2, Role::kComplete}, {3, Role::kComplete}}));
  EXPECT_THAT(FormatCheckResult(h2, r2), HasSubstr("(running at the start"));
}

TEST(CheckerTest, WindowOfAReadOfAValueNeverWritten) {
  History h = StaleReadHistory();
  h[5].value = "zzz";
  SearchBudget budget;
  const CheckResult r = CheckHistory(h, budget);
  ASSERT_EQ(r.verdict, kNot);
  const FailureWindow& w = *r.keys[0].window;
  ASSERT_EQ(w.ops.size(), 1u);
  EXPECT_EQ(w.ops[0].index, 5u);
  EXPECT_THAT(r.keys[0].explanation,
              HasSubstr("Op #6 read \"zzz\", which no operation on this key ever wrote."));
}

TEST(CheckerTest, WindowFromTheStart) {
  // A read of nil after a put: the window reaches back to the put, the first operation, so it
  // starts with the history, from the empty store.
  const History h = {Put(1, "k", "a", 0, 10), Get(2, "k", std::nullopt, 20, 30)};
  SearchBudget budget;
  const CheckResult r = CheckHistory(h, budget);
  ASSERT_EQ(r.verdict, kNot);
  const FailureWindow& w = *r.keys[0].window;
  EXPECT_TRUE(w.from_start);
  EXPECT_EQ(w.ops.size(), 2u);
  EXPECT_THAT(FormatCheckResult(h, r),
              HasSubstr("smallest window: 2 operations from the start to t=30\n"));
  EXPECT_THAT(r.keys[0].explanation, HasSubstr("starting from the empty store."));

  // A read of a value before it was written fails on its own.
  const History h2 = {Put(1, "k", "b", 0, 10), Get(2, "k", "a", 20, 30), Put(1, "k", "a", 40, 50)};
  SearchBudget budget2;
  const CheckResult r2 = CheckHistory(h2, budget2);
  ASSERT_EQ(r2.verdict, kNot);
  EXPECT_FALSE(r2.keys[0].window->from_start);
  EXPECT_EQ(r2.keys[0].window->ops.size(), 1u);
  EXPECT_THAT(FormatCheckResult(h2, r2), HasSubstr("1 operations from t=20 to t=30"));
  EXPECT_THAT(r2.keys[0].explanation, HasSubstr("whatever the key held at t=20."));
}

// n concurrent puts, each seen by a concurrent get, then two reads that disagree: not
// linearizable, but the search must try about 2^n subsets of the puts to find out.
History Pathological(int n) {
  History h;
  for (int i = 0; i < n; ++i) {
    h.push_back(Put(i, "k", "v" + std::to_string(i), 0, 100));
    h.push_back(Get(n + i, "k", "v" + std::to_string(i), 0, 100));
  }
  h.push_back(Get(n, "k", "v0", 200, 300));
  h.push_back(Get(n, "k", "v1", 400, 500));
  return h;
}

TEST(CheckerTest, BudgetExhaustionGivesUnknown) {
  SearchBudget budget;
  budget.steps_max = 10'000;
  const CheckResult r = CheckHistory(Pathological(24), budget);
  EXPECT_EQ(r.verdict, Verdict::kUnknown);
  EXPECT_TRUE(budget.exhausted);
  EXPECT_EQ(budget.steps_used, 10'000u);
  EXPECT_EQ(r.keys[0].verdict, Verdict::kUnknown);
  EXPECT_THAT(FormatCheckResult(Pathological(24), r), HasSubstr("UNKNOWN"));
  // The small version is decided.
  SearchBudget enough;
  EXPECT_EQ(CheckHistory(Pathological(4), enough).verdict, kNot);
}

TEST(CheckerTest, ExpiredCallbackGivesUnknown) {
  SearchBudget budget;
  int polls = 0;
  budget.expired = [&polls] { return ++polls > 2; };
  const CheckResult r = CheckHistory(Pathological(24), budget);
  EXPECT_EQ(r.verdict, Verdict::kUnknown);
  EXPECT_EQ(polls, 3);
  EXPECT_EQ(budget.steps_used, 2 * SearchBudget::kPollEverySteps);
}

TEST(CheckerTest, ViolationFoundDespiteAnUndecidedKey) {
  // Small keys go first, so the cheap violation on "b" is found before "k" eats the budget.
  History h = Pathological(24);
  h.push_back(Put(1, "b", "x", 0, 10));
  h.push_back(Get(1, "b", std::nullopt, 20, 30));
  SearchBudget budget;
  budget.steps_max = 10'000;
  const CheckResult r = CheckHistory(h, budget);
  EXPECT_EQ(r.verdict, kNot);
  EXPECT_EQ(r.keys[0].key, "b");
  EXPECT_EQ(r.keys[0].verdict, kNot);
  EXPECT_EQ(r.keys[1].verdict, Verdict::kUnknown);
  const std::string report = FormatCheckResult(h, r);
  EXPECT_THAT(report, HasSubstr("1 of 2 keys cannot be linearized (1 undecided)"));
  EXPECT_THAT(report, HasSubstr("undecided keys: \"k\""));
}

TEST(CheckerTest, WindowWhenTheBudgetRunsOutWhileShrinking) {
  // The smallest budget that decides the key leaves nothing for the window: it is reported
  // unshrunk (the whole failing prefix), still a valid proof, and flagged as such.
  const History h = StaleReadHistory();
  CheckResult r;
  uint64_t steps = 0;
  while (r.verdict != kNot) {
    ASSERT_LT(steps, 10'000u);
    SearchBudget budget;
    budget.steps_max = ++steps;
    r = CheckHistory(h, budget);
  }
  const FailureWindow& w = *r.keys[0].window;
  EXPECT_FALSE(w.minimal);
  EXPECT_TRUE(w.from_start);
  EXPECT_EQ(w.end_ns, 150);  // the end of the history: no shrinking happened
  EXPECT_THAT(r.keys[0].explanation, HasSubstr("it may not be the smallest"));
  EXPECT_THAT(FormatCheckResult(h, r), HasSubstr("failing window: 8 operations from the start"));
}

TEST(CheckerTest, TinyMemoStillCorrect) {
  // A memo that holds nothing only costs time.
  SearchBudget budget;
  budget.memo_bytes_max = 0;
  EXPECT_EQ(CheckHistory(Pathological(6), budget).verdict, kNot);
  SearchBudget budget2;
  budget2.memo_bytes_max = 0;
  const History h = t::GenerateLinearizableHistory({.clients = 4, .ops_per_client = 30, .keys = 2});
  EXPECT_EQ(CheckHistory(h, budget2).verdict, kLin);
}

TEST(CheckerTest, GeneratedHistoriesAreLinearizable) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const History h = t::GenerateLinearizableHistory(
        {.clients = 5, .ops_per_client = 40, .keys = 3, .unknown_fraction = 0.1, .seed = seed});
    SearchBudget budget;
    EXPECT_EQ(CheckHistory(h, budget).verdict, kLin) << "seed " << seed;
  }
}

// Performance sanity: 10 clients x 2,000 operations over 50 keys, as the simulator produces.
// No timing assertion (DESIGN.md); it must simply finish, within a modest step count.
TEST(CheckerTest, LargeGeneratedHistory) {
  const History h = t::GenerateLinearizableHistory(
      {.clients = 10, .ops_per_client = 2000, .keys = 50, .seed = 42});
  SearchBudget budget;
  const CheckResult r = CheckHistory(h, budget);
  EXPECT_EQ(r.verdict, kLin);
  EXPECT_EQ(r.keys.size(), 50u);
  EXPECT_LT(budget.steps_used, 20'000'000u);

  // All on one key, with more unknown outcomes: far more concurrency per key.
  const History one_key = t::GenerateLinearizableHistory(
      {.clients = 8, .ops_per_client = 500, .keys = 1, .unknown_fraction = 0.05, .seed = 43});
  SearchBudget budget_one_key;
  EXPECT_EQ(CheckHistory(one_key, budget_one_key).verdict, kLin);
  EXPECT_LT(budget_one_key.steps_used, 20'000'000u);

  // One corrupted read makes it fail, and the window stays small.
  History bad = h;
  for (Operation& op : bad) {
    if (op.type == OpType::kGet && !op.unknown && op.call_ns > 50'000) {
      op.value = "corrupt";
      break;
    }
  }
  SearchBudget budget2;
  const CheckResult r2 = CheckHistory(bad, budget2);
  EXPECT_EQ(r2.verdict, kNot);
  for (const KeyResult& k : r2.keys) {
    if (k.verdict == kNot) {
      EXPECT_LE(k.window->ops.size(), 10u);
    }
  }
}

}  // namespace
}  // namespace synod::check
