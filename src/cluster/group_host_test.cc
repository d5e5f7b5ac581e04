#include "cluster/group_host.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <optional>

namespace synod::cluster {
namespace {

TEST(MemberListTest, ParsesPeerOnlyAndFullForms) {
  auto book = ParseMemberList("1=127.0.0.1:7101, 2=h:7102/h:7002/h:7202\n3=[::1]:9");
  ASSERT_TRUE(book.ok()) << book.status().ToString();
  ASSERT_EQ(book->size(), 3u);
  EXPECT_EQ(book->at(NodeId(1)), (MemberAddress{"127.0.0.1:7101", "", ""}));
  EXPECT_EQ(book->at(NodeId(2)), (MemberAddress{"h:7102", "h:7002", "h:7202"}));
  EXPECT_EQ(book->at(NodeId(3)).peer, "[::1]:9");
}

TEST(MemberListTest, FormatIsTheInverseOfParse) {
  AddressBook book = {{NodeId(1), {"a:1", "", ""}}, {NodeId(7), {"b:2", "c:3", "d:4"}}};
  for (char sep : {',', '\n'}) {
    auto back = ParseMemberList(FormatMemberList(book, sep));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, book);
  }
}

TEST(MemberListTest, RejectsBadInput) {
  for (const char* bad : {"", "1", "0=a:1", "x=a:1", "1=a:1,1=b:2", "1=a", "1=a:0", "1=a:70000",
                          "1=:5", "1=a:1/b:2/c:3/d:4", "1=a:1/b", "99999999999999999999=a:1"}) {
    auto r = ParseMemberList(bad);
    EXPECT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    }
  }
}

TEST(MemberListTest, ClusterIdDependsOnMembersAndToken) {
  AddressBook a = {{NodeId(1), {"a:1", "", ""}}, {NodeId(2), {"b:2", "", ""}}};
  AddressBook b = {{NodeId(1), {"a:1", "", ""}}, {NodeId(2), {"b:3", "", ""}}};
  AddressBook a_with_clients = {{NodeId(1), {"a:1", "x:1", ""}}, {NodeId(2), {"b:2", "", ""}}};
  EXPECT_EQ(DeriveClusterId(a, "t"), DeriveClusterId(a, "t"));
  EXPECT_NE(DeriveClusterId(a, "t"), DeriveClusterId(b, "t"));
  EXPECT_NE(DeriveClusterId(a, "t"), DeriveClusterId(a, "u"));
  // Client and admin addresses may change between restarts; the cluster id must not.
  EXPECT_EQ(DeriveClusterId(a, "t"), DeriveClusterId(a_with_clients, "t"));
}

// A one-node cluster on the real wiring: RocksDB, the storage thread, ticks, the transport.
class SingleNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/synod_host_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  HostOptions Options() {
    HostOptions o;
    o.id = NodeId(1);
    o.data_dir = dir_;
    o.peer_listen = "127.0.0.1:0";
    o.initial_cluster = {{NodeId(1), {"127.0.0.1:1", "", ""}}};
    o.cluster_id = DeriveClusterId(o.initial_cluster, "test");
    o.tick_ms = 5;
    o.shards = 1;  // one data shard (group 2) holds every key
    return o;
  }

  // Runs the loop until pred() or ~5 s.
  bool RunUntil(asio::io_context& io, const std::function<bool()>& pred) {
    for (int i = 0; i < 5000 && !pred(); ++i) {
      io.run_for(std::chrono::milliseconds(1));
      if (io.stopped()) io.restart();
    }
    return pred();
  }

  // Runs cmd on the shard of its key, through the router.
  ClientReply Call(asio::io_context& io, GroupHost& h, const kv::Command& cmd) {
    ShardRequest req;
    req.type = ShardRequest::Type::kWrite;
    req.group = h.ShardOfSlot(KeySlot(cmd.key));
    req.command = cmd;
    std::optional<ClientReply> got;
    h.Call(req, [&got](ShardResponse r) {
      got = ClientReply{std::move(r.status), std::move(r.reply), r.index};
    });
    EXPECT_TRUE(RunUntil(io, [&] { return got.has_value(); }));
    return got.value_or(ClientReply{Status::Timeout("test: no reply"), {}, {}});
  }

  // Whether this node leads every group it holds.
  static bool LeadsAll(GroupHost& h) {
    return h.groups_led() == static_cast<int>(h.store().group_count());
  }

  std::string dir_;
};

TEST_F(SingleNodeTest, WritesSurviveARestart) {
  for (int round = 0; round < 2; ++round) {
    asio::io_context io;
    auto h = GroupHost::Open(io, Options(), Logger());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_TRUE((*h)->Start().ok());
    ASSERT_TRUE(RunUntil(io, [&] { return LeadsAll(**h); }));
    kv::Command incr;
    incr.op = kv::Op::kIncr;
    incr.key = "n";
    incr.delta = 1;
    incr.client_id = 100 + static_cast<uint64_t>(round);
    incr.seq = 1;
    ClientReply r = Call(io, **h, incr);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.reply.number, round + 1);  // the first round's write came back from RocksDB
    kv::Command get;
    get.op = kv::Op::kGet;
    get.key = "n";
    r = Call(io, **h, get);
    ASSERT_TRUE(r.status.ok());
    EXPECT_EQ(r.reply.value, std::to_string(round + 1));
    (*h)->Stop();
  }
}

// The state machine lives in RocksDB: a restart loads it with its applied index and replays
// no entry at or below it, with or without log compactions in between.
TEST_F(SingleNodeTest, StateIsLoadedFromRocksDbAtRestart) {
  for (uint64_t snapshot_entries : {uint64_t{10000}, uint64_t{7}}) {
    SCOPED_TRACE("snapshot_entries=" + std::to_string(snapshot_entries));
    TearDown();
    SetUp();
    HostOptions opts = Options();
    opts.snapshot_entries = snapshot_entries;
    LogIndex applied_at_stop;
    ClientReply last_incr;
    kv::Command incr;
    incr.op = kv::Op::kIncr;
    incr.key = "counter";
    incr.delta = 5;
    incr.client_id = 42;
    {
      asio::io_context io;
      auto h = GroupHost::Open(io, opts, Logger());
      ASSERT_TRUE(h.ok()) << h.status().ToString();
      ASSERT_TRUE((*h)->Start().ok());
      ASSERT_TRUE(RunUntil(io, [&] { return LeadsAll(**h); }));
      for (uint64_t i = 1; i <= 30; ++i) {
        kv::Command put;
        put.op = i % 10 == 0 ? kv::Op::kDel : kv::Op::kPut;
        put.key = "k" + std::to_string(i % 10 == 0 ? i - 1 : i);
        put.value = "v" + std::to_string(i);
        put.client_id = 7;
        put.seq = i;
        ASSERT_TRUE(Call(io, **h, put).status.ok());
        incr.seq = i;
        last_incr = Call(io, **h, incr);
        ASSERT_TRUE(last_incr.status.ok());
      }
      EXPECT_EQ(last_incr.reply.number, 150);
      applied_at_stop = (*h)->store().replica(kFirstShardGroup)->state_machine().applied_index();
      if (snapshot_entries < 30) {
        EXPECT_GT((*h)->store().storage(kFirstShardGroup)->snapshot().meta.index, LogIndex(1));
      }
      (*h)->Stop();
    }
    asio::io_context io;
    auto h = GroupHost::Open(io, opts, Logger());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    Replica& replica = *(*h)->store().replica(kFirstShardGroup);
    // Loaded from RocksDB, not rebuilt from the snapshot image plus a replay of the log.
    EXPECT_EQ(replica.applied_at_start(), applied_at_stop);
    EXPECT_EQ(replica.raw_node().raft().log().applied(), applied_at_stop);
    // Without compaction the snapshot is still the bootstrap one at index 1.
    const LogIndex snapshot_index = (*h)->store().storage(kFirstShardGroup)->snapshot().meta.index;
    EXPECT_LE(snapshot_index, applied_at_stop);
    if (snapshot_entries > 30) {
      EXPECT_EQ(snapshot_index, LogIndex(1));
    }
    EXPECT_EQ(replica.state_machine().applied_index(), applied_at_stop);
    // 27 keys put, k9, k19 and k29 deleted again, and the counter.
    EXPECT_EQ(replica.state_machine().key_count(), 25u);
    EXPECT_TRUE(replica.state_machine().Get("k28") == "v28");
    EXPECT_FALSE(replica.state_machine().Get("k9").has_value());
    EXPECT_EQ(replica.state_machine().session_count(), 2u);
    ASSERT_TRUE((*h)->Start().ok());
    ASSERT_TRUE(RunUntil(io, [&] { return LeadsAll(**h); }));
    // The session came back too: a retry of the last INCR is answered from it, not applied.
    ClientReply retry = Call(io, **h, incr);
    ASSERT_TRUE(retry.status.ok()) << retry.status.ToString();
    EXPECT_EQ(retry.reply, last_incr.reply);
    kv::Command get;
    get.op = kv::Op::kGet;
    get.key = "counter";
    ClientReply r = Call(io, **h, get);
    ASSERT_TRUE(r.status.ok());
    EXPECT_EQ(r.reply.value, "150");
    (*h)->Stop();
  }
}

// Several shards on one node: each key is written to the group owning its slot, every group
// comes back after a restart, and the layout stored at bootstrap wins over later flags.
TEST_F(SingleNodeTest, KeysLandInTheShardOfTheirSlotAndTheLayoutIsKept) {
  HostOptions opts = Options();
  opts.shards = 4;
  const std::vector<std::string> keys = {"a", "b", "c", "d", "e", "f", "g", "h", "{a}x"};
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    asio::io_context io;
    auto h = GroupHost::Open(io, opts, Logger());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_EQ((*h)->layout().shards.size(), 4u);
    ASSERT_EQ((*h)->store().group_count(), 5u);  // the meta shard and four data shards
    ASSERT_TRUE((*h)->Start().ok());
    ASSERT_TRUE(RunUntil(io, [&] { return LeadsAll(**h); }));
    if (round == 0) {
      for (size_t i = 0; i < keys.size(); ++i) {
        kv::Command put;
        put.op = kv::Op::kPut;
        put.key = keys[i];
        put.value = "v";
        put.client_id = 100 + i;  // a session is per shard: one client per key
        put.seq = 1;
        const ClientReply r = Call(io, **h, put);
        ASSERT_TRUE(r.status.ok()) << r.status.ToString();
        ASSERT_TRUE(r.reply.ok()) << r.reply.message();
      }
    }
    std::map<GroupId, uint64_t> expected;
    for (const std::string& k : keys) ++expected[(*h)->ShardOfSlot(KeySlot(k))];
    EXPECT_GT(expected.size(), 1u);  // the keys do spread
    for (GroupId g : (*h)->DataShards()) {
      const ShardDescriptor* d = nullptr;
      for (const ShardDescriptor& s : (*h)->layout().shards) {
        if (s.group == g) d = &s;
      }
      ASSERT_NE(d, nullptr);
      const kv::StateMachine* sm = (*h)->LocalStateMachine(g);
      ASSERT_NE(sm, nullptr);
      EXPECT_EQ(sm->key_count(), expected[g]) << "group " << g.value();
      for (const std::string& k : keys) {
        EXPECT_EQ(sm->Get(k).has_value(), d->Covers(KeySlot(k))) << k;
      }
    }
    (*h)->Stop();
    opts.shards = 2;  // ignored at restart: the stored layout wins
  }
}

TEST_F(SingleNodeTest, AnotherClustersDirectoryIsRefused) {
  {
    asio::io_context io;
    auto h = GroupHost::Open(io, Options(), Logger());
    ASSERT_TRUE(h.ok());
  }
  asio::io_context io;
  HostOptions other = Options();
  other.cluster_id ^= 1;
  auto h = GroupHost::Open(io, other, Logger());
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), Code::kFailedPrecondition) << h.status().ToString();
}

}  // namespace
}  // namespace synod::cluster
