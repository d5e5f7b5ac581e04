#include "raft/raft_log.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
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
// Every test entry carries this much payload so that byte limits count entries.
constexpr uint64_t kEntryBytes = 10;

LogIndex I(uint64_t i) { return LogIndex(i); }
Term T(uint64_t t) { return Term(t); }

Entry E(uint64_t index, uint64_t term) {
  Entry e;
  e.index = LogIndex(index);
  e.term = Term(term);
  e.data = std::string(kEntryBytes, 'x');
  return e;
}

// Entries at first_index, first_index+1, ... with the given terms (etcd's index(i).terms(...)).
std::vector<Entry> Ents(uint64_t first_index, std::initializer_list<uint64_t> terms) {
  std::vector<Entry> ents;
  uint64_t index = first_index;
  for (uint64_t term : terms) ents.push_back(E(index++, term));
  return ents;
}

// Entries [from, to) whose term equals their index (etcd's index(from).termRange(from, to)).
std::vector<Entry> Range(uint64_t from, uint64_t to) {
  std::vector<Entry> ents;
  for (uint64_t i = from; i < to; ++i) ents.push_back(E(i, i));
  return ents;
}

Snapshot Snap(uint64_t index, uint64_t term) {
  Snapshot s;
  s.meta.index = LogIndex(index);
  s.meta.term = Term(term);
  return s;
}

// An Unstable in the given state, built through its public operations.
Unstable MakeUnstable(uint64_t offset, std::optional<Snapshot> snap,
                      const std::vector<Entry>& ents) {
  Unstable u{LogIndex(offset)};
  if (snap.has_value()) {
    u.Restore(*snap);
    EXPECT_EQ(u.offset(), LogIndex(offset)) << "test setup: snapshot must end at offset-1";
  }
  if (!ents.empty()) u.TruncateAndAppend(ents);
  EXPECT_EQ(u.offset(), LogIndex(offset));
  return u;
}

Term TermOrZero(const RaftLog& log, uint64_t i) { return log.ZeroTermOnError(log.TermAt(I(i))); }

// ---------------------------------------------------------------------------------------------
// Unstable

TEST(UnstableTest, MaybeFirstIndex) {
  EXPECT_EQ(MakeUnstable(5, std::nullopt, Ents(5, {1})).MaybeFirstIndex(), std::nullopt);
  EXPECT_EQ(MakeUnstable(0, std::nullopt, {}).MaybeFirstIndex(), std::nullopt);
  EXPECT_EQ(MakeUnstable(5, Snap(4, 1), Ents(5, {1})).MaybeFirstIndex(), I(5));
  EXPECT_EQ(MakeUnstable(5, Snap(4, 1), {}).MaybeFirstIndex(), I(5));
}

TEST(UnstableTest, MaybeLastIndex) {
  EXPECT_EQ(MakeUnstable(5, std::nullopt, Ents(5, {1})).MaybeLastIndex(), I(5));
  EXPECT_EQ(MakeUnstable(5, Snap(4, 1), Ents(5, {1})).MaybeLastIndex(), I(5));
  EXPECT_EQ(MakeUnstable(5, Snap(4, 1), {}).MaybeLastIndex(), I(4));
  EXPECT_EQ(MakeUnstable(0, std::nullopt, {}).MaybeLastIndex(), std::nullopt);
}

TEST(UnstableTest, MaybeTerm) {
  struct Case {
    uint64_t offset;
    std::optional<Snapshot> snap;
    std::vector<Entry> ents;
    uint64_t index;
    std::optional<Term> want;
  };
  const Case cases[] = {
      // From the entries.
      {5, std::nullopt, Ents(5, {1}), 5, T(1)},
      {5, std::nullopt, Ents(5, {1}), 6, std::nullopt},
      {5, std::nullopt, Ents(5, {1}), 4, std::nullopt},
      {5, Snap(4, 1), Ents(5, {1}), 5, T(1)},
      {5, Snap(4, 1), Ents(5, {1}), 6, std::nullopt},
      // From the snapshot.
      {5, Snap(4, 1), Ents(5, {1}), 4, T(1)},
      {5, Snap(4, 1), Ents(5, {1}), 3, std::nullopt},
      {5, Snap(4, 1), {}, 5, std::nullopt},
      {5, Snap(4, 1), {}, 4, T(1)},
      {0, std::nullopt, {}, 5, std::nullopt},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    EXPECT_EQ(MakeUnstable(c.offset, c.snap, c.ents).MaybeTerm(I(c.index)), c.want);
  }
}

TEST(UnstableTest, Restore) {
  Unstable u = MakeUnstable(5, Snap(4, 1), Ents(5, {1}));
  u.Restore(Snap(6, 2));
  EXPECT_EQ(u.offset(), I(7));
  EXPECT_TRUE(u.entries().empty());
  ASSERT_TRUE(u.snapshot().has_value());
  EXPECT_EQ(*u.snapshot(), Snap(6, 2));
}

TEST(UnstableTest, StableTo) {
  struct Case {
    uint64_t offset;
    std::optional<Snapshot> snap;
    std::vector<Entry> ents;
    uint64_t index, term;
    uint64_t want_offset;
    size_t want_len;
  };
  const Case cases[] = {
      {0, std::nullopt, {}, 5, 1, 0, 0},
      {5, std::nullopt, Ents(5, {1}), 5, 1, 6, 0},     // stable to the first entry
      {5, std::nullopt, Ents(5, {1, 1}), 5, 1, 6, 1},  // stable to the first entry
      {5, std::nullopt, Ents(5, {1, 1}), 6, 1, 7, 0},  // stable to the last entry
      {6, std::nullopt, Ents(6, {2}), 6, 1, 6, 1},     // term mismatch: replaced since
      {5, std::nullopt, Ents(5, {1}), 4, 1, 5, 1},     // stable to an old entry
      {5, std::nullopt, Ents(5, {1}), 4, 2, 5, 1},     // stable to an old entry
      {5, std::nullopt, Ents(5, {1}), 6, 1, 5, 1},     // beyond the entries
      {5, Snap(4, 1), Ents(5, {1}), 5, 1, 6, 0},       // with snapshot: first entry
      {5, Snap(4, 1), Ents(5, {1, 1}), 5, 1, 6, 1},    // with snapshot: first entry
      {6, Snap(5, 1), Ents(6, {2}), 6, 1, 6, 1},       // with snapshot: term mismatch
      {5, Snap(4, 1), Ents(5, {1}), 4, 1, 5, 1},       // the snapshot's index: ignored
      {5, Snap(4, 2), Ents(5, {2}), 4, 1, 5, 1},       // stable to an old entry
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    Unstable u = MakeUnstable(c.offset, c.snap, c.ents);
    u.StableTo(I(c.index), T(c.term));
    EXPECT_EQ(u.offset(), I(c.want_offset));
    EXPECT_EQ(u.entries().size(), c.want_len);
    // StableTo never touches the snapshot.
    EXPECT_EQ(u.snapshot().has_value(), c.snap.has_value());
  }
}

TEST(UnstableTest, StableSnapTo) {
  Unstable u = MakeUnstable(5, Snap(4, 1), Ents(5, {1}));
  u.StableSnapTo(I(3));  // another snapshot: ignored
  EXPECT_TRUE(u.snapshot().has_value());
  u.StableSnapTo(I(4));
  EXPECT_FALSE(u.snapshot().has_value());
  EXPECT_EQ(u.offset(), I(5));
  EXPECT_EQ(u.entries(), Ents(5, {1}));
  u.StableSnapTo(I(4));  // nothing left: a no-op
  EXPECT_FALSE(u.snapshot().has_value());
}

TEST(UnstableTest, TruncateAndAppend) {
  struct Case {
    const char* name;
    std::vector<Entry> ents;
    std::vector<Entry> append;
    uint64_t want_offset;
    std::vector<Entry> want;
  };
  const Case cases[] = {
      {"append to the end", Ents(5, {1}), Ents(6, {1, 1}), 5, Ents(5, {1, 1, 1})},
      {"replace all from offset", Ents(5, {1}), Ents(5, {2, 2}), 5, Ents(5, {2, 2})},
      {"replace all from before offset", Ents(5, {1}), Ents(4, {2, 2, 2}), 4, Ents(4, {2, 2, 2})},
      {"truncate then append", Ents(5, {1, 1, 1}), Ents(6, {2}), 5, Ents(5, {1, 2})},
      {"truncate the last then append", Ents(5, {1, 1, 1}), Ents(7, {2, 2}), 5,
       Ents(5, {1, 1, 2, 2})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Unstable u = MakeUnstable(5, std::nullopt, c.ents);
    u.TruncateAndAppend(c.append);
    EXPECT_EQ(u.offset(), I(c.want_offset));
    EXPECT_EQ(u.entries(), c.want);
  }
}

TEST(UnstableTest, AppendAfterStableToEverything) {
  Unstable u = MakeUnstable(5, std::nullopt, Ents(5, {1, 1}));
  u.StableTo(I(6), T(1));
  EXPECT_TRUE(u.entries().empty());
  u.TruncateAndAppend(Ents(7, {1}));
  EXPECT_EQ(u.offset(), I(7));
  EXPECT_EQ(u.MaybeLastIndex(), I(7));
}

TEST(UnstableTest, Slice) {
  Unstable u = MakeUnstable(5, std::nullopt, Ents(5, {1, 2, 3}));
  EXPECT_EQ(u.Slice(I(5), I(8)), Ents(5, {1, 2, 3}));
  EXPECT_EQ(u.Slice(I(6), I(7)), Ents(6, {2}));
  EXPECT_TRUE(u.Slice(I(8), I(8)).empty());
}

TEST(UnstableDeathTest, SliceOutOfBounds) {
  Unstable u = MakeUnstable(5, std::nullopt, Ents(5, {1, 2, 3}));
  EXPECT_DEATH((void)u.Slice(I(4), I(6)), "out of bounds");
  EXPECT_DEATH((void)u.Slice(I(6), I(9)), "out of bounds");
  EXPECT_DEATH((void)u.Slice(I(7), I(6)), "lo > hi");
}

TEST(UnstableDeathTest, TruncateAndAppendWithAGap) {
  Unstable u = MakeUnstable(5, std::nullopt, Ents(5, {1}));
  EXPECT_DEATH(u.TruncateAndAppend(Ents(7, {1})), "gap");
}

// ---------------------------------------------------------------------------------------------
// RaftLog

TEST(RaftLogTest, StartsAtTheStoragesCompactionPoint) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.ApplySnapshot(Snap(1000, 1000)).ok());
  ASSERT_TRUE(storage.Append(Ents(1001, {1000, 1001})).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  EXPECT_EQ(log.committed(), I(1000));
  EXPECT_EQ(log.applied(), I(1000));
  EXPECT_EQ(log.applying(), I(1000));
  EXPECT_EQ(log.unstable().offset(), I(1003));
  EXPECT_EQ(log.FirstIndex(), I(1001));
  EXPECT_EQ(log.LastIndex(), I(1002));
  EXPECT_EQ(log.LastTerm(), T(1001));
  EXPECT_EQ(TermOrZero(log, 1000), T(1000));
}

TEST(RaftLogTest, RestoredStorageWithOnlyASnapshot) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.ApplySnapshot(Snap(1000, 1000)).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  EXPECT_TRUE(log.AllEntries().empty());
  EXPECT_EQ(log.FirstIndex(), I(1001));
  EXPECT_EQ(log.committed(), I(1000));
  EXPECT_EQ(log.unstable().offset(), I(1001));
  EXPECT_EQ(TermOrZero(log, 1000), T(1000));
}

TEST(RaftLogTest, FindConflict) {
  struct Case {
    std::vector<Entry> ents;
    uint64_t want;
  };
  const Case cases[] = {
      // No conflict, empty ents.
      {{}, 0},
      // No conflict.
      {Ents(1, {1, 2, 3}), 0},
      {Ents(2, {2, 3}), 0},
      {Ents(3, {3}), 0},
      // No conflict, but new entries.
      {Ents(1, {1, 2, 3, 4, 4}), 4},
      {Ents(2, {2, 3, 4, 5}), 4},
      {Ents(3, {3, 4, 4}), 4},
      {Ents(4, {4, 4}), 4},
      // Conflicts with existing entries.
      {Ents(1, {4, 4}), 1},
      {Ents(2, {1, 4, 4}), 2},
      {Ents(3, {1, 2, 4, 4}), 3},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    MemoryStorage storage;
    RaftLog log(&storage, kNoLimit, Logger());
    log.Append(Ents(1, {1, 2, 3}));
    EXPECT_EQ(log.FindConflict(cases[i].ents), I(cases[i].want));
  }
}

TEST(RaftLogTest, FindConflictByTerm) {
  struct Case {
    std::vector<Entry> ents;  // ents[0] is the (index, term) of the storage's snapshot
    uint64_t index, term;
    uint64_t want;
  };
  const Case cases[] = {
      // The log starts at index 1.
      {Ents(0, {0, 2, 2, 5, 5, 5}), 100, 2, 100},  // beyond the log: unknown
      {Ents(0, {0, 2, 2, 5, 5, 5}), 5, 6, 5},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 5, 5, 5},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 5, 4, 2},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 5, 2, 2},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 5, 1, 0},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 1, 2, 1},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 1, 1, 0},
      {Ents(0, {0, 2, 2, 5, 5, 5}), 0, 0, 0},
      // A log with compacted entries.
      {Ents(10, {3, 3, 3, 4, 4, 4}), 30, 3, 30},  // beyond the log: unknown
      {Ents(10, {3, 3, 3, 4, 4, 4}), 14, 9, 14},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 14, 4, 14},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 14, 3, 12},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 14, 2, 9},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 11, 5, 11},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 10, 5, 10},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 10, 3, 10},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 10, 2, 9},
      {Ents(10, {3, 3, 3, 4, 4, 4}), 9, 2, 9},  // compacted: unknown
      {Ents(10, {3, 3, 3, 4, 4, 4}), 4, 2, 4},  // compacted: unknown
      {Ents(10, {3, 3, 3, 4, 4, 4}), 0, 0, 0},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    MemoryStorage storage;
    ASSERT_TRUE(storage.ApplySnapshot(Snap(c.ents[0].index.value(), c.ents[0].term.value())).ok());
    RaftLog log(&storage, kNoLimit, Logger());
    log.Append(std::vector<Entry>(c.ents.begin() + 1, c.ents.end()));
    const auto [index, term] = log.FindConflictByTerm(I(c.index), T(c.term));
    EXPECT_EQ(index, I(c.want));
    EXPECT_EQ(term, TermOrZero(log, c.want));
  }
}

TEST(RaftLogTest, IsUpToDate) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {1, 2, 3}));
  const uint64_t last = log.LastIndex().value();
  // A greater term wins whatever the index.
  EXPECT_TRUE(log.IsUpToDate(I(last - 1), T(4)));
  EXPECT_TRUE(log.IsUpToDate(I(last), T(4)));
  EXPECT_TRUE(log.IsUpToDate(I(last + 1), T(4)));
  // A smaller term loses whatever the index.
  EXPECT_FALSE(log.IsUpToDate(I(last - 1), T(2)));
  EXPECT_FALSE(log.IsUpToDate(I(last), T(2)));
  EXPECT_FALSE(log.IsUpToDate(I(last + 1), T(2)));
  // Equal terms: an equal or longer log wins.
  EXPECT_FALSE(log.IsUpToDate(I(last - 1), T(3)));
  EXPECT_TRUE(log.IsUpToDate(I(last), T(3)));
  EXPECT_TRUE(log.IsUpToDate(I(last + 1), T(3)));
}

TEST(RaftLogTest, Append) {
  struct Case {
    const char* name;
    std::vector<Entry> ents;
    uint64_t want_last;
    std::vector<Entry> want;
    uint64_t want_unstable_offset;
  };
  const Case cases[] = {
      {"nothing", {}, 2, Ents(1, {1, 2}), 3},
      {"after the last", Ents(3, {2}), 3, Ents(1, {1, 2, 2}), 3},
      {"conflict at 1", Ents(1, {2}), 1, Ents(1, {2}), 1},
      {"conflict at 2", Ents(2, {3, 3}), 3, Ents(1, {1, 3, 3}), 2},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MemoryStorage storage;
    ASSERT_TRUE(storage.Append(Ents(1, {1, 2})).ok());
    RaftLog log(&storage, kNoLimit, Logger());
    EXPECT_EQ(log.Append(c.ents), I(c.want_last));
    Result<std::vector<Entry>> got = log.EntriesFrom(I(1), kNoLimit);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got.value(), c.want);
    EXPECT_EQ(log.unstable().offset(), I(c.want_unstable_offset));
  }
}

TEST(RaftLogTest, MaybeAppend) {
  const uint64_t last_index = 3, last_term = 3, commit = 1;
  struct Case {
    uint64_t index, log_term, committed;
    std::vector<Entry> ents;
    std::optional<uint64_t> want_last;
    uint64_t want_commit;
  };
  const Case cases[] = {
      // No match: the term differs.
      {last_index, last_term - 1, last_index, Ents(last_index + 1, {4}), std::nullopt, commit},
      // No match: the index is beyond the log.
      {last_index + 1, last_term, last_index, Ents(last_index + 2, {4}), std::nullopt, commit},
      // Match with the last entry.
      {last_index, last_term, last_index, {}, last_index, last_index},
      // Commit no higher than the last new entry.
      {last_index, last_term, last_index + 1, {}, last_index, last_index},
      // Commit up to the commit in the message.
      {last_index, last_term, last_index - 1, {}, last_index, last_index - 1},
      // Commit never decreases.
      {last_index, last_term, 0, {}, last_index, commit},
      {0, 0, last_index, {}, 0, commit},
      {last_index, last_term, last_index, Ents(last_index + 1, {4}), last_index + 1, last_index},
      {last_index, last_term, last_index + 1, Ents(last_index + 1, {4}), last_index + 1,
       last_index + 1},
      {last_index, last_term, last_index + 2, Ents(last_index + 1, {4}), last_index + 1,
       last_index + 1},
      {last_index, last_term, last_index + 2, Ents(last_index + 1, {4, 4}), last_index + 2,
       last_index + 2},
      // Match with an entry in the middle.
      {last_index - 1, last_term - 1, last_index, Ents(last_index, {4}), last_index, last_index},
      {last_index - 2, last_term - 2, last_index, Ents(last_index - 1, {4}), last_index - 1,
       last_index - 1},
      {last_index - 2, last_term - 2, last_index, Ents(last_index - 1, {4, 4}), last_index,
       last_index},
      // Entries already present (a retransmission): nothing changes but the commit.
      {0, 0, 2, Ents(1, {1, 2}), 2, 2},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    MemoryStorage storage;
    RaftLog log(&storage, kNoLimit, Logger());
    log.Append(Ents(1, {1, 2, 3}));
    log.CommitTo(I(commit));

    const std::optional<LogIndex> got =
        log.MaybeAppend(I(c.index), T(c.log_term), I(c.committed), c.ents);
    if (c.want_last.has_value()) {
      ASSERT_TRUE(got.has_value());
      EXPECT_EQ(*got, I(*c.want_last));
    } else {
      EXPECT_FALSE(got.has_value());
    }
    EXPECT_EQ(log.committed(), I(c.want_commit));
    if (got.has_value() && !c.ents.empty()) {
      const LogIndex first = I(c.ents.front().index.value());
      Result<std::vector<Entry>> tail = log.Slice(first, first + c.ents.size(), kNoLimit);
      ASSERT_TRUE(tail.ok());
      EXPECT_EQ(tail.value(), c.ents);
    }
  }
}

TEST(RaftLogTest, MaybeAppendKeepsMatchingSuffixAfterPartialOverlap) {
  // A retransmission that overlaps the log and then extends it: only the new tail is
  // appended, and entries after the overlap that matched stay (no needless truncation).
  MemoryStorage storage;
  ASSERT_TRUE(storage.Append(Ents(1, {1, 1, 1})).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  EXPECT_EQ(log.MaybeAppend(I(1), T(1), I(0), Ents(2, {1, 1, 2, 2})), I(5));
  // Entries 2 and 3 matched: unstable starts at the first new entry.
  EXPECT_EQ(log.unstable().offset(), I(4));
  EXPECT_EQ(log.unstable().entries(), Ents(4, {2, 2}));
  EXPECT_EQ(log.AllEntries(), Ents(1, {1, 1, 1, 2, 2}));
}

TEST(RaftLogDeathTest, MaybeAppendConflictWithCommittedEntry) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {1, 2, 3}));
  log.CommitTo(I(1));
  // Entry 1 (committed) would be replaced by one of term 4.
  EXPECT_DEATH((void)log.MaybeAppend(I(0), T(0), I(3), Ents(1, {4})),
               "conflict with a committed entry");
}

TEST(RaftLogDeathTest, AppendBelowCommitted) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {1, 2, 3}));
  log.CommitTo(I(2));
  EXPECT_DEATH(log.Append(Ents(2, {4})), "overwrite committed entries");
}

TEST(RaftLogTest, CompactionSideEffects) {
  // 750 entries in stable storage and 250 unstable; term == index.
  const uint64_t last_index = 1000, unstable_index = 750;
  MemoryStorage storage;
  ASSERT_TRUE(storage.Append(Range(1, unstable_index + 1)).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Range(unstable_index + 1, last_index + 1));

  ASSERT_TRUE(log.MaybeCommit(log.LastIndex(), log.LastTerm()));
  log.AppliedTo(log.committed());

  const uint64_t offset = 500;
  ASSERT_TRUE(storage.Compact(I(offset)).ok());
  EXPECT_EQ(log.LastIndex(), I(last_index));
  for (uint64_t j = offset; j <= last_index; ++j) {
    EXPECT_EQ(TermOrZero(log, j), T(j));
    EXPECT_TRUE(log.MatchTerm(I(j), T(j)));
  }
  EXPECT_EQ(log.TermAt(I(offset - 1)).status().code(), Code::kCompacted);

  const std::vector<Entry>& unstable = log.unstable().entries();
  ASSERT_EQ(unstable.size(), 250u);
  EXPECT_EQ(unstable.front().index, I(751));

  const LogIndex prev = log.LastIndex();
  log.Append({E(prev.value() + 1, prev.value() + 1)});
  EXPECT_EQ(log.LastIndex(), prev + 1);
  Result<std::vector<Entry>> ents = log.EntriesFrom(log.LastIndex(), kNoLimit);
  ASSERT_TRUE(ents.ok());
  EXPECT_EQ(ents->size(), 1u);
}

// The setup of etcd's TestHasNextCommittedEnts: storage snapshot at (3, 1) and entry 4
// stable; entries 5 and 6 unstable; committed = 5.
struct ApplySetup {
  MemoryStorage storage;
  std::optional<RaftLog> log;

  explicit ApplySetup(uint64_t max_applying_bytes = kNoLimit) {
    EXPECT_TRUE(storage.ApplySnapshot(Snap(3, 1)).ok());
    EXPECT_TRUE(storage.Append(Ents(4, {1})).ok());
    log.emplace(&storage, max_applying_bytes, Logger());
    log->Append(Ents(4, {1, 1, 1}));
    log->StableTo(I(4), T(1));
    EXPECT_TRUE(log->MaybeCommit(I(5), T(1)));
  }
};

TEST(RaftLogTest, HasAndNextCommittedEntries) {
  struct Case {
    uint64_t applied, applying;
    bool snap;
    std::vector<Entry> want;
  };
  const Case cases[] = {
      {3, 3, false, Ents(4, {1, 1})},
      {3, 4, false, Ents(5, {1})},
      {3, 5, false, {}},
      {4, 4, false, Ents(5, {1})},
      {4, 5, false, {}},
      {5, 5, false, {}},
      // A pending snapshot is applied before any entry.
      {3, 3, true, {}},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    ApplySetup s;
    RaftLog& log = *s.log;
    log.AppliedTo(I(c.applied));
    log.AcceptApplying(I(c.applying));
    if (c.snap) log.Restore(Snap(7, 1));
    EXPECT_EQ(log.HasNextCommittedEntries(), !c.want.empty());
    EXPECT_EQ(log.NextCommittedEntries(), c.want);
  }
}

TEST(RaftLogTest, NextCommittedEntriesHonoursMaxApplyingBytes) {
  struct Case {
    uint64_t max_bytes;
    std::vector<Entry> want;
  };
  const Case cases[] = {
      {0, Ents(4, {1})},  // at least one entry, whatever the limit
      {kEntryBytes - 1, Ents(4, {1})},
      {kEntryBytes, Ents(4, {1})},
      {2 * kEntryBytes - 1, Ents(4, {1})},
      // Entry 4 comes from storage and entry 5 from the unstable tail.
      {2 * kEntryBytes, Ents(4, {1, 1})},
      {kNoLimit, Ents(4, {1, 1})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.max_bytes);
    ApplySetup s(c.max_bytes);
    EXPECT_EQ(s.log->NextCommittedEntries(), c.want);
  }
}

TEST(RaftLogTest, ApplyingAdvancesInBatches) {
  ApplySetup s(kEntryBytes);
  RaftLog& log = *s.log;
  std::vector<Entry> batch = log.NextCommittedEntries();
  ASSERT_EQ(batch, Ents(4, {1}));
  log.AcceptApplying(batch.back().index);
  EXPECT_EQ(log.applying(), I(4));
  EXPECT_EQ(log.applied(), I(3));
  batch = log.NextCommittedEntries();
  ASSERT_EQ(batch, Ents(5, {1}));
  log.AcceptApplying(batch.back().index);
  EXPECT_FALSE(log.HasNextCommittedEntries());
  log.AppliedTo(I(5));
  EXPECT_EQ(log.applied(), I(5));
  EXPECT_EQ(log.applying(), I(5));
}

TEST(RaftLogTest, AppliedToRaisesApplying) {
  ApplySetup s;
  RaftLog& log = *s.log;
  log.AcceptApplying(I(4));
  log.AppliedTo(I(5));
  EXPECT_EQ(log.applied(), I(5));
  EXPECT_EQ(log.applying(), I(5));
  // Applying ahead of applied stays.
  ApplySetup t;
  t.log->AcceptApplying(I(5));
  t.log->AppliedTo(I(4));
  EXPECT_EQ(t.log->applied(), I(4));
  EXPECT_EQ(t.log->applying(), I(5));
}

TEST(RaftLogDeathTest, AppliedToOutOfRange) {
  ApplySetup s;
  EXPECT_DEATH(s.log->AppliedTo(I(6)), "applied index out of range");  // beyond committed
  s.log->AppliedTo(I(5));
  EXPECT_DEATH(s.log->AppliedTo(I(4)), "applied index out of range");  // backwards
}

TEST(RaftLogDeathTest, AcceptApplyingOutOfRange) {
  ApplySetup s;
  EXPECT_DEATH(s.log->AcceptApplying(I(6)), "applying index out of range");
  s.log->AcceptApplying(I(5));
  EXPECT_DEATH(s.log->AcceptApplying(I(4)), "applying index out of range");
}

TEST(RaftLogTest, StableTo) {
  struct Case {
    uint64_t index, term, want_offset;
  };
  const Case cases[] = {
      {1, 1, 2},
      {2, 2, 3},
      {2, 1, 1},  // bad term
      {3, 1, 1},  // bad index
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.index << "/" << c.term);
    MemoryStorage storage;
    RaftLog log(&storage, kNoLimit, Logger());
    log.Append(Ents(1, {1, 2}));
    log.StableTo(I(c.index), T(c.term));
    EXPECT_EQ(log.unstable().offset(), I(c.want_offset));
  }
}

TEST(RaftLogTest, StableToWithSnapshot) {
  const uint64_t si = 5, st = 2;
  struct Case {
    uint64_t index, term;
    bool with_entry;  // whether entry (si+1, st) was appended
    uint64_t want_offset;
  };
  const Case cases[] = {
      {si + 1, st, false, si + 1},     {si, st, false, si + 1},     {si - 1, st, false, si + 1},
      {si + 1, st + 1, false, si + 1}, {si, st + 1, false, si + 1}, {si - 1, st + 1, false, si + 1},
      {si + 1, st, true, si + 2},      {si, st, true, si + 1},      {si - 1, st, true, si + 1},
      {si + 1, st + 1, true, si + 1},  {si, st + 1, true, si + 1},  {si - 1, st + 1, true, si + 1},
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    MemoryStorage storage;
    ASSERT_TRUE(storage.ApplySnapshot(Snap(si, st)).ok());
    RaftLog log(&storage, kNoLimit, Logger());
    if (c.with_entry) log.Append(Ents(si + 1, {st}));
    log.StableTo(I(c.index), T(c.term));
    EXPECT_EQ(log.unstable().offset(), I(c.want_offset));
  }
}

TEST(RaftLogTest, CommitTo) {
  struct Case {
    uint64_t to, want;
  };
  for (const Case& c : {Case{3, 3}, Case{1, 2} /* never decreases */, Case{2, 2}}) {
    SCOPED_TRACE(c.to);
    MemoryStorage storage;
    RaftLog log(&storage, kNoLimit, Logger());
    log.Append(Ents(1, {1, 2, 3}));
    log.CommitTo(I(2));
    log.CommitTo(I(c.to));
    EXPECT_EQ(log.committed(), I(c.want));
  }
}

TEST(RaftLogDeathTest, CommitToBeyondLastIndex) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {1, 2, 3}));
  EXPECT_DEATH(log.CommitTo(I(4)), "commit beyond the last index");
}

TEST(RaftLogTest, MaybeCommit) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {1, 2, 2}));
  // Only an entry of the given term is committed by counting (Raft §5.4.2).
  EXPECT_FALSE(log.MaybeCommit(I(2), T(1)));
  EXPECT_EQ(log.committed(), I(0));
  // Term 0 never commits, even where the term is unknown (0).
  EXPECT_FALSE(log.MaybeCommit(I(4), T(0)));
  EXPECT_FALSE(log.MaybeCommit(I(4), T(2)));  // beyond the log
  EXPECT_TRUE(log.MaybeCommit(I(2), T(2)));
  EXPECT_EQ(log.committed(), I(2));
  EXPECT_FALSE(log.MaybeCommit(I(2), T(2)));  // no movement
  EXPECT_FALSE(log.MaybeCommit(I(1), T(1)));  // never backwards
  EXPECT_TRUE(log.MaybeCommit(I(3), T(2)));
  EXPECT_EQ(log.committed(), I(3));
}

TEST(RaftLogTest, Compaction) {
  struct Case {
    std::vector<uint64_t> compact;
    std::vector<Code> want_code;
    std::vector<size_t> want_left;
  };
  const Case cases[] = {
      {{300, 500, 800, 900}, {Code::kOk, Code::kOk, Code::kOk, Code::kOk}, {700, 500, 200, 100}},
      // Below the last compaction.
      {{300, 299}, {Code::kOk, Code::kCompacted}, {700, 700}},
  };
  for (const Case& c : cases) {
    MemoryStorage storage;
    ASSERT_TRUE(storage.Append(Range(1, 1001)).ok());
    RaftLog log(&storage, kNoLimit, Logger());
    ASSERT_TRUE(log.MaybeCommit(I(1000), T(1000)));
    log.AppliedTo(log.committed());
    for (size_t j = 0; j < c.compact.size(); ++j) {
      SCOPED_TRACE(c.compact[j]);
      EXPECT_EQ(storage.Compact(I(c.compact[j])).code(), c.want_code[j]);
      EXPECT_EQ(log.AllEntries().size(), c.want_left[j]);
    }
  }
}

TEST(RaftLogDeathTest, CompactionBeyondLastIndex) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.Append(Range(1, 1001)).ok());
  EXPECT_DEATH((void)storage.Compact(I(1001)), "Compact beyond the last index");
}

// A log with a snapshot at 100, entries 101..149 in storage and 150..199 unstable, each entry
// of term == index and kEntryBytes of payload (etcd's TestSlice layout).
struct SliceSetup {
  static constexpr uint64_t kOffset = 100, kNum = 100, kLast = kOffset + kNum,
                            kHalf = kOffset + kNum / 2;
  MemoryStorage storage;
  std::optional<RaftLog> log;

  SliceSetup() {
    EXPECT_TRUE(storage.ApplySnapshot(Snap(kOffset, 0)).ok());
    EXPECT_TRUE(storage.Append(Range(kOffset + 1, kHalf)).ok());
    log.emplace(&storage, kNoLimit, Logger());
    log->Append(Range(kHalf, kLast));
  }
};

TEST(RaftLogTest, Slice) {
  constexpr uint64_t kOffset = SliceSetup::kOffset, kLast = SliceSetup::kLast,
                     kHalf = SliceSetup::kHalf;
  const uint64_t s = kEntryBytes;
  SliceSetup setup;
  const RaftLog& log = *setup.log;
  ASSERT_EQ(log.unstable().offset(), I(kHalf));

  struct Case {
    uint64_t lo, hi, max_bytes;
    std::vector<Entry> want;
  };
  const Case cases[] = {
      // No limit.
      {kOffset + 1, kOffset + 1, kNoLimit, {}},
      {kOffset + 1, kHalf - 1, kNoLimit, Range(kOffset + 1, kHalf - 1)},
      {kOffset + 1, kHalf, kNoLimit, Range(kOffset + 1, kHalf)},
      {kOffset + 1, kHalf + 1, kNoLimit, Range(kOffset + 1, kHalf + 1)},
      {kOffset + 1, kLast, kNoLimit, Range(kOffset + 1, kLast)},
      {kHalf - 1, kHalf, kNoLimit, Range(kHalf - 1, kHalf)},
      {kHalf - 1, kHalf + 1, kNoLimit, Range(kHalf - 1, kHalf + 1)},
      {kHalf - 1, kLast, kNoLimit, Range(kHalf - 1, kLast)},
      {kHalf, kHalf + 1, kNoLimit, Range(kHalf, kHalf + 1)},
      {kHalf, kLast, kNoLimit, Range(kHalf, kLast)},
      {kLast - 1, kLast, kNoLimit, Range(kLast - 1, kLast)},
      // At least one entry is always returned.
      {kOffset + 1, kLast, 0, Range(kOffset + 1, kOffset + 2)},
      {kHalf - 1, kHalf + 1, 0, Range(kHalf - 1, kHalf)},
      {kHalf, kLast, 0, Range(kHalf, kHalf + 1)},
      {kHalf + 1, kLast, 0, Range(kHalf + 1, kHalf + 2)},
      // Low limit.
      {kOffset + 1, kLast, s - 1, Range(kOffset + 1, kOffset + 2)},
      {kHalf - 1, kHalf + 1, s - 1, Range(kHalf - 1, kHalf)},
      {kHalf, kLast, s - 1, Range(kHalf, kHalf + 1)},
      // Just enough for one.
      {kOffset + 1, kLast, s, Range(kOffset + 1, kOffset + 2)},
      {kHalf - 1, kHalf + 1, s, Range(kHalf - 1, kHalf)},
      {kHalf, kLast, s, Range(kHalf, kHalf + 1)},
      // Not enough for two.
      {kOffset + 1, kLast, s + 1, Range(kOffset + 1, kOffset + 2)},
      {kHalf - 1, kHalf + 1, s + 1, Range(kHalf - 1, kHalf)},
      {kHalf, kLast, s + 1, Range(kHalf, kHalf + 1)},
      // Enough for two: across the storage / unstable boundary too.
      {kOffset + 1, kLast, 2 * s, Range(kOffset + 1, kOffset + 3)},
      {kHalf - 2, kHalf + 1, 2 * s, Range(kHalf - 2, kHalf)},
      {kHalf - 1, kHalf + 1, 2 * s, Range(kHalf - 1, kHalf + 1)},
      {kHalf, kLast, 2 * s, Range(kHalf, kHalf + 2)},
      // Not enough for three.
      {kHalf - 2, kHalf + 1, 3 * s - 1, Range(kHalf - 2, kHalf)},
      // Enough for three.
      {kHalf - 1, kHalf + 2, 3 * s, Range(kHalf - 1, kHalf + 2)},
      {kHalf - 2, kHalf + 2, 3 * s, Range(kHalf - 2, kHalf + 1)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "lo=" << c.lo << " hi=" << c.hi << " max=" << c.max_bytes);
    Result<std::vector<Entry>> got = log.Slice(I(c.lo), I(c.hi), c.max_bytes);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got.value(), c.want);
  }
  // Below the first index: compacted.
  EXPECT_EQ(log.Slice(I(kOffset - 1), I(kOffset + 1), kNoLimit).status().code(), Code::kCompacted);
  EXPECT_EQ(log.Slice(I(kOffset), I(kOffset + 1), kNoLimit).status().code(), Code::kCompacted);
}

TEST(RaftLogDeathTest, SliceOutOfBounds) {
  SliceSetup setup;
  const RaftLog& log = *setup.log;
  const uint64_t last = SliceSetup::kLast, half = SliceSetup::kHalf;
  EXPECT_DEATH((void)log.Slice(I(half), I(half - 1), kNoLimit), "lo > hi");
  EXPECT_DEATH((void)log.Slice(I(last), I(last + 1), kNoLimit), "beyond the last index");
  EXPECT_DEATH((void)log.Slice(I(last + 1), I(last + 1), kNoLimit), "beyond the last index");
}

TEST(RaftLogTest, SliceEmptyRangesAtTheEdges) {
  SliceSetup setup;
  const RaftLog& log = *setup.log;
  for (uint64_t i : {SliceSetup::kOffset + 1, SliceSetup::kHalf, SliceSetup::kLast}) {
    SCOPED_TRACE(i);
    Result<std::vector<Entry>> got = log.Slice(I(i), I(i), kNoLimit);
    ASSERT_TRUE(got.ok());
    EXPECT_TRUE(got->empty());
  }
  Result<std::vector<Entry>> beyond = log.EntriesFrom(I(SliceSetup::kLast + 5), kNoLimit);
  ASSERT_TRUE(beyond.ok());
  EXPECT_TRUE(beyond->empty());
}

TEST(RaftLogTest, UnstableTailOverlappingStorageHidesTheStaleStorageEntries) {
  // A new leader truncated entries 4-5 that storage still holds: until the application
  // persists the new ones, reads must see the unstable version.
  MemoryStorage storage;
  ASSERT_TRUE(storage.Append(Ents(1, {1, 1, 1, 1, 1})).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  EXPECT_EQ(log.MaybeAppend(I(3), T(1), I(0), Ents(4, {2, 2})), I(5));
  EXPECT_EQ(log.unstable().offset(), I(4));
  EXPECT_EQ(log.LastIndex(), I(5));
  EXPECT_EQ(TermOrZero(log, 3), T(1));
  EXPECT_EQ(TermOrZero(log, 4), T(2));
  EXPECT_EQ(log.AllEntries(), Ents(1, {1, 1, 1, 2, 2}));
  Result<std::vector<Entry>> two = log.Slice(I(3), I(6), 2 * kEntryBytes);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two.value(), Ents(3, {1, 2}));
  // A shorter replacement: the log ends where the new entries end.
  log.Append(Ents(3, {3}));
  EXPECT_EQ(log.LastIndex(), I(3));
  EXPECT_EQ(log.LastTerm(), T(3));
  EXPECT_EQ(log.TermAt(I(4)).status().code(), Code::kUnavailableEntries);
}

TEST(RaftLogTest, TermAt) {
  const uint64_t offset = 100, num = 100;
  MemoryStorage storage;
  ASSERT_TRUE(storage.ApplySnapshot(Snap(offset, 1)).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  std::vector<Entry> ents;
  for (uint64_t i = 1; i < num; ++i) ents.push_back(E(offset + i, i));
  log.Append(ents);

  EXPECT_EQ(log.TermAt(I(offset - 1)).status().code(), Code::kCompacted);
  EXPECT_EQ(TermOrZero(log, offset), T(1));  // the snapshot's last entry
  EXPECT_EQ(TermOrZero(log, offset + num / 2), T(num / 2));
  EXPECT_EQ(TermOrZero(log, offset + num - 1), T(num - 1));
  EXPECT_EQ(log.TermAt(I(offset + num)).status().code(), Code::kUnavailableEntries);
  EXPECT_EQ(TermOrZero(log, offset + num), T(0));
}

TEST(RaftLogTest, TermAtWithUnstableSnapshot) {
  const uint64_t storage_snap = 100, unstable_snap = storage_snap + 5;
  MemoryStorage storage;
  ASSERT_TRUE(storage.ApplySnapshot(Snap(storage_snap, 1)).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  log.Restore(Snap(unstable_snap, 1));

  // Neither storage's entries nor the gap up to the unstable snapshot are readable.
  EXPECT_EQ(log.TermAt(I(storage_snap)).status().code(), Code::kCompacted);
  EXPECT_EQ(log.TermAt(I(storage_snap + 1)).status().code(), Code::kCompacted);
  EXPECT_EQ(log.TermAt(I(unstable_snap - 1)).status().code(), Code::kCompacted);
  EXPECT_EQ(TermOrZero(log, unstable_snap), T(1));
  EXPECT_EQ(log.TermAt(I(unstable_snap + 1)).status().code(), Code::kUnavailableEntries);
}

TEST(RaftLogTest, Restore) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.Append(Ents(1, {1, 1, 1})).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  log.CommitTo(I(2));
  log.AppliedTo(I(1));
  log.Append(Ents(4, {1}));

  Snapshot snap = Snap(10, 3);
  snap.data = "image";
  log.Restore(snap);
  EXPECT_EQ(log.committed(), I(10));
  // The application reports the snapshot applied later, through AppliedTo.
  EXPECT_EQ(log.applied(), I(1));
  EXPECT_EQ(log.FirstIndex(), I(11));
  EXPECT_EQ(log.LastIndex(), I(10));
  EXPECT_EQ(log.LastTerm(), T(3));
  EXPECT_EQ(log.unstable().offset(), I(11));
  EXPECT_TRUE(log.unstable().entries().empty());
  EXPECT_TRUE(log.HasPendingSnapshot());
  EXPECT_FALSE(log.HasNextCommittedEntries());
  EXPECT_TRUE(log.NextCommittedEntries().empty());
  Result<Snapshot> got = log.GetSnapshot();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value(), snap);
  EXPECT_TRUE(log.AllEntries().empty());

  // The application persists and applies it.
  ASSERT_TRUE(storage.ApplySnapshot(snap).ok());
  log.StableSnapTo(I(10));
  log.AppliedTo(I(10));
  EXPECT_FALSE(log.HasPendingSnapshot());
  EXPECT_EQ(log.applied(), I(10));
  EXPECT_EQ(log.applying(), I(10));
  EXPECT_EQ(log.FirstIndex(), I(11));
  EXPECT_EQ(log.LastIndex(), I(10));
  EXPECT_FALSE(log.HasNextCommittedEntries());

  // The log continues after the snapshot.
  EXPECT_EQ(log.MaybeAppend(I(10), T(3), I(11), Ents(11, {3})), I(11));
  EXPECT_EQ(log.committed(), I(11));
  EXPECT_EQ(log.NextCommittedEntries(), Ents(11, {3}));
}

TEST(RaftLogTest, GetSnapshotFallsBackToStorage) {
  MemoryStorage storage;
  Snapshot snap = Snap(5, 2);
  snap.data = "stored";
  ASSERT_TRUE(storage.ApplySnapshot(snap).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  EXPECT_FALSE(log.HasPendingSnapshot());
  Result<Snapshot> got = log.GetSnapshot();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value(), snap);
}

TEST(RaftLogDeathTest, RestoreBehindCommit) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {1, 1, 1}));
  log.CommitTo(I(3));
  EXPECT_DEATH(log.Restore(Snap(2, 1)), "restore would move commit back");
}

TEST(RaftLogTest, ToString) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.Append(Ents(1, {1, 1, 1, 1, 1})).ok());
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(6, {1, 1}));
  log.CommitTo(I(5));
  log.AppliedTo(I(3));
  log.AcceptApplying(I(4));
  EXPECT_EQ(log.ToString(),
            "committed=5 applied=3 applying=4 unstable.offset=6 len(unstable.entries)=2");
}

TEST(RaftLogTest, ZeroTermOnError) {
  MemoryStorage storage;
  RaftLog log(&storage, kNoLimit, Logger());
  log.Append(Ents(1, {7}));
  EXPECT_EQ(log.ZeroTermOnError(log.TermAt(I(1))), T(7));
  EXPECT_EQ(log.ZeroTermOnError(log.TermAt(I(2))), T(0));
  EXPECT_FALSE(log.MatchTerm(I(2), T(0)));  // an unknown term never matches, even 0
  EXPECT_TRUE(log.MatchTerm(I(0), T(0)));   // the dummy entry is known
}

}  // namespace
}  // namespace synod::raft
