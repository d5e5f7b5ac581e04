// Randomized runs of small groups under message loss, reordering, partitions, restarts,
// leadership transfers and reads, checking the safety properties of Raft (thesis §3.6.3,
// Figure 3.2) after every step:
//  - election safety: at most one leader per term;
//  - state machine safety: no two nodes apply different entries at the same index;
//  - leader completeness / log matching on the committed prefix: an entry, once committed
//    anywhere, is the entry every node holds (and commits) at that index.
// Each run is reproducible from its seed (std::mt19937_64, seeded explicitly).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "raft/raft_test_util.h"

namespace synod::raft::test {
namespace {

using MT = MessageType;

struct Options {
  bool pre_vote = false;
  bool check_quorum = false;
  bool lease = false;
  int steps = 1500;
};

class SafetyChecker {
 public:
  // Checks every node's current state; returns false (after recording failures) on a breach.
  bool Check(Network& net) {
    for (uint64_t id : net.ids()) {
      TestNode& n = net.node(id);
      if (n.role() == Role::kLeader) {
        auto [it, inserted] = leaders_.emplace(n.term().value(), id);
        if (!inserted && it->second != id) {
          ADD_FAILURE() << "two leaders in term " << n.term().value() << ": " << it->second
                        << " and " << id;
          return false;
        }
      }
      // Incrementally: entries applied or committed before were checked already (and a
      // committed entry never changes; the core asserts that).
      size_t& seen = applied_seen_[id];
      for (; seen < n.applied.size(); ++seen) {
        const Entry& e = n.applied[seen];
        auto [it, inserted] = applied_.emplace(e.index.value(), e);
        if (!inserted && !(it->second == e)) {
          ADD_FAILURE() << "nodes applied different entries at index " << e.index.value();
          return false;
        }
      }
      const RaftLog& log = n.raft().log();
      LogIndex& checked = committed_seen_[id];
      for (LogIndex i = std::max({log.FirstIndex(), LogIndex(2), checked + 1});
           i <= log.committed(); ++i) {
        auto t = log.TermAt(i);
        if (!t.ok()) continue;
        auto [it, inserted] = committed_terms_.emplace(i.value(), t->value());
        if (!inserted && it->second != t->value()) {
          ADD_FAILURE() << "node " << id << " committed term " << t->value() << " at index "
                        << i.value() << " where term " << it->second << " was committed";
          return false;
        }
      }
      checked = std::max(checked, log.committed());
    }
    return true;
  }
  size_t applied_count() const { return applied_.size(); }
  size_t terms() const { return leaders_.size(); }

 private:
  std::map<uint64_t, uint64_t> leaders_;  // term -> leader
  std::map<uint64_t, Entry> applied_;     // index -> entry applied there
  std::map<uint64_t, uint64_t> committed_terms_;
  std::map<uint64_t, size_t> applied_seen_;      // node -> applied entries checked
  std::map<uint64_t, LogIndex> committed_seen_;  // node -> committed index checked
};

// Read linearizability: a read state's index must cover every entry that was committed on
// any node when the read was requested.
class ReadChecker {
 public:
  void Issue(Network& net, const std::string& ctx) {
    LogIndex max_commit;
    for (uint64_t id : net.ids()) max_commit = std::max(max_commit, net.node(id).committed());
    required_[ctx] = max_commit;
  }
  bool Check(Network& net) {
    for (uint64_t id : net.ids()) {
      const auto& states = net.node(id).read_states;
      for (size_t& i = seen_[id]; i < states.size(); ++i) {
        auto it = required_.find(states[i].context);
        if (it == required_.end()) continue;
        if (states[i].index < it->second) {
          ADD_FAILURE() << "stale read " << states[i].context << " at node " << id << ": index "
                        << states[i].index.value() << " < " << it->second.value();
          return false;
        }
        ++served_;
      }
    }
    return true;
  }
  int served() const { return served_; }

 private:
  std::map<std::string, LogIndex> required_;
  std::map<uint64_t, size_t> seen_;
  int served_ = 0;
};

// One randomized run; returns the number of distinct entries applied.
size_t RunSeed(uint64_t seed, const Options& o) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  ConfigFn fn = [&o](Config& c) {
    c.pre_vote = o.pre_vote;
    c.check_quorum = o.check_quorum || o.lease;
    if (o.lease) c.read_only_option = ReadOnlyOption::kLeaseBased;
    c.max_msg_bytes = 16;
    c.max_inflight_msgs = 4;
  };
  Network net({1, 2, 3, 4, 5}, fn);
  net.report_snapshots = true;
  SafetyChecker checker;
  ReadChecker reads;
  std::vector<Message> delayed;
  int proposal = 0;
  for (int step = 0; step < o.steps; ++step) {
    const uint64_t id = 1 + pick(5);
    const uint64_t r = pick(100);
    if (r < 40) {
      net.raw(id).Tick();
    } else if (r < 60) {
      (void)net.raw(id).Propose("p" + std::to_string(proposal++));
    } else if (r < 63) {
      net.Isolate(id);
    } else if (r < 66) {
      net.Cut(id, 1 + pick(5));
    } else if (r < 72) {
      net.Recover();
    } else if (r < 74) {
      net.Collect();  // what it handed out is on its way; its volatile state is lost
      TestNode& n = net.node(id);
      // A commit index written without sync (a commit-only change) may be lost by the crash.
      HardState hs = n.storage().hard_state();
      const LogIndex floor = std::max(n.storage().FirstIndex() - 1, n.synced_commit());
      hs.commit = std::max(floor, hs.commit - std::min<uint64_t>(hs.commit.value(), pick(4)));
      n.storage().SetHardState(hs);
      n.Restart();
    } else if (r < 77) {
      // Linearizability: the read must reflect every write committed anywhere before it
      // was issued.
      const std::string ctx = "r" + std::to_string(step);
      if (net.raw(id).ReadIndex(ctx).ok()) reads.Issue(net, ctx);
    } else if (r < 78) {
      (void)net.raw(id).TransferLeadership(N(1 + pick(5)));
    } else if (r < 80) {
      TestNode& n = net.node(id);
      if (n.applied_index() >= n.storage().FirstIndex()) n.CompactTo(n.applied_index());
    } else if (r < 82) {
      // Membership: demote or promote node 4 and/or 5 (nodes 1-3 stay voters, so a quorum
      // always exists): one change, or both at once through a joint configuration, left
      // automatically or by an explicit leave proposed later.
      const ConfState& cs = net.node(id).conf_state();
      ConfChange cc;
      const uint64_t kind = pick(4);
      if (kind == 3) {
        (void)net.raw(id).ProposeConfChange(ConfChange{});  // leave, if joint
      } else {
        for (uint64_t target : {4, 5}) {
          if (kind != 2 && target != 4 + kind) continue;
          const bool learner = cs.learners.count(N(target)) != 0;
          cc.changes.push_back(ConfChangeSingle{
              learner ? ConfChangeType::kAddNode : ConfChangeType::kAddLearner, N(target)});
        }
        if (pick(2) == 0) cc.transition = ConfChangeTransition::kJointExplicit;
        (void)net.raw(id).ProposeConfChange(cc);
      }
    }
    // Deliver what is queued in a random order; some messages are lost, some delayed.
    net.Collect();
    std::vector<Message> batch = net.TakePending();
    batch.insert(batch.end(), delayed.begin(), delayed.end());
    delayed.clear();
    std::shuffle(batch.begin(), batch.end(), rng);
    for (const Message& m : batch) {
      const uint64_t fate = pick(100);
      if (fate < 5) {
        net.Lose(m);
        continue;
      }
      if (fate < 15) {
        delayed.push_back(m);
        continue;
      }
      net.Deliver(m);
      if (fate < 18) net.Deliver(m);  // duplicated
    }
    if (!checker.Check(net) || !reads.Check(net)) {
      ADD_FAILURE() << "seed " << seed << " step " << step;
      return 0;
    }
  }
  // Heal everything: the group must converge and commit a new proposal everywhere (proposed
  // again if a leader change lost it).
  net.Recover();
  net.Send(delayed);
  auto everyone_applied = [&net] {
    for (uint64_t id : net.ids()) {
      const auto& d = net.node(id).applied_data;
      if (std::find(d.begin(), d.end(), "final") == d.end()) return false;
    }
    return true;
  };
  bool done = false;
  for (int tick = 0; tick < 1000 && !done; ++tick) {
    const uint64_t leader = net.Leader();
    if (leader != 0 && tick % 50 == 0) (void)net.raw(leader).Propose("final");
    net.TickAll();
    done = everyone_applied();
  }
  EXPECT_TRUE(done) << "seed " << seed << ": the healed group did not converge";
  EXPECT_TRUE(checker.Check(net)) << "seed " << seed;
  return checker.applied_count();
}

TEST(RandomizedSafetyTest, Plain) {
  for (uint64_t seed = 1; seed <= 12; ++seed) EXPECT_GT(RunSeed(seed, {}), 0u) << seed;
}

// Regression: seed 69 once elected two leaders in one term, through a node that crashed with
// a membership change durable but the commit of the change before it lost (the commit index
// had been written without sync; see RawNodeTest.SyncedReadyCarriesLazilyWrittenCommit).
TEST(RandomizedSafetyTest, LostLazyCommitDoesNotSplitConfigurations) {
  EXPECT_GT(RunSeed(69, {}), 0u);
}

TEST(RandomizedSafetyTest, PreVoteAndCheckQuorum) {
  Options o;
  o.pre_vote = true;
  o.check_quorum = true;
  for (uint64_t seed = 100; seed <= 112; ++seed) EXPECT_GT(RunSeed(seed, o), 0u) << seed;
}

TEST(RandomizedSafetyTest, LeaseReads) {
  Options o;
  o.pre_vote = true;
  o.lease = true;
  for (uint64_t seed = 200; seed <= 212; ++seed) EXPECT_GT(RunSeed(seed, o), 0u) << seed;
}

}  // namespace
}  // namespace synod::raft::test
