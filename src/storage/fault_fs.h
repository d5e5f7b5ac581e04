// FaultInjectionFs: a RocksDB file system that refuses writes on demand, to test "disk full".
//
// It wraps rocksdb::FileSystem::Default(). While SetFailWrites(true) is in effect, every
// Append, PositionedAppend, Sync, Fsync and RangeSync of a writable file, and the creation or
// reopening of one, fails with the IOError "injected: No space left on device"; reads, renames
// and deletions pass through. Files opened before the flag was set fail too: the flag is
// checked on every call, not at open.
//
// RocksDB 7 does its I/O through env->GetFileSystem(), so overriding rocksdb::Env methods alone
// does not intercept writes; give the database NewFaultInjectionEnv(fs) as RocksOptions::env.
// The live node toggles the flag from an admin endpoint; the unit tests from the test thread.
//
// Ownership: shared (std::shared_ptr) by the Env built on it and by whoever toggles it; the
// Env must outlive every database opened on it.
// Thread-safety: thread-safe; the flag and counter are atomics shared with the files.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace synod::storage {

class FaultInjectionFs final : public rocksdb::FileSystemWrapper {
 public:
  // The state shared with the files this file system opened.
  struct Faults {
    std::atomic<bool> fail_writes{false};
    std::atomic<uint64_t> injected{0};  // writes refused so far
  };

  FaultInjectionFs();

  static const char* kClassName() { return "SynodFaultInjectionFs"; }
  const char* Name() const override { return kClassName(); }

  // While true, writes fail as described above.
  void SetFailWrites(bool fail) { faults_->fail_writes.store(fail, std::memory_order_release); }
  bool fail_writes() const { return faults_->fail_writes.load(std::memory_order_acquire); }
  // How many writes (or file creations) have been refused.
  uint64_t injected_failures() const { return faults_->injected.load(std::memory_order_relaxed); }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override;

 private:
  std::shared_ptr<Faults> faults_;
};

// An Env that does its file I/O through `fs` and everything else (threads, clock) through
// rocksdb::Env::Default(). Pass it as RocksOptions::env; keep it alive while a database uses it.
std::unique_ptr<rocksdb::Env> NewFaultInjectionEnv(const std::shared_ptr<FaultInjectionFs>& fs);

}  // namespace synod::storage
