// At-most-once client sessions (Raft thesis §6.3) in StateMachine::Apply.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kv/kv.pb.h"
#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::Append;
using testing::Batch;
using testing::Exec;
using testing::Get;
using testing::Incr;
using testing::LoadRecords;
using testing::Machine;
using testing::Put;
using testing::Redis;
using testing::WithSession;

TEST(SessionTest, RetriedAppendIsAppliedOnce) {
  Machine m;
  Reply first = m.Apply(WithSession(Append("log", "x"), 1, 1));
  EXPECT_EQ(first.number, 1);
  Reply retry = m.Apply(WithSession(Append("log", "x"), 1, 1));
  EXPECT_EQ(retry, first);
  EXPECT_EQ(m.Value("log"), "x");
  EXPECT_EQ(m.Apply(WithSession(Append("log", "y"), 1, 2)).number, 2);
  EXPECT_EQ(m.Value("log"), "xy");
  EXPECT_EQ(m.sm().session_count(), 1u);
}

TEST(SessionTest, RetryReturnsTheCachedReplyEvenAfterOtherWrites) {
  Machine m;
  Reply first = m.Apply(WithSession(Incr("n", 10), 1, 1));
  m.Apply(Incr("n", 5));                       // another writer, no session
  m.Apply(WithSession(Incr("n", 100), 2, 1));  // another client
  Reply retry = m.Apply(WithSession(Incr("n", 10), 1, 1));
  EXPECT_EQ(retry.number, 10);  // the original reply, not the current value
  EXPECT_EQ(m.Value("n"), "115");
}

TEST(SessionTest, ErrorRepliesAreCachedToo) {
  Machine m;
  m.Apply(Put("k", "text"));
  Reply first = m.Apply(WithSession(Incr("k", 1), 1, 1));
  EXPECT_EQ(first.code, ReplyCode::kNotInteger);
  m.Apply(Put("k", "1"));
  // The retry must not execute: executing now would succeed and increment.
  EXPECT_EQ(m.Apply(WithSession(Incr("k", 1), 1, 1)), first);
  EXPECT_EQ(m.Value("k"), "1");
}

TEST(SessionTest, StaleSeqIsRejectedWithoutApplying) {
  Machine m;
  m.Apply(WithSession(Append("k", "a"), 1, 1));
  m.Apply(WithSession(Append("k", "b"), 1, 2));
  Reply stale = m.Apply(WithSession(Append("k", "a"), 1, 1));
  EXPECT_EQ(stale.code, ReplyCode::kStaleRequest);
  EXPECT_EQ(m.Value("k"), "ab");
  // The session still remembers seq 2.
  EXPECT_EQ(m.Apply(WithSession(Append("k", "zzz"), 1, 2)).number, 2);
}

TEST(SessionTest, SeqMayJumpForward) {
  Machine m;
  m.Apply(WithSession(Append("k", "a"), 1, 1));
  EXPECT_EQ(m.Apply(WithSession(Append("k", "b"), 1, 10)).number, 2);
  EXPECT_EQ(m.Apply(WithSession(Append("k", "c"), 1, 5)).code, ReplyCode::kStaleRequest);
}

TEST(SessionTest, UnknownClientMustStartAtSeqOne) {
  Machine m;
  Reply r = m.Apply(WithSession(Put("k", "v"), 1, 2));
  EXPECT_EQ(r.code, ReplyCode::kSessionExpired);
  EXPECT_EQ(m.Value("k"), std::nullopt);
  EXPECT_EQ(m.sm().session_count(), 0u);
}

TEST(SessionTest, ClientZeroIsNeverDeduplicated) {
  Machine m;
  m.Apply(Append("k", "a"));
  m.Apply(Append("k", "a"));
  EXPECT_EQ(m.Value("k"), "aa");
  EXPECT_EQ(m.sm().session_count(), 0u);
}

TEST(SessionTest, LeastRecentlyUsedSessionIsEvicted) {
  Options options;
  options.sessions_max = 3;
  Machine m(options);
  m.Apply(WithSession(Append("k", "1"), 1, 1));  // index 1
  m.Apply(WithSession(Append("k", "2"), 2, 1));  // index 2
  m.Apply(WithSession(Append("k", "3"), 3, 1));  // index 3
  m.Apply(WithSession(Get("k"), 1, 1));          // a retry refreshes client 1 (index 4)
  m.Apply(WithSession(Append("k", "4"), 4, 1));  // evicts client 2, the oldest
  EXPECT_EQ(m.sm().session_count(), 3u);
  // Client 2 lost its session: its next command cannot be deduplicated.
  EXPECT_EQ(m.Apply(WithSession(Append("k", "x"), 2, 2)).code, ReplyCode::kSessionExpired);
  // Clients 1, 3, 4 still have theirs.
  EXPECT_EQ(m.Apply(WithSession(Append("k", "zz"), 1, 1)).number, 1);
  EXPECT_EQ(m.Apply(WithSession(Append("k", "zz"), 3, 1)).number, 3);
  EXPECT_EQ(m.Apply(WithSession(Append("k", "zz"), 4, 1)).number, 4);
  EXPECT_EQ(m.Value("k"), "1234");
}

TEST(SessionTest, EvictedClientRestartsWithANewId) {
  Options options;
  options.sessions_max = 1;
  Machine m(options);
  m.Apply(WithSession(Append("k", "a"), 1, 1));
  m.Apply(WithSession(Append("k", "b"), 2, 1));  // evicts client 1
  EXPECT_EQ(m.Apply(WithSession(Append("k", "c"), 1, 2)).code, ReplyCode::kSessionExpired);
  EXPECT_EQ(m.Apply(WithSession(Append("k", "c"), 3, 1)).number, 3);
  EXPECT_EQ(m.Value("k"), "abc");
  EXPECT_EQ(m.sm().session_count(), 1u);
}

// Two replicas fed the same random command stream, with many clients, retries, stale and
// expired requests and a small session table, end with the same state.
TEST(SessionTest, EvictionIsDeterministicAcrossReplicas) {
  Options options;
  options.sessions_max = 8;
  Machine a(options);
  Machine b(options);
  std::mt19937_64 rng(99);
  std::vector<uint64_t> ids(20);
  std::vector<uint64_t> next_seq(20, 1);
  for (size_t c = 0; c < ids.size(); ++c) ids[c] = c + 1;
  uint64_t next_id = ids.size() + 1;
  int expired = 0;
  for (int i = 0; i < 5000; ++i) {
    const size_t client = rng() % ids.size();
    uint64_t& seq = next_seq[client];
    const uint64_t roll = rng() % 10;
    uint64_t use = seq;
    if (roll < 2 && seq > 1) use = seq - 1;   // a retry of the previous command
    if (roll == 2 && seq > 2) use = seq - 2;  // a stale one
    Command c = WithSession(Append("k" + std::to_string(rng() % 5), "x"), ids[client], use);
    Reply ra = a.Apply(c);
    Reply rb = b.Apply(c);
    ASSERT_EQ(ra, rb) << i;
    if (ra.code == ReplyCode::kSessionExpired) {  // the client starts over under a new id
      ++expired;
      ids[client] = next_id++;
      seq = 1;
    } else if (use == seq) {
      ++seq;
    }
  }
  EXPECT_GT(expired, 0);
  EXPECT_EQ(a.sm().session_count(), 8u);
  EXPECT_EQ(a.sm().Digest(), b.sm().Digest());
  EXPECT_EQ(a.sm().Snapshot(), b.sm().Snapshot());
}

// ---- Redis replies (typed, nested) in sessions ----

// A reply of `levels` arrays around an integer: Nested(0) is the integer itself.
Reply Nested(int levels) {
  Reply r = Reply::Int(levels);
  for (int i = 0; i < levels; ++i) r = Reply::Array({Reply::Bulk("level"), std::move(r)});
  return r;
}

// Every reply type, nested as EXEC replies are.
Reply EveryType() {
  Reply map;
  map.type = ReplyType::kMap;
  map.replies = {Reply::Bulk("field"), Reply::Int(-7)};
  Reply dbl;
  dbl.type = ReplyType::kDouble;
  dbl.value = "3.25";
  return Reply::Array({Reply::Ok(), Reply::Status("QUEUED"), Reply::Err("WRONGTYPE nope"),
                       Reply::Int(INT64_MIN), Reply::Bulk(std::string("\0\xff", 2)),
                       Reply::Bulk(""), Reply::Nil(), Reply::NullArray(), Reply::Array({}),
                       std::move(map), std::move(dbl), Nested(3)});
}

TEST(SessionTest, ExecRepliesAreCachedAndSurviveASnapshot) {
  Machine m;
  m.Apply(Redis({"set", "w", "1"}, 100));
  const Command exec =
      WithSession(Exec({Redis({"set", "a", "1"}), Redis({"get", "a"}), Redis({"del", "a", "w"}),
                        Redis({"get", "nope"}), Redis({"nosuchcommand"})},
                       {{"w", LogIndex(1)}}, LogIndex(1), 200),
                  21, 1);
  const Reply first = m.Apply(exec);
  ASSERT_EQ(first.type, ReplyType::kArray);
  ASSERT_EQ(first.replies.size(), 5u);
  EXPECT_EQ(first.replies[0], Reply::Ok());
  EXPECT_EQ(first.replies[1], Reply::Bulk("1"));
  EXPECT_EQ(first.replies[2], Reply::Int(2));
  EXPECT_EQ(first.replies[3], Reply::Nil());
  EXPECT_TRUE(first.replies[4].is_error());
  // An aborted EXEC's null array is cached as well.
  const Command aborted =
      WithSession(Exec({Redis({"set", "b", "1"})}, {{"w", LogIndex(1)}}, LogIndex(1), 300), 22, 1);
  EXPECT_EQ(m.Apply(aborted), Reply::NullArray());

  StateMachine restored;
  ASSERT_TRUE(restored.Restore(m.sm().Snapshot()).ok());
  EXPECT_EQ(restored.Digest(), m.sm().Digest());
  EXPECT_EQ(restored.Snapshot(), m.sm().Snapshot());
  // Retries are answered from the restored sessions, with the same types, and not executed.
  EXPECT_EQ(restored.Apply(restored.applied_index() + 1, exec), first);
  EXPECT_EQ(restored.Apply(restored.applied_index() + 1, aborted), Reply::NullArray());
  EXPECT_EQ(restored.Get("a"), std::nullopt);
  EXPECT_EQ(restored.Get("b"), std::nullopt);
}

TEST(SessionTest, NestedRepliesRoundTripThroughSessionEncoding) {
  for (const Reply& reply : {EveryType(), Nested(8), Reply::NullArray(), Reply::Int(5)}) {
    internal::Session s{.seq = 9, .last_index = LogIndex(40), .reply = reply};
    Result<internal::Session> back = StateMachine::DecodeSession(StateMachine::EncodeSession(s));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, s);
  }
  // And through a snapshot and LoadState, which read the same records.
  StateMachine loaded;
  const internal::Session s{.seq = 2, .last_index = LogIndex(3), .reply = EveryType()};
  ASSERT_TRUE(LoadRecords(loaded, LogIndex(3), StateMachine().EncodeMeta(), {},
                          {{5, StateMachine::EncodeSession(s)}})
                  .ok());
  StateMachine restored;
  ASSERT_TRUE(restored.Restore(loaded.Snapshot()).ok());
  EXPECT_EQ(restored.Digest(), loaded.Digest());
  Command retry = WithSession(Get("k"), 5, 2);
  EXPECT_EQ(restored.Apply(LogIndex(4), retry), EveryType());
  EXPECT_EQ(loaded.Apply(LogIndex(4), retry), EveryType());
}

// A snapshot record: varint length, then the message.
std::string Record(const google::protobuf::MessageLite& m) {
  const std::string body = m.SerializeAsString();
  std::string out;
  for (uint64_t n = body.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  return out + body;
}

TEST(SessionTest, RepliesNestedDeeperThanEightLevelsAreRejected) {
  // Depth counts the levels below the session's reply: 8 is the most accepted.
  for (int levels : {9, 10, 50}) {
    internal::Session s{.seq = 1, .last_index = LogIndex(1), .reply = Nested(levels)};
    const std::string bytes = StateMachine::EncodeSession(s);
    Result<internal::Session> back = StateMachine::DecodeSession(bytes);
    EXPECT_EQ(back.status().code(), Code::kCorruption) << levels;

    StateMachine sm;
    EXPECT_EQ(LoadRecords(sm, LogIndex(1), sm.EncodeMeta(), {}, {{5, bytes}}).code(),
              Code::kCorruption)
        << levels;

    // In a snapshot: the same record with its client id.
    pb::SnapshotHeader header;
    header.set_format_version(2);
    header.set_applied_index(1);
    header.set_session_count(1);
    pb::SnapshotSession session;
    ASSERT_TRUE(session.ParseFromString(bytes));
    session.set_client_id(5);
    Status restored = sm.Restore(Record(header) + Record(session));
    EXPECT_EQ(restored.code(), Code::kCorruption) << levels;
    EXPECT_EQ(sm.session_count(), 0u);
    // The same snapshot with one level less is accepted (so the crafting is right).
    if (levels == 9) {
      const pb::Reply inner = session.reply().replies(1).replies(1);
      *session.mutable_reply()->mutable_replies(1) = inner;
      ASSERT_TRUE(sm.Restore(Record(header) + Record(session)).ok());
      EXPECT_EQ(sm.session_count(), 1u);
    }
  }
}

}  // namespace
}  // namespace synod::kv
