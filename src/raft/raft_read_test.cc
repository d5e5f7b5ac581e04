// Linearizable reads (Raft thesis §6.4): ReadIndex confirmed by a heartbeat quorum, and lease
// reads served without a round trip while the leader's lease holds.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

// Every message of `round` is a heartbeat carrying the read context `ctx`.
void ExpectReadRound(const std::vector<Message>& round, const std::string& ctx) {
  for (const Message& m : round) {
    EXPECT_EQ(m.type, MT::kHeartbeat);
    EXPECT_EQ(m.context, ctx);
  }
}

bool HasHeartbeatWithContext(const std::vector<Message>& msgs, const std::string& ctx) {
  for (const Message& m : msgs) {
    if (m.type == MT::kHeartbeat && m.context == ctx) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// ReadIndex (safe)

// The read index is the commit index when the request arrived, handed out only after a quorum
// acknowledged a heartbeat carrying the request: a deposed leader can never answer.
TEST(ReadIndexTest, NeedsHeartbeatQuorum) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  const LogIndex commit = net.node(1).committed();
  ASSERT_TRUE(net.raw(1).ReadIndex("a").ok());
  auto hbs = net.CollectAndTake();
  EXPECT_TRUE(net.node(1).read_states.empty()) << "answered before any acknowledgement";
  ASSERT_EQ(hbs.size(), 2u);
  ExpectReadRound(hbs, "a");
  // A proposal arriving now does not move the read index: it was fixed on arrival.
  ASSERT_TRUE(net.raw(1).Propose("later").ok());
  (void)net.CollectAndTake();  // held back: the proposal does not commit
  // Only node 2 answers: with the leader that is a quorum of three.
  net.Deliver(hbs[0]);
  net.Collect();
  auto resp = net.TakePending();
  ASSERT_EQ(CountType(resp, MT::kHeartbeatResp), 1u);
  net.Deliver(OfType(resp, MT::kHeartbeatResp));
  net.node(1).Drain();
  ASSERT_EQ(net.node(1).read_states.size(), 1u);
  EXPECT_EQ(net.node(1).read_states[0], (ReadState{commit, "a"}));
}

TEST(ReadIndexTest, NoAnswerWithoutQuorum) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(1);
  ASSERT_TRUE(net.raw(1).ReadIndex("a").ok());
  net.TickAll(5);
  EXPECT_TRUE(net.node(1).read_states.empty());
  // A single acknowledgement suffices once the partition heals (heartbeats carry the newest
  // pending context).
  net.Recover();
  net.TickAll(1);
  ASSERT_EQ(net.node(1).read_states.size(), 1u);
  EXPECT_EQ(net.node(1).read_states[0].context, "a");
}

// One heartbeat round confirms every read queued before it.
TEST(ReadIndexTest, LaterAcknowledgementReleasesEarlierReads) {
  Network net({1, 2, 3}, [](Config& c) { c.max_read_rounds_in_flight = 1; });
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.raw(1).ReadIndex("a").ok());
  auto first = net.CollectAndTake();  // lost
  ASSERT_TRUE(net.raw(1).Propose("x").ok());
  net.Stabilize();  // the proposal commits; the read stays pending
  EXPECT_TRUE(net.node(1).read_states.empty());
  // "b" arrives while the round of "a" is out (lost, but the leader cannot know): it waits
  // for the next round, which the next heartbeat starts with the newest context.
  ASSERT_TRUE(net.raw(1).ReadIndex("b").ok());
  net.Stabilize();
  EXPECT_TRUE(net.node(1).read_states.empty());
  EXPECT_FALSE(HasHeartbeatWithContext(net.delivered, "b"));
  net.Tick(1, net.node(1).config().heartbeat_ticks);
  ASSERT_EQ(net.node(1).read_states.size(), 2u);
  EXPECT_EQ(net.node(1).read_states[0].context, "a");
  EXPECT_EQ(net.node(1).read_states[1].context, "b");
  EXPECT_LT(net.node(1).read_states[0].index, net.node(1).read_states[1].index);
  EXPECT_EQ(net.node(1).read_states[1].index, net.node(1).committed());
}

// §6.4 step 1: until an entry of its own term commits, a new leader's commit index may lag;
// reads wait for that first commit instead of being answered with a stale index.
TEST(ReadIndexTest, PendingUntilFirstCommitInTerm) {
  Network net({1, 2, 3});
  net.DropType(MT::kApp);
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_EQ(net.Leader(), 1u);
  ASSERT_LT(net.node(1).committed(), net.node(1).last_index());
  ASSERT_TRUE(net.raw(1).ReadIndex("r").ok());
  net.TickAll(3);  // heartbeats flow, but the no-op cannot commit
  EXPECT_TRUE(net.node(1).read_states.empty());
  EXPECT_FALSE(HasHeartbeatWithContext(net.delivered, "r"));

  net.Recover();
  net.TickAll(2);
  ASSERT_EQ(net.node(1).read_states.size(), 1u);
  EXPECT_EQ(net.node(1).read_states[0].context, "r");
  EXPECT_GE(net.node(1).read_states[0].index, I(2)) << "index from before the term's commit";
}

// A follower forwards the request; the leader confirms it and answers the follower, which
// reports it in its own Ready.
TEST(ReadIndexTest, ForwardedFromFollower) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(1, "x").ok());
  ASSERT_TRUE(net.raw(2).ReadIndex("f").ok());
  net.Stabilize();
  ASSERT_EQ(net.node(2).read_states.size(), 1u);
  EXPECT_EQ(net.node(2).read_states[0], (ReadState{net.node(1).committed(), "f"}));
  EXPECT_TRUE(net.node(1).read_states.empty());
  EXPECT_TRUE(HasHeartbeatWithContext(net.delivered, "f"));
}

// One confirmation round in flight at the leader: the requests that arrive meanwhile — its own
// and those its followers forward — share the next round, which starts as soon as the first
// one completes.
TEST(ReadIndexTest, RequestsArrivingDuringARoundShareTheNextOne) {
  Network net({1, 2, 3}, [](Config& c) { c.max_read_rounds_in_flight = 1; });
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(1, "x").ok());
  ASSERT_TRUE(net.raw(1).ReadIndex("r1").ok());
  std::vector<Message> round1 = net.CollectAndTake();
  ASSERT_EQ(round1.size(), 2u);  // a heartbeat to each follower
  ExpectReadRound(round1, "r1");
  // Meanwhile: another local read, and one forwarded by each follower.
  ASSERT_TRUE(net.raw(1).ReadIndex("r2").ok());
  ASSERT_TRUE(net.raw(2).ReadIndex("f2").ok());
  ASSERT_TRUE(net.raw(3).ReadIndex("f3").ok());
  std::vector<Message> forwarded = net.CollectAndTake();
  ASSERT_EQ(forwarded.size(), 2u);
  net.Deliver(forwarded);
  EXPECT_TRUE(net.CollectAndTake().empty()) << "no second round while the first is out";

  net.Send(round1);
  EXPECT_EQ(net.node(1).read_states.size(), 2u);
  EXPECT_EQ(net.node(2).read_states.size(), 1u);
  EXPECT_EQ(net.node(3).read_states.size(), 1u);
  int heartbeats = 0;
  for (const Message& m : net.delivered) heartbeats += m.type == MT::kHeartbeat ? 1 : 0;
  EXPECT_EQ(heartbeats, 4) << "two rounds in all";
  EXPECT_TRUE(HasHeartbeatWithContext(net.delivered, "f3"));
  for (uint64_t id : {1, 2, 3}) {
    for (const ReadState& rs : net.node(id).read_states) {
      EXPECT_EQ(rs.index, net.node(1).committed()) << rs.context;
    }
  }
}

// With two rounds allowed, a request arriving while one is out starts the second at once; a
// third waits until a round completes. An acknowledgement of the newer round releases the
// older round's reads too, and the late acknowledgements of the older round change nothing.
TEST(ReadIndexTest, UpToTheConfiguredNumberOfRoundsGoOutAtOnce) {
  Network net({1, 2, 3}, [](Config& c) { c.max_read_rounds_in_flight = 2; });
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(1, "x").ok());
  ASSERT_TRUE(net.raw(1).ReadIndex("r1").ok());
  std::vector<Message> round1 = net.CollectAndTake();
  ASSERT_EQ(round1.size(), 2u);
  ASSERT_TRUE(net.raw(1).ReadIndex("r2").ok());
  std::vector<Message> round2 = net.CollectAndTake();
  ASSERT_EQ(round2.size(), 2u) << "a second round while the first is out";
  ExpectReadRound(round2, "r2");
  ASSERT_TRUE(net.raw(1).ReadIndex("r3").ok());
  ASSERT_TRUE(net.raw(2).ReadIndex("f3").ok());
  std::vector<Message> forwarded = net.CollectAndTake();
  ASSERT_EQ(forwarded.size(), 1u);
  net.Deliver(forwarded);
  EXPECT_TRUE(net.CollectAndTake().empty()) << "no third round while two are out";

  // The second round's acknowledgements release r1 and r2; the third round (r3 and f3) starts
  // and completes.
  net.Send(round2);
  ASSERT_EQ(net.node(1).read_states.size(), 3u);
  EXPECT_EQ(net.node(1).read_states[0].context, "r1");
  EXPECT_EQ(net.node(1).read_states[1].context, "r2");
  EXPECT_EQ(net.node(1).read_states[2].context, "r3");
  ASSERT_EQ(net.node(2).read_states.size(), 1u);
  EXPECT_EQ(net.node(2).read_states[0].context, "f3");
  EXPECT_TRUE(HasHeartbeatWithContext(net.delivered, "f3"));
  net.Send(round1);  // late: its reads are gone
  EXPECT_EQ(net.node(1).read_states.size(), 3u);
  EXPECT_TRUE(net.CollectAndTake().empty());
  // Nothing is left out: a new request gets a round of its own at once.
  ASSERT_TRUE(net.raw(1).ReadIndex("r4").ok());
  EXPECT_EQ(net.CollectAndTake().size(), 2u);
}

// Heartbeat responses retry appends to a follower that is not taking them, but at most once
// per tick: read rounds send heartbeats far more often than the heartbeat interval, and each
// retry may carry up to max_msg_bytes. (Without the bound, a simulated cluster under reads
// and faults grew to 24 GB of queued appends: seeds 2005 and 2008 of `--faults all
// --duration 60s`.)
TEST(ReadIndexTest, ReadRoundsRetryAppendsToAStalledFollowerOncePerTick) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  int appends_to_3 = 0;
  net.DropIf([&appends_to_3](const Message& m) {
    if (m.type != MT::kApp || m.to != NodeId(3)) return false;
    ++appends_to_3;
    return true;
  });
  ASSERT_TRUE(net.Propose(1, "x").ok());
  ASSERT_LT(net.node(3).last_index(), net.node(1).last_index());
  const int before = appends_to_3;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(net.raw(1).ReadIndex("r" + std::to_string(i)).ok());
    net.Stabilize();
  }
  EXPECT_EQ(net.node(1).read_states.size(), 10u);  // node 2 confirms every round
  EXPECT_LE(appends_to_3 - before, 1) << "ten rounds in one tick, at most one retry";
  const int after_rounds = appends_to_3;
  net.Tick(1, net.node(1).config().heartbeat_ticks);
  EXPECT_EQ(appends_to_3 - after_rounds, 1) << "the next tick's heartbeat retries again";
}

// A forwarded ReadIndex delivered twice (the network duplicated it) after the first copy was
// answered: the late acknowledgement of the first copy's round releases the second copy too,
// before a round of its own went out. Nothing is left pending, so no round may remain due:
// the leader once kept broadcasting empty heartbeats at every Ready (simulator seed 130 of
// `--faults all` ran out of memory).
TEST(ReadIndexTest, ADuplicatedRequestReleasedEarlyLeavesNoRoundDue) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.Propose(1, "x").ok());
  ASSERT_TRUE(net.raw(2).ReadIndex("f").ok());
  std::vector<Message> fwd = net.CollectAndTake();
  ASSERT_EQ(fwd.size(), 1u);
  ASSERT_EQ(fwd[0].type, MT::kReadIndex);
  net.Deliver(fwd);
  std::vector<Message> round = net.CollectAndTake();
  ASSERT_EQ(round.size(), 2u);
  net.Deliver(round);
  std::vector<Message> acks = net.CollectAndTake();
  ASSERT_EQ(acks.size(), 2u);
  net.Deliver(acks[0]);  // quorum: the read is answered
  net.Deliver(fwd);      // the duplicate
  net.Deliver(acks[1]);  // the first round's late ack releases the duplicate as well
  net.Stabilize();
  EXPECT_FALSE(net.raw(1).HasReady()) << "a round is still due with nothing to confirm";
  int heartbeats = 0;
  for (const Message& m : net.delivered) heartbeats += m.type == MT::kHeartbeat ? 1 : 0;
  EXPECT_LE(heartbeats, 4);
}

TEST(ReadIndexTest, SingleNodeAnswersAtOnce) {
  Network net({1});
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_TRUE(net.raw(1).ReadIndex("s").ok());
  net.Stabilize();
  ASSERT_EQ(net.node(1).read_states.size(), 1u);
  EXPECT_EQ(net.node(1).read_states[0], (ReadState{net.node(1).committed(), "s"}));
}

// A leader that steps down reports its pending reads as aborted — both those waiting for a
// heartbeat quorum and those waiting for the term's first commit.
TEST(ReadIndexTest, AbortedOnStepDown) {
  for (bool before_first_commit : {false, true}) {
    SCOPED_TRACE(before_first_commit);
    Network net({1, 2, 3}, [](Config& c) { c.check_quorum = true; });
    if (before_first_commit) net.DropType(MT::kApp);
    ASSERT_TRUE(net.Campaign(1).ok());
    ASSERT_EQ(net.Leader(), 1u);
    net.Isolate(1);
    ASSERT_TRUE(net.raw(1).ReadIndex("x").ok());
    ASSERT_TRUE(net.raw(1).ReadIndex("y").ok());
    net.Tick(1, 2 * net.node(1).config().election_ticks);
    ASSERT_EQ(net.node(1).role(), Role::kFollower);
    EXPECT_TRUE(net.node(1).read_states.empty());
    EXPECT_EQ(net.node(1).aborted_reads, (std::vector<std::string>{"x", "y"}));
  }
}

// ---------------------------------------------------------------------------------------------
// Lease reads

ConfigFn LeaseConfig(int drift_ticks) {
  return [=](Config& c) {
    c.check_quorum = true;
    c.read_only_option = ReadOnlyOption::kLeaseBased;
    c.lease_clock_drift_ticks = drift_ticks;
  };
}

// Elects `id`. Every node first runs an election timeout on its own (lease followers refuse
// votes right after a start, when they may have acknowledged a lease before a crash).
void WarmUpAndElect(Network& net, uint64_t id) {
  for (uint64_t a : net.ids()) net.Isolate(a);
  net.TickAll(net.node(id).config().election_ticks);
  net.Recover();
  for (int i = 0; i < 5 && net.node(id).role() != Role::kLeader; ++i) {
    ASSERT_TRUE(net.Campaign(id).ok());
  }
  ASSERT_EQ(net.Leader(), id);
  net.TickAll(2);  // heartbeats acknowledged: the lease starts
}

// Reads of the leader `id` answered in its next Ready, with no heartbeat carrying them.
bool ServedLocally(Network& net, uint64_t id, const std::string& ctx) {
  const size_t before = net.node(id).read_states.size();
  EXPECT_TRUE(net.raw(id).ReadIndex(ctx).ok());
  std::vector<Message> msgs = net.node(id).Drain();
  const bool local =
      net.node(id).read_states.size() == before + 1 && !HasHeartbeatWithContext(msgs, ctx);
  net.Send(msgs);
  return local;
}

TEST(LeaseReadTest, ServedWithoutRoundTripWhileLeaseHolds) {
  Network net({1, 2, 3}, LeaseConfig(2));
  WarmUpAndElect(net, 1);
  ASSERT_TRUE(net.Propose(1, "x").ok());
  net.ClearLog();
  EXPECT_TRUE(ServedLocally(net, 1, "l"));
  EXPECT_EQ(net.node(1).read_states.back(), (ReadState{net.node(1).committed(), "l"}));
  EXPECT_EQ(CountType(net.delivered, MT::kHeartbeat), 0u);
  // A follower's forwarded request is answered directly as well.
  net.ClearLog();
  ASSERT_TRUE(net.raw(2).ReadIndex("f").ok());
  net.Stabilize();
  ASSERT_EQ(net.node(2).read_states.size(), 1u);
  EXPECT_FALSE(HasHeartbeatWithContext(net.delivered, "f"));
}

// The lease lasts election_ticks - lease_clock_drift_ticks after the newest tick a quorum
// acknowledged; past it, reads fall back to a heartbeat round (which cannot complete here).
TEST(LeaseReadTest, LapsesAfterElectionTimeoutLessDrift) {
  for (int drift : {0, 2, 5}) {
    SCOPED_TRACE(drift);
    Network net({1, 2, 3}, LeaseConfig(drift));
    WarmUpAndElect(net, 1);
    const int lease = net.node(1).config().election_ticks - drift;
    // The last heartbeat, sent at the current tick, was acknowledged by both followers.
    net.Isolate(1);
    net.Tick(1, lease - 1);
    EXPECT_TRUE(ServedLocally(net, 1, "in"));
    net.Tick(1);
    ASSERT_EQ(net.node(1).role(), Role::kLeader);
    EXPECT_FALSE(ServedLocally(net, 1, "out"));
    EXPECT_EQ(net.node(1).read_states.back().context, "in");
  }
}

// The lease is safe while follower clocks run at most lease_clock_drift_ticks ahead of the
// leader's over an election timeout, and the bound is tight: with followers exactly that far
// ahead, the leader's lease ends on the very tick the followers may elect someone else.
TEST(LeaseReadTest, EndsWhenFastFollowersMayElectAnotherLeader) {
  const int drift = 2;
  Network net({1, 2, 3}, LeaseConfig(drift));
  WarmUpAndElect(net, 1);  // the newest heartbeat, of the current tick, was acknowledged
  const int et = net.node(1).config().election_ticks;
  net.Isolate(1);
  auto tick_followers = [&net](int n) {
    for (int i = 0; i < n; ++i) {
      net.raw(2).Tick();
      net.raw(3).Tick();
    }
    net.Stabilize();
  };
  // Followers one tick short of an election timeout, the leader `drift` ticks behind them.
  tick_followers(et - 1);
  net.Tick(1, et - 1 - drift);
  EXPECT_TRUE(ServedLocally(net, 1, "in lease"));
  ASSERT_TRUE(net.Campaign(2).ok());
  EXPECT_NE(net.node(2).role(), Role::kLeader) << "elected while the old lease held";
  // One more tick everywhere: the followers may now elect a new leader, and the lease is over.
  tick_followers(1);
  net.Tick(1, 1);
  EXPECT_FALSE(ServedLocally(net, 1, "lapsed"));
  for (int i = 0; i < 3 && net.node(2).role() != Role::kLeader; ++i) {
    ASSERT_TRUE(net.Campaign(2).ok());
  }
  EXPECT_EQ(net.node(2).role(), Role::kLeader);
}

// After TimeoutNow the target may win at any moment, ignoring the followers' leases, so the
// old leader never serves lease reads again in this term — even once the transfer is
// abandoned and its heartbeats are acknowledged again.
TEST(LeaseReadTest, NotAfterTimeoutNowWasSent) {
  for (bool transfer : {false, true}) {
    SCOPED_TRACE(transfer);
    Network net({1, 2, 3}, LeaseConfig(2));
    WarmUpAndElect(net, 1);
    net.DropType(MT::kTimeoutNow);
    if (transfer) {
      ASSERT_TRUE(net.raw(1).TransferLeadership(N(2)).ok());
      net.Stabilize();
      ASSERT_EQ(CountType(net.dropped, MT::kTimeoutNow), 1u);
      EXPECT_FALSE(ServedLocally(net, 1, "during"));
    }
    net.TickAll(net.node(1).config().election_ticks);
    ASSERT_EQ(net.Leader(), 1u);
    ASSERT_EQ(net.node(1).raft().GetStatus().lead_transferee, kNoNode);
    EXPECT_EQ(ServedLocally(net, 1, "after"), !transfer);
    // The read is still answered, by a heartbeat round.
    net.Stabilize();
    EXPECT_EQ(net.node(1).read_states.back().context, "after");
  }
}

TEST(LeaseReadTest, ConfigRequiresCheckQuorum) {
  MemoryStorage storage;
  Config c = TestConfig(1, &storage);
  c.read_only_option = ReadOnlyOption::kLeaseBased;
  c.check_quorum = false;
  EXPECT_EQ(c.Validate().code(), Code::kInvalidArgument);
  EXPECT_FALSE(RawNode::Create(c).ok());
  c.check_quorum = true;
  EXPECT_TRUE(c.Validate().ok());
  c.lease_clock_drift_ticks = c.election_ticks;
  EXPECT_EQ(c.Validate().code(), Code::kInvalidArgument);
  c.lease_clock_drift_ticks = -1;
  EXPECT_EQ(c.Validate().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace synod::raft::test
