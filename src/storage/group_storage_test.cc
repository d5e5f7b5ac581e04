#include "storage/group_storage.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storage/fault_fs.h"
#include "storage/storage_test_util.h"

namespace synod::storage {
namespace {

using testing::FaultyDisk;
using testing::kCluster;
using testing::MustOpen;
using testing::TempDir;

raft::Entry E(uint64_t term, uint64_t index) {
  raft::Entry e;
  e.term = Term(term);
  e.index = LogIndex(index);
  e.data = "t" + std::to_string(term) + "i" + std::to_string(index);
  return e;
}

std::vector<raft::Entry> Ents(uint64_t term, uint64_t first, uint64_t last) {
  std::vector<raft::Entry> out;
  for (uint64_t i = first; i <= last; ++i) out.push_back(E(term, i));
  return out;
}

raft::HardState HS(uint64_t term, uint64_t vote, uint64_t commit) {
  return raft::HardState{Term(term), NodeId(vote), LogIndex(commit)};
}

raft::Snapshot Snap(uint64_t index, uint64_t term, std::string data) {
  raft::Snapshot s;
  s.meta.index = LogIndex(index);
  s.meta.term = Term(term);
  s.meta.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
  s.data = std::move(data);
  return s;
}

// Everything a reopen must reproduce.
struct LogState {
  LogIndex first;
  LogIndex last;
  std::vector<raft::Entry> entries;
  raft::HardState hs;
  raft::Snapshot snap;
  bool operator==(const LogState&) const = default;
};

LogState StateOf(const raft::Storage& s, const raft::HardState& hs, const raft::Snapshot& snap) {
  LogState st{s.FirstIndex(), s.LastIndex(), {}, hs, snap};
  if (st.first <= st.last) {
    st.entries = *s.Entries(st.first, st.last + 1, std::numeric_limits<uint64_t>::max());
  }
  EXPECT_EQ(s.GetSnapshot().value(), snap);
  return st;
}

LogState StateOf(const GroupStorage& r) {
  return StateOf(r.raft_storage(), r.hard_state(), r.snapshot());
}

void MustSave(GroupStorage* r, const std::vector<raft::Entry>& ents,
              const std::optional<raft::HardState>& hs = std::nullopt) {
  const Status st = r->Save(std::nullopt, ents, hs);
  ASSERT_TRUE(st.ok()) << st.ToString();
}

void MustSync(GroupStorage* r) {
  const Status st = r->Sync();
  ASSERT_TRUE(st.ok()) << st.ToString();
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// A raw handle on the database, for damaging it behind the storage's back. REQUIRES: the
// GroupStorage on `dir` is closed (RocksDB locks its directory).
class RawDb {
 public:
  explicit RawDb(const std::string& dir) {
    rocksdb::Options options;
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
    SYNOD_ASSERT_MSG(s.ok(), "opening the raw database failed");
    db_.reset(db);
  }
  ~RawDb() {
    const rocksdb::Status s = db_->Close();
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  std::string Get(const std::string& key) {
    std::string value;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return value;
  }
  void Put(const std::string& key, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), key, value).ok());
  }
  void Delete(const std::string& key) {
    EXPECT_TRUE(db_->Delete(rocksdb::WriteOptions(), key).ok());
  }
  void DeleteRange(const std::string& begin, const std::string& end) {
    EXPECT_TRUE(
        db_->DeleteRange(rocksdb::WriteOptions(), db_->DefaultColumnFamily(), begin, end).ok());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

TEST(GroupStorageTest, EmptyDirectoryIsCreated) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    EXPECT_TRUE(r->recovery_stats().created);
    EXPECT_EQ(r->cluster_id(), kCluster);
    EXPECT_EQ(r->raft_storage().FirstIndex(), LogIndex(1));
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(0));
    EXPECT_TRUE(r->snapshot().IsEmpty());
    EXPECT_TRUE(r->failure().ok());
    EXPECT_GT(r->disk_bytes(), 0u);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->recovery_stats().created);
  EXPECT_EQ(r->recovery_stats().entries_loaded, 0u);
}

TEST(GroupStorageTest, SaveSyncReopenRoundTrip) {
  TempDir tmp;
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    std::vector<raft::Entry> ents = Ents(1, 1, 5);
    ents[2].type = raft::EntryType::kConfChange;
    ents[3].data = std::string("\0\xff", 2);
    ents[4].data.clear();
    MustSave(r.get(), ents, HS(1, 2, 3));
    MustSave(r.get(), Ents(2, 4, 7), HS(2, 2, 6));  // conflicts with 4..5: truncates them
    MustSave(r.get(), {}, HS(3, 0, 6));
    EXPECT_EQ(r->pending_saves(), 3u);
    MustSync(r.get());
    EXPECT_EQ(r->pending_saves(), 0u);
    before = StateOf(*r);
    EXPECT_EQ(before.last, LogIndex(7));
    EXPECT_EQ(before.entries[3], E(2, 4));
    EXPECT_EQ(before.entries[2].type, raft::EntryType::kConfChange);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->recovery_stats().entries_loaded, 7u);
  auto [hs, cs] = *r->raft_storage().InitialState();
  EXPECT_EQ(hs, HS(3, 0, 6));
}

TEST(GroupStorageTest, SyncWithNothingPendingIsOk) {
  TempDir tmp;
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  MustSync(r.get());
  MustSave(r.get(), {}, std::nullopt);  // an empty Save stages nothing
  MustSync(r.get());
  EXPECT_TRUE(r->failure().ok());
}

TEST(GroupStorageTest, UnsyncedSavesAreLostOnlyAsWholeSaves) {
  TempDir tmp;
  std::vector<LogState> allowed;  // the synced state, then the state after each later Save
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 5), HS(1, 1, 5));
    MustSync(r.get());
    allowed.push_back(StateOf(*r));
    MustSave(r.get(), Ents(1, 6, 9), HS(2, 1, 9));
    allowed.push_back(StateOf(*r));
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(9));  // served before the sync
    MustSave(r.get(), Ents(2, 8, 8), HS(2, 1, 8));
    allowed.push_back(StateOf(*r));
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  const LogState got = StateOf(*r);
  bool found = false;
  for (const LogState& s : allowed) found = found || s == got;
  EXPECT_TRUE(found) << "reopened at last index " << got.last << ", not a Save boundary";
}

TEST(GroupStorageTest, OverwrittenSuffixLeavesNoStaleEntries) {
  TempDir tmp;
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 4));
    MustSync(r.get());
    // Two Saves in one write: the first cuts 8..10 away, the second puts 8 back.
    MustSave(r.get(), Ents(2, 6, 7), HS(2, 1, 4));
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(7));
    MustSave(r.get(), Ents(2, 8, 8));
    MustSync(r.get());
    before = StateOf(*r);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(8));
  EXPECT_EQ(*r->raft_storage().TermAt(LogIndex(8)), Term(2));
  EXPECT_EQ(*r->raft_storage().TermAt(LogIndex(5)), Term(1));
}

TEST(GroupStorageTest, SnapshotSaveReplacesTheWholeLog) {
  TempDir tmp;
  const raft::Snapshot snap = Snap(20, 3, "image");
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 30), HS(1, 1, 5));
    MustSync(r.get());
    // Entries 21..30 of the old log must not survive the snapshot at 20 on disk either.
    ASSERT_TRUE(r->Save(snap, {}, HS(3, 1, 20)).ok());
    MustSync(r.get());
    before = StateOf(*r);
    EXPECT_EQ(before.first, LogIndex(21));
    EXPECT_EQ(before.last, LogIndex(20));
    EXPECT_EQ(before.snap, snap);
    EXPECT_EQ(r->Save(snap, {}, std::nullopt).code(), Code::kSnapshotOutOfDate);
  }
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(StateOf(*r), before);
    EXPECT_EQ(r->recovery_stats().stale_entries, 0u);
    // A newer snapshot with entries after it, in one Save.
    ASSERT_TRUE(r->Save(Snap(25, 4, "image2"), Ents(4, 26, 27), HS(4, 1, 26)).ok());
    MustSync(r.get());
    before = StateOf(*r);
    EXPECT_EQ(before.first, LogIndex(26));
    EXPECT_EQ(before.last, LogIndex(27));
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
}

TEST(GroupStorageTest, CompactThenReopen) {
  TempDir tmp;
  raft::ConfState cs;
  cs.voters = {NodeId(1), NodeId(2)};
  cs.learners = {NodeId(3)};
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 8));
    MustSync(r.get());
    EXPECT_EQ(r->Compact(LogIndex(9), cs, "img").code(), Code::kInvalidArgument);  // > commit
    ASSERT_TRUE(r->Compact(LogIndex(5), cs, "img").ok());
    EXPECT_EQ(r->Compact(LogIndex(5), cs, "img").code(), Code::kSnapshotOutOfDate);
    EXPECT_EQ(r->Compact(LogIndex(3), cs, "img").code(), Code::kSnapshotOutOfDate);
    before = StateOf(*r);
    EXPECT_EQ(before.first, LogIndex(6));
    EXPECT_EQ(before.last, LogIndex(10));
    EXPECT_EQ(before.snap.meta.index, LogIndex(5));
    EXPECT_EQ(before.snap.meta.term, Term(1));
    EXPECT_EQ(before.snap.meta.conf_state, cs);
    EXPECT_EQ(before.snap.data, "img");
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->recovery_stats().entries_loaded, 5u);
  EXPECT_EQ(*r->raft_storage().TermAt(LogIndex(5)), Term(1));
  EXPECT_EQ(r->raft_storage().TermAt(LogIndex(4)).status().code(), Code::kCompacted);
}

TEST(GroupStorageTest, CompactWritesPendingSavesFirst) {
  TempDir tmp;
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 6), HS(1, 1, 6));
    MustSave(r.get(), Ents(1, 7, 8), HS(1, 1, 8));  // neither synced
    ASSERT_TRUE(r->Compact(LogIndex(7), raft::ConfState{}, "img").ok());
    EXPECT_EQ(r->pending_saves(), 0u);
    before = StateOf(*r);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(8));
  EXPECT_EQ(r->hard_state(), HS(1, 1, 8));
}

TEST(GroupStorageTest, StagedCompactionTakesEffectWithTheNextWrite) {
  TempDir tmp;
  raft::ConfState cs;
  cs.voters = {NodeId(1), NodeId(2), NodeId(3)};
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 8));
    MustSync(r.get());
    EXPECT_EQ(r->StageCompact(LogIndex(9), cs).code(), Code::kInvalidArgument);  // > commit
    ASSERT_TRUE(r->StageCompact(LogIndex(6), cs).ok());
    // Staged only: memory and the snapshot are untouched until a write carries it...
    EXPECT_EQ(r->snapshot().meta.index, LogIndex(0));
    EXPECT_EQ(*r->raft_storage().TermAt(LogIndex(3)), Term(1));
    // ...and a second compaction must go beyond the staged one.
    EXPECT_EQ(r->StageCompact(LogIndex(5), cs).code(), Code::kSnapshotOutOfDate);
    MustSave(r.get(), Ents(1, 11, 12), HS(1, 1, 10));
    GroupStorage::PendingWrite w = r->TakePending();
    EXPECT_EQ(r->StageCompact(LogIndex(6), cs).code(), Code::kSnapshotOutOfDate);  // in flight
    ASSERT_TRUE(r->WritePending(w).ok());
    EXPECT_EQ(r->snapshot().meta.index, LogIndex(0));
    r->OnPendingWritten(Status::Ok());
    EXPECT_EQ(r->snapshot().meta.index, LogIndex(6));
    EXPECT_EQ(r->snapshot().meta.conf_state, cs);
    EXPECT_EQ(r->raft_storage().TermAt(LogIndex(5)).status().code(), Code::kCompacted);
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(12));
    before = StateOf(*r);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->recovery_stats().entries_loaded, 6u);
}

TEST(GroupStorageTest, StagedCompactionIsDroppedWithAFailedWrite) {
  TempDir tmp;
  FaultyDisk disk;
  FaultInjectionFs* fs = disk.fs.get();
  const RocksOptions& opts = disk.opts;
  {
    auto r = MustOpen(tmp.db(), opts);
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 10));
    MustSync(r.get());
    ASSERT_TRUE(r->StageCompact(LogIndex(8), raft::ConfState{}).ok());
    fs->SetFailWrites(true);
    EXPECT_EQ(r->Sync().code(), Code::kIoError);
    EXPECT_EQ(r->snapshot().meta.index, LogIndex(0));  // memory never runs ahead of the disk
    EXPECT_EQ(*r->raft_storage().TermAt(LogIndex(2)), Term(1));
    EXPECT_EQ(r->StageCompact(LogIndex(9), raft::ConfState{}).code(), Code::kIoError);
    fs->SetFailWrites(false);
  }
  auto r = MustOpen(tmp.db(), opts);
  ASSERT_NE(r, nullptr);
  // The failed write was atomic: wholly there or wholly absent.
  const LogIndex snap = r->snapshot().meta.index;
  EXPECT_TRUE(snap == LogIndex(0) || snap == LogIndex(8)) << snap.value();
  EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(10));
}

TEST(GroupStorageTest, InvalidSavesChangeNothing) {
  TempDir tmp;
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->Save(Snap(5, 1, "s"), Ents(1, 6, 8), HS(1, 1, 7)).ok());
  const LogState before = StateOf(*r);
  const uint64_t pending = r->pending_saves();
  EXPECT_EQ(r->Save(Snap(5, 2, "s"), {}, std::nullopt).code(), Code::kSnapshotOutOfDate);
  EXPECT_EQ(r->Save(Snap(4, 2, "s"), {}, std::nullopt).code(), Code::kSnapshotOutOfDate);
  EXPECT_EQ(r->Save(std::nullopt, Ents(1, 10, 11), std::nullopt).code(),
            Code::kInvalidArgument);  // gap after 8
  std::vector<raft::Entry> holes = {E(1, 9), E(1, 11)};
  EXPECT_EQ(r->Save(std::nullopt, holes, std::nullopt).code(), Code::kInvalidArgument);
  EXPECT_EQ(r->Save(std::nullopt, Ents(1, 9, 9), HS(1, 1, 10)).code(), Code::kInvalidArgument);
  EXPECT_EQ(r->Save(std::nullopt, {}, HS(1, 1, 9)).code(), Code::kInvalidArgument);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->pending_saves(), pending);
  MustSync(r.get());
}

TEST(GroupStorageTest, EntriesBelowTheSnapshotAreIgnored) {
  TempDir tmp;
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 3), HS(1, 1, 3));
    MustSync(r.get());
    // Already in the snapshot: ignored, in memory and on disk.
    ASSERT_TRUE(r->Save(Snap(10, 2, "s"), {}, HS(2, 1, 10)).ok());
    MustSave(r.get(), Ents(2, 8, 10));
    MustSave(r.get(), Ents(2, 9, 12), HS(2, 1, 12));
    MustSync(r.get());
    before = StateOf(*r);
    EXPECT_EQ(before.first, LogIndex(11));
    EXPECT_EQ(before.last, LogIndex(12));
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->recovery_stats().stale_entries, 0u);
}

TEST(GroupStorageTest, StaleEntriesLeftBelowTheSnapshotAreDeletedAtOpen) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 10));
    MustSync(r.get());
  }
  std::vector<std::string> saved;
  {
    RawDb raw(tmp.db());
    for (uint64_t i = 1; i <= 3; ++i)
      saved.push_back(raw.Get(GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(i))));
  }
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Compact(LogIndex(5), raft::ConfState{}, "img").ok());
    before = StateOf(*r);
  }
  {
    // What a crash between a snapshot and the deletion of its entries would leave.
    RawDb raw(tmp.db());
    for (uint64_t i = 1; i <= 3; ++i)
      raw.Put(GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(i)), saved[i - 1]);
  }
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(StateOf(*r), before);
    EXPECT_EQ(r->recovery_stats().stale_entries, 3u);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->recovery_stats().stale_entries, 0u);  // deleted by the previous Open
}

TEST(GroupStorageTest, ForeignClusterIsRefused) {
  TempDir tmp;
  ASSERT_NE(MustOpen(tmp.db()), nullptr);
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), 0xD2u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_TRUE(Contains(r.status().message(),
                       "belongs to cluster 0x00000000000000c1, not "
                       "0x00000000000000d2"))
      << r.status().ToString();
}

TEST(GroupStorageTest, ForeignDatabaseIsRefused) {
  TempDir tmp;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, tmp.db(), &db).ok());
    std::unique_ptr<rocksdb::DB> owned(db);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "some", "data").ok());
    ASSERT_TRUE(db->Close().ok());
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "no cluster id")) << r.status().ToString();
}

TEST(GroupStorageTest, FlippedByteInAnEntryIsCorruptionNamingIt) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 10));
    MustSync(r.get());
  }
  {
    RawDb raw(tmp.db());
    const std::string key = GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(7));
    std::string value = raw.Get(key);
    ASSERT_GT(value.size(), 8u);
    value[value.size() / 2] ^= 0x40;
    raw.Put(key, value);
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "log entry 7 failed its checksum"))
      << r.status().ToString();
}

TEST(GroupStorageTest, EntryUnderTheWrongKeyIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 4), HS(1, 1, 4));
    MustSync(r.get());
  }
  {
    // A misdirected write: entry 2's intact value stored as entry 3.
    RawDb raw(tmp.db());
    raw.Put(GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(3)),
            raw.Get(GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(2))));
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "log entry 3")) << r.status().ToString();
}

TEST(GroupStorageTest, FlippedByteInTheHardStateIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 3), HS(1, 1, 3));
    MustSync(r.get());
  }
  {
    RawDb raw(tmp.db());
    std::string value = raw.Get(GroupStorage::GroupKey(GroupStorage::kStandaloneGroup, 'H'));
    value.back() ^= 0x01;
    raw.Put(GroupStorage::GroupKey(GroupStorage::kStandaloneGroup, 'H'), value);
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "hard state failed its checksum"))
      << r.status().ToString();
}

TEST(GroupStorageTest, GapInTheLogIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 3));
    MustSync(r.get());
  }
  {
    RawDb raw(tmp.db());
    raw.Delete(GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(5)));
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "log entry 5 is missing")) << r.status().ToString();
}

TEST(GroupStorageTest, CommitBeyondTheLogIsCorruption) {
  TempDir tmp;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 10), HS(1, 1, 10));
    MustSync(r.get());
  }
  {
    RawDb raw(tmp.db());
    raw.DeleteRange(GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(8)),
                    GroupStorage::EntryKey(GroupStorage::kStandaloneGroup, LogIndex(11)));
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "commit index 10 is beyond the last index 7"))
      << r.status().ToString();
}

TEST(GroupStorageTest, DecreasingTermsAreCorruption) {
  TempDir tmp;
  {
    // Storage does not judge terms on Save (Raft never writes this), only on Open.
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(3, 1, 2));
    MustSave(r.get(), Ents(2, 3, 4));
    MustSync(r.get());
  }
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(r.status().message(), "log entry 3 has term 2")) << r.status().ToString();
}

TEST(GroupStorageTest, InjectedWriteFailureIsStickyAndLosesNothingSynced) {
  TempDir tmp;
  FaultyDisk disk;
  FaultInjectionFs* fs = disk.fs.get();
  const RocksOptions& opts = disk.opts;
  std::vector<LogState> allowed;
  {
    auto r = MustOpen(tmp.db(), opts);
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 5), HS(1, 1, 5));
    MustSync(r.get());
    allowed.push_back(StateOf(*r));

    fs->SetFailWrites(true);
    EXPECT_TRUE(fs->fail_writes());
    MustSave(r.get(), Ents(1, 6, 8), HS(1, 1, 8));  // staged only: Save writes nothing
    allowed.push_back(StateOf(*r));
    const Status st = r->Sync();
    EXPECT_EQ(st.code(), Code::kIoError);
    EXPECT_TRUE(Contains(st.message(), "No space left on device")) << st.ToString();
    EXPECT_GT(fs->injected_failures(), 0u);
    EXPECT_EQ(r->failure().code(), Code::kIoError);

    // Sticky, even once the disk is back: nothing touches the database any more.
    fs->SetFailWrites(false);
    const uint64_t injected = fs->injected_failures();
    EXPECT_EQ(r->Save(std::nullopt, Ents(1, 9, 9), std::nullopt).code(), Code::kIoError);
    EXPECT_EQ(r->Sync().code(), Code::kIoError);
    EXPECT_EQ(r->Compact(LogIndex(3), raft::ConfState{}, "img").code(), Code::kIoError);
    EXPECT_EQ(r->PutMeta("peers", "x").code(), Code::kIoError);
    EXPECT_EQ(fs->injected_failures(), injected);
    // In-memory state stays readable.
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(8));
    EXPECT_EQ(StateOf(*r), allowed.back());
  }
  auto r = MustOpen(tmp.db(), opts);
  ASSERT_NE(r, nullptr);
  // Every synced entry is there; the failed write is either wholly there or wholly absent.
  const LogState got = StateOf(*r);
  EXPECT_TRUE(got == allowed[0] || got == allowed[1]) << "last index " << got.last;
  EXPECT_TRUE(r->failure().ok());
  MustSave(r.get(), Ents(1, got.last.value() + 1, got.last.value() + 1));
  MustSync(r.get());
}

TEST(GroupStorageTest, InjectedFailureRefusesOpeningANewDatabase) {
  TempDir tmp;
  FaultyDisk disk;
  FaultInjectionFs* fs = disk.fs.get();
  const RocksOptions& opts = disk.opts;
  fs->SetFailWrites(true);
  Result<std::unique_ptr<GroupStorage>> r = GroupStorage::Open(tmp.db(), kCluster, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kIoError);
  EXPECT_TRUE(Contains(r.status().message(), "No space left on device")) << r.status().ToString();
  fs->SetFailWrites(false);
  EXPECT_NE(MustOpen(tmp.db(), opts), nullptr);
}

TEST(GroupStorageTest, MetaRoundTrip) {
  TempDir tmp;
  const std::string binary("a\0b\xff", 4);
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    Result<std::optional<std::string>> missing = r->GetMeta("peers");
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing->has_value());
    ASSERT_TRUE(r->PutMeta("peers", "1=a:1,2=b:2").ok());
    ASSERT_TRUE(r->PutMeta("peers", "1=a:1,2=b:2,3=c:3").ok());  // replaces
    ASSERT_TRUE(r->PutMeta("blob", binary).ok());
    ASSERT_TRUE(r->PutMeta("empty", "").ok());
    EXPECT_EQ(r->PutMeta("", "x").code(), Code::kInvalidArgument);
    EXPECT_EQ(*r->GetMeta("peers").value(), "1=a:1,2=b:2,3=c:3");
    // Metadata lives beside the log without disturbing it.
    MustSave(r.get(), Ents(1, 1, 3), HS(1, 1, 3));
    MustSync(r.get());
  }
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(*r->GetMeta("peers").value(), "1=a:1,2=b:2,3=c:3");
    EXPECT_EQ(*r->GetMeta("blob").value(), binary);
    EXPECT_EQ(*r->GetMeta("empty").value(), "");
    EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(3));
  }
  {
    RawDb raw(tmp.db());
    std::string value = raw.Get("Mpeers");
    value[5] ^= 0x10;
    raw.Put("Mpeers", value);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  Result<std::optional<std::string>> damaged = r->GetMeta("peers");
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), Code::kCorruption);
  EXPECT_TRUE(Contains(damaged.status().message(), "metadata 'peers' failed its checksum"));
}

TEST(GroupStorageTest, PendingWriteOnAnotherThread) {
  TempDir tmp;
  LogState before;
  {
    auto r = MustOpen(tmp.db());
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 3), HS(1, 1, 2));
    MustSave(r.get(), Ents(1, 4, 5), HS(1, 1, 5));
    GroupStorage::PendingWrite w = r->TakePending();
    EXPECT_EQ(w.saves, 2u);
    EXPECT_EQ(r->pending_saves(), 0u);
    Status written = Status::IoError("not run");
    const GroupStorage* reader = r.get();
    std::thread writer([&] { written = reader->WritePending(w); });
    // The owner keeps saving while the write runs: the next batch.
    MustSave(r.get(), Ents(1, 6, 7), HS(1, 1, 7));
    writer.join();
    EXPECT_TRUE(written.ok()) << written.ToString();
    r->OnPendingWritten(written);

    GroupStorage::PendingWrite w2 = r->TakePending();
    EXPECT_EQ(w2.saves, 1u);
    std::thread writer2([&] { written = reader->WritePending(w2); });
    writer2.join();
    r->OnPendingWritten(written);
    EXPECT_TRUE(r->failure().ok());
    before = StateOf(*r);
  }
  auto r = MustOpen(tmp.db());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(StateOf(*r), before);
  EXPECT_EQ(r->raft_storage().LastIndex(), LogIndex(7));
}

TEST(GroupStorageTest, FailedPendingWriteRefusesTheWritesQueuedBehindIt) {
  TempDir tmp;
  FaultyDisk disk;
  FaultInjectionFs* fs = disk.fs.get();
  const RocksOptions& opts = disk.opts;
  LogState synced;
  {
    auto r = MustOpen(tmp.db(), opts);
    ASSERT_NE(r, nullptr);
    MustSave(r.get(), Ents(1, 1, 2), HS(1, 1, 2));
    MustSync(r.get());
    synced = StateOf(*r);
    MustSave(r.get(), Ents(1, 3, 4), HS(1, 1, 4));
    GroupStorage::PendingWrite w1 = r->TakePending();
    MustSave(r.get(), Ents(1, 5, 6), HS(1, 1, 6));
    GroupStorage::PendingWrite w2 = r->TakePending();  // two outstanding, in order

    fs->SetFailWrites(true);
    const Status s1 = r->WritePending(w1);
    fs->SetFailWrites(false);
    const Status s2 = r->WritePending(w2);  // the disk is back, but w1 is not on it
    EXPECT_FALSE(s1.ok());
    EXPECT_EQ(s2.code(), Code::kIoError);
    r->OnPendingWritten(s1);
    r->OnPendingWritten(s2);
    EXPECT_EQ(r->failure().code(), Code::kIoError);
    // A write taken after the failure carries it and writes nothing.
    GroupStorage::PendingWrite w3 = r->TakePending();
    EXPECT_EQ(w3.refused.code(), Code::kIoError);
    const Status s3 = r->WritePending(w3);
    EXPECT_EQ(s3.code(), Code::kIoError);
    r->OnPendingWritten(s3);
  }
  auto r = MustOpen(tmp.db(), opts);
  ASSERT_NE(r, nullptr);
  const LogState got = StateOf(*r);
  // w1 may have reached RocksDB's log before its sync failed; w2 never may without it.
  EXPECT_TRUE(got == synced || got.last == LogIndex(4)) << "last index " << got.last;
}

// A model of the storage's contract: a MemoryStorage with the snapshot beside it.
struct Model {
  raft::MemoryStorage mem;
  raft::Snapshot snap;

  LogState State() const { return StateOf(mem, mem.hard_state(), snap); }
  void Save(const std::optional<raft::Snapshot>& s, const std::vector<raft::Entry>& ents,
            const std::optional<raft::HardState>& hs) {
    if (s.has_value()) {
      snap = *s;
      ASSERT_TRUE(mem.ApplySnapshot(*s).ok());
    }
    ASSERT_TRUE(mem.Append(ents).ok());
    if (hs.has_value()) mem.SetHardState(*hs);
  }
  void Compact(LogIndex index, const raft::ConfState& cs, const std::string& image) {
    Result<raft::Snapshot> s = mem.CreateSnapshot(index, &cs, image);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(mem.Compact(index).ok());
    snap = *s;
  }
  void Reset(const LogState& st) {
    mem = raft::MemoryStorage();
    snap = st.snap;
    ASSERT_TRUE(mem.ApplySnapshot(st.snap).ok());
    ASSERT_TRUE(mem.Append(st.entries).ok());
    mem.SetHardState(st.hs);
  }
};

// Drives a GroupStorage and the model with the same random Raft-shaped operations: entries
// never overwrite the committed prefix and terms never decrease, as Raft guarantees.
class RandomRun {
 public:
  RandomRun(uint64_t seed, std::string dir) : rng_(seed), dir_(std::move(dir)) {}

  void Run(int ops) {
    storage_ = MustOpen(dir_, Options());
    ASSERT_NE(storage_, nullptr);
    allowed_ = {model_.State()};
    for (int i = 0; i < ops; ++i) {
      const uint64_t roll = Uniform(0, 99);
      if (roll < 45) {
        SaveEntries();
      } else if (roll < 52) {
        SaveSnapshot();
      } else if (roll < 62) {
        Compact();
      } else if (roll < 77) {
        ASSERT_TRUE(storage_->Sync().ok());
        allowed_ = {model_.State()};
      } else if (roll < 81) {  // rare: opening a database costs tens of milliseconds
        Reopen();
      } else {
        InvalidOp();
      }
      if (::testing::Test::HasFatalFailure()) return;
      ASSERT_EQ(StateOf(*storage_), model_.State()) << "after op " << i;
    }
    storage_.reset();
  }

 private:
  // No fsync: a reopen stands for a crash of the process, which RocksDB's unsynced writes
  // survive, and fsync costs this test seconds without checking anything of ours.
  static RocksOptions Options() {
    RocksOptions opts;
    opts.sync = false;
    return opts;
  }
  uint64_t Uniform(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  uint64_t First() const { return model_.mem.FirstIndex().value(); }
  uint64_t Last() const { return model_.mem.LastIndex().value(); }
  uint64_t Commit() const { return model_.mem.hard_state().commit.value(); }
  std::optional<raft::HardState> MaybeHs(uint64_t last) {
    if (Uniform(0, 9) < 4) return std::nullopt;
    return HS(term_, Uniform(0, 3), Uniform(Commit(), last));
  }

  void Apply(const std::optional<raft::Snapshot>& snap, const std::vector<raft::Entry>& ents,
             const std::optional<raft::HardState>& hs) {
    const Status st = storage_->Save(snap, ents, hs);
    ASSERT_TRUE(st.ok()) << st.ToString();
    model_.Save(snap, ents, hs);
    allowed_.push_back(model_.State());
  }

  void SaveEntries() {
    if (Uniform(0, 4) == 0) ++term_;
    if (First() > 1 && Uniform(0, 9) == 0) {
      // Entries already folded into the snapshot: ignored.
      const uint64_t lo = std::max<uint64_t>(1, First() - 3);
      return Apply(std::nullopt, Ents(term_, lo, First() - 1), std::nullopt);
    }
    const uint64_t start = Uniform(std::max(First(), Commit() + 1), Last() + 1);
    const uint64_t n = Uniform(0, 5);
    const uint64_t last = n == 0 ? Last() : start + n - 1;
    Apply(std::nullopt, n == 0 ? std::vector<raft::Entry>() : Ents(term_, start, last),
          MaybeHs(last));
  }

  void SaveSnapshot() {
    ++term_;
    const uint64_t lo = std::max<uint64_t>({model_.snap.meta.index.value() + 1, Commit(), 1});
    const uint64_t index = Uniform(lo, Last() + 5);
    const uint64_t n = Uniform(0, 3);
    Apply(Snap(index, term_, "snap" + std::to_string(index)),
          n == 0 ? std::vector<raft::Entry>() : Ents(term_, index + 1, index + n),
          HS(term_, 1, index));
  }

  void Compact() {
    const uint64_t snap_index = model_.snap.meta.index.value();
    if (Commit() <= snap_index) return;
    const LogIndex index(Uniform(snap_index + 1, Commit()));
    raft::ConfState cs;
    cs.voters = {NodeId(1), NodeId(Uniform(2, 5))};
    const std::string image = "image" + std::to_string(index.value());
    const Status st = storage_->Compact(index, cs, image);
    ASSERT_TRUE(st.ok()) << st.ToString();
    model_.Compact(index, cs, image);
    allowed_ = {model_.State()};  // durable, with every Save before it
  }

  void Reopen() {
    if (Uniform(0, 1) == 0) {
      ASSERT_TRUE(storage_->Sync().ok());
      allowed_ = {model_.State()};
    }
    storage_.reset();
    storage_ = MustOpen(dir_, Options());
    ASSERT_NE(storage_, nullptr);
    const LogState got = StateOf(*storage_);
    bool found = false;
    for (const LogState& s : allowed_) found = found || s == got;
    ASSERT_TRUE(found) << "reopened at last index " << got.last << ", not a Save boundary";
    model_.Reset(got);
    allowed_ = {got};
  }

  // Operations that must fail and change nothing.
  void InvalidOp() {
    const uint64_t pending = storage_->pending_saves();
    switch (Uniform(0, 2)) {
      case 0:
        EXPECT_EQ(
            storage_->Save(std::nullopt, Ents(term_, Last() + 2, Last() + 3), std::nullopt).code(),
            Code::kInvalidArgument);
        break;
      case 1:
        EXPECT_EQ(storage_->Save(std::nullopt, {}, HS(term_, 0, Last() + 1)).code(),
                  Code::kInvalidArgument);
        break;
      default:
        EXPECT_EQ(storage_->Compact(LogIndex(Commit() + 1), raft::ConfState{}, "x").code(),
                  Commit() + 1 <= model_.snap.meta.index.value() ? Code::kSnapshotOutOfDate
                                                                 : Code::kInvalidArgument);
        break;
    }
    EXPECT_EQ(storage_->pending_saves(), pending);
  }

  std::mt19937_64 rng_;
  const std::string dir_;
  std::unique_ptr<GroupStorage> storage_;
  Model model_;
  uint64_t term_ = 1;
  // The states a reopen may give: the durable one, then one per Save since.
  std::vector<LogState> allowed_;
};

TEST(GroupStorageTest, RandomOperationsMatchTheModel) {
  constexpr uint64_t kSeeds = 8;
  constexpr int kOpsPerSeed = 250;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir tmp;
    RandomRun run(seed, tmp.db());
    run.Run(kOpsPerSeed);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace synod::storage
