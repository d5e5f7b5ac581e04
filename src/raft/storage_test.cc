#include "raft/storage.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

namespace synod::raft {

// Readable failure output for entry comparisons. Static: other test files may define their own.
static void PrintTo(const Entry& e, std::ostream* os) {
  *os << "{index=" << e.index << " term=" << e.term << " bytes=" << e.data.size() << "}";
}

namespace {

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kEntryBytes = 10;

// Entries at first_index, first_index+1, ... with the given terms and kEntryBytes of data each.
std::vector<Entry> Ents(uint64_t first_index, std::initializer_list<uint64_t> terms) {
  std::vector<Entry> ents;
  uint64_t index = first_index;
  for (uint64_t term : terms) {
    Entry e;
    e.index = LogIndex(index++);
    e.term = Term(term);
    e.data = std::string(kEntryBytes, 'x');
    ents.push_back(std::move(e));
  }
  return ents;
}

Snapshot Snap(uint64_t index, uint64_t term) {
  Snapshot s;
  s.meta.index = LogIndex(index);
  s.meta.term = Term(term);
  return s;
}

ConfState Voters(std::initializer_list<uint64_t> ids) {
  ConfState cs;
  for (uint64_t id : ids) cs.voters.insert(NodeId(id));
  return cs;
}

// A storage whose dummy entry is (3, 3) followed by entries 4 and 5 (terms 4 and 5): etcd's
// `MemoryStorage{ents: index(3).terms(3, 4, 5)}`, built through the public API.
MemoryStorage Storage345() {
  MemoryStorage s;
  EXPECT_TRUE(s.ApplySnapshot(Snap(3, 3)).ok());
  EXPECT_TRUE(s.Append(Ents(4, {4, 5})).ok());
  return s;
}

// All entries of the storage, dummy excluded.
std::vector<Entry> Contents(const MemoryStorage& s) {
  if (s.LastIndex() < s.FirstIndex()) return {};
  Result<std::vector<Entry>> ents = s.Entries(s.FirstIndex(), s.LastIndex() + 1, kNoLimit);
  EXPECT_TRUE(ents.ok());
  return ents.ok() ? ents.value() : std::vector<Entry>();
}

TEST(MemoryStorageTest, StartsWithOnlyTheDummyEntry) {
  MemoryStorage s;
  EXPECT_EQ(s.FirstIndex(), LogIndex(1));
  EXPECT_EQ(s.LastIndex(), LogIndex(0));
  Result<Term> t = s.TermAt(LogIndex(0));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.value(), Term(0));
  EXPECT_EQ(s.TermAt(LogIndex(1)).status().code(), Code::kUnavailableEntries);
  Result<std::vector<Entry>> ents = s.Entries(LogIndex(1), LogIndex(1), kNoLimit);
  ASSERT_TRUE(ents.ok());
  EXPECT_TRUE(ents->empty());
  EXPECT_EQ(s.Entries(LogIndex(0), LogIndex(1), kNoLimit).status().code(), Code::kCompacted);
  Result<Snapshot> snap = s.GetSnapshot();
  ASSERT_TRUE(snap.ok());
  EXPECT_TRUE(snap->IsEmpty());
}

TEST(MemoryStorageTest, InitialStateReturnsHardStateAndSnapshotConfState) {
  MemoryStorage s;
  Result<std::pair<HardState, ConfState>> empty = s.InitialState();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->first.IsEmpty());
  EXPECT_EQ(empty->second, ConfState());

  HardState hs{Term(3), NodeId(2), LogIndex(7)};
  s.SetHardState(hs);
  Snapshot snap = Snap(7, 3);
  snap.meta.conf_state = Voters({1, 2, 3});
  ASSERT_TRUE(s.ApplySnapshot(snap).ok());
  Result<std::pair<HardState, ConfState>> st = s.InitialState();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->first, hs);
  EXPECT_EQ(st->second, Voters({1, 2, 3}));
  EXPECT_EQ(s.hard_state(), hs);
}

TEST(MemoryStorageTest, TermAt) {
  const MemoryStorage s = Storage345();
  struct Case {
    uint64_t i;
    Code want_code;
    uint64_t want_term;
  };
  const Case cases[] = {
      {2, Code::kCompacted, 0}, {3, Code::kOk, 3},  // the dummy entry's term stays known
      {4, Code::kOk, 4},        {5, Code::kOk, 5}, {6, Code::kUnavailableEntries, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.i);
    Result<Term> t = s.TermAt(LogIndex(c.i));
    EXPECT_EQ(t.status().code(), c.want_code);
    if (t.ok()) {
      EXPECT_EQ(t.value(), Term(c.want_term));
    }
  }
}

TEST(MemoryStorageTest, Entries) {
  MemoryStorage s = Storage345();
  ASSERT_TRUE(s.Append(Ents(6, {6})).ok());
  struct Case {
    uint64_t lo, hi, max_bytes;
    Code want_code;
    std::vector<Entry> want;
  };
  const Case cases[] = {
      {2, 6, kNoLimit, Code::kCompacted, {}},
      {3, 4, kNoLimit, Code::kCompacted, {}},  // the dummy entry cannot be read
      {4, 5, kNoLimit, Code::kOk, Ents(4, {4})},
      {4, 6, kNoLimit, Code::kOk, Ents(4, {4, 5})},
      {4, 7, kNoLimit, Code::kOk, Ents(4, {4, 5, 6})},
      {5, 5, kNoLimit, Code::kOk, {}},
      {4, 8, kNoLimit, Code::kUnavailableEntries, {}},
      // Even with no budget the first entry is returned, so that progress is possible.
      {4, 7, 0, Code::kOk, Ents(4, {4})},
      {4, 7, kEntryBytes - 1, Code::kOk, Ents(4, {4})},
      {4, 7, 2 * kEntryBytes, Code::kOk, Ents(4, {4, 5})},
      {4, 7, 2 * kEntryBytes + kEntryBytes / 2, Code::kOk, Ents(4, {4, 5})},
      {4, 7, 3 * kEntryBytes - 1, Code::kOk, Ents(4, {4, 5})},
      {4, 7, 3 * kEntryBytes, Code::kOk, Ents(4, {4, 5, 6})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "lo=" << c.lo << " hi=" << c.hi << " max=" << c.max_bytes);
    Result<std::vector<Entry>> ents = s.Entries(LogIndex(c.lo), LogIndex(c.hi), c.max_bytes);
    EXPECT_EQ(ents.status().code(), c.want_code);
    if (ents.ok()) {
      EXPECT_EQ(ents.value(), c.want);
    }
  }
}

TEST(MemoryStorageTest, LastIndexFollowsAppend) {
  MemoryStorage s = Storage345();
  EXPECT_EQ(s.LastIndex(), LogIndex(5));
  ASSERT_TRUE(s.Append(Ents(6, {5})).ok());
  EXPECT_EQ(s.LastIndex(), LogIndex(6));
}

TEST(MemoryStorageTest, FirstIndexFollowsCompact) {
  MemoryStorage s = Storage345();
  EXPECT_EQ(s.FirstIndex(), LogIndex(4));
  ASSERT_TRUE(s.Compact(LogIndex(4)).ok());
  EXPECT_EQ(s.FirstIndex(), LogIndex(5));
  EXPECT_EQ(s.LastIndex(), LogIndex(5));
}

TEST(MemoryStorageTest, Compact) {
  struct Case {
    uint64_t i;
    Code want_code;
    uint64_t want_dummy_index, want_dummy_term;
    size_t want_entries;  // without the dummy
  };
  const Case cases[] = {
      {2, Code::kCompacted, 3, 3, 2},
      {3, Code::kCompacted, 3, 3, 2},
      {4, Code::kOk, 4, 4, 1},
      {5, Code::kOk, 5, 5, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.i);
    MemoryStorage s = Storage345();
    EXPECT_EQ(s.Compact(LogIndex(c.i)).code(), c.want_code);
    EXPECT_EQ(s.FirstIndex(), LogIndex(c.want_dummy_index + 1));
    Result<Term> dummy_term = s.TermAt(LogIndex(c.want_dummy_index));
    ASSERT_TRUE(dummy_term.ok());
    EXPECT_EQ(dummy_term.value(), Term(c.want_dummy_term));
    EXPECT_EQ(s.TermAt(LogIndex(c.want_dummy_index - 1)).status().code(), Code::kCompacted);
    EXPECT_EQ(Contents(s).size(), c.want_entries);
  }
}

TEST(MemoryStorageTest, CompactKeepsLaterEntriesIntact) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1, 2, 2, 3})).ok());
  ASSERT_TRUE(s.Compact(LogIndex(3)).ok());
  EXPECT_EQ(Contents(s), Ents(4, {2, 3}));
  EXPECT_EQ(s.Entries(LogIndex(3), LogIndex(4), kNoLimit).status().code(), Code::kCompacted);
}

TEST(MemoryStorageTest, CreateSnapshot) {
  const ConfState cs = Voters({1, 2, 3});
  for (uint64_t i : {4, 5}) {
    SCOPED_TRACE(i);
    MemoryStorage s = Storage345();
    Result<Snapshot> snap = s.CreateSnapshot(LogIndex(i), &cs, "data");
    ASSERT_TRUE(snap.ok());
    Snapshot want = Snap(i, i);
    want.meta.conf_state = cs;
    want.data = "data";
    EXPECT_EQ(snap.value(), want);
    Result<Snapshot> stored = s.GetSnapshot();
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored.value(), want);
    // Creating a snapshot does not compact: that is a separate decision of the application.
    EXPECT_EQ(s.FirstIndex(), LogIndex(4));
  }
}

TEST(MemoryStorageTest, CreateSnapshotOutOfDate) {
  MemoryStorage s = Storage345();
  // The storage's current snapshot is at 3 (from Storage345's ApplySnapshot).
  EXPECT_EQ(s.CreateSnapshot(LogIndex(3), nullptr, "").status().code(), Code::kSnapshotOutOfDate);
  ASSERT_TRUE(s.CreateSnapshot(LogIndex(5), nullptr, "a").ok());
  EXPECT_EQ(s.CreateSnapshot(LogIndex(5), nullptr, "b").status().code(), Code::kSnapshotOutOfDate);
  EXPECT_EQ(s.CreateSnapshot(LogIndex(4), nullptr, "b").status().code(), Code::kSnapshotOutOfDate);
}

TEST(MemoryStorageTest, CreateSnapshotWithoutConfStateKeepsThePreviousOne) {
  MemoryStorage s;
  Snapshot boot = Snap(0, 0);
  boot.meta.conf_state = Voters({1, 2});
  ASSERT_TRUE(s.ApplySnapshot(boot).ok());
  ASSERT_TRUE(s.Append(Ents(1, {1, 1})).ok());
  Result<Snapshot> snap = s.CreateSnapshot(LogIndex(2), nullptr, "img");
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->meta.conf_state, Voters({1, 2}));
  EXPECT_EQ(snap->meta.term, Term(1));
  EXPECT_EQ(snap->data, "img");
}

TEST(MemoryStorageTest, Append) {
  struct Case {
    const char* name;
    std::vector<Entry> entries;
    std::vector<Entry> want;  // entries after the dummy (3, 3)
  };
  const Case cases[] = {
      {"all compacted: ignored", Ents(1, {1, 2}), Ents(4, {4, 5})},
      {"overlap with the dummy, same terms", Ents(3, {3, 4, 5}), Ents(4, {4, 5})},
      {"conflict replaces the suffix", Ents(3, {3, 6, 6}), Ents(4, {6, 6})},
      {"overlap then extend", Ents(3, {3, 4, 5, 5}), Ents(4, {4, 5, 5})},
      {"compacted head skipped, then truncate", Ents(2, {3, 3, 5}), Ents(4, {5})},
      {"truncate the existing entries", Ents(4, {5}), Ents(4, {5})},
      {"direct append", Ents(6, {5}), Ents(4, {4, 5, 5})},
      {"nothing", {}, Ents(4, {4, 5})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MemoryStorage s = Storage345();
    EXPECT_TRUE(s.Append(c.entries).ok());
    EXPECT_EQ(Contents(s), c.want);
    Result<Term> dummy = s.TermAt(LogIndex(3));
    ASSERT_TRUE(dummy.ok());
    EXPECT_EQ(dummy.value(), Term(3));
  }
}

TEST(MemoryStorageTest, ApplySnapshot) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1, 1})).ok());
  Snapshot snap = Snap(4, 4);
  snap.meta.conf_state = Voters({1, 2, 3});
  snap.data = "data";
  ASSERT_TRUE(s.ApplySnapshot(snap).ok());
  // Everything is replaced: the log is empty after the snapshot's last entry.
  EXPECT_EQ(s.FirstIndex(), LogIndex(5));
  EXPECT_EQ(s.LastIndex(), LogIndex(4));
  Result<Term> t = s.TermAt(LogIndex(4));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.value(), Term(4));
  EXPECT_EQ(s.TermAt(LogIndex(3)).status().code(), Code::kCompacted);
  Result<Snapshot> got = s.GetSnapshot();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value(), snap);
  // And appends continue right after it.
  ASSERT_TRUE(s.Append(Ents(5, {4})).ok());
  EXPECT_EQ(s.LastIndex(), LogIndex(5));
}

TEST(MemoryStorageTest, ApplySnapshotOutOfDate) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(Snap(4, 4)).ok());
  EXPECT_EQ(s.ApplySnapshot(Snap(3, 3)).code(), Code::kSnapshotOutOfDate);
  EXPECT_EQ(s.ApplySnapshot(Snap(4, 4)).code(), Code::kSnapshotOutOfDate);
  // The refused snapshot changed nothing.
  EXPECT_EQ(s.FirstIndex(), LogIndex(5));
  EXPECT_TRUE(s.ApplySnapshot(Snap(5, 4)).ok());
  EXPECT_EQ(s.FirstIndex(), LogIndex(6));
}

TEST(MemoryStorageTest, ApplySnapshotBootstrapWithOnlyConfState) {
  // An application bootstraps a group with a snapshot at index 0 that carries only the
  // membership (as etcd allows): the fresh storage must accept it.
  MemoryStorage s;
  Snapshot boot;
  boot.meta.conf_state = Voters({1, 2, 3});
  ASSERT_TRUE(s.ApplySnapshot(boot).ok());
  EXPECT_EQ(s.FirstIndex(), LogIndex(1));
  EXPECT_EQ(s.LastIndex(), LogIndex(0));
  Result<std::pair<HardState, ConfState>> st = s.InitialState();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->second, Voters({1, 2, 3}));
}

TEST(MemoryStorageDeathTest, CompactBeyondLastIndex) {
  MemoryStorage s = Storage345();
  EXPECT_DEATH((void)s.Compact(LogIndex(6)), "Compact beyond the last index");
}

TEST(MemoryStorageDeathTest, CreateSnapshotBeyondLastIndex) {
  MemoryStorage s = Storage345();
  EXPECT_DEATH((void)s.CreateSnapshot(LogIndex(6), nullptr, ""), "beyond the last index");
}

TEST(MemoryStorageDeathTest, AppendWithAGap) {
  MemoryStorage s = Storage345();
  EXPECT_DEATH((void)s.Append(Ents(7, {5})), "gap");
}

TEST(MemoryStorageDeathTest, AppendNonContiguous) {
  MemoryStorage s = Storage345();
  std::vector<Entry> ents = Ents(6, {5, 5});
  ents[1].index = LogIndex(8);
  EXPECT_DEATH((void)s.Append(ents), "non-contiguous");
}

}  // namespace
}  // namespace synod::raft
