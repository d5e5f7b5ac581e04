// StateMachine::Snapshot, Restore and Digest.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "kv/kv.pb.h"
#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::Append;
using testing::Cas;
using testing::Del;
using testing::Get;
using testing::Incr;
using testing::Machine;
using testing::Put;
using testing::WithSession;

// Feeds a seeded random mix of every op, with and without sessions, to the machine.
void FeedRandom(Machine& m, uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  uint64_t seq = 1;
  for (int i = 0; i < count; ++i) {
    const std::string key = "key" + std::to_string(rng() % 16);
    Command c;
    switch (rng() % 7) {
      case 0:
        c = Get(key);
        break;
      case 1:
        c = Put(key, std::to_string(rng() % 1000));
        break;
      case 2:
        c = Del(key);
        break;
      case 3:
        c = Cas(key, std::to_string(rng() % 1000), "cas");
        break;
      case 4:
        c = Incr(key, static_cast<int64_t>(rng() % 100) - 50);
        break;
      case 5:
        c = Append(key, std::string(rng() % 4, 'a'));
        break;
      default:
        m.ApplyEntry(rng() % 2 == 0 ? std::string() : std::string("\xff\xfe"));
        continue;
    }
    if (rng() % 2 == 0) c = WithSession(c, 1 + rng() % 4, seq++);
    m.Apply(c);
  }
}

TEST(SnapshotTest, RoundTripPreservesTheWholeState) {
  Machine a;
  FeedRandom(a, 1, 2000);
  ASSERT_GT(a.sm().key_count(), 0u);
  ASSERT_GT(a.sm().session_count(), 0u);
  const std::string snap = a.sm().Snapshot();
  StateMachine b;
  ASSERT_TRUE(b.Restore(snap).ok());
  EXPECT_EQ(b.applied_index(), a.sm().applied_index());
  EXPECT_EQ(b.key_count(), a.sm().key_count());
  EXPECT_EQ(b.session_count(), a.sm().session_count());
  EXPECT_EQ(b.Digest(), a.sm().Digest());
  EXPECT_EQ(b.Snapshot(), snap);
  for (int k = 0; k < 16; ++k) {
    const std::string key = "key" + std::to_string(k);
    EXPECT_EQ(b.Get(key), a.sm().Get(key)) << key;
  }
}

TEST(SnapshotTest, EmptyStateRoundTrips) {
  StateMachine a;
  StateMachine b;
  ASSERT_TRUE(b.Apply(LogIndex(1), Put("k", "v")).ok());
  ASSERT_TRUE(b.Restore(a.Snapshot()).ok());
  EXPECT_EQ(b.key_count(), 0u);
  EXPECT_EQ(b.applied_index(), LogIndex(0));
  EXPECT_EQ(b.Digest(), a.Digest());
}

TEST(SnapshotTest, RestoredMachineBehavesLikeTheOriginal) {
  Machine a;
  FeedRandom(a, 2, 500);
  Machine b;
  ASSERT_TRUE(b.sm().Restore(a.sm().Snapshot()).ok());
  // Sessions came across: a retry is answered from the cache on both.
  Reply first = a.Apply(WithSession(Append("log", "x"), 77, 1));
  ASSERT_EQ(b.Apply(WithSession(Append("log", "x"), 77, 1)), first);
  EXPECT_EQ(a.Apply(WithSession(Append("log", "x"), 77, 1)), first);
  EXPECT_EQ(b.Apply(WithSession(Append("log", "x"), 77, 1)), first);
  FeedRandom(a, 3, 500);
  FeedRandom(b, 3, 500);
  EXPECT_EQ(a.sm().Digest(), b.sm().Digest());
}

TEST(SnapshotTest, SameEntriesGiveEqualDigests) {
  Machine a;
  Machine b;
  FeedRandom(a, 4, 3000);
  FeedRandom(b, 4, 3000);
  EXPECT_EQ(a.sm().Digest(), b.sm().Digest());
  EXPECT_EQ(a.sm().Snapshot(), b.sm().Snapshot());
}

TEST(SnapshotTest, DigestSeesEveryPartOfTheState) {
  Machine base;
  base.Apply(Put("k", "v"));
  base.Apply(WithSession(Put("s", "1"), 5, 1));
  const uint64_t d = base.sm().Digest();

  Machine other_value;
  other_value.Apply(Put("k", "w"));
  other_value.Apply(WithSession(Put("s", "1"), 5, 1));
  EXPECT_NE(other_value.sm().Digest(), d);

  Machine other_session;
  other_session.Apply(Put("k", "v"));
  other_session.Apply(WithSession(Put("s", "1"), 6, 1));
  EXPECT_NE(other_session.sm().Digest(), d);

  Machine no_session;
  no_session.Apply(Put("k", "v"));
  no_session.Apply(Put("s", "1"));
  EXPECT_NE(no_session.sm().Digest(), d);

  StateMachine other_index;
  ASSERT_TRUE(other_index.Apply(LogIndex(1), Put("k", "v")).ok());
  ASSERT_TRUE(other_index.Apply(LogIndex(3), WithSession(Put("s", "1"), 5, 1)).ok());
  EXPECT_NE(other_index.Digest(), d);

  // Field boundaries count: ("ab" -> "c") is not ("a" -> "bc").
  Machine x;
  Machine y;
  x.Apply(Put("ab", "c"));
  y.Apply(Put("a", "bc"));
  EXPECT_NE(x.sm().Digest(), y.sm().Digest());
}

// The digest is a contract with the simulator's recorded runs: pin one value so that an
// accidental change of the hash (or of what it covers) is noticed. The values were computed
// independently, by a reference FNV-1a over the canonical encoding described in snapshot.cc.
TEST(SnapshotTest, DigestIsStable) {
  StateMachine sm;
  EXPECT_EQ(sm.Digest(), 0x87df19a2aa4e0b22ull);
  ASSERT_TRUE(sm.Apply(LogIndex(1), Put("k", "v")).ok());
  ASSERT_TRUE(sm.Apply(LogIndex(2), WithSession(Incr("n", 3), 9, 1)).ok());
  EXPECT_EQ(sm.Digest(), 0xc13ccafb1655cc84ull);
}

void ExpectRestoreFailsAndKeepsState(StateMachine& sm, std::string_view bytes) {
  const uint64_t before = sm.Digest();
  const LogIndex applied = sm.applied_index();
  Status s = sm.Restore(bytes);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.code() == Code::kCorruption || s.code() == Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(sm.Digest(), before);
  EXPECT_EQ(sm.applied_index(), applied);
}

TEST(SnapshotTest, RestoreOfGarbageFailsAndLeavesStateIntact) {
  Machine m;
  FeedRandom(m, 5, 300);
  ExpectRestoreFailsAndKeepsState(m.sm(), "");
  ExpectRestoreFailsAndKeepsState(m.sm(), "not a snapshot at all");
  ExpectRestoreFailsAndKeepsState(m.sm(), std::string(16, '\xff'));
  std::mt19937_64 rng(6);
  for (int i = 0; i < 5000; ++i) {
    std::string bytes(rng() % 48, '\0');
    for (char& b : bytes) b = static_cast<char>(rng());
    const uint64_t before = m.sm().Digest();
    if (!m.sm().Restore(bytes).ok()) {
      EXPECT_EQ(m.sm().Digest(), before);
    }
  }
}

TEST(SnapshotTest, TruncatedOrExtendedSnapshotIsRejected) {
  Machine a;
  FeedRandom(a, 7, 200);
  const std::string snap = a.sm().Snapshot();
  Machine b;
  FeedRandom(b, 8, 100);
  for (size_t n = 0; n < snap.size(); n += 1 + n / 16) {
    ExpectRestoreFailsAndKeepsState(b.sm(), std::string_view(snap).substr(0, n));
  }
  ExpectRestoreFailsAndKeepsState(b.sm(), snap + '\0');
}

TEST(SnapshotTest, CorruptedSnapshotsNeverCrash) {
  Machine a;
  FeedRandom(a, 9, 200);
  const std::string snap = a.sm().Snapshot();
  std::mt19937_64 rng(10);
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = snap;
    bytes[rng() % bytes.size()] = static_cast<char>(rng());
    StateMachine sm;
    if (!sm.Restore(bytes).ok()) {
      ++rejected;
      EXPECT_EQ(sm.applied_index(), LogIndex(0));
    }
  }
  EXPECT_GT(rejected, 0);
}

// Hand-built snapshots that are well-formed protobuf but break the state's invariants.
std::string Record(const google::protobuf::MessageLite& m) {
  std::string body = m.SerializeAsString();
  EXPECT_LT(body.size(), 128u);  // a one-byte varint length
  return std::string(1, static_cast<char>(body.size())) + body;
}

pb::SnapshotHeader Header(uint64_t applied, uint64_t entries, uint64_t sessions) {
  pb::SnapshotHeader h;
  h.set_format_version(1);
  h.set_applied_index(applied);
  h.set_entry_count(entries);
  h.set_session_count(sessions);
  return h;
}

pb::SnapshotEntry Entry(std::string key, std::string value) {
  pb::SnapshotEntry e;
  e.set_key(std::move(key));
  e.set_value(std::move(value));
  return e;
}

pb::SnapshotSession Session(uint64_t client_id, uint64_t seq, uint64_t last_index,
                            uint32_t code = 0) {
  pb::SnapshotSession s;
  s.set_client_id(client_id);
  s.set_seq(seq);
  s.set_last_index(last_index);
  s.mutable_reply()->set_code(code);
  return s;
}

TEST(SnapshotTest, RestoreValidatesInvariants) {
  StateMachine sm;
  // A well-formed one first, so that the failures below are about what they change.
  ASSERT_TRUE(sm.Restore(Record(Header(10, 2, 2)) + Record(Entry("a", "1")) +
                         Record(Entry("b", "2")) + Record(Session(1, 1, 9)) +
                         Record(Session(2, 3, 10)))
                  .ok());
  EXPECT_EQ(sm.applied_index(), LogIndex(10));
  EXPECT_EQ(sm.Get("b"), "2");
  EXPECT_EQ(sm.session_count(), 2u);

  pb::SnapshotHeader bad_version = Header(10, 0, 0);
  bad_version.set_format_version(2);
  ExpectRestoreFailsAndKeepsState(sm, Record(bad_version));
  ExpectRestoreFailsAndKeepsState(  // keys out of order
      sm, Record(Header(10, 2, 0)) + Record(Entry("b", "")) + Record(Entry("a", "")));
  ExpectRestoreFailsAndKeepsState(  // duplicate key
      sm, Record(Header(10, 2, 0)) + Record(Entry("a", "")) + Record(Entry("a", "")));
  ExpectRestoreFailsAndKeepsState(  // fewer entries than announced
      sm, Record(Header(10, 2, 0)) + Record(Entry("a", "")));
  ExpectRestoreFailsAndKeepsState(sm, Record(Header(10, 0, 1)) + Record(Session(0, 1, 1)));
  ExpectRestoreFailsAndKeepsState(sm, Record(Header(10, 0, 1)) + Record(Session(1, 0, 1)));
  ExpectRestoreFailsAndKeepsState(sm, Record(Header(10, 0, 1)) + Record(Session(1, 1, 11)));
  ExpectRestoreFailsAndKeepsState(sm, Record(Header(10, 0, 1)) + Record(Session(1, 1, 0)));
  ExpectRestoreFailsAndKeepsState(sm, Record(Header(10, 0, 1)) + Record(Session(1, 1, 5, 99)));
  ExpectRestoreFailsAndKeepsState(  // two sessions at one index
      sm, Record(Header(10, 0, 2)) + Record(Session(1, 1, 5)) + Record(Session(2, 1, 5)));
  ExpectRestoreFailsAndKeepsState(  // client ids out of order
      sm, Record(Header(10, 0, 2)) + Record(Session(2, 1, 5)) + Record(Session(1, 1, 6)));
  EXPECT_EQ(sm.Get("a"), "1");
}

TEST(SnapshotTest, RestoreEnforcesThisMachinesBounds) {
  Machine big;
  big.Apply(Put(std::string(10, 'k'), "v"));
  big.Apply(WithSession(Put("a", "1"), 1, 1));
  big.Apply(WithSession(Put("b", "2"), 2, 1));
  const std::string snap = big.sm().Snapshot();

  Options small_keys;
  small_keys.key_bytes_max = 9;
  StateMachine a(small_keys);
  EXPECT_EQ(a.Restore(snap).code(), Code::kInvalidArgument);
  Options few_sessions;
  few_sessions.sessions_max = 1;
  StateMachine b(few_sessions);
  EXPECT_EQ(b.Restore(snap).code(), Code::kInvalidArgument);
  StateMachine c;
  EXPECT_TRUE(c.Restore(snap).ok());
}

}  // namespace
}  // namespace synod::kv
