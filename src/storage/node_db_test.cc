// NodeDb: many groups' GroupStorages in one database, the node-wide write, node-wide failure.

#include "storage/node_db.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/slot.h"
#include "storage/group_storage.h"
#include "storage/raft.pb.h"
#include "storage/rocks_format.h"
#include "storage/storage_test_util.h"

namespace synod::storage {
namespace {

using testing::FaultyDisk;
using testing::kCluster;
using testing::TempDir;

constexpr GroupId kLeft{7};
constexpr GroupId kRight{9};
constexpr GroupId kMeta{1};
const StateSpan kLeftSpan = StateSpan::Slots(0, 8191);
const StateSpan kRightSpan = StateSpan::Slots(8192, kSlotCount - 1);

std::vector<raft::Entry> Ents(uint64_t term, uint64_t first, uint64_t last, std::string tag) {
  std::vector<raft::Entry> out;
  for (uint64_t i = first; i <= last; ++i) {
    raft::Entry e;
    e.term = Term(term);
    e.index = LogIndex(i);
    e.data = tag + std::to_string(i);
    out.push_back(std::move(e));
  }
  return out;
}

raft::HardState HS(uint64_t commit) {
  return raft::HardState{Term(1), NodeId(1), LogIndex(commit)};
}

// A key whose slot lies in [first, last], found by counting: "k0", "k1", ...
std::string KeyIn(uint16_t first, uint16_t last, int skip = 0) {
  for (int i = 0;; ++i) {
    std::string k = "k" + std::to_string(i);
    const uint16_t slot = KeySlot(k);
    if (slot >= first && slot <= last && skip-- == 0) return k;
  }
}

StateWrites Writes(uint64_t applied, std::vector<std::pair<std::string, std::string>> kv,
                   bool reset = false) {
  StateWrites w;
  w.reset = reset;
  for (auto& [k, v] : kv) w.data.emplace_back(k, v);
  w.sessions.emplace_back(applied, "session" + std::to_string(applied));
  w.applied = LogIndex(applied);
  return w;
}

std::map<std::string, std::string> Data(const GroupStorage& r) {
  std::map<std::string, std::string> out;
  Status s = r.ForEachState(
      [&](std::string_view k, std::string_view v) {
        out.emplace(k, v);
        return Status::Ok();
      },
      [](uint64_t, std::string_view) { return Status::Ok(); });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

std::unique_ptr<GroupStorage> MustOpenGroup(NodeDb* db, GroupId g, StateSpan span) {
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(db, g, span);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

// Every test runs on both engines: RocksDB in a temporary directory, and the in-memory engine
// the simulator uses; a "reopen" opens a new NodeDb on the same directory or engine.
class NodeDbTest : public ::testing::TestWithParam<bool> {
 protected:
  bool mem() const { return GetParam(); }
  std::unique_ptr<NodeDb> MustOpenDb() {
    Result<std::unique_ptr<NodeDb>> r = mem() ? NodeDb::Open(&engine_, "memory", kCluster)
                                              : NodeDb::Open(tmp_.db(), kCluster, disk_.opts);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }
  // A database with the two slot-span groups open (groups close before the database).
  struct TwoGroups {
    std::unique_ptr<NodeDb> db;
    std::unique_ptr<GroupStorage> left;
    std::unique_ptr<GroupStorage> right;
    bool ok() const { return db && left && right; }
  };
  TwoGroups OpenTwoGroups() {
    TwoGroups t;
    t.db = MustOpenDb();
    if (!t.db) return t;
    t.left = MustOpenGroup(t.db.get(), kLeft, kLeftSpan);
    t.right = MustOpenGroup(t.db.get(), kRight, kRightSpan);
    return t;
  }
  void FailWrites(bool fail) {
    if (mem()) {
      engine_.SetFailWrites(fail);
    } else {
      disk_.fs->SetFailWrites(fail);
    }
  }

 private:
  TempDir tmp_;
  FaultyDisk disk_;
  MemEngine engine_;
};

INSTANTIATE_TEST_SUITE_P(Engines, NodeDbTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Mem" : "Rocks";
                         });

TEST_P(NodeDbTest, GroupsShareOneWriteAndKeepTheirOwnLogs) {
  const std::string a = KeyIn(0, 8191), b = KeyIn(8192, kSlotCount - 1);
  {
    auto db = MustOpenDb();
    ASSERT_NE(db, nullptr);
    EXPECT_TRUE(db->created());
    auto left = MustOpenGroup(db.get(), kLeft, kLeftSpan);
    auto right = MustOpenGroup(db.get(), kRight, kRightSpan);
    auto meta = MustOpenGroup(db.get(), kMeta, StateSpan::Group());
    ASSERT_TRUE(left && right && meta);
    EXPECT_TRUE(left->recovery_stats().created);
    ASSERT_TRUE(left->Save(std::nullopt, Ents(1, 1, 4, "L"), HS(4)).ok());
    ASSERT_TRUE(right->Save(std::nullopt, Ents(1, 1, 2, "R"), HS(2)).ok());
    left->StageState(Writes(3, {{a, "left"}}));
    right->StageState(Writes(2, {{b, "right"}}));
    ASSERT_TRUE(meta->Save(std::nullopt, Ents(1, 1, 1, "M"), HS(1)).ok());
    meta->StageState(Writes(1, {{a, "meta's own"}}));  // the same key, in another span
    EXPECT_TRUE(db->has_staged());

    // One node write carries all three groups.
    NodeDb::Write w = db->TakeWrite();
    EXPECT_EQ(w.groups, 3u);
    EXPECT_EQ(w.saves, 3u);
    EXPECT_FALSE(db->has_staged());
    EXPECT_EQ(left->pending_saves(), 0u);
    ASSERT_TRUE(db->WriteTaken(w).ok());
    db->OnWritten(Status::Ok());
    EXPECT_EQ(db->writes_outstanding(), 0u);
  }
  auto db = MustOpenDb();
  ASSERT_NE(db, nullptr);
  EXPECT_FALSE(db->created());
  Result<std::vector<GroupId>> groups = db->StoredGroups();
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  EXPECT_EQ(*groups, (std::vector<GroupId>{kMeta, kLeft, kRight}));
  auto left = MustOpenGroup(db.get(), kLeft, kLeftSpan);
  auto right = MustOpenGroup(db.get(), kRight, kRightSpan);
  auto meta = MustOpenGroup(db.get(), kMeta, StateSpan::Group());
  ASSERT_TRUE(left && right && meta);
  EXPECT_FALSE(left->recovery_stats().created);
  EXPECT_EQ(left->raft_storage().LastIndex(), LogIndex(4));
  EXPECT_EQ(right->raft_storage().LastIndex(), LogIndex(2));
  EXPECT_EQ(left->raft_storage().Entries(LogIndex(1), LogIndex(2), UINT64_MAX)->at(0).data, "L1");
  EXPECT_EQ(right->raft_storage().Entries(LogIndex(1), LogIndex(2), UINT64_MAX)->at(0).data, "R1");
  EXPECT_EQ(left->state_applied(), LogIndex(3));
  EXPECT_EQ(right->state_applied(), LogIndex(2));
  EXPECT_EQ(Data(*left), (std::map<std::string, std::string>{{a, "left"}}));
  EXPECT_EQ(Data(*right), (std::map<std::string, std::string>{{b, "right"}}));
  EXPECT_EQ(Data(*meta), (std::map<std::string, std::string>{{a, "meta's own"}}));
  // A group never written to starts empty.
  auto fresh = MustOpenGroup(db.get(), GroupId(42), StateSpan::Slots(100, 200));
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(fresh->recovery_stats().created);
  EXPECT_EQ(fresh->raft_storage().LastIndex(), LogIndex(0));
  EXPECT_TRUE(Data(*fresh).empty());
}

TEST_P(NodeDbTest, ResetReplacesOnlyTheGroupsOwnSlotsAndSessions) {
  const std::string a1 = KeyIn(0, 8191), a2 = KeyIn(0, 8191, 1);
  const std::string b = KeyIn(8192, kSlotCount - 1);
  TwoGroups t = OpenTwoGroups();
  ASSERT_TRUE(t.ok());
  NodeDb* db = t.db.get();
  GroupStorage* left = t.left.get();
  GroupStorage* right = t.right.get();
  ASSERT_TRUE(left->Save(std::nullopt, Ents(1, 1, 5, "L"), HS(5)).ok());
  ASSERT_TRUE(right->Save(std::nullopt, Ents(1, 1, 5, "R"), HS(5)).ok());
  left->StageState(Writes(2, {{a1, "old"}}));
  right->StageState(Writes(2, {{b, "kept"}}));
  ASSERT_TRUE(db->Sync().ok());
  // A snapshot replaced the left group's state: its old keys and sessions go, the right's stay.
  left->StageState(Writes(5, {{a2, "new"}}, /*reset=*/true));
  ASSERT_TRUE(left->Sync().ok());
  EXPECT_EQ(Data(*left), (std::map<std::string, std::string>{{a2, "new"}}));
  EXPECT_EQ(Data(*right), (std::map<std::string, std::string>{{b, "kept"}}));
  std::vector<uint64_t> sessions;
  ASSERT_TRUE(right
                  ->ForEachState([](std::string_view, std::string_view) { return Status::Ok(); },
                                 [&](uint64_t id, std::string_view) {
                                   sessions.push_back(id);
                                   return Status::Ok();
                                 })
                  .ok());
  EXPECT_EQ(sessions, std::vector<uint64_t>{2});
}

TEST_P(NodeDbTest, AStagedCompactionCompletesWithTheNodeWriteThatCarriesIt) {
  TwoGroups t = OpenTwoGroups();
  ASSERT_TRUE(t.ok());
  NodeDb* db = t.db.get();
  GroupStorage* left = t.left.get();
  GroupStorage* right = t.right.get();
  ASSERT_TRUE(left->Save(std::nullopt, Ents(1, 1, 10, "L"), HS(10)).ok());
  ASSERT_TRUE(db->Sync().ok());
  ASSERT_TRUE(left->StageCompact(LogIndex(6), raft::ConfState{}).ok());
  // Another group's write takes everything staged, the compaction included.
  ASSERT_TRUE(right->Save(std::nullopt, Ents(1, 1, 1, "R"), HS(1)).ok());
  NodeDb::Write w = right->TakePending();
  EXPECT_EQ(w.groups, 2u);
  EXPECT_EQ(left->raft_storage().FirstIndex(), LogIndex(1));  // not before it is durable
  ASSERT_TRUE(right->WritePending(w).ok());
  right->OnPendingWritten(Status::Ok());
  EXPECT_EQ(left->raft_storage().FirstIndex(), LogIndex(7));
  EXPECT_EQ(left->snapshot().meta.index, LogIndex(6));
}

TEST_P(NodeDbTest, AFailedWriteFailsEveryGroup) {
  TwoGroups t = OpenTwoGroups();
  ASSERT_TRUE(t.ok());
  NodeDb* db = t.db.get();
  GroupStorage* left = t.left.get();
  GroupStorage* right = t.right.get();
  ASSERT_TRUE(left->Save(std::nullopt, Ents(1, 1, 2, "L"), HS(2)).ok());
  FailWrites(true);
  EXPECT_EQ(left->Sync().code(), Code::kIoError);
  FailWrites(false);
  // The right group staged nothing in that write, and is failed all the same.
  EXPECT_EQ(right->failure().code(), Code::kIoError);
  EXPECT_EQ(right->Save(std::nullopt, Ents(1, 1, 1, "R"), HS(1)).code(), Code::kIoError);
  EXPECT_EQ(db->PutMeta("x", "y").code(), Code::kIoError);
  NodeDb::Write w = db->TakeWrite();
  EXPECT_EQ(db->WriteTaken(w).code(), Code::kIoError);
  db->OnWritten(w.refused);
}

TEST_P(NodeDbTest, BadGroupsAndSpansAreRefused) {
  auto db = MustOpenDb();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(GroupStorage::Open(db.get(), kNoGroup, kLeftSpan).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(GroupStorage::Open(db.get(), kLeft, StateSpan::Slots(9, 8)).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(GroupStorage::Open(db.get(), kLeft, StateSpan::Slots(0, kSlotCount)).status().code(),
            Code::kInvalidArgument);
}

TEST(NodeDbFormatTest, ADatabaseOfAnEarlierFormatIsRefusedWithAClearError) {
  for (uint32_t version : {1u, 2u}) {
    TempDir tmp;
    {
      rocksdb::Options o;
      o.create_if_missing = true;
      rocksdb::DB* raw = nullptr;
      ASSERT_TRUE(rocksdb::DB::Open(o, tmp.db(), &raw).ok());
      std::unique_ptr<rocksdb::DB> db(raw);
      pb::WalHeader h;
      h.set_magic(0x4244524F444F4E59ull);
      h.set_version(version);
      h.set_cluster_id(kCluster);
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "C", format::FrameMessage("C", h)).ok());
      ASSERT_TRUE(db->Close().ok());
    }
    Result<std::unique_ptr<NodeDb>> r = NodeDb::Open(tmp.db(), kCluster);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
    EXPECT_NE(r.status().message().find("format version " + std::to_string(version)),
              std::string::npos)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find("new, empty data directory"), std::string::npos);
  }
}

}  // namespace
}  // namespace synod::storage

namespace synod::storage {
namespace {

// The two engines agree: the same random batches of puts, deletes and range deletions give the
// same records, the same scans and the same first keys.
TEST(EngineTest, MemEngineBehavesAsRocksDb) {
  TempDir tmp;
  Result<std::unique_ptr<RocksEngine>> rocks = RocksEngine::Open(tmp.db());
  ASSERT_TRUE(rocks.ok()) << rocks.status().ToString();
  MemEngine mem;
  uint64_t x = 42;
  const auto next = [&x](uint64_t n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return (x >> 33) % n;
  };
  const auto key = [&] {
    return std::string(1, static_cast<char>('a' + next(6))) + std::to_string(next(30));
  };
  for (int round = 0; round < 300; ++round) {
    rocksdb::WriteBatch batch;
    for (uint64_t i = 0, n = 1 + next(8); i < n; ++i) {
      const uint64_t op = next(10);
      if (op < 6) {
        ASSERT_TRUE(batch.Put(key(), std::string(next(20), 'v') + std::to_string(round)).ok());
      } else if (op < 9) {
        ASSERT_TRUE(batch.Delete(key()).ok());
      } else {
        std::string a = key(), b = key();
        if (b < a) std::swap(a, b);
        ASSERT_TRUE(batch.DeleteRange(a, b).ok());
      }
    }
    rocksdb::WriteBatch copy(batch.Data());
    ASSERT_TRUE((*rocks)->Write(&batch).ok());
    ASSERT_TRUE(mem.Write(&copy).ok());
    if (round % 25 != 0) continue;
    std::vector<std::pair<std::string, std::string>> got[2];
    for (int e = 0; e < 2; ++e) {
      const Engine& engine = e == 0 ? static_cast<const Engine&>(**rocks) : mem;
      ASSERT_TRUE(engine
                      .Scan({{"b", "d5",
                              [&](std::string_view k, std::string_view v) {
                                got[e].emplace_back(k, v);
                                return Status::Ok();
                              }},
                             {"e", "z",
                              [&](std::string_view k, std::string_view v) {
                                got[e].emplace_back(k, v);
                                return Status::Ok();
                              }}})
                      .ok());
    }
    EXPECT_EQ(got[0], got[1]) << "round " << round;
    for (const char* from : {"", "b", "c3", "f", "zz"}) {
      EXPECT_EQ((*rocks)->FirstKey(from, "z").value(), mem.FirstKey(from, "z").value()) << from;
    }
    const std::string k = key();
    EXPECT_EQ((*rocks)->Get(k, "k").value(), mem.Get(k, "k").value()) << k;
  }
}

TEST(EngineTest, MemEngineFailsWritesWhenToldAndAppliesNothing) {
  MemEngine mem;
  rocksdb::WriteBatch batch;
  ASSERT_TRUE(batch.Put("a", "1").ok());
  mem.SetFailWrites(true);
  EXPECT_EQ(mem.Write(&batch).code(), Code::kIoError);
  EXPECT_TRUE(mem.records().empty());
  mem.SetFailWrites(false);
  EXPECT_TRUE(mem.Write(&batch).ok());
  EXPECT_EQ(mem.records().size(), 1u);
  EXPECT_EQ(mem.writes(), 1u);
}

}  // namespace
}  // namespace synod::storage
