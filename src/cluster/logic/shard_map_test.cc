#include "cluster/logic/shard_map.h"

#include <gtest/gtest.h>

#include <set>

#include "cluster/logic/request.h"

namespace synod::cluster {
namespace {

Layout SixOnThree() {
  Result<Layout> l = MakeInitialLayout({NodeId(1), NodeId(2), NodeId(3)}, 6, 3);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return *l;
}

TEST(LayoutCodecTest, RoundTripsAndRefusesBrokenLayouts) {
  const Layout l = SixOnThree();
  Result<Layout> back = DecodeLayout(EncodeLayout(l));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(EncodeLayout(*back), EncodeLayout(l));
  ASSERT_EQ(back->shards.size(), 6u);
  EXPECT_EQ(back->shards[5].last_slot, kSlotCount - 1);
  EXPECT_EQ(back->meta.voters, l.meta.voters);
  std::string text = EncodeLayout(l);
  // A gap in the slots, a repeated group, no meta shard, garbage: each refused, none crashes.
  for (const std::string& bad :
       {text.substr(0, text.rfind("shard ")),                           // the last shard missing
        text + "shard group=2 slots=0-1 epoch=1 voters=1 learners=\n",  // group 2 twice
        text.substr(text.find('\n') + 1),                               // no meta line
        std::string("meta group=x\n"), std::string("shard group=2 slots=9-1\n"),
        std::string("meta group=1 epoch=1 voters=1,1 learners=\n"), std::string("\xff\n=")}) {
    EXPECT_FALSE(DecodeLayout(bad).ok()) << bad;
  }
}

TEST(ShardMapTest, EverySlotHasItsShard) {
  ShardMap m(SixOnThree());
  for (uint32_t s = 0; s < kSlotCount; ++s) {
    ASSERT_TRUE(m.ForSlot(static_cast<uint16_t>(s)).Covers(static_cast<uint16_t>(s))) << s;
  }
  EXPECT_EQ(m.ForSlot(0).group, GroupId(2));
  EXPECT_EQ(m.ForSlot(kSlotCount - 1).group, GroupId(7));
  EXPECT_NE(m.Find(kMetaGroup), nullptr);
  EXPECT_EQ(m.Find(GroupId(99)), nullptr);
}

TEST(ShardMapTest, ALaterTermsLeaderWinsAndAnOlderNoticeIsIgnored) {
  ShardMap m(SixOnThree());
  EXPECT_EQ(m.leader(GroupId(2)), kNoNode);
  m.NoteLeader(GroupId(2), NodeId(1), 3);
  EXPECT_EQ(m.leader(GroupId(2)), NodeId(1));
  m.NoteLeader(GroupId(2), NodeId(2), 2);  // late news of an older term
  EXPECT_EQ(m.leader(GroupId(2)), NodeId(1));
  m.NoteLeader(GroupId(2), kNoNode, 3);  // "no leader" in the same term does not undo it
  EXPECT_EQ(m.leader(GroupId(2)), NodeId(1));
  m.NoteLeader(GroupId(2), kNoNode, 4);  // an election in a later term does
  EXPECT_EQ(m.leader(GroupId(2)), kNoNode);
  m.NoteLeader(GroupId(2), NodeId(3), 4);
  EXPECT_EQ(m.leader(GroupId(2)), NodeId(3));
  EXPECT_EQ(m.leader_term(GroupId(2)), 4u);
}

TEST(ShardMapTest, WithMembersKeepsThePreferredLeaderFirstAndBumpsTheEpoch) {
  ShardMap m(SixOnThree());
  const ShardDescriptor& d = *m.Find(GroupId(3));
  const NodeId preferred = d.voters.front();
  EXPECT_TRUE(SameMembers(d, {NodeId(3), NodeId(1), NodeId(2)}, {}));
  EXPECT_FALSE(SameMembers(d, {NodeId(1), NodeId(2)}, {NodeId(3)}));
  const ShardDescriptor n = WithMembers(d, {NodeId(4), NodeId(1), NodeId(2), NodeId(3)}, {});
  EXPECT_EQ(n.voters.front(), preferred);
  EXPECT_EQ(n.voters.size(), 4u);
  EXPECT_EQ(n.epoch, d.epoch + 1);
  EXPECT_EQ(n.first_slot, d.first_slot);
  // The preferred leader removed: the others in id order.
  const ShardDescriptor r = WithMembers(d, {NodeId(4), NodeId(2)}, {NodeId(9), NodeId(5)});
  EXPECT_EQ(r.voters, (std::vector<NodeId>{NodeId(2), NodeId(4)}));
  EXPECT_EQ(r.learners, (std::vector<NodeId>{NodeId(5), NodeId(9)}));
}

TEST(ShardMapTest, UpdateTakesOnlyNewerEpochs) {
  ShardMap m(SixOnThree());
  const ShardDescriptor d = *m.Find(GroupId(3));
  const ShardDescriptor next = WithMembers(d, {NodeId(1), NodeId(2), NodeId(3), NodeId(4)}, {});
  EXPECT_TRUE(m.Update(next));
  EXPECT_EQ(m.Find(GroupId(3))->epoch, d.epoch + 1);
  EXPECT_EQ(m.Find(GroupId(3))->voters.size(), 4u);
  EXPECT_FALSE(m.Update(next));  // the same epoch again
  EXPECT_FALSE(m.Update(d));     // an older one
  ShardDescriptor no_voters = next;
  no_voters.epoch = 9;
  no_voters.voters.clear();
  EXPECT_FALSE(m.Update(no_voters));
  // The slot table still finds the shard.
  EXPECT_EQ(m.ForSlot(d.first_slot).group, GroupId(3));
  EXPECT_EQ(m.ForSlot(d.first_slot).epoch, d.epoch + 1);
  EXPECT_TRUE(m.clean());
  // The meta shard's descriptor is updated the same way.
  EXPECT_TRUE(m.Update(WithMembers(*m.Find(kMetaGroup), {NodeId(1), NodeId(2)}, {})));
  EXPECT_EQ(m.Find(kMetaGroup)->epoch, 2u);
}

// A split of group 3 at slot `at` into group `child`, both at the next epoch.
std::pair<ShardDescriptor, ShardDescriptor> Split(const ShardDescriptor& parent, uint16_t at,
                                                  GroupId child) {
  ShardDescriptor left = parent;
  left.last_slot = static_cast<uint16_t>(at - 1);
  left.epoch = parent.epoch + 1;
  ShardDescriptor right = parent;
  right.group = child;
  right.first_slot = at;
  right.epoch = parent.epoch + 1;
  return {left, right};
}

TEST(ShardMapTest, ASplitIsLearntInEitherOrderAndNoSlotIsEverLeftWithoutAShard) {
  for (bool parent_first : {true, false}) {
    ShardMap m(SixOnThree());
    const ShardDescriptor p = *m.Find(GroupId(3));
    const uint16_t at = static_cast<uint16_t>(p.first_slot + 100);
    const auto [left, right] = Split(p, at, GroupId(20));
    EXPECT_TRUE(m.Update(parent_first ? left : right));
    // Half learnt: every slot still has a shard, and the one a request meets can send it on.
    EXPECT_FALSE(m.clean());
    EXPECT_EQ(m.ForSlot(p.first_slot).group, GroupId(3));
    EXPECT_EQ(m.ForSlot(at).group, parent_first ? GroupId(3) : GroupId(20));
    EXPECT_TRUE(m.Update(parent_first ? right : left));
    EXPECT_TRUE(m.clean()) << parent_first;
    EXPECT_EQ(m.ForSlot(at - 1).group, GroupId(3));
    EXPECT_EQ(m.ForSlot(at).group, GroupId(20));
    EXPECT_EQ(m.ForSlot(p.last_slot).group, GroupId(20));
    EXPECT_EQ(m.layout().shards.size(), 7u);
    // In slot order.
    for (size_t i = 1; i < m.layout().shards.size(); ++i) {
      EXPECT_EQ(m.layout().shards[i].first_slot, m.layout().shards[i - 1].last_slot + 1);
    }
  }
}

TEST(ShardMapTest, AnOlderDescriptorOfTheParentNeverTakesTheNewShardsSlotsBack) {
  ShardMap m(SixOnThree());
  const ShardDescriptor p = *m.Find(GroupId(3));
  const uint16_t at = static_cast<uint16_t>(p.first_slot + 10);
  const auto [left, right] = Split(p, at, GroupId(20));
  ASSERT_TRUE(m.Update(right));
  // The parent's membership changed at the same epoch the split gave it (a race in the meta
  // shard): the wider descriptor of that epoch loses to the narrower new shard.
  ShardDescriptor wide = p;
  wide.epoch = right.epoch;
  wide.voters = {NodeId(3), NodeId(1)};
  ASSERT_TRUE(m.Update(wide));
  EXPECT_EQ(m.ForSlot(at).group, GroupId(20));
  EXPECT_EQ(m.ForSlot(at - 1).group, GroupId(3));
}

TEST(ShardMapTest, DescriptorsRoundTripOneLineEachAndBadOnesAreRefused) {
  const Layout l = SixOnThree();
  for (const ShardDescriptor* d : {&l.meta, &l.shards[0], &l.shards[5]}) {
    Result<ShardDescriptor> back = DecodeDescriptor(EncodeDescriptor(*d));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(EncodeDescriptor(*back), EncodeDescriptor(*d));
    EXPECT_EQ(back->voters, d->voters);
  }
  EXPECT_EQ(EncodeDescriptor(l.shards[0]).find('\n'), std::string::npos);
  for (const char* bad :
       {"", "shard group=2 epoch=1 voters=1", "meta group=1 slots=0-5 epoch=1 voters=1",
        "meta group=2 epoch=1 voters=1", "shard group=1 slots=0-5 epoch=1 voters=1",
        "shard group=2 slots=9-5 epoch=1 voters=1", "shard group=2 slots=0-5 epoch=1 voters=",
        "shard group=2 slots=0-5 epoch=1 voters=1,1", "shard group=2 slots=0-5 epoch=x voters=1",
        "shard group=2 slots=0-99999 epoch=1 voters=1"}) {
    EXPECT_FALSE(DecodeDescriptor(bad).ok()) << bad;
  }
}

TEST(DecideRouteTest, TheRulesInOrder) {
  const Layout l = SixOnThree();
  const ShardDescriptor& d = l.shards[0];  // voters 1,2,3
  RouteInput in;
  in.self = NodeId(1);
  in.shard = &d;
  // Led here: local.
  in.hosted = true;
  in.local_leader = true;
  EXPECT_EQ(DecideRoute(in), (RouteDecision{RouteAction::kLocal, kNoNode}));
  // A READONLY read of a hosted shard: local even without leading.
  in.local_leader = false;
  in.leader = NodeId(2);
  in.stale_ok = true;
  EXPECT_EQ(DecideRoute(in).action, RouteAction::kLocal);
  // Otherwise to the known leader.
  in.stale_ok = false;
  EXPECT_EQ(DecideRoute(in), (RouteDecision{RouteAction::kForward, NodeId(2)}));
  // No leader known: a hosted shard waits for its replica to hear of one, for a while; then
  // (a replica cut off, or removed without knowing it) it asks its other voters.
  in.leader = kNoNode;
  EXPECT_EQ(DecideRoute(in).action, RouteAction::kWait);
  in.waited = in.wait_max;
  {
    const RouteDecision r = DecideRoute(in);
    EXPECT_EQ(r.action, RouteAction::kForward);
    EXPECT_NE(r.to, NodeId(1));
  }
  in.waited = 0;
  // Not hosted, no leader known: the voters in turn, never this node.
  in.self = NodeId(4);
  in.hosted = false;
  std::set<NodeId> asked;
  for (int a = 0; a < 6; ++a) {
    in.attempt = a;
    const RouteDecision r = DecideRoute(in);
    ASSERT_EQ(r.action, RouteAction::kForward);
    asked.insert(r.to);
  }
  EXPECT_EQ(asked, (std::set<NodeId>{NodeId(1), NodeId(2), NodeId(3)}));
  // A hint naming this node while it does not lead (stale): wait rather than loop to itself.
  in.self = NodeId(1);
  in.hosted = true;
  in.attempt = 0;
  in.leader = NodeId(1);
  EXPECT_EQ(DecideRoute(in).action, RouteAction::kWait);
  // A hint naming a node that is no member of the shard (a move took the shard away from the
  // node that last said it led): ignored, the voters are asked in turn (regression: simulator
  // seed 8101, a frozen shard's resolution sent to such a node until its deadline, forever).
  in.self = NodeId(4);
  in.hosted = false;
  in.leader = NodeId(5);
  {
    const RouteDecision r = DecideRoute(in);
    EXPECT_EQ(r.action, RouteAction::kForward);
    EXPECT_TRUE(r.to == NodeId(1) || r.to == NodeId(2) || r.to == NodeId(3)) << r.to.value();
  }
}

TEST(ShardRequestTest, RoundTripsAndRefusesGarbage) {
  ShardRequest w;
  w.type = ShardRequest::Type::kWrite;
  w.group = GroupId(5);
  w.epoch = 3;
  w.command.op = kv::Op::kRedis;
  w.command.args = {"SET", "k", std::string("v\0x", 3)};
  w.command.client_id = 9;
  w.command.seq = 2;
  Result<ShardRequest> back = DecodeShardRequest(EncodeShardRequest(w));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->type, w.type);
  EXPECT_EQ(back->group, w.group);
  EXPECT_EQ(back->epoch, 3u);
  EXPECT_EQ(back->command, w.command);
  ShardRequest r;
  r.type = ShardRequest::Type::kRead;
  r.group = GroupId(2);
  r.args = {"MGET", "a", "b"};
  r.now_ms = 123;
  r.random = 77;
  back = DecodeShardRequest(EncodeShardRequest(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->args, r.args);
  EXPECT_EQ(back->now_ms, 123);
  EXPECT_EQ(back->random, 77u);
  EXPECT_FALSE(DecodeShardRequest("\xff\xff").ok());
  r.group = kNoGroup;
  EXPECT_FALSE(DecodeShardRequest(EncodeShardRequest(r)).ok());

  ShardResponse ok;
  ok.reply = kv::Reply::Array({kv::Reply::Bulk("x"), kv::Reply::Nil()});
  ok.index = LogIndex(17);
  ok.leader = NodeId(3);
  ok.term = 8;
  Result<ShardResponse> rb = DecodeShardResponse(EncodeShardResponse(ok));
  ASSERT_TRUE(rb.ok());
  EXPECT_TRUE(rb->status.ok());
  EXPECT_EQ(rb->reply, ok.reply);
  EXPECT_EQ(rb->index, LogIndex(17));
  EXPECT_EQ(rb->leader, NodeId(3));
  ShardResponse refused;
  refused.status = Status::NotLeader("node 1 does not lead shard 2");
  refused.descriptors = {"shard group=2 slots=0-8191 epoch=3 voters=1,2,3 learners=4"};
  rb = DecodeShardResponse(EncodeShardResponse(refused));
  ASSERT_TRUE(rb.ok());
  EXPECT_EQ(rb->status.code(), Code::kNotLeader);
  EXPECT_EQ(rb->status.message(), "node 1 does not lead shard 2");
  EXPECT_EQ(rb->descriptors, refused.descriptors);
  EXPECT_FALSE(DecodeShardResponse("\x08\xff\x01").ok());  // an unknown code
}

}  // namespace
}  // namespace synod::cluster
