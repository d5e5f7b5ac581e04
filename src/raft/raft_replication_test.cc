// Log replication beyond the basic rules: snapshots for followers that need compacted entries
// (etcd's raft_snap_test.go), per-follower flow control (raft_flow_control_test.go), and fast
// backtracking of conflicting suffixes.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

// A Storage over a MemoryStorage whose snapshot can be made temporarily unavailable (as while
// the application is building one); counts the core's requests for it.
class FlakySnapshotStorage final : public Storage {
 public:
  explicit FlakySnapshotStorage(const MemoryStorage* mem) : mem_(mem) {}

  Result<std::pair<HardState, ConfState>> InitialState() const override {
    return mem_->InitialState();
  }
  Result<std::vector<Entry>> Entries(LogIndex lo, LogIndex hi, uint64_t max_bytes) const override {
    return mem_->Entries(lo, hi, max_bytes);
  }
  Result<Term> TermAt(LogIndex i) const override { return mem_->TermAt(i); }
  LogIndex FirstIndex() const override { return mem_->FirstIndex(); }
  LogIndex LastIndex() const override { return mem_->LastIndex(); }
  Result<Snapshot> GetSnapshot() const override {
    ++requests;
    // Bounded so that a leader spinning on the unavailable snapshot still terminates.
    if (unavailable && requests < kUnavailableMax) {
      return Status::Unavailable("snapshot being built");
    }
    return mem_->GetSnapshot();
  }

  static constexpr int kUnavailableMax = 1000;
  bool unavailable = false;
  mutable int requests = 0;

 private:
  const MemoryStorage* mem_;
};

// Answers every append `n` sends to `to` with an acceptance (and drops the rest) until
// `n` sends no more of them.
void AcceptAppendsFrom(TestNode& n, uint64_t to) {
  for (int round = 0; round < 100; ++round) {
    bool any = false;
    for (const Message& m : OfType(n.Drain(), MT::kApp)) {
      if (m.to != N(to)) continue;
      any = true;
      ASSERT_TRUE(n.Step(AcceptAppend(m)).ok());
    }
    if (!any) return;
  }
}

std::vector<Message> AppsTo(const std::vector<Message>& msgs, uint64_t to) {
  std::vector<Message> out;
  for (const Message& m : OfType(msgs, MT::kApp)) {
    if (m.to == N(to)) out.push_back(m);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Snapshots

// Builds a group where node 3 missed entries 3..7 that the leader has since compacted away.
void LagBehindCompaction(Network& net) {
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  ASSERT_EQ(net.node(1).committed(), I(7));
  net.node(1).CompactTo(I(6));
  net.Recover();
}

TEST(SnapshotTest, SentWhenFollowerNeedsCompactedEntries) {
  Network net({1, 2, 3});
  LagBehindCompaction(net);
  net.TickAll(2);
  auto snaps = OfType(net.delivered, MT::kSnap);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].to, N(3));
  ASSERT_TRUE(snaps[0].snapshot.has_value());
  EXPECT_EQ(snaps[0].snapshot->meta.index, I(6));
  EXPECT_EQ(snaps[0].snapshot->meta.conf_state, MakeConf({1, 2, 3}));
  // The follower installed it and received the rest through the log.
  TestNode& f = net.node(3);
  auto snap = f.storage().GetSnapshot();
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->meta.index, I(6));
  EXPECT_EQ(f.applied_index(), I(7));
  EXPECT_EQ(f.applied_data, std::vector<std::string>{"v4"});  // 3..6 came in the snapshot
  EXPECT_EQ(f.raft().log().LastIndex(), net.node(1).last_index());
  EXPECT_EQ(f.committed(), net.node(1).committed());
  const Progress* pr = net.node(1).raft().progress(N(3));
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(pr->state, ProgressState::kReplicate);
  EXPECT_EQ(pr->match, net.node(1).last_index());
}

// While a snapshot is in flight nothing else is sent to that follower; a failure reported by
// the transport returns it to probing, paused until the follower is heard from again, and the
// snapshot is then sent again.
TEST(SnapshotTest, FailureReportedByTransport) {
  Network net({1, 2, 3});
  LagBehindCompaction(net);
  net.DropType(MT::kSnap);
  net.TickAll(2);
  const Progress* pr = net.node(1).raft().progress(N(3));
  ASSERT_EQ(pr->state, ProgressState::kSnapshot);
  EXPECT_EQ(pr->pending_snapshot, I(6));
  net.ClearLog();
  ASSERT_TRUE(net.Propose(1, "w").ok());
  EXPECT_TRUE(AppsTo(net.delivered, 3).empty()) << "appended while a snapshot was in flight";

  net.raw(1).ReportSnapshot(N(3), SnapshotStatus::kFailure);
  pr = net.node(1).raft().progress(N(3));
  EXPECT_EQ(pr->state, ProgressState::kProbe);
  EXPECT_EQ(pr->pending_snapshot, I(0));
  EXPECT_TRUE(pr->IsPaused());
  net.Recover();
  net.TickAll(2);
  EXPECT_EQ(CountType(net.delivered, MT::kSnap), 1u);
  EXPECT_EQ(net.node(3).applied_data, (std::vector<std::string>{"v4", "w"}));
}

// Nobody reports the lost snapshot (the real transport dropped it with a broken connection, or
// the follower restarted while it was on the way): once the follower answers a heartbeat sent
// after the snapshot without having acknowledged the snapshot, the leader knows it was lost,
// probes again, and the probe leads to a new snapshot. Without this the follower stayed behind
// forever (found by the e2e suite: a follower restarted after compaction never caught up).
TEST(SnapshotTest, LostSnapshotIsDetectedByALaterHeartbeat) {
  Network net({1, 2, 3});
  LagBehindCompaction(net);
  net.DropType(MT::kSnap);
  net.TickAll(2);
  const Progress* pr = net.node(1).raft().progress(N(3));
  ASSERT_EQ(pr->state, ProgressState::kSnapshot);
  net.Recover();
  ASSERT_TRUE(net.Propose(1, "w").ok());
  net.ClearLog();
  net.TickAll(10);
  EXPECT_GE(CountType(net.delivered, MT::kSnap), 1u) << "the lost snapshot was never resent";
  EXPECT_EQ(net.node(3).applied_data, (std::vector<std::string>{"v4", "w"}));
  pr = net.node(1).raft().progress(N(3));
  EXPECT_EQ(pr->state, ProgressState::kReplicate);
}

// A streamed snapshot (Snapshot::stream) takes as long as its transfer, and the host reports
// its outcome: heartbeats the follower answers meanwhile must not restart it (each restart
// began the whole transfer again), while the host's report ends it as any transport's does.
TEST(SnapshotTest, AStreamedSnapshotIsNotPresumedLostWhileItsTransferRuns) {
  Network net({1, 2, 3});
  LagBehindCompaction(net);
  MemoryStorage& st = net.node(1).storage();
  Result<Snapshot> base = st.GetSnapshot();
  ASSERT_TRUE(base.ok());
  st.set_snapshot_source([base = *base]() -> Result<Snapshot> {
    Snapshot s = base;
    s.stream = 7;
    return s;
  });
  net.DropType(MT::kSnap);
  net.TickAll(2);
  const Progress* pr = net.node(1).raft().progress(N(3));
  ASSERT_EQ(pr->state, ProgressState::kSnapshot);
  EXPECT_TRUE(pr->snapshot_reported);
  net.Recover();
  net.DropType(MT::kSnap);
  net.ClearLog();
  net.TickAll(10);  // heartbeats sent after the snapshot, all answered
  pr = net.node(1).raft().progress(N(3));
  EXPECT_EQ(pr->state, ProgressState::kSnapshot) << "restarted while its transfer ran";
  EXPECT_EQ(CountType(net.delivered, MT::kSnap), 0u);
  net.raw(1).ReportSnapshot(N(3), SnapshotStatus::kFailure);
  pr = net.node(1).raft().progress(N(3));
  EXPECT_EQ(pr->state, ProgressState::kProbe);
  EXPECT_FALSE(pr->snapshot_reported);
}

// A heartbeat answered before the snapshot was sent says nothing about the snapshot.
TEST(SnapshotTest, HeartbeatSentBeforeTheSnapshotDoesNotAbortIt) {
  Network net({1, 2, 3});
  LagBehindCompaction(net);
  net.DropType(MT::kSnap);
  net.TickAll(2);
  const Progress* pr = net.node(1).raft().progress(N(3));
  ASSERT_EQ(pr->state, ProgressState::kSnapshot);
  Message resp;
  resp.type = MT::kHeartbeatResp;
  resp.from = N(3);
  resp.to = N(1);
  resp.term = net.node(1).raft().term();
  resp.sent_tick = pr->snapshot_sent_tick;  // not after the snapshot
  ASSERT_TRUE(net.raw(1).Step(resp).ok());
  EXPECT_EQ(net.node(1).raft().progress(N(3))->state, ProgressState::kSnapshot);
}

// A snapshot reported delivered: the leader probes from just after it (not from before it,
// which would send it again), after waiting for the follower's answer.
TEST(SnapshotTest, FinishReportedByTransport) {
  Network net({1, 2, 3});
  LagBehindCompaction(net);
  net.DropType(MT::kSnap);
  net.TickAll(2);
  net.raw(1).ReportSnapshot(N(3), SnapshotStatus::kFinish);
  const Progress* pr = net.node(1).raft().progress(N(3));
  EXPECT_EQ(pr->state, ProgressState::kProbe);
  EXPECT_EQ(pr->next, I(7));
  EXPECT_TRUE(pr->IsPaused());
}

// The follower's side: a snapshot newer than its log replaces the log and the configuration;
// one it already covers is not installed again.
TEST(SnapshotTest, FollowerRestore) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3})));
  Message m = Msg(MT::kSnap, 2, 1, 11);
  m.snapshot = Snapshot{SnapshotMeta{I(11), T(11), MakeConf({1, 2})}, "image"};
  ASSERT_TRUE(n.Step(m).ok());
  EXPECT_EQ(n.committed(), I(11));
  EXPECT_EQ(n.last_index(), I(11));
  auto msgs = n.Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type, MT::kAppResp);
  EXPECT_EQ(msgs[0].index, I(11));
  EXPECT_EQ(n.storage().GetSnapshot()->meta.index, I(11));
  EXPECT_EQ(n.conf_state(), MakeConf({1, 2}));
  EXPECT_EQ(n.raft().config().voters.incoming.ids(), (std::set<NodeId>{N(1), N(2)}));
  EXPECT_EQ(n.applied_index(), I(11));

  // The same snapshot again: already covered, nothing to install.
  ASSERT_TRUE(n.Step(m).ok());
  msgs = n.Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].index, I(11));
  EXPECT_EQ(n.readies(), 2);
}

// A snapshot whose last entry the follower already holds only moves its commit index.
TEST(SnapshotTest, MatchingSnapshotFastForwardsCommit) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3}), {1, 2, 2}, HardState{T(2), kNoNode, I(1)}));
  Message m = Msg(MT::kSnap, 2, 1, 2);
  m.snapshot = Snapshot{SnapshotMeta{I(3), T(2), MakeConf({1, 2, 3})}, "image"};
  ASSERT_TRUE(n.Step(m).ok());
  EXPECT_EQ(n.committed(), I(3));
  EXPECT_EQ(n.last_index(), I(4)) << "entries past the snapshot were kept";
  EXPECT_FALSE(n.raft().log().HasPendingSnapshot());
}

// A snapshot that does not include this node is not installed.
// A removed node that was added back under its old id may get a snapshot taken before it was
// re-added: it installs it (the change that re-adds it follows in the log) but cannot campaign
// until that change applies. It used to refuse such snapshots and stay behind for good
// (simulator seed 2005 with --duration 60s, found by the "no follower left behind" check).
TEST(SnapshotTest, InstalledWhenItPredatesTheNodesMembership) {
  TestNode n(3, NewStorage(MakeConf({1, 2, 3})));
  Message m = Msg(MT::kSnap, 1, 3, 2);
  m.snapshot = Snapshot{SnapshotMeta{I(11), T(2), MakeConf({1, 2})}, "image"};
  ASSERT_TRUE(n.Step(m).ok());
  EXPECT_EQ(n.committed(), I(11));
  EXPECT_FALSE(n.raft().Promotable()) << "not a member until the change that re-adds it";
  // No campaign however long it waits.
  for (int i = 0; i < 100; ++i) n.raw().Tick();
  EXPECT_EQ(n.raft().role(), Role::kFollower);
}

// Storage may answer kUnavailable while it builds a snapshot; the leader then sends nothing
// and retries later — it must neither spin nor stall for good.
TEST(SnapshotTest, UnavailableSnapshotIsRetriedLater) {
  const ConfState cs = MakeConf({1, 2, 3});
  auto mem = NewStorage(cs, {1, 1, 1, 1, 1}, HardState{T(1), kNoNode, I(6)});
  ASSERT_TRUE(mem->CreateSnapshot(I(5), &cs, "image").ok());
  ASSERT_TRUE(mem->Compact(I(5)).ok());
  FlakySnapshotStorage flaky(mem.get());
  TestNode n(1, std::move(mem), [&](Config& c) { c.storage = &flaky; });
  ElectWithVotes(n, {2});
  n.Drain();
  flaky.unavailable = true;
  // Node 3 acknowledges index 3, from an append sent long before the compaction: the leader
  // now needs to send it entry 4, which is compacted.
  Message ack = Msg(MT::kAppResp, 3, 1, 2);
  ack.index = I(3);
  ASSERT_TRUE(n.Step(ack).ok());
  EXPECT_LE(flaky.requests, 2) << "the leader spun on the unavailable snapshot";
  EXPECT_EQ(CountType(n.Drain(), MT::kSnap), 0u);
  // Once the snapshot is available, the next contact with node 3 sends it.
  flaky.unavailable = false;
  Message hb = Msg(MT::kHeartbeatResp, 3, 1, 2);
  ASSERT_TRUE(n.Step(hb).ok());
  auto snaps = OfType(n.Drain(), MT::kSnap);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].snapshot->meta.index, I(5));
}

// ---------------------------------------------------------------------------------------------
// Flow control

// A leader of {1, 2} whose follower 2 is in kReplicate with nothing in flight.
std::unique_ptr<TestNode> ReplicatingLeader(const ConfigFn& fn) {
  auto n = std::make_unique<TestNode>(1, NewStorage(MakeConf({1, 2})), fn);
  ElectWithVotes(*n, {2});
  AcceptAppendsFrom(*n, 2);
  EXPECT_EQ(n->raft().progress(N(2))->state, ProgressState::kReplicate);
  return n;
}

// In kReplicate at most max_inflight_msgs appends are outstanding; each acknowledgement frees
// room for more.
TEST(FlowControlTest, InflightWindowBoundedByMessages) {
  auto n = ReplicatingLeader([](Config& c) {
    c.max_inflight_msgs = 3;
    c.max_msg_bytes = 1;  // one entry per append
  });
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(n->raw().Propose("xx").ok());
  auto apps = AppsTo(n->Drain(), 2);
  ASSERT_EQ(apps.size(), 3u);
  EXPECT_TRUE(n->raft().progress(N(2))->IsPaused());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(n->raw().Propose("xx").ok());
  EXPECT_TRUE(AppsTo(n->Drain(), 2).empty());

  ASSERT_TRUE(n->Step(AcceptAppend(apps[0])).ok());
  auto more = AppsTo(n->Drain(), 2);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].entries.front().index, apps[2].entries.back().index + 1);
  // Acknowledging the newest frees the whole window.
  ASSERT_TRUE(n->Step(AcceptAppend(more[0])).ok());
  EXPECT_EQ(AppsTo(n->Drain(), 2).size(), 3u);
}

TEST(FlowControlTest, InflightWindowBoundedByBytes) {
  auto n = ReplicatingLeader([](Config& c) {
    c.max_inflight_bytes = 10;
    c.max_msg_bytes = 1;
  });
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(n->raw().Propose("12345").ok());
  auto apps = AppsTo(n->Drain(), 2);
  EXPECT_EQ(apps.size(), 2u);  // 10 bytes in flight fill the window
  ASSERT_TRUE(n->Step(AcceptAppend(apps[0])).ok());
  EXPECT_EQ(AppsTo(n->Drain(), 2).size(), 1u);
}

// A window full of appends that were all lost (say, the follower restarted) must not stall
// replication for good: a heartbeat response prompts an empty append, whose answer frees the
// window or sends the follower back to probing.
TEST(FlowControlTest, FullWindowOfLostAppendsRecovers) {
  Network net({1, 2, 3}, [](Config& c) {
    c.max_inflight_msgs = 2;
    c.max_msg_bytes = 1;
  });
  ASSERT_TRUE(net.Campaign(1).ok());
  ASSERT_EQ(net.node(1).raft().progress(N(2))->state, ProgressState::kReplicate);
  net.DropIf([](const Message& m) { return m.type == MT::kApp && m.to == N(2); });
  for (const char* d : {"a", "b", "c"}) ASSERT_TRUE(net.Propose(1, d).ok());
  ASSERT_TRUE(net.node(1).raft().progress(N(2))->inflights.Full());
  net.Recover();
  net.TickAll(3);
  EXPECT_EQ(net.node(2).applied_data, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(net.node(1).raft().progress(N(2))->match, net.node(1).last_index());
}

// The same, when the entries in flight were compacted meanwhile: the follower gets a snapshot.
TEST(FlowControlTest, FullWindowOfLostCompactedAppendsRecovers) {
  Network net({1, 2, 3}, [](Config& c) {
    c.max_inflight_msgs = 2;
    c.max_msg_bytes = 1;
  });
  ASSERT_TRUE(net.Campaign(1).ok());
  net.DropIf([](const Message& m) { return m.type == MT::kApp && m.to == N(2); });
  for (const char* d : {"a", "b", "c", "d"}) ASSERT_TRUE(net.Propose(1, d).ok());
  ASSERT_TRUE(net.node(1).raft().progress(N(2))->inflights.Full());
  net.node(1).CompactTo(net.node(1).applied_index());
  net.Recover();
  net.TickAll(3);
  EXPECT_EQ(CountType(net.delivered, MT::kSnap), 1u);
  EXPECT_EQ(net.node(2).committed(), net.node(1).committed());
  EXPECT_EQ(net.node(1).raft().progress(N(2))->match, net.node(1).last_index());
}

// In kProbe the leader sends one append and waits for its answer (or a heartbeat response)
// before sending another.
TEST(FlowControlTest, ProbeSendsOneMessageUntilAnswered) {
  TestNode n(1, NewStorage(MakeConf({1, 2, 3})));
  ElectWithVotes(n, {2});
  auto first = AppsTo(n.Drain(), 2);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(n.raft().progress(N(2))->state, ProgressState::kProbe);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(n.raw().Propose("p").ok());
  EXPECT_TRUE(AppsTo(n.Drain(), 2).empty());
  n.raw().Tick();  // heartbeat
  auto out = n.Drain();
  EXPECT_TRUE(AppsTo(out, 2).empty());
  EXPECT_EQ(CountType(out, MT::kHeartbeat), 2u);
  // A heartbeat response shows the follower is there: one more probe goes out.
  ASSERT_TRUE(n.Step(Msg(MT::kHeartbeatResp, 2, 1, 2)).ok());
  auto second = AppsTo(n.Drain(), 2);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_TRUE(AppsTo(n.Drain(), 2).empty());
  // Its acceptance moves the follower to kReplicate.
  ASSERT_TRUE(n.Step(AcceptAppend(second[0])).ok());
  EXPECT_EQ(n.raft().progress(N(2))->state, ProgressState::kReplicate);
}

// The transport reporting a follower unreachable returns it from kReplicate to kProbe.
TEST(FlowControlTest, UnreachableFollowerIsProbed) {
  auto n = ReplicatingLeader({});
  n->raw().ReportUnreachable(N(2));
  EXPECT_EQ(n->raft().progress(N(2))->state, ProgressState::kProbe);
}

// Entries are batched into one append up to max_msg_bytes; a single larger entry still goes.
TEST(FlowControlTest, EntriesBatchedUpToMaxMsgBytes) {
  TestNode n(1, NewStorage(MakeConf({1, 2})), [](Config& c) { c.max_msg_bytes = 10; });
  ElectWithVotes(n, {2});
  auto probe = AppsTo(n.Drain(), 2);
  ASSERT_EQ(probe.size(), 1u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(n.raw().Propose("abc").ok());
  ASSERT_TRUE(n.raw().Propose(std::string(50, 'z')).ok());
  ASSERT_TRUE(n.Step(AcceptAppend(probe[0])).ok());
  auto apps = AppsTo(n.Drain(), 2);
  std::vector<size_t> sizes;
  for (const Message& m : apps) {
    uint64_t bytes = 0;
    for (const Entry& e : m.entries) bytes += e.PayloadBytes();
    if (m.entries.size() > 1) {
      EXPECT_LE(bytes, 10u);
    }
    sizes.push_back(m.entries.size());
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 3, 1, 1}));
  EXPECT_EQ(apps.back().entries[0].data.size(), 50u);
}

// ---------------------------------------------------------------------------------------------
// Fast backtracking

// Counts the rejections node 2 sends while the leader (node 1, elected with an injected vote
// from the absent node 3) repairs node 2's log.
size_t RepairRejections(const std::vector<uint64_t>& leader_terms,
                        const std::vector<uint64_t>& follower_terms) {
  Network net;
  const ConfState cs = MakeConf({1, 2, 3});
  uint64_t top = std::max(leader_terms.back(), follower_terms.back());
  net.Add(std::make_unique<TestNode>(
      1, NewStorage(cs, leader_terms, HardState{T(top), kNoNode, I(1)})));
  net.Add(std::make_unique<TestNode>(
      2, NewStorage(cs, follower_terms, HardState{T(top), kNoNode, I(1)})));
  EXPECT_TRUE(net.Campaign(1).ok());
  net.Send(Msg(MT::kVoteResp, 3, 1, top + 1));
  EXPECT_EQ(net.node(1).role(), Role::kLeader);
  EXPECT_TRUE(net.Propose(1, "x").ok());
  EXPECT_EQ(net.node(2).raft().log().AllEntries(), net.node(1).raft().log().AllEntries());
  size_t rejections = 0;
  for (const Message& m : net.delivered) {
    if (m.type == MT::kAppResp && m.from == N(2) && m.reject) ++rejections;
  }
  return rejections;
}

std::vector<uint64_t> Repeat(std::vector<std::pair<uint64_t, int>> runs) {
  std::vector<uint64_t> out;
  for (auto [term, n] : runs) out.insert(out.end(), static_cast<size_t>(n), term);
  return out;
}

// A follower with a long divergent suffix is repaired in a number of round trips that grows
// with the number of distinct conflicting terms, not with the number of entries.
TEST(FastBacktrackingTest, RoundTripsProportionalToConflictingTerms) {
  // 200 divergent entries of two terms.
  EXPECT_LE(RepairRejections(Repeat({{1, 2}, {4, 100}}), Repeat({{1, 2}, {2, 100}, {3, 100}})), 3u);
  // The leader's suffix spans two terms, the follower's one.
  EXPECT_LE(RepairRejections(Repeat({{1, 2}, {2, 50}, {4, 50}}), Repeat({{1, 2}, {3, 100}})), 3u);
  // A follower merely behind needs one rejection, whatever the gap.
  EXPECT_EQ(RepairRejections(Repeat({{1, 2}, {2, 150}}), Repeat({{1, 2}})), 1u);
  // A follower ahead with entries of a stale term.
  EXPECT_LE(RepairRejections(Repeat({{1, 2}, {3, 10}}), Repeat({{1, 2}, {2, 300}})), 2u);
}

}  // namespace
}  // namespace synod::raft::test
