// SnapshotStreams: two nodes' streams on one io_context, wired to each other by hand, the
// sender reading a GroupStorage's view of a real state machine's stored state.

#include "cluster/snapshot_stream.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/peer_wire.h"
#include "storage/engine.h"
#include "storage/group_storage.h"
#include "storage/node_db.h"
#include "storage/rocks_format.h"
#include "storage/storage_test_util.h"

namespace synod::cluster {
namespace {

constexpr GroupId kGroup{2};
constexpr NodeId kSender{1};
constexpr NodeId kReceiver{2};
constexpr uint64_t kCluster = 77;

// A shard's stored state: a state machine's writes staged into a GroupStorage and written.
struct Shard {
  storage::MemEngine engine;
  std::unique_ptr<storage::NodeDb> db;
  std::unique_ptr<storage::GroupStorage> gs;
  kv::StateMachine sm;

  Shard() {
    auto d = storage::NodeDb::Open(&engine, "mem", kCluster);
    SYNOD_ASSERT(d.ok());
    db = std::move(*d);
    auto g = storage::GroupStorage::Open(db.get(), kGroup, storage::StateSpan::Slots(100, 9000));
    SYNOD_ASSERT(g.ok());
    gs = std::move(*g);
    sm.set_track_changes(true);
    sm.SetRange(SlotRange{100, 9000});
  }

  // `n` writes of keys whose slots the shard owns, each in a client session; written.
  void Fill(int n) {
    std::vector<raft::Entry> ents;
    std::map<uint64_t, uint64_t> seqs;  // by client
    int applied = 0;
    for (int i = 0; applied < n; ++i) {
      std::string key = "key:" + std::to_string(i);
      if (!sm.Owns(KeySlot(key))) continue;
      kv::Command c;
      c.op = kv::Op::kPut;
      c.key = key;
      c.value = std::string(static_cast<size_t>(10 + i % 300), static_cast<char>('a' + i % 26));
      c.client_id = 1 + static_cast<uint64_t>(i % 7);
      c.seq = ++seqs[c.client_id];
      c.slots = SlotRange{KeySlot(key), KeySlot(key)};
      const LogIndex index = sm.applied_index() + 1;
      const kv::Reply reply = sm.Apply(index, c);
      SYNOD_ASSERT(reply.code == kv::ReplyCode::kOk);
      raft::Entry e;
      e.term = Term(1);
      e.index = index;
      ents.push_back(e);
      ++applied;
    }
    const LogIndex last = sm.applied_index();
    SYNOD_ASSERT(gs->Save(std::nullopt, ents, raft::HardState{Term(1), kSender, last}).ok());
    kv::StateChanges ch = sm.TakeChanges();
    storage::StateWrites w;
    w.data = std::move(ch.data);
    w.sessions = std::move(ch.sessions);
    w.applied = ch.applied;
    w.meta = std::move(ch.meta);
    gs->StageState(w);
    SYNOD_ASSERT(db->Sync().ok());
  }
};

// A store's state as read back: keys (with their stored values) and sessions.
struct Stored {
  std::map<std::string, std::string> data;
  std::map<uint64_t, std::string> sessions;
};

Stored ReadStored(const storage::GroupStorage& gs) {
  Stored out;
  const Status s = gs.ForEachState(
      [&](std::string_view k, std::string_view v) {
        out.data.emplace(k, v);
        return Status::Ok();
      },
      [&](uint64_t id, std::string_view v) {
        out.sessions.emplace(id, v);
        return Status::Ok();
      });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

raft::Message SnapMessage(LogIndex index) {
  raft::Message m;
  m.type = raft::MessageType::kSnap;
  m.from = kSender;
  m.to = kReceiver;
  m.term = Term(1);
  raft::Snapshot s;
  s.meta.index = index;
  s.meta.term = Term(1);
  s.meta.conf_state.voters = {kSender, kReceiver};
  s.stream = index.value();
  m.snapshot = s;
  return m;
}

class StreamTest : public ::testing::Test {
 protected:
  struct Ended {
    GroupId group;
    NodeId to;
    bool delivered;
  };
  struct Delivered {
    raft::Message m;
    uint64_t local;
    kv::internal::State state;
    storage::ReceivedState stored;
  };

  void SetUp() override {
    SnapshotStreamOptions o;
    o.chunk_bytes = 512;
    o.window = 2;
    o.idle_timeout_ms = 1000;
    SnapshotStreamHost a;
    a.send = [this](NodeId to, std::string p) {
      EXPECT_EQ(to, kReceiver);
      if (to_receiver_) to_receiver_(p);
      asio::post(io_, [this, p = std::move(p)] { receiver_->OnPeerMessage(kSender, p); });
    };
    a.ended = [this](GroupId g, NodeId to, bool delivered) {
      ended_.push_back({g, to, delivered});
    };
    a.take_view = [this](GroupId g) {
      EXPECT_EQ(g, kGroup);
      return shard_.gs->TakeStateView();
    };
    a.target_of = [](GroupId, std::optional<SlotRange>) { return std::nullopt; };
    a.deliver = [](GroupId, raft::Message, uint64_t, kv::internal::State, storage::ReceivedState) {
      return Status::Unavailable("not a receiver");
    };
    a.now_ms = [this] { return now_ms_; };
    SnapshotStreamHost b;
    b.send = [this](NodeId to, std::string p) {
      EXPECT_EQ(to, kSender);
      if (drop_acks_) return;
      asio::post(io_, [this, p = std::move(p)] { sender_->OnPeerMessage(kReceiver, p); });
    };
    b.ended = [](GroupId, NodeId, bool) { ADD_FAILURE() << "the receiver sent nothing"; };
    b.take_view = [](GroupId) { return std::nullopt; };
    b.target_of = [this](GroupId g,
                         std::optional<SlotRange> range) -> std::optional<ReceiveTarget> {
      if (g != kGroup) return std::nullopt;
      declared_ = range;
      // An empty replica's span.
      return ReceiveTarget{storage::StateSpan::Slots(0, kSlotCount - 1), direct_};
    };
    b.deliver = [this](GroupId g, raft::Message m, uint64_t local, kv::internal::State st,
                       storage::ReceivedState stored) {
      EXPECT_EQ(g, kGroup);
      delivered_.push_back({std::move(m), local, std::move(st), std::move(stored)});
      return Status::Ok();
    };
    b.now_ms = [this] { return now_ms_; };
    sender_ = std::make_unique<SnapshotStreams>(io_, o, std::move(a), Logger());
    receiver_ = std::make_unique<SnapshotStreams>(io_, o, std::move(b), Logger());
  }

  void TearDown() override {
    sender_->Stop();
    receiver_->Stop();
  }

  // Starts the stream of the shard's state as it is.
  LogIndex StartStream() {
    const LogIndex index = shard_.sm.applied_index();
    shard_.gs->WantStateView(index);
    EXPECT_EQ(shard_.gs->state_view_index(), index);
    sender_->Send(kGroup, SnapMessage(index));
    return index;
  }

  // Runs the io_context until `done` (or `max_ms`, 2 s by default).
  void RunUntil(const std::function<bool()>& done, int max_ms = 2000) {
    // The streams' threads post to the io_context: it must wait for them, not return idle.
    auto guard = asio::make_work_guard(io_);
    for (int i = 0; i < max_ms / 10 && !done(); ++i) {
      io_.run_for(std::chrono::milliseconds(10));
      io_.restart();
    }
  }

  asio::io_context io_;
  Shard shard_;
  int64_t now_ms_ = 1000;
  bool drop_acks_ = false;
  storage::Engine* direct_ = nullptr;  // the receiver writes keys straight into it
  std::optional<SlotRange> declared_;
  std::function<void(std::string&)> to_receiver_;
  std::unique_ptr<SnapshotStreams> sender_;
  std::unique_ptr<SnapshotStreams> receiver_;
  std::vector<Ended> ended_;
  std::vector<Delivered> delivered_;
};

TEST_F(StreamTest, TheReceiverBuildsTheSendersStateAndItsStoredForm) {
  shard_.Fill(400);
  const LogIndex index = StartStream();
  RunUntil([&] { return !ended_.empty(); });
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_TRUE(ended_[0].delivered);
  EXPECT_EQ(ended_[0].to, kReceiver);
  ASSERT_EQ(delivered_.size(), 1u);
  Delivered& d = delivered_[0];
  ASSERT_TRUE(d.m.snapshot.has_value());
  EXPECT_EQ(d.m.snapshot->meta.index, index);
  EXPECT_EQ(d.m.snapshot->stream, d.local);
  EXPECT_TRUE(d.m.snapshot->data.empty());
  EXPECT_GT(sender_->counters().bytes_sent.load(), 512u * 10) << "many chunks, not one";
  EXPECT_EQ(sender_->counters().sent.load(), 1u);
  EXPECT_EQ(receiver_->counters().received.load(), 1u);
  // The state: equal to the sender's, sessions included.
  EXPECT_EQ(d.state.applied_index, index);
  kv::StateMachine got;
  got.Adopt(std::move(d.state));
  EXPECT_EQ(got.Digest(), shard_.sm.Digest());
  EXPECT_EQ(got.key_count(), 400u);
  EXPECT_EQ(got.session_count(), 7u);
  // Its stored form, written into another node's store, reads back as the sender's.
  storage::MemEngine engine;
  auto db = storage::NodeDb::Open(&engine, "mem2", kCluster);
  ASSERT_TRUE(db.ok());
  auto gs = storage::GroupStorage::Open(db->get(), kGroup, storage::StateSpan::Slots(100, 9000));
  ASSERT_TRUE(gs.ok());
  EXPECT_EQ(d.stored.applied, index);
  (*gs)->DepositReceived(d.local, std::move(d.stored));
  ASSERT_TRUE((*gs)->StageReceived(d.local).ok());
  ASSERT_TRUE((*db)->Sync().ok());
  const Stored mine = ReadStored(**gs);
  const Stored theirs = ReadStored(*shard_.gs);
  EXPECT_EQ(mine.data.size(), 400u);
  EXPECT_EQ(mine.data, theirs.data);
  EXPECT_EQ(mine.sessions, theirs.sessions);
  EXPECT_EQ((*gs)->state_applied(), index);
}

// An empty replica's keys go straight into its node's database as they arrive (after the
// slots' old contents are deleted); the install's batch carries the rest.
TEST_F(StreamTest, AnEmptyReplicasKeysAreWrittenAsTheyArrive) {
  shard_.Fill(300);
  storage::testing::TempDir tmp;
  auto db = storage::NodeDb::Open(tmp.db(), kCluster);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto gs = storage::GroupStorage::Open(db->get(), kGroup, storage::StateSpan::Slots(0, 16383));
  ASSERT_TRUE(gs.ok());
  // A key left under the slots (a stream cut short by a crash): gone after the stream.
  std::string stale_key = "stale";
  while (!SlotRange{100, 9000}.Contains(KeySlot(stale_key))) stale_key += "x";
  const std::string stale = storage::GroupStorage::SlotDataKey(stale_key);
  {
    rocksdb::WriteBatch b;
    ASSERT_TRUE(b.Put(stale, storage::format::FrameBytes(stale, "stale")).ok());
    ASSERT_TRUE((*db)->engine().Write(&b).ok());
  }
  direct_ = &(*db)->engine();
  const LogIndex index = StartStream();
  RunUntil([&] { return !ended_.empty(); });
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_TRUE(ended_[0].delivered);
  ASSERT_TRUE(declared_.has_value());
  EXPECT_EQ(declared_->first, 100);
  EXPECT_EQ(declared_->last, 9000);
  ASSERT_EQ(delivered_.size(), 1u);
  Delivered& d = delivered_[0];
  EXPECT_LT(d.stored.batch.GetDataSize(), 20000u) << "the keys went into the database already";
  (*gs)->SetStateSlots(SlotRange{100, 9000});
  (*gs)->DepositReceived(d.local, std::move(d.stored));
  ASSERT_TRUE((*gs)->StageReceived(d.local).ok());
  ASSERT_TRUE((*db)->Sync().ok());
  const Stored mine = ReadStored(**gs);
  const Stored theirs = ReadStored(*shard_.gs);
  EXPECT_EQ(mine.data, theirs.data);
  EXPECT_FALSE(mine.data.contains(stale_key));
  EXPECT_EQ(mine.sessions, theirs.sessions);
  EXPECT_EQ(mine.sessions.size(), 7u);
  EXPECT_EQ((*gs)->state_applied(), index);
  kv::StateMachine got;
  got.Adopt(std::move(d.state));
  EXPECT_EQ(got.Digest(), shard_.sm.Digest());
}

TEST_F(StreamTest, ADamagedRecordIsRefusedAndNothingIsDelivered) {
  shard_.Fill(200);
  int chunks = 0;
  to_receiver_ = [&](std::string& p) {
    if (peer_wire::KindOf(p) == static_cast<uint8_t>(peer_wire::Kind::kSnapChunk) &&
        ++chunks == 3) {
      p[p.size() - 2] ^= 0x40;  // a value's byte: its checksum no longer matches
    }
  };
  StartStream();
  RunUntil([&] { return !ended_.empty(); });
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_FALSE(ended_[0].delivered);
  EXPECT_TRUE(delivered_.empty());
  EXPECT_EQ(receiver_->receiving(), 0u);
  EXPECT_GE(receiver_->counters().failed.load(), 1u);
}

TEST_F(StreamTest, AStreamWithoutProgressEndsAtTheTimeoutOnBothSides) {
  shard_.Fill(200);
  drop_acks_ = true;  // the window fills and nothing more is sent
  StartStream();
  RunUntil([&] { return receiver_->receiving() == 1; });
  RunUntil([] { return false; });  // nothing more happens: the window is full
  EXPECT_TRUE(ended_.empty());
  EXPECT_EQ(sender_->sending(), 1u);
  now_ms_ += 1001;
  sender_->Tick();
  receiver_->Tick();
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_FALSE(ended_[0].delivered);
  EXPECT_EQ(sender_->sending(), 0u);
  EXPECT_EQ(receiver_->receiving(), 0u);
  EXPECT_TRUE(delivered_.empty());
}

TEST_F(StreamTest, ARateLimitHoldsChunksBackUntilTheBucketRefillsAndLiftingItLetsThemGo) {
  shard_.Fill(400);
  constexpr uint64_t kRate = 4096;  // bytes/s: a 512-byte chunk every 125 ms
  sender_->SetRate(kRate);
  EXPECT_EQ(sender_->rate(), kRate);
  StartStream();
  // The clock stands still: the bucket starts empty and nothing goes.
  RunUntil([&] { return sender_->counters().bytes_sent.load() > 0; }, 300);
  EXPECT_EQ(sender_->counters().bytes_sent.load(), 0u);
  // A chunk or so per 125 ms: the bytes sent never run ahead of the rate (and a bucket's worth).
  int64_t elapsed_ms = 0;
  while (ended_.empty() && sender_->counters().bytes_sent.load() < 6000) {
    ASSERT_LT(elapsed_ms, 60'000);
    now_ms_ += 125;
    elapsed_ms += 125;
    sender_->Tick();
    const uint64_t before = sender_->counters().bytes_sent.load();
    RunUntil([&] { return sender_->counters().bytes_sent.load() > before; }, 50);
    EXPECT_LE(sender_->counters().bytes_sent.load(),
              kRate * static_cast<uint64_t>(elapsed_ms) / 1000 + 2 * 512 + 64);
  }
  EXPECT_GE(elapsed_ms, 1000);
  EXPECT_TRUE(ended_.empty());
  // No limit: the rest goes at once, the clock still.
  sender_->SetRate(0);
  RunUntil([&] { return !ended_.empty(); });
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_TRUE(ended_[0].delivered);
  ASSERT_EQ(delivered_.size(), 1u);
  kv::StateMachine got;
  got.Adopt(std::move(delivered_[0].state));
  EXPECT_EQ(got.Digest(), shard_.sm.Digest());
}

TEST_F(StreamTest, StopEndsAStreamInFlightAsNotDelivered) {
  shard_.Fill(200);
  drop_acks_ = true;
  StartStream();
  RunUntil([&] { return receiver_->receiving() == 1; });
  sender_->Stop();  // joins its reading thread, blocked on the full window
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_FALSE(ended_[0].delivered);
  receiver_->Stop();
  EXPECT_EQ(receiver_->receiving(), 0u);
}

TEST_F(StreamTest, ASnapshotWithoutItsViewEndsAtOnce) {
  shard_.Fill(10);
  sender_->Send(kGroup, SnapMessage(shard_.sm.applied_index()));  // no view was wanted
  ASSERT_EQ(ended_.size(), 1u);
  EXPECT_FALSE(ended_[0].delivered);
}

TEST(StreamRecordTest, RecordsRoundTripAndBadBytesAreErrors) {
  std::string chunk;
  AppendStreamRecord(StreamRecord::kData, "k", std::string(200, 'v'), &chunk);
  AppendStreamRecord(StreamRecord::kSession, "", "", &chunk);
  StreamRecordReader r(chunk);
  StreamRecord kind{};
  std::string_view key;
  std::string_view value;
  ASSERT_TRUE(r.Next(&kind, &key, &value));
  EXPECT_EQ(kind, StreamRecord::kData);
  EXPECT_EQ(key, "k");
  EXPECT_EQ(value.size(), 200u);
  ASSERT_TRUE(r.Next(&kind, &key, &value));
  EXPECT_EQ(kind, StreamRecord::kSession);
  EXPECT_FALSE(r.Next(&kind, &key, &value));
  EXPECT_TRUE(r.status().ok());
  for (size_t cut = 1; cut < chunk.size() - 3; cut += 7) {
    StreamRecordReader t(std::string_view(chunk).substr(0, cut));
    while (t.Next(&kind, &key, &value)) {
    }
    EXPECT_FALSE(t.status().ok()) << "cut at " << cut;
  }
  const std::string unknown_kind("\x09\x01k\x01v", 5);
  StreamRecordReader bad(unknown_kind);
  EXPECT_FALSE(bad.Next(&kind, &key, &value));
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace synod::cluster
