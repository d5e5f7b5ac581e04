// The rules of the Raft paper (Figure 2 and §5), one test per rule, in the spirit of etcd's
// raft_paper_test.go. Each test builds the state the rule talks about, drives the core
// through RawNode (Step/Tick/Campaign/Propose), plays the application's part of the Ready
// contract with TestNode, and checks messages and state.
//
// Every group starts from a snapshot at index 1 of term 1 (see NewStorage), so the first
// election is for term 2 and the first entry a leader appends is at index 2 or later.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

std::unique_ptr<TestNode> NewNode(uint64_t id, std::vector<uint64_t> peers,
                                  const std::vector<uint64_t>& terms = {},
                                  std::optional<HardState> hs = std::nullopt,
                                  const ConfigFn& fn = {}) {
  return std::make_unique<TestNode>(id, NewStorage(MakeConf(peers), terms, hs), fn);
}

std::vector<uint64_t> IdsBySize(size_t n) {
  std::vector<uint64_t> ids;
  for (size_t i = 1; i <= n; ++i) ids.push_back(i);
  return ids;
}

// Answers every append `n` sends with an acceptance until it sends no more.
void AcceptAllAppends(TestNode& n) {
  for (int round = 0; round < 100; ++round) {
    auto apps = OfType(n.Drain(), MT::kApp);
    if (apps.empty()) return;
    for (const Message& m : apps) ASSERT_TRUE(n.Step(AcceptAppend(m)).ok());
  }
  ADD_FAILURE() << "the leader kept sending appends";
}

// Elects `n` with the votes of every other voter, then lets every follower accept the no-op
// so that it commits.
void ElectAndCommitNoop(TestNode& n, const std::vector<uint64_t>& others) {
  ElectWithVotes(n, others);
  AcceptAllAppends(n);
  ASSERT_EQ(n.committed(), n.last_index());
}

// §5.1: a server whose term is older than a message's adopts the newer term, and a candidate
// or leader reverts to follower.
TEST(RaftPaperTest, UpdateTermFromMessageInEveryRole) {
  for (Role role : {Role::kFollower, Role::kCandidate, Role::kLeader}) {
    SCOPED_TRACE(RoleName(role));
    auto n = NewNode(1, {1, 2, 3});
    if (role == Role::kCandidate) {
      ASSERT_TRUE(n->raw().Campaign().ok());
    }
    if (role == Role::kLeader) ElectWithVotes(*n, {2});
    ASSERT_EQ(n->role(), role);
    const Term higher = n->term() + 1;
    Message app = Msg(MT::kApp, 2, 1, higher.value());
    app.index = I(1);
    app.log_term = T(1);
    ASSERT_TRUE(n->Step(app).ok());
    EXPECT_EQ(n->term(), higher);
    EXPECT_EQ(n->role(), Role::kFollower);
    EXPECT_EQ(n->raft().lead(), N(2));
  }
}

// §5.1 as well: a response carrying a higher term deposes a leader, which then knows no leader.
TEST(RaftPaperTest, LeaderStepsDownOnHigherTermResponse) {
  for (MT t : {MT::kAppResp, MT::kHeartbeatResp, MT::kVoteResp}) {
    SCOPED_TRACE(MessageTypeName(t));
    auto n = NewNode(1, {1, 2, 3});
    ElectWithVotes(*n, {2});
    const Term higher = n->term() + 3;
    Message m = Msg(t, 3, 1, higher.value());
    m.reject = true;
    ASSERT_TRUE(n->Step(m).ok());
    EXPECT_EQ(n->role(), Role::kFollower);
    EXPECT_EQ(n->term(), higher);
    EXPECT_EQ(n->raft().lead(), kNoNode);
    EXPECT_EQ(n->raft().vote(), kNoNode);  // a new term starts without a vote
  }
}

// §5.1: a request with a stale term is refused; our implementation ignores it (no state
// change, no append, no vote).
TEST(RaftPaperTest, RejectStaleTermMessage) {
  auto n = NewNode(1, {1, 2, 3}, {}, HardState{T(3), kNoNode, I(1)});
  n->Drain();
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(1);
  app.log_term = T(1);
  app.entries = EntriesWithTerms(2, {2});
  app.commit = I(2);
  ASSERT_TRUE(n->Step(app).ok());
  Message vote = Msg(MT::kVote, 3, 1, 2);
  vote.index = I(10);
  vote.log_term = T(2);
  ASSERT_TRUE(n->Step(vote).ok());

  EXPECT_EQ(n->term(), T(3));
  EXPECT_EQ(n->last_index(), I(1));
  EXPECT_EQ(n->committed(), I(1));
  EXPECT_EQ(n->raft().lead(), kNoNode);
  EXPECT_EQ(n->raft().vote(), kNoNode);
  EXPECT_TRUE(n->Drain().empty());  // neither check-quorum nor pre-vote: nothing to say
}

// With check-quorum a stale leader is told the newer term, so it can step down (otherwise it
// would never learn of it, since our followers no longer raise their term on its votes).
TEST(RaftPaperTest, StaleAppendAnsweredWithNewTermUnderCheckQuorum) {
  auto n = NewNode(1, {1, 2, 3}, {}, HardState{T(3), kNoNode, I(1)},
                   [](Config& c) { c.check_quorum = true; });
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(1);
  app.log_term = T(1);
  ASSERT_TRUE(n->Step(app).ok());
  auto msgs = n->Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type, MT::kAppResp);
  EXPECT_EQ(msgs[0].to, N(2));
  EXPECT_EQ(msgs[0].term, T(3));
  EXPECT_EQ(n->last_index(), I(1));
}

// §5.2: servers start as followers, with the persisted term and vote.
TEST(RaftPaperTest, StartAsFollower) {
  auto n = NewNode(1, {1, 2, 3}, {1, 2}, HardState{T(4), N(3), I(2)});
  EXPECT_EQ(n->role(), Role::kFollower);
  EXPECT_EQ(n->term(), T(4));
  EXPECT_EQ(n->raft().vote(), N(3));
  EXPECT_EQ(n->committed(), I(2));
  EXPECT_EQ(n->raft().lead(), kNoNode);
}

// §5.2: a leader sends heartbeats (appends with no entries) every heartbeat interval; they
// never tell a follower of a commit index beyond what it is known to hold.
TEST(RaftPaperTest, LeaderBroadcastsHeartbeats) {
  auto n = NewNode(1, {1, 2, 3}, {}, std::nullopt, [](Config& c) { c.heartbeat_ticks = 2; });
  ElectWithVotes(*n, {2});
  n->Drain();
  n->raw().Tick();
  EXPECT_TRUE(n->Drain().empty()) << "a heartbeat before the interval elapsed";
  n->raw().Tick();
  auto msgs = SortedByTo(n->Drain());
  ASSERT_EQ(msgs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(msgs[i].type, MT::kHeartbeat);
    EXPECT_EQ(msgs[i].to, N(i + 2));
    EXPECT_EQ(msgs[i].term, n->term());
    EXPECT_TRUE(msgs[i].entries.empty());
    EXPECT_EQ(msgs[i].commit, I(0));  // nothing known to be replicated on the followers yet
  }
}

// §5.2: a follower that hears nothing for an election timeout becomes a candidate: it
// increments its term, votes for itself and asks every other server for its vote.
// A candidate that neither wins nor loses starts a new election after its timeout.
TEST(RaftPaperTest, NonLeaderStartsElectionOnTimeout) {
  for (Role role : {Role::kFollower, Role::kCandidate}) {
    SCOPED_TRACE(RoleName(role));
    auto n = NewNode(1, {1, 2, 3}, {1});
    if (role == Role::kCandidate) {
      ASSERT_TRUE(n->raw().Campaign().ok());
    }
    n->Drain();
    const Term start = n->term();
    for (int i = 1; i < 2 * n->config().election_ticks; ++i) n->raw().Tick();
    EXPECT_EQ(n->role(), Role::kCandidate);
    EXPECT_EQ(n->term(), start + 1);
    EXPECT_EQ(n->raft().vote(), N(1));
    auto msgs = SortedByTo(n->Drain());
    ASSERT_EQ(msgs.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(msgs[i].type, MT::kVote);
      EXPECT_EQ(msgs[i].to, N(i + 2));
      EXPECT_EQ(msgs[i].term, start + 1);
      EXPECT_EQ(msgs[i].index, I(2));     // the candidate's last entry...
      EXPECT_EQ(msgs[i].log_term, T(1));  // ...and its term
    }
  }
}

// §5.2: one round of RequestVote: the candidate wins with a majority, returns to follower once
// a majority refused, and otherwise stays a candidate.
TEST(RaftPaperTest, LeaderElectionInOneRound) {
  struct Case {
    size_t size;
    std::map<uint64_t, bool> votes;
    Role want;
  };
  const std::vector<Case> cases = {
      {1, {}, Role::kLeader},
      {3, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}, {4, true}, {5, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}, {4, true}}, Role::kLeader},
      {5, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, false}, {3, false}}, Role::kFollower},
      {5, {{2, false}, {3, false}, {4, false}, {5, false}}, Role::kFollower},
      {5, {{2, true}, {3, false}, {4, false}, {5, false}}, Role::kFollower},
      {3, {}, Role::kCandidate},
      {5, {{2, true}}, Role::kCandidate},
      {5, {{2, false}, {3, false}}, Role::kCandidate},
      {5, {}, Role::kCandidate},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    auto n = NewNode(1, IdsBySize(c.size));
    ASSERT_TRUE(n->raw().Campaign().ok());
    n->Drain();
    for (const auto& [id, granted] : c.votes) {
      Message r = Msg(MT::kVoteResp, id, 1, 2);
      r.reject = !granted;
      ASSERT_TRUE(n->Step(r).ok());
    }
    EXPECT_EQ(n->role(), c.want);
    EXPECT_EQ(n->term(), T(2));
  }
}

// §5.2: a follower votes for at most one candidate per term, first come first served; a
// repeated request from the candidate it voted for is granted again.
TEST(RaftPaperTest, FollowerVotesOncePerTerm) {
  struct Case {
    uint64_t vote;
    uint64_t candidate;
    bool reject;
  };
  const std::vector<Case> cases = {{0, 2, false}, {0, 3, false}, {2, 2, false},
                                   {3, 3, false}, {2, 3, true},  {3, 2, true}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "vote=" << c.vote << " candidate=" << c.candidate);
    auto n = NewNode(1, {1, 2, 3}, {}, HardState{T(2), N(c.vote), I(1)});
    Message v = Msg(MT::kVote, c.candidate, 1, 2);
    v.index = I(1);
    v.log_term = T(1);
    ASSERT_TRUE(n->Step(v).ok());
    auto msgs = n->Drain();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type, MT::kVoteResp);
    EXPECT_EQ(msgs[0].to, N(c.candidate));
    EXPECT_EQ(msgs[0].term, T(2));
    EXPECT_EQ(msgs[0].reject, c.reject);
    EXPECT_EQ(n->raft().vote(), N(c.vote == 0 ? c.candidate : c.vote));
  }
}

// §5.2 with Figure 2's "persistent state": the vote survives a restart, so a node that crashed
// right after voting cannot vote for someone else in the same term.
TEST(RaftPaperTest, VoteIsPersistedAcrossRestart) {
  auto n = NewNode(1, {1, 2, 3});
  Message v = Msg(MT::kVote, 2, 1, 5);
  v.index = I(1);
  v.log_term = T(1);
  ASSERT_TRUE(n->Step(v).ok());
  n->Drain();
  EXPECT_EQ(n->storage().hard_state().vote, N(2));
  EXPECT_EQ(n->storage().hard_state().term, T(5));

  n->Restart();
  EXPECT_EQ(n->raft().vote(), N(2));
  Message other = Msg(MT::kVote, 3, 1, 5);
  other.index = I(1);
  other.log_term = T(1);
  ASSERT_TRUE(n->Step(other).ok());
  auto msgs = n->Drain();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].reject);
}

// §5.2: a candidate that receives an append from a leader of its term (or a later one)
// recognizes that leader and returns to follower.
TEST(RaftPaperTest, CandidateFallsBackOnAppendFromLeader) {
  for (uint64_t term : {2, 3}) {
    SCOPED_TRACE(term);
    auto n = NewNode(1, {1, 2, 3});
    ASSERT_TRUE(n->raw().Campaign().ok());
    ASSERT_EQ(n->role(), Role::kCandidate);
    ASSERT_EQ(n->term(), T(2));
    Message app = Msg(MT::kApp, 2, 1, term);
    app.index = I(1);
    app.log_term = T(1);
    ASSERT_TRUE(n->Step(app).ok());
    EXPECT_EQ(n->role(), Role::kFollower);
    EXPECT_EQ(n->term(), T(term));
    EXPECT_EQ(n->raft().lead(), N(2));
  }
}

// A candidate is not deposed by an append from an older term.
TEST(RaftPaperTest, CandidateIgnoresAppendFromOlderTerm) {
  auto n = NewNode(1, {1, 2, 3}, {}, HardState{T(4), kNoNode, I(1)});
  ASSERT_TRUE(n->raw().Campaign().ok());
  Message app = Msg(MT::kApp, 2, 1, 4);
  app.index = I(1);
  app.log_term = T(1);
  ASSERT_TRUE(n->Step(app).ok());
  EXPECT_EQ(n->role(), Role::kCandidate);
  EXPECT_EQ(n->term(), T(5));
}

// Counts the ticks a node waits before campaigning after each reset.
std::set<int> ObservedTimeouts(Role role, int rounds) {
  auto n = NewNode(1, {1, 2, 3});
  const int et = n->config().election_ticks;
  std::set<int> timeouts;
  if (role == Role::kCandidate) {
    EXPECT_TRUE(n->raw().Campaign().ok());
  }
  for (int round = 0; round < rounds; ++round) {
    if (role == Role::kFollower) {
      // A heartbeat of a newer term resets the timer (and makes the node a follower).
      EXPECT_TRUE(n->Step(Msg(MT::kHeartbeat, 2, 1, n->term().value() + 1)).ok());
    }
    n->Drain();
    const Term start = n->term();
    int ticks = 0;
    while (n->term() == start && ticks < 3 * et) {
      n->raw().Tick();
      ++ticks;
    }
    timeouts.insert(ticks);
  }
  return timeouts;
}

// §5.2: election timeouts are drawn at random from [et, 2et), and every value shows up.
TEST(RaftPaperTest, ElectionTimeoutIsRandomizedWithinRange) {
  for (Role role : {Role::kFollower, Role::kCandidate}) {
    SCOPED_TRACE(RoleName(role));
    const int et = 10;
    std::set<int> timeouts = ObservedTimeouts(role, 50 * et);
    EXPECT_GE(*timeouts.begin(), et);
    EXPECT_LT(*timeouts.rbegin(), 2 * et);
    for (int d = et; d < 2 * et; ++d) EXPECT_TRUE(timeouts.count(d)) << "never waited " << d;
  }
}

// §5.2: in most rounds a single server times out first, which makes split votes rare; the
// nodes' timeouts are drawn independently (different seeds).
TEST(RaftPaperTest, ElectionTimeoutsRarelyCollide) {
  const std::vector<uint64_t> ids = IdsBySize(5);
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (uint64_t id : ids) nodes.push_back(NewNode(id, ids));
  int conflicts = 0;
  const int rounds = 1000;
  std::set<int> distinct_counts;
  for (int round = 0; round < rounds; ++round) {
    for (auto& n : nodes) {
      uint64_t from = n->id().value() % 5 + 1;
      ASSERT_TRUE(n->Step(Msg(MT::kHeartbeat, from, n->id().value(), n->term().value() + 1)).ok());
      n->Drain();
    }
    int timed_out = 0;
    for (int tick = 0; timed_out == 0 && tick < 100; ++tick) {
      for (auto& n : nodes) {
        n->raw().Tick();
        if (n->role() == Role::kCandidate) ++timed_out;
      }
    }
    ASSERT_GT(timed_out, 0);
    if (timed_out > 1) ++conflicts;
    std::set<int> distinct;
    for (auto& n : nodes) distinct.insert(n->raft().randomized_election_ticks());
    distinct_counts.insert(static_cast<int>(distinct.size()));
  }
  EXPECT_LE(static_cast<double>(conflicts) / rounds, 0.3);
  EXPECT_GT(*distinct_counts.rbegin(), 1) << "all nodes always drew the same timeout";
}

// §5.3: the leader appends a proposal to its log and sends it to every follower, together with
// the index and term of the entry that precedes it; the entry is written to stable storage.
TEST(RaftPaperTest, LeaderStartsReplication) {
  auto n = NewNode(1, {1, 2, 3});
  ElectAndCommitNoop(*n, {2, 3});
  const LogIndex li = n->last_index();
  ASSERT_TRUE(n->raw().Propose("some data").ok());
  EXPECT_EQ(n->last_index(), li + 1);
  EXPECT_EQ(n->committed(), li);
  auto msgs = SortedByTo(n->Drain());
  ASSERT_EQ(msgs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(msgs[i].type, MT::kApp);
    EXPECT_EQ(msgs[i].to, N(i + 2));
    EXPECT_EQ(msgs[i].term, T(2));
    EXPECT_EQ(msgs[i].index, li);
    EXPECT_EQ(msgs[i].log_term, T(2));
    EXPECT_EQ(msgs[i].commit, li);
    ASSERT_EQ(msgs[i].entries.size(), 1u);
    EXPECT_EQ(msgs[i].entries[0].index, li + 1);
    EXPECT_EQ(msgs[i].entries[0].term, T(2));
    EXPECT_EQ(msgs[i].entries[0].data, "some data");
  }
  EXPECT_EQ(n->storage().LastIndex(), li + 1);
  EXPECT_EQ(n->committed(), li) << "committed before any follower acknowledged";
}

// §5.3: once a majority holds the entry the leader commits it, hands it to the application,
// and tells followers the new commit index in later appends.
TEST(RaftPaperTest, LeaderCommitsAndAnnouncesCommit) {
  auto n = NewNode(1, {1, 2, 3});
  ElectAndCommitNoop(*n, {2, 3});
  const LogIndex li = n->last_index();
  ASSERT_TRUE(n->raw().Propose("some data").ok());
  for (const Message& m : n->Drain()) ASSERT_TRUE(n->Step(AcceptAppend(m)).ok());
  EXPECT_EQ(n->committed(), li + 1);
  auto msgs = SortedByTo(n->Drain());
  ASSERT_FALSE(n->applied_data.empty());
  EXPECT_EQ(n->applied_data.back(), "some data");
  ASSERT_EQ(msgs.size(), 2u);
  for (const Message& m : msgs) {
    EXPECT_EQ(m.type, MT::kApp);
    EXPECT_EQ(m.commit, li + 1);
  }
}

// §5.3: an entry is committed once the leader replicated it on a majority (itself included,
// after its own write is durable) and not before.
TEST(RaftPaperTest, LeaderCommitsOnMajorityAck) {
  struct Case {
    size_t size;
    std::set<uint64_t> acceptors;
    bool committed;
  };
  const std::vector<Case> cases = {
      {1, {}, true},     {3, {}, false},       {3, {2}, true},
      {3, {2, 3}, true}, {5, {}, false},       {5, {2}, false},
      {5, {2, 3}, true}, {5, {2, 3, 4}, true}, {5, {2, 3, 4, 5}, true},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    std::vector<uint64_t> ids = IdsBySize(c.size);
    auto n = NewNode(1, ids);
    if (c.size == 1) {
      ASSERT_TRUE(n->raw().Campaign().ok());
      n->Drain();
    } else {
      ElectAndCommitNoop(*n, std::vector<uint64_t>(ids.begin() + 1, ids.end()));
    }
    const LogIndex li = n->last_index();
    ASSERT_TRUE(n->raw().Propose("x").ok());
    for (const Message& m : n->Drain()) {
      if (c.acceptors.count(m.to.value())) {
        ASSERT_TRUE(n->Step(AcceptAppend(m)).ok());
      }
    }
    EXPECT_EQ(n->committed() > li, c.committed);
  }
}

// §5.3: committing an entry commits every preceding entry, including those of earlier terms
// (the new leader's first entry drags them along).
TEST(RaftPaperTest, LeaderCommitsPrecedingEntries) {
  const std::vector<std::vector<uint64_t>> logs = {{}, {2}, {1, 1}, {1, 2, 2}};
  for (const auto& terms : logs) {
    SCOPED_TRACE(terms.size());
    auto n = NewNode(1, {1, 2, 3}, terms, HardState{T(2), kNoNode, I(1)});
    ElectWithVotes(*n, {2});
    ASSERT_TRUE(n->raw().Propose("some data").ok());
    AcceptAllAppends(*n);
    const LogIndex last = n->last_index();
    EXPECT_EQ(n->committed(), last);
    ASSERT_EQ(n->applied.size(), terms.size() + 2);  // old entries, the no-op, the proposal
    for (size_t i = 0; i < terms.size(); ++i) EXPECT_EQ(n->applied[i].term, T(terms[i]));
    EXPECT_EQ(n->applied.back().data, "some data");
    EXPECT_EQ(n->applied.back().index, last);
  }
}

// §5.3: a follower learns the commit index from the leader's appends and applies the entries
// in order.
TEST(RaftPaperTest, FollowerCommitsWhatTheLeaderCommitted) {
  struct Case {
    std::vector<uint64_t> terms;
    uint64_t commit;
  };
  const std::vector<Case> cases = {{{2}, 2}, {{2, 2}, 3}, {{2, 2}, 2}, {{2}, 2}};
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    auto n = NewNode(1, {1, 2, 3});
    Message app = Msg(MT::kApp, 2, 1, 2);
    app.index = I(1);
    app.log_term = T(1);
    app.entries = EntriesWithTerms(2, cases[i].terms);
    app.commit = I(cases[i].commit);
    ASSERT_TRUE(n->Step(app).ok());
    n->Drain();
    EXPECT_EQ(n->committed(), I(cases[i].commit));
    ASSERT_EQ(n->applied.size(), cases[i].commit - 1);
    for (size_t k = 0; k < n->applied.size(); ++k) EXPECT_EQ(n->applied[k].index, I(k + 2));
  }
}

// Figure 2, AppendEntries rule 5: commit = min(leaderCommit, index of last new entry) — a
// follower never commits beyond what this append proved it holds.
TEST(RaftPaperTest, FollowerCommitBoundedByLastNewEntry) {
  // The follower has a stale entry at 3 (term 1) that the leader's log may not share.
  auto n = NewNode(1, {1, 2, 3}, {1, 1});
  Message app = Msg(MT::kApp, 2, 1, 2);
  app.index = I(1);
  app.log_term = T(1);
  app.entries = EntriesWithTerms(2, {1});
  app.commit = I(10);
  ASSERT_TRUE(n->Step(app).ok());
  EXPECT_EQ(n->committed(), I(2));
  // A heartbeat with a large commit still commits only what the follower holds.
  ASSERT_TRUE(n->Step(Msg(MT::kHeartbeat, 2, 1, 2)).ok());
  EXPECT_EQ(n->committed(), I(2));
}

// §5.3 consistency check: the follower refuses an append unless its log holds an entry at
// prevLogIndex of prevLogTerm; the refusal carries a hint for fast backtracking.
TEST(RaftPaperTest, FollowerChecksAppendConsistency) {
  // Follower log: 1@1 (snapshot), 2@1, 3@2.
  struct Case {
    uint64_t log_term, index;
    bool reject;
    uint64_t want_index;  // accepted: the last index; rejected: the probed index
    uint64_t hint, hint_term;
  };
  const std::vector<Case> cases = {
      {0, 0, false, 1, 0, 0},  // below the commit index: the follower reports its commit
      {1, 1, false, 1, 0, 0}, {1, 2, false, 2, 0, 0}, {2, 3, false, 3, 0, 0},
      {1, 3, true, 3, 2, 1},  // term mismatch at 3: hint = last index with term <= 1
      {3, 4, true, 4, 3, 2},  // index beyond the log: hint = the last index
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    auto n = NewNode(1, {1, 2, 3}, {1, 2}, HardState{T(2), kNoNode, I(1)});
    Message app = Msg(MT::kApp, 2, 1, 2);
    app.index = I(c.index);
    app.log_term = T(c.log_term);
    app.commit = I(1);
    ASSERT_TRUE(n->Step(app).ok());
    auto msgs = n->Drain();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type, MT::kAppResp);
    EXPECT_EQ(msgs[0].reject, c.reject);
    EXPECT_EQ(msgs[0].index, I(c.want_index));
    if (c.reject) {
      EXPECT_EQ(msgs[0].reject_hint, I(c.hint));
      EXPECT_EQ(msgs[0].log_term, T(c.hint_term));
    }
  }
}

// §5.3: if an existing entry conflicts with a new one (same index, different term), the
// follower deletes it and all that follow, then appends the new entries; entries it already
// has are kept.
TEST(RaftPaperTest, FollowerAppendsAndTruncatesConflicts) {
  struct Case {
    uint64_t index, log_term;
    std::vector<uint64_t> new_terms;  // appended after `index`
    std::vector<uint64_t> want;       // terms of entries 2.. afterwards
  };
  // Follower log: 2@1, 3@2.
  const std::vector<Case> cases = {
      {3, 2, {3}, {1, 2, 3}},
      {2, 1, {3, 4}, {1, 3, 4}},
      {1, 1, {1}, {1, 2}},  // already present: nothing is truncated
      {1, 1, {3}, {3}},     // conflicts at 2: everything from 2 goes
      {2, 1, {2}, {1, 2}},  // identical entry
      {2, 1, {2, 2, 2}, {1, 2, 2, 2}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    auto n = NewNode(1, {1, 2, 3}, {1, 2}, HardState{T(2), kNoNode, I(1)});
    Message app = Msg(MT::kApp, 2, 1, 4);
    app.index = I(c.index);
    app.log_term = T(c.log_term);
    app.entries = EntriesWithTerms(c.index + 1, c.new_terms);
    app.commit = I(1);
    ASSERT_TRUE(n->Step(app).ok());
    n->Drain();
    auto stored = n->storage().Entries(I(2), n->storage().LastIndex() + 1, UINT64_MAX);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(TermsOf(*stored), c.want);
    EXPECT_EQ(TermsOf(n->raft().log().AllEntries()), c.want);
  }
}

// Figure 7: whatever a follower's log looks like — missing entries, extra uncommitted ones,
// or both — the leader brings it to match its own.
TEST(RaftPaperTest, LeaderSyncsFollowerLogs) {
  // Terms of entries 2.. (entry 1 is the bootstrap snapshot of term 1). The leader's:
  const std::vector<uint64_t> leader_log = {1, 1, 4, 4, 5, 5, 6, 6, 6};
  const std::vector<std::vector<uint64_t>> followers = {
      {1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing one
      {1, 1, 4},                          // (b) missing many
      {1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) one extra of the current term
      {1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra of a later term
      {1, 1, 4, 4, 4, 4},                 // (e) missing and extra
      {1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) a long divergent suffix
  };
  for (size_t i = 0; i < followers.size(); ++i) {
    SCOPED_TRACE(i);
    Network net;
    net.Add(NewNode(1, {1, 2, 3}, leader_log, HardState{T(8), kNoNode, I(1)}));
    net.Add(NewNode(2, {1, 2, 3}, followers[i], HardState{T(7), kNoNode, I(1)}));
    // Node 3 is absent; its vote is injected so that the leader wins whatever 2 answers.
    ASSERT_TRUE(net.Campaign(1).ok());
    net.Send(Msg(MT::kVoteResp, 3, 1, 9));
    ASSERT_EQ(net.node(1).role(), Role::kLeader);
    ASSERT_TRUE(net.Propose(1, "x").ok());
    const auto leader_ents = net.node(1).raft().log().AllEntries();
    const auto follower_ents = net.node(2).raft().log().AllEntries();
    EXPECT_EQ(TermsOf(follower_ents), TermsOf(leader_ents));
    EXPECT_EQ(follower_ents, leader_ents);
    EXPECT_EQ(net.node(2).committed(), net.node(1).committed());
    EXPECT_EQ(net.node(1).committed(), net.node(1).last_index());
  }
}

// §5.4.1: the candidate's vote requests carry its last log index and term, taken from the
// entries it holds.
TEST(RaftPaperTest, VoteRequestCarriesLastLogPosition) {
  struct Case {
    std::vector<uint64_t> terms;
    uint64_t term;
  };
  const std::vector<Case> cases = {{{2}, 3}, {{2, 3}, 4}};
  for (const Case& c : cases) {
    auto n = NewNode(1, {1, 2, 3});
    Message app = Msg(MT::kApp, 2, 1, c.term);
    app.index = I(1);
    app.log_term = T(1);
    app.entries = EntriesWithTerms(2, c.terms);
    ASSERT_TRUE(n->Step(app).ok());
    n->Drain();
    for (int i = 1; i < 2 * n->config().election_ticks; ++i) n->raw().Tick();
    auto msgs = SortedByTo(OfType(n->Drain(), MT::kVote));
    ASSERT_EQ(msgs.size(), 2u);
    for (const Message& m : msgs) {
      EXPECT_EQ(m.term, T(c.term + 1));
      EXPECT_EQ(m.index, I(1 + c.terms.size()));
      EXPECT_EQ(m.log_term, T(c.terms.back()));
    }
  }
}

// §5.4.1 election restriction: a voter refuses a candidate whose log is less up to date than
// its own (compare last terms, then last indexes).
TEST(RaftPaperTest, VoterRejectsCandidateWithOlderLog) {
  struct Case {
    std::vector<uint64_t> voter_terms;  // entries 2..
    uint64_t log_term, index;           // the candidate's last entry
    bool reject;
  };
  const std::vector<Case> cases = {
      // Same last term: the longer (or equal) log wins.
      {{1}, 1, 2, false},
      {{1}, 1, 3, false},
      {{1, 1}, 1, 2, true},
      // A later last term wins whatever the length.
      {{1}, 2, 2, false},
      {{1}, 2, 3, false},
      {{1, 1}, 2, 2, false},
      // An earlier last term loses whatever the length.
      {{2}, 1, 2, true},
      {{2}, 1, 3, true},
      {{2, 2}, 1, 9, true},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    const Case& c = cases[i];
    auto n = NewNode(1, {1, 2, 3}, c.voter_terms, HardState{T(2), kNoNode, I(1)});
    Message v = Msg(MT::kVote, 2, 1, 3);
    v.index = I(c.index);
    v.log_term = T(c.log_term);
    ASSERT_TRUE(n->Step(v).ok());
    auto msgs = n->Drain();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type, MT::kVoteResp);
    EXPECT_EQ(msgs[0].reject, c.reject);
    EXPECT_EQ(n->raft().vote(), c.reject ? kNoNode : N(2));
  }
}

// §5.4.2: the leader commits by counting replicas only an entry of its current term; older
// entries are committed indirectly, when a current-term entry after them commits.
TEST(RaftPaperTest, LeaderOnlyCommitsCurrentTermEntriesByCounting) {
  // Log: 2@1, 3@2; the leader is elected for term 3 and appends its no-op at 4.
  struct Case {
    uint64_t ack;
    uint64_t want_commit;
  };
  for (const Case& c : std::vector<Case>{{2, 1}, {3, 1}, {4, 4}}) {
    SCOPED_TRACE(c.ack);
    auto n = NewNode(1, {1, 2, 3}, {1, 2}, HardState{T(2), kNoNode, I(1)});
    ElectWithVotes(*n, {2});
    n->Drain();
    ASSERT_EQ(n->term(), T(3));
    ASSERT_EQ(n->last_index(), I(4));
    Message r = Msg(MT::kAppResp, 2, 1, 3);
    r.index = I(c.ack);
    ASSERT_TRUE(n->Step(r).ok());
    EXPECT_EQ(n->committed(), I(c.want_commit));
  }
}

// Figure 8, steps (a)-(c) on five nodes: S1 leads term 2 and puts "xx" at index 3 on S1 and S2
// only; S5 wins term 3 with S3 and S4 and writes index 3 of term 3 locally; S1 restarts, wins
// term 4 and replicates index 3 (term 2) to the others. When `hold_back` is set, appends
// carrying a term-4 entry are dropped, so index 3 sits on a majority while no entry of S1's
// term does. max_msg_bytes is 1 so that each append carries a single entry.
void Figure8Prefix(Network& net, bool hold_back) {
  EXPECT_TRUE(net.Campaign(1).ok());
  EXPECT_EQ(net.Leader(), 1u);
  // (a) only S2 receives the entry.
  net.Cut(1, 3);
  net.Cut(1, 4);
  net.Cut(1, 5);
  EXPECT_TRUE(net.Propose(1, "xx").ok());
  EXPECT_EQ(net.node(2).last_index(), I(3));
  EXPECT_EQ(net.node(1).committed(), I(2));
  // (b) S1 is down; S5 is elected by S3, S4 and itself, and its no-op reaches nobody.
  net.Recover();
  net.Isolate(1);
  net.DropType(MT::kApp);
  EXPECT_TRUE(net.Campaign(5).ok());
  EXPECT_EQ(net.node(5).role(), Role::kLeader);
  EXPECT_EQ(net.node(5).term(), T(3));
  // (c) S5 is down; S1 restarts and campaigns until elected (term 4: S3 and S4 voted in 3).
  net.Recover();
  net.Isolate(5);
  if (hold_back) {
    // Drop the appends that would put a term-4 entry in a follower's log (a probe that the
    // follower will refuse still goes through, so that S1 finds where the logs match).
    net.DropIf([&net](const Message& m) {
      if (m.type != MT::kApp) return false;
      bool current_term = false;
      for (const Entry& e : m.entries) current_term |= e.term >= T(4);
      return current_term && net.node(m.to.value()).raft().log().MatchTerm(m.index, m.log_term);
    });
  }
  net.node(1).Restart();
  for (int i = 0; i < 5 && net.node(1).role() != Role::kLeader; ++i) {
    EXPECT_TRUE(net.Campaign(1).ok());
  }
  EXPECT_EQ(net.node(1).role(), Role::kLeader);
  EXPECT_EQ(net.node(1).term(), T(4));
}

Network NewFigure8Network() {
  return Network({1, 2, 3, 4, 5}, [](Config& c) { c.max_msg_bytes = 1; });
}

// Campaigns `id` (restarted first, as after a crash) until it leads or `rounds` pass.
void CampaignUntilLeader(Network& net, uint64_t id, int rounds) {
  net.node(id).Restart();
  for (int i = 0; i < rounds && net.node(id).role() != Role::kLeader; ++i) {
    EXPECT_TRUE(net.Campaign(id).ok());
  }
}

TEST(RaftPaperTest, Figure8OldTermEntryOnMajorityIsNotCommitted) {
  Network net = NewFigure8Network();
  Figure8Prefix(net, /*hold_back=*/true);
  // Index 3 (term 2) is now on S1, S2, S3 and S4: a majority, yet not committed.
  for (uint64_t id : {1, 2, 3, 4}) {
    auto t = net.node(id).raft().log().TermAt(I(3));
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(*t, T(2)) << "node " << id;
  }
  EXPECT_EQ(net.node(1).committed(), I(2));

  // (d) S1 crashes; S5 restarts and can win (its last term, 3, is newer than the others'),
  // then overwrites index 3. Had S1 committed it, a committed entry would now be lost.
  net.Recover();
  net.Isolate(1);
  CampaignUntilLeader(net, 5, 5);
  ASSERT_EQ(net.Leader(), 5u);
  for (uint64_t id : {2, 3, 4, 5}) {
    const RaftLog& log = net.node(id).raft().log();
    EXPECT_EQ(log.ZeroTermOnError(log.TermAt(I(3))), T(3)) << "node " << id;
    for (const std::string& d : net.node(id).applied_data) EXPECT_NE(d, "xx");
  }
}

// Figure 8 (e): once S1 replicates an entry of its own term to a majority, that entry and
// every entry before it are committed — and survive any later election.
TEST(RaftPaperTest, Figure8CurrentTermEntryCommitsOlderOnes) {
  Network net = NewFigure8Network();
  Figure8Prefix(net, /*hold_back=*/false);
  ASSERT_TRUE(net.Propose(1, "y").ok());
  EXPECT_EQ(net.node(1).committed(), net.node(1).last_index());
  for (uint64_t id : {1, 2, 3, 4}) {
    EXPECT_EQ(net.node(id).applied_data, (std::vector<std::string>{"xx", "y"})) << id;
  }
  // S5 can no longer be elected: its log (last term 3) is behind a majority's (last term 4).
  net.Recover();
  net.Isolate(1);
  CampaignUntilLeader(net, 5, 4);
  EXPECT_NE(net.node(5).role(), Role::kLeader);
  EXPECT_GE(net.node(5).term(), T(6));  // it did try, in several terms
}

// §5.4 leader completeness: a node missing committed entries cannot be elected, and the node
// that is elected holds every committed entry.
TEST(RaftPaperTest, LeaderCompleteness) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  const LogIndex committed = net.node(1).committed();
  ASSERT_EQ(committed, net.node(1).last_index());
  // S1 crashes. S3, which missed the commits, cannot win: S2 refuses it.
  net.Recover();
  net.Isolate(1);
  ASSERT_TRUE(net.Campaign(3).ok());
  EXPECT_NE(net.node(3).role(), Role::kLeader);
  // S2 can, and it holds everything committed; S3 catches up from it.
  for (int i = 0; i < 5 && net.Leader() != 2; ++i) ASSERT_TRUE(net.Campaign(2).ok());
  ASSERT_EQ(net.Leader(), 2u);
  auto ents = net.node(2).raft().log().Slice(I(2), committed + 1, UINT64_MAX);
  ASSERT_TRUE(ents.ok());
  EXPECT_EQ(ents->size(), committed.value() - 1);
  EXPECT_EQ(net.node(3).applied_data, (std::vector<std::string>{"v0", "v1", "v2"}));
}

// §5.2: a new leader immediately sends every follower an append carrying its no-op entry, and
// its heartbeats then keep the followers from campaigning.
TEST(RaftPaperTest, NewLeaderAppendsNoopAndHeartbeatsSuppressElections) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.raw(1).Campaign().ok());
  net.Stabilize();
  // Two appends carry the no-op; two more (empty) then announce its commit.
  auto apps = OfType(net.delivered, MT::kApp);
  ASSERT_EQ(apps.size(), 4u);
  for (const Message& m : std::vector<Message>(apps.begin(), apps.begin() + 2)) {
    ASSERT_EQ(m.entries.size(), 1u);
    EXPECT_TRUE(m.entries[0].data.empty());
    EXPECT_EQ(m.entries[0].term, T(2));
  }
  for (int i = 0; i < 100; ++i) net.TickAll();
  EXPECT_EQ(net.Leader(), 1u);
  for (uint64_t id : {1, 2, 3}) EXPECT_EQ(net.node(id).term(), T(2));
  EXPECT_EQ(CountType(net.delivered, MT::kVote), 2u);  // only the first election's
}

// Figure 2 "All servers": entries are applied only once committed, in log order.
TEST(RaftPaperTest, EntriesAppliedOnlyAfterCommitInOrder) {
  Network net({1, 2, 3});
  ASSERT_TRUE(net.Campaign(1).ok());
  net.Isolate(2);
  net.Isolate(3);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  ASSERT_TRUE(net.Propose(1, "b").ok());
  for (uint64_t id : {1, 2, 3}) EXPECT_TRUE(net.node(id).applied_data.empty()) << id;
  net.Recover();
  ASSERT_TRUE(net.Propose(1, "c").ok());
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.node(id).applied_data, (std::vector<std::string>{"a", "b", "c"})) << id;
  }
}

}  // namespace
}  // namespace synod::raft::test
