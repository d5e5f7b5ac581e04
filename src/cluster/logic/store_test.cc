// Store: many groups on three nodes, each node one NodeDb over an in-memory engine, messages
// delivered by hand.
#include "cluster/logic/store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster/logic/descriptors.h"
#include "cluster/logic/layout.h"
#include "cluster/logic/shard_map.h"
#include "common/slot.h"
#include "kv/command.h"
#include "storage/engine.h"

namespace synod::cluster {
namespace {

constexpr uint64_t kClusterId = 9;
constexpr int kNodes = 3;
// Three groups, each a third of the slots.
const std::map<GroupId, storage::StateSpan> kGroups = {
    {GroupId(2), storage::StateSpan::Slots(0, 5460)},
    {GroupId(3), storage::StateSpan::Slots(5461, 10922)},
    {GroupId(4), storage::StateSpan::Slots(10923, kSlotCount - 1)},
};

struct Envelope {
  GroupId group;
  raft::Message m;
};

struct Notice {
  NodeId to;
  GroupId group;
  bool wake = false;  // else a quiesce notice of (term, index)
  Term term;
  LogIndex index;
  bool removed = false;  // a removal notice of index
};

class Outbox final : public RaftTransport {
 public:
  void Send(GroupId group, raft::Message msg) override { sent.push_back({group, std::move(msg)}); }
  void SendQuiesce(NodeId to, GroupId group, Term term, LogIndex index) override {
    notices.push_back({to, group, false, term, index});
  }
  void SendWake(NodeId to, GroupId group) override { notices.push_back({to, group, true, {}, {}}); }
  void SendRemoved(NodeId to, GroupId group, LogIndex index) override {
    notices.push_back({to, group, false, {}, index, true});
  }
  std::deque<Envelope> sent;
  std::deque<Notice> notices;
};

// A key whose slot lies in the group's span.
std::string KeyOf(GroupId group, int n = 0) {
  const storage::StateSpan span = kGroups.at(group);
  for (int i = 0;; ++i) {
    std::string k = "key" + std::to_string(i);
    const uint16_t slot = KeySlot(k);
    if (slot >= span.first_slot && slot <= span.last_slot && n-- == 0) return k;
  }
}

kv::Command Set(uint64_t client, const std::string& key, const std::string& value) {
  kv::Command c;
  c.op = kv::Op::kRedis;
  c.client_id = client;
  c.seq = 1;
  c.args = {"SET", key, value};
  c.now_ms = 1000;
  return c;
}

class StoreCluster {
 public:
  // quiesce_after_ticks: StoreOptions's (0: groups never quiesce); state_flush_entries: the
  // replicas' (ReplicaOptions).
  explicit StoreCluster(int quiesce_after_ticks = 0, bool lease_reads = false,
                        uint64_t state_flush_entries = 1000)
      : quiesce_after_ticks_(quiesce_after_ticks),
        lease_reads_(lease_reads),
        state_flush_entries_(state_flush_entries) {
    for (int i = 1; i <= kNodes; ++i) {
      nodes_.push_back(std::make_unique<Node>());
      Open(i, /*bootstrap=*/true);
    }
  }

  // Opens node i's database and store and adds every group (bootstrapping new ones).
  void Open(int i, bool bootstrap) {
    Node& n = node(i);
    auto db = storage::NodeDb::Open(&n.engine, "node", kClusterId);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    n.db = std::move(*db);
    StoreOptions o;
    o.self = NodeId(static_cast<uint64_t>(i));
    o.random_seed = static_cast<uint64_t>(i) * 7919;
    o.quiesce_after_ticks = quiesce_after_ticks_;
    o.replica.state_flush_entries = state_flush_entries_;
    if (lease_reads_) {
      o.replica.raft.check_quorum = true;
      o.replica.raft.read_only_option = raft::ReadOnlyOption::kLeaseBased;
    }
    n.store = std::make_unique<Store>(o, n.db.get(), &n.out, nullptr, Logger());
    std::set<NodeId> voters;
    if (bootstrap) {
      for (int v = 1; v <= kNodes; ++v) voters.insert(NodeId(static_cast<uint64_t>(v)));
    }
    for (const auto& [g, span] : kGroups) {
      const Status s = n.store->AddGroup(g, span, voters);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  // Drops node i's store and database (its engine keeps what was written), as a crash would.
  void Crash(int i) {
    Node& n = node(i);
    n.store.reset();
    n.db.reset();
    n.out.sent.clear();
    n.out.notices.clear();
  }

  Store& store(int i) { return *node(i).store; }
  storage::MemEngine& engine(int i) { return node(i).engine; }

  // Runs node i's rounds, each node write made durable at once.
  void Rounds(int i) {
    Node& n = node(i);
    for (int r = 0; r < 100 && n.store->HasWork(); ++r) {
      if (n.store->BeginRound()) WriteRound(i);
    }
  }

  // Makes node i's round in flight durable, as the host's storage thread does.
  void WriteRound(int i) {
    Node& n = node(i);
    storage::NodeDb::Write w = n.db->TakeWrite();
    const Status s = n.db->WriteTaken(w);
    n.db->OnWritten(s);
    n.store->FinishRound(s);
  }

  // Runs rounds and delivers messages until every node is quiet.
  void Settle() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      for (int i = 1; i <= kNodes; ++i) {
        if (!node(i).store) continue;
        Rounds(i);
        while (!node(i).out.sent.empty()) {
          Envelope e = std::move(node(i).out.sent.front());
          node(i).out.sent.pop_front();
          const int to = static_cast<int>(e.m.to.value());
          if (cut_.contains({to, e.group})) continue;
          if (node(to).store) (void)node(to).store->Receive(e.group, std::move(e.m));
          any = true;
        }
        while (!node(i).out.notices.empty()) {
          const Notice n = node(i).out.notices.front();
          node(i).out.notices.pop_front();
          Store* to = node(static_cast<int>(n.to.value())).store.get();
          if (to == nullptr) continue;
          if (n.removed) {
            to->ReceiveRemoved(NodeId(static_cast<uint64_t>(i)), n.group, n.index);
          } else if (n.wake) {
            to->ReceiveWake(NodeId(static_cast<uint64_t>(i)), n.group);
          } else {
            to->ReceiveQuiesce(NodeId(static_cast<uint64_t>(i)), n.group, n.term, n.index);
          }
          any = true;
        }
      }
      if (!any) return;
    }
    FAIL() << "the stores did not settle";
  }

  bool Leads(int i, GroupId g) {
    return store(i).replica(g)->raw_node().raft().role() == raft::Role::kLeader;
  }

  // Every live node's clock advances `ticks` ticks, everything delivered after each.
  void TickAll(int ticks) {
    for (int t = 0; t < ticks; ++t) {
      for (int i = 1; i <= kNodes; ++i) {
        if (node(i).store) store(i).Tick();
      }
      Settle();
    }
  }
  Outbox& out(int i) { return node(i).out; }
  // Messages of group g to node i are lost (Cut) or delivered again (Mend).
  void Cut(int i, GroupId g) { cut_.insert({i, g}); }
  void Mend(int i, GroupId g) { cut_.erase({i, g}); }
  bool Up(int i) { return node(i).store != nullptr; }

  // Only node i's clock runs, so that it wins every group's election.
  void ElectEverywhere(int i) {
    for (int t = 0; t < 300; ++t) {
      bool all = true;
      for (const auto& [g, span] : kGroups) all = all && Leads(i, g);
      if (all) return;
      store(i).Tick();
      Settle();
    }
    FAIL() << "node " << i << " did not win every group";
  }

 private:
  struct Node {
    storage::MemEngine engine;
    std::unique_ptr<storage::NodeDb> db;
    Outbox out;
    std::unique_ptr<Store> store;
  };
  Node& node(int i) { return *nodes_[static_cast<size_t>(i - 1)]; }
  const int quiesce_after_ticks_;
  const bool lease_reads_;
  const uint64_t state_flush_entries_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::set<std::pair<int, GroupId>> cut_;
};

TEST(StoreTest, GroupsElectAndApplyWritesToTheirOwnSlots) {
  StoreCluster c;
  c.ElectEverywhere(1);
  int replies = 0;
  for (const auto& [g, span] : kGroups) {
    c.store(1).Submit(g, Set(g.value() * 10, KeyOf(g), "v" + std::to_string(g.value())),
                      ReadMode::kLinearizable, [&](ClientReply r) {
                        EXPECT_TRUE(r.status.ok()) << r.status.ToString();
                        ++replies;
                      });
  }
  c.Settle();
  EXPECT_EQ(replies, 3);
  for (int i = 1; i <= kNodes; ++i) {
    for (const auto& [g, span] : kGroups) {
      const kv::Keyspace& ks = c.store(i).replica(g)->state_machine().keyspace();
      EXPECT_EQ(ks.size(), 1u) << "node " << i << " group " << g;
      EXPECT_NE(ks.FindRaw(KeyOf(g)), nullptr) << "node " << i << " group " << g;
    }
  }
}

TEST(StoreTest, OneNodeWriteCarriesTheRoundOfEveryGroup) {
  StoreCluster c;
  c.ElectEverywhere(1);
  for (const auto& [g, span] : kGroups) {
    c.store(1).Submit(g, Set(g.value(), KeyOf(g), "x"), ReadMode::kLinearizable,
                      [](ClientReply) {});
  }
  const uint64_t writes = c.engine(1).writes();
  ASSERT_TRUE(c.store(1).BeginRound());
  EXPECT_EQ(c.store(1).round_groups(), 3u);  // all three proposals wait for one write
  EXPECT_FALSE(c.store(1).HasWork());        // no second round while it is in flight
  c.WriteRound(1);
  EXPECT_EQ(c.engine(1).writes(), writes + 1);  // one write for the three groups
  c.Settle();
  for (const auto& [g, span] : kGroups) {
    EXPECT_NE(c.store(2).replica(g)->state_machine().keyspace().FindRaw(KeyOf(g)), nullptr);
  }
}

TEST(StoreTest, ARestartedNodeReopensEveryGroupWithItsData) {
  StoreCluster c;
  c.ElectEverywhere(1);
  for (const auto& [g, span] : kGroups) {
    for (int k = 0; k < 5; ++k) {
      c.store(1).Submit(g, Set(g.value() * 100 + k, KeyOf(g, k), "v"), ReadMode::kLinearizable,
                        [](ClientReply) {});
      c.Settle();
    }
  }
  c.Crash(2);
  c.Open(2, /*bootstrap=*/false);
  c.Rounds(2);  // replays the entries it knew committed, after the stored state
  for (const auto& [g, span] : kGroups) {
    const Replica* r = c.store(2).replica(g);
    ASSERT_NE(r, nullptr);
    // Its log holds all five; the last commit index may reach it only with the next append.
    EXPECT_GE(r->state_machine().keyspace().size(), 4u) << "group " << g;
    EXPECT_GE(r->raw_node().raft().log().LastIndex(), LogIndex(7)) << "group " << g;
  }
  for (int t = 0; t < 10; ++t) {  // the leader's heartbeats carry the commit index
    c.store(1).Tick();
    c.Settle();
  }
  for (const auto& [g, span] : kGroups) {
    EXPECT_EQ(c.store(2).replica(g)->state_machine().keyspace().size(), 5u) << "group " << g;
  }
  // Data keys lie in the slot ranges of their groups: "D" + slot + key.
  size_t data = 0;
  for (const auto& [key, value] : c.engine(2).records()) {
    if (key.empty() || key[0] != 'D') continue;
    ++data;
    const uint16_t slot =
        static_cast<uint16_t>((static_cast<uint8_t>(key[1]) << 8) | static_cast<uint8_t>(key[2]));
    EXPECT_EQ(slot, KeySlot(key.substr(3)));
  }
  EXPECT_LE(data, 15u);
}

TEST(StoreTest, RequestsAndMessagesForAGroupNotHeldAreRefused) {
  StoreCluster c;
  raft::Message m;
  m.type = raft::MessageType::kHeartbeat;
  m.from = NodeId(2);
  m.to = NodeId(1);
  EXPECT_EQ(c.store(1).Receive(GroupId(99), m).code(), Code::kNotFound);
  EXPECT_EQ(c.store(1).dropped_messages(), 1u);
  Status got;
  c.store(1).Submit(GroupId(99), Set(1, "k", "v"), ReadMode::kLinearizable,
                    [&](ClientReply r) { got = r.status; });
  EXPECT_EQ(got.code(), Code::kNotFound);
  EXPECT_EQ(c.store(1).AddGroup(GroupId(2), kGroups.at(GroupId(2)), {}).code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(c.store(1).AddGroup(GroupId(7), storage::StateSpan::Group(), {NodeId(5)}).code(),
            Code::kInvalidArgument);
}

TEST(StoreTest, AFailedNodeWriteFailsEveryGroupOfTheRound) {
  StoreCluster c;
  c.ElectEverywhere(1);
  for (const auto& [g, span] : kGroups) {
    c.store(1).Submit(g, Set(g.value(), KeyOf(g), "x"), ReadMode::kLinearizable,
                      [](ClientReply) {});
  }
  c.engine(1).SetFailWrites(true);
  c.Settle();
  for (const auto& [g, span] : kGroups) {
    EXPECT_TRUE(c.store(1).replica(g)->failed()) << "group " << g;
    EXPECT_EQ(c.store(1).replica(g)->failure().code(), Code::kIoError);
  }
}

// ---- quiescence ----

constexpr int kQuiesceTicks = 4;

// Raft messages node i sends during `ticks` ticks of its own clock.
size_t MessagesOverTicks(StoreCluster& c, int i, int ticks) {
  size_t sent = 0;
  for (int t = 0; t < ticks; ++t) {
    c.store(i).Tick();
    c.Rounds(i);
    sent += c.out(i).sent.size();
    c.Settle();
  }
  return sent;
}

TEST(StoreQuiescenceTest, IdleGroupsStopTickingOnEveryMemberAndSendNothing) {
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  c.TickAll(3 * kQuiesceTicks);
  for (int i = 1; i <= kNodes; ++i) {
    EXPECT_EQ(c.store(i).quiesced_count(), kGroups.size()) << "node " << i;
  }
  EXPECT_EQ(c.store(1).quiesces(), kGroups.size());
  // A quiesced leader sends no heartbeats, and its followers never time out.
  EXPECT_EQ(MessagesOverTicks(c, 1, 50), 0u);
  c.TickAll(50);
  for (const auto& [g, span] : kGroups) EXPECT_TRUE(c.Leads(1, g)) << "group " << g;
}

TEST(StoreQuiescenceTest, AWriteWakesOnlyItsGroupWhichQuiescesAgainOnceReplicated) {
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  c.TickAll(3 * kQuiesceTicks);
  const GroupId g(2);
  bool ok = false;
  c.store(1).Submit(g, Set(5, KeyOf(g), "v"), ReadMode::kLinearizable,
                    [&](ClientReply r) { ok = r.status.ok(); });
  EXPECT_FALSE(c.store(1).quiesced(g));
  EXPECT_TRUE(c.store(1).quiesced(GroupId(3)));
  c.Settle();
  EXPECT_TRUE(ok);
  for (int i = 1; i <= kNodes; ++i) {
    EXPECT_FALSE(c.store(i).quiesced(g)) << "node " << i;  // the append woke the followers
    EXPECT_TRUE(c.store(i).quiesced(GroupId(3))) << "node " << i;
  }
  c.TickAll(3 * kQuiesceTicks);
  for (int i = 1; i <= kNodes; ++i) {
    EXPECT_TRUE(c.store(i).quiesced(g)) << "node " << i;
    EXPECT_NE(c.store(i).replica(g)->state_machine().keyspace().FindRaw(KeyOf(g)), nullptr);
  }
}

TEST(StoreQuiescenceTest, AFollowerWokenByARequestWakesItsLeader) {
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  c.TickAll(3 * kQuiesceTicks);
  const GroupId g(3);
  // A linearizable read at a follower: the follower wakes and asks the leader to wake too.
  bool ok = false;
  c.store(2).SubmitRead(
      g, [](const kv::StateMachine&) { return kv::Reply{}; }, ReadMode::kLinearizable,
      [&](ClientReply r) { ok = r.status.ok(); });
  ASSERT_FALSE(c.out(2).notices.empty());
  EXPECT_TRUE(c.out(2).notices.back().wake);
  EXPECT_EQ(c.out(2).notices.back().to, NodeId(1));
  c.Settle();
  EXPECT_TRUE(ok);
  EXPECT_FALSE(c.store(1).quiesced(g));
}

TEST(StoreQuiescenceTest, AFollowerThatIsBehindRefusesAndWakesTheLeader) {
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  c.TickAll(2);
  const GroupId g(2);
  const raft::Raft& r = c.store(2).replica(g)->raw_node().raft();
  ASSERT_FALSE(c.store(2).quiesced(g));
  c.store(2).ReceiveQuiesce(NodeId(1), g, r.term(), r.log().LastIndex() + 1);
  EXPECT_FALSE(c.store(2).quiesced(g));
  ASSERT_FALSE(c.out(2).notices.empty());
  EXPECT_TRUE(c.out(2).notices.back().wake);
  // A notice from a node that is not its leader is refused too.
  c.store(2).ReceiveQuiesce(NodeId(3), g, r.term(), r.log().LastIndex());
  EXPECT_FALSE(c.store(2).quiesced(g));
  c.store(2).ReceiveQuiesce(NodeId(1), g, r.term(), r.log().LastIndex());
  EXPECT_TRUE(c.store(2).quiesced(g));
}

TEST(StoreQuiescenceTest, PeerDownWakesTheGroupsTheDeadNodeLedAndTheyElectAnother) {
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  c.TickAll(3 * kQuiesceTicks);
  c.Crash(1);
  // Without the report the followers never notice: they do not tick.
  c.TickAll(100);
  for (const auto& [g, span] : kGroups) {
    EXPECT_EQ(c.store(2).replica(g)->raw_node().raft().lead(), NodeId(1));
  }
  c.store(2).PeerDown(NodeId(1));
  c.store(3).PeerDown(NodeId(1));
  EXPECT_EQ(c.store(2).quiesced_count(), 0u);
  c.TickAll(100);
  for (const auto& [g, span] : kGroups) {
    EXPECT_TRUE(c.Leads(2, g) || c.Leads(3, g)) << "group " << g;
  }
}

TEST(StoreQuiescenceTest, AMemberRestartedWithoutALeaderAsksEveryMemberToWake) {
  // Regression (simulator, sharded seed 90 at 7 nodes): a learner restarted while its group
  // was quiesced, its last commit index not yet saved, heard nothing from the quiesced leader
  // and, never campaigning, stayed one entry behind for good. A member that knows no leader
  // for an election timeout now asks every other member to wake the group.
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  c.TickAll(3 * kQuiesceTicks);
  ASSERT_EQ(c.store(1).quiesced_count(), kGroups.size());
  c.Crash(3);
  c.Open(3, /*bootstrap=*/false);
  const int timeout = StoreOptions{}.replica.raft.election_ticks;
  std::map<GroupId, std::set<NodeId>> asked;
  for (int t = 0; t < timeout; ++t) {
    c.store(3).Tick();
    for (const Notice& n : c.out(3).notices) {
      if (n.wake) asked[n.group].insert(n.to);
    }
    c.out(3).notices.clear();
  }
  for (const auto& [g, span] : kGroups) {
    EXPECT_EQ(asked[g], (std::set<NodeId>{NodeId(1), NodeId(2)})) << "group " << g;
  }
  // Delivered, the wakes bring the leader's heartbeats: node 3 knows its leader again.
  c.out(3).sent.clear();
  c.store(1).ReceiveWake(NodeId(3), GroupId(2));
  c.TickAll(2);
  EXPECT_EQ(c.store(3).replica(GroupId(2))->raw_node().raft().lead(), NodeId(1));
}

TEST(StoreQuiescenceTest, WakesFromAReplicaRemovedFromItsGroupAreIgnored) {
  // A replica removed from its group and restarted before it saved the commit of its removal
  // believes it is a member, knows no leader and asks the others to wake the group every
  // election timeout, for good: the members ignore wakes from a node not in their
  // configuration, and the group stays quiesced (review of AskForALeader).
  StoreCluster c(kQuiesceTicks);
  c.ElectEverywhere(1);
  const GroupId g(2);
  raft::ConfChange cc;
  cc.changes.push_back({raft::ConfChangeType::kRemoveNode, NodeId(3)});
  ASSERT_TRUE(c.store(1).replica(g)->ProposeConfChange(cc).ok());
  c.store(1).Touch(g);
  c.TickAll(3 * kQuiesceTicks);
  // Node 3 applied its removal: its replica destroyed itself (StoreRemovalTest).
  ASSERT_FALSE(c.store(3).HasGroup(g));
  c.Crash(3);
  c.Open(3, /*bootstrap=*/false);  // an empty replica of g again (the test's layout lists it)
  ASSERT_TRUE(c.store(1).quiesced(g));
  // A wake from a node out of the configuration changes nothing, whatever that node believes.
  c.store(1).ReceiveWake(NodeId(3), g);
  c.store(2).ReceiveWake(NodeId(3), g);
  ASSERT_TRUE(c.store(1).quiesced(g));
  ASSERT_TRUE(c.store(2).quiesced(g));
  const int timeout = StoreOptions{}.replica.raft.election_ticks;
  int wakes = 0;
  for (int t = 0; t < 3 * timeout; ++t) {
    c.store(3).Tick();
    for (const Notice& n : c.out(3).notices) {
      if (!n.wake || n.group != g) continue;
      ++wakes;
      c.store(static_cast<int>(n.to.value())).ReceiveWake(NodeId(3), g);
    }
    c.out(3).notices.clear();
    c.out(3).sent.clear();
  }
  EXPECT_TRUE(c.store(1).quiesced(g));
  EXPECT_TRUE(c.store(2).quiesced(g));
  (void)wakes;  // sent or not (it may know of its removal): either way nothing wakes
}

TEST(StoreQuiescenceTest, NoQuiescenceWithLeaseReads) {
  StoreCluster c(kQuiesceTicks, /*lease_reads=*/true);
  c.TickAll(100);  // every clock runs (lease reads: a restarted node votes after a timeout)
  size_t sent = 0;
  for (int i = 1; i <= kNodes; ++i) {
    EXPECT_EQ(c.store(i).quiesced_count(), 0u) << "node " << i;
    sent += MessagesOverTicks(c, i, 10);
  }
  for (const auto& [g, span] : kGroups) {
    EXPECT_TRUE(c.Leads(1, g) || c.Leads(2, g) || c.Leads(3, g)) << "group " << g;
  }
  EXPECT_GT(sent, 0u);
}

}  // namespace
}  // namespace synod::cluster

namespace synod::cluster {
namespace {

kv::Command SplitCommand(uint64_t client, uint16_t first, uint16_t last, uint16_t at,
                         uint64_t child) {
  kv::Command c;
  c.op = kv::Op::kRedis;
  c.client_id = client;
  c.seq = 1;
  c.args = {std::string(kv::kSplitCommand), std::to_string(first),
            std::to_string(last),           std::to_string(at),
            std::to_string(child),          "2"};
  return c;
}

// A write routed for the slot of its key, as a node routes it.
kv::Command Routed(kv::Command c) {
  const uint16_t s = KeySlot(c.args.at(1));
  c.slots = SlotRange{s, s};
  return c;
}

TEST(StoreSplitTest, EveryReplicaStartsTheNewShardFromTheRightHalfAndKeepsItAcrossARestart) {
  StoreCluster c;
  c.ElectEverywhere(1);
  const GroupId parent(2);
  const GroupId child(7);
  constexpr uint16_t kAt = 2730;  // group 2 owns 0-5460
  std::vector<std::string> keys;
  for (int k = 0; k < 20; ++k) {
    keys.push_back(KeyOf(parent, k));
    c.store(1).Submit(parent, Routed(Set(1000 + k, keys.back(), "v" + std::to_string(k))),
                      ReadMode::kLinearizable, [](ClientReply r) { EXPECT_TRUE(r.status.ok()); });
    c.Settle();
  }
  size_t right = 0;
  for (const std::string& k : keys) right += KeySlot(k) >= kAt ? 1 : 0;
  ASSERT_GT(right, 0u);
  ASSERT_LT(right, keys.size());

  kv::Reply split_reply;
  c.store(1).Submit(parent, SplitCommand(77, 0, 5460, kAt, child.value()), ReadMode::kLinearizable,
                    [&](ClientReply r) {
                      ASSERT_TRUE(r.status.ok()) << r.status.ToString();
                      split_reply = r.reply;
                    });
  c.Settle();
  EXPECT_EQ(split_reply, kv::Reply::Ok());
  c.TickAll(30);  // the new shard elects (node 1 campaigned at once)
  for (int i = 1; i <= kNodes; ++i) {
    ASSERT_TRUE(c.store(i).HasGroup(child)) << "node " << i;
    const kv::StateMachine& l = c.store(i).replica(parent)->state_machine();
    const kv::StateMachine& r = c.store(i).replica(child)->state_machine();
    EXPECT_EQ(l.range(), (SlotRange{0, kAt - 1}));
    EXPECT_EQ(r.range(), (SlotRange{kAt, 5460}));
    EXPECT_EQ(r.key_count(), right) << "node " << i;
    EXPECT_EQ(l.key_count(), keys.size() - right) << "node " << i;
    EXPECT_EQ(c.store(i).storage(child)->span(), storage::StateSpan::Slots(kAt, 5460));
    EXPECT_EQ(c.store(i).storage(parent)->span(), storage::StateSpan::Slots(0, kAt - 1));
  }
  EXPECT_TRUE(c.Leads(1, child));

  // The parent refuses what it gave away; the new shard takes it.
  std::string moved;
  for (const std::string& k : keys) {
    if (KeySlot(k) >= kAt) moved = k;
  }
  kv::Reply refused;
  c.store(1).Submit(parent, Routed(Set(5000, moved, "late")), ReadMode::kLinearizable,
                    [&](ClientReply r) { refused = r.reply; });
  bool written = false;
  c.store(1).Submit(child, Routed(Set(5001, moved, "new")), ReadMode::kLinearizable,
                    [&](ClientReply r) { written = r.status.ok() && r.reply.ok(); });
  // A read routed by the old map too (a GET of the legacy ops: it once read the parent's
  // state, where the key no longer is, and answered nil).
  kv::Command get;
  get.op = kv::Op::kGet;
  get.key = moved;
  get.slots = SlotRange{KeySlot(moved), KeySlot(moved)};
  kv::Reply read_refused;
  c.store(1).Submit(parent, get, ReadMode::kLinearizable,
                    [&](ClientReply r) { read_refused = r.reply; });
  c.Settle();
  EXPECT_EQ(refused.code, kv::ReplyCode::kWrongShard);
  EXPECT_EQ(read_refused.code, kv::ReplyCode::kWrongShard);
  EXPECT_TRUE(written);

  // A restarted node reopens both halves from its database, each with its own keys.
  c.Crash(2);
  c.Open(2, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(2).AddGroup(child, storage::StateSpan::Slots(kAt, 5460), {}).ok());
  c.TickAll(5);
  const kv::StateMachine& l = c.store(2).replica(parent)->state_machine();
  const kv::StateMachine& r = c.store(2).replica(child)->state_machine();
  EXPECT_EQ(l.key_count(), keys.size() - right);
  EXPECT_EQ(r.key_count(), right);
  EXPECT_EQ(r.Get(moved), "new");
  EXPECT_FALSE(l.Get(moved).has_value());
  EXPECT_EQ(l.Digest(), c.store(1).replica(parent)->state_machine().Digest());
  EXPECT_EQ(r.Digest(), c.store(1).replica(child)->state_machine().Digest());
}

TEST(StoreSplitTest, AReplicaThatMissedTheSplitRefusesTheNewShardsSnapshotWhileItOverlaps) {
  StoreCluster c;
  c.ElectEverywhere(1);
  const GroupId parent(2);
  const GroupId child(7);
  std::vector<std::string> keys;
  for (int k = 0; k < 12; ++k) {
    keys.push_back(KeyOf(parent, k));
    c.store(1).Submit(parent, Routed(Set(2000 + k, keys.back(), "v")), ReadMode::kLinearizable,
                      [](ClientReply) {});
    c.Settle();
  }
  // Node 3 is down while the split commits and applies on nodes 1 and 2.
  c.Crash(3);
  c.store(1).Submit(parent, SplitCommand(77, 0, 5460, 2730, child.value()), ReadMode::kLinearizable,
                    [](ClientReply) {});
  c.TickAll(40);
  ASSERT_TRUE(c.store(1).HasGroup(child));
  // Node 3 comes back with an empty replica of the new shard (as a node that learnt the
  // descriptor makes one) before its replica of the parent catches up. The empty replica
  // votes (it is a member) and so writes: it must not touch the parent's keys, which are
  // stored under the same slots. (It once reset its slots' keys, and the new shard on this node
  // lost them.)
  c.Open(3, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(3).AddGroup(child, storage::StateSpan::Slots(2730, 5460), {}).ok());
  c.TickAll(60);
  EXPECT_EQ(c.store(3).replica(child)->state_machine().Digest(),
            c.store(1).replica(child)->state_machine().Digest());
  // And after a restart, from what node 3 stored.
  c.Crash(3);
  c.Open(3, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(3).AddGroup(child, storage::StateSpan::Slots(2730, 5460), {}).ok());
  c.TickAll(5);
  // The parent's replica caught up and applied the split, which replaced the empty replica;
  // or the new shard's snapshot came once nothing overlapped. Either way: one owner per slot.
  const kv::StateMachine& l = c.store(3).replica(parent)->state_machine();
  const kv::StateMachine& r = c.store(3).replica(child)->state_machine();
  EXPECT_EQ(l.range(), (SlotRange{0, 2729}));
  EXPECT_EQ(r.range(), (SlotRange{2730, 5460}));
  EXPECT_EQ(r.Digest(), c.store(1).replica(child)->state_machine().Digest());
}

TEST(StoreSplitTest, ASnapshotOfTheNewShardWaitsForAParentReplicaThatAppliedNothingYet) {
  StoreCluster c(0, false, /*state_flush_entries=*/1);  // each state applied is stored
  const GroupId parent(2);
  const GroupId child(7);
  constexpr uint16_t kAt = 2730;
  // Node 3 is down from the start: its replica of the parent holds the bootstrap snapshot and
  // has applied no entry, yet its log's writes go to the parent's slots once it catches up.
  c.Crash(3);
  c.ElectEverywhere(1);
  std::vector<std::string> right;
  for (int k = 0; right.size() < 4; ++k) {
    const std::string key = KeyOf(parent, k);
    if (KeySlot(key) < kAt) continue;
    right.push_back(key);
    c.store(1).Submit(parent, Routed(Set(3000 + k, key, "old")), ReadMode::kLinearizable,
                      [](ClientReply) {});
    c.Settle();
  }
  c.store(1).Submit(parent, SplitCommand(78, 0, 5460, kAt, child.value()), ReadMode::kLinearizable,
                    [](ClientReply) {});
  c.TickAll(30);
  ASSERT_TRUE(c.Leads(1, child));
  // The new shard overwrites every key the parent wrote before the split.
  for (size_t k = 0; k < right.size(); ++k) {
    c.store(1).Submit(child, Routed(Set(4000 + k, right[k], "new")), ReadMode::kLinearizable,
                      [](ClientReply) {});
    c.Settle();
  }
  // Node 3 comes back with an empty replica of the new shard, which the new shard's leader
  // sends a snapshot. Installed before the parent's replica applies its log, the parent's
  // replica then stores what it applied over the new shard's keys in the node's database (here
  // it erased them: they left its state at the split). The snapshot once went in: a replica
  // that had applied nothing was taken to hold nothing.
  c.Cut(3, parent);  // the parent's messages come late
  c.Open(3, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(3).AddGroup(child, storage::StateSpan::Slots(kAt, 5460), {}).ok());
  c.TickAll(20);
  c.Mend(3, parent);
  c.TickAll(60);
  const uint64_t digest = c.store(1).replica(child)->state_machine().Digest();
  EXPECT_EQ(c.store(3).replica(child)->state_machine().Digest(), digest);
  c.Crash(3);
  c.Open(3, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(3).AddGroup(child, storage::StateSpan::Slots(kAt, 5460), {}).ok());
  c.TickAll(5);
  const kv::StateMachine& r = c.store(3).replica(child)->state_machine();
  for (const std::string& key : right) EXPECT_EQ(r.Get(key), "new") << key;
  EXPECT_EQ(r.Digest(), digest);
}

}  // namespace
}  // namespace synod::cluster

namespace synod::cluster {
namespace {

// The group-2 records of a node's database ("G" + id), and its keys' ("D" + slot of 0-5460).
bool HasGroupRecords(storage::MemEngine& e, GroupId g) {
  std::string begin = storage::GroupStorage::GroupKey(g, '\0');
  begin.pop_back();
  std::string end = storage::GroupStorage::GroupKey(GroupId(g.value() + 1), '\0');
  end.pop_back();
  auto first = e.FirstKey(begin, end);
  return first.ok() && first->has_value();
}

bool HasKeyRecords(storage::MemEngine& e, const std::string& key) {
  auto v = e.Get(storage::GroupStorage::SlotDataKey(key), "key");
  return v.ok() && v->has_value();
}

// Writes a key of `g` through node 1 and into node 3's database (its state staged, and a write of
// another group to carry it). Returns the key.
std::string WriteIntoNode3(StoreCluster& c, GroupId g) {
  const std::string key = KeyOf(g);
  c.store(1).Submit(g, Set(9, key, "v"), ReadMode::kLinearizable, [](ClientReply) {});
  c.Settle();
  c.store(3).replica(g)->FlushState();
  c.store(1).Submit(GroupId(3), Set(10, KeyOf(GroupId(3)), "w"), ReadMode::kLinearizable,
                    [](ClientReply) {});
  c.Settle();
  return key;
}

TEST(StoreRemovalTest, AReplicaRemovedFromItsGroupDestroysItselfAndItsData) {
  StoreCluster c;
  c.ElectEverywhere(1);
  const GroupId g(2);
  const std::string key = WriteIntoNode3(c, g);
  ASSERT_TRUE(HasKeyRecords(c.engine(3), key));
  ASSERT_TRUE(HasGroupRecords(c.engine(3), g));
  raft::ConfChange cc;
  cc.transition = raft::ConfChangeTransition::kJointImplicit;
  cc.changes.push_back({raft::ConfChangeType::kRemoveNode, NodeId(3)});
  ASSERT_TRUE(c.store(1).replica(g)->ProposeConfChange(cc).ok());
  c.store(1).Touch(g);
  c.TickAll(20);
  // Node 3 applied its removal: the replica is gone, and its records and key with the node's
  // next write (a write of another group here).
  EXPECT_FALSE(c.store(3).HasGroup(g));
  EXPECT_EQ(c.store(3).TakeRemovedGroups(), std::vector<GroupId>{g});
  c.store(1).Submit(GroupId(3), Set(11, KeyOf(GroupId(3), 1), "x"), ReadMode::kLinearizable,
                    [](ClientReply) {});
  c.Settle();
  EXPECT_FALSE(HasGroupRecords(c.engine(3), g));
  EXPECT_FALSE(HasKeyRecords(c.engine(3), key));
  // The other groups on node 3 and the group on the others are untouched.
  EXPECT_TRUE(c.store(3).HasGroup(GroupId(3)));
  EXPECT_TRUE(HasGroupRecords(c.engine(3), GroupId(3)));
  EXPECT_TRUE(c.store(2).HasGroup(g));
  EXPECT_EQ(c.store(1).replica(g)->state_machine().Get(key), "v");
  // A restart of node 3 does not bring it back (only the other groups are opened).
  c.Crash(3);
  auto db = storage::NodeDb::Open(&c.engine(3), "node", kClusterId);
  ASSERT_TRUE(db.ok());
  auto stored = (*db)->StoredGroups();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(std::count(stored->begin(), stored->end(), g), 0);
}

// A leader passes its shard over for a reason that passes (a proposal in flight, a change
// committed and not applied) and says to ask again soon (regression: the host then waited for
// its ten-second check, and a move's next step with it); then the descriptor comes.
TEST(StoreRemovalTest, ADescriptorPassedOverForAPendingChangeIsAskedForAgain) {
  StoreCluster c;
  c.ElectEverywhere(1);
  Layout layout;
  layout.meta.group = kMetaGroup;
  layout.meta.voters = {NodeId(1), NodeId(2), NodeId(3)};
  for (const auto& [g, span] : kGroups) {
    ShardDescriptor d;
    d.group = g;
    d.first_slot = static_cast<uint16_t>(span.first_slot);
    d.last_slot = static_cast<uint16_t>(span.last_slot);
    d.voters = {NodeId(1), NodeId(2), NodeId(3)};
    layout.shards.push_back(d);
  }
  ShardMap map(layout);
  HeldDescriptors held;
  for (const ShardDescriptor& d : layout.shards) held[d.group] = d;
  bool retry = true;
  EXPECT_TRUE(DescriptorsToPropose(c.store(1), map, held, {}, &retry).empty());
  EXPECT_FALSE(retry);
  const GroupId g(2);
  raft::ConfChange cc;
  cc.transition = raft::ConfChangeTransition::kJointImplicit;
  cc.changes.push_back({raft::ConfChangeType::kRemoveNode, NodeId(3)});
  ASSERT_TRUE(c.store(1).replica(g)->ProposeConfChange(cc).ok());
  // Proposed, not committed: nothing to describe yet (its application asks again).
  EXPECT_TRUE(DescriptorsToPropose(c.store(1), map, held, {}, &retry).empty());
  c.store(1).Touch(g);
  c.TickAll(5);
  // Applied, with a proposal of the shard in flight: passed over, asked again.
  EXPECT_TRUE(DescriptorsToPropose(c.store(1), map, held, {g}, &retry).empty());
  EXPECT_TRUE(retry);
  const std::vector<ShardDescriptor> next = DescriptorsToPropose(c.store(1), map, held, {}, &retry);
  EXPECT_FALSE(retry);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].group, g);
  EXPECT_EQ(next[0].voters, (std::vector<NodeId>{NodeId(1), NodeId(2)}));
  EXPECT_EQ(next[0].epoch, 2u);
}

// A replica removed while its node was down never applies its removal (no member sends it the
// log any more): the members answer its messages with a removal notice, and it destroys itself
// and its data. A replica that knows better (it applied more than the notice's sender, say it
// was added back since) and an empty one (a new member waiting for its snapshot) stay.
TEST(StoreRemovalTest, AReplicaRemovedWhileItsNodeWasDownIsDestroyedByTheMembersNotice) {
  StoreCluster c;
  c.ElectEverywhere(1);
  const GroupId g(2);
  const std::string key = WriteIntoNode3(c, g);
  ASSERT_TRUE(HasKeyRecords(c.engine(3), key));
  const LogIndex stale_applied = c.store(3).replica(g)->state_machine().applied_index();
  c.Crash(3);
  raft::ConfChange cc;
  cc.transition = raft::ConfChangeTransition::kJointImplicit;
  cc.changes.push_back({raft::ConfChangeType::kRemoveNode, NodeId(3)});
  ASSERT_TRUE(c.store(1).replica(g)->ProposeConfChange(cc).ok());
  c.store(1).Touch(g);
  c.TickAll(20);
  ASSERT_FALSE(c.store(1).replica(g)->raw_node().raft().config().IsVoter(NodeId(3)));
  const LogIndex member_applied = c.store(1).replica(g)->state_machine().applied_index();
  ASSERT_GT(member_applied, stale_applied);

  // A notice that names an index the replica reached changes nothing; nor one for an empty
  // replica, nor one for the meta-like group without slots (none here: every group has slots).
  c.Open(3, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(3).HasGroup(g));
  ASSERT_TRUE(c.store(3).replica(g)->IsMember());  // it never learnt of its removal
  c.store(3).ReceiveRemoved(NodeId(1), g, stale_applied);
  EXPECT_TRUE(c.store(3).HasGroup(g));
  // Node 3's replica campaigns; the members answer with notices, and it goes with its key.
  c.TickAll(3 * StoreOptions{}.replica.raft.election_ticks);
  EXPECT_FALSE(c.store(3).HasGroup(g));
  EXPECT_EQ(c.store(3).TakeRemovedGroups(), std::vector<GroupId>{g});
  c.store(1).Submit(GroupId(3), Set(11, KeyOf(GroupId(3), 1), "x"), ReadMode::kLinearizable,
                    [](ClientReply) {});
  c.Settle();
  EXPECT_FALSE(HasKeyRecords(c.engine(3), key));
  EXPECT_FALSE(HasGroupRecords(c.engine(3), g));
  EXPECT_TRUE(c.store(3).HasGroup(GroupId(3)));
  EXPECT_EQ(c.store(1).replica(g)->state_machine().Get(key), "v");
}

// A replica destroyed and added back before its deletion is written (a membership change that
// adds the node again at once) waits for that write: opened earlier, it read the old records,
// which the deletion then dropped under it, and a restart found its log cut (regression:
// simulator seed 7218, "log entry 1 is missing (the next stored is 78)").
TEST(StoreRemovalTest, AReplicaAddedBackBeforeItsDeletionIsWrittenWaitsForIt) {
  StoreCluster c;
  c.ElectEverywhere(1);
  const GroupId g(2);
  const std::string key = WriteIntoNode3(c, g);
  ASSERT_TRUE(HasGroupRecords(c.engine(3), g));
  ASSERT_FALSE(c.store(3).HasWork());
  ASSERT_TRUE(c.store(3).RemoveGroup(g, /*with_data=*/true).ok());
  const Status early = c.store(3).AddGroup(g, kGroups.at(g), {});
  EXPECT_EQ(early.code(), Code::kFailedPrecondition) << early.ToString();
  // The deletion is work of its own: the next round writes it, with no group ready.
  ASSERT_TRUE(c.store(3).HasWork());
  ASSERT_TRUE(c.store(3).BeginRound());
  EXPECT_EQ(c.store(3).AddGroup(g, kGroups.at(g), {}).code(), Code::kFailedPrecondition)
      << "refused while the deletion is being written";
  c.WriteRound(3);
  EXPECT_FALSE(HasGroupRecords(c.engine(3), g));
  EXPECT_FALSE(HasKeyRecords(c.engine(3), key));
  EXPECT_FALSE(c.store(3).HasWork());
  // Now it opens empty (a new member waiting for its snapshot), and so after a restart.
  ASSERT_TRUE(c.store(3).AddGroup(g, kGroups.at(g), {}).ok());
  EXPECT_TRUE(c.store(3).HoldsNothing(g));
  EXPECT_FALSE(c.store(3).replica(g)->state_machine().Get(key).has_value());
  c.Crash(3);
  c.Open(3, /*bootstrap=*/false);
  ASSERT_TRUE(c.store(3).HasGroup(g));
  EXPECT_TRUE(c.store(3).HoldsNothing(g));
}

}  // namespace
}  // namespace synod::cluster

namespace synod::cluster {
namespace {

// A replica destroyed answers every request still waiting on it (they were once left waiting
// for good, their client's connection stalled behind them): writes held, proposed or read.
TEST(StoreRemovalTest, RequestsWaitingOnADestroyedReplicaAreAnswered) {
  StoreCluster c;
  c.ElectEverywhere(1);
  const GroupId g(2);
  std::vector<Status> answers;
  auto record = [&](ClientReply r) { answers.push_back(r.status); };
  // On node 3 (a follower): a write and a read submitted, not yet run.
  c.store(3).Submit(g, Set(300, KeyOf(g, 0), "v"), ReadMode::kLinearizable, record);
  c.store(3).SubmitRead(
      g, [](const kv::StateMachine&) { return kv::Reply::Ok(); }, ReadMode::kLinearizable, record);
  ASSERT_TRUE(c.store(3).RemoveGroup(g, /*with_data=*/false).ok());
  ASSERT_EQ(answers.size(), 2u);  // not proposed, not read: both certainly not applied
  for (const Status& s : answers) EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  // On node 1 (the leader): a write proposed and written here, its followers' answers not yet
  // in (the messages wait in the outbox): its outcome is unknown.
  c.store(1).Submit(g, Set(301, KeyOf(g, 1), "v"), ReadMode::kLinearizable, record);
  ASSERT_TRUE(c.store(1).BeginRound());
  c.WriteRound(1);
  ASSERT_EQ(answers.size(), 2u);
  ASSERT_TRUE(c.store(1).RemoveGroup(g, /*with_data=*/false).ok());
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[2].code(), Code::kTimeout) << answers[2].ToString();
}

}  // namespace
}  // namespace synod::cluster
