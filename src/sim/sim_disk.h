// SimDisk: the simulator's env::Disk, one in-memory file with the crash semantics of
// env/disk.h, under the simulator's control.
//
// The file is durable_ bytes followed by pending_ bytes (appended, not yet durable). Sync()
// does not make anything durable by itself: it marks the bytes appended so far as "sync
// requested", and they become durable only when the simulator calls CompleteSync(), which
// models an fsync that takes time. Whoever calls Sync() must not act on durability (send
// messages_after_persist, acknowledge a client) before the simulator has completed that sync.
//
// Crash() is a power loss: durable bytes stay; of the pending bytes nothing survives, or with
// torn writes a random prefix does, sometimes ending in a few garbled bytes. Replace() is
// atomic and durable at once (the real one fsyncs a new file and renames it).
//
// Faults: FailNextWrites(n) and SetFull(true) make Append, Sync and Replace return kIoError
// without changing the file (a failed Append appends nothing; a failed Sync requests nothing).
//
// Pure: no clocks, threads or files; randomness only from the env::Random passed to Crash().
// Thread-safety: none; the simulator's single thread owns it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "env/disk.h"
#include "env/random.h"

namespace synod::sim {

class SimDisk final : public env::Disk {
 public:
  // At most this many trailing bytes of a torn write are garbled by Crash().
  static constexpr uint64_t kGarbledBytesMax = 8;

  struct Stats {
    uint64_t appends = 0;
    uint64_t syncs_requested = 0;
    uint64_t syncs_completed = 0;
    uint64_t replaces = 0;
    uint64_t crashes = 0;
    uint64_t faults_injected = 0;  // calls that returned kIoError
  };

  SimDisk() = default;

  // env::Disk.
  Status Append(std::string_view bytes) override;
  // Requests durability of every byte appended so far; see CompleteSync().
  Status Sync() override;
  Result<std::string> ReadAll() override;
  Status Replace(std::string_view bytes) override;
  uint64_t Size() const override { return durable_.size() + pending_.size(); }

  // The simulator's side.

  // Makes durable every byte covered by a Sync() so far (all requested syncs complete
  // together, as one fsync covers every earlier write). A no-op when none is in flight.
  void CompleteSync();
  bool sync_in_flight() const { return sync_requested_bytes_ > 0; }

  // A power loss and restart. Durable bytes stay. If torn_writes, a uniformly random prefix
  // of the pending bytes survives (possibly none, possibly all) and, half of the time, its last
  // 1..kGarbledBytesMax bytes are garbled; otherwise no pending byte survives. Requested but
  // uncompleted syncs are forgotten. Injected faults stay armed.
  void Crash(env::Random& rng, bool torn_writes);

  // The next n calls of Append, Sync or Replace fail with kIoError.
  void FailNextWrites(uint64_t n) { fail_next_writes_ = n; }
  // While full, every Append, Sync and Replace fails with kIoError ("disk full").
  void SetFull(bool full) { full_ = full; }

  const std::string& durable() const { return durable_; }
  uint64_t pending_bytes() const { return pending_.size(); }
  uint64_t sync_requested_bytes() const { return sync_requested_bytes_; }
  const Stats& stats() const { return stats_; }

 private:
  // The injected fault for this write call, if any (consumes one of FailNextWrites).
  Status InjectedFault(const char* op);

  std::string durable_;
  std::string pending_;
  // The prefix of pending_ that Sync() calls have covered; durable at CompleteSync().
  uint64_t sync_requested_bytes_ = 0;
  uint64_t fail_next_writes_ = 0;
  bool full_ = false;
  Stats stats_;
};

}  // namespace synod::sim
