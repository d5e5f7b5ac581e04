// RunBench: drives a Workload against Redis-protocol servers over many TCP connections and
// measures it (`synod bench`). The I/O is Asio: each of `threads` threads runs one io_context
// owning its share of the connections; the calling thread only reports progress.
//
// Closed loop (rate 0): every connection keeps `pipeline` requests outstanding; latency runs
// from the moment a request is queued for sending to its reply.
// Open loop (rate > 0): every connection has a fixed schedule (rate / clients per second) and
// latency runs from a request's *scheduled* send time, so a stalled server is charged for the
// requests it kept the generator from sending (no "coordinated omission"). A request waits
// while its connection already has `pipeline` outstanding; that wait counts.
//
// Nothing hangs: connects and replies time out (timeout_ns), a failed connection reconnects
// with a bounded exponential backoff, and the run ends at warmup + duration whatever happens.
//
// Thread-safety: RunBench may be called from any thread; `interrupt` may be set from any
// thread (a signal handler's flag) to end the run early.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/address.h"
#include "common/status.h"
#include "loadgen/histogram.h"
#include "loadgen/workload.h"

namespace synod::loadgen {

struct RunOptions {
  std::vector<HostPort> hosts;           // connection i goes to hosts[i % hosts.size()]
  int clients = 50;                      // TCP connections
  int pipeline = 1;                      // outstanding requests per connection, >= 1
  int threads = 1;                       // I/O threads, each with its own share of connections
  int64_t duration_ns = 10'000'000'000;  // measured time after the warmup; always a bound
  uint64_t requests = 0;                 // when > 0, stop after this many measured requests
  double rate = 0;                       // total requests/s for the open loop; 0 = closed
  int64_t warmup_ns = 1'000'000'000;     // sent but not measured
  int64_t timeout_ns = 5'000'000'000;    // connect and reply timeout
  bool readonly = false;                 // send READONLY first on every connection
  uint64_t seed = 1;
  WorkloadOptions workload;
};

// Event counts of the measured period (after the warmup). Errors are keyed by kind: a server
// error's first word ("ERR", "TRYAGAIN", "CLUSTERDOWN", ...) or one of "connect-failed",
// "connection-closed", "timeout", "protocol-error" for connection failures.
struct Counters {
  uint64_t ok = 0;        // non-error replies
  uint64_t reads = 0;     // of which GET
  uint64_t writes = 0;    // of which SET
  uint64_t nil = 0;       // of which null replies (GET of a missing key)
  uint64_t lost = 0;      // requests in flight on a connection that failed: no reply
  uint64_t connects = 0;  // successful connections, the first ones included
  std::map<std::string, uint64_t> errors;
  // The first message of each kind in `errors` (up to 200 bytes): what the server said.
  std::map<std::string, std::string> error_samples;

  uint64_t ErrorsTotal() const;
  void Merge(const Counters& other);
};

// What the progress callback sees, about once a second.
struct Progress {
  int64_t elapsed_ns = 0;   // since the start, warmup included
  int64_t measured_ns = 0;  // since the end of the warmup (0 while warming up)
  bool warming_up = false;
  Counters counters;  // cumulative over the measured period so far
  Histogram latency;  // likewise, in nanoseconds
};

struct RunResult {
  Counters counters;
  Histogram latency;        // nanoseconds, successful replies only
  int64_t measured_ns = 0;  // the measured period's length: ops/s = counters.ok / it
  uint64_t backlog = 0;     // open loop: requests due but never sent by the end
  bool interrupted = false;
};

using ProgressFn = std::function<void(const Progress&)>;

// Runs the benchmark. kInvalidArgument for bad options, kUnavailable when a host does not
// resolve; otherwise the result, however many requests failed.
Result<RunResult> RunBench(const RunOptions& options, const ProgressFn& on_progress,
                           const std::atomic<bool>& interrupt);

}  // namespace synod::loadgen
