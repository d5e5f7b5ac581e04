// Clock and Timer: how time reaches the code that needs it.
//
// The pure layers do not read time at all: Raft counts Tick() calls and the replica counts
// ticks for its timeouts. Their host decides what a tick is. It does so through these two
// interfaces: the real node implements them with the monotonic clock and Asio timers, the
// simulator with its virtual time (sim::EventLoop), where a clock may also run fast or slow.
//
// Thread-safety: implementations are used from their owner's thread.
#pragma once

#include <cstdint>
#include <functional>

namespace synod::env {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic nanoseconds since an arbitrary origin; never goes back.
  virtual int64_t NowNanos() const = 0;
};

class Timer {
 public:
  virtual ~Timer() = default;
  // Runs fn once, no earlier than delay_ns from now, on the owner's thread.
  // REQUIRES: delay_ns >= 0.
  virtual void After(int64_t delay_ns, std::function<void()> fn) = 0;
};

}  // namespace synod::env
