// SimCluster's invariants (see cluster.h): checked per group after every event and on every
// apply, snapshot and change of role, and the final checks once the cluster has settled.
#include <algorithm>
#include <set>

#include "common/assert.h"
#include "common/slot.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "sim/cluster.h"
#include "sim/cluster_node.h"

namespace synod::sim {

namespace {

uint64_t EntryHash(const raft::Entry& e) {
  uint64_t h = Fnv(0xcbf29ce484222325ull, e.data);
  return h ^ static_cast<uint64_t>(e.type);
}

// The keys a command touches, as far as slot ownership is concerned: its key, the first key of a
// Redis command (its first argument), and those of a batch's sub-commands. The workloads'
// multi-key commands keep their keys under one hash tag, so the first key stands for all.
void KeysOf(const kv::Command& cmd, std::vector<std::string>* out) {
  if (!cmd.key.empty()) out->push_back(cmd.key);
  if (cmd.op == kv::Op::kRedis && cmd.args.size() > 1) out->push_back(cmd.args[1]);
  for (const kv::Command& sub : cmd.batch) KeysOf(sub, out);
}

}  // namespace

void SimCluster::Violate(std::string what) {
  if (violation_) return;
  // The state of every node at the moment of the violation, to start the investigation from.
  for (const auto& [id, n] : nodes_) {
    if (!n->up) {
      what += fmt::format("\n    node {}: down", id.value());
      continue;
    }
    for (auto [group, rep] : Held(*n)) {
      const raft::Raft& r = rep->raw_node().raft();
      const raft::RaftLog& l = r.log();
      what += fmt::format(
          "\n    node {}{}: {} term={} lead={} first={} last={}/{} commit={} applied={} "
          "config=\"{}\"{}",
          id.value(), sharded() ? fmt::format(" group {}", group.value()) : "",
          raft::RoleName(r.role()), r.term().value(), r.lead().value(), l.FirstIndex().value(),
          l.LastIndex().value(), l.LastTerm().value(), l.committed().value(), l.applied().value(),
          r.config().ToString(), n->paused ? " paused" : "");
    }
  }
  logger_.Error("event=invariant_violated at_ns={} what=\"{}\"", loop_->now(), what);
  violation_ = "t=" + std::to_string(loop_->now() / kMilli) + "ms: " + what;
}

namespace {

// " in group G" when the cluster is sharded (violations name the group).
std::string InGroup(bool sharded, GroupId group) {
  return sharded ? " in group " + std::to_string(group.value()) : "";
}

}  // namespace

void SimCluster::OnApply(NodeId id, GroupId group, const raft::Entry& e) {
  Node& n = node(id);
  GroupCheck& gc = checks_[group];
  Seen& seen = n.seen[group];
  // No gaps: a node applies index after index (a snapshot moves seen.applied forward).
  if (e.index != seen.applied + 1) {
    Violate("node " + std::to_string(id.value()) + " applied index " +
            std::to_string(e.index.value()) + " after " + std::to_string(seen.applied.value()) +
            InGroup(sharded(), group));
  }
  seen.applied = e.index;
  if (const cluster::Replica* r = ReplicaOf(n, group)) CheckDigest(id, group, r->state_machine());
  uint64_t h = EntryHash(e);
  auto [it, inserted] = gc.committed.emplace(e.index, Committed{e.term, h, gc.max_term_seen});
  if (!inserted && (it->second.term != e.term || it->second.hash != h)) {
    Violate("state machine safety: node " + std::to_string(id.value()) + " applied index " +
            std::to_string(e.index.value()) + " term " + std::to_string(e.term.value()) +
            " but another node applied term " + std::to_string(it->second.term.value()) + " there" +
            InGroup(sharded(), group));
  }
  if (e.type == raft::EntryType::kConfChange) {
    n.descriptors_due = true;
    if (sharded() && group != cluster::kMetaGroup) CheckVoters(id, group, e);
  }
  if (e.type == raft::EntryType::kNormal && !e.data.empty()) {
    auto cmd = kv::DecodeCommand(e.data);
    if (cmd.ok() && cmd->client_id != 0) {
      std::pair<uint64_t, uint64_t> c{cmd->client_id, cmd->seq};
      if (sharded()) {
        auto origin = session_origin_.find(c);
        if (origin != session_origin_.end()) c = origin->second;
      }
      applied_commands_.insert(c);
    }
    if (cmd.ok() && cmd->op == kv::Op::kExpire) ++expiry_applies_;
    if (cmd.ok() && sharded()) CheckOwnership(id, group, *cmd);
  }
  Trace("apply " + std::to_string(id.value()) + " " + std::to_string(group.value()) + " " +
        std::to_string(e.index.value()));
}

void SimCluster::CheckVoters(NodeId id, GroupId group, const raft::Entry& e) {
  const cluster::Replica* r = ReplicaOf(node(id), group);
  Result<raft::ConfChange> cc = raft::ConfChange::Decode(e.data);
  if (r == nullptr || !cc.ok()) return;  // a bad entry is the replica's to refuse
  const raft::MembershipConfig& before = r->raw_node().raft().config();
  // The learners that replace a voter (a move's), with the voter each replaces: that voter may
  // not go while its replacement is a learner. (The membership fault adds and removes others,
  // as an operator may.)
  std::map<NodeId, NodeId> learners;  // learner -> the voter it replaces
  for (NodeId l : before.learners) {
    if (auto it = replacements_.find({group, l}); it != replacements_.end()) {
      learners[l] = it->second;
    }
  }
  std::set<NodeId> removed;  // voters removed or made learners by this change
  for (const raft::ConfChangeSingle& c : cc->changes) {
    const bool voter = before.IsVoter(c.node);
    const bool by_move = move_removals_.erase({group, c.node}) > 0;
    if (c.type == raft::ConfChangeType::kAddLearner) {
      if (voter && by_move) removed.insert(c.node);  // a voter made a learner
      continue;
    }
    if (auto it = replacements_.find({group, c.node});
        it != replacements_.end() && c.type == raft::ConfChangeType::kAddNode) {
      replaced_.insert({group, it->second});  // its source has a replacement among the voters
    }
    learners.erase(c.node);  // promoted or removed: no longer a replacement under way
    replacements_.erase({group, c.node});
    if (c.type == raft::ConfChangeType::kRemoveNode && voter && by_move) removed.insert(c.node);
  }
  NodeId gone = kNoNode;
  NodeId waiting = kNoNode;
  for (const auto& [l, source] : learners) {
    // A source some other replacement of it already replaced may go (a move that gave up on
    // one target and used another leaves the first a learner).
    if (removed.contains(source) && !replaced_.contains({group, source})) {
      gone = source;
      waiting = l;
    }
  }
  for (NodeId r : removed) replaced_.erase({group, r});
  if (gone == kNoNode) return;
  Violate(fmt::format(
      "durability margin: node {} applies a membership change at index {} that removes voter {} "
      "while replica {} is still a learner{}: a replica went before its replacement caught up "
      "and became a voter",
      id.value(), e.index.value(), gone.value(), waiting.value(), InGroup(sharded(), group)));
}

void SimCluster::CheckOwnership(NodeId id, GroupId group, const kv::Command& cmd) {
  // Before the entry is applied: the range the replica owned at the entry's index.
  const cluster::Replica* r = ReplicaOf(node(id), group);
  if (r == nullptr || group == cluster::kMetaGroup) return;
  const std::optional<SlotRange>& range = r->state_machine().range();
  if (!range) return;
  // A split's own entry touches no key; a command the shard refuses (kWrongShard) is applied
  // as a refusal: what matters is that no key outside the range changes, which the digests of
  // the shard that owns it check. So: a command whose declared slots are outside is refused;
  // one that declares none must touch only keys inside.
  if (cmd.slots && !range->Contains(*cmd.slots) && !opts_.replica.kv.testing_bug_stale_route) {
    return;  // refused whole by the state machine (kWrongShard)
  }
  std::vector<std::string> keys;
  KeysOf(cmd, &keys);
  if (cmd.op == kv::Op::kExpire) return;  // skips what it does not own (StateMachine::Expire)
  // A split's and a merge's own commands touch no key by their arguments (a merge's keys are
  // the absorbed shard's, whose slots the entry adds to this one).
  if (cmd.op == kv::Op::kRedis && !cmd.args.empty() &&
      (kv::redis::EqualsIgnoreCase(cmd.args[0], kv::kSplitCommand) ||
       kv::redis::EqualsIgnoreCase(cmd.args[0], kv::kFreezeCommand) ||
       kv::redis::EqualsIgnoreCase(cmd.args[0], kv::kMergeCommand) ||
       kv::redis::EqualsIgnoreCase(cmd.args[0], kv::kCancelMergeCommand) ||
       kv::redis::EqualsIgnoreCase(cmd.args[0], kv::kUnfreezeCommand))) {
    return;
  }
  for (const std::string& k : keys) {
    const uint16_t slot = KeySlot(k);
    if (!range->Contains(slot)) {
      Violate(
          fmt::format("slot ownership: node {} applied a command on key '{}' (slot {}) in "
                      "group {}, which owns slots {}-{} at index {}",
                      id.value(), k, slot, group.value(), range->first, range->last,
                      r->state_machine().applied_index().value() + 1));
      return;
    }
  }
}

void SimCluster::CheckSlotsPartitioned() {
  if (!sharded()) return;
  std::vector<std::pair<SlotRange, GroupId>> ranges;
  for (GroupId group : Groups()) {
    if (group == cluster::kMetaGroup) continue;
    const cluster::Replica* best = nullptr;
    for (const auto& [id, n] : nodes_) {
      const cluster::Replica* r = n->up ? ReplicaOf(*n, group) : nullptr;
      if (r == nullptr || !r->IsMember()) continue;
      if (best == nullptr ||
          r->state_machine().applied_index() > best->state_machine().applied_index()) {
        best = r;
      }
    }
    if (best == nullptr || !best->state_machine().range()) continue;
    ranges.push_back({*best->state_machine().range(), group});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const auto& a, const auto& b) { return a.first.first < b.first.first; });
  uint32_t next = 0;
  for (const auto& [range, group] : ranges) {
    if (range.first != next) {
      return Violate(fmt::format("slots partitioned: group {} owns slots {}-{}, but slot {} {}",
                                 group.value(), range.first, range.last, next,
                                 range.first > next ? "has no shard" : "has two shards"));
    }
    next = uint32_t{range.last} + 1;
  }
  if (next != kSlotCount) {
    Violate(fmt::format("slots partitioned: slots {}-16383 have no shard", next));
  }
}

void SimCluster::CheckDigest(NodeId id, GroupId group, const kv::StateMachine& sm) {
  // Called before each apply: the state after the previous entry. Equal prefixes must give
  // equal states at every index, not only at the end; with replicated expiry this is what
  // shows a replica deleting an expired key on its own, or at another index.
  uint64_t digest = sm.Digest();
  auto [it, inserted] =
      checks_[group].digest_at.emplace(sm.applied_index(), std::make_pair(id, digest));
  if (!inserted && it->second.second != digest) {
    Violate(fmt::format("nodes {} and {} applied up to index {} but hold different states{}",
                        it->second.first.value(), id.value(), sm.applied_index().value(),
                        InGroup(sharded(), group)));
  }
}

void SimCluster::OnSnapshot(NodeId id, GroupId group, const raft::SnapshotMeta& meta) {
  Node& n = node(id);
  const GroupCheck& gc = checks_[group];
  auto it = gc.committed.find(meta.index);
  if (it != gc.committed.end() && it->second.term != meta.term) {
    Violate("node " + std::to_string(id.value()) + " installed a snapshot at index " +
            std::to_string(meta.index.value()) + " with a term other nodes did not commit" +
            InGroup(sharded(), group));
  }
  n.seen[group].applied = meta.index;
  Trace("snapshot " + std::to_string(id.value()) + " " + std::to_string(group.value()) + " " +
        std::to_string(meta.index.value()));
}

void SimCluster::OnSoftState(NodeId id, GroupId group, const raft::SoftState& ss, Term term) {
  Trace("soft " + std::to_string(id.value()) + " " + std::to_string(group.value()) + " " +
        raft::RoleName(ss.role) + " t" + std::to_string(term.value()));
  if (ss.role != raft::Role::kLeader) return;
  auto [it, inserted] = checks_[group].leader_by_term.emplace(term, id);
  if (!inserted && it->second != id) {
    Violate("election safety: nodes " + std::to_string(it->second.value()) + " and " +
            std::to_string(id.value()) + " both led term " + std::to_string(term.value()) +
            InGroup(sharded(), group));
    return;
  }
  CheckLeaderCompleteness(id, group, term);
  if (on_leader_) on_leader_(id, term);
}

void SimCluster::CheckLeaderCompleteness(NodeId id, GroupId group, Term term) {
  const cluster::Replica* rep = ReplicaOf(node(id), group);
  if (rep == nullptr) return;
  const raft::RaftLog& log = rep->raw_node().raft().log();
  LogIndex first = log.FirstIndex();
  for (const auto& [idx, c] : checks_[group].committed) {
    if (idx < first) continue;      // covered by the leader's snapshot
    if (c.epoch >= term) continue;  // may have been committed in this term or later
    auto t = log.TermAt(idx);
    if (!t.ok() || t.value() != c.term) {
      Violate("leader completeness: leader " + std::to_string(id.value()) + " of term " +
              std::to_string(term.value()) + " lacks committed index " +
              std::to_string(idx.value()) + InGroup(sharded(), group));
      return;
    }
  }
}

void SimCluster::CheckAfterEvent() {
  ++events_;
  for (auto& [id, n] : nodes_) {
    for (auto [group, rep] : Held(*n)) {
      if (rep->failed()) continue;
      const raft::Raft& r = rep->raw_node().raft();
      GroupCheck& gc = checks_[group];
      gc.max_term_seen = std::max(gc.max_term_seen, r.term());
      Seen& seen = n->seen[group];
      LogIndex c = r.log().committed();
      if (c < seen.commit) {
        Violate("node " + std::to_string(id.value()) + " commit index moved back from " +
                std::to_string(seen.commit.value()) + " to " + std::to_string(c.value()) +
                InGroup(sharded(), group));
      }
      // §5.4.2: a leader commits by counting replicas only an entry of its own term (older
      // entries are committed with it). The consequence of breaking this rule, Figure 8's
      // overwritten commit, needs a rare schedule; the rule itself is checked on every commit.
      if (r.role() == raft::Role::kLeader && c > seen.commit && r.term() == seen.term &&
          seen.was_leader && r.log().ZeroTermOnError(r.log().TermAt(c)) != r.term()) {
        Violate("leader " + std::to_string(id.value()) + " of term " +
                std::to_string(r.term().value()) + " committed index " + std::to_string(c.value()) +
                " of an earlier term by counting replicas" + InGroup(sharded(), group));
      }
      seen.commit = c;
      seen.term = r.term();
      seen.was_leader = r.role() == raft::Role::kLeader;
    }
  }
  for (GroupId group : Groups()) CheckCommittedElectionSafe(group);
  if (events_ % 64 == 0) {
    for (GroupId group : Groups()) CheckLogMatching(group, events_ % 1024 == 0);
  }
}

void SimCluster::CheckCommittedElectionSafe(GroupId group) {
  const GroupCheck& gc = checks_[group];
  if (gc.committed.empty() || violation_) return;
  const auto& [top, c] = *gc.committed.rbegin();
  struct View {
    NodeId id;
    const raft::Raft* r;
  };
  std::vector<View> up;
  for (auto& [id, n] : nodes_) {
    const cluster::Replica* rep = ReplicaOf(*n, group);
    if (rep != nullptr && !rep->failed()) up.push_back({id, &rep->raw_node().raft()});
  }
  for (const View& cand : up) {
    const raft::RaftLog& log = cand.r->log();
    // Holding the newest committed entry implies holding all earlier ones (log matching);
    // a snapshot at or past it holds it too.
    if (log.FirstIndex() > top) continue;
    if (log.LastIndex() >= top && log.ZeroTermOnError(log.TermAt(top)) == c.term) continue;
    // Nodes that would not campaign: not a voter, or a membership change committed but not
    // applied (the guard that makes apply-time configuration changes safe).
    if (!cand.r->Promotable() || cand.r->HasUnappliedConfChanges()) continue;
    std::map<NodeId, bool> votes;
    for (const View& v : up) {
      if (!cand.r->config().IsVoter(v.id)) continue;
      const raft::RaftLog& vl = v.r->log();
      // Would v grant a vote by the up-to-date rule alone? A replica that holds nothing grants
      // none (Replica::Receive).
      votes[v.id] = vl.LastIndex() > LogIndex(0) &&
                    (log.LastTerm() > vl.LastTerm() ||
                     (log.LastTerm() == vl.LastTerm() && log.LastIndex() >= vl.LastIndex()));
    }
    if (cand.r->config().voters.Vote(votes) == raft::VoteResult::kWon) {
      Violate("committed entry at risk: node " + std::to_string(cand.id.value()) +
              " lacks committed index " + std::to_string(top.value()) + " (term " +
              std::to_string(c.term.value()) + ") yet a quorum of live voters would elect it" +
              InGroup(sharded(), group));
      return;
    }
  }
}

void SimCluster::CheckLogMatching(GroupId group, bool full) {
  // Log Matching (§5.3): if two logs hold an entry with the same index and term, they are
  // identical up to it. Checked on the highest such index per pair, walking down. The walk is
  // the costliest check (long logs, every pair), so only a `full` one goes below the indexes
  // both nodes applied: those entries OnApply already compared, by term and content, with
  // what every other node applied there.
  std::vector<const raft::RaftLog*> logs;
  std::vector<NodeId> ids;
  for (auto& [id, n] : nodes_) {
    const cluster::Replica* rep = ReplicaOf(*n, group);
    if (rep == nullptr || rep->failed()) continue;
    logs.push_back(&rep->raw_node().raft().log());
    ids.push_back(id);
  }
  for (size_t a = 0; a < logs.size(); ++a) {
    for (size_t b = a + 1; b < logs.size(); ++b) {
      LogIndex lo = std::max(logs[a]->FirstIndex(), logs[b]->FirstIndex());
      if (!full) lo = std::max(lo, std::min(logs[a]->applied(), logs[b]->applied()));
      LogIndex hi = std::min(logs[a]->LastIndex(), logs[b]->LastIndex());
      bool matched = false;
      for (LogIndex i = hi; i >= lo && i > LogIndex(0); i = i - 1) {
        Term ta = logs[a]->ZeroTermOnError(logs[a]->TermAt(i));
        Term tb = logs[b]->ZeroTermOnError(logs[b]->TermAt(i));
        if (!matched && ta == tb) matched = true;
        if (matched && ta != tb) {
          Violate("log matching: nodes " + std::to_string(ids[a].value()) + " and " +
                  std::to_string(ids[b].value()) + " agree above index " +
                  std::to_string(i.value()) + " but not at it" + InGroup(sharded(), group));
          return;
        }
      }
    }
  }
}

const SimCluster::Node* SimCluster::AnyLeaderNode(GroupId group) const {
  const Node* leader = nullptr;
  for (const auto& [id, n] : nodes_) {
    const cluster::Replica* rep = ReplicaOf(*n, group);
    if (rep != nullptr && !rep->failed() && rep->raw_node().raft().role() == raft::Role::kLeader) {
      leader = n.get();
    }
  }
  return leader;
}

bool SimCluster::AllMembersCaughtUp(std::string* why) const {
  for (GroupId group : Groups()) {
    const Node* leader = AnyLeaderNode(group);
    if (leader == nullptr) {
      if (why != nullptr) *why = "no leader" + InGroup(sharded(), group);
      return false;
    }
    const raft::Raft& lr = ReplicaOf(*leader, group)->raw_node().raft();
    const LogIndex commit = lr.log().committed();
    for (NodeId id : lr.config().AllIds()) {
      auto it = nodes_.find(id);
      if (it == nodes_.end()) continue;
      const cluster::Replica* rep = ReplicaOf(*it->second, group);
      if (rep == nullptr || rep->failed()) continue;
      const LogIndex applied = rep->state_machine().applied_index();
      if (applied < commit) {
        if (why != nullptr) {
          *why = fmt::format("node {} applied {} of the {} entries leader {} committed{}",
                             id.value(), applied.value(), commit.value(), leader->id.value(),
                             InGroup(sharded(), group));
        }
        return false;
      }
    }
  }
  return true;
}

bool SimCluster::ExpiredKeysCollected(int64_t overdue_ms, std::string* why) const {
  if (!AllMembersCaughtUp(why)) return false;
  for (GroupId group : Groups()) {
    const Node* leader = AnyLeaderNode(group);
    const int64_t due_by = WallMs(leader->id) - overdue_ms;
    for (NodeId id : ReplicaOf(*leader, group)->raw_node().raft().config().AllIds()) {
      auto it = nodes_.find(id);
      if (it == nodes_.end()) continue;
      const cluster::Replica* rep = ReplicaOf(*it->second, group);
      if (rep == nullptr || rep->failed()) continue;
      const kv::Keyspace& ks = rep->state_machine().keyspace();
      std::vector<std::string> late = ks.Expired(due_by, 1);
      if (late.empty()) continue;
      if (why != nullptr) {
        *why =
            fmt::format("node {} still holds key '{}' that expired at {} (leader {}'s clock: {}){}",
                        id.value(), late.front(), ks.FindRaw(late.front())->expire_ms,
                        leader->id.value(), due_by + overdue_ms, InGroup(sharded(), group));
      }
      return false;
    }
  }
  return true;
}

void SimCluster::CheckConverged() {
  // After healing and settling, every live member must have applied the same prefix, and
  // nodes at the same applied index must hold the same state.
  for (GroupId group : Groups()) {
    std::map<LogIndex, std::pair<NodeId, uint64_t>> digest_at;
    for (auto& [id, n] : nodes_) {
      const cluster::Replica* rep = ReplicaOf(*n, group);
      if (rep == nullptr || rep->failed()) continue;
      const kv::StateMachine& sm = rep->state_machine();
      auto [it, inserted] = digest_at.emplace(sm.applied_index(), std::make_pair(id, sm.Digest()));
      if (!inserted && it->second.second != sm.Digest()) {
        Violate("nodes " + std::to_string(it->second.first.value()) + " and " +
                std::to_string(id.value()) + " applied up to index " +
                std::to_string(sm.applied_index().value()) + " but hold different states" +
                InGroup(sharded(), group));
      }
    }
  }
  CheckSlotsPartitioned();
}
}  // namespace synod::sim
