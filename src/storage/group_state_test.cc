// GroupStorage's persisted state machine: StageState, state_applied and ForEachState.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "storage/fault_fs.h"
#include "storage/group_storage.h"
#include "storage/storage_test_util.h"

namespace synod::storage {
namespace {

using testing::Ents;
using testing::FaultyDisk;
using testing::HS;
using testing::kCluster;
using testing::MustOpen;
using testing::TempDir;

struct Stored {
  std::map<std::string, std::string> data;
  std::map<uint64_t, std::string> sessions;
  bool operator==(const Stored&) const = default;
};

Result<Stored> ReadState(const GroupStorage& r) {
  Stored s;
  Status st = r.ForEachState(
      [&](std::string_view k, std::string_view v) {
        EXPECT_TRUE(s.data.emplace(k, v).second) << "key twice: " << k;
        return Status::Ok();
      },
      [&](uint64_t id, std::string_view v) {
        EXPECT_TRUE(s.sessions.emplace(id, v).second) << "session twice: " << id;
        return Status::Ok();
      });
  if (!st.ok()) return st;
  return s;
}

StateWrites Writes(uint64_t applied,
                   std::vector<std::pair<std::string, std::optional<std::string>>> d,
                   std::vector<std::pair<uint64_t, std::optional<std::string>>> s = {},
                   bool reset = false) {
  StateWrites w;
  w.reset = reset;
  w.data = std::move(d);
  w.sessions = std::move(s);
  w.applied = LogIndex(applied);
  return w;
}

class RawDb {
 public:
  explicit RawDb(const std::string& dir) {
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), dir, &db);
    SYNOD_ASSERT_MSG(s.ok(), "opening the raw database failed");
    db_.reset(db);
  }
  std::string Get(const std::string& key) {
    std::string value;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), key, &value).ok()) << key;
    return value;
  }
  void Put(const std::string& key, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), key, value).ok());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

TEST(GroupStateTest, StagedStateSurvivesAReopen) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    EXPECT_TRUE(r->persists_state());
    EXPECT_EQ(r->state_applied(), LogIndex(0));
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 5), HS(5)).ok());
    // Keys are bytes: empty, binary, and one that looks like another record's key.
    r->StageState(Writes(
        3,
        {{"a", "1"}, {"", "empty key"}, {std::string("\0\xff", 2), "bin"}, {"gone", std::nullopt}},
        {{7, "s7"}, {uint64_t{1} << 40, "big"}}));
    r->StageState(Writes(5, {{"b", std::string("\0", 1)}, {"a", "2"}}, {{7, std::nullopt}}));
    EXPECT_EQ(r->state_applied(), LogIndex(5));
    ASSERT_TRUE(r->Sync().ok());
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state_applied(), LogIndex(5));
  Result<Stored> got = ReadState(*r);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  Stored want;
  want.data = {{"a", "2"},
               {"", "empty key"},
               {std::string("\0\xff", 2), "bin"},
               {"b", std::string("\0", 1)}};
  want.sessions = {{uint64_t{1} << 40, "big"}};
  EXPECT_EQ(*got, want);
  // The log is untouched by the state records stored beside it.
  EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(5));
}

TEST(GroupStateTest, UnsyncedStateIsNotRead) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 2), HS(2)).ok());
    r->StageState(Writes(2, {{"k", "v"}}));
    Result<Stored> before = ReadState(*r);
    ASSERT_TRUE(before.ok());
    EXPECT_TRUE(before->data.empty());  // staged, not written
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state_applied(), LogIndex(0));
  EXPECT_TRUE(ReadState(*r)->data.empty());
}

TEST(GroupStateTest, ResetDeletesEveryOldKeyAndSession) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 9), HS(9)).ok());
    r->StageState(Writes(4, {{"old1", "x"}, {"old2", "y"}, {"kept", "z"}}, {{1, "a"}, {2, "b"}}));
    ASSERT_TRUE(r->Sync().ok());
    r->StageState(Writes(9, {{"kept", "new"}, {"n", "1"}}, {{3, "c"}}, /*reset=*/true));
    ASSERT_TRUE(r->Sync().ok());
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state_applied(), LogIndex(9));
  Result<Stored> got = ReadState(*r);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->data, (std::map<std::string, std::string>{{"kept", "new"}, {"n", "1"}}));
  EXPECT_EQ(got->sessions, (std::map<uint64_t, std::string>{{3, "c"}}));
  // The snapshot, hard state and log around the state's key ranges are untouched.
  EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(9));
  EXPECT_EQ(r->hard_state().commit, LogIndex(9));
}

TEST(GroupStateTest, CompactWritesTheStagedStateWithIt) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 6), HS(6)).ok());
    ASSERT_TRUE(r->Sync().ok());
    r->StageState(Writes(6, {{"k", "v"}}));
    ASSERT_TRUE(
        r->Compact(LogIndex(6), raft::ConfState{{NodeId(1)}, {}, {}, {}, false}, "img").ok());
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->snapshot().meta.index, LogIndex(6));
  EXPECT_EQ(r->state_applied(), LogIndex(6));
  EXPECT_EQ(ReadState(*r)->data.at("k"), "v");
}

// The state and the Saves staged with it are one write: after a failed write, a reopen finds
// both or neither.
TEST(GroupStateTest, StateAndSaveAreWrittenAtomically) {
  TempDir tmp;
  FaultyDisk disk;
  FaultInjectionFs* fs = disk.fs.get();
  const RocksOptions& opts = disk.opts;
  {
    auto r = MustOpen(tmp.db(), opts);
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 3), HS(3)).ok());
    r->StageState(Writes(3, {{"k", "1"}}));
    ASSERT_TRUE(r->Sync().ok());

    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 4, 6), HS(6)).ok());
    r->StageState(Writes(6, {{"k", "2"}, {"j", "x"}}));
    fs->SetFailWrites(true);
    EXPECT_EQ(r->Sync().code(), Code::kIoError);
    fs->SetFailWrites(false);
    // A failed storage stages nothing more.
    r->StageState(Writes(7, {{"k", "3"}}));
    EXPECT_EQ(r->Sync().code(), Code::kIoError);
  }
  auto r = MustOpen(tmp.db(), opts);
  ASSERT_NE(r, nullptr);
  Result<Stored> got = ReadState(*r);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  if (r->raft_storage().LastIndex() == LogIndex(6)) {
    EXPECT_EQ(r->state_applied(), LogIndex(6));
    EXPECT_EQ(got->data, (std::map<std::string, std::string>{{"j", "x"}, {"k", "2"}}));
  } else {
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(3));
    EXPECT_EQ(r->hard_state().commit, LogIndex(3));
    EXPECT_EQ(r->state_applied(), LogIndex(3));
    EXPECT_EQ(got->data, (std::map<std::string, std::string>{{"k", "1"}}));
  }
}

TEST(GroupStateTest, FlippedByteInAValueIsCorruptionNamingTheKey) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 2), HS(2)).ok());
    r->StageState(Writes(2, {{"alpha", "first value"}, {"beta", "second value"}}, {{9, "sess"}}));
    ASSERT_TRUE(r->Sync().ok());
  }
  {
    RawDb raw(tmp.db());
    std::string v = raw.Get(GroupStorage::SlotDataKey("beta"));
    v[v.size() - 2] ^= 0x01;
    raw.Put(GroupStorage::SlotDataKey("beta"), v);
  }
  auto r = MustOpen(tmp.db());  // Open reads only the applied index
  ASSERT_NE(r, nullptr);
  Result<Stored> got = ReadState(*r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kCorruption);
  EXPECT_NE(got.status().message().find("'beta' failed its checksum"), std::string::npos)
      << got.status().ToString();
}

TEST(GroupStateTest, ValueMovedToAnotherKeyIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 2), HS(2)).ok());
    r->StageState(Writes(2, {{"a", "1"}, {"b", "2"}}));
    ASSERT_TRUE(r->Sync().ok());
  }
  {
    RawDb raw(tmp.db());
    raw.Put(GroupStorage::SlotDataKey("b"), raw.Get(GroupStorage::SlotDataKey("a")));
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(ReadState(*r).status().code(), Code::kCorruption);
}

TEST(GroupStateTest, AppliedIndexBeyondTheCommitIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 4), HS(2)).ok());
    r->StageState(Writes(4, {{"a", "1"}}));  // a programmer error the reopen must catch
    ASSERT_TRUE(r->Sync().ok());
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
}

TEST(GroupStateTest, FlippedByteInTheAppliedIndexIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Save(std::nullopt, Ents(1, 1, 2), HS(2)).ok());
    r->StageState(Writes(2, {{"a", "1"}}));
    ASSERT_TRUE(r->Sync().ok());
  }
  {
    RawDb raw(tmp.db());
    std::string v = raw.Get(GroupStorage::GroupKey(GroupStorage::kStandaloneGroup, 'A'));
    v.back() ^= 0x10;
    raw.Put(GroupStorage::GroupKey(GroupStorage::kStandaloneGroup, 'A'), v);
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().ToString();
}

}  // namespace
}  // namespace synod::storage
