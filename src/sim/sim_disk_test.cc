#include "sim/sim_disk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/storage.h"
#include "storage/wal_storage.h"

namespace synod::sim {
namespace {

TEST(SimDiskTest, BytesAreDurableOnlyWhenTheSyncCompletes) {
  env::Random rng(1);
  SimDisk disk;
  ASSERT_TRUE(disk.Append("abc").ok());
  ASSERT_TRUE(disk.Sync().ok());
  EXPECT_TRUE(disk.sync_in_flight());
  EXPECT_EQ(*disk.ReadAll(), "abc");  // readable before it is durable
  EXPECT_EQ(disk.durable(), "");
  disk.Crash(rng, /*torn_writes=*/false);
  EXPECT_EQ(*disk.ReadAll(), "");  // the fsync never finished
  EXPECT_FALSE(disk.sync_in_flight());

  ASSERT_TRUE(disk.Append("abc").ok());
  ASSERT_TRUE(disk.Sync().ok());
  ASSERT_TRUE(disk.Append("def").ok());  // after the sync request: not covered by it
  disk.CompleteSync();
  EXPECT_EQ(disk.durable(), "abc");
  EXPECT_EQ(disk.pending_bytes(), 3u);
  EXPECT_EQ(disk.Size(), 6u);
  disk.Crash(rng, false);
  EXPECT_EQ(*disk.ReadAll(), "abc");
  disk.CompleteSync();  // none in flight: a no-op
  EXPECT_EQ(disk.stats().syncs_completed, 1u);
}

TEST(SimDiskTest, ReplaceIsAtomicDurableAndVoidsASyncInFlight) {
  env::Random rng(2);
  SimDisk disk;
  ASSERT_TRUE(disk.Append("old").ok());
  ASSERT_TRUE(disk.Sync().ok());
  ASSERT_TRUE(disk.Replace("new").ok());
  ASSERT_TRUE(disk.Append("+tail").ok());
  disk.CompleteSync();  // the request covered bytes that Replace removed
  EXPECT_EQ(disk.durable(), "new");
  disk.Crash(rng, false);
  EXPECT_EQ(*disk.ReadAll(), "new");
}

TEST(SimDiskTest, TornCrashKeepsAPrefixOfThePendingBytesSometimesGarbled) {
  const std::string pending = "0123456789abcdefghijklmnopqrstuvwxyz";
  int none = 0;
  int all = 0;
  int garbled = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    env::Random rng(seed);
    SimDisk disk;
    ASSERT_TRUE(disk.Replace("durable|").ok());
    ASSERT_TRUE(disk.Append(pending).ok());
    disk.Crash(rng, /*torn_writes=*/true);
    const std::string after = *disk.ReadAll();
    ASSERT_EQ(after.substr(0, 8), "durable|");  // durable bytes never change
    const std::string tail = after.substr(8);
    ASSERT_LE(tail.size(), pending.size());
    // Only the last kGarbledBytesMax bytes may differ from the pending prefix.
    const size_t intact = tail.size() - std::min<size_t>(tail.size(), SimDisk::kGarbledBytesMax);
    ASSERT_EQ(tail.substr(0, intact), pending.substr(0, intact));
    none += tail.empty();
    all += tail == pending;
    garbled += tail != pending.substr(0, tail.size());
    EXPECT_EQ(disk.pending_bytes(), 0u);
  }
  EXPECT_GT(none, 0);
  EXPECT_GT(all, 0);
  EXPECT_GT(garbled, 500);
}

TEST(SimDiskTest, CrashIsDeterministicForASeed) {
  auto run = [](uint64_t seed) {
    env::Random rng(seed);
    SimDisk disk;
    EXPECT_TRUE(disk.Append(std::string(1000, 'x')).ok());
    disk.Crash(rng, true);
    return *disk.ReadAll();
  };
  EXPECT_EQ(run(7), run(7));
}

TEST(SimDiskTest, InjectedFaultsFailWritesWithoutChangingTheFile) {
  SimDisk disk;
  ASSERT_TRUE(disk.Append("a").ok());
  disk.FailNextWrites(3);
  EXPECT_EQ(disk.Append("b").code(), Code::kIoError);
  EXPECT_EQ(disk.Sync().code(), Code::kIoError);
  EXPECT_EQ(disk.Replace("c").code(), Code::kIoError);
  EXPECT_EQ(*disk.ReadAll(), "a");
  EXPECT_FALSE(disk.sync_in_flight());
  EXPECT_TRUE(disk.Append("b").ok());  // the three faults are used up

  disk.SetFull(true);
  Status st = disk.Append("c");
  EXPECT_EQ(st.code(), Code::kIoError);
  EXPECT_NE(st.message().find("disk full"), std::string_view::npos);
  EXPECT_EQ(disk.Sync().code(), Code::kIoError);
  EXPECT_EQ(disk.Replace("").code(), Code::kIoError);
  disk.SetFull(false);
  EXPECT_TRUE(disk.Sync().ok());
  EXPECT_EQ(*disk.ReadAll(), "ab");
  EXPECT_EQ(disk.stats().faults_injected, 6u);
}

// ---- WalStorage on a SimDisk under random saves, syncs, compactions, faults and crashes ----

struct LogState {
  LogIndex first;
  LogIndex last;
  std::vector<raft::Entry> entries;
  raft::HardState hs;
  raft::Snapshot snap;
  bool operator==(const LogState&) const = default;
};

LogState StateOf(const raft::MemoryStorage& s, const raft::Snapshot& snap) {
  LogState st{s.FirstIndex(), s.LastIndex(), {}, s.hard_state(), snap};
  if (st.first <= st.last) {
    st.entries = *s.Entries(st.first, st.last + 1, std::numeric_limits<uint64_t>::max());
  }
  return st;
}

LogState StateOf(const storage::WalStorage& w) {
  const raft::Storage& s = w.raft_storage();
  LogState st{s.FirstIndex(), s.LastIndex(), {}, w.hard_state(), w.snapshot()};
  if (st.first <= st.last) {
    st.entries = *s.Entries(st.first, st.last + 1, std::numeric_limits<uint64_t>::max());
  }
  return st;
}

// One seed's run. The model is a separate MemoryStorage fed the same changes; `candidates_`
// holds the model state after every record written since the last durable point, so that a
// recovered state can be matched against "some prefix of the records, at least the synced
// ones".
class WalFuzz {
 public:
  static constexpr uint64_t kCluster = 42;
  static constexpr int kStepsMax = 150;

  explicit WalFuzz(uint64_t seed) : rng_(seed) {}

  void Run() {
    Reopen();
    for (int step = 0; step < kStepsMax && !::testing::Test::HasFatalFailure(); ++step) {
      const uint64_t dice = rng_.Uniform(100);
      if (dice < 45) {
        Save();
      } else if (dice < 70) {
        Sync();
      } else if (dice < 82) {
        CompleteSync();
      } else if (dice < 88) {
        Compact();
      } else if (dice < 91) {
        disk_.FailNextWrites(1);
      } else {
        Restart();
      }
      if (wal_ != nullptr && wal_->failure().ok()) {
        ASSERT_EQ(wal_->wal_bytes(), disk_.Size());
        ASSERT_EQ(StateOf(*wal_), Current());
      }
    }
    Restart();
  }

  uint64_t restarts() const { return restarts_; }
  uint64_t torn_records() const { return torn_records_; }
  // Restarts that recovered some unsynced records / lost some.
  uint64_t kept_unsynced() const { return kept_unsynced_; }
  uint64_t lost_unsynced() const { return lost_unsynced_; }

 private:
  LogState Current() const { return StateOf(model_, model_snap_); }

  void Push() { candidates_.push_back(Current()); }

  // A Raft-like change: append at the end, or (as after a leader change) replace an
  // uncommitted suffix with a newer term's entries, or install a leader's snapshot.
  void Save() {
    const raft::HardState hs = model_.hard_state();
    const uint64_t last = model_.LastIndex().value();
    // Raft's commit index after a restart: a crash may keep a snapshot record but lose the
    // hard state saved after it, and everything in a snapshot is committed.
    const uint64_t commit = std::max(hs.commit.value(), model_snap_.meta.index.value());
    std::optional<raft::Snapshot> snap;
    std::vector<raft::Entry> ents;
    raft::HardState new_hs = hs;
    uint64_t from = last + 1;
    if (rng_.Chance(0.04)) {
      snap = raft::Snapshot();
      snap->meta.index =
          LogIndex(std::max(commit, model_snap_.meta.index.value() + 1) + rng_.Uniform(5));
      snap->meta.term = hs.term;
      snap->meta.conf_state.voters = {NodeId(1), NodeId(2), NodeId(3)};
      snap->data = "leader-image@" + std::to_string(snap->meta.index.value());
      from = snap->meta.index.value() + 1;
      new_hs.commit = snap->meta.index;
    } else if (rng_.Chance(0.15) && last > commit) {
      new_hs.term = hs.term + 1;  // a new leader overwrites part of the uncommitted suffix
      new_hs.vote = NodeId(1 + rng_.Uniform(3));
      from = commit + 1 + rng_.Uniform(last - commit);
    }
    const uint64_t count = rng_.Uniform(6);
    for (uint64_t i = 0; i < count; ++i) {
      raft::Entry e;
      e.index = LogIndex(from + i);
      e.term = new_hs.term;
      e.data = "s" + std::to_string(save_id_) + "/" + std::to_string(from + i);
      ents.push_back(std::move(e));
    }
    const uint64_t new_last = ents.empty() ? (snap ? from - 1 : last) : ents.back().index.value();
    if (rng_.Chance(0.5)) {
      new_hs.commit =
          LogIndex(new_hs.commit.value() + rng_.Uniform(new_last - new_hs.commit.value() + 1));
    }
    const bool with_hs = new_hs != hs || rng_.Chance(0.2);
    ++save_id_;
    const Status st = wal_->Save(snap, ents, with_hs ? std::optional(new_hs) : std::nullopt);
    if (!st.ok()) return OnFailure(st);
    ApplyToModel(snap, ents, with_hs ? std::optional(new_hs) : std::nullopt);
  }

  void ApplyToModel(const std::optional<raft::Snapshot>& snap, const std::vector<raft::Entry>& ents,
                    const std::optional<raft::HardState>& hs) {
    if (snap) {
      ASSERT_TRUE(model_.ApplySnapshot(*snap).ok());
      model_snap_ = *snap;
      Push();
    }
    // Entries and the hard state saved with them are one record (WalStorage::Save).
    if (!ents.empty()) {
      ASSERT_TRUE(model_.Append(ents).ok());
    }
    if (hs) model_.SetHardState(*hs);
    if (!ents.empty() || hs) Push();
  }

  void Sync() {
    const Status st = wal_->Sync();
    if (!st.ok()) return OnFailure(st);
    sync_requested_ = candidates_.size() - 1;
    if (rng_.Chance(0.5)) CompleteSync();
  }

  void CompleteSync() {
    if (!sync_requested_.has_value()) return;
    // Nothing in flight when nothing was pending at the Sync: that state was durable already.
    disk_.CompleteSync();
    ASSERT_FALSE(disk_.sync_in_flight());
    // Every state before the synced one can no longer be recovered.
    candidates_.erase(candidates_.begin(),
                      candidates_.begin() + static_cast<ptrdiff_t>(*sync_requested_));
    sync_requested_.reset();
  }

  void Compact() {
    const uint64_t snap_index = model_snap_.meta.index.value();
    const uint64_t commit = model_.hard_state().commit.value();
    if (commit <= snap_index) return;
    const LogIndex index(snap_index + 1 + rng_.Uniform(commit - snap_index));
    raft::ConfState cs;
    cs.voters = {NodeId(1), NodeId(2), NodeId(3)};
    const std::string image = "image@" + std::to_string(index.value());
    const Status st = wal_->Compact(index, cs, image);
    if (!st.ok()) return OnFailure(st);
    Result<raft::Snapshot> snap = model_.CreateSnapshot(index, &cs, image);
    ASSERT_TRUE(snap.ok());
    ASSERT_TRUE(model_.Compact(index).ok());
    model_snap_ = *snap;
    // Replace made everything durable at once.
    candidates_ = {Current()};
    sync_requested_.reset();
  }

  void OnFailure(const Status& st) {
    ASSERT_EQ(st.code(), Code::kIoError) << st.ToString();
    // Sticky: the WAL refuses further writes even though the fault was one-shot.
    ASSERT_EQ(wal_->Save(std::nullopt, {}, model_.hard_state()).code(), Code::kIoError);
    ASSERT_EQ(wal_->Sync().code(), Code::kIoError);
    Restart();
  }

  void Restart() {
    wal_.reset();
    disk_.Crash(rng_, /*torn_writes=*/rng_.Chance(0.7));
    ++restarts_;
    Reopen();
  }

  void Reopen() {
    Result<std::unique_ptr<storage::WalStorage>> w = storage::WalStorage::Open(&disk_, kCluster);
    // An injected fault may still be armed and hit the rewrite of a torn tail: retry once.
    if (!w.ok() && w.status().code() == Code::kIoError) {
      w = storage::WalStorage::Open(&disk_, kCluster);
    }
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    wal_ = std::move(*w);
    torn_records_ += wal_->recovery_stats().torn_records;
    CheckRecovered(StateOf(*wal_));
    // The model restarts from what was recovered.
    model_ = raft::MemoryStorage();
    model_snap_ = wal_->snapshot();
    if (!model_snap_.IsEmpty()) {
      ASSERT_TRUE(model_.ApplySnapshot(model_snap_).ok());
    }
    const LogState rec = StateOf(*wal_);
    ASSERT_TRUE(model_.Append(rec.entries).ok());
    model_.SetHardState(rec.hs);
    candidates_ = {Current()};
    ASSERT_EQ(candidates_.front(), rec);
    sync_requested_.reset();
  }

  void CheckRecovered(const LogState& rec) {
    if (candidates_.empty()) return;  // the first open of an empty disk
    // Every synced entry is there: committed entries of the durable state are in the log or
    // in the snapshot, unchanged, and the hard state did not go back.
    const LogState& durable = candidates_.front();
    ASSERT_GE(rec.hs.term, durable.hs.term);
    ASSERT_GE(rec.hs.commit, durable.hs.commit);
    for (const raft::Entry& e : durable.entries) {
      if (e.index > durable.hs.commit || e.index <= rec.snap.meta.index) continue;
      ASSERT_LE(e.index, rec.last);
      ASSERT_EQ(rec.entries[e.index.value() - rec.first.value()], e);
    }
    // Prefix-consistent: exactly the state after some record at or after the durable one.
    const auto it = std::find(candidates_.begin(), candidates_.end(), rec);
    ASSERT_TRUE(it != candidates_.end())
        << "recovered last=" << rec.last << " commit=" << rec.hs.commit
        << " is not a state the saved records passed through";
    kept_unsynced_ += it != candidates_.begin();
    lost_unsynced_ += it + 1 != candidates_.end();
  }

  env::Random rng_;
  SimDisk disk_;
  std::unique_ptr<storage::WalStorage> wal_;
  raft::MemoryStorage model_;
  raft::Snapshot model_snap_;
  // candidates_[0] is durable; later ones are the states after each later record.
  std::vector<LogState> candidates_;
  // Index in candidates_ of the state a requested, not yet completed, sync covers.
  std::optional<size_t> sync_requested_;
  uint64_t save_id_ = 0;
  uint64_t restarts_ = 0;
  uint64_t torn_records_ = 0;
  uint64_t kept_unsynced_ = 0;
  uint64_t lost_unsynced_ = 0;
};

TEST(SimDiskWalTest, RecoversASyncedPrefixConsistentLogAcrossSeeds) {
  uint64_t restarts = 0;
  uint64_t torn = 0;
  uint64_t kept = 0;
  uint64_t lost = 0;
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    WalFuzz fuzz(seed);
    fuzz.Run();
    if (::testing::Test::HasFatalFailure()) return;
    restarts += fuzz.restarts();
    torn += fuzz.torn_records();
    kept += fuzz.kept_unsynced();
    lost += fuzz.lost_unsynced();
  }
  // The run exercised what it is about: many restarts, many over a torn tail, some keeping
  // unsynced records and some losing them.
  EXPECT_GT(restarts, 5000u);
  EXPECT_GT(torn, 1000u);
  EXPECT_GT(kept, 500u);
  EXPECT_GT(lost, 500u);
}

}  // namespace
}  // namespace synod::sim
