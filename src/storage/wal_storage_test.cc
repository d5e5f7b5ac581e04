#include "storage/wal_storage.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "storage/raft.pb.h"
#include "storage/wal_format.h"

namespace synod::storage {
namespace {

constexpr uint64_t kCluster = 0xC1u;

// A Disk for these tests: synced bytes, then unsynced ones that Crash() drops. Sync is
// immediate (sim::SimDisk models a slow one); content() gives direct access for damage.
class TestDisk final : public env::Disk {
 public:
  Status Append(std::string_view bytes) override {
    if (fail_) return Status::IoError("test: append failed");
    pending_.append(bytes);
    return Status::Ok();
  }
  Status Sync() override {
    if (fail_) return Status::IoError("test: sync failed");
    durable_ += pending_;
    pending_.clear();
    return Status::Ok();
  }
  Result<std::string> ReadAll() override { return durable_ + pending_; }
  Status Replace(std::string_view bytes) override {
    if (fail_) return Status::IoError("test: replace failed");
    durable_.assign(bytes);
    pending_.clear();
    return Status::Ok();
  }
  uint64_t Size() const override { return durable_.size() + pending_.size(); }

  void Crash() { pending_.clear(); }
  void SetFail(bool fail) { fail_ = fail; }
  // The durable content. REQUIRES: nothing pending.
  std::string& content() { return durable_; }

 private:
  std::string durable_;
  std::string pending_;
  bool fail_ = false;
};

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

// Everything a reopen must reproduce.
struct LogState {
  LogIndex first;
  LogIndex last;
  std::vector<raft::Entry> entries;
  raft::HardState hs;
  raft::Snapshot snap;
  bool operator==(const LogState&) const = default;
};

LogState StateOf(const WalStorage& w) {
  const raft::Storage& s = w.raft_storage();
  LogState st{s.FirstIndex(), s.LastIndex(), {}, w.hard_state(), w.snapshot()};
  if (st.first <= st.last) {
    st.entries = *s.Entries(st.first, st.last + 1, std::numeric_limits<uint64_t>::max());
  }
  EXPECT_EQ(s.GetSnapshot().value(), w.snapshot());
  return st;
}

std::unique_ptr<WalStorage> MustOpen(TestDisk* disk, uint64_t cluster = kCluster) {
  Result<std::unique_ptr<WalStorage>> w = WalStorage::Open(disk, cluster);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  return w.ok() ? std::move(*w) : nullptr;
}

void MustSave(WalStorage* w, const std::vector<raft::Entry>& ents,
              const std::optional<raft::HardState>& hs = std::nullopt) {
  ASSERT_TRUE(w->Save(std::nullopt, ents, hs).ok());
}

TEST(WalStorageTest, EmptyDiskGetsAHeader) {
  TestDisk disk;
  auto w = MustOpen(&disk);
  EXPECT_TRUE(w->recovery_stats().created);
  EXPECT_GT(disk.Size(), 0u);
  EXPECT_EQ(w->wal_bytes(), disk.Size());
  EXPECT_EQ(w->raft_storage().FirstIndex(), LogIndex(1));
  EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(0));
  // The header was durable without a Sync.
  disk.Crash();
  auto again = MustOpen(&disk);
  EXPECT_FALSE(again->recovery_stats().created);
  EXPECT_EQ(again->recovery_stats().records_replayed, 0u);
}

TEST(WalStorageTest, SaveSyncReopenRoundTrip) {
  TestDisk disk;
  LogState before;
  {
    auto w = MustOpen(&disk);
    std::vector<raft::Entry> ents = Ents(1, 1, 5);
    ents[2].type = raft::EntryType::kConfChange;
    ents[3].data = std::string("\0\xff", 2);
    ents[4].data.clear();
    MustSave(w.get(), ents, HS(1, 2, 3));
    MustSave(w.get(), Ents(2, 4, 7), HS(2, 2, 6));  // conflicts with 4..5: truncates them
    MustSave(w.get(), {}, HS(3, 0, 6));
    ASSERT_TRUE(w->Sync().ok());
    before = StateOf(*w);
    EXPECT_EQ(before.last, LogIndex(7));
    EXPECT_EQ(before.entries[3], E(2, 4));
    EXPECT_EQ(w->wal_bytes(), disk.Size());
  }
  disk.Crash();
  auto w = MustOpen(&disk);
  EXPECT_EQ(StateOf(*w), before);
  // Two batches (entries with their hard state) and one lone hard state.
  EXPECT_EQ(w->recovery_stats().records_replayed, 3u);
  EXPECT_EQ(w->recovery_stats().torn_records, 0u);
  EXPECT_EQ(w->wal_bytes(), disk.Size());
}

TEST(WalStorageTest, CrashLosesOnlyUnsyncedData) {
  TestDisk disk;
  LogState synced;
  {
    auto w = MustOpen(&disk);
    MustSave(w.get(), Ents(1, 1, 5), HS(1, 1, 5));
    ASSERT_TRUE(w->Sync().ok());
    synced = StateOf(*w);
    MustSave(w.get(), Ents(1, 6, 9), HS(2, 1, 9));
    EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(9));  // served before the sync
  }
  disk.Crash();
  auto w = MustOpen(&disk);
  EXPECT_EQ(StateOf(*w), synced);
}

TEST(WalStorageTest, SnapshotSaveReplacesTheLog) {
  TestDisk disk;
  raft::Snapshot snap;
  snap.meta.index = LogIndex(20);
  snap.meta.term = Term(3);
  snap.meta.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
  snap.data = "image";
  LogState before;
  {
    auto w = MustOpen(&disk);
    MustSave(w.get(), Ents(1, 1, 5), HS(1, 1, 5));
    ASSERT_TRUE(w->Save(snap, Ents(3, 21, 22), HS(3, 1, 21)).ok());
    ASSERT_TRUE(w->Sync().ok());
    before = StateOf(*w);
    EXPECT_EQ(before.first, LogIndex(21));
    EXPECT_EQ(before.snap, snap);
    // Not newer than the current snapshot: refused, nothing written.
    const uint64_t bytes = w->wal_bytes();
    EXPECT_EQ(w->Save(snap, {}, std::nullopt).code(), Code::kSnapshotOutOfDate);
    EXPECT_EQ(w->wal_bytes(), bytes);
  }
  auto w = MustOpen(&disk);
  EXPECT_EQ(StateOf(*w), before);
}

TEST(WalStorageTest, LargeSaveIsOneAtomicRecord) {
  TestDisk disk;
  LogState before;
  {
    auto w = MustOpen(&disk);
    std::vector<raft::Entry> ents = Ents(1, 1, 40);
    for (raft::Entry& e : ents)
      e.data.assign(100 * 1024, static_cast<char>('a' + e.index.value() % 26));
    MustSave(w.get(), ents, HS(1, 1, 40));
    ASSERT_TRUE(w->Sync().ok());
    before = StateOf(*w);
  }
  auto w = MustOpen(&disk);
  EXPECT_EQ(StateOf(*w), before);
  // 4 MB of entries and their hard state in one record: a torn write keeps all or none.
  EXPECT_EQ(w->recovery_stats().records_replayed, 1u);
}

TEST(WalStorageTest, SaveRefusesInconsistentInputAndWritesNothing) {
  TestDisk disk;
  auto w = MustOpen(&disk);
  MustSave(w.get(), Ents(1, 1, 3));
  const uint64_t bytes = w->wal_bytes();
  EXPECT_EQ(w->Save(std::nullopt, Ents(1, 5, 6), std::nullopt).code(), Code::kInvalidArgument);
  std::vector<raft::Entry> holes = {E(1, 4), E(1, 6)};
  EXPECT_EQ(w->Save(std::nullopt, holes, std::nullopt).code(), Code::kInvalidArgument);
  EXPECT_EQ(w->Save(std::nullopt, Ents(1, 0, 1), std::nullopt).code(), Code::kInvalidArgument);
  EXPECT_EQ(w->Save(std::nullopt, {}, HS(1, 1, 4)).code(), Code::kInvalidArgument);
  EXPECT_EQ(w->wal_bytes(), bytes);
  EXPECT_EQ(disk.Size(), bytes);
  EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(3));
  EXPECT_TRUE(w->Save(std::nullopt, Ents(1, 4, 4), HS(1, 1, 4)).ok());
}

// Saves `synced` entries (synced), then one more record, and returns the whole file content
// and the synced state; for the torn-tail tests.
struct TwoStage {
  std::string file;
  size_t synced_bytes = 0;
  LogState synced;
  LogState full;
};

TwoStage BuildTwoStage() {
  TestDisk disk;
  TwoStage t;
  auto w = MustOpen(&disk);
  MustSave(w.get(), Ents(1, 1, 4), HS(1, 1, 4));
  EXPECT_TRUE(w->Sync().ok());
  t.synced = StateOf(*w);
  t.synced_bytes = disk.Size();
  MustSave(w.get(), Ents(2, 5, 7));  // exactly one record
  EXPECT_TRUE(w->Sync().ok());
  t.full = StateOf(*w);
  t.file = disk.content();
  return t;
}

TEST(WalStorageTest, TornTailOfEveryLengthRecoversTheSyncedPrefix) {
  const TwoStage t = BuildTwoStage();
  for (size_t cut = t.synced_bytes; cut <= t.file.size(); ++cut) {
    SCOPED_TRACE(cut);
    TestDisk disk;
    disk.content() = t.file.substr(0, cut);
    auto w = MustOpen(&disk);
    ASSERT_NE(w, nullptr);
    const bool whole = cut == t.file.size();
    EXPECT_EQ(StateOf(*w), whole ? t.full : t.synced);
    EXPECT_EQ(w->recovery_stats().torn_records, (whole || cut == t.synced_bytes) ? 0u : 1u);
    EXPECT_EQ(w->recovery_stats().torn_bytes, whole ? 0u : cut - t.synced_bytes);
    // The tail was cut off the disk, so new records do not follow garbage.
    EXPECT_EQ(disk.Size(), whole ? t.file.size() : t.synced_bytes);
    EXPECT_EQ(w->wal_bytes(), disk.Size());
    ASSERT_TRUE(w->Save(std::nullopt,
                        Ents(5, w->raft_storage().LastIndex().value() + 1,
                             w->raft_storage().LastIndex().value() + 2),
                        std::nullopt)
                    .ok());
    ASSERT_TRUE(w->Sync().ok());
    const LogState after = StateOf(*w);
    auto reopened = MustOpen(&disk);
    ASSERT_NE(reopened, nullptr);
    EXPECT_EQ(StateOf(*reopened), after);
  }
}

TEST(WalStorageTest, FlippedByteInTheLastRecordDropsThatRecord) {
  const TwoStage t = BuildTwoStage();
  for (size_t i = t.synced_bytes; i < t.file.size(); ++i) {
    SCOPED_TRACE(i);
    TestDisk disk;
    disk.content() = t.file;
    disk.content()[i] = static_cast<char>(disk.content()[i] ^ 0x10);
    auto w = MustOpen(&disk);
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(StateOf(*w), t.synced);
    EXPECT_GE(w->recovery_stats().torn_records, 1u);
    EXPECT_EQ(disk.Size(), t.synced_bytes);
  }
}

TEST(WalStorageTest, FlippedByteBeforeTheLastRecordIsCorruption) {
  const TwoStage t = BuildTwoStage();
  // Every byte of every record but the last, the header and every length field included.
  for (size_t i = 0; i < t.synced_bytes; ++i) {
    SCOPED_TRACE(i);
    TestDisk disk;
    disk.content() = t.file;
    disk.content()[i] = static_cast<char>(disk.content()[i] ^ 0x01);
    Result<std::unique_ptr<WalStorage>> w = WalStorage::Open(&disk, kCluster);
    EXPECT_EQ(w.status().code(), Code::kCorruption) << w.status().ToString();
    EXPECT_EQ(disk.content().size(), t.file.size());  // left alone for the operator
  }
}

TEST(WalStorageTest, CompactionBoundsTheWalAndReopenGivesTheSameLog) {
  TestDisk disk;
  raft::ConfState cs;
  cs.voters = {NodeId(1), NodeId(2), NodeId(3)};
  LogState before;
  uint64_t max_bytes = 0;
  {
    auto w = MustOpen(&disk);
    for (uint64_t i = 1; i <= 2000; i += 10) {
      MustSave(w.get(), Ents(1, i, i + 9), HS(1, 1, i + 9));
      ASSERT_TRUE(w->Sync().ok());
      if ((i + 9) % 200 == 0) {
        ASSERT_TRUE(w->Compact(LogIndex(i + 4), cs, "state@" + std::to_string(i + 4)).ok());
        EXPECT_EQ(w->wal_bytes(), disk.Size());
      }
      max_bytes = std::max(max_bytes, w->wal_bytes());
    }
    before = StateOf(*w);
    EXPECT_EQ(before.snap.meta.index, LogIndex(1995));
    EXPECT_EQ(before.snap.meta.term, Term(1));
    EXPECT_EQ(before.snap.meta.conf_state, cs);
    EXPECT_EQ(before.snap.data, "state@1995");
    EXPECT_EQ(before.first, LogIndex(1996));
    EXPECT_EQ(before.last, LogIndex(2000));
  }
  // Without compaction the WAL would hold 2000 entries; with it, at most ~200 plus overhead.
  EXPECT_LT(max_bytes, 200u * 40u);
  auto w = MustOpen(&disk);
  EXPECT_EQ(StateOf(*w), before);
  EXPECT_EQ(w->Compact(LogIndex(1995), cs, "").code(), Code::kSnapshotOutOfDate);
  MustSave(w.get(), Ents(1, 2001, 2001), HS(1, 1, 2000));
  EXPECT_EQ(w->Compact(LogIndex(2001), cs, "").code(), Code::kInvalidArgument);  // uncommitted
}

TEST(WalStorageTest, CompactionMakesUnsyncedRecordsDurable) {
  TestDisk disk;
  LogState before;
  {
    auto w = MustOpen(&disk);
    MustSave(w.get(), Ents(1, 1, 10), HS(1, 1, 8));
    ASSERT_TRUE(w->Compact(LogIndex(5), raft::ConfState(), "img").ok());
    before = StateOf(*w);
  }
  disk.Crash();
  auto w = MustOpen(&disk);
  EXPECT_EQ(StateOf(*w), before);
  EXPECT_EQ(w->raft_storage().FirstIndex(), LogIndex(6));
  EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(10));
}

TEST(WalStorageTest, ForeignClusterIsRefused) {
  TestDisk disk;
  { auto w = MustOpen(&disk, 0xAAAA); }
  Result<std::unique_ptr<WalStorage>> w = WalStorage::Open(&disk, 0xBBBB);
  ASSERT_EQ(w.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(w.status().message().find("another cluster"), std::string_view::npos);
  EXPECT_NE(w.status().message().find("0x000000000000aaaa"), std::string_view::npos);
}

TEST(WalStorageTest, BadHeadersAreRefused) {
  TestDisk garbage;
  garbage.content() = "this is not a write-ahead log at all";
  EXPECT_EQ(WalStorage::Open(&garbage, kCluster).status().code(), Code::kCorruption);

  pb::WalHeader header;
  header.set_magic(0x4C4157444F4E5953ull);
  header.set_version(2);
  header.set_cluster_id(kCluster);
  TestDisk newer;
  AppendRecord(RecordType::kHeader, header.SerializeAsString(), &newer.content());
  EXPECT_EQ(WalStorage::Open(&newer, kCluster).status().code(), Code::kFailedPrecondition);

  TestDisk headless;  // valid records, but not starting with a header
  AppendRecord(RecordType::kHardState, "", &headless.content());
  EXPECT_EQ(WalStorage::Open(&headless, kCluster).status().code(), Code::kCorruption);
}

TEST(WalStorageTest, InconsistentRecordsAreCorruption) {
  TestDisk disk;
  { auto w = MustOpen(&disk); }
  const std::string header = disk.content();

  disk.content() = header;  // entries leaving a gap
  pb::EntryBatch batch;
  batch.add_entries()->set_index(5);
  AppendRecord(RecordType::kEntries, batch.SerializeAsString(), &disk.content());
  EXPECT_EQ(WalStorage::Open(&disk, kCluster).status().code(), Code::kCorruption);

  disk.content() = header;  // a payload that is not the record type's message
  AppendRecord(RecordType::kEntries, "\xff\xff\xff", &disk.content());
  EXPECT_EQ(WalStorage::Open(&disk, kCluster).status().code(), Code::kCorruption);
}

TEST(WalStorageTest, FailedAppendIsSticky) {
  TestDisk disk;
  {
    auto w = MustOpen(&disk);
    MustSave(w.get(), Ents(1, 1, 3), HS(1, 1, 3));
    ASSERT_TRUE(w->Sync().ok());
    disk.SetFail(true);
    EXPECT_EQ(w->Save(std::nullopt, Ents(1, 4, 4), std::nullopt).code(), Code::kIoError);
    EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(3));  // not applied either
    disk.SetFail(false);  // the disk recovers; the WAL does not trust it until reopened
    EXPECT_EQ(w->Save(std::nullopt, Ents(1, 4, 4), std::nullopt).code(), Code::kIoError);
    EXPECT_EQ(w->Save(std::nullopt, {}, std::nullopt).code(), Code::kIoError);
    EXPECT_EQ(w->Sync().code(), Code::kIoError);
    EXPECT_EQ(w->Compact(LogIndex(2), raft::ConfState(), "").code(), Code::kIoError);
    EXPECT_EQ(w->failure().code(), Code::kIoError);
    EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(3));
  }
  disk.Crash();
  auto w = MustOpen(&disk);
  EXPECT_EQ(w->raft_storage().LastIndex(), LogIndex(3));
  EXPECT_TRUE(w->failure().ok());
}

TEST(WalStorageTest, FailedSyncAndFailedCompactionAreSticky) {
  TestDisk disk;
  auto w = MustOpen(&disk);
  MustSave(w.get(), Ents(1, 1, 3), HS(1, 1, 3));
  disk.SetFail(true);
  EXPECT_EQ(w->Sync().code(), Code::kIoError);
  disk.SetFail(false);
  EXPECT_EQ(w->Sync().code(), Code::kIoError);

  TestDisk disk2;
  auto w2 = MustOpen(&disk2);
  MustSave(w2.get(), Ents(1, 1, 3), HS(1, 1, 3));
  disk2.SetFail(true);
  EXPECT_EQ(w2->Compact(LogIndex(2), raft::ConfState(), "").code(), Code::kIoError);
  disk2.SetFail(false);
  EXPECT_EQ(w2->Save(std::nullopt, Ents(1, 4, 4), std::nullopt).code(), Code::kIoError);
}

TEST(WalStorageTest, OpenFailsCleanlyWhenTheDiskDoes) {
  TestDisk disk;
  disk.SetFail(true);
  EXPECT_EQ(WalStorage::Open(&disk, kCluster).status().code(), Code::kIoError);
}

}  // namespace
}  // namespace synod::storage

namespace synod::storage {
namespace {

// Regression (found by the simulator, twice): a Ready's entries and hard state are one record.
// Written entries-first, a torn write could keep a membership-change entry without the commit
// index sent with it (a node could then campaign with a configuration two changes old);
// written hard-state-first, it could keep a commit index without its entries, claiming older,
// conflicting entries at those indexes committed. Now a torn batch keeps both or neither.
TEST(WalStorageTest, TornBatchKeepsEntriesAndHardStateTogether) {
  TestDisk base;
  {
    auto w = MustOpen(&base);
    MustSave(w.get(), Ents(1, 1, 6), HS(1, 1, 2));  // entries 3..6 of term 1, uncommitted
    ASSERT_TRUE(w->Sync().ok());
  }
  const std::string synced = base.content();
  TestDisk full = base;
  {
    auto w = MustOpen(&full);
    MustSave(w.get(), Ents(2, 3, 6), HS(2, 1, 5));  // a new leader's entries replace them
    ASSERT_TRUE(w->Sync().ok());
  }
  const std::string batch = full.content().substr(synced.size());
  int kept = 0;
  for (size_t cut = 0; cut <= batch.size(); ++cut) {
    TestDisk d;
    d.content() = synced + batch.substr(0, cut);
    auto w = WalStorage::Open(&d, kCluster);
    ASSERT_TRUE(w.ok()) << "cut " << cut << ": " << w.status().ToString();
    const raft::Storage& rs = (*w)->raft_storage();
    Term t5 = *rs.TermAt(LogIndex(5));
    if (t5 == Term(2)) {
      ++kept;
      EXPECT_EQ((*w)->hard_state().commit, LogIndex(5)) << cut;
    } else {
      // The old entry at 5 is not committed: the commit index must not claim it.
      EXPECT_EQ((*w)->hard_state().commit, LogIndex(2)) << cut;
    }
  }
  EXPECT_EQ(kept, 1);  // only the complete batch
}

TEST(WalStorageTest, CommitBeyondTheLogIsCorruption) {
  TestDisk disk;
  { auto w = MustOpen(&disk); }
  pb::HardState hs;  // commit beyond the (empty) log
  hs.set_term(1);
  hs.set_commit(3);
  AppendRecord(RecordType::kHardState, hs.SerializeAsString(), &disk.content());
  EXPECT_EQ(WalStorage::Open(&disk, kCluster).status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace synod::storage
