// Histogram: an HDR-style latency histogram (log-linear buckets), after Gil Tene's
// HdrHistogram. Values below 128 are counted exactly; above, each power of two is split into
// 128 equal sub-buckets, so a value is known to within 1/128 (< 0.8%) of itself. The covered
// range is 0..kValueMax, 60 s in nanoseconds (what `synod bench` records); larger values are
// counted at kValueMax and reported by saturated().
//
// Histograms merge (add counts), so every bench thread keeps its own and the report adds them.
//
// Thread-safety: a value; not safe for concurrent use (one per thread, merged afterwards).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace synod::loadgen {

class Histogram {
 public:
  // 60 s in nanoseconds: the largest value kept apart from its neighbours.
  static constexpr int64_t kValueMax = 60'000'000'000;
  // log2 of the sub-buckets per power of two: 128 gives 2+ significant decimal digits.
  static constexpr int kSubBucketBits = 7;

  Histogram();

  // Counts one value. Negative values count as 0, values above kValueMax as kValueMax.
  void Record(int64_t value) { RecordN(value, 1); }
  void RecordN(int64_t value, uint64_t n);

  // Adds other's counts, min, max and sum into this one.
  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  // The exact smallest and largest values recorded (after clamping); 0 when empty.
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  // The exact mean of the values recorded (after clamping); 0 when empty.
  double mean() const;
  // Values that were above kValueMax and were recorded as kValueMax.
  uint64_t saturated() const { return saturated_; }

  // The smallest value v such that at least `percentile`% of the values are <= v, rounded up
  // to the top of v's bucket (never under-reporting, as HdrHistogram does) but never above
  // max(). ValueAtPercentile(100) == max(). 0 when empty. REQUIRES: 0 <= percentile <= 100.
  int64_t ValueAtPercentile(double percentile) const;

  // Bucket arithmetic, public for tests: the index of the counter for v, and the range of
  // values [BucketLow(i), BucketHigh(i)] that counter holds. REQUIRES: 0 <= v <= kValueMax.
  static size_t IndexOf(int64_t v);
  static int64_t BucketLow(size_t index);
  static int64_t BucketHigh(size_t index);
  static size_t BucketCount();

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t saturated_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  // Sum of values for the mean; a long double keeps it exact far past 2^63 ns·requests.
  long double sum_ = 0;
};

}  // namespace synod::loadgen
