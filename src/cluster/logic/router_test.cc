// RequestRouter without replicas: nodes whose Store holds no group of the shard, requests and
// answers handed over by hand, time given in nanoseconds. (Serving on replicas is exercised by
// the simulator's sharded seeds and end to end.)
#include "cluster/logic/router.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "storage/engine.h"

namespace synod::cluster {
namespace {

constexpr int64_t kMs = 1'000'000;

struct Sent {
  NodeId to;
  uint64_t id = 0;
  std::string bytes;  // the encoded request or response, as the wire carries it
};

class NoRaft final : public RaftTransport {
 public:
  void Send(GroupId, raft::Message) override {}
  void SendQuiesce(NodeId, GroupId, Term, LogIndex) override {}
  void SendWake(NodeId, GroupId) override {}
  void SendRemoved(NodeId, GroupId, LogIndex) override {}
};

class Out final : public RequestTransport {
 public:
  void SendRequest(NodeId to, uint64_t id, const ShardRequest& req) override {
    requests.push_back({to, id, EncodeShardRequest(req)});
  }
  void SendResponse(NodeId to, uint64_t id, const ShardResponse& resp) override {
    responses.push_back({to, id, EncodeShardResponse(resp)});
  }
  void Wake() override { ++wakes; }
  std::deque<Sent> requests;
  std::deque<Sent> responses;
  int wakes = 0;
};

Layout TwoShards() {
  auto l = MakeInitialLayout({NodeId(1), NodeId(2), NodeId(3)}, 2, 3);
  EXPECT_TRUE(l.ok());
  return *l;
}

// One node: its map, an empty store (it holds no replica), and its router.
struct RouterNode {
  explicit RouterNode(uint64_t id, Layout layout, int64_t timeout_ms = 1000,
                      uint64_t first_request_id = 1)
      : map(std::move(layout)) {
    auto opened = storage::NodeDb::Open(&engine, "node", 1);
    EXPECT_TRUE(opened.ok());
    db = std::move(*opened);
    StoreOptions so;
    so.self = NodeId(id);
    store = std::make_unique<Store>(so, db.get(), &raft_out, nullptr, Logger());
    RouterOptions ro;
    ro.self = NodeId(id);
    ro.request_timeout_ms = timeout_ms;
    ro.first_request_id = first_request_id;
    router = std::make_unique<RequestRouter>(ro, &map, store.get(), &out, Logger());
  }
  storage::MemEngine engine;
  std::unique_ptr<storage::NodeDb> db;
  NoRaft raft_out;
  ShardMap map;
  std::unique_ptr<Store> store;
  Out out;
  std::unique_ptr<RequestRouter> router;
};

ShardRequest ReadOf(GroupId group) {
  ShardRequest r;
  r.type = ShardRequest::Type::kRead;
  r.group = group;
  r.args = {"GET", "k"};
  return r;
}

TEST(RequestRouter, NotHostedAsksTheVotersInTurnAndFollowsTheLeaderNamed) {
  RouterNode n4(4, TwoShards());
  const GroupId g = n4.map.layout().shards[0].group;
  std::optional<ShardResponse> got;
  n4.router->Call(
      ReadOf(g), [&](ShardResponse r) { got = std::move(r); }, 0);
  ASSERT_EQ(n4.out.requests.size(), 1u);
  const NodeId first = n4.out.requests[0].to;
  EXPECT_EQ(first, n4.map.layout().shards[0].voters[0]);
  auto req = DecodeShardRequest(n4.out.requests[0].bytes);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->epoch, 1u);  // routed by the descriptor held
  // The voter does not lead; it names node 3 at term 5: the router goes there at once.
  ShardResponse refusal;
  refusal.status = Status::NotLeader("not me");
  refusal.leader = NodeId(3);
  refusal.term = 5;
  n4.router->OnResponse(first, n4.out.requests[0].id, refusal, 1 * kMs);
  ASSERT_EQ(n4.out.requests.size(), 2u);
  EXPECT_EQ(n4.out.requests[1].to, NodeId(3));
  EXPECT_EQ(n4.map.leader(g), NodeId(3));
  EXPECT_FALSE(got);
  // Node 3 answers: the caller gets the reply, exactly once.
  ShardResponse ok;
  ok.reply = kv::Reply::Bulk("v");
  n4.router->OnResponse(NodeId(3), n4.out.requests[1].id, ok, 2 * kMs);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->status.ok());
  EXPECT_EQ(got->reply.value, "v");
  // A late duplicate of the first answer is ignored.
  n4.router->OnResponse(first, n4.out.requests[0].id, refusal, 3 * kMs);
  EXPECT_EQ(n4.router->routed(), 0u);
}

TEST(RequestRouter, AStaleRouteIsRefusedWithTheNewerDescriptorWhichTheSenderLearns) {
  RouterNode sender(4, TwoShards());
  RouterNode receiver(1, TwoShards());
  const GroupId g = sender.map.layout().shards[1].group;
  // The receiver learnt a newer descriptor (a membership change: node 4 added).
  ShardDescriptor newer =
      WithMembers(*receiver.map.Find(g), {NodeId(1), NodeId(2), NodeId(3)}, {NodeId(4)});
  ASSERT_EQ(newer.epoch, 2u);
  ASSERT_TRUE(receiver.map.Update(newer));

  std::optional<ShardResponse> got;
  sender.router->Call(
      ReadOf(g), [&](ShardResponse r) { got = std::move(r); }, 0);
  ASSERT_EQ(sender.out.requests.size(), 1u);
  // Whoever it went to, deliver it to the receiver (node 1).
  receiver.router->Serve(NodeId(4), sender.out.requests[0].id,
                         DecodeShardRequest(sender.out.requests[0].bytes));
  ASSERT_EQ(receiver.out.responses.size(), 1u);
  auto resp = DecodeShardResponse(receiver.out.responses[0].bytes);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status.code(), Code::kNotLeader);
  EXPECT_NE(resp->status.message().find("stale route"), std::string_view::npos);
  ASSERT_FALSE(resp->descriptors.empty());

  sender.router->OnResponse(sender.out.requests[0].to, sender.out.requests[0].id, *resp, 1 * kMs);
  EXPECT_EQ(sender.map.Find(g)->epoch, 2u);
  EXPECT_FALSE(got);  // tried again at the next tick, under the new epoch
  sender.router->Tick(50 * kMs);
  ASSERT_EQ(sender.out.requests.size(), 2u);
  auto retry = DecodeShardRequest(sender.out.requests[1].bytes);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->epoch, 2u);

  // A request routed by a newer descriptor than the receiver's is not a stale route: a node
  // that holds no replica refuses it for that reason only, with no descriptor.
  ShardRequest ahead = ReadOf(g);
  ahead.epoch = 7;
  receiver.router->Serve(NodeId(4), 99, ahead);
  auto resp2 = DecodeShardResponse(receiver.out.responses.back().bytes);
  ASSERT_TRUE(resp2.ok());
  EXPECT_EQ(resp2->status.code(), Code::kNotLeader);
  EXPECT_TRUE(resp2->descriptors.empty());
}

// A node that once led a shard and holds no replica of it now (removed, or the shard merged
// away) never names itself as its leader: askers then kept coming back to it until their
// deadline (regression: simulator seed 7325, a frozen shard's resolution never reached the
// shard it merged into).
TEST(RequestRouter, ANodeHoldingNoReplicaNeverNamesItselfLeader) {
  RouterNode n1(1, TwoShards());
  const GroupId g = n1.map.layout().shards[0].group;
  n1.map.NoteLeader(g, NodeId(1), 7);  // from when it led the shard
  n1.router->Serve(NodeId(5), 1, ReadOf(g));
  ASSERT_EQ(n1.out.responses.size(), 1u);
  auto resp = DecodeShardResponse(n1.out.responses[0].bytes);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status.code(), Code::kNotLeader);
  EXPECT_EQ(resp->leader, kNoNode);
  // Another node it heard of is named as before.
  n1.map.NoteLeader(g, NodeId(2), 8);
  n1.router->Serve(NodeId(5), 2, ReadOf(g));
  auto resp2 = DecodeShardResponse(n1.out.responses.back().bytes);
  ASSERT_TRUE(resp2.ok());
  EXPECT_EQ(resp2->leader, NodeId(2));
}

TEST(RequestRouter, HopsTimeOutAndTheRequestEndsByItsDeadline) {
  RouterNode n4(4, TwoShards(), /*timeout_ms=*/1000);
  const GroupId g = n4.map.layout().shards[0].group;
  std::optional<ShardResponse> got;
  ShardRequest w;
  w.type = ShardRequest::Type::kWrite;
  w.group = g;
  w.command.op = kv::Op::kRedis;
  w.command.args = {"SET", "k", "v"};
  n4.router->Call(
      w, [&](ShardResponse r) { got = std::move(r); }, 0);
  // Nobody answers: every hop times out (500 ms), the next voter is asked, until the
  // deadline (timeout + 1 s); the write's outcome is then unknown.
  int64_t now = 0;
  for (int i = 0; i < 100 && !got; ++i) {
    now += 50 * kMs;
    n4.router->Tick(now);
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), Code::kTimeout);
  EXPECT_NE(got->status.message().find("may or may not"), std::string_view::npos);
  EXPECT_GE(now, 2000 * kMs);
  EXPECT_LE(now, 2100 * kMs);
  EXPECT_GE(n4.out.requests.size(), 3u);
  EXPECT_EQ(n4.router->routed(), 0u);
}

TEST(RequestRouter, AnUnreachablePeerFailsItsHopsAndStopAnswersEveryRequest) {
  RouterNode n4(4, TwoShards());
  const GroupId g = n4.map.layout().shards[0].group;
  int answered = 0;
  Status last;
  n4.router->Call(
      ReadOf(g), [&](ShardResponse r) { ++answered, last = r.status; }, 0);
  ASSERT_EQ(n4.out.requests.size(), 1u);
  n4.router->PeerUnreachable(n4.out.requests[0].to, 1 * kMs);
  EXPECT_EQ(answered, 0);  // tried again at the next tick
  n4.router->Tick(50 * kMs);
  ASSERT_EQ(n4.out.requests.size(), 2u);
  EXPECT_NE(n4.out.requests[1].to, n4.out.requests[0].to);  // the next voter
  n4.router->Stop();
  EXPECT_EQ(answered, 1);
  EXPECT_EQ(last.code(), Code::kUnavailable);
  n4.router->Call(
      ReadOf(g), [&](ShardResponse r) { ++answered, last = r.status; }, 60 * kMs);
  EXPECT_EQ(answered, 2);
  EXPECT_EQ(last.code(), Code::kUnavailable);
}

TEST(RequestRouter, AnAnswerToAPreviousIncarnationsRequestMatchesNoNewOne) {
  // Regression (simulator, sharded seed 169 at 5 nodes): a node restarted with its request
  // ids counting from 1 again took a peer's late answer to its previous incarnation's request
  // for the answer to a new one. Each start draws its first id.
  const Layout layout = TwoShards();
  const GroupId g = layout.shards[0].group;
  RouterNode before(4, layout, 1000, /*first_request_id=*/77);
  before.router->Call(
      ReadOf(g), [](ShardResponse) {}, 0);
  ASSERT_EQ(before.out.requests.size(), 1u);
  const Sent old = before.out.requests[0];
  EXPECT_EQ(old.id, 77u);

  RouterNode after(4, layout, 1000, /*first_request_id=*/9'000'001);
  std::optional<ShardResponse> got;
  after.router->Call(
      ReadOf(g), [&](ShardResponse r) { got = std::move(r); }, 0);
  ASSERT_EQ(after.out.requests.size(), 1u);
  EXPECT_EQ(after.out.requests[0].to, old.to);
  EXPECT_NE(after.out.requests[0].id, old.id);
  ShardResponse late;
  late.reply = kv::Reply::Bulk("for the old request");
  after.router->OnResponse(old.to, old.id, late, 1 * kMs);
  EXPECT_FALSE(got);
  EXPECT_EQ(after.router->routed(), 1u);
}

TEST(RequestRouter, BadInputIsAnsweredNotDropped) {
  RouterNode n1(1, TwoShards());
  // A request that did not decode is answered with its error.
  n1.router->Serve(NodeId(4), 7, DecodeShardRequest("\xff\xff garbage"));
  ASSERT_EQ(n1.out.responses.size(), 1u);
  auto resp = DecodeShardResponse(n1.out.responses[0].bytes);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status.code(), Code::kInvalidArgument);
  EXPECT_EQ(n1.out.responses[0].id, 7u);
  // An unknown shard fails the call at once.
  std::optional<ShardResponse> got;
  n1.router->Call(
      ReadOf(GroupId(99)), [&](ShardResponse r) { got = std::move(r); }, 0);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status.code(), Code::kInvalidArgument);
  // An answer that did not decode fails the hop over (a write's outcome is then unknown).
  RouterNode n4(4, TwoShards());
  std::optional<ShardResponse> w;
  ShardRequest req = ReadOf(n4.map.layout().shards[0].group);
  n4.router->Call(
      req, [&](ShardResponse r) { w = std::move(r); }, 0);
  n4.router->OnResponse(n4.out.requests[0].to, n4.out.requests[0].id,
                        DecodeShardResponse("\xff\xff"), 1 * kMs);
  EXPECT_FALSE(w);  // tried again
  EXPECT_EQ(n4.router->routed(), 1u);
}

}  // namespace
}  // namespace synod::cluster

namespace synod::cluster {
namespace {

// The first of TwoShards() (slots 0-8191) split at 4096 into itself and group 9 (epoch 2), and
// a write of a session to slot 5000 routed by the map from before the split.
struct SplitCase {
  ShardDescriptor parent, left, right;
  ShardRequest write;
};

SplitCase SplitOfTheFirstShard(const RouterNode& n) {
  SplitCase c;
  c.parent = n.map.layout().shards[0];
  c.left = c.parent;
  c.left.last_slot = 4095;
  c.left.epoch = 2;
  c.right = c.parent;
  c.right.group = GroupId(9);
  c.right.first_slot = 4096;
  c.right.epoch = 2;
  c.write.type = ShardRequest::Type::kWrite;
  c.write.group = c.parent.group;
  c.write.slots = SlotRange{5000, 5000};
  c.write.command.op = kv::Op::kRedis;
  c.write.command.args = {"SET", "k", "v"};
  c.write.command.client_id = 5;
  c.write.command.seq = 3;
  return c;
}

TEST(RequestRouter, ASlotsRefusalAfterASplitTeachesBothHalvesAndTheRetryGoesToTheNewShard) {
  RouterNode n4(4, TwoShards());
  const SplitCase sc = SplitOfTheFirstShard(n4);
  const ShardDescriptor& p = sc.parent;
  const ShardDescriptor& left = sc.left;
  const ShardDescriptor& right = sc.right;
  const ShardRequest& w = sc.write;
  std::optional<ShardResponse> got;
  n4.router->Call(
      w, [&](ShardResponse r) { got = std::move(r); }, 0);
  ASSERT_EQ(n4.out.requests.size(), 1u);
  auto sent = DecodeShardRequest(n4.out.requests[0].bytes);
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent->slots, w.slots);
  EXPECT_EQ(sent->group, p.group);
  // The parent's leader applied the split before this write: refused whole, with where to go.
  ShardResponse refused;
  refused.reply = kv::Reply::Error(kv::ReplyCode::kWrongShard);
  refused.descriptors = {EncodeDescriptor(left), EncodeDescriptor(right)};
  refused.leader = n4.out.requests[0].to;
  refused.term = 2;
  n4.router->OnResponse(n4.out.requests[0].to, n4.out.requests[0].id, refused, 1 * kMs);
  EXPECT_FALSE(got);
  EXPECT_EQ(n4.map.ForSlot(5000).group, GroupId(9));
  n4.router->Tick(50 * kMs);
  ASSERT_EQ(n4.out.requests.size(), 2u);
  auto retry = DecodeShardRequest(n4.out.requests[1].bytes);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->group, GroupId(9));
  EXPECT_EQ(retry->epoch, 2u);
  // The same session and seq: the new shard holds a copy of the parent's sessions.
  EXPECT_EQ(retry->command.client_id, 5u);
  EXPECT_EQ(retry->command.seq, 3u);

  // Keys of one shard once, of two now: TRYAGAIN, as Redis Cluster during a slot move.
  ShardRequest both = w;
  both.slots = SlotRange{100, 5000};
  std::optional<ShardResponse> tried;
  n4.router->Call(
      both, [&](ShardResponse r) { tried = std::move(r); }, 60 * kMs);
  ASSERT_TRUE(tried);
  EXPECT_TRUE(tried->status.ok());
  ASSERT_TRUE(tried->reply.value.has_value());
  EXPECT_EQ(tried->reply.value->rfind("TRYAGAIN", 0), 0u);
}

// Pipelined writes of one session across a split: the earlier one, refused by the parent and
// sent on, reaches the new shard after a later one and is refused as stale. The router tells
// its caller no attempt of it was applied (every earlier one was refused whole), so the server
// may give it a new seq; not when an earlier attempt's outcome is unknown.
TEST(RequestRouter, AStaleRefusalOfARetriedWriteSaysWhetherAnEarlierAttemptMayHaveApplied) {
  for (const bool unknown_first : {false, true}) {
    RouterNode n4(4, TwoShards());
    const SplitCase sc = SplitOfTheFirstShard(n4);
    const ShardDescriptor& left = sc.left;
    const ShardDescriptor& right = sc.right;
    const ShardRequest& w = sc.write;
    std::optional<ShardResponse> got;
    n4.router->Call(
        w, [&](ShardResponse r) { got = std::move(r); }, 0);
    ASSERT_EQ(n4.out.requests.size(), 1u);
    ShardResponse first;
    if (unknown_first) {
      first.status = Status::Timeout("the leader changed; it may or may not have been applied");
    } else {
      first.reply = kv::Reply::Error(kv::ReplyCode::kWrongShard);
    }
    first.descriptors = {EncodeDescriptor(left), EncodeDescriptor(right)};
    first.leader = n4.out.requests[0].to;
    first.term = 2;
    n4.router->OnResponse(n4.out.requests[0].to, n4.out.requests[0].id, first, 1 * kMs);
    ASSERT_FALSE(got);
    n4.router->Tick(50 * kMs);
    ASSERT_EQ(n4.out.requests.size(), 2u);
    ShardResponse stale;
    stale.reply = kv::Reply::Error(kv::ReplyCode::kStaleRequest);
    stale.leader = n4.out.requests[1].to;
    stale.term = 2;
    n4.router->OnResponse(n4.out.requests[1].to, n4.out.requests[1].id, stale, 60 * kMs);
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->status.ok());
    EXPECT_EQ(got->reply.code, kv::ReplyCode::kStaleRequest);
    EXPECT_EQ(got->never_applied_before, !unknown_first) << "unknown first: " << unknown_first;
  }
  // A first attempt's answer never says so.
  RouterNode n4(4, TwoShards());
  ShardRequest w;
  w.type = ShardRequest::Type::kWrite;
  w.group = n4.map.layout().shards[0].group;
  w.command.op = kv::Op::kRedis;
  w.command.args = {"SET", "k", "v"};
  std::optional<ShardResponse> got;
  n4.router->Call(
      w, [&](ShardResponse r) { got = std::move(r); }, 0);
  ASSERT_EQ(n4.out.requests.size(), 1u);
  ShardResponse stale;
  stale.reply = kv::Reply::Error(kv::ReplyCode::kStaleRequest);
  n4.router->OnResponse(n4.out.requests[0].to, n4.out.requests[0].id, stale, 1 * kMs);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->never_applied_before);
}

}  // namespace
}  // namespace synod::cluster
