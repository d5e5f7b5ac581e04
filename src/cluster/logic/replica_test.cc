// Replica: how client writes travel through Raft. Three replicas on in-memory disks, messages
// delivered by hand, so that the test sees every message a round sends.
#include "cluster/logic/replica.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "env/disk.h"
#include "kv/command.h"
#include "storage/engine.h"
#include "storage/group_storage.h"
#include "storage/node_db.h"
#include "storage/wal_storage.h"

namespace synod::cluster {
namespace {

class MemoryDisk final : public env::Disk {
 public:
  Status Append(std::string_view bytes) override {
    data_.append(bytes);
    return Status::Ok();
  }
  Status Sync() override { return Status::Ok(); }
  Result<std::string> ReadAll() override { return data_; }
  Status Replace(std::string_view bytes) override {
    data_.assign(bytes);
    return Status::Ok();
  }
  uint64_t Size() const override { return data_.size(); }

 private:
  std::string data_;
};

class Outbox final : public RaftTransport {
 public:
  void Send(GroupId group, raft::Message msg) override {
    EXPECT_EQ(group, GroupId(1));
    sent.push_back(std::move(msg));
  }
  // Quiescence is the Store's; a Replica never sends these.
  void SendQuiesce(NodeId, GroupId, Term, LogIndex) override { ADD_FAILURE() << "SendQuiesce"; }
  void SendWake(NodeId, GroupId) override { ADD_FAILURE() << "SendWake"; }
  void SendRemoved(NodeId, GroupId, LogIndex) override { ADD_FAILURE() << "SendRemoved"; }
  std::deque<raft::Message> sent;
};

class NoObserver final : public ReplicaObserver {
 public:
  void OnApply(NodeId, GroupId, const raft::Entry&) override {}
  void OnSnapshot(NodeId, GroupId, const raft::SnapshotMeta&) override {}
  void OnSoftState(NodeId, GroupId, const raft::SoftState&, Term) override {}
};

constexpr uint64_t kClusterId = 7;

class ReplicaGroup {
 public:
  explicit ReplicaGroup(int n,
                        size_t batches_in_flight = ReplicaOptions{}.proposal_batches_in_flight,
                        size_t proposal_hold_max = ReplicaOptions{}.proposal_hold_max,
                        size_t read_batches_in_flight = ReplicaOptions{}.read_batches_in_flight) {
    for (int i = 1; i <= n; ++i) {
      auto node = std::make_unique<Node>();
      node->id = NodeId(static_cast<uint64_t>(i));
      auto wal = storage::WalStorage::Open(&node->disk, kClusterId);
      SYNOD_ASSERT(wal.ok());
      node->wal = std::move(wal).value();
      raft::Snapshot s;
      s.meta.index = LogIndex(1);
      s.meta.term = Term(1);
      for (int v = 1; v <= n; ++v) s.meta.conf_state.voters.insert(NodeId(uint64_t(v)));
      s.data = kv::StateMachine(kv::Options{}).Snapshot();
      SYNOD_ASSERT(node->wal->Save(s, {}, raft::HardState{Term(1), kNoNode, LogIndex(1)}).ok());
      SYNOD_ASSERT(node->wal->Sync().ok());
      ReplicaOptions ro;
      ro.raft.id = node->id;
      ro.raft.random_seed = static_cast<uint64_t>(i) * 7919 + 1;
      ro.proposal_batches_in_flight = batches_in_flight;
      ro.proposal_hold_max = proposal_hold_max;
      // Reads: this node's ReadIndex requests out, and as leader the rounds out.
      ro.read_batches_in_flight = read_batches_in_flight;
      ro.raft.max_read_rounds_in_flight = read_batches_in_flight;
      auto r = Replica::Create(ro, &node->out, node->wal.get(), &observer_, Logger());
      SYNOD_ASSERT(r.ok());
      node->replica = std::move(r).value();
      nodes_.push_back(std::move(node));
    }
  }

  Replica& replica(int i) { return *nodes_[static_cast<size_t>(i - 1)]->replica; }
  Outbox& out(int i) { return nodes_[static_cast<size_t>(i - 1)]->out; }

  // Runs every Ready of node i (the WAL syncs inside BeginReady).
  void Pump(int i) {
    Replica& r = replica(i);
    while (r.HasReady()) {
      r.BeginReady();
      r.FinishReady();
    }
  }

  // Delivers every queued message (and what it causes) until the group is quiet.
  void Settle() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      for (auto& n : nodes_) {
        Pump(static_cast<int>(n->id.value()));
        while (!n->out.sent.empty()) {
          raft::Message m = std::move(n->out.sent.front());
          n->out.sent.pop_front();
          delivered.push_back(m);
          replica(static_cast<int>(m.to.value())).Receive(std::move(m));
          any = true;
        }
      }
      if (!any) return;
    }
    FAIL() << "the group did not settle";
  }

  bool IsLeader(int i) { return replica(i).raw_node().raft().role() == raft::Role::kLeader; }

  // Only node i's clock runs, so it is the one whose election timeout fires.
  int ElectLeader(int i) {
    for (int t = 0; t < 200 && !IsLeader(i); ++t) {
      replica(i).Tick();
      Settle();
    }
    return IsLeader(i) ? i : 0;
  }

  std::vector<raft::Message> delivered;

 private:
  struct Node {
    NodeId id;
    MemoryDisk disk;
    Outbox out;
    std::unique_ptr<storage::WalStorage> wal;
    std::unique_ptr<Replica> replica;
  };
  NoObserver observer_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

kv::Command Set(uint64_t client, uint64_t seq, const std::string& key) {
  kv::Command c;
  c.op = kv::Op::kRedis;
  c.client_id = client;
  c.seq = seq;
  c.args = {"SET", key, "v" + std::to_string(seq)};
  c.now_ms = 1000;
  return c;
}

std::vector<const raft::Message*> OfType(const std::vector<raft::Message>& msgs,
                                         raft::MessageType type) {
  std::vector<const raft::Message*> out;
  for (const raft::Message& m : msgs) {
    if (m.type == type) out.push_back(&m);
  }
  return out;
}

TEST(ReplicaTest, WritesOfOneRoundLeaveInOneAppendPerFollower) {
  ReplicaGroup g(3);
  ASSERT_EQ(g.ElectLeader(1), 1);
  g.delivered.clear();

  std::vector<ClientReply> replies;
  for (uint64_t i = 1; i <= 20; ++i) {
    g.replica(1).Submit(Set(100 + i, 1, "k" + std::to_string(i)), ReadMode::kLinearizable,
                        [&](ClientReply r) { replies.push_back(std::move(r)); });
  }
  g.Settle();

  ASSERT_EQ(replies.size(), 20u);
  for (const ClientReply& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  // One MsgApp per follower carried all 20 entries, and one acknowledgement came back from
  // each (then the commit index travels in one more round).
  std::vector<const raft::Message*> apps = OfType(g.delivered, raft::MessageType::kApp);
  size_t with_entries = 0;
  for (const raft::Message* m : apps) {
    if (m->entries.empty()) continue;
    ++with_entries;
    EXPECT_EQ(m->entries.size(), 20u);
  }
  EXPECT_EQ(with_entries, 2u);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(g.replica(i).state_machine().keyspace().size(), 20u) << "node " << i;
  }
}

// The entries counts of the MsgApps that carried entries to node `to`, in sending order.
std::vector<size_t> AppendSizesTo(const std::vector<raft::Message>& msgs, uint64_t to) {
  std::vector<size_t> out;
  for (const raft::Message* m : OfType(msgs, raft::MessageType::kApp)) {
    if (m->to == NodeId(to) && !m->entries.empty()) out.push_back(m->entries.size());
  }
  return out;
}

void SubmitWrites(Replica& r, uint64_t first_client, int n, std::vector<ClientReply>* replies) {
  for (uint64_t c = first_client; c < first_client + static_cast<uint64_t>(n); ++c) {
    r.Submit(Set(c, 1, "h" + std::to_string(c)), ReadMode::kLinearizable,
             [replies](ClientReply reply) { replies->push_back(std::move(reply)); });
  }
}

// Submits waves of writes to the leader of a fresh group, running the leader's Readys after
// each wave but delivering nothing until the end; returns how many entries each MsgApp to node
// 2 carried.
std::vector<size_t> WavesUnder(size_t batches_in_flight, const std::vector<int>& waves) {
  ReplicaGroup g(3, batches_in_flight);
  SYNOD_ASSERT(g.ElectLeader(1) == 1);
  g.Settle();
  g.delivered.clear();
  std::vector<ClientReply> replies;
  uint64_t client = 100;
  int total = 0;
  for (const int n : waves) {
    SubmitWrites(g.replica(1), client, n, &replies);
    client += static_cast<uint64_t>(n);
    total += n;
    g.Pump(1);
  }
  g.Settle();
  EXPECT_EQ(replies.size(), static_cast<size_t>(total));
  for (const ClientReply& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(AppendSizesTo(g.delivered, 2), AppendSizesTo(g.delivered, 3));
  return AppendSizesTo(g.delivered, 2);
}

TEST(ReplicaTest, WritesArrivingWhileBatchesAreInFlightWaitAndGoTogether) {
  // One batch in flight: the waves behind the first wait for its commit and go as one.
  EXPECT_EQ(WavesUnder(1, {5, 4, 3}), (std::vector<size_t>{5, 7}));
  // Two (the default): the second wave goes at once, the third and fourth wait.
  EXPECT_EQ(WavesUnder(2, {5, 4, 3, 2}), (std::vector<size_t>{5, 4, 5}));
  // No hold: every wave is a round of its own.
  EXPECT_EQ(WavesUnder(0, {5, 4, 3}), (std::vector<size_t>{5, 4, 3}));
}

TEST(ReplicaTest, HeldWritesGoAtTheCapOrAtTheNextTick) {
  ReplicaGroup g(3, 1, 4);
  ASSERT_EQ(g.ElectLeader(1), 1);
  g.Settle();
  std::vector<ClientReply> replies;
  SubmitWrites(g.replica(1), 100, 2, &replies);
  g.Pump(1);
  SubmitWrites(g.replica(1), 200, 3, &replies);
  EXPECT_FALSE(g.replica(1).HasReady());
  SubmitWrites(g.replica(1), 300, 1, &replies);  // the fourth held write: the cap
  EXPECT_TRUE(g.replica(1).HasReady());
  g.Pump(1);
  // Two batches are in flight now; one more write waits, until a tick passes.
  SubmitWrites(g.replica(1), 400, 1, &replies);
  EXPECT_FALSE(g.replica(1).HasReady());
  g.replica(1).Tick();
  EXPECT_TRUE(g.replica(1).HasReady());
  g.Settle();
  ASSERT_EQ(replies.size(), 7u);
  for (const ClientReply& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
}

TEST(ReplicaTest, AFollowerForwardsTheWritesOfOneRoundAsOneProposal) {
  ReplicaGroup g(3);
  ASSERT_EQ(g.ElectLeader(1), 1);
  g.delivered.clear();

  std::vector<ClientReply> replies;
  for (uint64_t i = 1; i <= 5; ++i) {
    g.replica(2).Submit(Set(200 + i, 1, "f" + std::to_string(i)), ReadMode::kLinearizable,
                        [&](ClientReply r) { replies.push_back(std::move(r)); });
  }
  g.Settle();

  ASSERT_EQ(replies.size(), 5u);
  for (const ClientReply& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  std::vector<const raft::Message*> props = OfType(g.delivered, raft::MessageType::kProp);
  ASSERT_EQ(props.size(), 1u);
  EXPECT_EQ(props[0]->entries.size(), 5u);
}

// The heartbeats of distinct ReadIndex rounds the leader sent (a round's context rides on them).
template <class Messages>
std::set<std::string> ReadRounds(const Messages& sent) {
  std::set<std::string> out;
  for (const raft::Message& m : sent) {
    if (m.type == raft::MessageType::kHeartbeat && !m.context.empty()) out.insert(m.context);
  }
  return out;
}

void SubmitReads(Replica& r, int n, std::vector<ClientReply>* replies) {
  for (int i = 0; i < n; ++i) {
    r.SubmitRead([](const kv::StateMachine&) { return kv::Reply{}; }, ReadMode::kLinearizable,
                 [replies](ClientReply c) { replies->push_back(std::move(c)); });
  }
}

// Waves of ten reads submitted to the leader: the first `allowed` go out as rounds at once;
// the next is held back while that many are out, and goes as one round once one comes back.
void ReadWavesShareARoundBeyondTheLimit(size_t allowed) {
  ReplicaGroup g(3, ReplicaOptions{}.proposal_batches_in_flight, ReplicaOptions{}.proposal_hold_max,
                 allowed);
  ASSERT_EQ(g.ElectLeader(1), 1);
  g.Settle();
  g.out(1).sent.clear();

  std::vector<ClientReply> replies;
  for (size_t wave = 1; wave <= allowed; ++wave) {
    SubmitReads(g.replica(1), 10, &replies);
    g.Pump(1);
    EXPECT_EQ(ReadRounds(g.out(1).sent).size(), wave) << "wave " << wave << " goes at once";
  }
  SubmitReads(g.replica(1), 10, &replies);
  EXPECT_FALSE(g.replica(1).HasReady()) << "held while " << allowed << " are out";
  g.Pump(1);
  EXPECT_EQ(ReadRounds(g.out(1).sent).size(), allowed);
  EXPECT_TRUE(replies.empty());
  g.Settle();
  ASSERT_EQ(replies.size(), 10 * (allowed + 1));
  for (const ClientReply& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(ReadRounds(g.delivered).size(), allowed + 1);
}

TEST(ReplicaTest, ReadsArrivingDuringAReadIndexRoundGoTogetherInTheNextOne) {
  ReadWavesShareARoundBeyondTheLimit(1);
}

TEST(ReplicaTest, ReadsWaitOnlyWhileTwoReadIndexRoundsAreOut) {
  ReadWavesShareARoundBeyondTheLimit(2);
}

TEST(ReplicaTest, ALostReadIndexRoundHoldsTheNextOneBackForTwoTicksOnly) {
  ReplicaGroup g(3, ReplicaOptions{}.proposal_batches_in_flight, ReplicaOptions{}.proposal_hold_max,
                 /*read_batches_in_flight=*/2);
  ASSERT_EQ(g.ElectLeader(1), 1);
  g.Settle();
  // A follower forwards its reads' ReadIndex to the leader twice (two batches may be out);
  // both messages are lost.
  std::vector<ClientReply> replies;
  for (int wave = 0; wave < 2; ++wave) {
    SubmitReads(g.replica(2), 3, &replies);
    g.Pump(2);
    ASSERT_FALSE(g.out(2).sent.empty());
    g.out(2).sent.clear();
  }
  SubmitReads(g.replica(2), 3, &replies);
  EXPECT_FALSE(g.replica(2).HasReady());
  g.replica(2).Tick();
  EXPECT_FALSE(g.replica(2).HasReady());
  g.replica(2).Tick();
  EXPECT_TRUE(g.replica(2).HasReady());  // the next round goes out despite the lost one
  g.Settle();
  ASSERT_EQ(replies.size(), 3u);  // the third wave; the first two wait for their timeout
  for (const ClientReply& r : replies) EXPECT_TRUE(r.status.ok()) << r.status.ToString();
}

TEST(ReplicaTest, WritesBatchedWithoutALeaderAreRefusedNotLost) {
  ReplicaGroup g(3);  // nobody campaigned: no leader
  std::vector<ClientReply> replies;
  for (uint64_t i = 1; i <= 3; ++i) {
    g.replica(2).Submit(Set(300 + i, 1, "n" + std::to_string(i)), ReadMode::kLinearizable,
                        [&](ClientReply r) { replies.push_back(std::move(r)); });
  }
  EXPECT_EQ(g.replica(2).pending_requests(), 3u);
  g.Settle();
  ASSERT_EQ(replies.size(), 3u);
  for (const ClientReply& r : replies) EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(g.replica(2).pending_requests(), 0u);
}

// Regression (found by the simulator once it ran the real node's storage): a replica that
// restarted with no stored state, restored the snapshot image and replayed the log, staged the
// whole state once (a reset), but left its own "reset pending" flag set; the next staging then
// replaced the stored state again with only the keys touched since, and a later restart lost the
// replayed keys.
TEST(ReplicaTest, RestartWithoutStoredStateKeepsTheReplayedKeysInTheStore) {
  storage::MemEngine engine;
  const auto open = [&engine](std::unique_ptr<storage::NodeDb>* db,
                              std::unique_ptr<storage::GroupStorage>* store) {
    auto d = storage::NodeDb::Open(&engine, "memory", kClusterId);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    *db = std::move(*d);
    auto s = storage::GroupStorage::Open(db->get(), GroupId(1),
                                         storage::StateSpan::Slots(0, kSlotCount - 1));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    *store = std::move(*s);
  };
  {  // A log that a crash left without any state record: snapshot at 1, SETs at 2..4.
    std::unique_ptr<storage::NodeDb> db;
    std::unique_ptr<storage::GroupStorage> store;
    open(&db, &store);
    raft::Snapshot snap;
    snap.meta.index = LogIndex(1);
    snap.meta.term = Term(1);
    snap.meta.conf_state.voters = {NodeId(1)};
    snap.data = kv::StateMachine(kv::Options{}).Snapshot();
    std::vector<raft::Entry> ents;
    for (uint64_t i = 2; i <= 4; ++i) {
      raft::Entry e;
      e.term = Term(1);
      e.index = LogIndex(i);
      e.data = kv::EncodeCommand(Set(i, 1, "replayed" + std::to_string(i)));
      ents.push_back(std::move(e));
    }
    ASSERT_TRUE(store->Save(snap, ents, raft::HardState{Term(1), kNoNode, LogIndex(4)}).ok());
    ASSERT_TRUE(store->Sync().ok());
    EXPECT_EQ(store->state_applied(), LogIndex(0));
  }
  {  // Restart: replay, become leader, write one more key; every round is staged.
    std::unique_ptr<storage::NodeDb> db;
    std::unique_ptr<storage::GroupStorage> store;
    open(&db, &store);
    Outbox out;
    NoObserver observer;
    ReplicaOptions ro;
    ro.raft.id = NodeId(1);
    ro.raft.random_seed = 5;
    ro.state_flush_entries = 1000;  // only resets and forced flushes stage
    auto r = Replica::Create(ro, &out, store.get(), &observer, Logger());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Replica& replica = **r;
    const auto pump = [&] {
      for (int i = 0; i < 100 && replica.HasReady(); ++i) {
        replica.BeginReady();
        replica.FinishReady();
      }
    };
    for (int t = 0; t < 100 && replica.raw_node().raft().role() != raft::Role::kLeader; ++t) {
      replica.Tick();
      pump();
    }
    ASSERT_EQ(replica.raw_node().raft().role(), raft::Role::kLeader);
    bool done = false;
    replica.Submit(Set(9, 1, "written"), ReadMode::kLinearizable, [&](ClientReply reply) {
      EXPECT_TRUE(reply.status.ok()) << reply.status.ToString();
      done = true;
    });
    pump();
    ASSERT_TRUE(done);
    EXPECT_EQ(replica.state_machine().keyspace().size(), 4u);
    replica.FlushState();  // as at a shutdown: stage what was applied since
    ASSERT_TRUE(store->Sync().ok());
  }
  // What the store holds is the whole state.
  std::unique_ptr<storage::NodeDb> db;
  std::unique_ptr<storage::GroupStorage> store;
  open(&db, &store);
  std::set<std::string> keys;
  ASSERT_TRUE(store
                  ->ForEachState(
                      [&](std::string_view key, std::string_view) {
                        keys.emplace(key);
                        return Status::Ok();
                      },
                      [](uint64_t, std::string_view) { return Status::Ok(); })
                  .ok());
  EXPECT_EQ(keys, (std::set<std::string>{"replayed2", "replayed3", "replayed4", "written"}));
}

}  // namespace
}  // namespace synod::cluster
