// Unstable::TruncateAndAppend takes its entries by value and, when nothing unstable is kept,
// either adopts the caller's vector or moves the entries into its own retained buffer. Each
// path must leave the same log: these tests walk through all of them and check the content.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "raft/raft_log.h"

namespace synod::raft {
namespace {

// Entries at first, first+1, ... with the given terms; data names index and term.
std::vector<Entry> Ents(uint64_t first, std::initializer_list<uint64_t> terms) {
  std::vector<Entry> out;
  for (uint64_t term : terms) {
    Entry e;
    e.index = LogIndex(first + out.size());
    e.term = Term(term);
    e.data = std::to_string(e.index.value()) + "@" + std::to_string(term);
    out.push_back(std::move(e));
  }
  return out;
}

TEST(UnstableAppendTest, EveryPathKeepsTheSameContent) {
  Unstable u{LogIndex(5)};
  u.TruncateAndAppend(Ents(5, {1, 1, 1}));  // empty: adopts the vector
  EXPECT_EQ(u.entries(), Ents(5, {1, 1, 1}));

  u.StableTo(LogIndex(7), Term(1));  // emptied, capacity 3 retained
  ASSERT_TRUE(u.entries().empty());
  EXPECT_EQ(u.offset(), LogIndex(8));
  u.TruncateAndAppend(Ents(8, {1}));  // smaller vector: moved into the retained buffer
  EXPECT_EQ(u.entries(), Ents(8, {1}));
  EXPECT_EQ(u.offset(), LogIndex(8));

  u.TruncateAndAppend(Ents(9, {1, 1}));  // directly after: appended
  EXPECT_EQ(u.entries(), Ents(8, {1, 1, 1}));

  u.TruncateAndAppend(Ents(9, {2}));  // conflict inside: keeps 8, replaces the rest
  EXPECT_EQ(u.entries(), Ents(8, {1, 2}));

  u.TruncateAndAppend(Ents(6, {3, 3, 3, 3, 3}));  // before everything unstable: replaces all
  EXPECT_EQ(u.offset(), LogIndex(6));
  EXPECT_EQ(u.entries(), Ents(6, {3, 3, 3, 3, 3}));
}

TEST(UnstableAppendTest, MovedInEntriesAreNotShared) {
  // What the caller keeps after handing over a copy is unaffected by later truncations.
  Unstable u{LogIndex(1)};
  const std::vector<Entry> mine = Ents(1, {1, 1});
  u.TruncateAndAppend(mine);
  u.TruncateAndAppend(Ents(2, {2}));
  EXPECT_EQ(mine, Ents(1, {1, 1}));
  EXPECT_EQ(u.entries(), Ents(1, {1, 2}));
}

}  // namespace
}  // namespace synod::raft
