#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <set>

#include "common/assert.h"
#include "env/random.h"
#include "sim/cluster.h"
#include "sim/event_loop.h"
#include "sim/network.h"
#include "sim/placement_driver.h"
#include "sim/redis_workload.h"
#include "sim/workload.h"

namespace synod::sim {

namespace {

struct FaultName {
  const char* name;
  uint32_t bit;
};
constexpr FaultName kFaultNames[] = {
    {"network", kFaultNetwork},       {"partition", kFaultPartition}, {"crash", kFaultCrash},
    {"pause", kFaultPause},           {"disk", kFaultDisk},           {"clock", kFaultClock},
    {"membership", kFaultMembership}, {"transfer", kFaultTransfer},
};

constexpr uint64_t kEventsMax = 200'000'000;  // a bound on any run, whatever the seed
// A key expired this long ago by the leader's clock must be gone from every member: the
// leader proposes due keys every few ticks, so this leaves room for elections and retries.
constexpr int64_t kExpiryOverdueMs = 5000;

// Draws the per-seed configuration ("buggify"): timeouts, batch and window sizes, snapshot
// frequency and read mode vary across seeds so that rare code paths run often.
struct Knobs {
  ClusterOptions cluster;
  WorkloadOptions workload;
  LinkProfile link;
  std::string Describe() const {
    const raft::Config& r = cluster.replica.raft;
    return fmt::format(
        "election_ticks={} heartbeat_ticks={} max_msg_bytes={} max_inflight={} prevote={} "
        "checkquorum={} reads={} drift_ticks={} snapshot_entries={} fsync_max_us={} "
        "clock_drift={:.2f} wall_skew_ms={} tombstones_max={} storage={} torn={} quiesce={} "
        "shards={} loss={:.3f} dup={:.3f} latency_max_us={}",
        r.election_ticks, r.heartbeat_ticks, r.max_msg_bytes, r.max_inflight_msgs, r.pre_vote,
        r.check_quorum, r.read_only_option == raft::ReadOnlyOption::kLeaseBased ? "lease" : "safe",
        r.lease_clock_drift_ticks, cluster.replica.snapshot_entries, cluster.fsync_max_ns / kMicro,
        cluster.clock_drift_max, cluster.wall_skew_ms_max, cluster.replica.kv.tombstones_max,
        cluster.node_storage ? "node" : "wal",
        // Torn writes are a WalStorage fault: a node write is atomic.
        cluster.node_storage ? "n/a" : (cluster.torn_writes ? "true" : "false"),
        cluster.quiesce_after_ticks, cluster.shards, link.loss, link.duplicate,
        link.latency_max_ns / kMicro);
  }
};

Knobs DrawKnobs(const SimOptions& o, env::Random& rng) {
  Knobs k;
  raft::Config& r = k.cluster.replica.raft;
  r.election_ticks = static_cast<int>(rng.Range(5, 20));
  r.heartbeat_ticks = static_cast<int>(rng.Range(1, 2));
  const uint64_t msg_sizes[] = {64, 1024, 1 << 20};
  r.max_msg_bytes = msg_sizes[rng.Uniform(3)];
  const size_t windows[] = {1, 4, 256};
  r.max_inflight_msgs = windows[rng.Uniform(3)];
  r.pre_vote = rng.Chance(0.8);
  r.check_quorum = rng.Chance(0.9);
  k.cluster.nodes = o.nodes;
  k.cluster.clock_drift_max =
      (o.faults & kFaultClock) ? 0.01 * static_cast<double>(rng.Range(1, 10)) : 0;
  if (r.check_quorum && rng.Chance(0.4)) {
    r.read_only_option = raft::ReadOnlyOption::kLeaseBased;
    // Two clocks each within ±d of true time can differ by 2d over a lease.
    double drift = 2 * k.cluster.clock_drift_max * r.election_ticks;
    r.lease_clock_drift_ticks =
        std::min(r.election_ticks - 1, static_cast<int>(std::ceil(drift)) + 1);
  }
  const uint64_t snaps[] = {20, 200, 5000};
  k.cluster.replica.snapshot_entries = snaps[rng.Uniform(3)];
  k.cluster.replica.request_timeout_ticks = static_cast<int>(rng.Range(20, 60));
  if (o.faults & kFaultDisk) {
    k.cluster.torn_writes = true;
    k.cluster.fsync_max_ns = rng.Chance(0.3) ? 30 * kMilli : 2 * kMilli;
  }
  if (o.faults & kFaultNetwork) {
    k.link.loss = 0.001 * static_cast<double>(rng.Range(0, 50));
    k.link.duplicate = 0.001 * static_cast<double>(rng.Range(0, 20));
    k.link.latency_max_ns = rng.Chance(0.3) ? 20 * kMilli : 3 * kMilli;
  }
  k.workload.clients = o.clients;
  k.workload.keys = o.keys;
  // Wall clock skew between nodes, for TTLs and expiry: none, NTP-like, or badly off.
  const int64_t skews[] = {0, 20, 20, 250};
  k.cluster.wall_skew_ms_max = skews[rng.Uniform(4)];
  // Few WATCH tombstones: deletes evict them and raise the floor, so EXEC must judge watches
  // older than the floor as changed.
  if (rng.Chance(0.3)) k.cluster.replica.kv.tombstones_max = static_cast<size_t>(rng.Range(1, 4));
  // Half the seeds run the real node's storage path (NodeDb, state persisted beside the log,
  // the host's node write), half WalStorage on a disk that tears unsynced writes. Drawn last, so
  // that the knobs above stay what they were for every seed.
  k.cluster.node_storage = rng.Chance(0.5);
  // Half of those quiesce idle groups (the real node's default; a no-op with lease reads).
  const bool quiesce = rng.Chance(0.5);
  const int after = r.heartbeat_ticks * 2 + static_cast<int>(rng.Range(0, 3));
  if (k.cluster.node_storage && quiesce) {
    k.cluster.quiesce_after_ticks = after;
    // Quiet spells, for the groups to go idle in: 300 ms of every second.
    k.workload.idle_every_ns = 1 * kSecond;
    k.workload.idle_ns = 300 * kMilli;
  }
  // Half of the node-storage seeds lay the cluster out in shards (plus the meta shard) and
  // route every request by its key's slot; few shards more often than many.
  const int shard_counts[] = {1, 2, 3, 4, 6, 8, 16};
  const bool shard = rng.Chance(0.5);
  const int shards = shard_counts[rng.Uniform(7)];
  if (k.cluster.node_storage && shard) k.cluster.shards = shards;
  if (o.shards >= 0) k.cluster.shards = o.shards;
  if (k.cluster.shards > 0) {
    k.cluster.node_storage = true;
    // The routers' request timeout: within the clients' attempt timeout's reach.
    k.cluster.request_timeout_ms = 1000;
  }
  return k;
}

// Schedules faults for the length of the run, each undone after a while.
class FaultInjector {
 public:
  FaultInjector(EventLoop* loop, env::Random* rng, SimCluster* c, SimNetwork* net, uint32_t faults)
      : loop_(loop), rng_(rng), c_(c), net_(net), faults_(faults) {
    for (const FaultName& f : kFaultNames) {
      if ((faults_ & f.bit) && f.bit != kFaultNetwork && f.bit != kFaultClock)
        kinds_.push_back(f.bit);
    }
  }

  void Start(int64_t stop_at) {
    stop_at_ = stop_at;
    if (!kinds_.empty()) ScheduleNext();
    if (faults_ & (kFaultPartition | kFaultCrash)) {
      c_->SetOnLeader([this](NodeId id, Term) { ChaseLeader(id); });
    }
    if (faults_ & kFaultPartition) ScheduleLeaderFlap();
  }

  // A group to aim a leader fault at: the one group, or any of a sharded cluster's.
  GroupId PickGroup() {
    std::vector<GroupId> groups = c_->Groups();
    if (groups.size() == 1) return groups[0];
    return groups[rng_->Uniform(groups.size())];
  }

  // Undoes every fault: the network heals, paused nodes resume, crashed or failed nodes restart.
  void HealAll() {
    net_->HealAll();
    for (NodeId id : c_->AllIds()) {
      c_->SetDiskFull(id, false);
      if (c_->IsPaused(id)) c_->Resume(id);
      if (c_->IsUp(id) && c_->Failed(id)) c_->Crash(id);
      c_->Restart(id);
    }
  }

  uint64_t injected() const { return injected_; }

 private:
  void ScheduleNext() {
    loop_->After(rng_->Range(50 * kMilli, 800 * kMilli), [this] {
      if (loop_->now() >= stop_at_) return;
      Inject(kinds_[rng_->Uniform(kinds_.size())]);
      ScheduleNext();
    });
  }

  // Jepsen's "partition the leader" nemesis on a fast cadence: leaders come and go while
  // clients keep writing to them, which leaves divergent uncommitted suffixes behind on many
  // nodes — the raw material of the hard cases of log repair and commitment.
  void ScheduleLeaderFlap() {
    loop_->After(rng_->Range(100 * kMilli, 600 * kMilli), [this] {
      if (loop_->now() >= stop_at_) return;
      auto leader = c_->Leader(PickGroup());
      if (leader && rng_->Chance(0.5)) Isolate(*leader, rng_->Range(30 * kMilli, 400 * kMilli));
      ScheduleLeaderFlap();
    });
  }

  void Isolate(NodeId id, int64_t for_ns) {
    ++injected_;
    c_->Trace("isolate " + std::to_string(id.value()));
    std::vector<std::pair<NodeId, NodeId>> links;
    for (NodeId other : c_->AllIds()) {
      if (other == id) continue;
      links.push_back({id, other});
      links.push_back({other, id});
    }
    for (auto [a, b] : links) net_->Block(a, b);
    loop_->After(for_ns, [this, links] {
      for (auto [a, b] : links) net_->Unblock(a, b);
    });
  }

  // Cuts off or kills a leader moments after its election, before it could replicate its
  // first entries: the path to the Raft paper's Figure 8, where an old term's entry sits on a
  // majority yet may still be overwritten.
  void ChaseLeader(NodeId id) {
    if (loop_->now() >= stop_at_ || !rng_->Chance(0.4)) return;
    bool crash = (faults_ & kFaultCrash) && (!(faults_ & kFaultPartition) || rng_->Chance(0.15));
    loop_->After(rng_->Range(0, 3 * kMilli), [this, id, crash] {
      int64_t heal = rng_->Range(20 * kMilli, 400 * kMilli);
      if (!crash) return Isolate(id, heal);
      ++injected_;
      c_->Trace("chase crash " + std::to_string(id.value()));
      c_->Crash(id);
      loop_->After(heal, [this, id] { c_->Restart(id); });
    });
  }

  int64_t HealDelay() { return rng_->Range(50 * kMilli, 2 * kSecond); }
  std::vector<NodeId> Majority() {
    std::vector<NodeId> ids = c_->AllIds();
    std::vector<NodeId> out;
    size_t want = ids.size() / 2 + 1;
    while (out.size() < want && !ids.empty()) {
      size_t i = rng_->Uniform(ids.size());
      out.push_back(ids[i]);
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(i));
    }
    return out;
  }
  NodeId AnyNode() {
    std::vector<NodeId> ids = c_->UpIds();
    if (ids.empty()) ids = c_->AllIds();
    return ids[rng_->Uniform(ids.size())];
  }

  void Inject(uint32_t kind) {
    ++injected_;
    switch (kind) {
      case kFaultPartition:
        return Partition();
      case kFaultCrash: {
        // Mostly one node (kill -9); sometimes several at once, up to a power loss of the
        // whole cluster, which is when unsynced writes on several nodes vanish together.
        std::vector<NodeId> victims{AnyNode()};
        if (rng_->Chance(0.3)) victims = rng_->Chance(0.5) ? c_->AllIds() : Majority();
        c_->Trace("crash " + std::to_string(victims.size()));
        for (NodeId id : victims) {
          c_->Crash(id);
          loop_->After(rng_->Range(10 * kMilli, 1 * kSecond), [this, id] { c_->Restart(id); });
        }
        return;
      }
      case kFaultPause: {
        NodeId id = AnyNode();
        c_->Pause(id);
        loop_->After(HealDelay(), [this, id] { c_->Resume(id); });
        return;
      }
      case kFaultDisk: {
        NodeId id = AnyNode();
        c_->SetDiskFull(id, true);
        loop_->After(HealDelay(), [this, id] {
          c_->SetDiskFull(id, false);
          // A node whose disk failed refuses to serve until it is restarted.
          if (c_->IsUp(id) && c_->Failed(id)) {
            c_->Crash(id);
            c_->Restart(id);
          }
        });
        return;
      }
      case kFaultMembership:
        return Membership();
      case kFaultTransfer: {
        const GroupId group = PickGroup();
        auto leader = c_->Leader(group);
        if (!leader) return;
        raft::MembershipConfig m = c_->Membership(group);
        std::vector<NodeId> voters(m.voters.incoming.ids().begin(), m.voters.incoming.ids().end());
        if (voters.empty()) return;
        NodeId to = voters[rng_->Uniform(voters.size())];
        c_->Trace("transfer " + std::to_string(to.value()));
        (void)c_->TransferLeadership(*leader, group, to);
        return;
      }
      default:
        return;
    }
  }

  void Partition() {
    std::vector<NodeId> ids = c_->AllIds();
    std::vector<std::pair<NodeId, NodeId>> links;
    auto both = [&](NodeId a, NodeId b) {
      links.push_back({a, b});
      links.push_back({b, a});
    };
    // Isolating the leader is the partition that exercises elections and log repair most.
    uint64_t kind = rng_->Chance(0.4) ? 2 : rng_->Uniform(5);
    if (kind == 0) {  // symmetric split into two random sides
      std::vector<bool> side(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) side[i] = rng_->Chance(0.5);
      for (size_t i = 0; i < ids.size(); ++i) {
        for (size_t j = i + 1; j < ids.size(); ++j) {
          if (side[i] != side[j]) both(ids[i], ids[j]);
        }
      }
    } else if (kind == 1) {  // one-way: a cannot reach b
      NodeId a = ids[rng_->Uniform(ids.size())], b = ids[rng_->Uniform(ids.size())];
      if (a != b) links.push_back({a, b});
    } else if (kind == 2) {  // isolate the leader
      auto leader = c_->Leader(PickGroup());
      if (!leader) return;
      for (NodeId id : ids) {
        if (id != *leader) both(*leader, id);
      }
    } else if (kind == 3) {  // bridge: a and c cannot talk, b talks to both
      if (ids.size() < 3) return;
      size_t i = rng_->Uniform(ids.size()), j = rng_->Uniform(ids.size());
      if (i != j) both(ids[i], ids[j]);
    } else {  // clog a link for a while
      NodeId a = ids[rng_->Uniform(ids.size())], b = ids[rng_->Uniform(ids.size())];
      if (a == b) return;
      int64_t extra = rng_->Range(20 * kMilli, 500 * kMilli);
      c_->Trace("clog");
      net_->Clog(a, b, extra);
      loop_->After(HealDelay(), [this, a, b] { net_->Unclog(a, b); });
      return;
    }
    c_->Trace("partition " + std::to_string(links.size()));
    for (auto [a, b] : links) net_->Block(a, b);
    loop_->After(HealDelay(), [this, links] {
      for (auto [a, b] : links) net_->Unblock(a, b);
    });
  }

  void Membership() {
    const GroupId group = PickGroup();
    auto leader = c_->Leader(group);
    if (!leader) return;
    raft::MembershipConfig m = c_->Membership(group);
    if (m.IsJoint()) return;
    raft::ConfChange cc;
    if (!m.learners.empty()) {
      cc.changes.push_back({raft::ConfChangeType::kAddNode, *m.learners.begin()});  // promote
    } else {
      std::vector<NodeId> spares;
      // Nodes that are no member: never started or down (a spare), or, in a sharded cluster,
      // any node not holding the group (it gets an empty replica to receive the snapshot).
      for (NodeId id : c_->AllIds()) {
        if (!m.IsVoter(id) && !m.IsLearner(id) && (!c_->IsUp(id) || c_->sharded())) {
          spares.push_back(id);
        }
      }
      std::vector<NodeId> voters(m.voters.incoming.ids().begin(), m.voters.incoming.ids().end());
      bool can_remove = voters.size() > 3;
      if (!spares.empty() && (!can_remove || rng_->Chance(0.5))) {
        NodeId id = spares[rng_->Uniform(spares.size())];
        c_->StartSpare(id);
        cc.changes.push_back({raft::ConfChangeType::kAddLearner, id});
      } else if (can_remove) {
        NodeId id = voters[rng_->Uniform(voters.size())];
        cc.changes.push_back({raft::ConfChangeType::kRemoveNode, id});
      } else {
        return;
      }
      if (rng_->Chance(0.3)) cc.transition = raft::ConfChangeTransition::kJointImplicit;
    }
    c_->Trace("confchange " + cc.ToString());
    (void)c_->ProposeConfChange(*leader, group, cc);
  }

  EventLoop* loop_;
  env::Random* rng_;
  SimCluster* c_;
  SimNetwork* net_;
  uint32_t faults_;
  std::vector<uint32_t> kinds_;
  int64_t stop_at_ = 0;
  uint64_t injected_ = 0;
};

void ApplyBug(const std::string& bug, Knobs& k) {
  if (bug == "stale-read") k.cluster.replica.bugs.stale_read = true;
  if (bug == "ack-before-fsync") k.cluster.replica.bugs.ack_before_fsync = true;
  if (bug == "commit-old-term") k.cluster.replica.raft.testing_bug_commit_old_term = true;
  if (bug == "no-dedup") k.cluster.replica.kv.testing_bug_no_dedup = true;
  if (bug == "deposed-script-effects") {
    // Every compare-and-set is the script, whose effects then apply unchecked.
    k.cluster.scripts.testing_bug_unchecked_effects = true;
    k.workload.script_cas_percent = 100;
  }
  if (bug == "stale-route" || bug == "split-loses-writes" || bug == "move-removes-early" ||
      bug == "deposed-script-effects") {
    // Each takes a sharded cluster (whose shards split, or move).
    if (bug == "stale-route") k.cluster.replica.kv.testing_bug_stale_route = true;
    if (bug == "split-loses-writes") k.cluster.replica.kv.testing_bug_split_loses_writes = true;
    if (k.cluster.shards == 0) {
      k.cluster.shards = 4;
      k.cluster.node_storage = true;
      k.cluster.request_timeout_ms = 1000;
    }
  }
}

// Every lo..hi ns (drawn from `rng`) until `end_ns`, or until `requested()` reaches `count`:
// `act` through a random live node (the simulator's splits and merges).
void Repeat(EventLoop& loop, SimCluster& c, env::Random& rng, int64_t lo, int64_t hi,
            int64_t end_ns, uint64_t count, std::function<uint64_t()> requested,
            std::function<void(NodeId)> act) {
  loop.After(rng.Range(lo, hi), [&loop, &c, &rng, lo, hi, end_ns, count, requested, act] {
    if (loop.now() >= end_ns || requested() >= count) return;
    const std::vector<NodeId> up = c.UpIds();
    if (!up.empty()) act(up[rng.Uniform(up.size())]);
    Repeat(loop, c, rng, lo, hi, end_ns, count, requested, act);
  });
}

// Runs the loop until `pred` holds or `limit_ns` of virtual time passed.
template <typename Pred>
uint64_t RunWhile(EventLoop& loop, SimCluster& c, int64_t limit_ns, Pred pred) {
  int64_t end = loop.now() + limit_ns;
  uint64_t ran = 0;
  while (loop.now() < end && !pred() && !c.violated() && ran < kEventsMax) {
    uint64_t n = loop.RunUntil(std::min(end, loop.now() + 100 * kMilli), kEventsMax - ran);
    ran += n;
    if (n == 0 && loop.pending() == 0) break;
  }
  return ran;
}

}  // namespace

Result<uint32_t> ParseFaults(std::string_view text) {
  if (text == "all") return static_cast<uint32_t>(kFaultAll);
  if (text == "none" || text.empty()) return 0u;
  uint32_t out = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view name = text.substr(start, end - start);
    bool found = false;
    for (const FaultName& f : kFaultNames) {
      if (name == f.name) {
        out |= f.bit;
        found = true;
      }
    }
    if (!found) {
      return Status::InvalidArgument(
          "unknown fault '" + std::string(name) +
          "' (known: all, none, network, partition, crash, pause, disk, clock, membership, "
          "transfer)");
    }
    start = end + 1;
  }
  return out;
}

std::string FaultsToString(uint32_t faults) {
  if (faults == kFaultAll) return "all";
  if (faults == 0) return "none";
  std::string s;
  for (const FaultName& f : kFaultNames) {
    if (faults & f.bit) s += (s.empty() ? "" : ",") + std::string(f.name);
  }
  return s;
}

const std::vector<std::string>& KnownBugs() {
  static const std::vector<std::string> bugs = {
      "stale-read",  "commit-old-term",    "ack-before-fsync",   "no-dedup",
      "stale-route", "split-loses-writes", "move-removes-early", "deposed-script-effects"};
  return bugs;
}

std::string ReproCommand(const SimOptions& o) {
  std::string s =
      fmt::format("synod sim --seeds {} --nodes {} --faults {} --duration {}s", o.seed, o.nodes,
                  FaultsToString(o.faults), static_cast<double>(o.duration_ns) / kSecond);
  if (o.shards >= 0) s += " --shards " + std::to_string(o.shards);
  if (o.splits >= 0) s += " --splits " + std::to_string(o.splits);
  if (o.placement >= 0) s += " --placement " + std::to_string(o.placement);
  if (o.merges >= 0) s += " --merges " + std::to_string(o.merges);
  if (!o.bug.empty()) s += " --bug " + o.bug;
  return s;
}

SimResult RunSimulation(const SimOptions& o) {
  SimResult res;
  env::Random rng(o.seed);
  env::Random knob_rng = rng.Fork();
  Knobs k = DrawKnobs(o, knob_rng);
  // Half the compare-and-sets of sharded clusters are the EVAL script (its own random source:
  // the other draws stay as they were).
  k.workload.script_cas_percent = 50;
  k.workload.script_seed = o.seed * 0x9E3779B97F4A7C15ull + 18;
  ApplyBug(o.bug, k);
  res.knobs = k.Describe();

  EventLoop loop;
  env::Random net_rng = rng.Fork();
  SimNetwork net(&loop, &net_rng);
  net.SetDefaultProfile(k.link);
  Logger logger = o.verbose ? Logger::Stderr("sim") : Logger();
  env::Random cluster_rng = rng.Fork();
  SimCluster cluster(&loop, &cluster_rng, &net, k.cluster, logger);
  env::Random client_rng = rng.Fork();
  Workload workload(&loop, &client_rng, &cluster, k.workload);
  env::Random fault_rng = rng.Fork();
  FaultInjector faults(&loop, &fault_rng, &cluster, &net, o.faults);
  env::Random redis_rng = rng.Fork();
  RedisWorkloadOptions ro;
  ro.clients = o.redis_clients;
  ro.wall_skew_ms_max = k.cluster.wall_skew_ms_max;
  ro.idle_every_ns = k.workload.idle_every_ns;
  ro.idle_ns = k.workload.idle_ns;
  RedisWorkload redis(&loop, &redis_rng, &cluster, ro,
                      [&](int64_t client, int64_t call_ns, std::optional<int64_t> return_ns) {
                        workload.RecordFlush(client, call_ns, return_ns);
                      });
  auto idle = [&] { return workload.Idle() && redis.Idle(); };
  // Splits draw from their own stream (forked last), so that a seed's other draws stay what
  // they were before splits existed.
  env::Random split_rng = rng.Fork();
  int splits = o.splits;
  if (splits < 0) {
    splits =
        cluster.sharded() && split_rng.Chance(0.5) ? static_cast<int>(split_rng.Range(1, 8)) : 0;
  }
  if ((o.bug == "stale-route" || o.bug == "split-loses-writes") && splits == 0) splits = 8;
  if (!cluster.sharded()) splits = 0;
  res.knobs += " splits=" + std::to_string(splits);
  // Half of the splitting seeds split by size too: shards over a small bound split where their
  // bytes halve (the real node's --shard-max-bytes), as clients write.
  if (splits > 0 && o.bug.empty() && split_rng.Chance(0.5)) {
    const uint64_t max_bytes = static_cast<uint64_t>(split_rng.Range(100, 3000));
    cluster.SetSplitBySize(max_bytes, static_cast<size_t>(splits) * 2);
    res.knobs += " shard_max_bytes=" + std::to_string(max_bytes);
  }
  // Placement draws from its own stream too (forked after the splits').
  env::Random placement_rng = rng.Fork();
  bool placement = o.placement > 0;
  if (o.placement < 0) {
    placement = cluster.sharded() && (o.faults & kFaultMembership) != 0 && o.bug.empty() &&
                placement_rng.Chance(0.5);
  }
  if (o.bug == "move-removes-early") placement = true;
  if (!cluster.sharded()) placement = false;
  std::optional<PlacementDriver> placer;
  if (placement) {
    PlacementDriverOptions po;
    po.replicas = k.cluster.replicas;
    po.testing_bug_move_removes_early = o.bug == "move-removes-early";
    placer.emplace(&loop, &placement_rng, &cluster, po);
    res.knobs += " placement=1";
  }
  // Merges draw from their own stream too (forked after placement's). A merge needs a shard
  // to merge with: most runs start with several, and splits make more.
  env::Random merge_rng = rng.Fork();
  int merges = o.merges;
  if (merges < 0) {
    merges = cluster.sharded() && splits > 0 && o.bug.empty() && merge_rng.Chance(0.5)
                 ? static_cast<int>(merge_rng.Range(1, 4))
                 : 0;
  }
  if (!cluster.sharded()) merges = 0;
  res.knobs += " merges=" + std::to_string(merges);

  loop.SetAfterEvent([&] { cluster.CheckAfterEvent(); });
  cluster.Start();
  workload.Start(o.duration_ns);
  redis.Start(o.duration_ns);
  faults.Start(o.duration_ns);
  if (splits > 0) {
    Repeat(
        loop, cluster, split_rng, 200 * kMilli, 1500 * kMilli, o.duration_ns,
        static_cast<uint64_t>(splits), [&] { return cluster.splits_requested(); },
        [&](NodeId via) { (void)cluster.SplitSomeShard(via, split_rng); });
  }
  if (merges > 0) {
    Repeat(
        loop, cluster, merge_rng, 300 * kMilli, 2000 * kMilli, o.duration_ns,
        static_cast<uint64_t>(merges), [&] { return cluster.merges_requested(); },
        [&](NodeId via) { (void)cluster.MergeSomeShard(via, merge_rng); });
  }
  if (placer) placer->Start(o.duration_ns);
  uint64_t events = RunWhile(loop, cluster, o.duration_ns, [] { return false; });

  // Heal, settle, and read everything back.
  faults.HealAll();
  net.SetDefaultProfile(LinkProfile{});
  events += RunWhile(loop, cluster, 30 * kSecond, idle);
  events += RunWhile(loop, cluster, 3 * kSecond, [] { return false; });
  workload.StartFinalReads();
  events += RunWhile(loop, cluster, 60 * kSecond, [&] { return workload.Idle(); });
  // Every live member catches up with the leader once the faults are gone (a lost snapshot
  // once left a follower behind forever while the majority kept serving).
  events +=
      RunWhile(loop, cluster, 30 * kSecond, [&] { return cluster.AllMembersCaughtUp(nullptr); });
  // Placement settles: every repair and balance done, nothing under way (and the moves' new
  // replicas caught up).
  if (placer) {
    events += RunWhile(loop, cluster, 60 * kSecond, [&] {
      return placer->Settled(nullptr) && cluster.AllMembersCaughtUp(nullptr);
    });
  }
  // And the leader's expiry cycle deletes, everywhere, every key that expired a while ago.
  events += RunWhile(loop, cluster, 10 * kSecond,
                     [&] { return cluster.ExpiredKeysCollected(kExpiryOverdueMs, nullptr); });
  // The meta shard's descriptors follow the membership changes, and every node learns them.
  events +=
      RunWhile(loop, cluster, 20 * kSecond, [&] { return cluster.DescriptorsConverged(nullptr); });
  if (!cluster.violated()) cluster.CheckConverged();
  redis.Abandon();  // a FLUSHALL still in flight goes into the history as unknown

  res.events = events;
  res.ops_ok = workload.ops_ok();
  res.ops_unknown = workload.ops_unknown();
  res.redis_ops_ok = redis.ops_ok();
  res.redis_execs_committed = redis.execs_committed();
  res.redis_execs_aborted = redis.execs_aborted();
  res.expiry_applies = cluster.expiry_applies();
  res.quiesce_notices = cluster.quiesce_notices();
  res.requests_forwarded = cluster.requests_forwarded();
  res.splits = cluster.split_groups();
  res.placement_moves = placer ? placer->moves_done() : 0;
  res.merges = cluster.merged_groups();
  res.faults_injected = faults.injected();
  res.history = workload.history();
  res.trace_hash = cluster.trace_hash();

  if (cluster.violated()) {
    res.passed = false;
    res.failure = "invariant violated: " + cluster.violation();
    return res;
  }
  if (!workload.Idle()) {
    res.passed = false;
    res.failure = "liveness: clients still waiting 60 s after every fault healed";
    return res;
  }
  if (std::string why; !cluster.AllMembersCaughtUp(&why)) {
    res.passed = false;
    res.failure = "liveness: 30 s after every fault healed, " + why;
    return res;
  }
  if (std::string why; placer && !placer->Settled(&why)) {
    res.passed = false;
    res.failure = "placement: 60 s after every member caught up, " + why;
    return res;
  }
  if (std::string why; !cluster.ExpiredKeysCollected(kExpiryOverdueMs, &why)) {
    res.passed = false;
    res.failure = "expiry: 10 s after every member caught up, " + why;
    return res;
  }
  if (std::string why; !cluster.DescriptorsConverged(&why)) {
    res.passed = false;
    res.failure = "descriptors: 20 s after every member caught up, " + why;
    return res;
  }
  std::set<std::pair<uint64_t, uint64_t>> acked = workload.acked_writes();
  acked.insert(redis.acked_writes().begin(), redis.acked_writes().end());
  for (const auto& w : acked) {
    if (!cluster.applied_commands().count(w)) {
      res.passed = false;
      res.failure = fmt::format("acknowledged write lost: client {} seq {} was never applied",
                                w.first, w.second);
      return res;
    }
  }
  check::SearchBudget budget;
  budget.steps_max = o.check_steps_max;
  check::CheckResult cr = check::CheckHistory(res.history, budget);
  res.verdict = cr.verdict;
  if (cr.verdict == check::Verdict::kNotLinearizable) {
    res.passed = false;
    res.failure = "history is not linearizable";
    res.check_report = check::FormatCheckResult(res.history, cr);
  }
  return res;
}

}  // namespace synod::sim
