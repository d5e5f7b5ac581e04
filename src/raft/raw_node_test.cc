// The Ready contract of RawNode (raw_node.h): what may be sent before persisting and what only
// after, when must_sync is set, when the leader's own entries count, when committed entries
// and state changes are reported, and the GetReady/Advance cycle. In the spirit of etcd's
// rawnode_test.go; each test drives one RawNode by hand.
#include "raft/raw_node.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

// A RawNode over its own MemoryStorage, driven by hand.
struct Fixture {
  explicit Fixture(std::vector<uint64_t> peers, uint64_t id = 1,
                   const std::vector<uint64_t>& terms = {},
                   std::optional<HardState> hs = std::nullopt)
      : storage(NewStorage(MakeConf(peers), terms, hs)) {
    auto r = RawNode::Create(TestConfig(id, storage.get()));
    EXPECT_TRUE(r.ok());
    node = std::move(r).value();
  }

  // Step b of the contract: make rd durable.
  void Persist(const Ready& rd) {
    if (rd.snapshot) {
      ASSERT_TRUE(storage->ApplySnapshot(*rd.snapshot).ok());
    }
    ASSERT_TRUE(storage->Append(rd.entries).ok());
    if (rd.hard_state) storage->SetHardState(*rd.hard_state);
  }
  // A whole cycle: get, persist, advance. Returns the Ready.
  Ready Cycle() {
    Ready rd = node->GetReady();
    Persist(rd);
    node->Advance(rd);
    return rd;
  }
  void DrainAll() {
    for (int i = 0; i < 100 && node->HasReady(); ++i) Cycle();
  }
  LogIndex committed() const { return node->raft().log().committed(); }

  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<RawNode> node;
};

// Makes f.node the leader of its group with the votes of `voters`; the no-op is persisted
// and, if `commit_noop`, acknowledged by every peer so that it commits.
void MakeLeader(Fixture& f, const std::vector<uint64_t>& voters, bool commit_noop) {
  ASSERT_TRUE(f.node->Campaign().ok());
  f.DrainAll();
  const Term term = f.node->raft().term();
  for (uint64_t v : voters) {
    if (f.node->raft().role() == Role::kLeader) break;
    ASSERT_TRUE(f.node->Step(Msg(MT::kVoteResp, v, 1, term.value())).ok());
  }
  ASSERT_EQ(f.node->raft().role(), Role::kLeader);
  Ready rd = f.Cycle();
  if (!commit_noop) return;
  for (const Message& m : rd.messages) {
    if (m.type == MT::kApp) {
      ASSERT_TRUE(f.node->Step(AcceptAppend(m)).ok());
    }
  }
  f.DrainAll();
  ASSERT_EQ(f.committed(), f.node->raft().log().LastIndex());
}

TEST(RawNodeTest, VoteResponseOnlyAfterPersist) {
  Fixture f({1, 2, 3});
  Message v = Msg(MT::kVote, 2, 1, 2);
  v.index = I(1);
  v.log_term = T(1);
  ASSERT_TRUE(f.node->Step(v).ok());
  ASSERT_TRUE(f.node->HasReady());
  Ready rd = f.node->GetReady();
  EXPECT_TRUE(rd.messages.empty());
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].type, MT::kVoteResp);
  EXPECT_FALSE(rd.messages_after_persist[0].reject);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->vote, N(2));
  EXPECT_EQ(rd.hard_state->term, T(2));
  EXPECT_TRUE(rd.must_sync);
  f.Persist(rd);
  f.node->Advance(rd);
  EXPECT_FALSE(f.node->HasReady());
}

// A candidate's own vote requests rest on its persisted vote for itself.
TEST(RawNodeTest, CandidateVoteRequestsOnlyAfterPersist) {
  for (bool pre_vote : {false, true}) {
    SCOPED_TRACE(pre_vote);
    auto s = NewStorage(MakeConf({1, 2, 3}));
    Config c = TestConfig(1, s.get());
    c.pre_vote = pre_vote;
    auto rn = std::move(RawNode::Create(c)).value();
    ASSERT_TRUE(rn->Campaign().ok());
    Ready rd = rn->GetReady();
    EXPECT_TRUE(rd.messages.empty());
    EXPECT_EQ(CountType(rd.messages_after_persist, pre_vote ? MT::kPreVote : MT::kVote), 2u);
    EXPECT_EQ(rd.must_sync, !pre_vote) << "only a real campaign changes term and vote";
    rn->Advance(rd);
  }
}

TEST(RawNodeTest, AppendResponseOnlyAfterPersist) {
  Fixture f({1, 2, 3});
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(1);
  app.log_term = T(1);
  app.entries = EntriesWithTerms(2, {2, 2});
  ASSERT_TRUE(f.node->Step(app).ok());
  Ready rd = f.node->GetReady();
  EXPECT_TRUE(rd.messages.empty());
  ASSERT_EQ(rd.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd.messages_after_persist[0].type, MT::kAppResp);
  EXPECT_EQ(rd.messages_after_persist[0].index, I(3));
  EXPECT_EQ(rd.entries, EntriesWithTerms(2, {2, 2}));
  EXPECT_TRUE(rd.must_sync);
  f.Persist(rd);
  f.node->Advance(rd);
  // Heartbeat responses promise nothing durable, but go the same way.
  ASSERT_TRUE(f.node->Step(Msg(MT::kHeartbeat, 2, 1, 2)).ok());
  rd = f.node->GetReady();
  EXPECT_TRUE(rd.messages.empty());
  EXPECT_EQ(CountType(rd.messages_after_persist, MT::kHeartbeatResp), 1u);
  f.node->Advance(rd);
}

// The leader's appends and heartbeats may go out before its own write (§10.2.1).
TEST(RawNodeTest, LeaderAppendsAndHeartbeatsBeforePersist) {
  Fixture f({1, 2, 3});
  MakeLeader(f, {2}, true);
  ASSERT_TRUE(f.node->Propose("x").ok());
  Ready rd = f.node->GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].data, "x");
  EXPECT_EQ(CountType(rd.messages, MT::kApp), 2u);
  EXPECT_TRUE(rd.messages_after_persist.empty());
  EXPECT_TRUE(rd.must_sync);
  f.Persist(rd);
  f.node->Advance(rd);
  f.node->Tick();
  rd = f.node->GetReady();
  EXPECT_EQ(CountType(rd.messages, MT::kHeartbeat), 2u);
  EXPECT_TRUE(rd.messages_after_persist.empty());
  EXPECT_FALSE(rd.must_sync);
  f.node->Advance(rd);
}

// must_sync follows term, vote and entries; a commit index change alone needs no fsync.
TEST(RawNodeTest, MustSyncOnlyForTermVoteOrEntries) {
  Fixture f({1, 2, 3}, 1, {2, 2}, HardState{T(2), kNoNode, I(1)});
  Message hb = Msg(MT::kHeartbeat, 2, 1, 2);
  hb.commit = I(3);
  ASSERT_TRUE(f.node->Step(hb).ok());
  Ready rd = f.node->GetReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, I(3));
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_FALSE(rd.must_sync);
  EXPECT_EQ(rd.committed_entries.size(), 2u);
  f.Persist(rd);
  f.node->Advance(rd);

  // A newer term alone (a heartbeat of term 3) must be synced.
  ASSERT_TRUE(f.node->Step(Msg(MT::kHeartbeat, 3, 1, 3)).ok());
  rd = f.node->GetReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term, T(3));
  EXPECT_TRUE(rd.must_sync);
  f.node->Advance(rd);
}

// A commit index handed out in a commit-only Ready may be written without sync. The next
// synced Ready must carry it again: a node must never durably hold a membership change
// without durably knowing that the change before it committed (otherwise, after a crash, it
// could campaign with a configuration two changes old and a second leader could be elected
// in the same term — found by RandomizedSafetyTest).
TEST(RawNodeTest, SyncedReadyCarriesLazilyWrittenCommit) {
  Fixture f({1, 2, 3}, 1, {2, 2}, HardState{T(2), kNoNode, I(1)});
  Message hb = Msg(MT::kHeartbeat, 2, 1, 2);
  hb.commit = I(3);
  ASSERT_TRUE(f.node->Step(hb).ok());
  Ready lazy = f.Cycle();
  ASSERT_FALSE(lazy.must_sync);
  ASSERT_EQ(lazy.hard_state->commit, I(3));
  // Entries follow, the commit index unchanged: the synced Ready repeats the hard state.
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(3);
  app.log_term = T(2);
  app.entries = EntriesWithTerms(4, {2});
  app.commit = I(3);
  ASSERT_TRUE(f.node->Step(app).ok());
  Ready rd = f.node->GetReady();
  EXPECT_TRUE(rd.must_sync);
  ASSERT_TRUE(rd.hard_state.has_value()) << "the synced write would leave the commit unsynced";
  EXPECT_EQ(rd.hard_state->commit, I(3));
  f.Persist(rd);
  f.node->Advance(rd);
  // Once synced, it is not repeated.
  Message app2 = app;
  app2.index = I(4);
  app2.entries = EntriesWithTerms(5, {2});
  ASSERT_TRUE(f.node->Step(app2).ok());
  rd = f.node->GetReady();
  EXPECT_TRUE(rd.must_sync);
  EXPECT_FALSE(rd.hard_state.has_value());
  f.node->Advance(rd);
}

// The leader counts itself towards a commit only once Advance reported its entry durable: with
// one follower acknowledgement of three voters the entry is not committed before that.
TEST(RawNodeTest, LeaderOwnEntryCountsOnlyAfterAdvance) {
  Fixture f({1, 2, 3});
  MakeLeader(f, {2}, true);
  ASSERT_TRUE(f.node->Propose("x").ok());
  Ready rd = f.node->GetReady();
  const LogIndex idx = rd.entries.back().index;
  for (const Message& m : rd.messages) {
    if (m.to == N(2)) {
      ASSERT_TRUE(f.node->Step(AcceptAppend(m)).ok());
    }
  }
  EXPECT_LT(f.committed(), idx) << "committed on one follower and an unpersisted leader entry";
  f.Persist(rd);
  f.node->Advance(rd);
  EXPECT_EQ(f.committed(), idx);
  rd = f.node->GetReady();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].data, "x");
  f.node->Advance(rd);
}

// Two followers are a quorum of three without the leader: the entry may commit before the
// leader's own write is durable (thesis §10.2.1), and is applied after it.
TEST(RawNodeTest, FollowerQuorumCommitsWithoutLeaderPersist) {
  Fixture f({1, 2, 3});
  MakeLeader(f, {2}, true);
  ASSERT_TRUE(f.node->Propose("x").ok());
  Ready rd = f.node->GetReady();
  const LogIndex idx = rd.entries.back().index;
  EXPECT_TRUE(rd.committed_entries.empty());
  for (const Message& m : rd.messages) ASSERT_TRUE(f.node->Step(AcceptAppend(m)).ok());
  EXPECT_EQ(f.committed(), idx);
  f.Persist(rd);
  f.node->Advance(rd);
  rd = f.node->GetReady();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].index, idx);
  f.node->Advance(rd);
}

// A follower's Ready may hand out entries and, as committed, those very entries: they are to
// be applied after this Ready's write.
TEST(RawNodeTest, CommittedEntriesMayIncludeThisReadysEntries) {
  Fixture f({1, 2, 3});
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(1);
  app.log_term = T(1);
  app.entries = EntriesWithTerms(2, {2, 2});
  app.commit = I(3);
  ASSERT_TRUE(f.node->Step(app).ok());
  Ready rd = f.node->GetReady();
  EXPECT_EQ(rd.entries, EntriesWithTerms(2, {2, 2}));
  EXPECT_EQ(rd.committed_entries, EntriesWithTerms(2, {2, 2}));
  EXPECT_EQ(rd.hard_state->commit, I(3));
  f.Persist(rd);
  f.node->Advance(rd);
  EXPECT_EQ(f.node->raft().log().applied(), I(3));
  EXPECT_FALSE(f.node->HasReady());
}

TEST(RawNodeTest, SingleNodeCommitsAfterAdvance) {
  Fixture f({1});
  ASSERT_TRUE(f.node->Campaign().ok());
  Ready rd = f.node->GetReady();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->role, Role::kLeader);
  ASSERT_EQ(rd.entries.size(), 1u);  // the no-op
  EXPECT_TRUE(rd.committed_entries.empty()) << "committed before its only copy was durable";
  EXPECT_TRUE(rd.messages.empty());
  f.Persist(rd);
  f.node->Advance(rd);
  ASSERT_TRUE(f.node->HasReady());
  rd = f.Cycle();
  EXPECT_EQ(rd.committed_entries.size(), 1u);

  ASSERT_TRUE(f.node->Propose("solo").ok());
  rd = f.node->GetReady();
  EXPECT_TRUE(rd.committed_entries.empty());
  f.Persist(rd);
  f.node->Advance(rd);
  rd = f.Cycle();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].data, "solo");
  EXPECT_EQ(rd.hard_state->commit, rd.committed_entries[0].index);
  EXPECT_FALSE(f.node->HasReady());
}

// Soft and hard state are reported only when they changed.
TEST(RawNodeTest, StateReportedOnlyWhenChanged) {
  Fixture f({1, 2, 3});
  EXPECT_FALSE(f.node->HasReady()) << "a fresh node has nothing to report";
  ASSERT_TRUE(f.node->Campaign().ok());
  Ready rd = f.Cycle();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->role, Role::kCandidate);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(*rd.hard_state, (HardState{T(2), N(1), I(1)}));

  // A rejected vote changes nothing reportable.
  Message r = Msg(MT::kVoteResp, 2, 1, 2);
  r.reject = true;
  ASSERT_TRUE(f.node->Step(r).ok());
  EXPECT_FALSE(f.node->HasReady());
  // A ReadIndex request refused changes nothing either.
  EXPECT_FALSE(f.node->ReadIndex("r").ok());
  EXPECT_FALSE(f.node->HasReady());

  ASSERT_TRUE(f.node->Step(Msg(MT::kVoteResp, 3, 1, 2)).ok());
  rd = f.Cycle();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->role, Role::kLeader);
  EXPECT_EQ(rd.soft_state->lead, N(1));
  EXPECT_FALSE(rd.hard_state.has_value()) << "term, vote and commit are unchanged";
  f.node->Tick();
  rd = f.Cycle();
  EXPECT_FALSE(rd.soft_state.has_value());
  EXPECT_FALSE(rd.hard_state.has_value());
}

TEST(RawNodeTest, ReadyEmptyAndHasReadyCycle) {
  Fixture f({1, 2, 3});
  EXPECT_FALSE(f.node->HasReady());
  Ready empty = f.node->GetReady();
  EXPECT_TRUE(empty.Empty());
  f.node->Advance(empty);
  ASSERT_TRUE(f.node->Step(Msg(MT::kHeartbeat, 2, 1, 1)).ok());
  EXPECT_TRUE(f.node->HasReady());
  Ready rd = f.node->GetReady();
  EXPECT_FALSE(rd.Empty());
  EXPECT_FALSE(f.node->HasReady()) << "what a Ready handed out is not handed out again";
  f.node->Advance(rd);
  EXPECT_FALSE(f.node->HasReady());
}

TEST(RawNodeDeathTest, GetReadyTwiceWithoutAdvanceCrashes) {
  Fixture f({1, 2, 3});
  ASSERT_TRUE(f.node->Campaign().ok());
  Ready rd = f.node->GetReady();
  EXPECT_DEATH((void)f.node->GetReady(), "Advance");
  f.node->Advance(rd);
}

TEST(RawNodeTest, StepRefusesLocalMessages) {
  Fixture f({1, 2, 3});
  for (MT t : {MT::kHup, MT::kBeat, MT::kUnreachable, MT::kSnapStatus, MT::kCheckQuorum}) {
    SCOPED_TRACE(MessageTypeName(t));
    EXPECT_EQ(f.node->Step(Msg(t, 2, 1, 0)).code(), Code::kInvalidArgument);
  }
  EXPECT_EQ(f.node->raft().role(), Role::kFollower) << "a network kHup started an election";
  EXPECT_FALSE(f.node->HasReady());
}

// Messages from the network are input: a malformed one is refused with an error, never
// allowed to trip an assertion inside the core (an empty proposal, a snapshot message without
// a snapshot, an append whose entries do not follow its index).
TEST(RawNodeTest, StepRefusesMalformedMessages) {
  Fixture f({1, 2, 3});
  MakeLeader(f, {2}, true);
  const uint64_t term = f.node->raft().term().value();
  EXPECT_EQ(f.node->Step(Msg(MT::kProp, 2, 1, 0)).code(), Code::kInvalidArgument);

  Fixture g({1, 2, 3});
  EXPECT_EQ(g.node->Step(Msg(MT::kSnap, 2, 1, 2)).code(), Code::kInvalidArgument);
  Message gap = Msg(MT::kApp, 2, 1, 2);
  gap.index = I(1);
  gap.log_term = T(1);
  gap.entries = EntriesWithTerms(3, {2});  // should start at 2
  EXPECT_EQ(g.node->Step(gap).code(), Code::kInvalidArgument);
  Message holes = gap;
  holes.entries = EntriesWithTerms(2, {2});
  holes.entries.push_back(EntriesWithTerms(4, {2})[0]);
  EXPECT_EQ(g.node->Step(holes).code(), Code::kInvalidArgument);
  EXPECT_EQ(g.node->raft().log().LastIndex(), I(1));
  EXPECT_EQ(f.node->raft().term().value(), term);
  EXPECT_EQ(f.node->raft().role(), Role::kLeader);
}

TEST(RawNodeTest, LeaderRefusesResponsesFromNonMembers) {
  Fixture f({1, 2, 3});
  MakeLeader(f, {2}, true);
  Message r = Msg(MT::kAppResp, 9, 1, f.node->raft().term().value());
  r.index = I(2);
  EXPECT_EQ(f.node->Step(r).code(), Code::kNotFound);
  EXPECT_EQ(f.node->raft().progress(N(9)), nullptr);
}

// A read confirmed, and reads aborted by a step-down, reach the application through Ready.
TEST(RawNodeTest, ReadStatesAndAbortedReadsInReady) {
  Fixture f({1});
  ASSERT_TRUE(f.node->Campaign().ok());
  f.DrainAll();
  ASSERT_TRUE(f.node->ReadIndex("ok").ok());
  Ready rd = f.Cycle();
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0], (ReadState{f.committed(), "ok"}));

  Fixture g({1, 2, 3});
  MakeLeader(g, {2}, true);
  ASSERT_TRUE(g.node->ReadIndex("lost").ok());
  g.DrainAll();
  ASSERT_TRUE(g.node->Step(Msg(MT::kHeartbeat, 2, 1, 9)).ok());  // a newer leader
  rd = g.node->GetReady();
  EXPECT_EQ(rd.aborted_reads, std::vector<std::string>{"lost"});
  EXPECT_TRUE(rd.read_states.empty());
  g.node->Advance(rd);
}

// A snapshot from the leader is handed out to persist and apply; Advance marks it applied.
TEST(RawNodeTest, SnapshotInReady) {
  Fixture f({1, 2, 3});
  Message m = Msg(MT::kSnap, 2, 1, 5);
  m.snapshot = Snapshot{SnapshotMeta{I(20), T(4), MakeConf({1, 2, 3})}, "image"};
  ASSERT_TRUE(f.node->Step(m).ok());
  Ready rd = f.node->GetReady();
  ASSERT_TRUE(rd.snapshot.has_value());
  EXPECT_EQ(rd.snapshot->meta.index, I(20));
  EXPECT_TRUE(rd.must_sync);
  EXPECT_TRUE(rd.committed_entries.empty());
  EXPECT_EQ(CountType(rd.messages_after_persist, MT::kAppResp), 1u);
  f.Persist(rd);
  f.node->Advance(rd);
  EXPECT_EQ(f.node->raft().log().applied(), I(20));
  EXPECT_FALSE(f.node->raft().log().HasPendingSnapshot());
  EXPECT_FALSE(f.node->HasReady());
}

// After a restart, committed entries beyond the applied index are handed out again, and those
// at or below it are not.
TEST(RawNodeTest, RestartRedeliversOnlyUnappliedCommittedEntries) {
  auto s = NewStorage(MakeConf({1, 2, 3}), {2, 2, 2}, HardState{T(2), kNoNode, I(4)});
  Config c = TestConfig(1, s.get());
  c.applied = I(2);
  auto rn = std::move(RawNode::Create(c)).value();
  ASSERT_TRUE(rn->HasReady());
  Ready rd = rn->GetReady();
  EXPECT_EQ(rd.committed_entries, EntriesWithTerms(3, {2, 2}));
  EXPECT_FALSE(rd.hard_state.has_value());
  EXPECT_FALSE(rd.soft_state.has_value());
  rn->Advance(rd);
  EXPECT_FALSE(rn->HasReady());
}

// A commit-only hard state change is not synced (must_sync is false), so after a crash the
// state machine may have applied entries beyond the persisted commit index. Everything
// applied was committed: the node restarts with commit = applied instead of failing.
TEST(RawNodeTest, RestartWithAppliedBeyondLazilyPersistedCommit) {
  auto s = NewStorage(MakeConf({1, 2, 3}), {2, 2, 2}, HardState{T(2), kNoNode, I(2)});
  Config c = TestConfig(1, s.get());
  c.applied = I(4);
  auto rn = RawNode::Create(c);
  ASSERT_TRUE(rn.ok()) << rn.status().ToString();
  EXPECT_EQ((*rn)->raft().log().committed(), I(4));
  EXPECT_EQ((*rn)->raft().log().applied(), I(4));
  if ((*rn)->HasReady()) {
    Ready rd = (*rn)->GetReady();
    EXPECT_TRUE(rd.committed_entries.empty()) << "applied entries handed out again";
    (*rn)->Advance(rd);
  }
  // An applied index beyond the log itself is corruption, reported as such.
  c.applied = I(9);
  EXPECT_EQ(RawNode::Create(c).status().code(), Code::kCorruption);
}

TEST(RawNodeTest, CreateRefusesBadConfigAndStorage) {
  auto s = NewStorage(MakeConf({1, 2, 3}));
  Config c = TestConfig(1, s.get());
  c.election_ticks = c.heartbeat_ticks;
  EXPECT_EQ(RawNode::Create(c).status().code(), Code::kInvalidArgument);
  Config no_id = TestConfig(0, s.get());
  EXPECT_EQ(RawNode::Create(no_id).status().code(), Code::kInvalidArgument);
  // A commit index beyond the persisted log means the storage lost entries.
  auto bad = NewStorage(MakeConf({1, 2, 3}), {}, HardState{T(1), kNoNode, I(9)});
  EXPECT_EQ(RawNode::Create(TestConfig(1, bad.get())).status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace synod::raft::test
