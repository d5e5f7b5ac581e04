// MoveThrottle and LatencyWindow (cluster/logic/throttle.h): snapshots slow down while clients
// are slow, never below the floor the shards' writes set, and go unthrottled again when calm.
#include "cluster/logic/throttle.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace synod::cluster {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

MoveThrottleSample Second(double p99_ms, uint64_t sent, uint64_t written = 0,
                          uint64_t requests = 1000) {
  return MoveThrottleSample{1000, p99_ms, requests, sent, written};
}

TEST(MoveThrottle, SlowClientsHalveTheRateFromWhatWasSentDownToTheFloor) {
  MoveThrottle t;
  EXPECT_EQ(t.Next(Second(2, 400 * kMiB)), 0u);  // fast clients: unthrottled
  EXPECT_EQ(t.Next(Second(80, 400 * kMiB)), 200 * kMiB);
  EXPECT_EQ(t.Next(Second(80, 200 * kMiB)), 100 * kMiB);
  // The shards streamed take 10 MiB/s of writes: never below twice that.
  for (int i = 0; i < 10; ++i) t.Next(Second(500, 20 * kMiB, 10 * kMiB));
  EXPECT_EQ(t.rate(), 20 * kMiB);
  EXPECT_EQ(t.floor(), 20 * kMiB);
  // The writes grow: the floor, and the rate with it, follow at once.
  EXPECT_EQ(t.Next(Second(500, 20 * kMiB, 30 * kMiB)), 60 * kMiB);
  // No writes at all: the least floor, 1 MiB/s.
  for (int i = 0; i < 20; ++i) t.Next(Second(500, kMiB));
  EXPECT_EQ(t.rate(), kMiB);
}

TEST(MoveThrottle, ShorterIntervalsCountInBytesPerSecond) {
  MoveThrottle t;
  // A quarter of a second: 10 MiB sent is 40 MiB/s; 1 MiB written is 4 MiB/s (floor 8).
  EXPECT_EQ(t.Next(MoveThrottleSample{250, 80, 1000, 10 * kMiB, kMiB}), 20 * kMiB);
  EXPECT_EQ(t.floor(), 8 * kMiB);
}

TEST(MoveThrottle, CalmSecondsRaiseTheRateUntilItIsUnthrottled) {
  MoveThrottle t;
  t.Next(Second(80, 8 * kMiB));
  ASSERT_EQ(t.rate(), 4 * kMiB);
  uint64_t last = t.rate();
  int seconds = 0;
  while (t.rate() != 0) {
    ASSERT_LT(++seconds, 60);
    t.Next(Second(10, last));
    if (t.rate() != 0) {
      EXPECT_GT(t.rate(), last);  // every calm second raises it
      last = t.rate();
    }
  }
  EXPECT_GT(seconds, 10);  // gradually: a quarter and 1 MiB/s a second
  EXPECT_LT(seconds, 30);
}

TEST(MoveThrottle, FewRequestsGiveNoSignalAndATargetOfZeroNeverThrottles) {
  MoveThrottle t;
  t.Next(Second(80, 8 * kMiB));
  ASSERT_EQ(t.rate(), 4 * kMiB);
  // Three slow requests in an interval: not a p99 to act on; the rate rises.
  EXPECT_GT(t.Next(Second(900, 4 * kMiB, 0, 3)), 4 * kMiB);
  MoveThrottle off(MoveThrottleOptions{.p99_target_ms = 0});
  EXPECT_EQ(off.Next(Second(900, 100 * kMiB)), 0u);
}

TEST(LatencyWindow, P99IsTheBucketBoundAboveThe99thPercentile) {
  LatencyWindow w;
  EXPECT_EQ(w.P99Ms(), 0);
  for (int i = 0; i < 990; ++i) w.Observe(200'000);    // 0.2 ms
  for (int i = 0; i < 10; ++i) w.Observe(90'000'000);  // 90 ms
  EXPECT_EQ(w.count(), 1000u);
  EXPECT_GE(w.P99Ms(), 0.2);
  EXPECT_LT(w.P99Ms(), 0.2 * 1.19 + 1e-9);
  w.Observe(90'000'000);  // now more than 1% are slow
  EXPECT_GE(w.P99Ms(), 90);
  EXPECT_LT(w.P99Ms(), 90 * 1.19);
  // Beyond the last bucket (16.8 s) and below the first: counted, bounded.
  w.Reset();
  w.Observe(600'000'000'000);
  EXPECT_GT(w.P99Ms(), 16'000);
  w.Reset();
  w.Observe(-5);
  w.Observe(10);
  EXPECT_LE(w.P99Ms(), 0.002);
}

}  // namespace
}  // namespace synod::cluster
