// Raft: the consensus core of one replica of one group, as a pure state machine.
//
// It does no I/O, reads no clock and starts no thread. Time is the number of Tick() calls.
// Inputs are Step(message), Tick() and the proposal/read/transfer requests; outputs are
// messages, entries to persist and committed entries, collected by RawNode into a Ready.
// Randomness (election timeouts) comes from a PRNG seeded by Config::random_seed, so a run is
// reproducible from its seed.
//
// The protocol follows the Raft thesis (Ongaro 2014) and etcd's implementation:
//  - elections with randomized timeouts (§3.4), pre-vote (§9.6), check-quorum (§6.2);
//  - log replication with fast conflict backtracking and per-follower flow control;
//  - commitment only of current-term entries by counting (§3.6.2, Figure 3.7);
//  - leadership transfer (§3.10), ReadIndex and lease reads (§6.4);
//  - joint consensus membership changes and learners (§4.3), snapshots (§5).
//
// Roles are distinct types held in a std::variant: leader-only state (progress of every
// follower, pending reads, transfer target) exists only inside LeaderRole.
//
// Thread-safety: none. One Raft is owned by one RawNode, driven by one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "raft/confchange.h"
#include "raft/progress.h"
#include "raft/quorum.h"
#include "raft/raft_log.h"
#include "raft/read_only.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace synod::raft {

enum class ReadOnlyOption : uint8_t {
  // ReadIndex: confirm leadership with a heartbeat round per batch of reads. Safe whatever
  // the clocks do.
  kSafe,
  // Lease: serve reads without a round trip while a quorum acknowledged the leader within
  // the last election timeout, less the clock-drift bound. Requires check_quorum. Falls back
  // to kSafe when the lease has lapsed.
  kLeaseBased,
};

struct Config {
  // This replica's id. REQUIRES: != kNoNode.
  NodeId id;
  // Ticks without hearing from a leader before a follower campaigns. The effective timeout is
  // drawn uniformly from [election_ticks, 2*election_ticks) after every reset, which makes
  // split votes rare. REQUIRES: > heartbeat_ticks.
  int election_ticks = 10;
  // Ticks between leader heartbeats. Default 1.
  int heartbeat_ticks = 1;
  // The durable log. Not owned; must outlive the Raft. REQUIRES: non-null.
  const Storage* storage = nullptr;
  // The last index the state machine applied before a restart (0 on first start): committed
  // entries up to here are not handed out again.
  LogIndex applied;
  // The largest payload of one append message (at least one entry is always sent). Smaller
  // values make recovery gentler; larger ones batch more. Default 1 MiB.
  uint64_t max_msg_bytes = 1 << 20;
  // The largest payload of committed entries in one Ready. Default 64 MiB.
  uint64_t max_committed_bytes_per_ready = 64ull << 20;
  // Bound on the payload of appended but not yet committed entries on a leader: a leader cut
  // off from its quorum refuses proposals past it instead of growing without limit. 0 means
  // unbounded. Default 64 MiB.
  uint64_t max_uncommitted_bytes = 64ull << 20;
  // In-flight append window per follower, in messages and in payload bytes (0 = unbounded).
  size_t max_inflight_msgs = 256;
  uint64_t max_inflight_bytes = 32ull << 20;
  // A leader that has not heard from a quorum within an election timeout steps down, and
  // followers that heard from a leader within an election timeout ignore vote requests.
  bool check_quorum = true;
  // Pre-vote: a node first asks whether it could win before bumping its term, so a node
  // rejoining after a partition does not disrupt a stable leader.
  bool pre_vote = true;
  ReadOnlyOption read_only_option = ReadOnlyOption::kSafe;
  // ReadIndex rounds the leader keeps out at once (each one heartbeat to every follower).
  // Requests arriving while this many are out wait for one to complete and go together in the
  // next. More rounds shorten a read's wait at the cost of more heartbeats. REQUIRES: >= 1.
  size_t max_read_rounds_in_flight = 8;
  // The most ticks by which any follower's clock may run ahead of the leader's over one
  // election timeout. The lease lasts election_ticks - lease_clock_drift_ticks after the newest
  // quorum-acknowledged heartbeat. REQUIRES: < election_ticks.
  int lease_clock_drift_ticks = 2;
  // Followers drop proposals instead of forwarding them to the leader.
  bool disable_proposal_forwarding = false;
  // A planted bug for the simulator to catch: commit entries of earlier terms by counting
  // replicas (Raft Figure 8). Never set outside tests.
  bool testing_bug_commit_old_term = false;
  // Seeds the election-timeout PRNG. 0 means "derive from id".
  uint64_t random_seed = 0;
  Logger logger;

  Status Validate() const;
};

// A snapshot of a node's state for status reports and tests.
struct RaftStatus {
  NodeId id;
  HardState hard_state;
  SoftState soft_state;
  LogIndex applied;
  LogIndex last_index;
  MembershipConfig config;
  NodeId lead_transferee;
  std::map<NodeId, Progress> progress;  // leader only
};

class Raft {
 public:
  // REQUIRES: config.Validate().ok() (checked by RawNode::Create).
  explicit Raft(const Config& config);

  // Feeds one message (network or local). Errors: kProposalDropped (no leader, transfer in
  // progress, removed leader), kResourceExhausted (uncommitted log bound),
  // kFailedPrecondition (a membership change is already pending), kInvalidArgument.
  Status Step(Message m);
  // As Step, on a message the caller gives up: m is consumed in place (its entries may be
  // moved out), which saves moving the whole message into a parameter.
  Status StepInPlace(Message& m);
  // Advances logical time by one tick.
  void Tick();

  // Applies a committed membership change. Returns the new ConfState, or kInvalidArgument
  // (the configuration is left unchanged) if the change is not valid against the current one.
  Result<ConfState> ApplyConfChange(const ConfChange& cc);

  // Called by RawNode when the application persisted entries up to (index, term) and/or a
  // snapshot, and applied committed entries up to `applied`.
  void OnPersisted(LogIndex index, Term term);
  void OnSnapshotPersisted(LogIndex index);
  void OnApplied(LogIndex applied);
  // Called when committed entries with this much payload were handed to the application.
  void ReduceUncommittedBytes(uint64_t bytes);

  // Output queues, drained by RawNode.
  std::vector<Message>& msgs() { return msgs_; }
  std::vector<Message>& msgs_after_persist() { return msgs_after_persist_; }
  std::vector<ReadState>& read_states() { return read_states_; }
  std::vector<std::string>& aborted_reads() { return aborted_reads_; }
  bool HasPendingOutput() const {
    const LeaderRole* l = leader();
    return !msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty() ||
           !aborted_reads_.empty() || (l != nullptr && l->read_round_due);
  }
  // Called by RawNode as it builds a Ready: starts the ReadIndex confirmation round that
  // requests queued since the last Ready are waiting for (one heartbeat per follower carrying
  // the newest request's context), unless one is out already.
  void FlushReadRound();

  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId lead() const { return lead_; }
  Role role() const;
  HardState hard_state() const { return {term_, vote_, log_.committed()}; }
  SoftState soft_state() const { return {lead_, role()}; }
  const RaftLog& log() const { return log_; }
  RaftLog& mutable_log() { return log_; }
  const MembershipConfig& config() const { return config_; }
  RaftStatus GetStatus() const;
  // Leader only: the follower's progress, or nullptr.
  const Progress* progress(NodeId id) const;
  // Whether this node is a voter of its current configuration (learners and removed nodes
  // never campaign).
  bool Promotable() const;
  // Whether committed entries not yet applied hold a membership change. Such a node does not
  // campaign: its configuration may be more than one change behind, and a quorum of an old
  // configuration need not overlap one of the current configuration.
  bool HasUnappliedConfChanges() const;
  // The number of ticks the randomized election timeout is set to now (for tests).
  int randomized_election_ticks() const { return randomized_election_ticks_; }

 private:
  struct FollowerRole {};
  struct PreCandidateRole {
    std::map<NodeId, bool> votes;
  };
  struct CandidateRole {
    std::map<NodeId, bool> votes;
  };
  struct LeaderRole {
    // Every member (voters of both halves and learners), this node included.
    std::map<NodeId, Progress> progress;
    ReadOnlyQueue read_only;
    // ReadIndex requests that arrived before the first commit of this term (§6.4: the leader
    // must know the commit index of its own term before it can serve reads).
    std::vector<Message> pending_reads;
    NodeId lead_transferee;  // kNoNode unless a transfer is in progress
    // Index of the newest membership change proposed; a new one is refused until the state
    // machine applied past it (one change at a time).
    LogIndex pending_conf_index;
    uint64_t uncommitted_bytes = 0;  // payload appended but not yet handed out as committed
    int heartbeat_elapsed = 0;
    // After sending TimeoutNow the target may win an election at any later time, ignoring
    // followers' leases, so this leader may not serve lease reads again in this term.
    bool lease_revoked = false;
    // ReadIndex rounds (heartbeats carrying a read's context): at most
    // Config::max_read_rounds_in_flight out at a time. Requests arriving while that many are
    // out wait until one completes (or for the next heartbeat, which carries the newest
    // context): reads from several followers share rounds instead of each paying for one.
    bool read_round_due = false;  // a round is to start at the next Ready
    // The context each round out carried (the newest request's when it was sent), oldest
    // first; a round leaves when the request of its context is released.
    std::deque<std::string> read_rounds_out;
  };
  using RoleState = std::variant<FollowerRole, PreCandidateRole, CandidateRole, LeaderRole>;
  enum class CampaignType : uint8_t { kPreElection, kElection, kTransfer };

  // raft.cc: term changes, elections, followers and candidates.
  Status StepByTerm(const Message& m, bool& handled);
  void HandleVoteRequest(const Message& m);
  Status StepFollower(Message& m);
  Status StepCandidate(Message& m);
  void BecomeFollower(Term term, NodeId lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(Term term);
  void Hup(CampaignType t);
  void Campaign(CampaignType t);
  VoteResult Poll(NodeId from, MessageType t, bool granted);
  void TickElection();
  void TickHeartbeat();
  void ResetRandomizedElectionTimeout();
  bool PastElectionTimeout() const;
  void HandleAppendEntries(Message& m);  // moves m.entries into the log
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  bool Restore(const Snapshot& snap);
  void SwitchToConfig(MembershipConfig cfg);
  void AbortReads();
  void Send(Message&& m);  // by rvalue: a message is moved once, into its queue
  uint64_t NextRandom();

  // raft_leader.cc: replication, commitment, reads, transfers.
  Status StepLeader(LeaderRole& l, Message& m);
  Status LeaderPropose(LeaderRole& l, Message& m);
  void LeaderAppResp(LeaderRole& l, const Message& m);
  void LeaderHeartbeatResp(LeaderRole& l, const Message& m);
  Status LeaderTransfer(LeaderRole& l, const Message& m);
  void LeaderReadIndex(LeaderRole& l, const Message& m);
  void ServeReadIndex(LeaderRole& l, const Message& m);
  void RespondToRead(const ReadRequest& req, LogIndex index);
  bool AppendEntries(LeaderRole& l, std::vector<Entry>& ents);
  bool MaybeSendAppend(LeaderRole& l, NodeId to, bool send_if_empty);
  void SendSnapshot(LeaderRole& l, NodeId to, Progress& pr);
  void BroadcastAppend(LeaderRole& l);
  void BroadcastHeartbeat(LeaderRole& l, const std::string& context);
  void SendHeartbeat(LeaderRole& l, NodeId to, const std::string& context);
  void SendTimeoutNow(LeaderRole& l, NodeId to);
  bool MaybeCommit(LeaderRole& l);
  void ReleasePendingReads(LeaderRole& l);
  // On a heartbeat response (at most once per tick per follower): unpause the follower's flow
  // and resend what it may be missing.
  void RetryAppends(LeaderRole& l, NodeId to, Progress& pr);
  // A ReadIndex round is due when a pending request is not covered by a round out and fewer
  // than max_read_rounds_in_flight are out.
  void UpdateReadRoundDue(LeaderRole& l);
  bool QuorumActive(LeaderRole& l) const;
  bool LeaseValid(const LeaderRole& l) const;
  bool CommittedInCurrentTerm() const;
  void AbortLeaderTransfer(LeaderRole& l);
  void SyncProgressWithConfig(LeaderRole& l);

  LeaderRole* leader() { return std::get_if<LeaderRole>(&role_); }
  const LeaderRole* leader() const { return std::get_if<LeaderRole>(&role_); }

  const NodeId id_;
  const Config cfg_;
  Logger logger_;

  // Persistent state (HardState). Invariant: term_ never decreases; vote_ is reset only when
  // term_ increases.
  Term term_;
  NodeId vote_;
  RaftLog log_;

  MembershipConfig config_;
  RoleState role_;
  NodeId lead_;

  // Ticks since the last election timeout reset (followers/candidates) or since the last
  // check-quorum round (leaders).
  int election_elapsed_ = 0;
  int randomized_election_ticks_ = 0;
  // Logical time: every Tick() adds one. Used for lease reads only.
  uint64_t tick_now_ = 0;
  uint64_t rng_state_;

  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;
  std::vector<std::string> aborted_reads_;
};

}  // namespace synod::raft
