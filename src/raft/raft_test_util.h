// Test helpers for the Raft core: nodes over MemoryStorage that follow the Ready contract, and
// a small in-memory network that carries their messages.
//
// TestNode wraps one RawNode and plays the application: for each Ready it persists the
// snapshot, entries and hard state into its MemoryStorage, applies the snapshot and committed
// entries (membership changes through ApplyConfChange) and calls Advance, handing back the
// messages of both `messages` and `messages_after_persist`.
//
// Network owns several TestNodes and moves their messages in FIFO order, with filters that
// drop messages by link, by node or by predicate, until nothing is left to do (Stabilize).
// Every delivered message is logged so that tests can assert on the traffic.
//
// Header-only; for tests only. Thread-safety: none.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "raft/confchange.h"
#include "raft/raft.h"
#include "raft/raw_node.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace synod::raft {

// Readable gtest failure output for messages.
inline void PrintTo(const Message& m, std::ostream* os) {
  *os << "{" << MessageTypeName(m.type) << " " << m.from.value() << "->" << m.to.value()
      << " term=" << m.term.value() << " log_term=" << m.log_term.value()
      << " index=" << m.index.value() << " commit=" << m.commit.value()
      << " entries=" << m.entries.size() << (m.reject ? " reject" : "")
      << " hint=" << m.reject_hint.value() << " ctx=\"" << m.context << "\"}";
}

}  // namespace synod::raft

namespace synod::raft::test {

inline Term T(uint64_t v) { return Term(v); }
inline LogIndex I(uint64_t v) { return LogIndex(v); }
inline NodeId N(uint64_t v) { return NodeId(v); }

using ConfigFn = std::function<void(Config&)>;

// A ConfState with the given voters and learners.
inline ConfState MakeConf(std::initializer_list<uint64_t> voters,
                          std::initializer_list<uint64_t> learners = {}) {
  ConfState cs;
  for (uint64_t v : voters) cs.voters.insert(N(v));
  for (uint64_t l : learners) cs.learners.insert(N(l));
  return cs;
}

inline ConfState MakeConf(const std::vector<uint64_t>& voters,
                          const std::vector<uint64_t>& learners = {}) {
  ConfState cs;
  for (uint64_t v : voters) cs.voters.insert(N(v));
  for (uint64_t l : learners) cs.learners.insert(N(l));
  return cs;
}

// Entries with the given terms at indexes first, first+1, ...; each carries data "e<index>".
inline std::vector<Entry> EntriesWithTerms(uint64_t first, const std::vector<uint64_t>& terms) {
  std::vector<Entry> ents;
  for (size_t i = 0; i < terms.size(); ++i) {
    Entry e;
    e.index = I(first + i);
    e.term = T(terms[i]);
    e.data = "e" + std::to_string(first + i);
    ents.push_back(std::move(e));
  }
  return ents;
}

// The standard bootstrap: a snapshot at index 1, term 1, carrying `cs`; then entries 2, 3, ...
// with the given terms (non-decreasing, >= 1). The hard state defaults to term = the last
// entry's term, no vote, commit = 1; pass `hs` to override it.
inline std::unique_ptr<MemoryStorage> NewStorage(const ConfState& cs,
                                                 const std::vector<uint64_t>& terms = {},
                                                 std::optional<HardState> hs = std::nullopt) {
  auto s = std::make_unique<MemoryStorage>();
  Snapshot snap;
  snap.meta.index = I(1);
  snap.meta.term = T(1);
  snap.meta.conf_state = cs;
  EXPECT_TRUE(s->ApplySnapshot(std::move(snap)).ok());
  EXPECT_TRUE(s->Append(EntriesWithTerms(2, terms)).ok());
  if (hs.has_value()) {
    s->SetHardState(*hs);
  } else {
    s->SetHardState(HardState{T(terms.empty() ? 1 : terms.back()), kNoNode, I(1)});
  }
  return s;
}

// The configuration every test starts from: election 10 ticks, heartbeat 1, and the optional
// features (pre-vote, check-quorum) off so that each test turns on what it is about.
inline Config TestConfig(uint64_t id, const Storage* storage) {
  Config c;
  c.id = N(id);
  c.storage = storage;
  c.election_ticks = 10;
  c.heartbeat_ticks = 1;
  c.pre_vote = false;
  c.check_quorum = false;
  return c;
}

inline std::vector<Message> OfType(const std::vector<Message>& msgs, MessageType t) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == t) out.push_back(m);
  }
  return out;
}

inline size_t CountType(const std::vector<Message>& msgs, MessageType t) {
  return static_cast<size_t>(
      std::count_if(msgs.begin(), msgs.end(), [t](const Message& m) { return m.type == t; }));
}

// Whether `msgs` holds a message of type `t` sent by `from`.
inline bool SentBy(const std::vector<Message>& msgs, uint64_t from, MessageType t) {
  return std::any_of(msgs.begin(), msgs.end(),
                     [&](const Message& m) { return m.from == N(from) && m.type == t; });
}

// Messages of `msgs` sorted by recipient (for deterministic comparisons).
inline std::vector<Message> SortedByTo(std::vector<Message> msgs) {
  std::stable_sort(msgs.begin(), msgs.end(),
                   [](const Message& a, const Message& b) { return a.to < b.to; });
  return msgs;
}

inline std::vector<uint64_t> TermsOf(const std::vector<Entry>& ents) {
  std::vector<uint64_t> out;
  for (const Entry& e : ents) out.push_back(e.term.value());
  return out;
}

// One replica playing the application's part of the Ready contract.
class TestNode {
 public:
  TestNode(uint64_t id, std::unique_ptr<MemoryStorage> storage, const ConfigFn& fn = {})
      : storage_(std::move(storage)) {
    auto init = storage_->InitialState();
    EXPECT_TRUE(init.ok());
    conf_state_ = init.ok() ? init->second : ConfState{};
    // Whatever the storage holds up to its first index was applied when the snapshot was.
    applied_index_ = storage_->FirstIndex() - 1;
    config_ = TestConfig(id, storage_.get());
    if (fn) fn(config_);
    Start(LogIndex(0));
  }

  NodeId id() const { return config_.id; }
  RawNode& raw() { return *raw_; }
  const Raft& raft() const { return raw_->raft(); }
  Raft& mutable_raft() { return raw_->mutable_raft(); }
  MemoryStorage& storage() { return *storage_; }
  const Config& config() const { return config_; }
  const ConfState& conf_state() const { return conf_state_; }
  Role role() const { return raft().role(); }
  Term term() const { return raft().term(); }
  LogIndex committed() const { return raft().log().committed(); }
  LogIndex last_index() const { return raft().log().LastIndex(); }

  Status Step(Message m) { return raw_->Step(std::move(m)); }

  // Handles one Ready if there is one, appending its messages to *out (those that may be sent
  // before persisting first, then the others). Returns false when there was none.
  bool HandleReady(std::vector<Message>* out) {
    if (!raw_->HasReady()) return false;
    Ready rd = raw_->GetReady();
    ++readies_;
    // a. Messages that may go out before persistence.
    out->insert(out->end(), rd.messages.begin(), rd.messages.end());
    // b. Persist.
    if (rd.snapshot) {
      EXPECT_TRUE(storage_->ApplySnapshot(*rd.snapshot).ok());
    }
    EXPECT_TRUE(storage_->Append(rd.entries).ok());
    if (rd.hard_state) storage_->SetHardState(*rd.hard_state);
    if (rd.hard_state && rd.must_sync) synced_commit_ = rd.hard_state->commit;
    // c. Messages that rest on the persisted state.
    out->insert(out->end(), rd.messages_after_persist.begin(), rd.messages_after_persist.end());
    // d. Apply.
    if (rd.snapshot) {
      conf_state_ = rd.snapshot->meta.conf_state;
      applied_index_ = rd.snapshot->meta.index;
    }
    for (const Entry& e : rd.committed_entries) Apply(e);
    read_states.insert(read_states.end(), rd.read_states.begin(), rd.read_states.end());
    aborted_reads.insert(aborted_reads.end(), rd.aborted_reads.begin(), rd.aborted_reads.end());
    if (rd.soft_state) soft_states.push_back(*rd.soft_state);
    // e. Advance.
    raw_->Advance(rd);
    return true;
  }

  // Handles every Ready until none is left; returns their messages.
  std::vector<Message> Drain() {
    std::vector<Message> out;
    for (int i = 0; i < kReadyRoundsMax && HandleReady(&out); ++i) {
    }
    EXPECT_FALSE(raw_->HasReady()) << "node " << id().value() << " never quiesced";
    return out;
  }

  // Restarts the node from its storage, as after a crash: volatile state is lost and the
  // state machine restarts from the storage's snapshot (MemoryStorage keeps the membership
  // only there), so committed entries after it are applied again. The history of applied
  // entries is cut back to the snapshot accordingly.
  void Restart() {
    auto snap = storage_->GetSnapshot();
    EXPECT_TRUE(snap.ok());
    const LogIndex snap_index = storage_->FirstIndex() - 1;
    conf_state_ = snap.ok() ? snap->meta.conf_state : ConfState{};
    applied_index_ = snap_index;
    std::erase_if(applied, [&](const Entry& e) { return e.index > snap_index; });
    applied_data.clear();
    for (const Entry& e : applied) {
      if (e.type == EntryType::kNormal && !e.data.empty()) applied_data.push_back(e.data);
    }
    Start(applied_index_);
  }

  // Takes a snapshot of the state up to the applied index and discards the log before it.
  void CompactTo(LogIndex index) {
    ASSERT_LE(index, applied_index_);
    auto snap =
        storage_->CreateSnapshot(index, &conf_state_, "snap@" + std::to_string(index.value()));
    ASSERT_TRUE(snap.ok());
    ASSERT_TRUE(storage_->Compact(index).ok());
  }

  LogIndex applied_index() const { return applied_index_; }
  // The commit index of the last hard state written with must_sync: a crash cannot lose it,
  // while a newer commit index written without sync may be lost.
  LogIndex synced_commit() const { return synced_commit_; }
  int readies() const { return readies_; }

  // What the application saw.
  std::vector<Entry> applied;             // every committed entry applied, in order
  std::vector<std::string> applied_data;  // the data of non-empty normal entries
  std::vector<ReadState> read_states;
  std::vector<std::string> aborted_reads;
  std::vector<SoftState> soft_states;
  std::vector<Status> conf_change_errors;

 private:
  static constexpr int kReadyRoundsMax = 1000;

  void Start(LogIndex applied) {
    Config c = config_;
    c.applied = applied;
    auto r = RawNode::Create(c);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    raw_ = std::move(r).value();
  }

  void Apply(const Entry& e) {
    EXPECT_EQ(e.index, applied_index_ + 1) << "committed entries must be applied in order";
    applied_index_ = e.index;
    applied.push_back(e);
    if (e.type == EntryType::kConfChange) {
      auto cc = ConfChange::Decode(e.data);
      ASSERT_TRUE(cc.ok());
      auto cs = raw_->ApplyConfChange(*cc);
      if (cs.ok()) {
        conf_state_ = *cs;
      } else {
        conf_change_errors.push_back(cs.status());
      }
    } else if (!e.data.empty()) {
      applied_data.push_back(e.data);
    }
  }

  std::unique_ptr<MemoryStorage> storage_;
  Config config_;
  std::unique_ptr<RawNode> raw_;
  ConfState conf_state_;
  LogIndex applied_index_;
  LogIndex synced_commit_;
  int readies_ = 0;
};

// A network of TestNodes. Messages are queued in FIFO order when nodes hand them out and are
// stepped into their recipients by Deliver/Stabilize, unless a filter drops them.
class Network {
 public:
  Network() = default;
  // Voters `ids` (and learners), all bootstrapped with the same ConfState.
  explicit Network(std::vector<uint64_t> ids, const ConfigFn& fn = {},
                   std::vector<uint64_t> learners = {}) {
    ConfState cs = MakeConf(ids, learners);
    for (uint64_t id : ids) Add(std::make_unique<TestNode>(id, NewStorage(cs), fn));
    for (uint64_t id : learners) Add(std::make_unique<TestNode>(id, NewStorage(cs), fn));
  }

  void Add(std::unique_ptr<TestNode> n) {
    uint64_t id = n->id().value();
    nodes_[id] = std::move(n);
  }
  void Remove(uint64_t id) { nodes_.erase(id); }
  bool Has(uint64_t id) const { return nodes_.count(id) != 0; }
  TestNode& node(uint64_t id) {
    EXPECT_TRUE(Has(id)) << "no node " << id;
    return *nodes_.at(id);
  }
  RawNode& raw(uint64_t id) { return node(id).raw(); }
  std::vector<uint64_t> ids() const {
    std::vector<uint64_t> out;
    for (const auto& [id, n] : nodes_) out.push_back(id);
    return out;
  }

  // --- Filters ---
  // Drops every message from `from` to `to` (one direction).
  void DropLink(uint64_t from, uint64_t to) { dropped_links_.insert({from, to}); }
  // Drops every message between a and b (both directions).
  void Cut(uint64_t a, uint64_t b) {
    DropLink(a, b);
    DropLink(b, a);
  }
  // Cuts `id` off from every other node.
  void Isolate(uint64_t id) {
    for (const auto& [other, n] : nodes_) {
      if (other != id) Cut(id, other);
    }
  }
  void DropType(MessageType t) { dropped_types_.insert(t); }
  void DropIf(std::function<bool(const Message&)> pred) { drop_preds_.push_back(std::move(pred)); }
  // Removes every filter.
  void Recover() {
    dropped_links_.clear();
    dropped_types_.clear();
    drop_preds_.clear();
  }

  // --- Traffic ---
  // Lets every node hand out its Readies; their messages join the queue.
  void Collect() {
    for (auto& [id, n] : nodes_) {
      std::vector<Message> out = n->Drain();
      pending_.insert(pending_.end(), out.begin(), out.end());
    }
  }
  // Removes and returns the queued messages without delivering them.
  std::vector<Message> TakePending() {
    std::vector<Message> out;
    out.swap(pending_);
    return out;
  }
  // Collects, then removes and returns every queued message without delivering it.
  std::vector<Message> CollectAndTake() {
    Collect();
    return TakePending();
  }
  // Delivers one message now (subject to the filters). Returns whether it was delivered.
  bool Deliver(const Message& m) {
    if (IsDropped(m) || !Has(m.to.value())) {
      Lose(m);
      return false;
    }
    delivered.push_back(m);
    Status s = node(m.to.value()).Step(m);
    if (!s.ok()) step_errors.push_back(s);
    ReportSnapshot(m, SnapshotStatus::kFinish);
    return true;
  }
  // Records that `m` was lost (by a filter or by the caller).
  void Lose(const Message& m) {
    dropped.push_back(m);
    ReportSnapshot(m, SnapshotStatus::kFailure);
  }
  void Deliver(const std::vector<Message>& msgs) {
    for (const Message& m : msgs) Deliver(m);
  }
  // Enqueues messages and runs until quiescent.
  void Send(const std::vector<Message>& msgs) {
    pending_.insert(pending_.end(), msgs.begin(), msgs.end());
    Stabilize();
  }
  void Send(const Message& m) { Send(std::vector<Message>{m}); }

  // Collects and delivers until no node has anything to do and no message is queued.
  void Stabilize() {
    for (int round = 0; round < kRoundsMax; ++round) {
      Collect();
      if (pending_.empty()) return;
      std::vector<Message> batch = TakePending();
      Deliver(batch);
    }
    ADD_FAILURE() << "the network did not quiesce within " << kRoundsMax << " rounds";
  }

  // --- Driving ---
  Status Campaign(uint64_t id) {
    Status s = raw(id).Campaign();
    Stabilize();
    return s;
  }
  Status Propose(uint64_t id, std::string data) {
    Status s = raw(id).Propose(std::move(data));
    Stabilize();
    return s;
  }
  // Ticks one node `n` times, stabilizing after each tick.
  void Tick(uint64_t id, int n = 1) {
    for (int i = 0; i < n; ++i) {
      raw(id).Tick();
      Stabilize();
    }
  }
  // Ticks every node `n` times, stabilizing after each round.
  void TickAll(int n = 1) {
    for (int i = 0; i < n; ++i) {
      for (auto& [id, node] : nodes_) node->raw().Tick();
      Stabilize();
    }
  }

  // The leader of the highest term, or 0 if none.
  uint64_t Leader() const {
    uint64_t leader = 0;
    Term best;
    for (const auto& [id, n] : nodes_) {
      if (n->role() == Role::kLeader && (leader == 0 || n->term() > best)) {
        leader = id;
        best = n->term();
      }
    }
    return leader;
  }

  void ClearLog() {
    delivered.clear();
    dropped.clear();
    step_errors.clear();
  }

  std::vector<Message> delivered;
  std::vector<Message> dropped;
  std::vector<Status> step_errors;
  // When set, the sender of a snapshot hears whether it arrived, as a transport would report
  // (RawNode::ReportSnapshot). Off by default so that tests can report by hand.
  bool report_snapshots = false;

 private:
  void ReportSnapshot(const Message& m, SnapshotStatus status) {
    if (report_snapshots && m.type == MessageType::kSnap && Has(m.from.value())) {
      node(m.from.value()).raw().ReportSnapshot(m.to, status);
    }
  }

  static constexpr int kRoundsMax = 10000;

  bool IsDropped(const Message& m) const {
    if (dropped_links_.count({m.from.value(), m.to.value()})) return true;
    if (dropped_types_.count(m.type)) return true;
    for (const auto& pred : drop_preds_) {
      if (pred(m)) return true;
    }
    return false;
  }

  std::map<uint64_t, std::unique_ptr<TestNode>> nodes_;
  std::vector<Message> pending_;
  std::set<std::pair<uint64_t, uint64_t>> dropped_links_;
  std::set<MessageType> dropped_types_;
  std::vector<std::function<bool(const Message&)>> drop_preds_;
};

// --- Building single-node scenarios (paper tests) ---

// A message of type `t` from `from` to `to` in `term`.
inline Message Msg(MessageType t, uint64_t from, uint64_t to, uint64_t term = 0) {
  Message m;
  m.type = t;
  m.from = N(from);
  m.to = N(to);
  m.term = T(term);
  return m;
}

// The positive answer a follower would give to a leader's append: it acknowledges the last
// entry sent.
inline Message AcceptAppend(const Message& app) {
  Message r = Msg(MessageType::kAppResp, app.to.value(), app.from.value(), app.term.value());
  r.index = app.entries.empty() ? app.index : app.entries.back().index;
  r.sent_tick = app.sent_tick;
  return r;
}

// Makes `n` (a voter of a group of several) leader of the next term: it campaigns and
// receives the votes of the given peers. Drains its Readies, so its no-op is persisted.
inline void ElectWithVotes(TestNode& n, const std::vector<uint64_t>& voters) {
  ASSERT_TRUE(n.raw().Campaign().ok());
  n.Drain();
  const Role role = n.role();
  Term term = n.term();
  // With pre-vote, answer the pre-vote round first.
  if (role == Role::kPreCandidate) {
    for (uint64_t v : voters) {
      ASSERT_TRUE(n.Step(Msg(MessageType::kPreVoteResp, v, n.id().value(), term.value() + 1)).ok());
    }
    n.Drain();
    term = n.term();
  }
  for (uint64_t v : voters) {
    if (n.role() != Role::kCandidate) break;
    ASSERT_TRUE(n.Step(Msg(MessageType::kVoteResp, v, n.id().value(), term.value())).ok());
  }
  ASSERT_EQ(n.role(), Role::kLeader);
}

}  // namespace synod::raft::test
