// The Redis Cluster protocol: CLUSTER INFO / MYID / SLOTS / SHARDS / NODES / KEYSLOT /
// COUNTKEYSINSLOT / GETKEYSINSLOT, shaped byte for byte as Redis 7 shapes them, and the MOVED
// redirection of --cluster-redirects.
//
// Each shard (a Raft group owning a slot range) appears as a Redis Cluster shard: its leader is
// the master of its slots, the other voters its replicas. SLOTS and SHARDS list each shard with
// its nodes. NODES prints one line per node, as Redis does, although a node leads some shards
// and follows in others: a node that leads any shard is a master with the slots of every shard
// it leads (merged into maximal ranges), one that leads none is a slave of the master of the
// first shard it replicates. Node names are ClusterNodeName's, the addresses the client
// addresses of the member list. What a node reports is what it knows now: a leader it last
// heard of, the peers its transport reaches (a peer it cannot reach is "fail" in NODES and left
// out of SLOTS, as Redis leaves out failed replicas).
//
// Thread-safety: the core thread.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "cluster/logic/shard.h"
#include "common/address.h"
#include "common/slot.h"
#include "env/asio/steady_clock.h"
#include "kv/keyspace.h"
#include "kv/state_machine.h"
#include "server/command_impl.h"
#include "server/resp_server.h"

namespace synod::server {
namespace {

struct NodeAddr {
  std::string ip;
  int port = 0;
  int bus_port = 0;
};

// Where clients reach `id`: its client address ("host:port") from the member list, and its
// peer port as the "bus" port. Empty ip and port 0 when unknown, as Redis shows a node whose
// address it does not know.
NodeAddr AddrOf(const cluster::GroupHost& host, NodeId id) {
  NodeAddr a;
  auto it = host.address_book().find(id);
  if (it == host.address_book().end()) return a;
  if (auto hp = SplitHostPort(it->second.client, PortZero::kAllowed); hp.ok()) {
    a.ip = hp->host;
    a.port = hp->port;
  }
  if (auto hp = SplitHostPort(it->second.peer, PortZero::kAllowed); hp.ok()) a.bus_port = hp->port;
  return a;
}

// The peers this node's transport reaches now (and itself), from its status.
std::set<NodeId> Reachable(const cluster::HostStatus& st) {
  std::set<NodeId> up{st.id};
  for (const cluster::MemberStatus& m : st.members) {
    if (m.connected) up.insert(m.id);
  }
  return up;
}

// The master of a shard for clients: its leader, or, while none is known, this node when it is
// a voter (it waits for an election and forwards), else the first voter.
NodeId MasterOf(const cluster::ShardView& s, NodeId self) {
  if (s.leader != kNoNode) return s.leader;
  for (NodeId v : s.desc.voters) {
    if (v == self) return self;
  }
  return s.desc.voters.empty() ? kNoNode : s.desc.voters.front();
}

// The shard's master, then its other voters (the replicas).
std::vector<NodeId> MasterThenReplicas(const cluster::ShardView& s, NodeId master) {
  std::vector<NodeId> out{master};
  for (NodeId v : s.desc.voters) {
    if (v != master) out.push_back(v);
  }
  return out;
}

void SendText(ReplySink& sink, const std::string& text) {
  std::string out;
  resp::ReplyWriter w(&out, sink.protocol());
  if (sink.protocol() == 3) {
    w.Verbatim(text);
  } else {
    w.Bulk(text);
  }
  sink.Send(std::move(out));
}

void ClusterInfo(CommandCall& call, ReplySink sink) {
  const cluster::GroupHost& host = *call.ctx.host;
  const std::vector<cluster::ShardView> shards = host.Shards();
  size_t assigned = 0;
  size_t ok = 0;
  uint64_t epoch = 0;
  std::set<NodeId> nodes;
  for (const cluster::ShardView& s : shards) {
    const size_t n = size_t{s.desc.last_slot} - s.desc.first_slot + 1;
    assigned += n;
    if (s.leader != kNoNode) ok += n;
    epoch = std::max(epoch, s.desc.epoch);
    for (NodeId v : s.desc.voters) nodes.insert(v);
    for (NodeId l : s.desc.learners) nodes.insert(l);
  }
  uint64_t sent = 0;
  uint64_t received = 0;
  for (const auto& p : call.ctx.host->transport().Stats()) {
    sent += p.messages_sent;
    received += p.messages_received;
  }
  std::string text;
  text += fmt::format("cluster_state:{}\r\n", ok == kSlotCount ? "ok" : "fail");
  text += fmt::format("cluster_slots_assigned:{}\r\n", assigned);
  text += fmt::format("cluster_slots_ok:{}\r\n", ok);
  text += "cluster_slots_pfail:0\r\n";
  text += fmt::format("cluster_slots_fail:{}\r\n", assigned - ok);
  text += fmt::format("cluster_known_nodes:{}\r\n", nodes.size());
  text += fmt::format("cluster_size:{}\r\n", shards.size());
  text += fmt::format("cluster_current_epoch:{}\r\n", epoch);
  text += fmt::format("cluster_my_epoch:{}\r\n", epoch);
  text += fmt::format("cluster_stats_messages_sent:{}\r\n", sent);
  text += fmt::format("cluster_stats_messages_received:{}\r\n", received);
  text += "total_cluster_links_buffer_limit_exceeded:0\r\n";
  SendText(sink, text);
}

// One node of CLUSTER SLOTS: ip, port, name, and the (empty) networking metadata of Redis 7.
void WriteSlotsNode(resp::ReplyWriter& w, const cluster::GroupHost& host, NodeId id) {
  const NodeAddr a = AddrOf(host, id);
  w.ArrayHeader(4);
  w.Bulk(a.ip);
  w.Integer(a.port);
  w.Bulk(cluster::ClusterNodeName(host.cluster_id(), id));
  w.MapHeader(0);
}

void ClusterSlots(CommandCall& call, ReplySink sink) {
  const cluster::GroupHost& host = *call.ctx.host;
  const std::set<NodeId> up = Reachable(host.GetStatus());
  std::string out;
  resp::ReplyWriter w(&out, sink.protocol());
  const std::vector<cluster::ShardView> shards = host.Shards();
  w.ArrayHeader(shards.size());
  for (const cluster::ShardView& s : shards) {
    const NodeId master = MasterOf(s, host.id());
    std::vector<NodeId> listed;  // the master always, replicas only while reachable
    for (NodeId id : MasterThenReplicas(s, master)) {
      if (id == master || up.contains(id)) listed.push_back(id);
    }
    w.ArrayHeader(2 + listed.size());
    w.Integer(s.desc.first_slot);
    w.Integer(s.desc.last_slot);
    for (NodeId id : listed) WriteSlotsNode(w, host, id);
  }
  sink.Send(std::move(out));
}

void ClusterShards(CommandCall& call, ReplySink sink) {
  const cluster::GroupHost& host = *call.ctx.host;
  const cluster::HostStatus st = host.GetStatus();
  const std::set<NodeId> up = Reachable(st);
  std::string out;
  resp::ReplyWriter w(&out, sink.protocol());
  const std::vector<cluster::ShardView> shards = host.Shards();
  w.ArrayHeader(shards.size());
  for (const cluster::ShardView& s : shards) {
    const NodeId master = MasterOf(s, host.id());
    const std::vector<NodeId> nodes = MasterThenReplicas(s, master);
    w.MapHeader(2);
    w.Bulk("slots");
    w.ArrayHeader(2);
    w.Integer(s.desc.first_slot);
    w.Integer(s.desc.last_slot);
    w.Bulk("nodes");
    w.ArrayHeader(nodes.size());
    for (NodeId id : nodes) {
      const NodeAddr a = AddrOf(host, id);
      w.MapHeader(7);
      w.Bulk("id");
      w.Bulk(cluster::ClusterNodeName(host.cluster_id(), id));
      w.Bulk("port");
      w.Integer(a.port);
      w.Bulk("ip");
      w.Bulk(a.ip);
      w.Bulk("endpoint");
      w.Bulk(a.ip);
      w.Bulk("role");
      w.Bulk(id == master ? "master" : "replica");
      w.Bulk("replication-offset");
      // The applied index is what a replica has replayed, as Redis's offset is; known for self.
      w.Integer(id == host.id() ? static_cast<int64_t>(st.applied.value()) : 0);
      w.Bulk("health");
      w.Bulk(up.contains(id) ? "online" : "failed");
    }
  }
  sink.Send(std::move(out));
}

// What one node's line of CLUSTER NODES says, gathered over every shard.
struct NodeRole {
  // The slots of the shards it is master of, as maximal [first, last] runs in slot order.
  std::vector<std::pair<uint16_t, uint16_t>> slots;
  uint64_t led_epoch = 0;     // the highest epoch of the shards it is master of
  uint64_t member_epoch = 0;  // the highest epoch of the shards it is a voter or learner of
  // The master of the first shard (in slot order) it replicates; kNoNode when none is known.
  NodeId master = kNoNode;
};

// Every node known in a shard (voters, learners and masters), by id, with its role: a node is
// the master of each shard MasterOf names it for, and a replica (voter or learner) of the
// others. Redis shows one role per node, so a node that is master anywhere is a master there.
std::map<NodeId, NodeRole> NodeRoles(std::vector<cluster::ShardView> shards, NodeId self) {
  std::ranges::sort(shards, {}, [](const cluster::ShardView& s) { return s.desc.first_slot; });
  std::map<NodeId, NodeRole> roles;
  for (const cluster::ShardView& s : shards) {
    const NodeId master = MasterOf(s, self);
    if (master != kNoNode) {
      NodeRole& m = roles[master];
      // Shards do not overlap, so in slot order a run only ever grows at its end.
      if (!m.slots.empty() && m.slots.back().second + 1 == s.desc.first_slot) {
        m.slots.back().second = s.desc.last_slot;
      } else {
        m.slots.emplace_back(s.desc.first_slot, s.desc.last_slot);
      }
      m.led_epoch = std::max(m.led_epoch, s.desc.epoch);
    }
    auto member = [&](NodeId id) {
      NodeRole& r = roles[id];
      r.member_epoch = std::max(r.member_epoch, s.desc.epoch);
      if (id != master && r.master == kNoNode) r.master = master;
    };
    for (NodeId v : s.desc.voters) member(v);
    for (NodeId l : s.desc.learners) member(l);
  }
  return roles;
}

// One line per node, in node id order (Redis prints its own dict order; any stable one does).
// A node that is master of some shard is a master with all their slots; one that only
// replicates is a slave of the master of the first shard it replicates, with that master's
// config epoch (as Redis shows a replica); one with neither a shard to lead nor a known master
// is a master without slots.
void ClusterNodes(CommandCall& call, ReplySink sink) {
  const cluster::GroupHost& host = *call.ctx.host;
  const std::set<NodeId> up = Reachable(host.GetStatus());
  const int64_t now_ms = env::WallNowMs();
  const std::map<NodeId, NodeRole> roles = NodeRoles(host.Shards(), host.id());
  std::string text;
  for (const auto& [id, role] : roles) {
    const bool master = !role.slots.empty() || role.master == kNoNode;
    uint64_t epoch = role.member_epoch;
    if (!role.slots.empty()) {
      epoch = role.led_epoch;
    } else if (!master) {
      epoch = roles.at(role.master).led_epoch;
    }
    const NodeAddr a = AddrOf(host, id);
    std::string flags = id == host.id() ? "myself," : "";
    flags += master ? "master" : "slave";
    if (!up.contains(id)) flags += ",fail";
    text += fmt::format(
        "{} {}:{}@{} {} {} 0 {} {} {}", cluster::ClusterNodeName(host.cluster_id(), id), a.ip,
        a.port, a.bus_port, flags,
        master ? "-" : cluster::ClusterNodeName(host.cluster_id(), role.master),
        id == host.id() ? 0 : now_ms, epoch, up.contains(id) ? "connected" : "disconnected");
    for (const auto& [first, last] : role.slots) {
      text += first == last ? fmt::format(" {}", first) : fmt::format(" {}-{}", first, last);
    }
    text += "\n";
  }
  SendText(sink, text);
}

// Redis's getSlotOrReply: a slot number in range, or the error sent.
std::optional<uint16_t> SlotArg(const std::string& arg, ReplySink& sink) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), v);
  if (ec != std::errc() || end != arg.data() + arg.size() || v < 0 || v >= kSlotCount) {
    sink.Error("ERR Invalid or out of range slot");
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

// CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT: read from the shard that owns the slot.
void SlotKeysRead(CommandCall& call, ReplySink sink, uint16_t slot, int64_t max, bool count) {
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kSlotKeys;
  req.group = call.ctx.router->ShardOfSlot(slot);
  req.slots = SlotRange{slot, slot};
  req.index = LogIndex(slot);
  req.random = static_cast<uint64_t>(std::max<int64_t>(0, max));
  if (count) req.args = {"count"};
  req.mode = call.conn.readonly ? cluster::ReadMode::kStale : cluster::ReadMode::kLinearizable;
  req.now_ms = env::WallNowMs();
  auto shared = std::make_shared<ReplySink>(std::move(sink));
  call.ctx.router->Call(std::move(req), [shared](cluster::ShardResponse r) {
    if (!r.status.ok()) return shared->Error(RedisErrorFor(r.status, /*write=*/false));
    std::string out;
    resp::ReplyWriter w(&out, shared->protocol());
    WriteKvReply(r.reply, w);
    shared->Send(std::move(out));
  });
}

}  // namespace

std::optional<std::string> ClusterRedirect(const ServerContext& ctx, const CommandSpec& spec,
                                           const std::vector<std::string>& argv, bool readonly) {
  if (!ctx.cluster_redirects || spec.first_key <= 0) return std::nullopt;
  // READONLY: reads are served by any replica, as Redis Cluster serves them on a replica.
  if (readonly && (spec.flags & kReadOnly) && !(spec.flags & kWrite)) return std::nullopt;
  const std::vector<size_t> keys = KeyPositions(spec, argv.size());
  if (keys.empty()) return std::nullopt;
  const uint16_t slot = KeySlot(argv[keys.front()]);
  const NodeId leader = ctx.host->LeaderForSlot(slot);
  // Unknown leader: serve as without redirects (forwarded, or refused within the timeout).
  if (leader == kNoNode || leader == ctx.host->id()) return std::nullopt;
  const NodeAddr a = AddrOf(*ctx.host, leader);
  if (a.ip.empty() || a.port == 0) return std::nullopt;
  return fmt::format("MOVED {} {}:{}", slot, a.ip, a.port);
}

void Cluster(CommandCall& call, ReplySink sink) {
  const std::string sub = Lower(call.argv[1]);
  const size_t n = call.argv.size();
  if (sub == "info" && n == 2) {
    ClusterInfo(call, std::move(sink));
  } else if (sub == "myid" && n == 2) {
    sink.Bulk(cluster::ClusterNodeName(call.ctx.host->cluster_id(), call.ctx.host->id()));
  } else if (sub == "slots" && n == 2) {
    ClusterSlots(call, std::move(sink));
  } else if (sub == "shards" && n == 2) {
    ClusterShards(call, std::move(sink));
  } else if (sub == "nodes" && n == 2) {
    ClusterNodes(call, std::move(sink));
  } else if (sub == "keyslot" && n == 3) {
    sink.Integer(KeySlot(call.argv[2]));
  } else if (sub == "countkeysinslot" && n == 3) {
    if (std::optional<uint16_t> slot = SlotArg(call.argv[2], sink)) {
      SlotKeysRead(call, std::move(sink), *slot, -1, /*count=*/true);
    }
  } else if (sub == "getkeysinslot" && n == 4) {
    int64_t max = 0;
    const std::string& a = call.argv[3];
    const auto [end, ec] = std::from_chars(a.data(), a.data() + a.size(), max);
    if (ec != std::errc() || end != a.data() + a.size()) {
      sink.Error("ERR value is not an integer or out of range");
      return;
    }
    if (max < 0) {
      sink.Error("ERR Invalid number of keys");
      return;
    }
    if (std::optional<uint16_t> slot = SlotArg(call.argv[2], sink)) {
      SlotKeysRead(call, std::move(sink), *slot, max, /*count=*/false);
    }
  } else if (sub == "info" || sub == "myid" || sub == "slots" || sub == "shards" ||
             sub == "nodes" || sub == "keyslot" || sub == "countkeysinslot" ||
             sub == "getkeysinslot") {
    SubcommandArity(sink, "cluster", sub);
  } else if (sub == "meet" || sub == "addslots" || sub == "addslotsrange" || sub == "delslots" ||
             sub == "delslotsrange" || sub == "failover" || sub == "forget" || sub == "replicate" ||
             sub == "reset" || sub == "setslot" || sub == "flushslots" || sub == "saveconfig" ||
             sub == "set-config-epoch" || sub == "bumpepoch") {
    sink.Error("ERR CLUSTER " + call.argv[1].substr(0, 32) +
               " is not supported: Synod places slots and replicas itself (see synod status)");
  } else {
    UnknownSubcommand(sink, "cluster", call.argv[1]);
  }
}

}  // namespace synod::server
