#include "cluster/logic/throttle.h"

#include <algorithm>
#include <cmath>

namespace synod::cluster {

uint64_t MoveThrottle::Next(const MoveThrottleSample& s) {
  const auto per_second = [&s](uint64_t bytes) {
    return bytes * 1000 / static_cast<uint64_t>(std::max<int64_t>(s.interval_ms, 1));
  };
  floor_ = std::max(opts_.floor_min_bytes, 2 * per_second(s.written_bytes));
  if (opts_.p99_target_ms <= 0) {
    rate_ = 0;
    return rate_;
  }
  const bool slow = s.requests >= opts_.requests_min && s.p99_ms > opts_.p99_target_ms;
  if (slow) {
    // From what actually went out when it was unthrottled (or the floor, if nothing did).
    const uint64_t base = rate_ != 0 ? rate_ : std::max(per_second(s.sent_bytes), floor_);
    rate_ = std::max(floor_, base / 2);
  } else if (rate_ != 0) {
    rate_ = std::max(floor_, rate_ + rate_ / 4 + opts_.step_bytes);
    if (rate_ >= opts_.ceiling_bytes) rate_ = 0;
  }
  return rate_;
}

namespace {

// Bucket b covers [2^(b/4), 2^((b+1)/4)) µs; bucket 0 also everything under 1 µs.
int BucketOf(int64_t ns) {
  const double us = static_cast<double>(std::max<int64_t>(ns, 0)) / 1000.0;
  if (us < 1) return 0;
  const int b = static_cast<int>(std::floor(std::log2(us) * 4));
  return std::clamp(b, 0, LatencyWindow::kBuckets - 1);
}

}  // namespace

void LatencyWindow::Observe(int64_t ns) {
  ++buckets_[static_cast<size_t>(BucketOf(ns))];
  ++count_;
}

double LatencyWindow::P99Ms() const {
  if (count_ == 0) return 0;
  // The smallest bucket with at least 99% of the requests at or under it.
  const uint64_t want = count_ - count_ / 100;
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[static_cast<size_t>(b)];
    if (seen >= want) return std::exp2(static_cast<double>(b + 1) / 4) / 1000.0;
  }
  return std::exp2(static_cast<double>(kBuckets) / 4) / 1000.0;
}

void LatencyWindow::Reset() {
  buckets_.fill(0);
  count_ = 0;
}

}  // namespace synod::cluster
