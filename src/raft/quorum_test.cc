#include "raft/quorum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <vector>

namespace synod::raft {
namespace {

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// Acked indexes from a map; voters absent from it are unknown.
class MapIndexer : public AckedIndexer {
 public:
  MapIndexer() = default;
  explicit MapIndexer(std::map<NodeId, uint64_t> acked) : acked_(std::move(acked)) {}

  std::optional<uint64_t> AckedIndex(NodeId id) const override {
    auto it = acked_.find(id);
    if (it == acked_.end()) return std::nullopt;
    return it->second;
  }
  void Set(NodeId id, uint64_t v) { acked_[id] = v; }

 private:
  std::map<NodeId, uint64_t> acked_;
};

std::set<NodeId> Ids(std::initializer_list<uint64_t> ids) {
  std::set<NodeId> out;
  for (uint64_t id : ids) out.insert(NodeId(id));
  return out;
}

MajorityConfig Majority(std::initializer_list<uint64_t> ids) { return MajorityConfig(Ids(ids)); }

MapIndexer Acked(std::initializer_list<std::pair<uint64_t, uint64_t>> acked) {
  MapIndexer out;
  for (auto [id, v] : acked) out.Set(NodeId(id), v);
  return out;
}

std::map<NodeId, bool> Votes(std::initializer_list<std::pair<uint64_t, bool>> votes) {
  std::map<NodeId, bool> out;
  for (auto [id, v] : votes) out[NodeId(id)] = v;
  return out;
}

TEST(VoteResultTest, Names) {
  EXPECT_STREQ(VoteResultName(VoteResult::kPending), "VotePending");
  EXPECT_STREQ(VoteResultName(VoteResult::kLost), "VoteLost");
  EXPECT_STREQ(VoteResultName(VoteResult::kWon), "VoteWon");
}

TEST(MajorityConfigTest, EmptyCommitsEverything) {
  EXPECT_EQ(MajorityConfig().CommittedIndex(Acked({{1, 5}})), kNoLimit);
}

TEST(MajorityConfigTest, SingleVoterCommitsWhatItAcked) {
  EXPECT_EQ(Majority({1}).CommittedIndex(Acked({{1, 7}})), 7u);
  EXPECT_EQ(Majority({1}).CommittedIndex(Acked({})), 0u);
}

TEST(MajorityConfigTest, ThreeVotersCommitTheMedian) {
  MajorityConfig c = Majority({1, 2, 3});
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 10}, {2, 5}, {3, 7}})), 7u);
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 10}, {2, 10}, {3, 1}})), 10u);
  // Unknown voters count as 0: only one voter acked anything.
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 10}})), 0u);
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 10}, {3, 4}})), 4u);
}

TEST(MajorityConfigTest, EvenSizesNeedMoreThanHalf) {
  // 4 voters: a quorum is 3, so the second-lowest value is committed.
  MajorityConfig c = Majority({1, 2, 3, 4});
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 10}, {2, 9}, {3, 2}, {4, 1}})), 2u);
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 10}, {2, 9}, {3, 8}, {4, 1}})), 8u);
  // 2 voters: both must ack.
  EXPECT_EQ(Majority({1, 2}).CommittedIndex(Acked({{1, 10}, {2, 3}})), 3u);
}

TEST(MajorityConfigTest, NonMembersAreIgnored) {
  MajorityConfig c = Majority({1, 2, 3});
  EXPECT_EQ(c.CommittedIndex(Acked({{1, 2}, {4, 100}, {5, 100}, {6, 100}})), 0u);
}

TEST(MajorityConfigTest, LargeConfigsUseTheSlowPathCorrectly) {
  // Nine voters (more than the stack buffer holds): a quorum is 5.
  MajorityConfig c = Majority({1, 2, 3, 4, 5, 6, 7, 8, 9});
  MapIndexer acked;
  for (uint64_t id = 1; id <= 9; ++id) acked.Set(NodeId(id), 100 - id);  // 99 .. 91
  EXPECT_EQ(c.CommittedIndex(acked), 95u);
}

TEST(MajorityConfigTest, HugeIndexesDoNotOverflow) {
  MajorityConfig c = Majority({1, 2, 3});
  EXPECT_EQ(c.CommittedIndex(Acked({{1, kNoLimit}, {2, kNoLimit}, {3, 0}})), kNoLimit);
}

TEST(MajorityConfigTest, EmptyWinsEveryVote) {
  EXPECT_EQ(MajorityConfig().Vote({}), VoteResult::kWon);
  EXPECT_EQ(MajorityConfig().Vote(Votes({{1, false}})), VoteResult::kWon);
}

TEST(MajorityConfigTest, VoteOutcomes) {
  MajorityConfig c = Majority({1, 2, 3});
  EXPECT_EQ(c.Vote({}), VoteResult::kPending);
  EXPECT_EQ(c.Vote(Votes({{1, true}})), VoteResult::kPending);
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, true}})), VoteResult::kWon);
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, false}})), VoteResult::kPending);
  EXPECT_EQ(c.Vote(Votes({{1, false}, {2, false}})), VoteResult::kLost);
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, false}, {3, false}})), VoteResult::kLost);
}

TEST(MajorityConfigTest, VoteEvenSizes) {
  MajorityConfig c = Majority({1, 2, 3, 4});
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, true}})), VoteResult::kPending);
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, true}, {3, false}})), VoteResult::kPending);
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, true}, {3, false}, {4, false}})), VoteResult::kLost);
  EXPECT_EQ(c.Vote(Votes({{1, true}, {2, true}, {3, true}})), VoteResult::kWon);
}

TEST(MajorityConfigTest, VotesOfNonMembersAreIgnored) {
  MajorityConfig c = Majority({1, 2, 3});
  EXPECT_EQ(c.Vote(Votes({{1, true}, {4, true}, {5, true}})), VoteResult::kPending);
  EXPECT_EQ(c.Vote(Votes({{1, false}, {4, false}, {5, false}})), VoteResult::kPending);
}

TEST(MajorityConfigTest, ToString) {
  EXPECT_EQ(MajorityConfig().ToString(), "()");
  EXPECT_EQ(Majority({1}).ToString(), "(1)");
  EXPECT_EQ(Majority({3, 1, 2}).ToString(), "(1 2 3)");
  EXPECT_EQ(Majority({10, 2}).ToString(), "(2 10)");  // numeric, not lexicographic
}

TEST(MajorityConfigTest, Accessors) {
  MajorityConfig c = Majority({1, 2});
  EXPECT_EQ(c.size(), 2u);
  EXPECT_FALSE(c.empty());
  EXPECT_TRUE(c.Contains(NodeId(1)));
  EXPECT_FALSE(c.Contains(NodeId(3)));
  c.mutable_ids().insert(NodeId(3));
  EXPECT_TRUE(c.Contains(NodeId(3)));
  EXPECT_EQ(c, Majority({1, 2, 3}));
}

TEST(JointConfigTest, NonJointBehavesAsIncoming) {
  JointConfig j{Majority({1, 2, 3}), MajorityConfig()};
  EXPECT_FALSE(j.IsJoint());
  MapIndexer acked = Acked({{1, 10}, {2, 5}, {3, 7}});
  EXPECT_EQ(j.CommittedIndex(acked), 7u);
  EXPECT_EQ(j.Vote(Votes({{1, true}, {2, true}})), VoteResult::kWon);
  EXPECT_EQ(j.Vote(Votes({{1, false}, {2, false}})), VoteResult::kLost);
}

TEST(JointConfigTest, CommittedIsTheMinimumOfBothHalves) {
  JointConfig j{Majority({1, 2, 3}), Majority({3, 4, 5})};
  EXPECT_TRUE(j.IsJoint());
  // Incoming commits 8 (1, 2 acked 8+); outgoing only 3 (3 and 4 acked at least 3).
  MapIndexer acked = Acked({{1, 9}, {2, 8}, {3, 3}, {4, 4}, {5, 1}});
  EXPECT_EQ(j.CommittedIndex(acked), 3u);
  JointConfig swapped{j.outgoing, j.incoming};
  EXPECT_EQ(swapped.CommittedIndex(acked), 3u);
}

TEST(JointConfigTest, EmptyJointCommitsEverything) {
  EXPECT_EQ(JointConfig().CommittedIndex(Acked({})), kNoLimit);
  EXPECT_EQ(JointConfig().Vote({}), VoteResult::kWon);
}

TEST(JointConfigTest, VoteNeedsBothHalves) {
  JointConfig j{Majority({1, 2, 3}), Majority({3, 4, 5})};
  // Incoming won, outgoing pending.
  EXPECT_EQ(j.Vote(Votes({{1, true}, {2, true}})), VoteResult::kPending);
  // Both won through the shared voter 3.
  EXPECT_EQ(j.Vote(Votes({{1, true}, {3, true}, {4, true}})), VoteResult::kWon);
  // Incoming won, outgoing lost.
  EXPECT_EQ(j.Vote(Votes({{1, true}, {2, true}, {4, false}, {5, false}})), VoteResult::kLost);
  // Incoming lost, outgoing pending.
  EXPECT_EQ(j.Vote(Votes({{1, false}, {2, false}})), VoteResult::kLost);
  EXPECT_EQ(j.Vote({}), VoteResult::kPending);
}

TEST(JointConfigTest, IdsAndContains) {
  JointConfig j{Majority({1, 2, 3}), Majority({3, 4})};
  EXPECT_EQ(j.Ids(), Ids({1, 2, 3, 4}));
  EXPECT_TRUE(j.Contains(NodeId(4)));
  EXPECT_TRUE(j.Contains(NodeId(1)));
  EXPECT_FALSE(j.Contains(NodeId(5)));
}

TEST(JointConfigTest, ToString) {
  EXPECT_EQ((JointConfig{Majority({1, 2, 3}), MajorityConfig()}).ToString(), "(1 2 3)");
  EXPECT_EQ((JointConfig{Majority({1, 2, 3}), Majority({1, 2})}).ToString(), "(1 2 3)&&(1 2)");
  EXPECT_EQ(JointConfig().ToString(), "()");
}

// ---- Property test against a naive reference ----
//
// The reference works from the definitions: a majority of n voters is any subset of more than
// n/2 of them (for n == 0 the empty set, so an empty config constrains nothing). A value is
// committed when every member of some majority acked at least it; an election is won when
// some majority all voted yes and lost when every majority contains a no.

bool IsMajority(size_t subset_size, size_t n) { return n == 0 || 2 * subset_size > n; }

uint64_t NaiveCommitted(const std::vector<NodeId>& voters, const AckedIndexer& acked) {
  const size_t n = voters.size();
  uint64_t best = 0;
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (!IsMajority(std::popcount(mask), n)) continue;
    uint64_t lowest = kNoLimit;
    for (size_t i = 0; i < n; ++i) {
      if (mask & (1u << i)) lowest = std::min(lowest, acked.AckedIndex(voters[i]).value_or(0));
    }
    best = std::max(best, lowest);
  }
  return best;
}

struct NaiveVoteOutcome {
  bool won = false;       // some majority voted all yes
  bool possible = false;  // some majority has no "no" vote yet
};

NaiveVoteOutcome NaiveVote(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& votes) {
  const size_t n = voters.size();
  NaiveVoteOutcome out;
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (!IsMajority(std::popcount(mask), n)) continue;
    bool all_yes = true;
    bool any_no = false;
    for (size_t i = 0; i < n; ++i) {
      if ((mask & (1u << i)) == 0) continue;
      auto it = votes.find(voters[i]);
      if (it == votes.end() || !it->second) all_yes = false;
      if (it != votes.end() && !it->second) any_no = true;
    }
    out.won = out.won || all_yes;
    out.possible = out.possible || !any_no;
  }
  return out;
}

VoteResult NaiveJointVote(const std::vector<NodeId>& in, const std::vector<NodeId>& out,
                          const std::map<NodeId, bool>& votes) {
  NaiveVoteOutcome a = NaiveVote(in, votes);
  NaiveVoteOutcome b = NaiveVote(out, votes);
  if (a.won && b.won) return VoteResult::kWon;
  if (!a.possible || !b.possible) return VoteResult::kLost;
  return VoteResult::kPending;
}

constexpr uint64_t kPoolSize = 10;  // node ids 1..kPoolSize

std::vector<NodeId> RandomVoters(std::mt19937_64& rng, size_t n) {
  std::vector<NodeId> pool;
  for (uint64_t id = 1; id <= kPoolSize; ++id) pool.push_back(NodeId(id));
  std::shuffle(pool.begin(), pool.end(), rng);
  pool.resize(n);
  return pool;
}

// Mostly small values so that ties are common, sometimes values near the top of the range.
uint64_t RandomIndex(std::mt19937_64& rng) {
  if (rng() % 8 == 0) return kNoLimit - rng() % 3;
  return rng() % 6;
}

TEST(QuorumPropertyTest, MatchesNaiveReference) {
  int joint_cases = 0;
  int unknown_voters = 0;
  for (uint64_t seed : {1u, 2u, 3u, 42u, 20240601u}) {
    std::mt19937_64 rng(seed);
    for (int iter = 0; iter < 2000; ++iter) {
      SCOPED_TRACE("seed=" + std::to_string(seed) + " iter=" + std::to_string(iter));
      std::vector<NodeId> in = RandomVoters(rng, rng() % 8);
      std::vector<NodeId> out =
          rng() % 2 == 0 ? RandomVoters(rng, rng() % 8) : std::vector<NodeId>{};
      MapIndexer acked;
      std::map<NodeId, bool> votes;
      // The pool also covers non-members, whose acks and votes must be ignored.
      for (uint64_t id = 1; id <= kPoolSize; ++id) {
        if (rng() % 4 != 0) acked.Set(NodeId(id), RandomIndex(rng));
        const uint64_t v = rng() % 3;
        if (v != 0) votes[NodeId(id)] = v == 1;
      }
      for (NodeId id : in) unknown_voters += acked.AckedIndex(id).has_value() ? 0 : 1;

      MajorityConfig in_cfg(std::set<NodeId>(in.begin(), in.end()));
      MajorityConfig out_cfg(std::set<NodeId>(out.begin(), out.end()));
      EXPECT_EQ(in_cfg.CommittedIndex(acked), NaiveCommitted(in, acked));
      EXPECT_EQ(in_cfg.Vote(votes), NaiveJointVote(in, {}, votes));

      JointConfig joint{in_cfg, out_cfg};
      joint_cases += joint.IsJoint() ? 1 : 0;
      EXPECT_EQ(joint.CommittedIndex(acked),
                std::min(NaiveCommitted(in, acked), NaiveCommitted(out, acked)));
      EXPECT_EQ(joint.Vote(votes), NaiveJointVote(in, out, votes));
    }
  }
  // The generator really exercised joint configs and unknown voters.
  EXPECT_GT(joint_cases, 3000);
  EXPECT_GT(unknown_voters, 1000);
}

}  // namespace
}  // namespace synod::raft
