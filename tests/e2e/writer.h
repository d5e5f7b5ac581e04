// Background client workloads for the e2e tests, and the checks of what they were told.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cluster_harness.h"

namespace synod::e2e {

// Writes distinct keys "<prefix>-<n>" = "v<n>-<prefix>" one at a time, through the first of
// `ports` until its connection fails, then through the next (round robin), and records which
// writes were acknowledged with +OK. Every key is written once, so an acknowledged write must
// stay readable with exactly its value, whatever happened to the write after it.
//
// Thread-safety: Start/Stop and the accessors are for the test's main thread; the counters may
// be read while the writer runs.
class Writer {
 public:
  Writer(std::string prefix, std::vector<uint16_t> ports, int64_t command_timeout_ms = 4000);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void Start();
  void Stop();  // and join

  size_t acked_count() const { return acked_count_.load(); }
  // Acknowledged (key, value) pairs, in order (a copy: the writer may still be running).
  std::vector<std::pair<std::string, std::string>> acked() const;
  // Error replies by their first word ("CLUSTERDOWN", "TRYAGAIN", ...), and I/O errors as "IO".
  std::map<std::string, size_t> errors() const;
  // The first error replies other than the transient CLUSTERDOWN and TRYAGAIN (and I/O
  // errors), with the key they answered, and how many there were in all.
  std::vector<std::string> unexpected_errors() const;
  size_t unexpected_count() const;

 private:
  void Run();
  void Unexpected(std::string what);  // REQUIRES: mu_ held

  const std::string prefix_;
  const std::vector<uint16_t> ports_;
  const int64_t command_timeout_ms_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> acked_count_{0};
  std::vector<std::pair<std::string, std::string>> acked_;
  mutable std::mutex mu_;  // guards acked_, errors_ and unexpected_
  std::map<std::string, size_t> errors_;
  std::vector<std::string> unexpected_;
  size_t unexpected_count_ = 0;
};

// Reads every pair with MGET (in batches) through `r` and returns a description of each
// mismatch (empty when all match). Stops after `max_reported` mismatches.
std::vector<std::string> CheckValues(Redis& r,
                                     const std::vector<std::pair<std::string, std::string>>& kv,
                                     size_t max_reported = 10);

// SETs every pair through `r`, pipelined in batches. Returns the replies that were not +OK, as
// "key: reply" strings.
std::vector<std::string> SetAll(Redis& r,
                                const std::vector<std::pair<std::string, std::string>>& kv);

// `count` pairs "<prefix><i>" = "<value_prefix><i>".
std::vector<std::pair<std::string, std::string>> MakePairs(const std::string& prefix, size_t count,
                                                           const std::string& value_prefix);

// Retries SET key value through the given ports (round robin) until +OK or the deadline.
// Returns the milliseconds it took, or -1 on timeout.
int64_t SetUntilOk(const std::vector<uint16_t>& ports, const std::string& key,
                   const std::string& value, int64_t timeout_ms);

}  // namespace synod::e2e
