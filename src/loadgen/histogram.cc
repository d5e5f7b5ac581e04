// Histogram bucket layout: indexes 0..127 hold the values 0..127 one each; index
// 128 + 128*(e-7) + s (e = floor(log2 v) >= 7, s = the 7 bits below the top bit) holds the
// 2^(e-7) values starting at (128 + s) << (e-7).
#include "loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "common/assert.h"

namespace synod::loadgen {
namespace {

constexpr int64_t kSub = int64_t{1} << Histogram::kSubBucketBits;

}  // namespace

size_t Histogram::IndexOf(int64_t v) {
  SYNOD_ASSERT(v >= 0 && v <= kValueMax);
  if (v < kSub) return static_cast<size_t>(v);
  const int e = std::bit_width(static_cast<uint64_t>(v)) - 1;  // >= kSubBucketBits
  const int shift = e - kSubBucketBits;
  const int64_t sub = (v >> shift) - kSub;  // 0..kSub-1
  return static_cast<size_t>(kSub + kSub * shift + sub);
}

int64_t Histogram::BucketLow(size_t index) {
  const auto i = static_cast<int64_t>(index);
  if (i < kSub) return i;
  const int64_t shift = (i - kSub) / kSub;
  const int64_t sub = (i - kSub) % kSub;
  return (kSub + sub) << shift;
}

int64_t Histogram::BucketHigh(size_t index) {
  const auto i = static_cast<int64_t>(index);
  if (i < kSub) return i;
  const int64_t shift = (i - kSub) / kSub;
  return BucketLow(index) + (int64_t{1} << shift) - 1;
}

size_t Histogram::BucketCount() { return IndexOf(kValueMax) + 1; }

Histogram::Histogram() : counts_(BucketCount(), 0) {}

void Histogram::RecordN(int64_t value, uint64_t n) {
  if (n == 0) return;
  if (value < 0) value = 0;
  if (value > kValueMax) {
    value = kValueMax;
    saturated_ += n;
  }
  counts_[IndexOf(value)] += n;
  min_ = count_ == 0 ? value : std::min(min_, value);
  max_ = std::max(max_, value);
  count_ += n;
  sum_ += static_cast<long double>(value) * static_cast<long double>(n);
}

void Histogram::Merge(const Histogram& other) {
  SYNOD_ASSERT(counts_.size() == other.counts_.size());
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  saturated_ += other.saturated_;
  sum_ += other.sum_;
}

void Histogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  saturated_ = 0;
  min_ = 0;
  max_ = 0;
  sum_ = 0;
}

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

int64_t Histogram::ValueAtPercentile(double percentile) const {
  SYNOD_ASSERT(percentile >= 0 && percentile <= 100);
  if (count_ == 0) return 0;
  // The rank of the value asked for, 1-based: at least one value must be at or below it.
  const auto wanted =
      static_cast<uint64_t>(std::ceil(percentile / 100.0 * static_cast<double>(count_)));
  const uint64_t rank = std::clamp<uint64_t>(wanted, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(BucketHigh(i), min_, max_);
  }
  SYNOD_UNREACHABLE();
}

}  // namespace synod::loadgen
