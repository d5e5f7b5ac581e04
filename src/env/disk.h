// Disk: one durable byte file, the way the write-ahead log sees storage.
//
// The contract is the one real disks give, and the simulator enforces it:
//  - Append() is buffered; the bytes are durable only after a later Sync() returns OK.
//  - After a crash, the file holds every synced byte and then possibly any prefix of the
//    unsynced bytes (a torn write), possibly ending in garbage. Readers must detect a torn
//    tail by checksum and discard it.
//  - Replace() swaps the whole content atomically and durably (write a new file, fsync it,
//    rename it over the old one, fsync the directory): after a crash either the old or the
//    new content is there, never a mix.
//  - Any call may fail (disk full, EIO). After a failed Append or Sync the state of the
//    unsynced tail is unknown; callers must not acknowledge anything that depended on it.
//
// Thread-safety: implementations are used from one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace synod::env {

class Disk {
 public:
  virtual ~Disk() = default;

  // Appends bytes at the end of the file (not yet durable).
  virtual Status Append(std::string_view bytes) = 0;
  // Makes every appended byte durable.
  virtual Status Sync() = 0;
  // The whole current content (after a restart: what survived the crash).
  virtual Result<std::string> ReadAll() = 0;
  // Atomically and durably replaces the content.
  virtual Status Replace(std::string_view bytes) = 0;
  // Bytes currently in the file (durable or not).
  virtual uint64_t Size() const = 0;
};

}  // namespace synod::env
