#include "kv/state_machine.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "kv/kv_test_util.h"

namespace synod::kv {
namespace {

using testing::Append;
using testing::Cas;
using testing::Del;
using testing::Get;
using testing::Incr;
using testing::Machine;
using testing::Put;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(StateMachineTest, StartsEmpty) {
  StateMachine sm;
  EXPECT_EQ(sm.applied_index(), LogIndex(0));
  EXPECT_EQ(sm.key_count(), 0u);
  EXPECT_EQ(sm.session_count(), 0u);
  EXPECT_FALSE(sm.Get("k").has_value());
}

TEST(StateMachineTest, PutThenGet) {
  Machine m;
  Reply put = m.Apply(Put("k", "v1"));
  EXPECT_TRUE(put.ok());
  EXPECT_FALSE(put.value.has_value());
  EXPECT_EQ(m.Apply(Get("k")).value, "v1");
  EXPECT_TRUE(m.Apply(Put("k", "v2")).ok());  // overwrite
  EXPECT_EQ(m.Value("k"), "v2");
  EXPECT_EQ(m.Apply(Get("absent")).value, std::nullopt);
  EXPECT_TRUE(m.Apply(Get("absent")).ok());
  EXPECT_TRUE(m.Apply(Put("", "")).ok());  // empty key and empty value are ordinary
  EXPECT_EQ(m.Value(""), "");
  EXPECT_EQ(m.sm().key_count(), 2u);
  EXPECT_EQ(m.sm().applied_index(), LogIndex(6));
}

TEST(StateMachineTest, DelSaysWhetherItDeleted) {
  Machine m;
  m.Apply(Put("k", "v"));
  Reply first = m.Apply(Del("k"));
  EXPECT_TRUE(first.ok());
  EXPECT_TRUE(first.success);
  EXPECT_EQ(m.Value("k"), std::nullopt);
  Reply second = m.Apply(Del("k"));
  EXPECT_TRUE(second.ok());
  EXPECT_FALSE(second.success);
}

TEST(StateMachineTest, CasWithExpectedValue) {
  Machine m;
  m.Apply(Put("k", "old"));
  Reply miss = m.Apply(Cas("k", "wrong", "new"));
  EXPECT_TRUE(miss.ok());
  EXPECT_FALSE(miss.success);
  EXPECT_EQ(miss.value, "old");  // the current value, so the client can retry
  EXPECT_EQ(m.Value("k"), "old");
  Reply hit = m.Apply(Cas("k", "old", "new"));
  EXPECT_TRUE(hit.success);
  EXPECT_EQ(hit.value, "new");
  EXPECT_EQ(m.Value("k"), "new");
}

TEST(StateMachineTest, CasWithAbsentExpectedRequiresAbsentKey) {
  Machine m;
  Reply create = m.Apply(Cas("k", std::nullopt, "first"));
  EXPECT_TRUE(create.success);
  EXPECT_EQ(m.Value("k"), "first");
  Reply again = m.Apply(Cas("k", std::nullopt, "second"));
  EXPECT_FALSE(again.success);
  EXPECT_EQ(again.value, "first");
  EXPECT_EQ(m.Value("k"), "first");
}

TEST(StateMachineTest, CasExpectedEmptyIsNotExpectedAbsent) {
  Machine m;
  Reply on_absent = m.Apply(Cas("k", "", "v"));
  EXPECT_FALSE(on_absent.success);
  EXPECT_EQ(on_absent.value, std::nullopt);
  EXPECT_EQ(m.Value("k"), std::nullopt);
  m.Apply(Put("k", ""));
  EXPECT_FALSE(m.Apply(Cas("k", std::nullopt, "v")).success);
  EXPECT_TRUE(m.Apply(Cas("k", "", "v")).success);
  EXPECT_EQ(m.Value("k"), "v");
}

TEST(StateMachineTest, IncrCountsFromZeroAndReturnsTheResult) {
  Machine m;
  Reply first = m.Apply(Incr("n", 5));
  EXPECT_TRUE(first.ok());
  EXPECT_EQ(first.number, 5);
  EXPECT_EQ(m.Apply(Incr("n", -12)).number, -7);
  EXPECT_EQ(m.Value("n"), "-7");
  m.Apply(Put("m", "41"));
  EXPECT_EQ(m.Apply(Incr("m", 1)).number, 42);
  EXPECT_EQ(m.Value("m"), "42");
  EXPECT_EQ(m.Apply(Incr("z", 0)).number, 0);
  EXPECT_EQ(m.Value("z"), "0");
}

TEST(StateMachineTest, IncrRejectsNonIntegersAndLeavesThemAlone) {
  for (const std::string& bad : std::vector<std::string>{
           "", "abc", "1.5", " 1", "1 ", "+1", "01", "-0", "-", "0x10", "99999999999999999999",
           "9223372036854775808", "-9223372036854775809", std::string("1\0", 2)}) {
    Machine m;
    m.Apply(Put("k", bad));
    Reply r = m.Apply(Incr("k", 1));
    EXPECT_EQ(r.code, ReplyCode::kNotInteger) << "'" << bad << "'";
    EXPECT_EQ(r.message(), "value is not an integer or out of range");
    EXPECT_EQ(m.Value("k"), bad);
  }
}

TEST(StateMachineTest, IncrAcceptsTheInt64Extremes) {
  Machine m;
  m.Apply(Put("lo", "-9223372036854775808"));
  EXPECT_EQ(m.Apply(Incr("lo", 1)).number, kMin + 1);
  m.Apply(Put("hi", "9223372036854775807"));
  EXPECT_EQ(m.Apply(Incr("hi", -1)).number, kMax - 1);
  EXPECT_EQ(m.Apply(Incr("new", kMin)).number, kMin);
  EXPECT_EQ(m.Value("new"), "-9223372036854775808");
}

TEST(StateMachineTest, IncrOverflowIsAnErrorAndChangesNothing) {
  Machine m;
  m.Apply(Put("hi", std::to_string(kMax)));
  EXPECT_EQ(m.Apply(Incr("hi", 1)).code, ReplyCode::kNotInteger);
  EXPECT_EQ(m.Value("hi"), std::to_string(kMax));
  m.Apply(Put("lo", std::to_string(kMin)));
  EXPECT_EQ(m.Apply(Incr("lo", -1)).code, ReplyCode::kNotInteger);
  EXPECT_EQ(m.Value("lo"), std::to_string(kMin));
  m.Apply(Put("x", "-2"));
  EXPECT_EQ(m.Apply(Incr("x", kMin)).code, ReplyCode::kNotInteger);
  EXPECT_EQ(m.Value("x"), "-2");
}

TEST(StateMachineTest, AppendCreatesAndExtends) {
  Machine m;
  Reply first = m.Apply(Append("k", "abc"));
  EXPECT_TRUE(first.ok());
  EXPECT_EQ(first.number, 3);
  EXPECT_EQ(m.Apply(Append("k", "de")).number, 5);
  EXPECT_EQ(m.Apply(Append("k", "")).number, 5);
  EXPECT_EQ(m.Value("k"), "abcde");
}

TEST(StateMachineTest, KeyAndValueBoundsGiveErrorReplies) {
  Options options;
  options.key_bytes_max = 4;
  options.value_bytes_max = 8;
  Machine m(options);
  EXPECT_EQ(m.Apply(Put("12345", "v")).code, ReplyCode::kKeyTooLarge);
  EXPECT_EQ(m.Apply(Get("12345")).code, ReplyCode::kKeyTooLarge);
  EXPECT_EQ(m.Apply(Put("1234", "123456789")).code, ReplyCode::kValueTooLarge);
  EXPECT_EQ(m.Apply(Cas("1234", std::nullopt, "123456789")).code, ReplyCode::kValueTooLarge);
  EXPECT_EQ(m.sm().key_count(), 0u);
  EXPECT_TRUE(m.Apply(Put("1234", "12345678")).ok());  // exactly at the bounds
  EXPECT_EQ(m.Apply(Append("1234", "9")).code, ReplyCode::kValueTooLarge);
  EXPECT_EQ(m.Value("1234"), "12345678");
  EXPECT_EQ(m.Apply(Append("new", "123456789")).code, ReplyCode::kValueTooLarge);
  EXPECT_EQ(m.Value("new"), std::nullopt);
}

TEST(StateMachineTest, ErrorRepliesStillAdvanceTheAppliedIndex) {
  Machine m;
  m.Apply(Put("k", "x"));
  EXPECT_FALSE(m.Apply(Incr("k", 1)).ok());
  EXPECT_EQ(m.sm().applied_index(), LogIndex(2));
}

TEST(StateMachineTest, IndexesMayHaveGaps) {
  StateMachine sm;
  EXPECT_TRUE(sm.Apply(LogIndex(3), Put("k", "v")).ok());
  EXPECT_TRUE(sm.Apply(LogIndex(10), Put("k", "w")).ok());  // conf changes in between
  EXPECT_EQ(sm.applied_index(), LogIndex(10));
}

TEST(StateMachineDeathTest, ApplyingOutOfOrderIsAProgrammerError) {
  StateMachine sm;
  ASSERT_TRUE(sm.Apply(LogIndex(5), Put("k", "v")).ok());
  EXPECT_DEATH((void)sm.Apply(LogIndex(5), Put("k", "v")), "log order");
  EXPECT_DEATH((void)sm.ApplyEntry(LogIndex(4), ""), "log order");
}

TEST(StateMachineTest, EmptyEntryIsANoOp) {
  Machine m;
  m.Apply(Put("k", "v"));
  const uint64_t before = m.sm().Digest();
  Reply r = m.ApplyEntry("");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r, Reply());
  EXPECT_EQ(m.sm().applied_index(), LogIndex(2));
  EXPECT_EQ(m.Value("k"), "v");
  EXPECT_NE(m.sm().Digest(), before);  // only because the applied index moved
}

TEST(StateMachineTest, ApplyEntryDecodesAndApplies) {
  Machine m;
  EXPECT_TRUE(m.ApplyEntry(EncodeCommand(Put("k", "v"))).ok());
  EXPECT_EQ(m.ApplyEntry(EncodeCommand(Append("k", "w"))).number, 2);
  EXPECT_EQ(m.Value("k"), "vw");
}

TEST(StateMachineTest, CorruptEntryIsADeterministicErrorReply) {
  Machine a;
  Machine b;
  for (Machine* m : {&a, &b}) {
    m->Apply(Put("k", "v"));
    Reply r = m->ApplyEntry("\xff\xff\xff garbage");
    EXPECT_EQ(r.code, ReplyCode::kBadCommand);
    EXPECT_EQ(m->Value("k"), "v");
  }
  EXPECT_EQ(a.sm().applied_index(), LogIndex(2));
  EXPECT_EQ(a.sm().Digest(), b.sm().Digest());
}

TEST(StateMachineTest, ApplyRejectsCommandsThatBreakTheSeqRule) {
  Machine m;
  Command no_client = Put("k", "v");
  no_client.seq = 3;
  EXPECT_EQ(m.Apply(no_client).code, ReplyCode::kBadCommand);
  Command no_seq = Put("k", "v");
  no_seq.client_id = 9;
  EXPECT_EQ(m.Apply(no_seq).code, ReplyCode::kBadCommand);
  Command bad_op = Put("k", "v");
  bad_op.op = static_cast<Op>(42);
  EXPECT_EQ(m.Apply(bad_op).code, ReplyCode::kBadCommand);
  EXPECT_EQ(m.Value("k"), std::nullopt);
  EXPECT_EQ(m.sm().session_count(), 0u);
}

TEST(StateMachineTest, GetReturnsAViewOfTheStoredValue) {
  Machine m;
  m.Apply(Put("k", std::string(1000, 'a')));
  std::optional<std::string_view> v = m.sm().Get("k");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->size(), 1000u);
  EXPECT_EQ(v->data(), m.sm().Get("k")->data());  // no copy
}

}  // namespace
}  // namespace synod::kv

namespace synod::kv {
namespace {

using testing::Incr;
using testing::Machine;
using testing::Put;
using testing::WithSession;

Command Batch(std::vector<Command> subs) {
  Command c;
  c.op = Op::kBatch;
  c.batch = std::move(subs);
  return c;
}

TEST(StateMachineBatchTest, AppliesEverySubCommandInOrderWithOneReplyEach) {
  Machine m;
  Command del;
  del.op = Op::kDel;
  del.key = "a";
  Command get;
  get.op = Op::kGet;
  get.key = "b";
  Reply r = m.Apply(Batch({Put("a", "1"), Put("b", "2"), del, Incr("b", 5), get}));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.replies.size(), 5u);
  EXPECT_TRUE(r.replies[2].success);  // "a" existed when DEL ran: the order is kept
  EXPECT_EQ(r.replies[3].number, 7);
  EXPECT_EQ(r.replies[4].value, "7");  // a read inside a batch sees the earlier writes
  EXPECT_EQ(m.Value("a"), std::nullopt);
  EXPECT_EQ(m.Value("b"), "7");
  EXPECT_EQ(m.sm().applied_index(), LogIndex(1));  // the whole batch is one entry
}

TEST(StateMachineBatchTest, AFailingSubCommandDoesNotStopTheOthers) {
  Machine m;
  Reply r = m.Apply(Batch({Put("s", "text"), Incr("s", 1), Put("t", "ok")}));
  ASSERT_EQ(r.replies.size(), 3u);
  EXPECT_EQ(r.replies[1].code, ReplyCode::kNotInteger);
  EXPECT_EQ(m.Value("t"), "ok");
}

TEST(StateMachineBatchTest, NestedBatchIsABadCommandAndAppliesNothingOfIt) {
  Machine m;
  Reply r = m.Apply(Batch({Put("x", "1"), Batch({Put("y", "2")})}));
  ASSERT_EQ(r.replies.size(), 2u);
  EXPECT_EQ(r.replies[1].code, ReplyCode::kBadCommand);
  EXPECT_EQ(m.Value("y"), std::nullopt);
}

TEST(StateMachineBatchTest, SessionCachesTheBatchReplyAcrossASnapshot) {
  Machine m;
  Command b = WithSession(Batch({Incr("n", 1), Incr("n", 1)}), 11, 1);
  Reply first = m.Apply(b);
  ASSERT_EQ(first.replies.size(), 2u);
  StateMachine restored;
  ASSERT_TRUE(restored.Restore(m.sm().Snapshot()).ok());
  EXPECT_EQ(restored.Digest(), m.sm().Digest());
  // The retry is answered from the session: the same sub-replies, nothing applied again.
  Reply retry = restored.Apply(restored.applied_index() + 1, b);
  EXPECT_EQ(retry, first);
  auto n = restored.Get("n");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, "2");
}

}  // namespace
}  // namespace synod::kv
