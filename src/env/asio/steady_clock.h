// SteadyClock: env::Clock over std::chrono::steady_clock, for the real node.
//
// The monotonic clock rather than the wall clock because a node measures intervals (lease,
// last-contact times, backoff), and NTP steps of the wall clock must not bend them. The
// simulator implements env::Clock with virtual time instead.
//
// Thread-safety: stateless; safe to use from any thread.
#pragma once

#include <chrono>
#include <cstdint>

#include "env/clock.h"

namespace synod::env {

// Monotonic nanoseconds, for intervals and deadlines in the real node.
inline int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Wall-clock milliseconds since the Unix epoch, only for what users read as dates (INFO's
// uptime origin, CLIENT LIST ages); never for deadlines.
inline int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SteadyClock final : public Clock {
 public:
  int64_t NowNanos() const override { return SteadyNowNs(); }
};

}  // namespace synod::env
