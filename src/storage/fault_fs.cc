#include "storage/fault_fs.h"

#include <utility>

namespace synod::storage {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// The error of a refused write: what ENOSPC looks like through RocksDB, marked as injected so
// that nobody mistakes a test's fault for a real disk.
IOStatus Refuse(FaultInjectionFs::Faults& faults) {
  faults.injected.fetch_add(1, std::memory_order_relaxed);
  return IOStatus::IOError("injected: No space left on device");
}

bool Failing(const FaultInjectionFs::Faults& faults) {
  return faults.fail_writes.load(std::memory_order_acquire);
}

// A writable file whose writes and syncs fail while the shared flag is set.
class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> target,
                    std::shared_ptr<FaultInjectionFs::Faults> faults)
      : FSWritableFileOwnerWrapper(std::move(target)), faults_(std::move(faults)) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options, info, dbg);
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    if (Failing(*faults_)) return Refuse(*faults_);
    return FSWritableFileOwnerWrapper::RangeSync(offset, nbytes, options, dbg);
  }

 private:
  // Shared, so that a file the database still holds never outlives the flag it reads.
  const std::shared_ptr<FaultInjectionFs::Faults> faults_;
};

}  // namespace

FaultInjectionFs::FaultInjectionFs()
    : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()),
      faults_(std::make_shared<Faults>()) {}

IOStatus FaultInjectionFs::NewWritableFile(const std::string& fname,
                                           const rocksdb::FileOptions& opts,
                                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                                           IODebugContext* dbg) {
  if (Failing(*faults_)) return Refuse(*faults_);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (s.ok()) *result = std::make_unique<FaultWritableFile>(std::move(file), faults_);
  return s;
}

IOStatus FaultInjectionFs::ReopenWritableFile(const std::string& fname,
                                              const rocksdb::FileOptions& opts,
                                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                                              IODebugContext* dbg) {
  if (Failing(*faults_)) return Refuse(*faults_);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (s.ok()) *result = std::make_unique<FaultWritableFile>(std::move(file), faults_);
  return s;
}

IOStatus FaultInjectionFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                             const rocksdb::FileOptions& opts,
                                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                                             IODebugContext* dbg) {
  if (Failing(*faults_)) return Refuse(*faults_);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReuseWritableFile(fname, old_fname, opts, &file, dbg);
  if (s.ok()) *result = std::make_unique<FaultWritableFile>(std::move(file), faults_);
  return s;
}

IOStatus FaultInjectionFs::NewRandomRWFile(const std::string& fname,
                                           const rocksdb::FileOptions& opts,
                                           std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                           IODebugContext* dbg) {
  // RocksDB uses these only for rare in-place updates; refusing to open one is enough.
  if (Failing(*faults_)) return Refuse(*faults_);
  return target()->NewRandomRWFile(fname, opts, result, dbg);
}

std::unique_ptr<rocksdb::Env> NewFaultInjectionEnv(const std::shared_ptr<FaultInjectionFs>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace synod::storage
