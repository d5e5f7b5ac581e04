#include "kv/state_machine.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "kv/kv.pb.h"
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

TEST(StateMachineTest, AVersionedSettingTakesOnlyANewerVersion) {
  Machine m;
  const std::string cmd(kVersionedSetCommand);
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "1", "first"})).number, 1);
  EXPECT_EQ(m.sm().config("shard/2"), "1 first");
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "1", "again"})).number, 0);  // the same
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "3", "third"})).number, 1);
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "2", "late"})).number, 0);  // older
  EXPECT_EQ(m.sm().config("shard/2"), "3 third");
  const auto parsed = ParseVersioned(*m.sm().config("shard/2"));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->first, 3u);
  EXPECT_EQ(parsed->second, "third");
  // Bad versions and shapes are errors that change nothing.
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "x", "v"})).type, ReplyType::kError);
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "-4", "v"})).type, ReplyType::kError);
  EXPECT_EQ(m.Apply(testing::Redis({cmd, "shard/2", "9"})).type, ReplyType::kError);
  EXPECT_EQ(m.sm().config("shard/2"), "3 third");
  EXPECT_FALSE(ParseVersioned("noversion").has_value());
  EXPECT_FALSE(ParseVersioned("12x v").has_value());
  EXPECT_FALSE(ParseVersioned(" v").has_value());
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

using testing::Batch;
using testing::Incr;
using testing::Machine;
using testing::Put;
using testing::WithSession;

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

TEST(StateMachineBatchTest, ABatchOfLegacyOpsKeepsAnUntypedReply) {
  Machine m;
  Reply r = m.Apply(Batch({Put("a", "1"), Incr("a", 1)}));
  EXPECT_EQ(r.type, ReplyType::kNone);
  ASSERT_EQ(r.replies.size(), 2u);
  EXPECT_EQ(r.replies[1].number, 2);
}

}  // namespace
}  // namespace synod::kv

// ---- Redis commands (Op::kRedis), the logical clock and replicated expiry (Op::kExpire) ----

namespace synod::kv {
namespace {

using testing::Del;
using testing::Exec;
using testing::Expire;
using testing::Get;
using testing::LoadRecords;
using testing::Machine;
using testing::Put;
using testing::Redis;
using testing::WithSession;

TEST(StateMachineRedisTest, SetThenGetThroughApply) {
  Machine m;
  EXPECT_EQ(m.Apply(Redis({"SET", "k", "v"}, 1000)), Reply::Ok());
  EXPECT_EQ(m.sm().applied_index(), LogIndex(1));
  EXPECT_EQ(m.Read({"GET", "k"}), Reply::Bulk("v"));
  EXPECT_EQ(ExecuteRedisRead(m.sm().keyspace(), {"get", "k"}, m.sm().ReadContext(0)),
            Reply::Bulk("v"));
  EXPECT_EQ(m.Read({"get", "nope"}), Reply::Nil());
  EXPECT_EQ(m.Value("k"), "v");  // the same data the legacy ops see
  EXPECT_EQ(m.Apply(Get("k")).value, "v");
  EXPECT_EQ(m.sm().keyspace().FindRaw("k")->version, LogIndex(1));
  EXPECT_EQ(m.sm().keyspace().FindRaw("k")->expire_ms, 0);
  // A read command applied through the log (inside MULTI/EXEC it is one) replies too.
  EXPECT_EQ(m.Apply(Redis({"get", "k"}, 1000)), Reply::Bulk("v"));
  EXPECT_EQ(m.Read({"EXISTS", "k", "nope", "k"}), Reply::Int(2));
  EXPECT_EQ(m.Apply(Redis({"set", "k", "w"}, 1000)), Reply::Ok());
  EXPECT_EQ(m.sm().keyspace().FindRaw("k")->version, LogIndex(4));
  EXPECT_EQ(m.Apply(Redis({"Del", "k", "nope"}, 1000)), Reply::Int(1));
  EXPECT_EQ(m.Read({"get", "k"}), Reply::Nil());
  EXPECT_EQ(m.sm().keyspace().VersionOf("k", 1000), LogIndex(5));  // its tombstone
  EXPECT_EQ(m.Apply(Redis({"del", "k"}, 1000)), Reply::Int(0));
}

TEST(StateMachineRedisTest, ErrorsAreRepliesAndStillAdvanceTheIndex) {
  Machine m;
  EXPECT_EQ(m.Apply(Redis({"nosuchcommand", "x"})).type, ReplyType::kError);
  EXPECT_EQ(m.Apply(Redis({"get"})), Reply::Err("ERR wrong number of arguments for 'get' command"));
  EXPECT_EQ(m.Apply(Redis({"set", "k"})).type, ReplyType::kError);
  Command empty = Redis({});  // not decodable from a log, but Apply must not crash on it
  EXPECT_EQ(m.Apply(empty).type, ReplyType::kError);
  EXPECT_EQ(m.sm().applied_index(), LogIndex(4));
  EXPECT_EQ(m.sm().key_count(), 0u);
  // Through the log's encoding as well.
  EXPECT_EQ(m.ApplyEntry(EncodeCommand(Redis({"SET", "a", "1"}, 5))), Reply::Ok());
  EXPECT_EQ(m.Value("a"), "1");
}

TEST(StateMachineRedisTest, OversizedArgumentsAreRefused) {
  Machine m(Options{.key_bytes_max = 4, .value_bytes_max = 8});
  EXPECT_EQ(m.Apply(Redis({"set", "k", std::string(9, 'v')})), redis::TooLarge());
  EXPECT_EQ(m.sm().key_count(), 0u);
  EXPECT_EQ(m.Apply(Redis({"set", "k", std::string(8, 'v')})), Reply::Ok());
}

TEST(StateMachineRedisTest, TheClockNeverGoesBackwards) {
  Machine m;
  EXPECT_EQ(m.sm().clock_ms(), 0);
  m.Apply(Redis({"set", "a", "1"}, 5000));
  EXPECT_EQ(m.sm().clock_ms(), 5000);
  m.Apply(Redis({"set", "b", "1"}, 3000));  // a proposer with a slower clock
  EXPECT_EQ(m.sm().clock_ms(), 5000);
  m.Apply(Put("c", "1"));  // legacy ops carry no time
  m.ApplyEntry("");        // nor does a leader's no-op
  m.Apply(Expire({}, 4000));
  EXPECT_EQ(m.sm().clock_ms(), 5000);
  m.Apply(Redis({"get", "a"}, 7000));
  EXPECT_EQ(m.sm().clock_ms(), 7000);
  // Reads run at the later of the reader's clock and the logical one.
  EXPECT_EQ(m.sm().ReadContext(1000).now_ms, 7000);
  EXPECT_EQ(m.sm().ReadContext(9000).now_ms, 9000);
  // The clock is replicated state.
  StateMachine restored;
  ASSERT_TRUE(restored.Restore(m.sm().Snapshot()).ok());
  EXPECT_EQ(restored.clock_ms(), 7000);
  restored.Apply(restored.applied_index() + 1, Redis({"get", "a"}, 6000));
  EXPECT_EQ(restored.clock_ms(), 7000);
}

// Keys with an expiry, set up without SET's options: loaded records at clock 1000.
void LoadExpiringKeys(StateMachine& sm) {
  StateMachine clock;
  clock.Apply(LogIndex(1), Redis({"get", "x"}, 1000));
  auto value = [](int64_t expire_ms) {
    return EncodeValueRecord(Value{.bytes = "v", .expire_ms = expire_ms, .version = LogIndex(1)});
  };
  ASSERT_TRUE(LoadRecords(sm, LogIndex(1), clock.EncodeMeta(),
                          {{"due", value(1500)}, {"later", value(9000)}, {"forever", value(0)}})
                  .ok());
  ASSERT_EQ(sm.clock_ms(), 1000);
}

TEST(StateMachineRedisTest, ExpireDeletesOnlyDueKeys) {
  StateMachine sm;
  LoadExpiringKeys(sm);
  // Not yet due at the entry's time: nothing happens.
  EXPECT_EQ(sm.Apply(LogIndex(2), Expire({"due", "later", "forever"}, 1499)), Reply::Int(0));
  EXPECT_EQ(sm.key_count(), 3u);
  // Due at 1500 (expire_ms itself counts); absent, persistent and later keys stay.
  EXPECT_EQ(sm.Apply(LogIndex(3), Expire({"due", "later", "forever", "absent"}, 1500)),
            Reply::Int(1));
  EXPECT_EQ(sm.keyspace().FindRaw("due"), nullptr);
  EXPECT_EQ(sm.keyspace().VersionOf("due", 1500), LogIndex(3));  // a tombstone for WATCH
  EXPECT_NE(sm.keyspace().FindRaw("later"), nullptr);
  EXPECT_NE(sm.keyspace().FindRaw("forever"), nullptr);
  // A proposer with a slow clock cannot make the logical clock (1500) go back: still not due.
  EXPECT_EQ(sm.Apply(LogIndex(4), Expire({"later"}, 100)), Reply::Int(0));
  // Expired keys are absent to reads before the log deletes them; the log deletes them once.
  EXPECT_EQ(ExecuteRedisRead(sm.keyspace(), {"get", "later"}, sm.ReadContext(9000)), Reply::Nil());
  EXPECT_NE(sm.keyspace().FindRaw("later"), nullptr);
  EXPECT_EQ(sm.Apply(LogIndex(5), Expire({"later", "later"}, 9000)), Reply::Int(1));
  EXPECT_EQ(sm.key_count(), 1u);
  EXPECT_EQ(sm.keyspace().expires_count(), 0u);
}

TEST(StateMachineRedisTest, AKeyPastItsExpiryIsGoneForCommands) {
  StateMachine sm;
  LoadExpiringKeys(sm);
  EXPECT_EQ(sm.Get("due"), "v");  // at the logical clock 1000
  sm.Apply(LogIndex(2), Redis({"exists", "due"}, 2000));
  EXPECT_EQ(sm.Get("due"), std::nullopt);            // the clock moved past 1500
  EXPECT_NE(sm.keyspace().FindRaw("due"), nullptr);  // not deleted by a read
  EXPECT_EQ(sm.Apply(LogIndex(3), Redis({"del", "due"}, 2000)), Reply::Int(0));  // absent
  EXPECT_EQ(sm.keyspace().FindRaw("due"), nullptr);  // but a write deleted it
  EXPECT_EQ(sm.keyspace().VersionOf("due", 2000), LogIndex(3));
}

// Depends on SET's PX option (redis_strings.cc).
TEST(StateMachineRedisTest, SetWithPxExpiresThroughTheLog) {
  Machine m;
  EXPECT_EQ(m.Apply(Redis({"set", "a", "1", "PX", "100"}, 1000)), Reply::Ok());
  EXPECT_EQ(m.Apply(Redis({"set", "b", "1", "px", "5000"}, 1000)), Reply::Ok());
  m.Apply(Redis({"set", "c", "1"}, 1000));
  ASSERT_NE(m.sm().keyspace().FindRaw("a"), nullptr);
  EXPECT_EQ(m.sm().keyspace().FindRaw("a")->expire_ms, 1100);  // relative to the entry's time
  EXPECT_EQ(m.sm().keyspace().Expired(2000, 10), (std::vector<std::string>{"a"}));
  EXPECT_EQ(m.Apply(Expire({"a", "b", "c"}, 2000)), Reply::Int(1));
  EXPECT_EQ(m.Read({"get", "a"}), Reply::Nil());
  EXPECT_EQ(m.Read({"get", "b"}, 2000), Reply::Bulk("1"));
  EXPECT_EQ(m.Read({"get", "b"}, 6000), Reply::Nil());
  EXPECT_EQ(m.Read({"get", "c"}, 1'000'000), Reply::Bulk("1"));
  EXPECT_EQ(m.sm().key_count(), 2u);
}

// ---- MULTI/EXEC with WATCH: a batch with watches ----

TEST(StateMachineWatchTest, UnchangedWatchAppliesAndRepliesAnArray) {
  Machine m;
  m.Apply(Redis({"set", "w", "1"}, 100));
  const LogIndex watched_at = m.sm().applied_index();
  const LogIndex version = m.sm().keyspace().VersionOf("w", 100);
  EXPECT_EQ(version, LogIndex(1));
  m.Apply(Redis({"set", "other", "x"}, 100));  // other keys may change
  Reply r = m.Apply(Exec({Redis({"set", "w", "2"}), Redis({"get", "w"}), Redis({"get", "zz"})},
                         {{"w", version}, {"never", LogIndex(0)}}, watched_at, 200));
  EXPECT_EQ(r.type, ReplyType::kArray);
  EXPECT_EQ(r, Reply::Array({Reply::Ok(), Reply::Bulk("2"), Reply::Nil()}));
  EXPECT_EQ(m.Value("w"), "2");
  // MULTI/EXEC without WATCH is an array as well.
  EXPECT_EQ(m.Apply(testing::Batch({Redis({"get", "w"})}, 300)), Reply::Array({Reply::Bulk("2")}));
}

TEST(StateMachineWatchTest, KeyModifiedAfterTheWatchAbortsAndAppliesNothing) {
  Machine m;
  m.Apply(Redis({"set", "w", "1"}, 100));
  const LogIndex watched_at = m.sm().applied_index();
  const LogIndex version = m.sm().keyspace().VersionOf("w", 100);
  m.Apply(Redis({"set", "w", "1"}, 100));  // the same bytes, but a write: a change
  const uint64_t digest = m.sm().Digest();
  Reply r = m.Apply(
      Exec({Redis({"set", "x", "1"}), Redis({"del", "w"})}, {{"w", version}}, watched_at, 200));
  EXPECT_EQ(r, Reply::NullArray());
  EXPECT_EQ(m.Value("x"), std::nullopt);
  EXPECT_EQ(m.Value("w"), "1");
  EXPECT_EQ(m.sm().keyspace().tombstone_count(), 0u);
  // Only the index and the clock moved: the same as a read applied at that index and time.
  Machine expected;
  expected.Apply(Redis({"set", "w", "1"}, 100));
  expected.Apply(Redis({"set", "w", "1"}, 100));
  EXPECT_EQ(expected.sm().Digest(), digest);
  expected.Apply(Redis({"exists", "w"}, 200));
  EXPECT_EQ(expected.sm().Digest(), m.sm().Digest());
}

TEST(StateMachineWatchTest, KeyCreatedAndDeletedAfterTheWatchAborts) {
  Machine m;
  m.Apply(Redis({"set", "other", "1"}, 100));
  const LogIndex watched_at = m.sm().applied_index();
  EXPECT_EQ(m.sm().keyspace().VersionOf("t", 100), LogIndex(0));  // absent when watched
  m.Apply(Redis({"set", "t", "1"}, 100));
  m.Apply(Redis({"del", "t"}, 100));
  EXPECT_EQ(m.Read({"exists", "t"}), Reply::Int(0));  // absent again, but it changed
  EXPECT_EQ(m.Apply(Exec({Redis({"set", "x", "1"})}, {{"t", LogIndex(0)}}, watched_at, 200)),
            Reply::NullArray());
  EXPECT_EQ(m.Value("x"), std::nullopt);
  // A watch taken after the delete sees its tombstone's version and passes.
  const LogIndex now_at = m.sm().applied_index();
  EXPECT_EQ(m.Apply(Exec({Redis({"set", "x", "1"})}, {{"t", m.sm().keyspace().VersionOf("t", 200)}},
                         now_at, 200)),
            Reply::Array({Reply::Ok()}));
}

TEST(StateMachineWatchTest, AWatchedKeyThatExpiresAborts) {
  StateMachine sm;
  LoadExpiringKeys(sm);
  const LogIndex version = sm.keyspace().VersionOf("due", 1000);
  EXPECT_EQ(version, LogIndex(1));
  sm.Apply(LogIndex(2), Redis({"get", "x"}, 1600));  // the clock passes "due"'s expiry
  EXPECT_EQ(sm.Apply(LogIndex(3),
                     Exec({Redis({"set", "y", "1"})}, {{"due", version}}, LogIndex(1), 1600)),
            Reply::NullArray());
  EXPECT_EQ(sm.Get("y"), std::nullopt);
}

TEST(StateMachineWatchTest, WatchOlderThanTheTombstoneFloorAborts) {
  Machine m(Options{.tombstones_max = 1});
  m.Apply(Redis({"set", "a", "1"}, 100));  // 1
  m.Apply(Redis({"set", "b", "1"}, 100));  // 2
  const LogIndex watched_at = m.sm().applied_index();
  m.Apply(Redis({"del", "a"}, 100));  // 3: tombstone of a
  m.Apply(Redis({"del", "b"}, 100));  // 4: b's tombstone evicts a's: the floor rises to 3
  EXPECT_EQ(m.sm().keyspace().tombstone_floor(), LogIndex(3));
  // A watch from before the floor cannot be judged (the watched key might have been a, whose
  // tombstone is forgotten): it counts as changed.
  EXPECT_EQ(m.Apply(Exec({Redis({"set", "x", "1"})}, {{"zz", LogIndex(0)}}, watched_at, 100)),
            Reply::NullArray());
  EXPECT_EQ(m.Value("x"), std::nullopt);
  // A watch at or after the floor is judged by versions.
  EXPECT_EQ(m.Apply(Exec({Redis({"set", "x", "1"})}, {{"zz", LogIndex(0)}}, LogIndex(4), 100)),
            Reply::Array({Reply::Ok()}));
  EXPECT_EQ(m.Value("x"), "1");
}

TEST(StateMachineWatchTest, WatchOlderThanTheFlushIndexAborts) {
  // A FLUSHALL at index 5, as replicated meta.
  pb::StateMeta meta;
  meta.set_flush_index(5);
  StateMachine sm;
  ASSERT_TRUE(
      LoadRecords(
          sm, LogIndex(6), meta.SerializeAsString(),
          {{"k", EncodeValueRecord(Value{.bytes = "v", .expire_ms = 0, .version = LogIndex(6)})}})
          .ok());
  EXPECT_EQ(sm.keyspace().flush_index(), LogIndex(5));
  // Watched at 4, before the flush: even a key that looks unchanged aborts.
  EXPECT_EQ(sm.Apply(LogIndex(7),
                     Exec({Redis({"set", "x", "1"})}, {{"absent", LogIndex(0)}}, LogIndex(4), 100)),
            Reply::NullArray());
  EXPECT_EQ(sm.Get("x"), std::nullopt);
  // Watched at the flush or later: judged by versions.
  EXPECT_EQ(sm.Apply(LogIndex(8),
                     Exec({Redis({"set", "x", "1"})}, {{"k", LogIndex(6)}}, LogIndex(5), 100)),
            Reply::Array({Reply::Ok()}));
  EXPECT_EQ(sm.Get("x"), "1");
}

TEST(StateMachineWatchTest, TheLogPathAndSessionsCarryTheOutcome) {
  Machine m;
  m.Apply(Redis({"set", "w", "1"}, 100));
  // Encoded and decoded as a log entry, the watches and the watch index come along.
  const Command stale =
      WithSession(Exec({Redis({"set", "x", "1"})}, {{"w", LogIndex(0)}}, LogIndex(1), 100), 3, 1);
  EXPECT_EQ(m.ApplyEntry(EncodeCommand(stale)), Reply::NullArray());
  EXPECT_EQ(m.Value("x"), std::nullopt);
  const Command fresh =
      WithSession(Exec({Redis({"set", "x", "1"})}, {{"w", LogIndex(1)}}, LogIndex(2), 100), 4, 1);
  EXPECT_EQ(m.ApplyEntry(EncodeCommand(fresh)), Reply::Array({Reply::Ok()}));
  // Now w changes: executed again, the EXEC would abort; its retry gets the cached reply.
  m.Apply(Redis({"del", "w", "x"}, 100));
  EXPECT_EQ(m.Apply(fresh), Reply::Array({Reply::Ok()}));
  EXPECT_EQ(m.Value("x"), std::nullopt);  // and nothing was applied again
  EXPECT_EQ(m.Apply(stale), Reply::NullArray());
}

}  // namespace
}  // namespace synod::kv
