#include "raft/inflights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <utility>

namespace synod::raft {
namespace {

LogIndex I(uint64_t i) { return LogIndex(i); }

TEST(InflightsTest, StartsEmpty) {
  Inflights in(4, 0);
  EXPECT_EQ(in.Count(), 0u);
  EXPECT_EQ(in.Bytes(), 0u);
  EXPECT_FALSE(in.Full());
  EXPECT_EQ(in.size_max(), 4u);
  EXPECT_EQ(in.bytes_max(), 0u);
}

TEST(InflightsTest, FullAtSizeMax) {
  Inflights in(3, 0);
  in.Add(I(1), 10);
  in.Add(I(2), 10);
  EXPECT_FALSE(in.Full());
  in.Add(I(5), 10);
  EXPECT_TRUE(in.Full());
  EXPECT_EQ(in.Count(), 3u);
  EXPECT_EQ(in.Bytes(), 30u);
}

TEST(InflightsTest, FreeLEFreesAPrefix) {
  Inflights in(10, 0);
  for (uint64_t i = 1; i <= 5; ++i) in.Add(I(i * 10), i);
  in.FreeLE(I(25));  // frees 10 and 20
  EXPECT_EQ(in.Count(), 3u);
  EXPECT_EQ(in.Bytes(), 3u + 4u + 5u);
  in.FreeLE(I(30));
  EXPECT_EQ(in.Count(), 2u);
  EXPECT_EQ(in.Bytes(), 9u);
}

TEST(InflightsTest, FreeLEBelowTheFirstIsANoOp) {
  Inflights in(10, 0);
  in.Add(I(10), 1);
  in.Add(I(20), 1);
  in.FreeLE(I(9));
  EXPECT_EQ(in.Count(), 2u);
  EXPECT_EQ(in.Bytes(), 2u);
  Inflights empty(10, 0);
  empty.FreeLE(I(100));
  EXPECT_EQ(empty.Count(), 0u);
}

TEST(InflightsTest, FreeLEPastTheLastFreesAll) {
  Inflights in(4, 0);
  for (uint64_t i = 1; i <= 4; ++i) in.Add(I(i), 1);
  ASSERT_TRUE(in.Full());
  in.FreeLE(I(1000));
  EXPECT_EQ(in.Count(), 0u);
  EXPECT_EQ(in.Bytes(), 0u);
  EXPECT_FALSE(in.Full());
  // Usable again, with indexes that need only exceed what is still recorded.
  in.Add(I(2000), 1);
  EXPECT_EQ(in.Count(), 1u);
}

TEST(InflightsTest, WrapsAroundTheRing) {
  Inflights in(4, 0);
  for (uint64_t i = 1; i <= 4; ++i) in.Add(I(i), i);
  in.FreeLE(I(2));  // records 3, 4 remain at the back of the ring
  in.Add(I(5), 5);  // these two wrap to the front
  in.Add(I(6), 6);
  EXPECT_TRUE(in.Full());
  EXPECT_EQ(in.Bytes(), 3u + 4u + 5u + 6u);
  in.FreeLE(I(5));  // frees across the wrap point
  EXPECT_EQ(in.Count(), 1u);
  EXPECT_EQ(in.Bytes(), 6u);
  in.FreeLE(I(6));
  EXPECT_EQ(in.Count(), 0u);
  EXPECT_EQ(in.Bytes(), 0u);
}

TEST(InflightsTest, GrowsWhileWrapped) {
  // Free from the front before the buffer reached size_max, so that growing must move
  // records that sit out of order in the ring.
  Inflights in(8, 0);
  in.Add(I(1), 1);
  in.Add(I(2), 2);  // buffer of 2, full
  in.FreeLE(I(1));  // start moves to slot 1
  in.Add(I(3), 3);  // wraps to slot 0
  in.Add(I(4), 4);  // grows: the records must keep their order
  in.Add(I(5), 5);
  EXPECT_EQ(in.Count(), 4u);
  in.FreeLE(I(3));
  EXPECT_EQ(in.Count(), 2u);
  EXPECT_EQ(in.Bytes(), 9u);
  in.FreeLE(I(4));
  EXPECT_EQ(in.Count(), 1u);
  EXPECT_EQ(in.Bytes(), 5u);
}

TEST(InflightsTest, ByteLimit) {
  Inflights in(10, 100);
  in.Add(I(1), 60);
  EXPECT_FALSE(in.Full());
  in.Add(I(2), 40);  // exactly at the limit: full
  EXPECT_TRUE(in.Full());
  in.FreeLE(I(1));
  EXPECT_FALSE(in.Full());
  EXPECT_EQ(in.Bytes(), 40u);
  // One message may overshoot the limit; then the window is full until acked.
  in.Add(I(3), 500);
  EXPECT_TRUE(in.Full());
  EXPECT_EQ(in.Bytes(), 540u);
}

TEST(InflightsTest, ZeroByteLimitIsUnbounded) {
  Inflights in(3, 0);
  in.Add(I(1), UINT64_MAX / 4);
  in.Add(I(2), UINT64_MAX / 4);
  EXPECT_FALSE(in.Full());
}

TEST(InflightsTest, EmptyMessagesCountAgainstTheSizeLimit) {
  Inflights in(2, 100);
  in.Add(I(1), 0);
  in.Add(I(2), 0);
  EXPECT_TRUE(in.Full());
  EXPECT_EQ(in.Bytes(), 0u);
}

TEST(InflightsTest, ResetFreesEverything) {
  Inflights in(3, 50);
  in.Add(I(1), 20);
  in.Add(I(2), 30);
  ASSERT_TRUE(in.Full());
  in.Reset();
  EXPECT_EQ(in.Count(), 0u);
  EXPECT_EQ(in.Bytes(), 0u);
  EXPECT_FALSE(in.Full());
  // Indexes start over after a reset (the leader may probe backwards).
  in.Add(I(1), 1);
  EXPECT_EQ(in.Count(), 1u);
}

TEST(InflightsTest, SizeMaxOfOne) {
  Inflights in(1, 0);
  for (uint64_t i = 1; i <= 5; ++i) {
    EXPECT_FALSE(in.Full());
    in.Add(I(i), i);
    EXPECT_TRUE(in.Full());
    in.FreeLE(I(i));
    EXPECT_EQ(in.Count(), 0u);
  }
}

TEST(InflightsDeathTest, AddWhenFullCrashes) {
  Inflights in(1, 0);
  in.Add(I(1), 0);
  EXPECT_DEATH(in.Add(I(2), 0), "full inflights window");
}

TEST(InflightsDeathTest, AddOutOfOrderCrashes) {
  Inflights in(4, 0);
  in.Add(I(5), 0);
  EXPECT_DEATH(in.Add(I(5), 0), "inflight indexes must increase");
  EXPECT_DEATH(in.Add(I(4), 0), "inflight indexes must increase");
}

TEST(InflightsDeathTest, ZeroSizeMaxCrashes) {
  EXPECT_DEATH(Inflights(0, 0), "at least one message");
}

// Random adds and frees compared with a std::deque model.
TEST(InflightsTest, MatchesDequeModel) {
  for (uint64_t seed : {7u, 8u, 9u}) {
    std::mt19937_64 rng(seed);
    const size_t size_max = 1 + rng() % 16;
    const uint64_t bytes_max = rng() % 2 == 0 ? 0 : 1 + rng() % 200;
    Inflights in(size_max, bytes_max);
    std::deque<std::pair<uint64_t, uint64_t>> model;  // (index, bytes)
    uint64_t model_bytes = 0;
    uint64_t next_index = 1;
    for (int step = 0; step < 20000; ++step) {
      SCOPED_TRACE("seed=" + std::to_string(seed) + " step=" + std::to_string(step));
      const bool model_full =
          model.size() == size_max || (bytes_max > 0 && model_bytes >= bytes_max);
      ASSERT_EQ(in.Full(), model_full);
      const uint64_t op = rng() % 10;
      if (op < 6 && !model_full) {
        next_index += 1 + rng() % 3;
        const uint64_t bytes = rng() % 40;
        in.Add(I(next_index), bytes);
        model.emplace_back(next_index, bytes);
        model_bytes += bytes;
      } else if (op < 9) {
        const uint64_t to = next_index - std::min<uint64_t>(rng() % 8, next_index);
        in.FreeLE(I(to));
        while (!model.empty() && model.front().first <= to) {
          model_bytes -= model.front().second;
          model.pop_front();
        }
      } else {
        in.Reset();
        model.clear();
        model_bytes = 0;
      }
      ASSERT_EQ(in.Count(), model.size());
      ASSERT_EQ(in.Bytes(), model_bytes);
    }
  }
}

}  // namespace
}  // namespace synod::raft
