// Metrics for the admin port, rendered in the Prometheus text exposition format 0.0.4.
//
// The shape follows the Prometheus client libraries, cut down to what a node needs: counters,
// gauges, histograms with fixed buckets, and gauges computed at render time. A Registry owns
// every metric; callers keep the raw pointers it hands out and update them from any thread.
// Updates are single atomic operations (no locks), so the core thread can count on its hot
// path while the HTTP thread renders.
//
// Thread-safety: Counter, Gauge and Histogram are safe to update and read from any thread.
// Registry registration and Render() are serialised by a mutex, so both are safe from any
// thread; in practice registration happens at start-up and Render() runs on the HTTP thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace synod::admin {

// Label (name, value) pairs of one sample, rendered in the order given. A handful at most,
// so a vector beats a map.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of Render()'s output, as Prometheus expects it for format 0.0.4.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4";

// A monotonically increasing count (requests served, bytes written, ...).
//
// Thread-safety: lock-free; any thread may Inc() and read.
class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (queue length, current term, ...).
//
// Thread-safety: lock-free; any thread may Set(), Add() and read.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A consistent-enough copy of a histogram. `cumulative` has one entry per bound plus a last
// one for +Inf, each the number of observations <= that bound, as Prometheus renders them.
struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<uint64_t> cumulative;  // size bounds.size() + 1; back() == count
  double sum = 0.0;
  uint64_t count = 0;
};

// A distribution over fixed buckets (latencies, sizes).
//
// Each bucket keeps its own (non-cumulative) atomic count; the total count is derived from the
// buckets when a snapshot is taken rather than kept in a separate atomic, so a render racing
// with Observe() can never show a _count that disagrees with the +Inf bucket. The sum may lag
// the buckets by the observations in flight, which Prometheus tolerates.
//
// Thread-safety: lock-free; any thread may Observe() and take snapshots.
class Histogram {
 public:
  // REQUIRES: `bounds` is non-empty, finite and strictly increasing (+Inf is implicit).
  explicit Histogram(std::vector<double> bounds);

  // Counts `v` in the first bucket whose bound is >= v (NaN counts in +Inf only).
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  HistogramSnapshot Snapshot() const;

 private:
  const std::vector<double> bounds_;
  // One per bound plus the +Inf bucket; a unique_ptr array because atomics do not move.
  const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

// Latency buckets in seconds from 50us to 10s in 1-2-5 steps (roughly x2), the range of one
// request of a replicated store from a cached read to a stalled fsync. Written as decimal
// literals so the rendered `le` labels are short ("0.0005", not "0.00050000000000000001").
std::vector<double> LatencyBucketsSeconds();

// Owns all metrics of one process (or one node) and renders them.
//
// Metric names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]*;
// a bad name, a name reused with another type or help text, or the same name and labels
// registered twice is a programmer error and crashes (SYNOD_ASSERT). One name may be
// registered several times with different labels; the samples then share one HELP/TYPE block.
//
// Ownership: the Registry owns the metrics; returned pointers stay valid for its lifetime.
// Thread-safety: registration and Render() take a mutex; metric updates never do.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter* AddCounter(std::string name, std::string help, Labels labels = {});
  Gauge* AddGauge(std::string name, std::string help, Labels labels = {});
  // REQUIRES: `bounds` as for Histogram; `labels` has no "le" (it names the bucket).
  Histogram* AddHistogram(std::string name, std::string help, std::vector<double> bounds,
                          Labels labels = {});
  // A gauge read by calling `fn` at render time, for values another component already keeps
  // (for example a snapshot struct the core thread publishes). `fn` runs on the rendering
  // thread while the registry mutex is held: it must be thread-safe, quick, and must not call
  // back into this Registry.
  void AddCallbackGauge(std::string name, std::string help, std::function<double()> fn,
                        Labels labels = {});
  // The same for a counter another component keeps (an atomic that only grows): rendered with
  // TYPE counter. `fn` must never decrease.
  void AddCallbackCounter(std::string name, std::string help, std::function<double()> fn,
                          Labels labels = {});

  // The whole registry in text format 0.0.4: families in order of first registration, each
  // with HELP and TYPE once, then its samples in order of registration.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };

  // One registered (name, labels) series. Exactly one of the pointers (or fn) is set.
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> fn;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<Series> series;
  };

  // Returns the new, empty series of `name` (creating its family), after the checks above.
  // REQUIRES: mu_ held.
  Series& NewSeries(std::string name, std::string help, Type type, Labels labels);
  static void RenderFamily(const Family& family, std::string& out);

  mutable std::mutex mu_;
  std::vector<Family> families_;  // guarded by mu_; few, so a linear search is fine
};

}  // namespace synod::admin
