// Test helpers shared by the GroupStorage test files: a temporary directory, opening a
// GroupStorage that must succeed, log entries and a hard state. Test-only (included by *_test.cc
// files).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "storage/fault_fs.h"
#include "storage/group_storage.h"

namespace synod::storage::testing {

inline constexpr uint64_t kCluster = 0xC1u;

// Entries first..last of `term`, entry i carrying "e<i>".
inline std::vector<raft::Entry> Ents(uint64_t term, uint64_t first, uint64_t last) {
  std::vector<raft::Entry> out;
  for (uint64_t i = first; i <= last; ++i) {
    raft::Entry e;
    e.term = Term(term);
    e.index = LogIndex(i);
    e.data = "e" + std::to_string(i);
    out.push_back(std::move(e));
  }
  return out;
}

// Term 1, voted for node 1, committed up to `commit`.
inline raft::HardState HS(uint64_t commit) {
  return raft::HardState{Term(1), NodeId(1), LogIndex(commit)};
}

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
