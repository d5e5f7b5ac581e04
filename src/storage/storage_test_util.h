// Test helpers shared by the GroupStorage test files: a temporary directory and opening a
// GroupStorage that must succeed. Test-only (included by *_test.cc files).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/assert.h"
#include "storage/fault_fs.h"
#include "storage/group_storage.h"

namespace synod::storage::testing {

inline constexpr uint64_t kCluster = 0xC1u;

// A fresh directory under the test temp dir, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "group_storage_XXXXXX";
    const char* made = mkdtemp(tmpl.data());
    SYNOD_ASSERT_MSG(made != nullptr, "mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The database directory (created by Open).
  std::string db() const { return path_ + "/db"; }

 private:
  std::string path_;
};

// Opens the storage of cluster kCluster in `dir`, failing the test (and returning null) if it
// does not open.
inline std::unique_ptr<GroupStorage> MustOpen(const std::string& dir, RocksOptions opts = {}) {
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(dir, kCluster, opts);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// A disk whose writes can be made to fail ("No space left on device"): open with `opts`, then
// fs->SetFailWrites(true).
struct FaultyDisk {
  std::shared_ptr<FaultInjectionFs> fs = std::make_shared<FaultInjectionFs>();
  std::unique_ptr<rocksdb::Env> env = NewFaultInjectionEnv(fs);
  RocksOptions opts = [this] {
    RocksOptions o;
    o.env = env.get();
    return o;
  }();
};

}  // namespace synod::storage::testing
