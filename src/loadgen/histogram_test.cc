#include "loadgen/histogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

namespace synod::loadgen {
namespace {

// |got - want| <= 1% of want.
void ExpectWithinOnePercent(int64_t got, int64_t want) {
  EXPECT_LE(std::abs(static_cast<double>(got - want)), 0.01 * static_cast<double>(want))
      << "got " << got << ", want " << want << " +-1%";
}

TEST(HistogramTest, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtPercentile(50), 0);
  EXPECT_EQ(h.ValueAtPercentile(100), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(HistogramTest, BucketsAreContiguousAndNarrow) {
  // Every counter starts where the previous ended and holds at most 1/128 of its low value.
  for (size_t i = 0; i + 1 < Histogram::BucketCount(); ++i) {
    ASSERT_EQ(Histogram::BucketHigh(i) + 1, Histogram::BucketLow(i + 1)) << "index " << i;
    const int64_t width = Histogram::BucketHigh(i) - Histogram::BucketLow(i) + 1;
    if (Histogram::BucketLow(i) >= 128) {
      ASSERT_LE(width * 128, Histogram::BucketLow(i)) << "index " << i;
    } else {
      ASSERT_EQ(width, 1);
    }
  }
  EXPECT_EQ(Histogram::BucketLow(0), 0);
  EXPECT_GE(Histogram::BucketHigh(Histogram::BucketCount() - 1), Histogram::kValueMax);
}

TEST(HistogramTest, IndexOfLandsInItsBucket) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    // Log-uniform over the whole range so that every power of two is exercised.
    const int bits = static_cast<int>(rng() % 36);
    const int64_t v = static_cast<int64_t>(rng() % (uint64_t{1} << bits)) % Histogram::kValueMax;
    const size_t idx = Histogram::IndexOf(v);
    ASSERT_LE(Histogram::BucketLow(idx), v);
    ASSERT_GE(Histogram::BucketHigh(idx), v);
  }
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (int64_t v = 0; v < 100; ++v) h.Record(v);
  EXPECT_EQ(h.ValueAtPercentile(50), 49);
  EXPECT_EQ(h.ValueAtPercentile(1), 0);
  EXPECT_EQ(h.ValueAtPercentile(99), 98);
  EXPECT_EQ(h.max(), 99);
  EXPECT_EQ(h.min(), 0);
  EXPECT_DOUBLE_EQ(h.mean(), 49.5);
}

// Uniform 1..1000 µs recorded in nanoseconds, as `synod bench` records latencies.
TEST(HistogramTest, UniformMicroseconds) {
  Histogram h;
  for (int rep = 0; rep < 10; ++rep) {
    for (int64_t us = 1; us <= 1000; ++us) h.Record(us * 1000);
  }
  EXPECT_EQ(h.count(), 10000u);
  ExpectWithinOnePercent(h.ValueAtPercentile(50), 500'000);
  ExpectWithinOnePercent(h.ValueAtPercentile(90), 900'000);
  ExpectWithinOnePercent(h.ValueAtPercentile(99), 990'000);
  ExpectWithinOnePercent(h.ValueAtPercentile(99.9), 999'000);
  EXPECT_EQ(h.max(), 1'000'000);
  EXPECT_EQ(h.min(), 1'000);
  EXPECT_EQ(h.ValueAtPercentile(100), 1'000'000);
  EXPECT_DOUBLE_EQ(h.mean(), 500'500.0);
  // Percentiles never under-report.
  EXPECT_GE(h.ValueAtPercentile(50), 500'000);
}

// The same distribution in microsecond units: the histogram does not care about the unit.
TEST(HistogramTest, UniformRandomSamples) {
  Histogram h;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> dist(1, 1000);
  int64_t max_seen = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    const int64_t v = dist(rng);
    max_seen = std::max(max_seen, v);
    h.Record(v);
  }
  ExpectWithinOnePercent(h.ValueAtPercentile(50), 500);
  ExpectWithinOnePercent(h.ValueAtPercentile(99), 990);
  EXPECT_EQ(h.max(), max_seen);
}

TEST(HistogramTest, TailOfABimodalDistribution) {
  // 99% fast (100 µs), 1% slow (50 ms): p99 is still fast, p99.9 slow.
  Histogram h;
  h.RecordN(100'000, 9900);
  h.RecordN(50'000'000, 100);
  ExpectWithinOnePercent(h.ValueAtPercentile(50), 100'000);
  ExpectWithinOnePercent(h.ValueAtPercentile(99), 100'000);
  ExpectWithinOnePercent(h.ValueAtPercentile(99.9), 50'000'000);
  EXPECT_EQ(h.ValueAtPercentile(99.9), 50'000'000);  // clamped to the exact max
}

TEST(HistogramTest, MergeEqualsRecordingEverything) {
  Histogram a;
  Histogram b;
  Histogram all;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const int64_t v = static_cast<int64_t>(rng() % 10'000'000);
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  Histogram merged;
  merged.Merge(a);
  merged.Merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
  for (double p : {0.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    EXPECT_EQ(merged.ValueAtPercentile(p), all.ValueAtPercentile(p)) << "p" << p;
  }
  merged.Merge(Histogram());  // merging an empty histogram changes nothing
  EXPECT_EQ(merged.min(), all.min());
}

TEST(HistogramTest, ClampsAndCountsSaturation) {
  Histogram h;
  h.Record(-5);
  h.Record(Histogram::kValueMax * 2);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), Histogram::kValueMax);
  EXPECT_EQ(h.saturated(), 1u);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.saturated(), 0u);
  EXPECT_EQ(h.ValueAtPercentile(99), 0);
}

}  // namespace
}  // namespace synod::loadgen
