// StateMachine's change tracking (TakeChanges), session encoding and LoadState.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::Append;
using testing::Cas;
using testing::Del;
using testing::Incr;
using testing::Machine;
using testing::Put;
using testing::WithSession;

using DataChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;

// A database kept in step with a StateMachine only through TakeChanges, the way the real
// node's RocksDB is.
struct Mirror {
  LogIndex applied;
  std::map<std::string, std::string> data;
  std::map<uint64_t, std::string> sessions;

  void Take(StateMachine& sm) {
    StateChanges c = sm.TakeChanges();
    if (c.reset) {
      data.clear();
      sessions.clear();
    }
    for (auto& [k, v] : c.data) {
      if (v) {
        data[k] = *v;
      } else {
        data.erase(k);
      }
    }
    for (auto& [id, v] : c.sessions) {
      if (v) {
        sessions[id] = *v;
      } else {
        sessions.erase(id);
      }
    }
    applied = c.applied;
  }

  Status LoadInto(StateMachine& sm) const {
    auto d = data.begin();
    auto s = sessions.begin();
    return sm.LoadState(
        applied,
        [&](std::string* k, std::string* v) {
          if (d == data.end()) return false;
          *k = d->first;
          *v = d->second;
          ++d;
          return true;
        },
        [&](uint64_t* id, std::string* v) {
          if (s == sessions.end()) return false;
          *id = s->first;
          *v = s->second;
          ++s;
          return true;
        });
  }
};

void FeedRandom(Machine& m, std::mt19937_64& rng, int count, uint64_t* seq) {
  for (int i = 0; i < count; ++i) {
    const std::string key = "key" + std::to_string(rng() % 12);
    Command c;
    switch (rng() % 6) {
      case 0:
        c = Put(key, std::to_string(rng() % 1000));
        break;
      case 1:
        c = Del(key);
        break;
      case 2:
        c = Cas(key, std::to_string(rng() % 1000), "cas");
        break;
      case 3:
        c = Incr(key, static_cast<int64_t>(rng() % 100) - 50);
        break;
      case 4:
        c = Append(key, std::string(rng() % 4, 'a'));
        break;
      default:
        m.ApplyEntry(std::string());
        continue;
    }
    // Many clients and few session slots: evictions happen often.
    if (rng() % 2 == 0) c = WithSession(c, 1 + rng() % 9, (*seq)++);
    m.Apply(c);
  }
}

TEST(StateChangesTest, ReportsExactlyTheChangedKeysAndSessions) {
  Machine m(Options{.sessions_max = 2});
  m.sm().set_track_changes(true);
  m.Apply(Put("a", "1"));
  m.Apply(Put("b", "2"));
  m.Apply(WithSession(Put("c", "3"), 10, 1));
  m.Apply(WithSession(Incr("n", 5), 11, 1));
  StateChanges c = m.sm().TakeChanges();
  EXPECT_FALSE(c.reset);
  EXPECT_EQ(c.applied, LogIndex(4));
  EXPECT_EQ(c.data, (DataChanges{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"n", "5"}}));
  ASSERT_EQ(c.sessions.size(), 2u);
  EXPECT_EQ(c.sessions[0].first, 10u);
  EXPECT_EQ(c.sessions[1].first, 11u);
  Result<internal::Session> s10 = StateMachine::DecodeSession(c.sessions[0].second.value());
  ASSERT_TRUE(s10.ok()) << s10.status().ToString();
  EXPECT_EQ(s10->seq, 1u);
  EXPECT_EQ(s10->last_index, LogIndex(3));

  // Nothing applied: nothing to report, but the applied index still is.
  c = m.sm().TakeChanges();
  EXPECT_TRUE(c.data.empty());
  EXPECT_TRUE(c.sessions.empty());

  // A delete, a key set then deleted, failed commands (no change), and an eviction of the
  // least recently used session (10) by a third client.
  m.Apply(Del("a"));
  m.Apply(Put("tmp", "x"));
  m.Apply(Del("tmp"));
  m.Apply(Del("never-there"));
  m.Apply(Incr("b", 1));  // "2" + 1: a change
  m.Apply(Put("c", "x"));
  m.Apply(Incr("c", 1));                         // not an integer: no change
  m.Apply(Cas("b", std::string("wrong"), "y"));  // no swap: no change
  m.Apply(WithSession(Put("d", "4"), 12, 1));
  c = m.sm().TakeChanges();
  EXPECT_EQ(c.applied, LogIndex(13));
  EXPECT_EQ(c.data,
            (DataChanges{
                {"a", std::nullopt}, {"b", "3"}, {"c", "x"}, {"d", "4"}, {"tmp", std::nullopt}}));
  ASSERT_EQ(c.sessions.size(), 2u);
  EXPECT_EQ(c.sessions[0], (std::pair<uint64_t, std::optional<std::string>>(10, std::nullopt)));
  EXPECT_EQ(c.sessions[1].first, 12u);
  EXPECT_TRUE(c.sessions[1].second.has_value());
}

TEST(StateChangesTest, OffByDefaultAndAfterTurningOff) {
  Machine m;
  m.Apply(Put("a", "1"));
  EXPECT_TRUE(m.sm().TakeChanges().data.empty());
  m.sm().set_track_changes(true);
  m.Apply(Put("b", "1"));
  m.sm().set_track_changes(false);
  m.Apply(Put("c", "1"));
  EXPECT_TRUE(m.sm().TakeChanges().data.empty());
}

TEST(StateChangesTest, RestoreReportsResetAndTheWholeNewState) {
  Machine source;
  source.Apply(Put("x", "1"));
  source.Apply(WithSession(Put("y", "2"), 7, 1));
  Machine m;
  m.sm().set_track_changes(true);
  m.Apply(Put("old", "gone"));
  ASSERT_TRUE(m.sm().Restore(source.sm().Snapshot()).ok());
  m.Apply(Put("z", "3"));  // after the Restore: part of the full report
  StateChanges c = m.sm().TakeChanges();
  EXPECT_TRUE(c.reset);
  EXPECT_EQ(c.applied, LogIndex(3));
  EXPECT_EQ(c.data, (DataChanges{{"x", "1"}, {"y", "2"}, {"z", "3"}}));
  ASSERT_EQ(c.sessions.size(), 1u);
  EXPECT_EQ(c.sessions[0].first, 7u);
  // The reset is reported once.
  m.Apply(Put("w", "4"));
  c = m.sm().TakeChanges();
  EXPECT_FALSE(c.reset);
  EXPECT_EQ(c.data, (DataChanges{{"w", "4"}}));
}

// The property the real node relies on: a database fed only by TakeChanges, between any
// batches of entries, loads back into the very same state.
TEST(StateChangesTest, ChangesKeepAMirrorIdenticalAndLoadStateRoundTrips) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    Machine m(Options{.sessions_max = 4});
    m.sm().set_track_changes(true);
    Mirror mirror;
    uint64_t seq = 1;
    for (int batch = 0; batch < 30; ++batch) {
      FeedRandom(m, rng, static_cast<int>(rng() % 20), &seq);
      if (batch == 15) {
        Machine other(Options{.sessions_max = 4});
        FeedRandom(other, rng, 50, &seq);
        ASSERT_TRUE(m.sm().Restore(other.sm().Snapshot()).ok());
      }
      mirror.Take(m.sm());
      StateMachine loaded(m.sm().options());
      ASSERT_TRUE(mirror.LoadInto(loaded).ok());
      ASSERT_EQ(loaded.Digest(), m.sm().Digest()) << "seed " << seed << " batch " << batch;
      ASSERT_EQ(loaded.Snapshot(), m.sm().Snapshot());
    }
  }
}

TEST(StateChangesTest, LoadStateRejectsBadInput) {
  Machine m;
  m.sm().set_track_changes(true);
  m.Apply(Put("k", "v"));
  m.Apply(WithSession(Put("s", "1"), 5, 1));
  Mirror good;
  good.Take(m.sm());
  const uint64_t digest_before = [&] {
    StateMachine sm;
    EXPECT_TRUE(good.LoadInto(sm).ok());
    return sm.Digest();
  }();
  EXPECT_EQ(digest_before, m.sm().Digest());

  StateMachine target;
  ASSERT_TRUE(target.Apply(LogIndex(1), Put("keep", "me")).ok());
  const uint64_t target_digest = target.Digest();

  Mirror corrupt = good;
  corrupt.sessions[5] = "\xff\xff\xff";
  Status s = corrupt.LoadInto(target);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();

  Mirror zero_seq = good;
  internal::Session bad{.seq = 0, .last_index = LogIndex(1), .reply = {}};
  zero_seq.sessions[5] = StateMachine::EncodeSession(bad);
  EXPECT_EQ(zero_seq.LoadInto(target).code(), Code::kCorruption);

  Mirror future = good;
  internal::Session ahead{.seq = 1, .last_index = LogIndex(99), .reply = {}};
  future.sessions[5] = StateMachine::EncodeSession(ahead);
  EXPECT_EQ(future.LoadInto(target).code(), Code::kCorruption);

  Mirror big = good;
  big.data["k"] = std::string(100, 'x');
  StateMachine small(Options{.value_bytes_max = 10});
  EXPECT_EQ(big.LoadInto(small).code(), Code::kInvalidArgument);

  // A failed load leaves the state as it was.
  EXPECT_EQ(target.Digest(), target_digest);
}

TEST(StateChangesTest, SessionEncodingRoundTrips) {
  internal::Session s{.seq = 42, .last_index = LogIndex(7), .reply = Reply()};
  s.reply.value = "v";
  s.reply.number = -3;
  s.reply.replies = {Reply::Error(ReplyCode::kNotInteger), Reply()};
  Result<internal::Session> back = StateMachine::DecodeSession(StateMachine::EncodeSession(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
}

}  // namespace
}  // namespace synod::kv
