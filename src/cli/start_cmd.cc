// `synod start`: runs one node in the foreground until SIGTERM/SIGINT (docs/operations.md).
//
// A new data directory needs either --initial-cluster (every initial voter gets the same list)
// or --join ADDR (the admin address of any member; the node asks the leader to add it as a
// learner, then catches up and is promoted). The directory remembers its cluster and node id
// in DIR/synod.id, so a restart needs neither flag.
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "cli/admin_client.h"
#include "cli/commands.h"
#include "server/node.h"

namespace synod::cli {
namespace {

struct StartFlags {
  uint64_t id = 0;
  std::string data;
  std::string client = "127.0.0.1:7001";
  std::string peer = "127.0.0.1:7101";
  std::string admin = "127.0.0.1:7201";
  std::string advertise_client, advertise_peer, advertise_admin;
  std::string initial_cluster;
  std::string join;
  std::string cluster_token = "synod";
  int shards = 0;  // 0: two per initial node
  int replicas = 3;
  int64_t tick_ms = 50;
  int election_ticks = 10;
  int heartbeat_ticks = 2;
  int64_t request_timeout_ms = 5000;
  uint64_t snapshot_entries = 10000;
  uint64_t state_flush_entries = 1000;
  uint64_t shard_max_bytes = 64ull << 20;
  double shard_max_writes_per_second = 0;
  std::string zone;
  double dead_node_timeout_s = 60;
  double move_p99_target_ms = 50;
  int64_t script_memory_mb = 64;
  std::string placement = "on";
  bool lease_reads = false;
  bool cluster_redirects = false;
  bool no_fsync = false;
  uint64_t max_clients = 10000;
  uint64_t proto_max_bulk_len = 512ull << 20;
  uint64_t client_output_limit = 256ull << 20;
  bool fault_hooks = false;
  std::string log_level = "info";
};

Status Fail(const std::string& m) { return Status::InvalidArgument(m); }

// The cluster id covers the layout's inputs: nodes started with different --shards or
// --replicas get different ids, so they refuse each other's connections instead of running
// two layouts.
std::string LayoutToken(const StartFlags& f) {
  return fmt::format("{}|shards={}|replicas={}", f.cluster_token, f.shards, f.replicas);
}

struct DirIdentity {
  uint64_t cluster_id = 0;
  uint64_t node_id = 0;
};

std::string IdentityPath(const std::string& dir) { return dir + "/synod.id"; }

Result<std::optional<DirIdentity>> ReadIdentity(const std::string& dir) {
  std::ifstream in(IdentityPath(dir));
  if (!in) return std::optional<DirIdentity>();
  DirIdentity id;
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    try {
      if (k == "cluster_id") id.cluster_id = std::stoull(v, nullptr, 16);
      if (k == "node_id") id.node_id = std::stoull(v);
    } catch (...) {
      return Status::Corruption(IdentityPath(dir) + ": bad line \"" + line + "\"");
    }
  }
  if (id.cluster_id == 0 || id.node_id == 0) {
    return Status::Corruption(IdentityPath(dir) + " lacks cluster_id or node_id");
  }
  return std::optional<DirIdentity>(id);
}

Status WriteIdentity(const std::string& dir, const DirIdentity& id) {
  const std::string tmp = IdentityPath(dir) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << fmt::format("cluster_id={:016x}\nnode_id={}\n", id.cluster_id, id.node_id);
    out.flush();
    if (!out) return Status::IoError("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, IdentityPath(dir), ec);
  if (ec) return Status::IoError("cannot write " + IdentityPath(dir) + ": " + ec.message());
  return Status::Ok();
}

// Asks the cluster (through any member's admin port) to add this node as a learner.
Status Join(const StartFlags& f, const cluster::MemberAddress& self, server::NodeOptions* opts,
            DirIdentity* ident) {
  const std::string path =
      fmt::format("/members/add?id={}&peer={}&client={}&admin={}", f.id, UrlEncode(self.peer),
                  UrlEncode(self.client), UrlEncode(self.admin));
  // Every group takes the new member through its own leader: allow for an election or two. A
  // member that knows no meta leader yet (an election under way) answers 421 without one: ask
  // again for a while.
  Result<AdminReply> r = Status::Unavailable("not asked");
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (true) {
    r = AdminCall("POST", f.join, path, 15000, /*follow_leader=*/true);
    if (!r.ok()) return r.status();
    if (r->status != 421 || std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (r->status != 200 || !r->json.is_object()) {
    return Status::FailedPrecondition("join refused by " + f.join + ": HTTP " +
                                      std::to_string(r->status) + " " + r->body);
  }
  auto members = cluster::ParseMemberList(r->json.value("member_list", ""));
  if (!members.ok()) return members.status();
  opts->host.known_members = *members;
  opts->host.join_layout = r->json.value("layout", "");
  if (opts->host.join_layout.empty()) {
    return Status::FailedPrecondition("the join reply from " + f.join + " carries no layout");
  }
  ident->cluster_id = std::stoull(r->json.value("cluster_id", "0"), nullptr, 16);
  return Status::Ok();
}

Status PrepareDir(const StartFlags& f, const cluster::MemberAddress& self,
                  server::NodeOptions* opts) {
  std::error_code ec;
  std::filesystem::create_directories(f.data, ec);
  if (ec) return Status::IoError("cannot create " + f.data + ": " + ec.message());
  auto existing = ReadIdentity(f.data);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    const DirIdentity& id = **existing;
    if (id.node_id != f.id) {
      return Status::FailedPrecondition(
          fmt::format("{} holds node {}'s data, not node {}'s", f.data, id.node_id, f.id));
    }
    opts->host.cluster_id = id.cluster_id;
    if (!f.initial_cluster.empty()) {
      auto members = cluster::ParseMemberList(f.initial_cluster);
      if (!members.ok()) return members.status();
      if (cluster::DeriveClusterId(*members, LayoutToken(f)) != id.cluster_id) {
        return Status::FailedPrecondition(
            f.data +
            " belongs to another cluster than --initial-cluster (with --shards and "
            "--replicas) describes");
      }
    }
    return Status::Ok();
  }
  DirIdentity ident;
  ident.node_id = f.id;
  if (!f.initial_cluster.empty()) {
    auto members = cluster::ParseMemberList(f.initial_cluster);
    if (!members.ok()) return members.status();
    opts->host.initial_cluster = *members;
    ident.cluster_id = cluster::DeriveClusterId(*members, LayoutToken(f));
  } else if (!f.join.empty()) {
    SYNOD_RETURN_IF_ERROR(Join(f, self, opts, &ident));
  } else {
    return Fail("a new data directory needs --initial-cluster or --join");
  }
  opts->host.cluster_id = ident.cluster_id;
  return WriteIdentity(f.data, ident);
}

// Applies a TOML config file: every top-level key is a flag's long name ("tick-ms = 100");
// flags given on the command line win. Unknown keys and values of the wrong type are errors.
Status ApplyConfigFile(CLI::App* cmd, const std::string& path) {
  toml::parse_result parsed = toml::parse_file(path);
  if (!parsed) {
    const auto& err = parsed.error();
    return Status::InvalidArgument(fmt::format("{}:{}:{}: {}", path, err.source().begin.line,
                                               err.source().begin.column, err.description()));
  }
  for (const auto& [key, node] : parsed.table()) {
    const std::string name(key.str());
    CLI::Option* opt = nullptr;
    try {
      opt = cmd->get_option("--" + name);
    } catch (const CLI::Error&) {
      return Status::InvalidArgument(path + ": unknown setting \"" + name + "\"");
    }
    if (name == "config" || name == "help") {
      return Status::InvalidArgument(path + ": \"" + name + "\" cannot be set in a file");
    }
    if (opt->count() > 0) continue;  // the command line wins
    std::string value;
    if (auto s = node.value<std::string>()) {
      value = *s;
    } else if (auto i = node.value<int64_t>()) {
      value = std::to_string(*i);
    } else if (auto b = node.value<bool>()) {
      value = *b ? "true" : "false";
    } else {
      return Status::InvalidArgument(path + ": \"" + name + "\" must be a string, integer or bool");
    }
    try {
      opt->add_result(value);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      return Status::InvalidArgument(path + ": \"" + name + "\": " + e.what());
    }
  }
  return Status::Ok();
}

int RunStart(const StartFlags& f) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto impl = std::make_shared<spdlog::logger>("synod", sink);
  impl->set_pattern("%Y-%m-%dT%H:%M:%S.%e %L %v");
  impl->set_level(spdlog::level::from_str(f.log_level));
  impl->flush_on(spdlog::level::info);
  Logger logger = Logger(impl).With(fmt::format("node={} ", f.id));
  if (f.id == 0) {
    logger.Error("event=bad_flags error=\"--id must be >= 1\"");
    return kExitUsage;
  }
  server::NodeOptions opts;
  cluster::MemberAddress self{f.advertise_peer.empty() ? f.peer : f.advertise_peer,
                              f.advertise_client.empty() ? f.client : f.advertise_client,
                              f.advertise_admin.empty() ? f.admin : f.advertise_admin};
  opts.host.id = NodeId(f.id);
  opts.host.data_dir = f.data;
  opts.host.peer_listen = f.peer;
  opts.host.self = self;
  opts.host.tick_ms = f.tick_ms;
  opts.host.election_ticks = f.election_ticks;
  opts.host.heartbeat_ticks = f.heartbeat_ticks;
  opts.host.request_timeout_ms = f.request_timeout_ms;
  opts.host.shards = f.shards;
  opts.host.replicas = f.replicas;
  opts.host.snapshot_entries = f.snapshot_entries;
  opts.host.state_flush_entries = f.state_flush_entries;
  opts.host.shard_max_bytes = f.shard_max_bytes;
  opts.host.shard_max_writes_per_second = f.shard_max_writes_per_second;
  opts.host.zone = f.zone;
  opts.host.dead_node_timeout_ms = static_cast<int64_t>(f.dead_node_timeout_s * 1000);
  opts.host.move_p99_target_ms = f.move_p99_target_ms;
  opts.host.script_memory_bytes = static_cast<size_t>(f.script_memory_mb) << 20;
  opts.host.placement = f.placement == "on";
  opts.host.lease_reads = f.lease_reads;
  opts.host.rocks.sync = !f.no_fsync;
  opts.resp.listen_address = f.client;
  opts.resp.clients_max = f.max_clients;
  opts.resp.limits.bulk_bytes_max = f.proto_max_bulk_len;
  opts.resp.output_bytes_max = f.client_output_limit;
  opts.admin_address = f.admin;
  opts.fault_hooks = f.fault_hooks;
  opts.cluster_redirects = f.cluster_redirects;
  Status s = PrepareDir(f, self, &opts);
  if (!s.ok()) {
    logger.Error("event=start_failed error=\"{}\"", s.ToString());
    return 1;
  }
  auto node = server::Node::Open(opts, logger);
  if (!node.ok()) {
    logger.Error("event=start_failed error=\"{}\"", node.status().ToString());
    return 1;
  }
  s = (*node)->Start();
  if (!s.ok()) {
    logger.Error("event=start_failed error=\"{}\"", s.ToString());
    return 1;
  }
  (*node)->Run();
  return 0;
}

}  // namespace

void AddStartCommand(CLI::App& app) {
  auto f = std::make_shared<StartFlags>();
  CLI::App* cmd = app.add_subcommand("start", "Run one Synod node in the foreground.");
  auto config = std::make_shared<std::string>();
  cmd->add_option("--config", *config,
                  "TOML file whose keys are these flags' long names (flags given here win)");
  cmd->add_option("--id", f->id, "This node's id (>= 1), unique in the cluster (required)");
  cmd->add_option("--data", f->data, "Data directory (required)");
  cmd->add_option("--client", f->client, "RESP client address to listen on")->capture_default_str();
  cmd->add_option("--peer", f->peer, "Raft peer address to listen on")->capture_default_str();
  cmd->add_option("--admin", f->admin, "Admin HTTP address (/metrics, /status)")
      ->capture_default_str();
  cmd->add_option("--advertise-client", f->advertise_client,
                  "Client address other nodes and tools are told (default: --client)");
  cmd->add_option("--advertise-peer", f->advertise_peer,
                  "Peer address peers dial (default: --peer)");
  cmd->add_option("--advertise-admin", f->advertise_admin, "Admin address (default: --admin)");
  cmd->add_option("--initial-cluster", f->initial_cluster,
                  "Initial voters, ID=PEER[/CLIENT[/ADMIN]],... (new clusters only)");
  cmd->add_option("--join", f->join, "Admin address of a member of the cluster to join");
  cmd->add_option("--cluster-token", f->cluster_token,
                  "Mixed into the cluster id so that two clusters with the same members differ")
      ->capture_default_str();
  cmd->add_option("--shards", f->shards,
                  "Data shards of a new cluster (0: two per initial node); the same on every "
                  "initial node")
      ->capture_default_str()
      ->check(CLI::Range(0, 16384));
  cmd->add_option("--replicas", f->replicas,
                  "Replicas of each shard of a new cluster (capped at the node count)")
      ->capture_default_str()
      ->check(CLI::Range(1, 99));
  cmd->add_option("--tick-ms", f->tick_ms, "Raft tick interval")->capture_default_str();
  cmd->add_option("--election-ticks", f->election_ticks,
                  "Election timeout in ticks (randomized "
                  "up to twice this)")
      ->capture_default_str();
  cmd->add_option("--heartbeat-ticks", f->heartbeat_ticks, "Heartbeat interval in ticks")
      ->capture_default_str();
  cmd->add_option("--request-timeout-ms", f->request_timeout_ms,
                  "A request without a quorum fails after this long")
      ->capture_default_str();
  cmd->add_option("--snapshot-entries", f->snapshot_entries,
                  "Snapshot and compact the log every this many applied entries")
      ->capture_default_str();
  cmd->add_option("--shard-max-bytes", f->shard_max_bytes,
                  "A shard whose keys and values hold more than this splits in two, at the slot "
                  "that halves its bytes (0: never)")
      ->capture_default_str();
  cmd->add_option("--shard-max-writes-per-second", f->shard_max_writes_per_second,
                  "A shard whose writes average more than this per second over ten seconds "
                  "splits in two, at the slot that halves them (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--zone", f->zone,
                  "This node's zone (rack, room, region): a shard's replicas go to distinct zones "
                  "where they can")
      ->check(CLI::Validator(
          [](const std::string& z) -> std::string {
            const bool ok = z.size() <= 64 && std::all_of(z.begin(), z.end(), [](char c) {
                              return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                     c == '_' || c == '.';
                            });
            return ok ? "" : "a zone is up to 64 letters, digits, '-', '_' or '.'";
          },
          "ZONE"));
  cmd->add_option("--dead-node-timeout", f->dead_node_timeout_s,
                  "Seconds a node may stay unheard of before its replicas are made again on "
                  "other nodes")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_option("--script-memory-mb", f->script_memory_mb,
                  "Memory all Lua scripts and functions of this node may hold (one LuaJIT "
                  "state); a script that needs more fails with an error")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{4}, int64_t{65536}));
  cmd->add_option("--move-p99-target-ms", f->move_p99_target_ms,
                  "Snapshots this node streams (moves, healing) slow down while its clients' p99 "
                  "latency is above this, never below twice the rate their shards are written "
                  "at; 0 never slows them")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 60000.0));
  cmd->add_option("--placement", f->placement,
                  "Whether the cluster places replicas and leaders itself (balance, joins, "
                  "drains, healing); off leaves it to `synod shard move`")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--state-flush-entries", f->state_flush_entries,
                  "Write the applied state to the database every this many entries (the log "
                  "covers the rest; a restart replays it)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--lease-reads", f->lease_reads,
                "Serve linearizable reads from a leader lease instead of ReadIndex");
  cmd->add_flag("--cluster-redirects", f->cluster_redirects,
                "Answer a key whose shard another node leads with -MOVED, as Redis Cluster does "
                "(off: every node serves every key, forwarding inside the cluster)");
  cmd->add_flag("--no-fsync", f->no_fsync, "Do not fsync (benchmarks only: loses data on crash)");
  cmd->add_option("--max-clients", f->max_clients, "Client connections accepted at once")
      ->capture_default_str();
  cmd->add_option("--proto-max-bulk-len", f->proto_max_bulk_len, "Largest bulk argument, bytes")
      ->capture_default_str();
  cmd->add_option("--client-output-limit", f->client_output_limit,
                  "Unsent reply bytes after which a slow client is disconnected")
      ->capture_default_str();
  cmd->add_flag("--fault-hooks", f->fault_hooks,
                "Enable /debug/partition and /debug/disk on the admin port (tests only)");
  cmd->add_option("--log-level", f->log_level, "trace, debug, info, warn, err")
      ->capture_default_str();
  cmd->callback([f, config, cmd] {
    if (!config->empty()) {
      Status s = ApplyConfigFile(cmd, *config);
      if (!s.ok()) {
        std::cerr << "synod start: " << s.message() << "\n";
        throw CLI::RuntimeError(kExitUsage);
      }
    }
    if (f->id == 0 || f->data.empty()) {
      std::cerr << "synod start: --id (>= 1) and --data are required\n";
      throw CLI::RuntimeError(kExitUsage);
    }
    const int code = RunStart(*f);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace synod::cli
