// SimCluster: the nodes (boot, crash, restart, pause, spare nodes), their ticks, storage rounds,
// messages and clients. The sharded layout's routing and descriptors: cluster_shards.cc; the
// invariants: cluster_checks.cc.
#include "sim/cluster.h"

#include <algorithm>

#include "common/assert.h"
#include "common/slot.h"
#include "kv/state_machine.h"
#include "sim/cluster_node.h"

namespace synod::sim {

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
  n.down_since = -1;
  n.paused = false;
  n.held.clear();
  n.seen.clear();
  // The descriptor work of the last incarnation died with it (its answers never come).
  n.proposing.clear();
  n.fetching = false;
  n.meta_epochs.clear();
  n.meta_epochs_known = false;
  n.meta_merged.clear();
  n.tombstones_due.clear();
  n.merging.clear();
  n.frozen_since.clear();
  n.resolving.clear();
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
    ro.testing_bug_stale_route = opts_.replica.kv.testing_bug_stale_route;
    n.router = std::make_unique<cluster::RequestRouter>(
        ro, n.map.get(), n.store.get(), n.request_out.get(),
        logger_.With("node=" + std::to_string(n.id.value()) + " "));
    // Scripts, on the simulator's clocks; a slice's continuation is an event of its own.
    compute::ScriptRunner::Env env;
    const NodeId id = n.id;
    const uint64_t inc = n.incarnation;
    env.wall_ms = [this, id] { return WallMs(id); };
    env.steady_ns = [this] { return loop_->now(); };
    env.post = [this, id, inc](int64_t delay_ns, std::function<void()> fn) {
      loop_->After(delay_ns, [this, id, inc, fn = std::move(fn)] {
        Node& n = node(id);
        if (n.incarnation != inc || !n.up || !n.scripts) return;
        fn();
        Pump(n);
      });
    };
    compute::ScriptRunnerOptions so = opts_.scripts;
    // Every runner a session id of its own: a runner made again (a restart) that reused one
    // would have its new proposals answered from the old session's cached replies.
    so.session_seed = ++runners_made_ * 0x9E3779B97F4A7C15ull;
    auto scripts =
        compute::ScriptRunner::Create(n.store.get(), std::move(env), so,
                                      logger_.With("node=" + std::to_string(id.value()) + " "));
    SYNOD_ASSERT(scripts.ok());
    n.scripts = std::move(scripts).value();
    n.router->set_scripts(n.scripts.get());
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
        if (n.scripts) n.scripts->Tick();
        // Every second, and after a membership change, as the real node does.
        if (n.router && n.ticks % 100 == 50) MaybeSplitBySize(n);
        if (n.router && n.ticks % 100 == 25) {
          OweAbsorbedTombstones(n);
          WriteDueTombstones(n);
          ResolveFrozenShards(n);
        }
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
  TakeSplits(n);
  OpenWanted(n);
  while (n.up && !n.paused && n.store->HasWork()) {
    const bool write = n.store->BeginRound();
    TakeSplits(n);
    if (!write) continue;
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
  n.down_since = loop_->now();
  n.paused = false;
  n.held.clear();
  ++n.incarnation;
  n.replica = nullptr;
  n.scripts.reset();  // a crash answers nothing: its clients time out
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

std::optional<cluster::Layout> SimCluster::MapOf(NodeId id) const {
  const Node& n = node(id);
  if (!n.up || !n.map) return std::nullopt;
  return n.map->layout();
}

int64_t SimCluster::DownSince(NodeId id) const {
  const Node& n = node(id);
  return n.up || !n.started ? -1 : n.down_since;
}

bool SimCluster::Started(NodeId id) const { return node(id).started; }

bool SimCluster::CaughtUp(NodeId leader, GroupId group, NodeId member, uint64_t lag) const {
  const cluster::Replica* r = ReplicaOf(node(leader), group);
  if (r == nullptr) return false;
  const raft::Raft& raft = r->raw_node().raft();
  const raft::Progress* p = raft.progress(member);
  return raft.role() == raft::Role::kLeader && p != nullptr &&
         p->match.value() + lag >= raft.log().LastIndex().value();
}
bool SimCluster::IsPaused(NodeId id) const { return node(id).paused; }

bool SimCluster::Frozen(GroupId group) const {
  const std::optional<NodeId> leader = Leader(group);
  if (!leader) return false;
  const cluster::Replica* r = ReplicaOf(node(*leader), group);
  return r != nullptr && r->state_machine().frozen().has_value();
}

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

}  // namespace synod::sim
