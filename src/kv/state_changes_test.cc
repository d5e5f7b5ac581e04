// StateMachine's change tracking (TakeChanges), session encoding and LoadState.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv.pb.h"
#include "kv/kv_test_util.h"
#include "kv/state_machine.h"

namespace synod::kv {
namespace {

using testing::Append;
using testing::Cas;
using testing::Del;
using testing::Expire;
using testing::Incr;
using testing::LoadRecords;
using testing::Machine;
using testing::Put;
using testing::Redis;
using testing::WithSession;

using DataChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;
// The changes of several keys come in no particular order.
DataChanges Sorted(DataChanges d) {
  std::sort(d.begin(), d.end());
  return d;
}

// The record of a live value, and of a tombstone, as TakeChanges reports them.
std::optional<std::string> V(std::string bytes, uint64_t version, int64_t expire_ms = 0) {
  return EncodeValueRecord(
      Value{.bytes = std::move(bytes), .expire_ms = expire_ms, .version = LogIndex(version)});
}
std::optional<std::string> T(uint64_t deleted_at) {
  return EncodeTombstoneRecord(LogIndex(deleted_at));
}

pb::StateMeta ParseMeta(const std::string& bytes) {
  pb::StateMeta m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

// A database kept in step with a StateMachine only through TakeChanges, the way the real
// node's RocksDB is.
struct Mirror {
  LogIndex applied;
  std::map<std::string, std::string> data;
  std::map<uint64_t, std::string> sessions;
  std::string meta;

  void Take(StateMachine& sm) {
    StateChanges c = sm.TakeChanges();
    if (c.meta) meta = *c.meta;
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
        applied, meta,
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
    const int64_t now = 1000 * (i + 1);
    switch (rng() % 9) {
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
      case 5:
        c = Redis({"set", key, std::to_string(rng() % 1000)}, now);
        break;
      case 6:
        c = Redis({"DEL", key, "key" + std::to_string(rng() % 12)}, now);
        break;
      case 7:  // replicated expiry of what is due 10 s later (keys loaded with an expiry)
        c = Expire(m.sm().keyspace().Expired(m.sm().clock_ms() + 10'000, 3),
                   m.sm().clock_ms() + 10'000);
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
  EXPECT_EQ(Sorted(c.data),
            (DataChanges{{"a", V("1", 1)}, {"b", V("2", 2)}, {"c", V("3", 3)}, {"n", V("5", 4)}}));
  ASSERT_TRUE(c.meta.has_value());  // the applied index moved
  EXPECT_FALSE(c.meta->empty());
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
  EXPECT_EQ(c.applied, LogIndex(4));
  EXPECT_FALSE(c.meta.has_value());

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
  // Deleted keys are tombstones (for WATCH), with the deleting index.
  EXPECT_EQ(
      Sorted(c.data),
      (DataChanges{
          {"a", T(5)}, {"b", V("3", 9)}, {"c", V("x", 10)}, {"d", V("4", 13)}, {"tmp", T(7)}}));
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
  source.Apply(Put("gone", "soon"));
  source.Apply(Redis({"del", "gone"}, 5000));
  Machine m;
  m.sm().set_track_changes(true);
  m.Apply(Put("old", "gone"));
  m.Apply(Put("w", "0"));
  ASSERT_TRUE(m.sm().Restore(source.sm().Snapshot()).ok());
  m.Apply(Put("z", "3"));  // after the Restore: part of the full report
  StateChanges c = m.sm().TakeChanges();
  EXPECT_TRUE(c.reset);
  EXPECT_EQ(c.applied, LogIndex(5));
  // The values in keyspace order, then the tombstones in key order.
  DataChanges values = {{"x", V("1", 1)}, {"y", V("2", 2)}, {"z", V("3", 5)}};
  std::sort(values.begin(), values.end(), [](const auto& a, const auto& b) {
    return KeyPosition(a.first) < KeyPosition(b.first);
  });
  values.emplace_back("gone", T(4));
  EXPECT_EQ(c.data, values);
  ASSERT_EQ(c.sessions.size(), 1u);
  EXPECT_EQ(c.sessions[0].first, 7u);
  ASSERT_TRUE(c.meta.has_value());
  EXPECT_EQ(ParseMeta(*c.meta).clock_ms(), 5000);
  // The reset is reported once.
  m.Apply(Put("w", "4"));
  c = m.sm().TakeChanges();
  EXPECT_FALSE(c.reset);
  EXPECT_EQ(c.data, (DataChanges{{"w", V("4", 6)}}));
}

// A fresh machine's meta is all defaults; it must still not read as "no meta" (a legacy store).
TEST(StateChangesTest, MetaIsNeverEmpty) {
  StateMachine sm;
  EXPECT_FALSE(sm.EncodeMeta().empty());
  pb::StateMeta m = ParseMeta(sm.EncodeMeta());
  EXPECT_EQ(m.clock_ms(), 0);
  EXPECT_EQ(m.flush_index(), 0u);
  // A store of the default meta and value records loads back as records, not plain values.
  sm.set_track_changes(true);
  ASSERT_TRUE(sm.Apply(LogIndex(1), Put("k", "v")).ok());
  StateChanges c = sm.TakeChanges();
  ASSERT_TRUE(c.meta.has_value());
  StateMachine loaded;
  ASSERT_TRUE(LoadRecords(loaded, c.applied, *c.meta, {{"k", *c.data.at(0).second}}).ok());
  EXPECT_EQ(loaded.Get("k"), "v");
  EXPECT_EQ(loaded.Digest(), sm.Digest());
}

TEST(StateChangesTest, MetaCarriesClockTombstoneFloorAndEvictedTombstones) {
  Machine m(Options{.tombstones_max = 2});
  m.sm().set_track_changes(true);
  m.Apply(Redis({"set", "a", "1"}, 100));
  m.Apply(Redis({"set", "b", "1"}, 200));
  m.Apply(Redis({"set", "c", "1"}, 150));  // an older clock: the logical clock stays at 200
  m.Apply(Redis({"del", "a"}, 300));       // index 4
  m.Apply(Redis({"del", "b"}, 300));       // index 5
  StateChanges c = m.sm().TakeChanges();
  ASSERT_TRUE(c.meta.has_value());
  EXPECT_EQ(ParseMeta(*c.meta).clock_ms(), 300);
  EXPECT_EQ(ParseMeta(*c.meta).tombstone_floor(), 0u);
  m.Apply(Redis({"del", "c"}, 250));  // index 6: evicts a's tombstone (4)
  c = m.sm().TakeChanges();
  EXPECT_EQ(Sorted(c.data), (DataChanges{{"a", std::nullopt}, {"c", T(6)}}));
  ASSERT_TRUE(c.meta.has_value());
  pb::StateMeta meta = ParseMeta(*c.meta);
  EXPECT_EQ(meta.clock_ms(), 300);
  EXPECT_EQ(meta.tombstone_floor(), 4u);
}

// The property the real node relies on: a database fed only by TakeChanges, between any
// batches of entries, loads back into the very same state.
TEST(StateChangesTest, ChangesKeepAMirrorIdenticalAndLoadStateRoundTrips) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const Options options{.sessions_max = 4, .tombstones_max = 5};
    Machine m(options);
    m.sm().set_track_changes(true);
    Mirror mirror;
    uint64_t seq = 1;
    for (int batch = 0; batch < 30; ++batch) {
      FeedRandom(m, rng, static_cast<int>(rng() % 20), &seq);
      if (batch == 15) {
        // A state with expiring keys, config and WATCH bookkeeping comes in by Restore.
        Machine other(options);
        pb::StateMeta meta;
        meta.set_clock_ms(m.sm().clock_ms());
        meta.set_flush_index(1);
        (*meta.mutable_config())["requirepass"] = "pw";
        std::vector<std::pair<std::string, std::string>> data;
        for (int k = 0; k < 20; ++k) {  // outside FeedRandom's keys: only expiry removes them
          data.emplace_back("exp" + std::to_string(k),
                            *V("e", 1, m.sm().clock_ms() + 30'000 * (k + 1)));
        }
        data.emplace_back("key1", *T(2));
        ASSERT_TRUE(LoadRecords(other.sm(), LogIndex(2), meta.SerializeAsString(), data).ok());
        FeedRandom(other, rng, 50, &seq);
        ASSERT_TRUE(m.sm().Restore(other.sm().Snapshot()).ok());
        EXPECT_GT(m.sm().keyspace().expires_count(), 0u);
      }
      mirror.Take(m.sm());
      StateMachine loaded(m.sm().options());
      ASSERT_TRUE(mirror.LoadInto(loaded).ok());
      ASSERT_EQ(loaded.Digest(), m.sm().Digest()) << "seed " << seed << " batch " << batch;
      ASSERT_EQ(loaded.Snapshot(), m.sm().Snapshot());
      ASSERT_EQ(loaded.keyspace().expires_count(), m.sm().keyspace().expires_count());
      ASSERT_EQ(loaded.keyspace().Expired(INT64_MAX, 100),
                m.sm().keyspace().Expired(INT64_MAX, 100));
    }
    // The run did exercise what the mirror must carry.
    EXPECT_GT(m.sm().clock_ms(), 0);
    EXPECT_LT(m.sm().keyspace().expires_count(), 20u);  // replicated expiry deleted some
    EXPECT_GT(m.sm().keyspace().tombstone_count(), 0u);
    EXPECT_GT(m.sm().keyspace().tombstone_floor(), LogIndex(0));
    EXPECT_EQ(m.sm().config("requirepass"), "pw");
  }
}

// A store written before meta existed: meta "" and plain values (no expiry, no version).
TEST(StateChangesTest, LegacyLoadStateReadsPlainValues) {
  StateMachine sm;
  const std::string record_like = *V("x", 1);  // plain bytes that happen to look like a record
  ASSERT_TRUE(LoadRecords(sm, LogIndex(8), "", {{"a", "1"}, {"b", record_like}, {"e", ""}},
                          {{3, StateMachine::EncodeSession(internal::Session{
                                   .seq = 2, .last_index = LogIndex(7), .reply = Reply()})}})
                  .ok());
  EXPECT_EQ(sm.applied_index(), LogIndex(8));
  EXPECT_EQ(sm.Get("a"), "1");
  EXPECT_EQ(sm.Get("b"), record_like);
  EXPECT_EQ(sm.Get("e"), "");
  EXPECT_EQ(sm.key_count(), 3u);
  EXPECT_EQ(sm.session_count(), 1u);
  EXPECT_EQ(sm.clock_ms(), 0);
  EXPECT_EQ(sm.keyspace().FindRaw("a")->version, LogIndex(0));
  EXPECT_EQ(sm.keyspace().FindRaw("a")->expire_ms, 0);
  EXPECT_EQ(sm.keyspace().tombstone_count(), 0u);

  // It equals the same data written by commands, once versions are alike: compare through a
  // snapshot of a machine loaded the new way from the records of the legacy one.
  sm.set_track_changes(true);
  ASSERT_TRUE(sm.Apply(LogIndex(9), Put("a", "2")).ok());
  StateChanges c = sm.TakeChanges();
  EXPECT_EQ(c.data, (DataChanges{{"a", V("2", 9)}}));
  ASSERT_TRUE(c.meta.has_value());
  StateMachine converted;
  ASSERT_TRUE(LoadRecords(converted, LogIndex(9), *c.meta,
                          {{"a", *V("2", 9)}, {"b", *V(record_like, 0)}, {"e", *V("", 0)}},
                          {{3, StateMachine::EncodeSession(internal::Session{
                                   .seq = 2, .last_index = LogIndex(7), .reply = Reply()})}})
                  .ok());
  EXPECT_EQ(converted.Digest(), sm.Digest());

  // The same records read as legacy are plain values, and vice versa: the meta decides.
  StateMachine as_records;
  ASSERT_TRUE(
      LoadRecords(as_records, LogIndex(8), StateMachine().EncodeMeta(), {{"b", record_like}}).ok());
  EXPECT_EQ(as_records.Get("b"), "x");
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
  big.data["k"] = *V(std::string(100, 'x'), 1);
  StateMachine small(Options{.value_bytes_max = 10});
  EXPECT_EQ(big.LoadInto(small).code(), Code::kInvalidArgument);

  Mirror bad_record = good;
  bad_record.data["k"] = "x";  // neither a value nor a tombstone record
  EXPECT_EQ(bad_record.LoadInto(target).code(), Code::kCorruption);

  Mirror truncated = good;
  truncated.data["k"] = "v\x85";
  EXPECT_EQ(truncated.LoadInto(target).code(), Code::kCorruption);

  Mirror future_value = good;
  future_value.data["k"] = *V("v", 3);  // a version above the applied index (2)
  EXPECT_EQ(future_value.LoadInto(target).code(), Code::kCorruption);

  Mirror future_tombstone = good;
  future_tombstone.data["gone"] = *T(3);
  EXPECT_EQ(future_tombstone.LoadInto(target).code(), Code::kCorruption);

  Mirror bad_meta = good;
  bad_meta.meta = "\xff\xff";
  EXPECT_EQ(bad_meta.LoadInto(target).code(), Code::kCorruption);

  // A key given twice, as a value and as a tombstone, in either order.
  for (bool tombstone_first : {false, true}) {
    std::vector<std::pair<std::string, std::string>> twice = {{"k", *V("v", 1)}, {"k", *T(2)}};
    if (tombstone_first) std::swap(twice[0], twice[1]);
    EXPECT_EQ(LoadRecords(target, LogIndex(2), good.meta, twice).code(), Code::kCorruption);
  }

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
