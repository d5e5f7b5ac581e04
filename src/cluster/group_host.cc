#include "cluster/group_host.h"

#include <chrono>
#include <sstream>
#include <utility>

#include "common/assert.h"
#include "env/asio/steady_clock.h"
#include "kv/state_machine.h"
#include "raft/confchange.h"

namespace synod::cluster {

namespace {

using env::SteadyNowNs;
using env::WallNowMs;

constexpr char kMembersMeta[] = "members";
// Keys one expiry round may delete: bounds the entry and the work of one apply.
constexpr size_t kExpiryKeysPerRound = 500;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

const char* RoleText(raft::Role r) {
  switch (r) {
    case raft::Role::kFollower:
      return "follower";
    case raft::Role::kCandidate:
      return "candidate";
    case raft::Role::kPreCandidate:
      return "precandidate";
    case raft::Role::kLeader:
      return "leader";
  }
  return "unknown";
}

}  // namespace

Result<AddressBook> ParseMemberList(const std::string& text) {
  AddressBook out;
  std::string_view rest = text;
  size_t items = 0;
  while (!rest.empty() && items++ < 100000) {
    size_t end = rest.find_first_of(",\n");
    std::string_view item = Trim(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument("member \"" + std::string(item) + "\" is not ID=ADDRESS");
    }
    uint64_t id = 0;
    std::string_view id_text = item.substr(0, eq);
    for (char c : id_text) {
      if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10) {
        return Status::InvalidArgument("member id \"" + std::string(id_text) +
                                       "\" is not a number");
      }
      id = id * 10 + static_cast<uint64_t>(c - '0');
    }
    if (id == 0 || id_text.empty()) {
      return Status::InvalidArgument("member ids start at 1");
    }
    MemberAddress a;
    std::string_view addrs = item.substr(eq + 1);
    std::string* fields[3] = {&a.peer, &a.client, &a.admin};
    for (int f = 0; f < 3 && !addrs.empty(); ++f) {
      size_t slash = addrs.find('/');
      *fields[f] = std::string(addrs.substr(0, slash));
      addrs = slash == std::string_view::npos ? std::string_view() : addrs.substr(slash + 1);
    }
    if (!addrs.empty()) {
      return Status::InvalidArgument("member \"" + std::string(item) + "\" has too many addresses");
    }
    for (std::string* f : fields) {
      if (f->empty() && f != fields[0]) continue;
      SYNOD_RETURN_IF_ERROR(SplitHostPort(*f, PortZero::kRefused).status());
    }
    if (!out.emplace(NodeId(id), std::move(a)).second) {
      return Status::InvalidArgument("member id " + std::to_string(id) + " appears twice");
    }
  }
  if (out.empty()) return Status::InvalidArgument("the member list is empty");
  return out;
}

std::string FormatMemberList(const AddressBook& members, char separator) {
  std::string out;
  for (const auto& [id, a] : members) {
    if (!out.empty()) out.push_back(separator);
    out += std::to_string(id.value()) + "=" + a.peer;
    if (!a.client.empty() || !a.admin.empty()) out += "/" + a.client;
    if (!a.admin.empty()) out += "/" + a.admin;
  }
  return out;
}

uint64_t DeriveClusterId(const AddressBook& members, const std::string& token) {
  // FNV-1a over "token|id=peer|id=peer...": stable across builds and hosts.
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
  };
  mix(token);
  for (const auto& [id, a] : members) {
    mix("|" + std::to_string(id.value()) + "=" + a.peer);
  }
  return h == 0 ? 1 : h;
}

GroupHost::GroupHost(asio::io_context& io, HostOptions opts, Logger logger)
    : io_(io), opts_(std::move(opts)), logger_(std::move(logger)), tick_timer_(io) {}

GroupHost::~GroupHost() {
  Stop();
  *alive_ = false;
}

Result<std::unique_ptr<GroupHost>> GroupHost::Open(asio::io_context& io, HostOptions opts,
                                                   Logger logger) {
  if (opts.id == kNoNode) return Status::InvalidArgument("the node id must be >= 1");
  if (opts.tick_ms <= 0 || opts.election_ticks <= opts.heartbeat_ticks) {
    return Status::InvalidArgument("need tick_ms > 0 and election_ticks > heartbeat_ticks");
  }
  if (opts.self.peer.empty()) opts.self.peer = opts.peer_listen;
  std::unique_ptr<GroupHost> h(new GroupHost(io, std::move(opts), std::move(logger)));
  auto db = storage::NodeDb::Open(h->opts_.data_dir + "/raft", h->opts_.cluster_id, h->opts_.rocks);
  if (!db.ok()) return db.status();
  h->db_ = std::move(db).value();
  h->LoadAddressBook();
  if (!h->opts_.initial_cluster.empty() &&
      h->opts_.initial_cluster.find(h->opts_.id) == h->opts_.initial_cluster.end()) {
    return Status::InvalidArgument("node " + std::to_string(h->opts_.id.value()) +
                                   " is not in the initial cluster list");
  }
  for (const auto& [id, a] : h->opts_.known_members) h->members_.try_emplace(id, a);
  h->members_[h->opts_.id] = h->opts_.self;  // our own addresses may have changed
  h->SaveAddressBook();

  StoreOptions so;
  so.self = h->opts_.id;
  ReplicaOptions& ro = so.replica;
  ro.raft.election_ticks = h->opts_.election_ticks;
  ro.raft.heartbeat_ticks = h->opts_.heartbeat_ticks;
  ro.raft.check_quorum = true;
  ro.raft.pre_vote = true;
  ro.raft.read_only_option =
      h->opts_.lease_reads ? raft::ReadOnlyOption::kLeaseBased : raft::ReadOnlyOption::kSafe;
  so.random_seed = static_cast<uint64_t>(SteadyNowNs()) ^ (h->opts_.id.value() << 32);
  ro.request_timeout_ticks =
      static_cast<int>(std::max<int64_t>(1, h->opts_.request_timeout_ms / h->opts_.tick_ms));
  ro.snapshot_entries = h->opts_.snapshot_entries;
  ro.state_flush_entries = h->opts_.state_flush_entries;

  env::PeerTransportOptions to;
  to.self = h->opts_.id;
  to.cluster_id = h->db_->cluster_id();
  to.listen_address = h->opts_.peer_listen;
  to.advertise_address = h->opts_.self.peer;
  GroupHost* raw = h.get();
  h->transport_ = std::make_unique<env::PeerTransport>(
      io, to, h->logger_,
      [raw](NodeId from, std::string_view payload) { raw->OnPeerMessage(from, payload); },
      [raw](NodeId peer) {
        if (raw->stopped_ || !raw->replica_) return;
        raw->store_->ReportUnreachable(peer);
      },
      [raw](NodeId peer, const std::string& address) {
        auto it = raw->members_.find(peer);
        if (it != raw->members_.end() && it->second.peer != address && !address.empty()) {
          raw->logger_.Info("event=peer_address_learned peer={} address={}", peer.value(), address);
          it->second.peer = address;
          raw->transport_->SetPeer(peer, address);
          raw->SaveAddressBook();
        }
      });
  h->store_ =
      std::make_unique<Store>(std::move(so), h->db_.get(), &h->raft_transport_, raw, h->logger_);
  // The initial voters bootstrap the group when the database holds nothing of it (durably,
  // before anything else); a joining node starts it empty and waits for the leader's snapshot.
  std::set<NodeId> voters;
  for (const auto& [id, a] : h->opts_.initial_cluster) voters.insert(id);
  SYNOD_RETURN_IF_ERROR(h->store_->AddGroup(kGroup, kGroupSpan, voters));
  h->replica_ = h->store_->replica(kGroup);
  if (h->store_->storage(kGroup)->recovery_stats().created && !voters.empty()) {
    for (const auto& [id, a] : h->opts_.initial_cluster) h->members_[id] = a;
    h->SaveAddressBook();
    h->logger_.Info("event=bootstrapped members=\"{}\"",
                    FormatMemberList(h->opts_.initial_cluster));
  }
  for (const auto& [id, a] : h->members_) {
    if (id != h->opts_.id && !a.peer.empty()) h->transport_->SetPeer(id, a.peer);
  }
  return h;
}

void GroupHost::RaftOut::Send(GroupId group, raft::Message msg) {
  const NodeId to = msg.to;
  host_->transport_->Send(to, peer_wire::EncodeRaft(group, msg));
}

void GroupHost::OnPeerMessage(NodeId from, std::string_view payload) {
  if (stopped_ || !replica_) return;
  Result<peer_wire::RaftEnvelope> env = peer_wire::DecodeRaft(payload);
  if (!env.ok()) {
    // A peer of our cluster sent what we cannot read: a bug or another build, not an attack
    // (the hello checked the cluster). Drop it; Raft retransmits what matters.
    ++counters_.peer_messages_dropped;
    logger_.Warn("event=peer_message_dropped reason=undecodable from={} error=\"{}\"", from.value(),
                 env.status().message());
    return;
  }
  raft::Message& m = env->message;
  if (m.to != opts_.id || m.from != from) {
    ++counters_.peer_messages_dropped;
    logger_.Info(
        "event=peer_message_dropped reason=misaddressed type={} to={} from={} conn_from={}",
        raft::MessageTypeName(m.type), m.to.value(), m.from.value(), from.value());
    return;
  }
  if (m.type == raft::MessageType::kProp) store_->set_wall_clock_ms(WallNowMs());
  if (!store_->Receive(env->group, std::move(m)).ok()) {
    ++counters_.peer_messages_dropped;
    logger_.Debug("event=peer_message_dropped reason=unknown_group group={} from={}",
                  env->group.value(), from.value());
    return;
  }
  Kick();
}

void GroupHost::LoadAddressBook() {
  auto v = db_->GetMeta(kMembersMeta);
  if (!v.ok()) {
    logger_.Warn("event=address_book_unreadable error=\"{}\"", v.status().ToString());
    return;
  }
  if (!v->has_value() || (*v)->empty()) return;
  auto book = ParseMemberList(**v);
  if (!book.ok()) {
    logger_.Warn("event=address_book_unreadable error=\"{}\"", book.status().ToString());
    return;
  }
  members_ = std::move(book).value();
}

void GroupHost::SaveAddressBook() {
  Status s = db_->PutMeta(kMembersMeta, FormatMemberList(members_, '\n'));
  if (!s.ok()) logger_.Warn("event=address_book_not_saved error=\"{}\"", s.ToString());
}

void GroupHost::LearnAddresses(const std::string& context) {
  if (context.empty()) return;
  auto book = ParseMemberList(context);
  if (!book.ok()) {
    logger_.Warn("event=bad_conf_context error=\"{}\"", book.status().ToString());
    return;
  }
  for (auto& [id, a] : *book) {
    if (id == opts_.id) continue;  // we know our own addresses best
    members_[id] = a;
    transport_->SetPeer(id, a.peer);
  }
  SaveAddressBook();
}

Status GroupHost::Start() {
  SYNOD_RETURN_IF_ERROR(transport_->Start());
  storage_work_.emplace(asio::make_work_guard(storage_io_));
  storage_thread_ = std::thread([this] { storage_io_.run(); });
  ScheduleTick();
  Kick();
  logger_.Info("event=host_started peer={} cluster_id={:016x} members=\"{}\"",
               transport_->bound_address(), db_->cluster_id(), FormatMemberList(members_));
  return Status::Ok();
}

void GroupHost::Stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_timer_.cancel();
  if (transport_) transport_->Stop();
  if (storage_work_) {
    storage_work_.reset();
    if (storage_thread_.joinable()) storage_thread_.join();  // lets the write in flight finish
  }
  if (sync_job_) {
    // The write finished on the storage thread but its completion never ran on the core:
    // report it now, so the storage is consistent when it closes.
    auto job = std::move(sync_job_);
    SYNOD_ASSERT(job->written.load(std::memory_order_acquire));
    OnSyncDone(job->result, job->took_ns);
  }
  // The state applied since the last write waits for the next one; a clean stop writes it, so
  // that the next start replays no entries it need not (after a crash it replays them).
  if (db_ && db_->failure().ok()) {
    if (replica_) replica_->FlushState();
    const Status s = db_->Sync();
    if (!s.ok()) logger_.Warn("event=final_sync_failed error=\"{}\"", s.ToString());
  }
}

void GroupHost::ScheduleTick() {
  tick_timer_.expires_after(std::chrono::milliseconds(opts_.tick_ms));
  tick_timer_.async_wait([this, alive = alive_](const asio::error_code& ec) {
    if (ec || !*alive || stopped_) return;
    OnTick();
    ScheduleTick();
  });
}

void GroupHost::OnTick() {
  ++ticks_;
  store_->Tick();
  if (ticks_ % 10 == 0) MaybePromoteLearners();
  // The active expiry cycle: every other tick the leader proposes the deletion of keys that
  // are due (reads already treat them as absent; this frees them everywhere).
  if (ticks_ % 2 == 0) store_->ProposeExpiry(env::WallNowMs(), kExpiryKeysPerRound);
  Kick();
}

void GroupHost::Kick() {
  if (kick_scheduled_ || stopped_) return;
  kick_scheduled_ = true;
  // Deferred to the end of the current round of events, so that everything that arrived
  // together (a burst of client commands, several messages) goes into one Ready.
  asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    kick_scheduled_ = false;
    Drive();
  });
}

void GroupHost::Drive() {
  if (stopped_ || syncing_) return;
  for (int rounds = 0; rounds < 64 && store_->HasWork(); ++rounds) {
    counters_.ready_rounds.fetch_add(1, std::memory_order_relaxed);
    if (store_->BeginRound()) {
      StartSync();
      return;
    }
  }
  if (store_->HasWork()) Kick();  // yield to other events, then continue
}

void GroupHost::StartSync() {
  syncing_ = true;
  auto job = std::make_shared<SyncJob>();
  job->pending = db_->TakeWrite();
  sync_job_ = job;
  storage::NodeDb* db = db_.get();
  asio::post(storage_io_, [this, job, db, alive = alive_] {
    const int64_t start = SteadyNowNs();
    Status s = db->WriteTaken(job->pending);
    job->took_ns = SteadyNowNs() - start;
    job->result = std::move(s);
    job->written.store(true, std::memory_order_release);
    asio::post(io_, [this, job, alive] {
      if (!*alive || sync_job_ != job) return;  // Stop() already finished it
      sync_job_.reset();
      OnSyncDone(job->result, job->took_ns);
    });
  });
}

void GroupHost::OnSyncDone(const Status& s, int64_t took_ns) {
  syncing_ = false;
  counters_.syncs.fetch_add(1, std::memory_order_relaxed);
  if (counters_.observe_sync_ns) counters_.observe_sync_ns(took_ns);
  db_->OnWritten(s);
  if (stopped_) return;
  if (!s.ok()) {
    counters_.sync_failures.fetch_add(1, std::memory_order_relaxed);
    logger_.Error("event=sync_failed error=\"{}\"", s.ToString());
  }
  store_->FinishRound(s);  // on a failure, every group of the round fails
  if (s.ok()) Drive();
}

void GroupHost::Submit(const kv::Command& cmd, ReadMode mode, ReplyFn reply) {
  if (cmd.op != kv::Op::kGet) counters_.proposals.fetch_add(1, std::memory_order_relaxed);
  store_->Submit(kGroup, cmd, mode, std::move(reply));
  Kick();
}

void GroupHost::SubmitRead(ReadFn fn, ReadMode mode, ReplyFn reply) {
  store_->SubmitRead(kGroup, std::move(fn), mode, std::move(reply));
  Kick();
}

Status GroupHost::AddMember(NodeId id, const MemberAddress& address) {
  if (!is_leader()) return Status::NotLeader("membership changes go to the leader");
  if (id == kNoNode) return Status::InvalidArgument("member ids start at 1");
  SYNOD_RETURN_IF_ERROR(SplitHostPort(address.peer, PortZero::kRefused).status());
  const raft::MembershipConfig& cfg = replica_->raw_node().raft().config();
  if (cfg.IsVoter(id) || cfg.IsLearner(id)) {
    return Status::FailedPrecondition("node " + std::to_string(id.value()) +
                                      " is already a member");
  }
  raft::ConfChange cc;
  cc.changes.push_back({raft::ConfChangeType::kAddLearner, id});
  cc.context = FormatMemberList({{id, address}}, '\n');
  SYNOD_RETURN_IF_ERROR(replica_->ProposeConfChange(cc));
  store_->Touch(kGroup);  // called on the replica directly: give it a round
  Kick();
  return Status::Ok();
}

Status GroupHost::RemoveMember(NodeId id) {
  if (!is_leader()) return Status::NotLeader("membership changes go to the leader");
  const raft::MembershipConfig& cfg = replica_->raw_node().raft().config();
  if (!cfg.IsVoter(id) && !cfg.IsLearner(id)) {
    return Status::NotFound("node " + std::to_string(id.value()) + " is not a member");
  }
  raft::ConfChange cc;
  cc.transition = raft::ConfChangeTransition::kJointImplicit;
  cc.changes.push_back({raft::ConfChangeType::kRemoveNode, id});
  SYNOD_RETURN_IF_ERROR(replica_->ProposeConfChange(cc));
  store_->Touch(kGroup);  // called on the replica directly: give it a round
  Kick();
  return Status::Ok();
}

Status GroupHost::TransferLeadership(NodeId to) {
  Status s = replica_->TransferLeadership(to);
  store_->Touch(kGroup);
  Kick();
  return s;
}

uint64_t GroupHost::cluster_id() const { return db_->cluster_id(); }

std::vector<ShardView> GroupHost::Shards() const {
  const raft::Raft& r = replica_->raw_node().raft();
  const raft::MembershipConfig& cfg = r.config();
  ShardView v;
  v.desc.group = kGroup;
  v.desc.first_slot = kGroupSpan.first_slot;
  v.desc.last_slot = kGroupSpan.last_slot;
  v.desc.epoch = 1;  // one static shard: its descriptor never changes (membership aside)
  for (NodeId id : cfg.AllIds()) {
    (cfg.IsLearner(id) ? v.desc.learners : v.desc.voters).push_back(id);
  }
  v.leader = r.lead();
  return {v};
}

NodeId GroupHost::LeaderForSlot(uint16_t slot) const {
  (void)slot;  // one shard holds every slot
  return replica_->raw_node().raft().lead();
}

NodeId GroupHost::BestTransferee() const {
  const raft::Raft& r = replica_->raw_node().raft();
  if (r.role() != raft::Role::kLeader) return kNoNode;
  NodeId best = kNoNode;
  LogIndex best_match;
  for (NodeId v : r.config().voters.Ids()) {
    if (v == opts_.id) continue;
    const raft::Progress* p = r.progress(v);
    if (p != nullptr && (best == kNoNode || p->match > best_match)) {
      best = v;
      best_match = p->match;
    }
  }
  return best;
}

void GroupHost::MaybePromoteLearners() {
  const raft::Raft& r = replica_->raw_node().raft();
  if (r.role() != raft::Role::kLeader || r.config().IsJoint() ||
      replica_->raw_node().raft().HasUnappliedConfChanges()) {
    return;
  }
  const LogIndex last = r.log().LastIndex();
  for (NodeId l : r.config().learners) {
    const raft::Progress* p = r.progress(l);
    if (p == nullptr || p->match.value() + opts_.promote_lag_entries_max < last.value()) continue;
    raft::ConfChange cc;
    cc.transition = raft::ConfChangeTransition::kJointImplicit;
    cc.changes.push_back({raft::ConfChangeType::kAddNode, l});
    Status s = replica_->ProposeConfChange(cc);
    store_->Touch(kGroup);  // OnTick kicks afterwards
    logger_.Info("event=promote_learner node={} match={} last={} result=\"{}\"", l.value(),
                 p->match.value(), last.value(), s.ToString());
    return;  // one change at a time
  }
}

void GroupHost::OnApply(NodeId, const raft::Entry& entry) {
  if (entry.type != raft::EntryType::kConfChange) return;
  auto cc = raft::ConfChange::Decode(entry.data);
  if (!cc.ok()) return;
  LearnAddresses(cc->context);
  logger_.Info("event=conf_change_applied index={} change=\"{}\"", entry.index.value(),
               cc->ToString());
}

void GroupHost::OnSnapshot(NodeId, const raft::SnapshotMeta& meta) {
  logger_.Info("event=snapshot_installed index={} term={}", meta.index.value(), meta.term.value());
}

void GroupHost::OnSoftState(NodeId, const raft::SoftState& ss, Term term) {
  logger_.Info("event=role_changed role={} term={} leader={}", RoleText(ss.role), term.value(),
               ss.lead.value());
}

NodeId GroupHost::leader() const { return replica_->raw_node().raft().soft_state().lead; }

bool GroupHost::is_leader() const {
  return replica_->raw_node().raft().role() == raft::Role::kLeader;
}

HostStatus GroupHost::GetStatus() const {
  const raft::Raft& r = replica_->raw_node().raft();
  HostStatus st;
  st.id = opts_.id;
  st.cluster_id = db_->cluster_id();
  st.role = RoleText(r.role());
  st.term = r.term();
  st.leader = r.soft_state().lead;
  st.commit = r.log().committed();
  st.applied = replica_->state_machine().applied_index();
  st.last_index = r.log().LastIndex();
  st.snapshot_index = store_->storage(kGroup)->snapshot().meta.index;
  st.joint = r.config().IsJoint();
  if (replica_->failed()) st.failure = replica_->failure().ToString();
  st.disk_bytes = db_->disk_bytes();
  st.keys = replica_->state_machine().key_count();
  const int64_t now = SteadyNowNs();
  std::map<NodeId, env::PeerTransport::PeerStats> stats;
  for (auto& ps : transport_->Stats()) stats[ps.id] = ps;
  for (NodeId id : r.config().AllIds()) {
    MemberStatus m;
    m.id = id;
    auto a = members_.find(id);
    if (a != members_.end()) m.address = a->second;
    m.voter = r.config().IsVoter(id);
    auto ps = stats.find(id);
    if (id == opts_.id) {
      m.connected = true;
      m.last_contact_ms = 0;
    } else if (ps != stats.end()) {
      m.connected = ps->second.connected;
      if (ps->second.last_received_ns > 0) {
        m.last_contact_ms = (now - ps->second.last_received_ns) / 1'000'000;
      }
    }
    if (const raft::Progress* p = r.progress(id)) m.match = p->match;
    st.members.push_back(std::move(m));
  }
  return st;
}

}  // namespace synod::cluster
