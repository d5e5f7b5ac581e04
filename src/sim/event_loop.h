// EventLoop: the simulator's virtual time and its queue of future events.
//
// Events run in (time, insertion order) order, so two runs that schedule the same events get
// the same order: nothing depends on pointer values or hash order. Time is virtual
// nanoseconds; it jumps from one event to the next, so a simulated minute costs only the work
// done in it.
//
// Thread-safety: none; the whole simulation runs in one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "common/assert.h"
#include "env/clock.h"

namespace synod::sim {

inline constexpr int64_t kMicro = 1'000;
inline constexpr int64_t kMilli = 1'000'000;
inline constexpr int64_t kSecond = 1'000'000'000;

class EventLoop final : public env::Clock, public env::Timer {
 public:
  int64_t now() const { return now_; }
  int64_t NowNanos() const override { return now_; }

  // Runs fn at virtual time now() + delay. REQUIRES: delay >= 0.
  void After(int64_t delay, std::function<void()> fn) override {
    SYNOD_ASSERT(delay >= 0);
    queue_.push(Event{now_ + delay, next_seq_++, std::move(fn)});
  }

  // Runs events until the queue is empty, `deadline` is passed, or `events_max` events ran.
  // Returns the number of events run.
  uint64_t RunUntil(int64_t deadline, uint64_t events_max) {
    uint64_t ran = 0;
    while (!queue_.empty() && ran < events_max) {
      if (queue_.top().at > deadline) break;
      Event e = queue_.top();
      queue_.pop();
      SYNOD_ASSERT(e.at >= now_);
      now_ = e.at;
      e.fn();
      ++ran;
      if (after_event_) after_event_();
    }
    if (now_ < deadline && (queue_.empty() || queue_.top().at > deadline)) now_ = deadline;
    return ran;
  }

  // Called after every event (the simulator checks its invariants there).
  void SetAfterEvent(std::function<void()> fn) { after_event_ = std::move(fn); }
  size_t pending() const { return queue_.size(); }

 private:
  struct Event {
    int64_t at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  int64_t now_ = 0;
  uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
  std::function<void()> after_event_;
};

}  // namespace synod::sim
