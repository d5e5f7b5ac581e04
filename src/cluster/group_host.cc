#include "cluster/group_host.h"

#include <chrono>
#include <random>
#include <sstream>
#include <utility>

#include "cluster/logic/descriptors.h"
#include "cluster/logic/split.h"
#include "common/assert.h"
#include "env/asio/steady_clock.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "raft/confchange.h"

namespace synod::cluster {

namespace {

using env::SteadyNowNs;
using env::WallNowMs;

constexpr char kMembersMeta[] = "members";
constexpr uint64_t kBalanceTicks = 20;
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

Status GroupHost::LoadLayout() {
  auto stored = db_->GetMeta(kLayoutMeta);
  if (!stored.ok()) return stored.status();
  if (stored->has_value()) {
    Result<Layout> l = DecodeLayout(**stored);
    if (!l.ok()) {
      return Status::Corruption("the stored layout does not parse: " + l.status().ToString());
    }
    map_ = std::make_unique<ShardMap>(std::move(l).value());
    return Status::Ok();
  }
  Result<Layout> l = Status::InvalidArgument("no layout");
  if (!opts_.initial_cluster.empty()) {
    std::vector<NodeId> nodes;
    for (const auto& [id, a] : opts_.initial_cluster) nodes.push_back(id);
    const int shards = opts_.shards > 0 ? opts_.shards : 2 * static_cast<int>(nodes.size());
    l = MakeInitialLayout(nodes, shards, opts_.replicas);
  } else if (!opts_.join_layout.empty()) {
    l = DecodeLayout(opts_.join_layout);
  } else {
    return Status::InvalidArgument(
        "a new data directory needs the initial cluster or the layout of the cluster it joins");
  }
  if (!l.ok()) return l.status();
  SYNOD_RETURN_IF_ERROR(db_->PutMeta(kLayoutMeta, EncodeLayout(*l)));
  map_ = std::make_unique<ShardMap>(std::move(l).value());
  return Status::Ok();
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
  auto stored_groups = h->db_->StoredGroups();
  if (!stored_groups.ok()) return stored_groups.status();
  const bool joining = h->opts_.initial_cluster.empty() && stored_groups->empty();
  SYNOD_RETURN_IF_ERROR(h->LoadLayout());
  h->LoadDestroyed();
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
  // Idle groups stop ticking after two heartbeat intervals (not with lease reads: see Store).
  if (h->opts_.quiesce && !h->opts_.lease_reads)
    so.quiesce_after_ticks = 2 * h->opts_.heartbeat_ticks;
  ro.request_timeout_ticks =
      static_cast<int>(std::max<int64_t>(1, h->opts_.request_timeout_ms / h->opts_.tick_ms));
  ro.snapshot_entries = h->opts_.snapshot_entries;
  ro.state_flush_entries = h->opts_.state_flush_entries;
  ro.stream_snapshots = true;  // snapshot_stream.h
  SnapshotStreamOptions sso;
  sso.kv = ro.kv;
  MoveThrottleOptions mto;
  mto.p99_target_ms = h->opts_.move_p99_target_ms;
  h->throttle_ = MoveThrottle(mto);

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
        if (raw->stopped_ || !raw->store_) return;
        raw->store_->ReportUnreachable(peer);
        raw->router_->PeerUnreachable(peer, SteadyNowNs());
        raw->Kick();
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
  h->streams_ = std::make_unique<SnapshotStreams>(io, std::move(sso), h->StreamHost(), h->logger_);
  RouterOptions rto;
  rto.self = h->opts_.id;
  rto.request_timeout_ms = h->opts_.request_timeout_ms;
  rto.hosted_wait_ticks = 2 * h->opts_.election_ticks;
  // Fresh ids for every start (see RouterOptions::first_request_id).
  rto.first_request_id = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  h->router_ = std::make_unique<RequestRouter>(rto, h->map_.get(), h->store_.get(),
                                               &h->request_out_, h->logger_);
  // Scripts run here on the shards this node leads, in slices between the core's other work.
  compute::ScriptRunner::Env senv;
  senv.wall_ms = [] { return WallNowMs(); };
  senv.steady_ns = [] { return SteadyNowNs(); };
  senv.post = [raw = h.get()](int64_t delay_ns, std::function<void()> fn) {
    auto timer = std::make_shared<asio::steady_timer>(raw->io_);
    timer->expires_after(std::chrono::nanoseconds(delay_ns));
    timer->async_wait(
        [raw, timer, fn = std::move(fn), alive = raw->alive_](const std::error_code& ec) {
          if (ec || !*alive) return;
          fn();
          raw->Kick();
        });
  };
  compute::ScriptRunnerOptions sro;
  sro.engine.memory_max = h->opts_.script_memory_bytes;
  sro.session_seed = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  auto scripts = compute::ScriptRunner::Create(h->store_.get(), std::move(senv), sro,
                                               h->logger_.With("scripts "));
  if (!scripts.ok()) return scripts.status();
  h->scripts_ = std::move(scripts).value();
  h->router_->set_scripts(h->scripts_.get());
  // The groups held: those with records, and those the layout gives this node. The initial
  // voters bootstrap a group when the database holds nothing of it (durably, before anything
  // else). A joining node starts with none: the placement logic adds it to groups, and it makes
  // an empty replica of each that lists it (JoinListedGroups), which the leader's snapshot fills.
  const Layout& layout = h->map_->layout();
  std::vector<const ShardDescriptor*> all{&layout.meta};
  for (const ShardDescriptor& d : layout.shards) all.push_back(&d);
  const std::set<GroupId> stored(stored_groups->begin(), stored_groups->end());
  bool created = false;
  for (const ShardDescriptor* d : all) {
    const bool listed =
        std::find(d->voters.begin(), d->voters.end(), h->opts_.id) != d->voters.end();
    if (!listed && !stored.contains(d->group)) continue;
    // Destroyed here since (removed from it): only a newer descriptor brings it back.
    if (auto gone = h->destroyed_at_epoch_.find(d->group); !stored.contains(d->group) &&
                                                           gone != h->destroyed_at_epoch_.end() &&
                                                           d->epoch <= gone->second) {
      continue;
    }
    std::set<NodeId> voters;
    // Only the initial layout's shards (epoch 1) are bootstrapped: a later one (a split's new
    // shard) starts from its parent's state, which a node without it gets by snapshot.
    if (listed && !h->opts_.initial_cluster.empty() && d->epoch == 1)
      voters.insert(d->voters.begin(), d->voters.end());
    const storage::StateSpan span = d->group == kMetaGroup
                                        ? storage::StateSpan::Group()
                                        : storage::StateSpan::Slots(d->first_slot, d->last_slot);
    SYNOD_RETURN_IF_ERROR(h->store_->AddGroup(d->group, span, voters));
    created =
        created || (h->store_->storage(d->group)->recovery_stats().created && !voters.empty());
  }
  // Groups with records the layout does not name (a split's new shard whose layout was not
  // saved before a crash): each reads its own slots from its stored state.
  for (GroupId g : stored) {
    if (h->store_->HasGroup(g)) continue;
    SYNOD_RETURN_IF_ERROR(h->store_->AddGroup(g,
                                              g == kMetaGroup
                                                  ? storage::StateSpan::Group()
                                                  : storage::StateSpan::Slots(0, kSlotCount - 1),
                                              {}));
  }
  if (h->store_->group_count() == 0 && !joining) {
    return Status::FailedPrecondition("the layout gives node " +
                                      std::to_string(h->opts_.id.value()) + " no group");
  }
  if (created) {
    for (const auto& [id, a] : h->opts_.initial_cluster) h->members_[id] = a;
    h->SaveAddressBook();
    h->logger_.Info("event=bootstrapped members=\"{}\" groups={} layout=\"{}\"",
                    FormatMemberList(h->opts_.initial_cluster), h->store_->group_count(),
                    EncodeLayout(layout));
  }
  for (const auto& [id, a] : h->members_) {
    if (id != h->opts_.id && !a.peer.empty()) h->transport_->SetPeer(id, a.peer);
  }
  return h;
}

// ---- routing (RequestRouter, cluster/logic/router.h) ----

std::vector<GroupId> GroupHost::DataShards() const {
  std::vector<GroupId> out;
  for (const ShardDescriptor& d : map_->layout().shards) out.push_back(d.group);
  return out;
}

std::vector<GroupId> GroupHost::ShardsLedHere() const {
  std::vector<GroupId> out;
  for (GroupId g : DataShards()) {
    const Replica* r = store_->replica(g);
    if (r != nullptr && r->raw_node().raft().role() == raft::Role::kLeader) out.push_back(g);
  }
  return out;
}

const kv::StateMachine* GroupHost::LocalStateMachine(GroupId group) const {
  const Replica* r = store_->replica(group);
  return r == nullptr ? nullptr : &r->state_machine();
}

void GroupHost::Call(ShardRequest req, ResponseFn done) {
  if (stopped_) {
    ShardResponse r;
    r.status = Status::Unavailable("the node is shutting down");
    return done(std::move(r));
  }
  router_->Call(std::move(req), std::move(done), SteadyNowNs());
}

NodeId GroupHost::LeaderHint(GroupId group) const { return router_->LeaderHint(group, nullptr); }

void GroupHost::RequestOut::SendRequest(NodeId to, uint64_t id, const ShardRequest& req) {
  host_->transport_->Send(
      to, peer_wire::EncodeCall(peer_wire::Kind::kRequest, id, EncodeShardRequest(req)));
}

void GroupHost::RequestOut::SendResponse(NodeId to, uint64_t id, const ShardResponse& resp) {
  if (host_->stopped_) return;
  host_->transport_->Send(
      to, peer_wire::EncodeCall(peer_wire::Kind::kResponse, id, EncodeShardResponse(resp)));
}

void GroupHost::RequestOut::Wake() { host_->Kick(); }

void GroupHost::SyncRouterCounters() {
  const RouterCounters& c = router_->counters();
  counters_.proposals.store(c.proposals, std::memory_order_relaxed);
  counters_.requests_forwarded.store(c.forwarded, std::memory_order_relaxed);
  counters_.requests_served.store(c.served, std::memory_order_relaxed);
  counters_.request_retries.store(c.retries, std::memory_order_relaxed);
}

void GroupHost::OnRequest(NodeId from, std::string_view payload) {
  Result<peer_wire::Call> call = peer_wire::DecodeCall(peer_wire::Kind::kRequest, payload);
  if (!call.ok()) return Drop(from, "undecodable_request", call.status());
  Result<ShardRequest> req = DecodeShardRequest(call->body);
  if (!req.ok()) {
    ++counters_.peer_messages_dropped;  // answered with the error (the router does)
  } else if (req->type == ShardRequest::Type::kWrite) {
    store_->set_wall_clock_ms(WallNowMs());
  }
  router_->Serve(from, call->id, std::move(req));
}

void GroupHost::OnResponse(NodeId from, std::string_view payload) {
  Result<peer_wire::Call> call = peer_wire::DecodeCall(peer_wire::Kind::kResponse, payload);
  if (!call.ok()) return Drop(from, "undecodable_response", call.status());
  Result<ShardResponse> r = DecodeShardResponse(call->body);
  if (!r.ok()) ++counters_.peer_messages_dropped;
  router_->OnResponse(from, call->id, std::move(r), SteadyNowNs());
  Kick();
}

const Replica* GroupHost::meta_replica() const { return store_->replica(kMetaGroup); }

// ---- address book ----

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
  bool changed = false;
  for (auto& [id, a] : *book) {
    if (id == opts_.id) continue;  // we know our own addresses best
    auto it = members_.find(id);
    if (it != members_.end() && it->second == a) continue;  // every group carries the change
    members_[id] = a;
    transport_->SetPeer(id, a.peer);
    changed = true;
  }
  if (changed) SaveAddressBook();
}

// ---- lifecycle and the Ready loop ----

Status GroupHost::Start() {
  SYNOD_RETURN_IF_ERROR(transport_->Start());
  storage_work_.emplace(asio::make_work_guard(storage_io_));
  storage_thread_ = std::thread([this] { storage_io_.run(); });
  ScheduleTick();
  Kick();
  logger_.Info("event=host_started peer={} cluster_id={:016x} groups={} members=\"{}\"",
               transport_->bound_address(), db_->cluster_id(), store_->group_count(),
               FormatMemberList(members_));
  return Status::Ok();
}

void GroupHost::Stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_timer_.cancel();
  // Streams end before the transport (a sender's cancel may still go) and the storage.
  if (streams_) streams_->Stop();
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
  // Requests routed elsewhere or waiting for a leader get their answer now, moves too.
  if (scripts_) scripts_->Stop();
  if (router_) router_->Stop();
  for (auto& [g, m] : std::exchange(moves_, {})) {
    m.done(Status::Unavailable("the node shut down; the move's steps taken stand"));
  }
  // The state applied since the last write waits for the next one; a clean stop writes it, so
  // that the next start replays no entries it need not (after a crash it replays them).
  if (db_ && db_->failure().ok() && store_) {
    for (GroupId g : store_->groups()) store_->replica(g)->FlushState();
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
  streams_->Tick();
  // Often: a move waits for its learner's promotion (a glance at each led group's learners).
  if (ticks_ % 2 == 0) MaybePromoteLearners();
  if (draining_) {
    if (ticks_ % 4 == 0) TransferLeadership(kNoNode);
  } else if (ticks_ % kBalanceTicks == kBalanceTicks / 2) {
    MaybeBalanceLeaders();
  }
  NoticeLeaders(ticks_ % kNoticeTicks == 0);
  if (ticks_ % static_cast<uint64_t>(opts_.heartbeat_ticks) == 0) BeatAndWatchPeers();
  // Every second; until it first has the settings, every tick (a node without a meta replica).
  if (ticks_ % kNoticeTicks == 1 || std::exchange(meta_read_due_, false) ||
      (!fetched_requirepass_ && MetaStateMachine(/*need_leader=*/false) == nullptr)) {
    FetchReplicatedConfig();
  }
  // After a membership change; else every ten seconds, in case a proposal was lost.
  if (ticks_ % (10 * kNoticeTicks) == 3 || std::exchange(descriptors_due_, false)) {
    ProposeDescriptors();
  }
  if (ticks_ % kNoticeTicks == 5) MaybeSplitBySize();
  if (ticks_ % kNoticeTicks == 13) MaybeSplitByLoad();
  // Every fifth of a second while moves run: each step waits for the one before.
  if (ticks_ % 4 == 3 && !moves_.empty()) DriveMoves();
  if (ticks_ % kNoticeTicks == 11) RunPlacement();
  if (ticks_ % kNoticeTicks == 15) ResolveFrozenShards();
  if (ticks_ % kNoticeTicks == 19) {
    OweAbsorbedTombstones();
    if (!tombstones_due_.empty()) WriteDueTombstones();
  }
  if (ticks_ % kNoticeTicks == 17) MaybeMergeSmallShards();
  if (ticks_ % kThrottleTicks == 2) ThrottleStreams();
  // Every second, not only when descriptors change: a round in flight may have put it off.
  if (ticks_ % kNoticeTicks == 9) JoinListedGroups();
  // The active expiry cycle: every other tick the leader proposes the deletion of keys that
  // are due (reads already treat them as absent; this frees them everywhere).
  if (ticks_ % 2 == 0) store_->ProposeExpiry(env::WallNowMs(), kExpiryKeysPerRound);
  // Routed requests: hops past their deadline fail over; those waiting for a leader try again.
  router_->Tick(SteadyNowNs());
  scripts_->Tick();
  SyncRouterCounters();
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
  LearnSplits();
  ForgetRemovedGroups();
  LearnMerges();
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

// ---- leadership ----

int GroupHost::TransferLeadership(NodeId to) {
  int handed = 0;
  for (GroupId g : store_->groups()) {
    Replica* r = store_->replica(g);
    const raft::Raft& raft = r->raw_node().raft();
    if (raft.role() != raft::Role::kLeader) continue;
    NodeId target = to;
    if (target == kNoNode || !raft.config().IsVoter(target)) {
      LogIndex best_match;
      target = kNoNode;
      for (NodeId v : raft.config().voters.Ids()) {
        const raft::Progress* p = raft.progress(v);
        if (v != opts_.id && p != nullptr && (target == kNoNode || p->match > best_match)) {
          target = v;
          best_match = p->match;
        }
      }
    }
    if (target == kNoNode || target == opts_.id) continue;
    if (r->TransferLeadership(target).ok()) ++handed;
    store_->Touch(g);
  }
  Kick();
  return handed;
}

int GroupHost::Drain() {
  draining_ = true;
  return TransferLeadership(kNoNode);
}

int GroupHost::groups_led() const {
  int n = 0;
  for (GroupId g : store_->groups()) {
    n += store_->replica(g)->raw_node().raft().role() == raft::Role::kLeader ? 1 : 0;
  }
  return n;
}

bool GroupHost::CanHandOff() const {
  for (GroupId g : store_->groups()) {
    const raft::Raft& r = store_->replica(g)->raw_node().raft();
    if (r.role() == raft::Role::kLeader && r.config().voters.Ids().size() > 1) return true;
  }
  return false;
}

void GroupHost::MaybeBalanceLeaders() {
  // A shard led here whose preferred leader (its layout's first voter) is a voter, in touch and
  // caught up goes back to it: leaders stay spread as the layout planned them. "In touch" is the
  // transport's view (a message within an election timeout): Raft's recent_active flag is
  // reset at every quorum check, in step with this check's ticks.
  const int64_t now = SteadyNowNs();
  const int64_t recent_ns = opts_.election_ticks * opts_.tick_ms * 1'000'000;
  std::set<NodeId> in_touch;
  for (const auto& ps : transport_->Stats()) {
    if (ps.connected && ps.last_received_ns > 0 && now - ps.last_received_ns < recent_ns) {
      in_touch.insert(ps.id);
    }
  }
  for (GroupId g : store_->groups()) {
    Replica* r = store_->replica(g);
    const raft::Raft& raft = r->raw_node().raft();
    const ShardDescriptor* d = map_->Find(g);
    if (raft.role() != raft::Role::kLeader || d == nullptr || d->voters.empty()) continue;
    const NodeId preferred = d->voters.front();
    if (preferred == opts_.id || !raft.config().IsVoter(preferred) || raft.config().IsJoint()) {
      continue;
    }
    const raft::Progress* p = raft.progress(preferred);
    if (p == nullptr || !in_touch.contains(preferred) || p->match != raft.log().LastIndex()) {
      continue;
    }
    if (r->TransferLeadership(preferred).ok()) {
      counters_.leader_balance_transfers.fetch_add(1, std::memory_order_relaxed);
      logger_.Info("event=leader_balance group={} to={}", g.value(), preferred.value());
    }
    store_->Touch(g);
  }
}

void GroupHost::MaybePromoteLearners() {
  for (GroupId g : store_->groups()) {
    Replica* replica = store_->replica(g);
    const raft::Raft& r = replica->raw_node().raft();
    if (r.role() != raft::Role::kLeader || r.config().IsJoint() || r.HasUnappliedConfChanges()) {
      continue;
    }
    const LogIndex last = r.log().LastIndex();
    for (NodeId l : r.config().learners) {
      const raft::Progress* p = r.progress(l);
      if (p == nullptr || p->match.value() + opts_.promote_lag_entries_max < last.value()) continue;
      raft::ConfChange cc;
      cc.transition = raft::ConfChangeTransition::kJointImplicit;
      cc.changes.push_back({raft::ConfChangeType::kAddNode, l});
      Status s = replica->ProposeConfChange(cc);
      store_->Touch(g);  // OnTick kicks afterwards
      logger_.Info("event=promote_learner group={} node={} match={} last={} result=\"{}\"",
                   g.value(), l.value(), p->match.value(), last.value(), s.ToString());
      break;  // one change at a time per group
    }
  }
}

void GroupHost::OnApply(NodeId, GroupId, const raft::Entry& entry) {
  if (entry.type != raft::EntryType::kConfChange) return;
  auto cc = raft::ConfChange::Decode(entry.data);
  if (!cc.ok()) return;
  LearnAddresses(cc->context);
  descriptors_due_ = true;  // the leader proposes the new members at the next tick
  logger_.Info("event=conf_change_applied index={} change=\"{}\"", entry.index.value(),
               cc->ToString());
}

void GroupHost::OnSnapshot(NodeId, GroupId, const raft::SnapshotMeta& meta) {
  logger_.Info("event=snapshot_installed index={} term={}", meta.index.value(), meta.term.value());
}

void GroupHost::OnSoftState(NodeId, GroupId group, const raft::SoftState& ss, Term term) {
  roles_changed_ = true;  // the next tick's NoticeLeaders looks
  // A new meta leader judges nodes dead only after a whole timeout of its own.
  if (group == kMetaGroup && ss.role == raft::Role::kLeader) meta_leader_since_ns_ = SteadyNowNs();
  // A new leader compares its shard's descriptor at the next tick: the change that elected it
  // (a removed leader, a move) may not be in the meta shard yet.
  if (ss.role == raft::Role::kLeader) descriptors_due_ = true;
  logger_.Debug("event=role_changed role={} term={} leader={}", RoleText(ss.role), term.value(),
                ss.lead.value());
}

// ---- views ----

uint64_t GroupHost::cluster_id() const { return db_->cluster_id(); }

std::vector<ShardView> GroupHost::Shards() const {
  std::vector<ShardView> out;
  for (const ShardDescriptor& d : map_->layout().shards) {
    ShardView v;
    v.desc = d;  // as the meta shard holds it (the same on every node, once learnt)
    v.leader = LeaderHint(d.group);
    out.push_back(std::move(v));
  }
  return out;
}

NodeId GroupHost::LeaderForSlot(uint16_t slot) const {
  return LeaderHint(map_->ForSlot(slot).group);
}

NodeId GroupHost::leader() const { return LeaderHint(kMetaGroup); }

bool GroupHost::is_leader() const {
  const Replica* m = store_->replica(kMetaGroup);
  return m != nullptr && m->raw_node().raft().role() == raft::Role::kLeader;
}

HostStatus GroupHost::GetStatus() const {
  HostStatus st;
  st.id = opts_.id;
  st.cluster_id = db_->cluster_id();
  st.disk_bytes = db_->disk_bytes();
  const std::vector<GroupId> groups = store_->groups();
  for (GroupId g : groups) {
    const Replica* r = store_->replica(g);
    const raft::Raft& raft = r->raw_node().raft();
    GroupStatus gs;
    gs.group = g;
    gs.role = RoleText(raft.role());
    gs.term = raft.term();
    gs.leader = raft.soft_state().lead;
    gs.commit = raft.log().committed();
    gs.applied = r->state_machine().applied_index();
    gs.last_index = raft.log().LastIndex();
    gs.keys = r->state_machine().key_count();
    gs.bytes = r->state_machine().keyspace().bytes();
    gs.one_hot_slot = one_hot_slot_.contains(g) || hot_slot_by_load_.contains(g);
    if (const auto& frozen = r->state_machine().frozen()) gs.merging_into = frozen->into;
    gs.writes_per_second = raft.role() == raft::Role::kLeader ? load_.Rate(g) : 0;
    gs.quiesced = store_->quiesced(g);
    st.groups_quiesced += gs.quiesced ? 1 : 0;
    if (g != kMetaGroup) st.keys += gs.keys;
    st.groups_led += raft.role() == raft::Role::kLeader ? 1 : 0;
    if (r->failed() && st.failure.empty()) {
      st.failure = "shard " + std::to_string(g.value()) + ": " + r->failure().ToString();
    }
    st.groups.push_back(std::move(gs));
  }
  if (groups.empty()) {  // a node that joined and holds no replica yet
    st.role = "none";
    return st;
  }
  // The top-level view: the first data shard held (with one data shard, the group that holds
  // every key), else the meta shard.
  GroupId top = groups.front();
  for (GroupId g : groups) {
    if (g != kMetaGroup) {
      top = g;
      break;
    }
  }
  const Replica* replica = store_->replica(top);
  const raft::Raft& r = replica->raw_node().raft();
  st.role = RoleText(r.role());
  st.term = r.term();
  st.leader = r.soft_state().lead;
  st.commit = r.log().committed();
  st.applied = replica->state_machine().applied_index();
  st.last_index = r.log().LastIndex();
  st.snapshot_index = store_->storage(top)->snapshot().meta.index;
  st.joint = r.config().IsJoint();
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
