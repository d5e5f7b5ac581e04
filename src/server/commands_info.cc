// INFO sections with true values, and WAIT (replicas holding the connection's last write).
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include "common/assert.h"
#include "env/asio/steady_clock.h"
#include "kv/redis.h"
#include "kv/state_machine.h"
#include "server/command_impl.h"
#include "server/command_table.h"
#include "server/resp_server.h"

namespace synod::server {

namespace {

using resp::ReplyWriter;

// ---- INFO ----

// What every INFO section may use, gathered once per INFO.
struct InfoData {
  CommandCall& call;
  cluster::HostStatus st;
  int64_t now_ms;
};

using InfoFields = std::vector<std::pair<std::string, std::string>>;

// Redis's bytesToHuman: "1023B", "1.50K", "2.00M"...
std::string BytesToHuman(uint64_t n) {
  const char* units = "KMGTP";
  if (n < 1024) return std::to_string(n) + "B";
  double v = static_cast<double>(n) / 1024;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.2f}{}", v, units[u]);
}

// The resident set size and its peak, from /proc (0 when unreadable).
std::pair<uint64_t, uint64_t> MemoryRss() {
  uint64_t rss = 0, peak = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) {
      rss = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    }
    std::fclose(f);
  }
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "VmHWM: %llu kB", &kb) == 1) peak = kb * 1024;
    }
    std::fclose(f);
  }
  return {rss, std::max(rss, peak)};
}

InfoFields InfoServer(const InfoData& d) {
  const ServerContext& ctx = d.call.ctx;
  struct utsname u {};
  uname(&u);
  const int64_t uptime = (d.now_ms - ctx.start_time_ms) / 1000;
  return {{"redis_version", "7.0.0"},
          {"synod_version", "0.1.0"},
          {"redis_mode", "standalone"},
          {"os", fmt::format("{} {} {}", u.sysname, u.release, u.machine)},
          {"arch_bits", std::to_string(sizeof(void*) * 8)},
          {"multiplexing_api", "epoll"},
          {"process_id", std::to_string(getpid())},
          {"run_id", ctx.run_id},
          {"tcp_port", ctx.client_address.substr(ctx.client_address.rfind(':') + 1)},
          {"server_time_usec", std::to_string(d.now_ms * 1000)},
          {"uptime_in_seconds", std::to_string(uptime)},
          {"uptime_in_days", std::to_string(uptime / 86400)},
          {"config_file", ctx.config_file},
          {"synod_node_id", std::to_string(d.st.id.value())}};
}

InfoFields InfoClients(const InfoData& d) {
  const ServerContext& ctx = d.call.ctx;
  return {{"connected_clients", std::to_string(ctx.counters->connections_current.load())},
          {"cluster_connections", "0"},
          {"maxclients", std::to_string(ctx.server->options().clients_max)},
          {"blocked_clients", std::to_string(ctx.blocked_clients)},
          {"tracking_clients", "0"},
          {"clients_in_timeout_table", "0"}};
}

// used_memory is the resident set size: Synod does not count its allocations.
InfoFields InfoMemory(const InfoData&) {
  const auto [rss, peak] = MemoryRss();
  return {{"used_memory", std::to_string(rss)},
          {"used_memory_human", BytesToHuman(rss)},
          {"used_memory_rss", std::to_string(rss)},
          {"used_memory_rss_human", BytesToHuman(rss)},
          {"used_memory_peak", std::to_string(peak)},
          {"used_memory_peak_human", BytesToHuman(peak)},
          {"maxmemory", "0"},
          {"maxmemory_human", "0B"},
          {"maxmemory_policy", "noeviction"},
          {"mem_allocator", "libc"}};
}

// Every applied entry is durable in RocksDB (the "AOF"); the "RDB save" is the log compaction.
InfoFields InfoPersistence(const InfoData& d) {
  const cluster::HostStatus& st = d.st;
  const uint64_t since = st.applied.value() - std::min(st.applied, st.snapshot_index).value();
  const std::string ok = st.failure.empty() ? "ok" : "err";
  return {{"loading", "0"},
          {"async_loading", "0"},
          {"rdb_changes_since_last_save", std::to_string(since)},
          {"rdb_bgsave_in_progress", "0"},
          {"rdb_last_save_time", std::to_string(d.call.ctx.last_save_ms / 1000)},
          {"rdb_last_bgsave_status", "ok"},
          {"aof_enabled", "1"},
          {"aof_rewrite_in_progress", "0"},
          {"aof_last_write_status", ok},
          {"synod_engine", "rocksdb"},
          {"synod_disk_bytes", std::to_string(st.disk_bytes)},
          {"synod_snapshot_index", std::to_string(st.snapshot_index.value())},
          {"synod_storage_failed", st.failure.empty() ? "0" : "1"}};
}

InfoFields InfoStats(const InfoData& d) {
  const ServerCounters& c = *d.call.ctx.counters;
  const StatBaseline& b = d.call.ctx.stat_baseline;
  auto since = [](uint64_t now, uint64_t base) {
    return std::to_string(now - std::min(now, base));
  };
  return {{"total_connections_received", since(c.connections_total.load(), b.connections_total)},
          {"total_commands_processed", since(c.commands_total.load(), b.commands_total)},
          {"total_net_input_bytes", since(c.bytes_in.load(), b.bytes_in)},
          {"total_net_output_bytes", since(c.bytes_out.load(), b.bytes_out)},
          {"rejected_connections", since(c.rejected_connections.load(), b.rejected_connections)},
          {"total_error_replies", since(c.errors_total.load(), b.errors_total)}};
}

// The voters other than this node that its transport is connected to (Redis's replicas).
std::vector<const cluster::MemberStatus*> ConnectedPeers(const cluster::HostStatus& st) {
  std::vector<const cluster::MemberStatus*> out;
  for (const auto& m : st.members) {
    if (m.id != st.id && m.voter && m.connected) out.push_back(&m);
  }
  return out;
}

std::pair<std::string, std::string> SplitAddress(const std::string& hostport) {
  const size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) return {hostport, ""};
  return {hostport.substr(0, colon), hostport.substr(colon + 1)};
}

InfoFields InfoReplication(const InfoData& d) {
  const cluster::HostStatus& st = d.st;
  InfoFields f;
  const bool leader = st.role == "leader";
  f.emplace_back("role", leader ? "master" : "slave");
  if (leader) {
    const auto peers = ConnectedPeers(st);
    f.emplace_back("connected_slaves", std::to_string(peers.size()));
    for (size_t i = 0; i < peers.size(); ++i) {
      const auto [ip, port] = SplitAddress(peers[i]->address.client);
      const int64_t lag = std::max<int64_t>(peers[i]->last_contact_ms, 0) / 1000;
      f.emplace_back("slave" + std::to_string(i),
                     fmt::format("ip={},port={},state=online,offset={},lag={}", ip, port,
                                 peers[i]->match.value(), lag));
    }
  } else {
    const cluster::MemberStatus* lead = nullptr;
    for (const auto& m : st.members) {
      if (m.id == st.leader) lead = &m;
    }
    const auto [ip, port] = SplitAddress(lead ? lead->address.client : "");
    const bool up = lead != nullptr && lead->connected;
    f.emplace_back("master_host", ip);
    f.emplace_back("master_port", port);
    f.emplace_back("master_link_status", up ? "up" : "down");
    f.emplace_back(
        "master_last_io_seconds_ago",
        std::to_string(lead && lead->last_contact_ms >= 0 ? lead->last_contact_ms / 1000 : -1));
    f.emplace_back("master_sync_in_progress", "0");
    f.emplace_back("slave_read_repl_offset", std::to_string(st.commit.value()));
    f.emplace_back("slave_repl_offset", std::to_string(st.applied.value()));
    f.emplace_back("connected_slaves", "0");
  }
  f.emplace_back("master_failover_state", "no-failover");
  f.emplace_back("master_replid", fmt::format("{:040x}", st.cluster_id));
  f.emplace_back("master_repl_offset",
                 std::to_string(leader ? st.last_index.value() : st.applied.value()));
  f.emplace_back("raft_role", st.role);
  f.emplace_back("raft_term", std::to_string(st.term.value()));
  f.emplace_back("raft_leader", std::to_string(st.leader.value()));
  f.emplace_back("raft_commit_index", std::to_string(st.commit.value()));
  f.emplace_back("raft_applied_index", std::to_string(st.applied.value()));
  f.emplace_back("raft_members", std::to_string(st.members.size()));
  f.emplace_back("raft_groups", std::to_string(st.groups.size()));
  f.emplace_back("raft_groups_led", std::to_string(st.groups_led));
  f.emplace_back("raft_groups_quiesced", std::to_string(st.groups_quiesced));
  return f;
}

InfoFields InfoCpu(const InfoData&) {
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  auto secs = [](const timeval& t) {
    return fmt::format("{:.6f}", static_cast<double>(t.tv_sec) + t.tv_usec / 1e6);
  };
  return {{"used_cpu_sys", secs(self.ru_stime)},
          {"used_cpu_user", secs(self.ru_utime)},
          {"used_cpu_sys_children", secs(children.ru_stime)},
          {"used_cpu_user_children", secs(children.ru_utime)}};
}

// Cluster-aware clients look for this before they ask CLUSTER SLOTS.
InfoFields InfoCluster(const InfoData&) { return {{"cluster_enabled", "1"}}; }

// INFO keyspace covers every data shard: the shards this node holds a replica of count as the
// local replica has them; the others are asked of their leaders (kKeyspace), and INFO answers
// once they all have, or after kKeyspaceWaitMs with the shards that did (a shard without a
// quorum must not hold up INFO: it then counts what answered).
constexpr int64_t kKeyspaceWaitMs = 1000;

struct KeyspaceCount {
  uint64_t keys = 0, expires = 0;
};

std::string KeyspaceSection(const KeyspaceCount& n) {
  std::string out = "# Keyspace\r\n";
  if (n.keys > 0) out += fmt::format("db0:keys={},expires={},avg_ttl=0\r\n", n.keys, n.expires);
  return out;
}

// Counts the shards held here into *n; returns the others.
std::vector<GroupId> CountLocalShards(CommandCall& call, KeyspaceCount* n) {
  std::vector<GroupId> remote;
  for (GroupId g : KeylessShards(call.ctx)) {
    if (const kv::StateMachine* sm = call.ctx.host->LocalStateMachine(g)) {
      n->keys += sm->keyspace().size();
      n->expires += sm->keyspace().expires_count();
    } else {
      remote.push_back(g);
    }
  }
  return remote;
}

struct KeyspaceGather {
  std::string head;  // the sections before Keyspace
  KeyspaceCount count;
  size_t left = 0;
  bool sent = false;
  ReplySink sink;
  asio::steady_timer timer;

  void Finish() {
    if (sent) return;
    sent = true;
    timer.cancel();
    sink.Bulk(head + KeyspaceSection(count));
  }
};

struct InfoSection {
  const char* name;   // lower case
  const char* title;  // as the header shows it
  InfoFields (*fields)(const InfoData&);
};

// Redis's order. Every section is in "default", "all" and "everything" (Synod has none of the
// sections Redis leaves out of default: commandstats, latencystats, modules).
constexpr InfoSection kInfoSections[] = {
    {"server", "Server", InfoServer},  {"clients", "Clients", InfoClients},
    {"memory", "Memory", InfoMemory},  {"persistence", "Persistence", InfoPersistence},
    {"stats", "Stats", InfoStats},     {"replication", "Replication", InfoReplication},
    {"cpu", "CPU", InfoCpu},           {"cluster", "Cluster", InfoCluster},
    {"keyspace", "Keyspace", nullptr},  // every shard's: see KeyspaceGather
};
static_assert(std::string_view(kInfoSections[std::size(kInfoSections) - 1].name) == "keyspace",
              "Info() gathers the keyspace section last");

// ---- WAIT ----

constexpr int64_t kWaitTickMs = 50;
constexpr int64_t kWaitMaxMs = 10 * 60 * 1000;  // WAIT n 0 blocks at most this long

struct WaitState {
  ServerContext* ctx;
  std::weak_ptr<Connection> conn;
  GroupId group;
  LogIndex index;
  int64_t numreplicas;
  int64_t deadline_ns;
  ReplySink sink;
  asio::steady_timer timer;
  int64_t last = 0;  // the count last heard
};

void WaitAsk(const std::shared_ptr<WaitState>& w);

// Answers, or asks again after a tick, until enough replicas hold the write, the timeout passes
// or the client left. Other clients are not held up.
void WaitCheck(const std::shared_ptr<WaitState>& w, bool can_learn_more) {
  auto conn = w->conn.lock();
  if (!conn || conn->closed()) {
    --w->ctx->blocked_clients;
    return;  // the sink drops its reply
  }
  if (w->last >= w->numreplicas || env::SteadyNowNs() >= w->deadline_ns || !can_learn_more) {
    --w->ctx->blocked_clients;
    conn->blocked = false;
    w->sink.Integer(w->last);
    return;
  }
  w->timer.expires_after(std::chrono::milliseconds(kWaitTickMs));
  w->timer.async_wait([w](const asio::error_code& ec) {
    if (!ec) WaitAsk(w);
  });
}

// How many replicas besides the leader hold the write, from the leader of its shard wherever it
// is (a replica that does not lead knows only that a quorum does).
void WaitAsk(const std::shared_ptr<WaitState>& w) {
  cluster::ShardRequest req;
  req.type = cluster::ShardRequest::Type::kReplicasHolding;
  req.group = w->group;
  req.index = w->index;
  w->ctx->router->Call(std::move(req), [w](cluster::ShardResponse r) {
    if (r.status.ok()) w->last = r.number;
    WaitCheck(w, r.status.ok());
  });
}

}  // namespace

// INFO [section ...]: the named sections (case-insensitive; "default", "all" and "everything"
// name every one) in Redis's order, each once, sections separated by an empty line, as Redis
// prints them. Unknown names add nothing.
void Info(CommandCall& call, ReplySink sink) {
  constexpr size_t kSections = std::size(kInfoSections);
  std::array<bool, kSections> wanted{};
  if (call.argv.size() == 1) wanted.fill(true);
  for (size_t i = 1; i < call.argv.size(); ++i) {
    const std::string name = Lower(call.argv[i]);
    if (name == "default" || name == "all" || name == "everything") wanted.fill(true);
    for (size_t j = 0; j < kSections; ++j) {
      if (name == kInfoSections[j].name) wanted[j] = true;
    }
  }
  const InfoData d{call, call.ctx.host->GetStatus(), env::WallNowMs()};
  std::string out;
  for (size_t j = 0; j < kSections; ++j) {
    if (!wanted[j] || kInfoSections[j].fields == nullptr) continue;
    if (!out.empty()) out += "\r\n";
    out += std::string("# ") + kInfoSections[j].title + "\r\n";
    for (const auto& [k, v] : kInfoSections[j].fields(d)) out += k + ":" + v + "\r\n";
  }
  if (!wanted[kSections - 1]) return sink.Bulk(out);  // no keyspace (the last section)
  if (!out.empty()) out += "\r\n";
  KeyspaceCount local;
  const std::vector<GroupId> remote = CountLocalShards(call, &local);
  if (remote.empty()) return sink.Bulk(out + KeyspaceSection(local));
  auto g = std::make_shared<KeyspaceGather>(KeyspaceGather{std::move(out), local, remote.size(),
                                                           false, std::move(sink),
                                                           asio::steady_timer(*call.ctx.io)});
  g->timer.expires_after(std::chrono::milliseconds(kKeyspaceWaitMs));
  g->timer.async_wait([g](const asio::error_code& ec) {
    if (!ec) g->Finish();
  });
  for (GroupId shard : remote) {
    cluster::ShardRequest req;
    req.type = cluster::ShardRequest::Type::kKeyspace;
    req.group = shard;
    call.ctx.router->Call(std::move(req), [g](cluster::ShardResponse r) {
      if (r.status.ok() && r.reply.replies.size() == 2) {
        g->count.keys += static_cast<uint64_t>(r.reply.replies[0].number);
        g->count.expires += static_cast<uint64_t>(r.reply.replies[1].number);
      }
      if (--g->left == 0) g->Finish();
    });
  }
}

void Wait(CommandCall& call, ReplySink sink) {
  int64_t numreplicas = 0, timeout_ms = 0;
  if (!kv::redis::ParseInt64(call.argv[1], &numreplicas)) {
    sink.Error("ERR value is not an integer or out of range");
    return;
  }
  if (!kv::redis::ParseInt64(call.argv[2], &timeout_ms)) {
    sink.Error("ERR timeout is not an integer or out of range");
    return;
  }
  if (timeout_ms < 0) {
    sink.Error("ERR timeout is negative");
    return;
  }
  const LogIndex index = call.conn.last_write_index;
  if (index == LogIndex()) {
    // No write on this connection yet: nothing to wait for; the peers in touch hold it all.
    sink.Integer(static_cast<int64_t>(ConnectedPeers(call.ctx.host->GetStatus()).size()));
    return;
  }
  const int64_t budget_ms = timeout_ms == 0 ? kWaitMaxMs : std::min(timeout_ms, kWaitMaxMs);
  auto w = std::make_shared<WaitState>(
      WaitState{&call.ctx, call.conn.weak_from_this(), call.conn.last_write_group, index,
                numreplicas, env::SteadyNowNs() + budget_ms * 1'000'000, std::move(sink),
                asio::steady_timer(*call.ctx.io)});
  ++call.ctx.blocked_clients;
  call.conn.blocked = true;
  WaitAsk(w);
}

}  // namespace synod::server
