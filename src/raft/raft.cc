// The Raft core: term handling, elections, and the follower and candidate roles.
// The leader's half lives in raft_leader.cc.
#include "raft/raft.h"

#include <algorithm>

#include "common/assert.h"

namespace synod::raft {

namespace {

constexpr const char* kCampaignTransfer = "transfer";

// Messages whose promise rests only on the leader's own log, which §10.2.1 allows to be in
// flight before that log is durable (see Ready::messages).
bool SendableBeforePersist(MessageType t) {
  switch (t) {
    case MessageType::kApp:
    case MessageType::kSnap:
    case MessageType::kHeartbeat:
    case MessageType::kTimeoutNow:
    case MessageType::kReadIndexResp:
      return true;
    default:
      return false;
  }
}

// Scrambles a node id into a PRNG seed (the splitmix64 finalizer). splitmix64 walks the
// lattice state += golden ratio, so seeding node k with golden*k (or any k-multiple of the
// step) would give every node the same sequence shifted by k draws: nodes whose draw counts
// line up then pick identical election timeouts and split their votes again and again.
uint64_t SeedFromId(uint64_t id) {
  uint64_t z = id + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

MessageType VoteRespType(MessageType t) {
  SYNOD_ASSERT(t == MessageType::kVote || t == MessageType::kPreVote);
  return t == MessageType::kVote ? MessageType::kVoteResp : MessageType::kPreVoteResp;
}

}  // namespace

Status Config::Validate() const {
  if (id == kNoNode) return Status::InvalidArgument("raft: id must not be 0");
  if (heartbeat_ticks <= 0) return Status::InvalidArgument("raft: heartbeat_ticks must be > 0");
  if (election_ticks <= heartbeat_ticks) {
    return Status::InvalidArgument("raft: election_ticks must be greater than heartbeat_ticks");
  }
  if (storage == nullptr) return Status::InvalidArgument("raft: storage must be set");
  if (max_inflight_msgs == 0) return Status::InvalidArgument("raft: max_inflight_msgs must be > 0");
  if (max_read_rounds_in_flight == 0) {
    return Status::InvalidArgument("raft: max_read_rounds_in_flight must be > 0");
  }
  if (read_only_option == ReadOnlyOption::kLeaseBased && !check_quorum) {
    return Status::InvalidArgument("raft: lease-based reads require check_quorum");
  }
  if (lease_clock_drift_ticks < 0 || lease_clock_drift_ticks >= election_ticks) {
    return Status::InvalidArgument("raft: lease_clock_drift_ticks must be in [0, election_ticks)");
  }
  return Status::Ok();
}

Raft::Raft(const Config& config)
    : id_(config.id),
      cfg_(config),
      logger_(config.logger.With(fmt::format("raft={} ", config.id.value()))),
      log_(config.storage, config.max_committed_bytes_per_ready, logger_),
      role_(FollowerRole{}),
      rng_state_(config.random_seed != 0 ? config.random_seed : SeedFromId(config.id.value())) {
  SYNOD_ASSERT(cfg_.Validate().ok());
  auto init = cfg_.storage->InitialState();
  SYNOD_ASSERT_MSG(init.ok(), "raft: storage failed to return its initial state");
  const auto& [hs, cs] = init.value();
  auto membership = MembershipConfig::FromConfState(cs);
  SYNOD_ASSERT_MSG(membership.ok(), "raft: storage holds an invalid ConfState");
  config_ = std::move(membership).value();
  if (!hs.IsEmpty()) {
    // A commit index beyond the log would mean the storage lost entries it acknowledged
    // (RawNode::Create refuses such storage). One below the snapshot is fine: a crash may keep
    // a received snapshot but tear off the hard state written after it, and a snapshot only
    // ever holds committed entries.
    SYNOD_ASSERT_MSG(hs.commit <= log_.LastIndex(), "raft: persisted commit index beyond the log");
    if (hs.commit > log_.committed()) log_.CommitTo(hs.commit);
    term_ = hs.term;
    vote_ = hs.vote;
  }
  // The application applies only committed entries, so whatever it applied was committed,
  // even when the commit index, written lazily (Ready::must_sync), did not reach the disk.
  SYNOD_ASSERT_MSG(cfg_.applied <= log_.LastIndex(), "raft: applied index beyond the log");
  if (cfg_.applied > log_.committed()) log_.CommitTo(cfg_.applied);
  if (cfg_.applied > LogIndex(0)) log_.AppliedTo(cfg_.applied);
  BecomeFollower(term_, kNoNode);
  logger_.Info("event=start term={} commit={} applied={} last_index={} config=\"{}\"",
               term_.value(), log_.committed().value(), log_.applied().value(),
               log_.LastIndex().value(), config_.ToString());
}

Role Raft::role() const {
  switch (role_.index()) {
    case 0:
      return Role::kFollower;
    case 1:
      return Role::kPreCandidate;
    case 2:
      return Role::kCandidate;
    default:
      return Role::kLeader;
  }
}

const Progress* Raft::progress(NodeId id) const {
  const LeaderRole* l = leader();
  if (l == nullptr) return nullptr;
  auto it = l->progress.find(id);
  return it == l->progress.end() ? nullptr : &it->second;
}

RaftStatus Raft::GetStatus() const {
  RaftStatus s;
  s.id = id_;
  s.hard_state = hard_state();
  s.soft_state = soft_state();
  s.applied = log_.applied();
  s.last_index = log_.LastIndex();
  s.config = config_;
  if (const LeaderRole* l = leader()) {
    s.lead_transferee = l->lead_transferee;
    s.progress = l->progress;
  }
  return s;
}

bool Raft::Promotable() const {
  return config_.voters.Contains(id_) && !config_.IsLearner(id_) && !log_.HasPendingSnapshot();
}

uint64_t Raft::NextRandom() {
  // splitmix64: tiny, fast and good enough to spread election timeouts; seeded per node.
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_ticks_ =
      cfg_.election_ticks +
      static_cast<int>(NextRandom() % static_cast<uint64_t>(cfg_.election_ticks));
}

bool Raft::PastElectionTimeout() const { return election_elapsed_ >= randomized_election_ticks_; }

void Raft::Send(Message&& m) {
  // A forwarded request keeps its origin (a forwarded transfer names the transferee).
  if (m.from == kNoNode) m.from = id_;
  if (m.type == MessageType::kVote || m.type == MessageType::kVoteResp ||
      m.type == MessageType::kPreVote || m.type == MessageType::kPreVoteResp) {
    // Vote traffic carries an explicit term: a pre-vote asks about term+1, and a granted
    // response echoes the term asked about.
    SYNOD_ASSERT_MSG(m.term != Term(0), "raft: vote message without a term");
  } else if (m.type == MessageType::kProp || m.type == MessageType::kReadIndex) {
    // Forwarded requests are not bound to a term: the leader accepts them in any term.
    m.term = Term(0);
  } else {
    SYNOD_ASSERT(m.term == Term(0));
    m.term = term_;
  }
  SYNOD_ASSERT(m.to != id_);
  if (SendableBeforePersist(m.type)) {
    msgs_.push_back(std::move(m));
  } else {
    msgs_after_persist_.push_back(std::move(m));
  }
}

void Raft::Reset(Term term) {
  if (term_ != term) {
    SYNOD_ASSERT_MSG(term > term_, "raft: term must never decrease");
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
}

void Raft::AbortReads() {
  LeaderRole* l = leader();
  if (l == nullptr) return;
  for (const ReadRequest& r : l->read_only.Clear()) {
    if (r.from == id_) aborted_reads_.push_back(r.context);
  }
  for (const Message& m : l->pending_reads) {
    if (m.from == id_ || m.from == kNoNode) aborted_reads_.push_back(m.context);
  }
  l->pending_reads.clear();
}

void Raft::BecomeFollower(Term term, NodeId lead) {
  AbortReads();
  Reset(term);
  role_ = FollowerRole{};
  lead_ = lead;
  logger_.Debug("event=become_follower term={} lead={}", term_.value(), lead_.value());
}

void Raft::BecomePreCandidate() {
  SYNOD_ASSERT_MSG(!leader(), "raft: invalid transition leader -> pre-candidate");
  // A pre-candidate keeps its term and vote: the whole point of pre-vote (§9.6) is that a
  // node which cannot win does not disturb the cluster by raising its term.
  role_ = PreCandidateRole{};
  lead_ = kNoNode;
  logger_.Debug("event=become_pre_candidate term={}", term_.value());
}

void Raft::BecomeCandidate() {
  SYNOD_ASSERT_MSG(!leader(), "raft: invalid transition leader -> candidate");
  Reset(term_ + 1);
  vote_ = id_;
  role_ = CandidateRole{};
  logger_.Debug("event=become_candidate term={}", term_.value());
}

void Raft::BecomeLeader() {
  SYNOD_ASSERT_MSG(role() == Role::kCandidate, "raft: only a candidate becomes leader");
  Reset(term_);
  lead_ = id_;
  LeaderRole l;
  // Entries below the unstable offset are durable; the leader counts itself only for those
  // (its newer entries are counted when Advance reports them persisted).
  LogIndex persisted = std::min(log_.unstable().offset() - 1, log_.LastIndex());
  if (log_.HasPendingSnapshot()) persisted = LogIndex(0);
  for (NodeId id : config_.AllIds()) {
    Progress pr(log_.LastIndex() + 1, cfg_.max_inflight_msgs, cfg_.max_inflight_bytes,
                config_.IsLearner(id));
    if (id == id_) {
      pr.match = persisted;
      pr.next = log_.LastIndex() + 1;
      pr.BecomeReplicate();
      pr.next = log_.LastIndex() + 1;
      pr.recent_active = true;
    }
    l.progress.emplace(id, std::move(pr));
  }
  // Conservatively assume the log's tail may hold an unapplied membership change.
  l.pending_conf_index = log_.LastIndex();
  role_ = std::move(l);
  LeaderRole& lr = std::get<LeaderRole>(role_);
  // The empty entry of the new term lets the leader commit, and so learn the commit index of
  // its term, without waiting for a client (§3.6.2, §6.4).
  std::vector<Entry> noop(1);
  bool ok = AppendEntries(lr, noop);
  SYNOD_ASSERT_MSG(ok, "raft: the leader's first empty entry must never be refused");
  logger_.Info("event=become_leader term={} last_index={}", term_.value(),
               log_.LastIndex().value());
}

bool Raft::HasUnappliedConfChanges() const {
  if (log_.applied() >= log_.committed()) return false;
  auto ents = log_.Slice(log_.applied() + 1, log_.committed() + 1, UINT64_MAX);
  if (!ents.ok()) return false;  // compacted: nothing unapplied there can be looked at
  for (const Entry& e : ents.value()) {
    if (e.type == EntryType::kConfChange) return true;
  }
  return false;
}

void Raft::Hup(CampaignType t) {
  if (leader()) return;
  if (!Promotable()) {
    logger_.Debug("event=ignore_hup reason=not_promotable");
    return;
  }
  // Campaigning before applying a committed membership change could use the wrong quorum.
  if (HasUnappliedConfChanges()) {
    logger_.Warn("event=ignore_hup reason=unapplied_conf_change applied={} commit={}",
                 log_.applied().value(), log_.committed().value());
    return;
  }
  logger_.Info("event=campaign term={} type={}", term_.value(),
               t == CampaignType::kPreElection ? "pre-election"
               : t == CampaignType::kElection  ? "election"
                                               : "transfer");
  Campaign(t);
}

void Raft::Campaign(CampaignType t) {
  Term vote_term;
  MessageType vote_type;
  if (t == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_type = MessageType::kPreVote;
    vote_term = term_ + 1;  // asked about, not adopted
  } else {
    BecomeCandidate();
    vote_type = MessageType::kVote;
    vote_term = term_;
  }
  if (Poll(id_, VoteRespType(vote_type), true) == VoteResult::kWon) {
    // A single-voter group wins on its own vote.
    if (t == CampaignType::kPreElection) {
      Campaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (NodeId id : config_.voters.Ids()) {
    if (id == id_) continue;
    Message m;
    m.type = vote_type;
    m.to = id;
    m.term = vote_term;
    m.index = log_.LastIndex();
    m.log_term = log_.LastTerm();
    if (t == CampaignType::kTransfer) m.context = kCampaignTransfer;
    Send(std::move(m));
  }
}

VoteResult Raft::Poll(NodeId from, MessageType t, bool granted) {
  std::map<NodeId, bool>* votes = nullptr;
  if (auto* p = std::get_if<PreCandidateRole>(&role_)) votes = &p->votes;
  if (auto* c = std::get_if<CandidateRole>(&role_)) votes = &c->votes;
  SYNOD_ASSERT(votes != nullptr);
  logger_.Debug("event=poll from={} type={} granted={}", from.value(), MessageTypeName(t), granted);
  votes->emplace(from, granted);  // a node's first answer counts; duplicates are ignored
  return config_.voters.Vote(*votes);
}

void Raft::Tick() {
  ++tick_now_;
  if (leader()) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  ++election_elapsed_;
  if (Promotable() && PastElectionTimeout()) {
    election_elapsed_ = 0;
    Message m;
    m.type = MessageType::kHup;
    m.from = id_;
    (void)Step(std::move(m));
  }
}

void Raft::TickHeartbeat() {
  LeaderRole& l = *leader();
  ++l.heartbeat_elapsed;
  ++election_elapsed_;
  if (election_elapsed_ >= cfg_.election_ticks) {
    election_elapsed_ = 0;
    if (cfg_.check_quorum) {
      Message m;
      m.type = MessageType::kCheckQuorum;
      m.from = id_;
      (void)Step(std::move(m));
    }
    // A transfer that has not finished within an election timeout is abandoned, so that the
    // leader serves proposals again.
    if (LeaderRole* still = leader(); still != nullptr && still->lead_transferee != kNoNode) {
      logger_.Info("event=transfer_aborted transferee={} reason=timeout",
                   still->lead_transferee.value());
      AbortLeaderTransfer(*still);
    }
  }
  LeaderRole* lp = leader();
  if (lp == nullptr) return;  // stepped down by check-quorum
  if (lp->heartbeat_elapsed >= cfg_.heartbeat_ticks) {
    lp->heartbeat_elapsed = 0;
    Message m;
    m.type = MessageType::kBeat;
    m.from = id_;
    (void)Step(std::move(m));
  }
}

Status Raft::Step(Message m) { return StepInPlace(m); }

Status Raft::StepInPlace(Message& m) {
  bool handled = false;
  Status s = StepByTerm(m, handled);
  if (handled || !s.ok()) return s;

  switch (m.type) {
    case MessageType::kHup:
      Hup(cfg_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection);
      return Status::Ok();
    case MessageType::kVote:
    case MessageType::kPreVote:
      HandleVoteRequest(m);
      return Status::Ok();
    default:
      break;
  }
  switch (role_.index()) {
    case 0:
      return StepFollower(m);
    case 1:
    case 2:
      return StepCandidate(m);
    default:
      return StepLeader(std::get<LeaderRole>(role_), m);
  }
}

// The term rules every role shares (Figure 2 "All Servers", §9.6 pre-vote, §6.2 leases).
// Sets `handled` when the message needs no further processing.
Status Raft::StepByTerm(const Message& m, bool& handled) {
  if (m.term == Term(0)) return Status::Ok();  // local or term-less (forwarded) message
  if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      bool force = m.context == kCampaignTransfer;
      bool in_lease =
          cfg_.check_quorum && lead_ != kNoNode && election_elapsed_ < cfg_.election_ticks;
      // With leases, a node that just (re)started may have acknowledged a leader before it
      // crashed; it must not help elect another leader until that lease has surely lapsed.
      bool restart_guard = cfg_.read_only_option == ReadOnlyOption::kLeaseBased &&
                           tick_now_ < static_cast<uint64_t>(cfg_.election_ticks);
      if (!force && (in_lease || restart_guard)) {
        // We heard from a leader within the minimum election timeout: this candidate is
        // likely a disruptive node rejoining, and a leader's lease depends on our refusal.
        logger_.Debug("event=ignore_vote type={} from={} term={} reason={}",
                      MessageTypeName(m.type), m.from.value(), m.term.value(),
                      in_lease ? "lease" : "restart_guard");
        handled = true;
        return Status::Ok();
      }
    }
    if (m.type == MessageType::kPreVote) {
      // Never change term in response to a pre-vote.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // A granted pre-vote echoes the term we asked about; we adopt it only on winning.
    } else {
      logger_.Debug("event=higher_term type={} from={} term={} our_term={}",
                    MessageTypeName(m.type), m.from.value(), m.term.value(), term_.value());
      bool from_leader = m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
                         m.type == MessageType::kSnap;
      BecomeFollower(m.term, from_leader ? m.from : kNoNode);
    }
    return Status::Ok();
  }
  if (m.term < term_) {
    handled = true;
    if ((cfg_.check_quorum || cfg_.pre_vote) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A stale leader (e.g. after a partition) would never learn of the new term: with
      // check-quorum or pre-vote we no longer raise our term on its votes, so tell it.
      Message resp;
      resp.type = MessageType::kAppResp;
      resp.to = m.from;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      // Reject explicitly so the pre-candidate learns of the newer term.
      Message resp;
      resp.type = MessageType::kPreVoteResp;
      resp.to = m.from;
      resp.term = term_;
      resp.reject = true;
      Send(std::move(resp));
    }
    return Status::Ok();
  }
  return Status::Ok();
}

void Raft::HandleVoteRequest(const Message& m) {
  // We may grant if we already voted for this node in this term (a retry), or have not voted
  // and know no leader; a pre-vote for a future term may always be granted.
  bool can_vote = vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                  (m.type == MessageType::kPreVote && m.term > term_);
  Message resp;
  resp.type = VoteRespType(m.type);
  resp.to = m.from;
  if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
    logger_.Debug("event=grant_vote type={} to={} term={}", MessageTypeName(m.type), m.from.value(),
                  m.term.value());
    resp.term = m.term;
    if (m.type == MessageType::kVote) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
  }
  Send(std::move(resp));
}

Status Raft::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kProp:
      if (lead_ == kNoNode) return Status::ProposalDropped("no leader known; retry later");
      if (cfg_.disable_proposal_forwarding) {
        return Status::NotLeader(fmt::format("not the leader; leader is {}", lead_.value()));
      }
      m.to = lead_;
      Send(std::move(m));
      return Status::Ok();
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleAppendEntries(m);
      return Status::Ok();
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleHeartbeat(m);
      return Status::Ok();
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      return Status::Ok();
    case MessageType::kTransferLeader:
      if (lead_ == kNoNode) return Status::ProposalDropped("no leader to transfer from");
      m.to = lead_;
      Send(std::move(m));
      return Status::Ok();
    case MessageType::kTimeoutNow:
      // The leader asked us to take over: campaign at once, skipping pre-vote, since the
      // leader has stepped aside on purpose (§3.10).
      logger_.Info("event=timeout_now from={} term={}", m.from.value(), term_.value());
      Hup(CampaignType::kTransfer);
      return Status::Ok();
    case MessageType::kReadIndex:
      if (lead_ == kNoNode) return Status::ProposalDropped("no leader known to serve the read");
      m.to = lead_;
      Send(std::move(m));
      return Status::Ok();
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.index, m.context});
      return Status::Ok();
    case MessageType::kHup:
    case MessageType::kBeat:
    case MessageType::kUnreachable:
    case MessageType::kSnapStatus:
    case MessageType::kCheckQuorum:
    case MessageType::kAppResp:
    case MessageType::kVote:
    case MessageType::kVoteResp:
    case MessageType::kPreVote:
    case MessageType::kPreVoteResp:
    case MessageType::kHeartbeatResp:
      return Status::Ok();  // not meant for a follower (stale or misdirected): ignore
  }
  SYNOD_UNREACHABLE();
}

Status Raft::StepCandidate(Message& m) {
  const bool pre = std::holds_alternative<PreCandidateRole>(role_);
  const MessageType my_resp = pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  switch (m.type) {
    case MessageType::kProp:
      return Status::ProposalDropped("no leader: an election is in progress; retry later");
    case MessageType::kReadIndex:
      return Status::ProposalDropped("no leader: an election is in progress; retry later");
    case MessageType::kTransferLeader:
      return Status::ProposalDropped("no leader to transfer from");
    case MessageType::kApp:
      BecomeFollower(m.term, m.from);  // someone else won this term
      HandleAppendEntries(m);
      return Status::Ok();
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      return Status::Ok();
    case MessageType::kSnap:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      return Status::Ok();
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp: {
      if (m.type != my_resp) return Status::Ok();  // an answer to an earlier campaign
      VoteResult r = Poll(m.from, m.type, !m.reject);
      if (r == VoteResult::kWon) {
        if (pre) {
          Campaign(CampaignType::kElection);
        } else {
          BecomeLeader();
          BroadcastAppend(std::get<LeaderRole>(role_));
        }
      } else if (r == VoteResult::kLost) {
        // A pre-candidate's term is unchanged; a candidate keeps the term it raised to.
        BecomeFollower(term_, kNoNode);
      }
      return Status::Ok();
    }
    case MessageType::kTimeoutNow:
      return Status::Ok();  // already campaigning
    case MessageType::kHup:
    case MessageType::kBeat:
    case MessageType::kUnreachable:
    case MessageType::kSnapStatus:
    case MessageType::kCheckQuorum:
    case MessageType::kAppResp:
    case MessageType::kVote:
    case MessageType::kPreVote:
    case MessageType::kHeartbeatResp:
    case MessageType::kReadIndexResp:
      return Status::Ok();
  }
  SYNOD_UNREACHABLE();
}

void Raft::HandleAppendEntries(Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  resp.sent_tick = m.sent_tick;
  if (m.index < log_.committed()) {
    // Everything up to our commit index is already settled; tell the leader where we are.
    resp.index = log_.committed();
    Send(std::move(resp));
    return;
  }
  // The message is ours (Step takes it by value): its entries move into the log, uncopied.
  if (auto last = log_.MaybeAppend(m.index, m.log_term, m.commit, std::move(m.entries))) {
    resp.index = *last;
    Send(std::move(resp));
    return;
  }
  // Reject with a hint: the largest index <= the probed one whose term is <= the probed
  // term. The leader resumes from there, skipping every entry of a conflicting term at once.
  LogIndex hint_index = std::min(m.index, log_.LastIndex());
  auto [idx, term] = log_.FindConflictByTerm(hint_index, m.log_term);
  logger_.Debug("event=reject_app from={} index={} log_term={} hint={} hint_term={}",
                m.from.value(), m.index.value(), m.log_term.value(), idx.value(), term.value());
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = idx;
  resp.log_term = term;
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  // The leader never sends a commit index beyond what it knows we have (min(match, commit)),
  // so this cannot commit entries we do not hold.
  if (m.commit > log_.committed()) log_.CommitTo(std::min(m.commit, log_.LastIndex()));
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  resp.sent_tick = m.sent_tick;
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  SYNOD_ASSERT(m.snapshot.has_value());
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (Restore(*m.snapshot)) {
    logger_.Info("event=snapshot_restored index={} term={}", m.snapshot->meta.index.value(),
                 m.snapshot->meta.term.value());
    resp.index = log_.LastIndex();
  } else {
    resp.index = log_.committed();
  }
  Send(std::move(resp));
}

// Installs a snapshot from the leader. Returns false when it is not needed (already
// committed that far, or our log already matches it) or not acceptable.
bool Raft::Restore(const Snapshot& snap) {
  if (snap.meta.index <= log_.committed()) return false;
  if (!std::holds_alternative<FollowerRole>(role_)) {
    // Defensive: only a follower of this term's leader can receive a snapshot.
    logger_.Warn("event=ignore_snapshot reason=not_follower");
    BecomeFollower(term_ + 1, kNoNode);
    return false;
  }
  const ConfState& cs = snap.meta.conf_state;
  const bool found =
      cs.voters.count(id_) || cs.voters_outgoing.count(id_) || cs.learners.count(id_);
  if (!found) {
    // A leader sends snapshots only to members of its configuration, so we are one there; the
    // snapshot predates the change that added us (a node joining with no configuration, or a
    // removed node added back under its old id), and that change follows in the log. Refusing
    // it (as etcd does, assuming ids are never reused) left a re-added node behind forever.
    // Installing it is safe: it is committed state, and until the change that adds us applies
    // we are not promotable, so we cannot campaign.
    logger_.Info("event=snapshot_predates_membership index={}", snap.meta.index.value());
  }
  if (log_.MatchTerm(snap.meta.index, snap.meta.term)) {
    // Our log already holds the snapshot's last entry: just fast-forward the commit index.
    log_.CommitTo(snap.meta.index);
    return false;
  }
  auto cfg = MembershipConfig::FromConfState(cs);
  if (!cfg.ok()) {
    logger_.Error("event=ignore_snapshot reason=bad_conf_state error=\"{}\"",
                  cfg.status().ToString());
    return false;
  }
  log_.Restore(snap);
  SwitchToConfig(std::move(cfg).value());
  return true;
}

Result<ConfState> Raft::ApplyConfChange(const ConfChange& cc) {
  auto next = synod::raft::ApplyConfChange(config_, cc);
  if (!next.ok()) {
    logger_.Warn("event=conf_change_refused change=\"{}\" error=\"{}\"", cc.ToString(),
                 next.status().ToString());
    return next.status();
  }
  logger_.Info("event=conf_change_applied change=\"{}\" config=\"{}\"", cc.ToString(),
               next->ToString());
  SwitchToConfig(std::move(next).value());
  return config_.ToConfState();
}

void Raft::SwitchToConfig(MembershipConfig cfg) {
  config_ = std::move(cfg);
  LeaderRole* l = leader();
  if (l == nullptr) return;
  if (!config_.AllIds().count(id_) || config_.IsLearner(id_)) {
    // Removed (or demoted) leader: step down so that the remaining voters elect a leader
    // among themselves (§4.2.2).
    logger_.Info("event=step_down reason=removed_from_config");
    BecomeFollower(term_, kNoNode);
    return;
  }
  std::set<NodeId> tracked;
  for (const auto& [id, pr] : l->progress) tracked.insert(id);
  SyncProgressWithConfig(*l);
  if (l->lead_transferee != kNoNode && !config_.IsVoter(l->lead_transferee)) {
    AbortLeaderTransfer(*l);
  }
  if (MaybeCommit(*l)) {
    BroadcastAppend(*l);
  } else {
    // Probe newly added members at once, with an empty append if there is nothing new to
    // send them (their next is past the last index): otherwise they would wait for the
    // next heartbeat or proposal before learning of the leader.
    for (auto& [id, pr] : l->progress) {
      if (id != id_) MaybeSendAppend(*l, id, tracked.count(id) == 0);
    }
  }
}

void Raft::OnPersisted(LogIndex index, Term term) {
  log_.StableTo(index, term);
  LeaderRole* l = leader();
  if (l == nullptr) return;
  // The leader's own acknowledgement, counted only once durable (see Ready).
  if (!log_.MatchTerm(index, term)) return;
  auto it = l->progress.find(id_);
  if (it == l->progress.end()) return;
  if (it->second.MaybeUpdate(index) && MaybeCommit(*l)) {
    ReleasePendingReads(*l);
    BroadcastAppend(*l);
  }
}

void Raft::OnSnapshotPersisted(LogIndex index) { log_.StableSnapTo(index); }

void Raft::OnApplied(LogIndex applied) {
  log_.AppliedTo(applied);
  LeaderRole* l = leader();
  if (l == nullptr || !config_.auto_leave || applied < l->pending_conf_index) return;
  // The joint configuration is applied and asked to be left automatically: propose the
  // empty change that leaves it (§4.3).
  Message m;
  m.type = MessageType::kProp;
  m.from = id_;
  Entry e;
  e.type = EntryType::kConfChange;
  e.data = ConfChange{}.Encode();
  m.entries.push_back(std::move(e));
  Status s = Step(std::move(m));
  if (s.ok()) {
    logger_.Info("event=auto_leave_joint");
  } else {
    logger_.Warn("event=auto_leave_joint_failed error=\"{}\"", s.ToString());
  }
}

void Raft::ReduceUncommittedBytes(uint64_t bytes) {
  LeaderRole* l = leader();
  if (l == nullptr) return;
  l->uncommitted_bytes = bytes >= l->uncommitted_bytes ? 0 : l->uncommitted_bytes - bytes;
}

}  // namespace synod::raft
