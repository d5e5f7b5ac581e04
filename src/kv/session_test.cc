// At-most-once client sessions (Raft thesis §6.3) in StateMachine::Apply.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::Append;
using testing::Get;
using testing::Incr;
using testing::Machine;
using testing::Put;
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

}  // namespace
}  // namespace synod::kv
