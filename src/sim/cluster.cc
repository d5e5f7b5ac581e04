#include "sim/cluster.h"

#include <algorithm>

#include "common/assert.h"
#include "common/slot.h"
#include "kv/state_machine.h"

namespace synod::sim {

namespace {

uint64_t Fnv(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t EntryHash(const raft::Entry& e) {
  uint64_t h = Fnv(0xcbf29ce484222325ull, e.data);
  return h ^ static_cast<uint64_t>(e.type);
}

}  // namespace

struct SimCluster::Node {
  NodeId id;
  std::unique_ptr<SimDisk> disk = std::make_unique<SimDisk>();
  std::unique_ptr<NodeTransport> transport;
  std::unique_ptr<storage::WalStorage> wal;
  // Node storage (ClusterOptions::node_storage): the real node's storage path — a NodeDb over
  // an in-memory engine that survives crashes, the group's GroupStorage in it, and the
  // node write the host makes durable (one at a time) after a simulated fsync. The group's
  // replica lives in the node's cluster::Store, as in the real node.
  storage::MemEngine engine;
  std::unique_ptr<storage::NodeDb> db;
  std::unique_ptr<cluster::Store> store;
  std::optional<storage::NodeDb::Write> write_in_flight;
  std::unique_ptr<cluster::Replica> owned_replica;  // WalStorage mode
  cluster::Replica* replica = nullptr;              // the one group's replica (unsharded)
  // Sharded: the node's view of the shards, its router, and the groups it is to hold (the
  // layout's, and those a membership change added it to).
  std::unique_ptr<cluster::ShardMap> map;
  std::unique_ptr<RequestOut> request_out;
  std::unique_ptr<cluster::RequestRouter> router;
  std::set<GroupId> wanted;
  // Sharded: keeping the map in step with the descriptors in the meta shard, as the real node
  // does (cluster/logic/descriptors.h): the epochs the meta shard was last seen to hold, the
  // proposals in flight, the session they go in, a read in flight, and a membership change
  // applied since the last proposals.
  std::optional<cluster::Layout> saved_layout;  // the map as last learnt (survives crashes)
  std::map<GroupId, uint64_t> meta_epochs;
  bool meta_epochs_known = false;
  std::set<GroupId> proposing;
  bool fetching = false;
  bool descriptors_due = false;
  bool started = false;  // ever booted (its disk holds a log)
  bool up = false;
  bool paused = false;
  uint64_t incarnation = 0;
  double clock_rate = 1.0;
  int64_t wall_skew_ms = 0;
  uint64_t ticks = 0;  // ticks in this incarnation, for the expiry cadence
  // Quiescence: when each peer was last heard from (any message), and the peers reported down.
  std::map<NodeId, int64_t> last_heard;
  std::set<NodeId> silent;
  std::vector<std::function<void()>> held;  // work held while paused
  std::map<GroupId, Seen> seen;             // per replica, in this incarnation
};

class SimCluster::RequestOut final : public cluster::RequestTransport {
 public:
  RequestOut(SimCluster* c, NodeId id) : c_(c), id_(id) {}
  void SendRequest(NodeId to, uint64_t id, const cluster::ShardRequest& req) override {
    c_->SendCall(id_, to, id, cluster::EncodeShardRequest(req), /*response=*/false);
  }
  void SendResponse(NodeId to, uint64_t id, const cluster::ShardResponse& resp) override {
    c_->SendCall(id_, to, id, cluster::EncodeShardResponse(resp), /*response=*/true);
  }
  void Wake() override {
    // Run the node's rounds after the current event (the real node posts a kick).
    c_->loop_->After(0, [c = c_, id = id_, inc = c_->node(id_).incarnation] {
      c->OnNode(
          id, inc, [c, id] { c->Pump(c->node(id)); }, true);
    });
  }

 private:
  SimCluster* c_;
  NodeId id_;
};

class SimCluster::NodeTransport final : public cluster::RaftTransport {
 public:
  NodeTransport(SimCluster* c, NodeId id) : c_(c), id_(id) {}
  void Send(GroupId group, raft::Message msg) override {
    c_->SendMessage(id_, group, std::move(msg));
  }
  void SendQuiesce(NodeId to, GroupId group, Term term, LogIndex index) override {
    ++c_->quiesce_notices_;
    c_->SendControl(id_, to, [from = id_, group, term, index](cluster::Store& s) {
      s.ReceiveQuiesce(from, group, term, index);
    });
  }
  void SendWake(NodeId to, GroupId group) override {
    c_->SendControl(id_, to,
                    [from = id_, group](cluster::Store& s) { s.ReceiveWake(from, group); });
  }

 private:
  SimCluster* c_;
  NodeId id_;
};

SimCluster::SimCluster(EventLoop* loop, env::Random* rng, SimNetwork* net, ClusterOptions opts,
                       Logger logger)
    : loop_(loop), rng_(rng), net_(net), opts_(std::move(opts)), logger_(std::move(logger)) {
  for (int i = 1; i <= opts_.nodes + opts_.spare_nodes; ++i) {
    auto n = std::make_unique<Node>();
    n->id = NodeId(static_cast<uint64_t>(i));
    n->transport = std::make_unique<NodeTransport>(this, n->id);
    double d = opts_.clock_drift_max;
    n->clock_rate =
        1.0 + (d > 0 ? (static_cast<double>(rng_->Uniform(2001)) / 1000.0 - 1.0) * d : 0);
    int64_t skew = opts_.wall_skew_ms_max;
    n->wall_skew_ms = skew > 0 ? rng_->Range(-skew, skew) : 0;
    nodes_.emplace(n->id, std::move(n));
  }
  if (opts_.shards > 0) {
    SYNOD_ASSERT_MSG(opts_.node_storage, "sim: a sharded cluster runs the node storage");
    std::vector<NodeId> initial;
    for (int i = 1; i <= opts_.nodes; ++i) initial.push_back(NodeId(static_cast<uint64_t>(i)));
    auto layout =
        cluster::MakeInitialLayout(initial, opts_.shards, std::min(opts_.replicas, opts_.nodes));
    SYNOD_ASSERT_MSG(layout.ok(), "sim: bad layout options");
    layout_ = std::move(layout).value();
    for (auto& [id, n] : nodes_) {
      auto lists = [&, id = id](const cluster::ShardDescriptor& d) {
        return std::find(d.voters.begin(), d.voters.end(), id) != d.voters.end();
      };
      if (lists(layout_->meta)) n->wanted.insert(layout_->meta.group);
      for (const cluster::ShardDescriptor& d : layout_->shards) {
        if (lists(d)) n->wanted.insert(d.group);
      }
    }
  }
}

SimCluster::~SimCluster() {
  // The run ended with writes in flight: report them, so that the stores close balanced.
  for (auto& [id, n] : nodes_) {
    if (!n->write_in_flight) continue;
    n->write_in_flight.reset();
    n->db->OnWritten(Status::IoError("the simulation ended"));
  }
}

SimCluster::Node& SimCluster::node(NodeId id) {
  auto it = nodes_.find(id);
  SYNOD_ASSERT(it != nodes_.end());
  return *it->second;
}

const SimCluster::Node& SimCluster::node(NodeId id) const {
  auto it = nodes_.find(id);
  SYNOD_ASSERT(it != nodes_.end());
  return *it->second;
}

void SimCluster::Trace(std::string_view event) {
  trace_hash_ = Fnv(trace_hash_, std::to_string(loop_->now()));
  trace_hash_ = Fnv(trace_hash_, event);
}

void SimCluster::Start() {
  for (int i = 1; i <= opts_.nodes; ++i) Boot(node(NodeId(static_cast<uint64_t>(i))), true);
}

void SimCluster::StartSpare(NodeId id) {
  Node& n = node(id);
  if (n.started) return;
  Boot(n, false);
}

void SimCluster::Boot(Node& n, bool bootstrap) {
  SYNOD_ASSERT(!n.up);
  Status opened = opts_.node_storage ? OpenNodeStore(n, bootstrap) : OpenWal(n, bootstrap);
  if (!opened.ok()) {
    if (opened.code() == Code::kIoError) {
      // A full disk keeps the node down (as it would a real process); healing retries.
      Trace("boot-failed " + std::to_string(n.id.value()));
      return;
    }
    Violate("node " + std::to_string(n.id.value()) +
            " cannot recover its log: " + opened.ToString());
    return;
  }
  n.ticks = 0;
  n.last_heard.clear();
  n.silent.clear();
  SetWallClock(n);
  n.started = true;
  n.up = true;
  n.paused = false;
  n.held.clear();
  n.seen.clear();
  // The descriptor work of the last incarnation died with it (its answers never come).
  n.proposing.clear();
  n.fetching = false;
  n.meta_epochs.clear();
  n.meta_epochs_known = false;
  for (auto [group, r] : Held(n)) {
    Seen& seen = n.seen[group];
    seen.commit = r->raw_node().raft().log().committed();
    seen.applied = r->raw_node().raft().log().applied();
  }
  Trace("boot " + std::to_string(n.id.value()));
  ScheduleTick(n);
  Pump(n);
}

Status SimCluster::OpenWal(Node& n, bool bootstrap) {
  auto wal = storage::WalStorage::Open(n.disk.get(), opts_.cluster_id);
  if (!wal.ok()) return wal.status();
  n.wal = std::move(wal).value();
  if (bootstrap && n.wal->recovery_stats().created) {
    // A new cluster: every initial voter starts from the same snapshot holding the initial
    // configuration and an empty state machine.
    raft::Snapshot s;
    s.meta.index = LogIndex(1);
    s.meta.term = Term(1);
    for (int i = 1; i <= opts_.nodes; ++i) {
      s.meta.conf_state.voters.insert(NodeId(static_cast<uint64_t>(i)));
    }
    s.data = kv::StateMachine(opts_.replica.kv).Snapshot();
    Status st = n.wal->Save(s, {}, raft::HardState{Term(1), kNoNode, LogIndex(1)});
    if (st.ok()) st = n.wal->Sync();
    SYNOD_ASSERT_MSG(st.ok(), "sim: bootstrap write failed");
    n.disk->CompleteSync();
  }
  cluster::ReplicaOptions ro = opts_.replica;
  ro.raft.id = n.id;
  ro.raft.random_seed = rng_->Next() | 1;
  auto r = cluster::Replica::Create(ro, n.transport.get(), n.wal.get(), this,
                                    logger_.With("node=" + std::to_string(n.id.value()) + " "));
  if (!r.ok()) {
    n.wal.reset();
    return Status::Corruption("cannot start: " + r.status().ToString());
  }
  n.owned_replica = std::move(r).value();
  n.replica = n.owned_replica.get();
  return Status::Ok();
}

Status SimCluster::OpenNodeStore(Node& n, bool bootstrap) {
  auto db =
      storage::NodeDb::Open(&n.engine, "node-" + std::to_string(n.id.value()), opts_.cluster_id);
  if (!db.ok()) return db.status();
  n.db = std::move(db).value();
  cluster::StoreOptions so;
  so.self = n.id;
  so.replica = opts_.replica;
  so.random_seed = rng_->Next();
  so.quiesce_after_ticks = opts_.quiesce_after_ticks;
  n.store =
      std::make_unique<cluster::Store>(so, n.db.get(), n.transport.get(), this,
                                       logger_.With("node=" + std::to_string(n.id.value()) + " "));
  if (sharded()) {
    // The groups with records (a restart), and those it is to hold: the layout's (bootstrapped
    // with the layout's voters by the initial nodes whose storage holds nothing of them) and
    // those it was added to since (started empty: they wait for the leader's snapshot).
    auto stored = n.db->StoredGroups();
    if (!stored.ok()) return stored.status();
    n.wanted.insert(stored->begin(), stored->end());
    n.map = std::make_unique<cluster::ShardMap>(n.saved_layout ? *n.saved_layout : *layout_);
    std::vector<const cluster::ShardDescriptor*> all{&layout_->meta};
    for (const cluster::ShardDescriptor& d : layout_->shards) all.push_back(&d);
    for (const cluster::ShardDescriptor* d : all) {
      if (!n.wanted.contains(d->group)) continue;
      std::set<NodeId> voters;
      const bool listed = std::find(d->voters.begin(), d->voters.end(), n.id) != d->voters.end();
      if (bootstrap && listed) voters.insert(d->voters.begin(), d->voters.end());
      const storage::StateSpan span = d->group == cluster::kMetaGroup
                                          ? storage::StateSpan::Group()
                                          : storage::StateSpan::Slots(d->first_slot, d->last_slot);
      const Status added = n.store->AddGroup(d->group, span, voters);
      if (!added.ok()) {
        n.store.reset();
        n.db.reset();
        return added.code() == Code::kIoError
                   ? added
                   : Status::Corruption("cannot start: " + added.ToString());
      }
    }
    if (!n.request_out) n.request_out = std::make_unique<RequestOut>(this, n.id);
    cluster::RouterOptions ro;
    ro.self = n.id;
    ro.request_timeout_ms = opts_.request_timeout_ms;
    ro.hosted_wait_ticks = 2 * opts_.replica.raft.election_ticks;
    // A new range of request ids per incarnation (RouterOptions::first_request_id).
    ro.first_request_id = (n.incarnation + 1) << 32;
    n.router = std::make_unique<cluster::RequestRouter>(
        ro, n.map.get(), n.store.get(), n.request_out.get(),
        logger_.With("node=" + std::to_string(n.id.value()) + " "));
    return Status::Ok();
  }
  // Initial voters bootstrap the group when their storage holds nothing of it.
  std::set<NodeId> voters;
  if (bootstrap) {
    for (int i = 1; i <= opts_.nodes; ++i) voters.insert(NodeId(static_cast<uint64_t>(i)));
  }
  const Status added =
      n.store->AddGroup(opts_.replica.group, storage::StateSpan::Slots(0, kSlotCount - 1), voters);
  if (!added.ok()) {
    n.store.reset();
    n.db.reset();
    return added.code() == Code::kIoError ? added
                                          : Status::Corruption("cannot start: " + added.ToString());
  }
  n.replica = n.store->replica(opts_.replica.group);
  return Status::Ok();
}

void SimCluster::OpenWanted(Node& n) {
  if (!sharded() || !n.store || n.store->round_in_flight()) return;
  for (GroupId g : n.wanted) {
    if (n.store->HasGroup(g)) continue;
    const cluster::ShardDescriptor* d = n.map->Find(g);
    SYNOD_ASSERT(d != nullptr);
    const storage::StateSpan span = g == cluster::kMetaGroup
                                        ? storage::StateSpan::Group()
                                        : storage::StateSpan::Slots(d->first_slot, d->last_slot);
    const Status added = n.store->AddGroup(g, span, {});
    if (!added.ok()) {
      // The disk refused the group's first records: the node's writes fail from now on, and
      // the fault's healing restarts it; it opens the group then.
      Trace("add-group-failed " + std::to_string(n.id.value()) + " " + std::to_string(g.value()));
      continue;
    }
    cluster::Replica* r = n.store->replica(g);
    Seen& seen = n.seen[g];
    seen = Seen{};
    seen.commit = r->raw_node().raft().log().committed();
    seen.applied = r->raw_node().raft().log().applied();
    Trace("add-group " + std::to_string(n.id.value()) + " " + std::to_string(g.value()));
  }
}

void SimCluster::ScheduleTick(Node& n) {
  auto interval = static_cast<int64_t>(static_cast<double>(opts_.tick_ns) * n.clock_rate);
  uint64_t inc = n.incarnation;
  NodeId id = n.id;
  loop_->After(interval, [this, id, inc] {
    Node& n = node(id);
    if (n.incarnation != inc || !n.up) return;
    if (!n.paused) {
      SetWallClock(n);
      const int every = opts_.expiry_every_ticks;
      ++n.ticks;
      const bool expiry = every > 0 && n.ticks % static_cast<uint64_t>(every) == 0;
      if (n.store) {
        n.store->Tick();
        if (expiry) n.store->ProposeExpiry(WallMs(id), opts_.expiry_limit);
        const auto beat_every = static_cast<uint64_t>(opts_.replica.raft.heartbeat_ticks);
        if (opts_.quiesce_after_ticks > 0 && n.ticks % beat_every == 0) BeatAndWatchPeers(n);
        if (n.router) n.router->Tick(loop_->now());
        // Every second, and after a membership change, as the real node does.
        if (n.router && (n.ticks % 100 == 0 || std::exchange(n.descriptors_due, false))) {
          SyncDescriptors(n);
        }
      } else {
        n.replica->Tick();
        if (expiry) n.replica->ProposeExpiry(WallMs(id), opts_.expiry_limit);  // leader only
      }
      Pump(n);
    }
    ScheduleTick(n);  // a paused process's timer fires late, not many times: skip the tick
  });
}

void SimCluster::OnNode(NodeId id, uint64_t incarnation, std::function<void()> fn,
                        bool hold_if_paused) {
  Node& n = node(id);
  if (n.incarnation != incarnation || !n.up) return;
  if (n.paused) {
    if (hold_if_paused) n.held.push_back(std::move(fn));
    return;
  }
  fn();
}

void SimCluster::Pump(Node& n) {
  if (n.store) return PumpStore(n);
  while (n.up && !n.paused && n.replica->HasReady()) {
    bool sync = n.replica->BeginReady();
    if (!sync) {
      n.replica->FinishReady();
      continue;
    }
    // The fsync takes time; only when it completes is the data durable and may the replica
    // act on it. A crash before then loses it.
    AfterFsync(n, [](Node& n) {
      n.disk->CompleteSync();
      n.replica->FinishReady();
    });
    return;
  }
}

void SimCluster::AfterFsync(Node& n, std::function<void(Node&)> done) {
  const int64_t latency = rng_->Range(opts_.fsync_min_ns, opts_.fsync_max_ns);
  loop_->After(latency, [this, id = n.id, inc = n.incarnation, done = std::move(done)] {
    OnNode(
        id, inc,
        [this, id, done] {
          Node& n = node(id);
          done(n);
          Pump(n);
        },
        true);
  });
}

void SimCluster::PumpStore(Node& n) {
  OpenWanted(n);
  while (n.up && !n.paused && n.store->HasWork()) {
    if (!n.store->BeginRound()) continue;
    // As the real node's storage thread: the round's node write is taken now and written when
    // the fsync completes; only then may the groups act on it. A crash before may lose it.
    SYNOD_ASSERT(!n.write_in_flight);
    n.write_in_flight = n.db->TakeWrite();
    AfterFsync(n, [this](Node& n) { n.store->FinishRound(FinishNodeWrite(n)); });
    return;
  }
}

void SimCluster::SendMessage(NodeId from, GroupId group, raft::Message m) {
  NodeId to = m.to;
  if (nodes_.find(to) == nodes_.end()) return;
  Trace(std::to_string(from.value()) + ">" + std::to_string(to.value()) + " " +
        raft::MessageTypeName(m.type) + " t" + std::to_string(m.term.value()) + " i" +
        std::to_string(m.index.value()) + " n" + std::to_string(m.entries.size()));
  auto shared = std::make_shared<raft::Message>(std::move(m));
  net_->Send(from, to, [this, from, to, group, shared] {
    Node& n = node(to);
    OnNode(
        to, n.incarnation,
        [this, from, to, group, shared] {
          Node& n = node(to);
          n.last_heard[from] = loop_->now();
          SetWallClock(n);  // a leader restamps forwarded timed commands with it
          if (n.store) {
            (void)n.store->Receive(group, *shared);
          } else {
            n.replica->Receive(*shared);
          }
          Pump(n);
        },
        true);
  });
}

void SimCluster::SendControl(NodeId from, NodeId to, std::function<void(cluster::Store&)> fn) {
  if (nodes_.find(to) == nodes_.end()) return;
  auto shared = std::make_shared<std::function<void(cluster::Store&)>>(std::move(fn));
  net_->Send(from, to, [this, from, to, shared] {
    OnNode(
        to, node(to).incarnation,
        [this, from, to, shared] {
          Node& n = node(to);
          n.last_heard[from] = loop_->now();
          if (!n.store) return;
          (*shared)(*n.store);
          Pump(n);
        },
        true);
  });
}

void SimCluster::BeatAndWatchPeers(Node& n) {
  // The election timeout in this node's ticks, as the real node measures it on its clock.
  const auto timeout = static_cast<int64_t>(static_cast<double>(opts_.tick_ns) * n.clock_rate *
                                            opts_.replica.raft.election_ticks);
  for (auto& [id, peer] : nodes_) {
    if (id == n.id) continue;
    SendControl(n.id, id, [](cluster::Store&) {});
    auto heard = n.last_heard.find(id);
    const bool silent = heard == n.last_heard.end() || loop_->now() - heard->second >= timeout;
    if (!silent) {
      n.silent.erase(id);
    } else if (n.silent.insert(id).second) {
      Trace("peer-down " + std::to_string(n.id.value()) + ">" + std::to_string(id.value()));
      n.store->PeerDown(id);
      if (n.router) n.router->PeerUnreachable(id, loop_->now());
    }
  }
}

void SimCluster::Submit(NodeId id, const kv::Command& cmd, cluster::ReadMode mode,
                        std::function<void(cluster::ClientReply)> reply) {
  // Clients reach nodes over the network too: one hop there, one back.
  int64_t hop = rng_->Range(200 * kMicro, 2 * kMilli);
  Node& target = node(id);
  uint64_t inc = target.incarnation;
  auto cb = std::make_shared<std::function<void(cluster::ClientReply)>>(std::move(reply));
  loop_->After(hop, [this, id, inc, cmd, mode, cb] {
    OnNode(
        id, inc,
        [this, id, cmd, mode, cb] {
          Node& n = node(id);
          SetWallClock(n);
          kv::Command stamped = cmd;
          if (stamped.now_ms != 0) stamped.now_ms = WallMs(id);
          if (n.router) {
            Route(n, std::move(stamped), ReplyBack(cb));
          } else if (n.store) {
            n.store->Submit(opts_.replica.group, stamped, mode, ReplyBack(cb));
          } else {
            n.replica->Submit(stamped, mode, ReplyBack(cb));
          }
          Pump(n);
        },
        true);
  });
}

void SimCluster::SubmitRead(NodeId id, cluster::ReadFn fn, cluster::ReadMode mode,
                            std::function<void(cluster::ClientReply)> reply) {
  SYNOD_ASSERT_MSG(!sharded(), "sim: a sharded cluster takes reads by SubmitRequest");
  int64_t hop = rng_->Range(200 * kMicro, 2 * kMilli);
  uint64_t inc = node(id).incarnation;
  auto cb = std::make_shared<std::function<void(cluster::ClientReply)>>(std::move(reply));
  auto shared_fn = std::make_shared<cluster::ReadFn>(std::move(fn));
  loop_->After(hop, [this, id, inc, shared_fn, mode, cb] {
    OnNode(
        id, inc,
        [this, id, shared_fn, mode, cb] {
          Node& n = node(id);
          SetWallClock(n);
          if (n.store) {
            n.store->SubmitRead(opts_.replica.group, *shared_fn, mode, ReplyBack(cb));
          } else {
            n.replica->SubmitRead(*shared_fn, mode, ReplyBack(cb));
          }
          Pump(n);
        },
        true);
  });
}

void SimCluster::SubmitRequest(NodeId id, const std::string& route_key, cluster::ShardRequest req,
                               std::function<void(cluster::ClientReply)> reply) {
  SYNOD_ASSERT(sharded());
  int64_t hop = rng_->Range(200 * kMicro, 2 * kMilli);
  uint64_t inc = node(id).incarnation;
  auto cb = std::make_shared<std::function<void(cluster::ClientReply)>>(std::move(reply));
  req.group = GroupOfKey(route_key);
  auto shared = std::make_shared<cluster::ShardRequest>(std::move(req));
  loop_->After(hop, [this, id, inc, shared, cb] {
    OnNode(
        id, inc,
        [this, id, shared, cb] {
          Node& n = node(id);
          SetWallClock(n);
          shared->now_ms = WallMs(id);
          n.router->Call(
              *shared,
              [back = ReplyBack(cb)](cluster::ShardResponse r) {
                back(cluster::ClientReply{std::move(r.status), std::move(r.reply), r.index});
              },
              loop_->now());
          Pump(n);
        },
        true);
  });
}

namespace {

// The key a command is routed by: its key, else its first argument (a Redis command's first
// key), else the first sub-command's (a batch).
std::string RouteKeyOf(const kv::Command& cmd) {
  if (!cmd.key.empty()) return cmd.key;
  if (cmd.op == kv::Op::kRedis && cmd.args.size() > 1) return cmd.args[1];
  for (const kv::Command& sub : cmd.batch) {
    std::string k = RouteKeyOf(sub);
    if (!k.empty()) return k;
  }
  return "";
}

// The keys a command touches, as far as routing is concerned (Redis commands: every argument
// after the name that the command table would call a key is a superset of its first; the
// workloads' multi-key commands keep their keys in one hash tag, so the first suffices).
void KeysOf(const kv::Command& cmd, std::vector<std::string>* out) {
  if (!cmd.key.empty()) out->push_back(cmd.key);
  if (cmd.op == kv::Op::kRedis && cmd.args.size() > 1) out->push_back(cmd.args[1]);
  for (const kv::Command& sub : cmd.batch) KeysOf(sub, out);
}

}  // namespace

void SimCluster::Route(Node& n, kv::Command cmd, cluster::ReplyFn reply) {
  const GroupId group = GroupOfKey(RouteKeyOf(cmd));
  if (cmd.client_id != 0) {
    ShardSession& ss = shard_sessions_[{cmd.client_id, group}];
    uint64_t shard_seq = 0;
    if (auto it = ss.seqs.find(cmd.seq); it != ss.seqs.end()) {
      shard_seq = it->second;  // a retry
    } else if (cmd.seq > ss.last_seq) {
      ss.last_seq = cmd.seq;
      shard_seq = ++ss.shard_seq;
      ss.seqs[cmd.seq] = shard_seq;
    } else {
      // An attempt held up (on a paused node) past its client's later commands: the client
      // gave up on it; a real connection's reply would go nowhere either.
      Trace("late-attempt");
      return;
    }
    const uint64_t shard_client = cmd.client_id * 64 + group.value();
    session_origin_[{shard_client, shard_seq}] = {cmd.client_id, cmd.seq};
    cmd.client_id = shard_client;
    cmd.seq = shard_seq;
  }
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kWrite;
  req.group = group;
  req.command = std::move(cmd);
  n.router->Call(
      std::move(req),
      [reply = std::move(reply)](cluster::ShardResponse r) {
        reply(cluster::ClientReply{std::move(r.status), std::move(r.reply), r.index});
      },
      loop_->now());
}

void SimCluster::SendCall(NodeId from, NodeId to, uint64_t id, std::string bytes, bool response) {
  if (nodes_.find(to) == nodes_.end()) return;
  if (!response) ++requests_forwarded_;
  Trace(std::to_string(from.value()) + ">" + std::to_string(to.value()) +
        (response ? " response " : " request ") + std::to_string(id));
  auto shared = std::make_shared<std::string>(std::move(bytes));
  net_->Send(from, to, [this, from, to, id, shared, response] {
    OnNode(
        to, node(to).incarnation,
        [this, from, to, id, shared, response] {
          Node& n = node(to);
          n.last_heard[from] = loop_->now();
          if (!n.router) return;
          if (response) {
            n.router->OnResponse(from, id, cluster::DecodeShardResponse(*shared), loop_->now());
          } else {
            SetWallClock(n);
            n.router->Serve(from, id, cluster::DecodeShardRequest(*shared));
          }
          Pump(n);
        },
        true);
  });
}

void SimCluster::SyncDescriptors(Node& n) {
  auto learn = [this](Node& n, const cluster::SettingFn& stored) {
    const cluster::LearnResult learnt = cluster::LearnDescriptors(*n.map, stored, &n.meta_epochs);
    if (!learnt.bad.empty()) {
      Violate("node " + std::to_string(n.id.value()) + " read a bad descriptor from the meta " +
              "shard: " + learnt.bad.front());
    }
    for (const cluster::ShardDescriptor& d : learnt.updated) {
      Trace("descriptor " + std::to_string(n.id.value()) + " " + cluster::EncodeDescriptor(d));
    }
    n.saved_layout = n.map->layout();  // as the real node saves it in its database
    if (!n.meta_epochs_known || !learnt.all_held) n.descriptors_due = true;
    n.meta_epochs_known = true;
  };
  const cluster::Replica* meta = ReplicaOf(n, cluster::kMetaGroup);
  if (meta != nullptr && meta->IsMember() && meta->raw_node().raft().lead() != kNoNode) {
    const kv::StateMachine& sm = meta->state_machine();
    learn(n, [&sm](const std::string& name) { return sm.config(name); });
  } else if (!n.fetching) {
    // A node without a meta replica asks the meta shard (linearizably, through its router).
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kConfig;
    req.group = cluster::kMetaGroup;
    req.args.push_back(cluster::DescriptorSetting(cluster::kMetaGroup));
    for (const cluster::ShardDescriptor& d : layout_->shards) {
      req.args.push_back(cluster::DescriptorSetting(d.group));
    }
    n.fetching = true;
    n.router->Call(
        req,
        [this, id = n.id, inc = n.incarnation, names = req.args, learn](cluster::ShardResponse r) {
          Node& n = node(id);
          if (n.incarnation != inc || !n.up) return;
          n.fetching = false;
          logger_.Debug("event=descriptors_fetched node={} status=\"{}\" values={}", id.value(),
                        r.status.ToString(), r.reply.replies.size());
          if (!r.status.ok() || r.reply.replies.size() != names.size()) return;
          std::map<std::string, std::string> got;
          for (size_t i = 0; i < names.size(); ++i) {
            if (r.reply.replies[i].value) got[names[i]] = *r.reply.replies[i].value;
          }
          learn(n, [&got](const std::string& name) -> std::optional<std::string_view> {
            auto it = got.find(name);
            if (it == got.end()) return std::nullopt;
            return std::string_view(it->second);
          });
        },
        loop_->now());
  }
  if (!n.meta_epochs_known) return;
  for (const cluster::ShardDescriptor& next :
       cluster::DescriptorsToPropose(*n.store, *n.map, n.meta_epochs, n.proposing)) {
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kWrite;
    req.group = cluster::kMetaGroup;
    req.command = cluster::ProposeDescriptorCommand(
        next, (uint64_t{1} << 60) | (n.id.value() << 40) | ++descriptor_sessions_);
    n.proposing.insert(next.group);
    Trace("propose-descriptor " + std::to_string(n.id.value()) + " " +
          cluster::EncodeDescriptor(next));
    n.router->Call(
        std::move(req),
        [this, id = n.id, inc = n.incarnation, g = next.group](cluster::ShardResponse r) {
          logger_.Debug("event=descriptor_proposed node={} group={} status=\"{}\" reply={}",
                        id.value(), g.value(), r.status.ToString(), r.reply.number);
          Node& n = node(id);
          if (n.incarnation != inc || !n.up) return;
          n.proposing.erase(g);
        },
        loop_->now());
  }
}

bool SimCluster::DescriptorsConverged(std::string* why) const {
  if (!sharded()) return true;
  for (GroupId group : Groups()) {
    const Node* leader = AnyLeaderNode(group);
    if (leader == nullptr) {
      if (why != nullptr) *why = "no leader in group " + std::to_string(group.value());
      return false;
    }
    const raft::MembershipConfig& cfg = ReplicaOf(*leader, group)->raw_node().raft().config();
    const std::set<NodeId> voter_set = cfg.voters.Ids();
    const std::vector<NodeId> voters(voter_set.begin(), voter_set.end());
    const std::vector<NodeId> learners(cfg.learners.begin(), cfg.learners.end());
    for (const auto& [id, n] : nodes_) {
      if (!n->up || n->map == nullptr || Failed(id)) continue;
      const cluster::ShardDescriptor* d = n->map->Find(group);
      if (d == nullptr || !cluster::SameMembers(*d, voters, learners)) {
        if (why != nullptr) {
          *why = fmt::format(
              "node {} holds the descriptor \"{}\" of group {}, whose members are {} (the "
              "node {} the meta shard's epochs{}{})",
              id.value(), d ? cluster::EncodeDescriptor(*d) : "none", group.value(), cfg.ToString(),
              n->meta_epochs_known ? "read" : "has not read",
              n->fetching ? ", a read in flight" : "",
              ReplicaOf(*n, cluster::kMetaGroup) != nullptr
                  ? fmt::format(
                        ", holding a meta replica: {} lead {} config {}{}",
                        raft::RoleName(
                            ReplicaOf(*n, cluster::kMetaGroup)->raw_node().raft().role()),
                        ReplicaOf(*n, cluster::kMetaGroup)->raw_node().raft().lead().value(),
                        ReplicaOf(*n, cluster::kMetaGroup)->raw_node().raft().config().ToString(),
                        n->store->quiesced(cluster::kMetaGroup) ? " quiesced" : "")
                  : "");
        }
        return false;
      }
    }
  }
  return true;
}

std::vector<GroupId> SimCluster::Groups() const {
  if (!sharded()) return {opts_.replica.group};
  std::vector<GroupId> out{layout_->meta.group};
  for (const cluster::ShardDescriptor& d : layout_->shards) out.push_back(d.group);
  std::sort(out.begin(), out.end());
  return out;
}

GroupId SimCluster::GroupOfKey(std::string_view key) const {
  if (!sharded()) return opts_.replica.group;
  const uint16_t slot = KeySlot(key);
  for (const cluster::ShardDescriptor& d : layout_->shards) {
    if (d.Covers(slot)) return d.group;
  }
  SYNOD_ASSERT_MSG(false, "sim: a slot no shard covers");
  return GroupId();
}

std::vector<std::pair<GroupId, cluster::Replica*>> SimCluster::Held(const Node& n) const {
  std::vector<std::pair<GroupId, cluster::Replica*>> out;
  if (!n.up) return out;
  if (n.store) {
    for (GroupId g : n.store->groups()) out.push_back({g, n.store->replica(g)});
  } else if (n.replica != nullptr) {
    out.push_back({opts_.replica.group, n.replica});
  }
  return out;
}

cluster::Replica* SimCluster::ReplicaOf(const Node& n, GroupId group) const {
  if (!n.up) return nullptr;
  if (n.store) return n.store->replica(group);
  return group == opts_.replica.group ? n.replica : nullptr;
}

cluster::ReplyFn SimCluster::ReplyBack(
    std::shared_ptr<std::function<void(cluster::ClientReply)>> cb) {
  // The reply travels back over the network: one more hop.
  return [this, cb](cluster::ClientReply r) {
    int64_t back = rng_->Range(200 * kMicro, 2 * kMilli);
    auto rr = std::make_shared<cluster::ClientReply>(std::move(r));
    loop_->After(back, [cb, rr] { (*cb)(std::move(*rr)); });
  };
}

int64_t SimCluster::WallMs(NodeId id) const {
  return opts_.wall_epoch_ms + loop_->now() / kMilli + node(id).wall_skew_ms;
}

void SimCluster::SetWallClock(Node& n) {
  if (n.store) {
    n.store->set_wall_clock_ms(WallMs(n.id));
  } else {
    n.replica->set_wall_clock_ms(WallMs(n.id));
  }
}

Status SimCluster::ProposeConfChange(NodeId via, GroupId group, const raft::ConfChange& cc) {
  Node& n = node(via);
  if (!n.up || n.paused) return Status::Unavailable("node is down");
  cluster::Replica* r = ReplicaOf(n, group);
  if (r == nullptr) return Status::NotFound("node holds no replica of the group");
  if (sharded()) {
    // A node added to the group gets an empty replica of it, to receive the snapshot.
    for (const raft::ConfChangeSingle& c : cc.changes) {
      if (c.type != raft::ConfChangeType::kAddLearner) continue;
      Node& added = node(c.node);
      if (added.wanted.insert(group).second && added.up && !added.paused) Pump(added);
    }
  }
  Status s = r->ProposeConfChange(cc);
  if (n.store) n.store->Touch(group);
  Pump(n);
  return s;
}

Status SimCluster::TransferLeadership(NodeId via, GroupId group, NodeId to) {
  Node& n = node(via);
  if (!n.up || n.paused) return Status::Unavailable("node is down");
  cluster::Replica* r = ReplicaOf(n, group);
  if (r == nullptr) return Status::NotFound("node holds no replica of the group");
  Status s = r->TransferLeadership(to);
  if (n.store) n.store->Touch(group);
  Pump(n);
  return s;
}

void SimCluster::Crash(NodeId id) {
  Node& n = node(id);
  if (!n.up) return;
  Trace("crash " + std::to_string(id.value()));
  n.up = false;
  n.paused = false;
  n.held.clear();
  ++n.incarnation;
  n.replica = nullptr;
  n.router.reset();
  n.map.reset();
  if (opts_.node_storage) {
    // A write in flight may or may not have reached the disk before the crash: nothing may
    // depend on an unacknowledged write being lost, nor on it being kept.
    if (n.write_in_flight) {
      if (rng_->Chance(0.5)) (void)n.db->WriteTaken(*n.write_in_flight);
      n.write_in_flight.reset();
      n.db->OnWritten(Status::IoError("the node crashed"));
    }
    n.store.reset();
    n.db.reset();
    return;
  }
  n.owned_replica.reset();
  n.wal.reset();
  n.disk->Crash(*rng_, opts_.torn_writes);
}

Status SimCluster::FinishNodeWrite(Node& n) {
  SYNOD_ASSERT(n.write_in_flight);
  const Status s = n.db->WriteTaken(*n.write_in_flight);
  n.write_in_flight.reset();
  n.db->OnWritten(s);
  return s;
}

void SimCluster::Restart(NodeId id) {
  Node& n = node(id);
  if (n.up || !n.started) return;
  Trace("restart " + std::to_string(id.value()));
  Boot(n, false);
}

void SimCluster::Pause(NodeId id) {
  Node& n = node(id);
  if (!n.up || n.paused) return;
  Trace("pause " + std::to_string(id.value()));
  n.paused = true;
}

void SimCluster::Resume(NodeId id) {
  Node& n = node(id);
  if (!n.up || !n.paused) return;
  Trace("resume " + std::to_string(id.value()));
  n.paused = false;
  std::vector<std::function<void()>> held;
  held.swap(n.held);
  for (auto& fn : held) {
    if (!n.up || n.paused) break;
    fn();
  }
  if (n.up) Pump(n);
}

void SimCluster::SetDiskFull(NodeId id, bool full) {
  Trace(std::string(full ? "disk-full " : "disk-ok ") + std::to_string(id.value()));
  node(id).disk->SetFull(full);
  node(id).engine.SetFailWrites(full);
}

std::vector<NodeId> SimCluster::AllIds() const {
  std::vector<NodeId> ids;
  for (const auto& [id, n] : nodes_) ids.push_back(id);
  return ids;
}

std::vector<NodeId> SimCluster::UpIds() const {
  std::vector<NodeId> ids;
  for (const auto& [id, n] : nodes_) {
    if (n->up) ids.push_back(id);
  }
  return ids;
}

bool SimCluster::IsUp(NodeId id) const { return node(id).up; }
bool SimCluster::IsPaused(NodeId id) const { return node(id).paused; }

bool SimCluster::Failed(NodeId id) const {
  for (auto [group, r] : Held(node(id))) {
    if (r->failed()) return true;
  }
  return false;
}

std::optional<NodeId> SimCluster::Leader(GroupId group) const {
  std::optional<NodeId> best;
  Term best_term;
  for (const auto& [id, n] : nodes_) {
    const cluster::Replica* rep = ReplicaOf(*n, group);
    if (rep == nullptr || n->paused || rep->failed()) continue;
    const raft::Raft& r = rep->raw_node().raft();
    if (r.role() == raft::Role::kLeader && (!best || r.term() > best_term)) {
      best = id;
      best_term = r.term();
    }
  }
  return best;
}

raft::MembershipConfig SimCluster::Membership(GroupId group) const {
  raft::MembershipConfig best;
  LogIndex best_applied;
  bool any = false;
  for (const auto& [id, n] : nodes_) {
    const cluster::Replica* rep = ReplicaOf(*n, group);
    if (rep == nullptr) continue;
    const raft::Raft& r = rep->raw_node().raft();
    if (!any || r.log().applied() > best_applied) {
      best = r.config();
      best_applied = r.log().applied();
      any = true;
    }
  }
  return best;
}

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
  if (e.type == raft::EntryType::kConfChange) n.descriptors_due = true;
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

void SimCluster::CheckOwnership(NodeId id, GroupId group, const kv::Command& cmd) {
  const cluster::ShardDescriptor* d = layout_->meta.group == group ? &layout_->meta : nullptr;
  for (const cluster::ShardDescriptor& s : layout_->shards) {
    if (s.group == group) d = &s;
  }
  if (d == nullptr || d->group == cluster::kMetaGroup) return;  // the meta shard: no data keys
  std::vector<std::string> keys;
  KeysOf(cmd, &keys);
  if (cmd.op == kv::Op::kExpire) keys.insert(keys.end(), cmd.args.begin(), cmd.args.end());
  for (const std::string& k : keys) {
    const uint16_t slot = KeySlot(k);
    if (!d->Covers(slot)) {
      Violate(
          fmt::format("slot ownership: node {} applied a command on key '{}' (slot {}) in "
                      "group {}, whose descriptor (epoch {}) covers slots {}-{}",
                      id.value(), k, slot, group.value(), d->epoch, d->first_slot, d->last_slot));
      return;
    }
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
      // Would v grant a vote by the up-to-date rule alone?
      votes[v.id] = log.LastTerm() > vl.LastTerm() ||
                    (log.LastTerm() == vl.LastTerm() && log.LastIndex() >= vl.LastIndex());
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
}

}  // namespace synod::sim
