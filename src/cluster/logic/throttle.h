// Moves throttled by client latency (docs/sharding.md, "Moves"): the rate at which a node
// streams snapshots (a move's new replica, a healing, a lagging follower) follows its clients'
// p99, and never falls below the rate at which the shards it streams are written, so that a
// rebalance always finishes.
//
// Every interval (a quarter of a second on the node: a small move streams in well under a
// second), the node hands MoveThrottle what the interval showed: its client requests' p99
// (LatencyWindow), their count, the snapshot bytes it sent and the log bytes the streamed
// shards applied. Additive increase, multiplicative decrease, as TCP does: a p99 above the
// target halves the rate; an interval at or under it raises the rate by a quarter and a step,
// until it is past the ceiling, where streams go unthrottled. The floor is twice the shards'
// write rate (and at least floor_min_bytes): below it the log would outrun the snapshot, and a
// move could never catch up.
//
// Thread-safety: none; the core thread runs it. Pure: no clock, the caller samples.
#pragma once

#include <array>
#include <cstdint>

namespace synod::cluster {

struct MoveThrottleOptions {
  // The clients' p99 the node keeps moves under; 0: moves are never throttled.
  double p99_target_ms = 50;
  uint64_t floor_min_bytes = 1ull << 20;  // bytes/s: a throttled stream never goes slower
  uint64_t step_bytes = 1ull << 20;       // the additive part of an increase, bytes/s
  uint64_t ceiling_bytes = 1ull << 30;    // past this the streams go unthrottled
  uint64_t requests_min = 10;             // fewer requests in an interval: no latency signal
};

// What one interval showed.
struct MoveThrottleSample {
  int64_t interval_ms = 1000;  // its length (> 0)
  double p99_ms = 0;           // the node's client requests' p99 over it
  uint64_t requests = 0;       // client requests answered in it
  uint64_t sent_bytes = 0;     // snapshot chunk bytes sent in it
  uint64_t written_bytes = 0;  // log bytes the streamed shards applied in it
};

class MoveThrottle {
 public:
  explicit MoveThrottle(MoveThrottleOptions opts = {}) : opts_(opts) {}

  // The rate for the next interval, in bytes/s; 0: unthrottled.
  uint64_t Next(const MoveThrottleSample& s);
  uint64_t rate() const { return rate_; }
  // The floor the last sample set.
  uint64_t floor() const { return floor_; }

 private:
  MoveThrottleOptions opts_;
  uint64_t rate_ = 0;
  uint64_t floor_ = 0;
};

// Request latencies over a window (an interval): a histogram of buckets each a quarter of a power
// of two wide, from 1 µs to 16.8 s (slower ones count in the last); P99Ms answers the upper
// bound of the bucket holding the 99th percentile (at most 19% above the true value).
class LatencyWindow {
 public:
  static constexpr int kBuckets = 96;
  void Observe(int64_t ns);
  uint64_t count() const { return count_; }
  double P99Ms() const;
  void Reset();

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
};

}  // namespace synod::cluster
