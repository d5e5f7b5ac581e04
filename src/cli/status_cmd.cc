// `synod status` and `synod member`: operator views and membership changes, through the nodes'
// admin HTTP ports (docs/operations.md).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "cli/admin_client.h"
#include "cli/commands.h"
#include "cluster/group_host.h"

namespace synod::cli {
namespace {

constexpr int kExitUnavailable = 1;

std::string Str(const nlohmann::json& j, const char* k) {
  if (!j.is_object() || !j.contains(k)) return "";
  const auto& v = j[k];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The shards of a /status, one line each: group, slots, epoch, leader, replicas (a learner
// marked L), keys and applied index (blank for shards the node does not hold).
void PrintShards(const nlohmann::json& shards) {
  std::cout << fmt::format("{:>5}  {:<11} {:>5} {:>6}  {:<12} {:>9} {:>11} {:>7} {:>9}\n", "SHARD",
                           "SLOTS", "EPOCH", "LEADER", "REPLICAS", "KEYS", "BYTES", "W/S",
                           "APPLIED");
  for (const auto& s : shards) {
    std::string replicas;
    for (const auto& v : s["voters"]) replicas += (replicas.empty() ? "" : ",") + v.dump();
    for (const auto& l : s["learners"]) replicas += (replicas.empty() ? "" : ",") + l.dump() + "L";
    const uint64_t leader = s.value("leader", uint64_t{0});
    std::cout << fmt::format(
        "{:>5}  {:<11} {:>5} {:>6}  {:<12} {:>9} {:>11} {:>7} {:>9}{}\n", Str(s, "group"),
        Str(s, "first_slot") + "-" + Str(s, "last_slot"), Str(s, "epoch"),
        leader == 0 ? std::string("none") : std::to_string(leader), replicas, Str(s, "keys"),
        Str(s, "bytes"), Str(s, "writes_per_second"), Str(s, "applied"),
        s.contains("note") ? "  (" + Str(s, "note") + ")" : "");
  }
}

// The /status of the meta shard's leader, as named by `status` (another node's), or `status`
// itself when it is the leader's or the leader cannot be read. The leader runs the placement:
// its view of moves and of nodes' liveness is the one that counts.
nlohmann::json MetaLeaderStatus(const nlohmann::json& status) {
  const uint64_t leader = status.value("meta_leader", uint64_t{0});
  if (leader == 0 || leader == status.value("id", uint64_t{0})) return status;
  for (const auto& n : status.value("node_list", nlohmann::json::array())) {
    if (n.value("id", uint64_t{0}) != leader || n.value("admin", "").empty()) continue;
    auto lv = AdminCall("GET", n.value("admin", ""), "/status", 1000);
    if (lv.ok() && lv->status == 200 && lv->json.is_object()) return lv->json;
  }
  return status;
}

// The membership changes under way, one line each (`synod shards`).
// `streams`: the snapshots being streamed, by group ("bytes" so far, "to"), and `shards` for the
// bytes each shard holds: a move whose learner is being sent its snapshot shows how far it got.
void PrintMoves(const nlohmann::json& moves, const std::map<uint64_t, nlohmann::json>& streams = {},
                const nlohmann::json& shards = nlohmann::json::array()) {
  if (moves.empty()) return;
  std::cout << fmt::format("\n{:>5}  {:>4} {:>4}  {:<14} {:<18} {:>6}  {}\n", "MOVE", "FROM", "TO",
                           "STEP", "REASON", "AGE", "PROGRESS");
  for (const auto& m : moves) {
    const uint64_t from = m.value("from", uint64_t{0}), to = m.value("to", uint64_t{0});
    std::string progress;
    const uint64_t last = m.value("leader_last", uint64_t{0});
    if (last > 0) {
      progress = fmt::format("{}/{} entries ({}%)", m.value("target_match", uint64_t{0}), last,
                             100 * m.value("target_match", uint64_t{0}) / last);
    }
    const uint64_t group = m.value("group", uint64_t{0});
    if (auto st = streams.find(group);
        st != streams.end() && st->second.value("to", uint64_t{0}) == to) {
      uint64_t total = 0;
      for (const auto& sh : shards) {
        if (sh.value("group", uint64_t{0}) == group) total = sh.value("bytes", uint64_t{0});
      }
      const uint64_t sent = st->second.value("bytes", uint64_t{0});
      progress = total > 0 ? fmt::format("snapshot {:.1f}/{:.1f} MB ({}%)", sent / 1e6, total / 1e6,
                                         std::min<uint64_t>(100, 100 * sent / total))
                           : fmt::format("snapshot {:.1f} MB", sent / 1e6);
    }
    std::cout << fmt::format("{:>5}  {:>4} {:>4}  {:<14} {:<18} {:>5}s  {}\n", Str(m, "group"),
                             from == 0 ? std::string("-") : std::to_string(from),
                             to == 0 ? std::string("-") : std::to_string(to), m.value("step", ""),
                             m.value("reason", ""), m.value("age_ms", int64_t{0}) / 1000, progress);
  }
}

// Asks `host`, then every member it knows, for its /status.
int RunStatus(const std::string& host, bool json) {
  auto first = AdminCall("GET", host, "/status", 2000);
  if (!first.ok() || first->status != 200 || !first->json.is_object()) {
    std::cerr << "synod status: cannot read " << host
              << "/status: " << (first.ok() ? first->body : first.status().ToString()) << "\n";
    return kExitUnavailable;
  }
  // The leader hears from every member, so its view of "last contact" is the useful one.
  nlohmann::json view = first->json;
  const uint64_t leader = first->json.value("leader", uint64_t{0});
  for (const auto& m : first->json["members"]) {
    if (leader == 0 || m.value("id", uint64_t{0}) != leader || m.value("admin", "").empty()) {
      continue;
    }
    auto lv = AdminCall("GET", m.value("admin", ""), "/status", 1000);
    if (lv.ok() && lv->status == 200 && lv->json.is_object()) view = lv->json;
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : view["members"]) {
    nlohmann::json row = {{"id", m["id"]},       {"client", m["client"]},
                          {"admin", m["admin"]}, {"peer", m["peer"]},
                          {"voter", m["voter"]}, {"last_contact_ms", m["last_contact_ms"]}};
    const std::string admin = m.value("admin", "");
    if (admin.empty()) {
      row["state"] = "unknown";
    } else {
      auto st = AdminCall("GET", admin, "/status", 1000);
      if (!st.ok()) {
        const bool refused = st.status().message().find("Connection") != std::string::npos;
        row["state"] = refused ? "down" : "unreachable";
        row["error"] = std::string(st.status().message());
      } else if (st->status != 200 || !st->json.is_object()) {
        row["state"] = "unreachable";
        row["error"] = st->body;
      } else {
        const auto& s = st->json;
        row["state"] = s.value("failure", "").empty() ? "up" : "failed";
        for (const char* k :
             {"role", "term", "leader", "commit", "applied", "last_index", "snapshot_index", "keys",
              "failure", "groups_led", "groups_quiesced"}) {
          if (s.contains(k)) row[k] = s[k];
        }
        if (s.contains("groups")) row["groups"] = s["groups"].size();
      }
    }
    out.push_back(row);
  }
  // The shards as the node we read the members from sees them (leaders it does not host: as
  // last heard).
  const nlohmann::json shards = view.contains("shards") ? view["shards"] : nlohmann::json::array();
  if (json) {
    std::cout << nlohmann::json{{"nodes", out}, {"shards", shards}}.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format(
      "{:>3}  {:<21} {:<21} {:<11} {:<9} {:>5} {:>6} {:>9} {:>9} {:>8} {:>7}  {}\n", "ID", "CLIENT",
      "ADMIN", "STATE", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "CONTACT", "LEADS", "NOTE");
  for (const auto& r : out) {
    const int64_t contact = r.value("last_contact_ms", int64_t{-1});
    std::string note = Str(r, "failure").empty() || Str(r, "failure") == "\"\""
                           ? (r.value("voter", false) ? "" : "learner")
                           : Str(r, "failure");
    if (r.contains("error")) note = Str(r, "error");
    const std::string leads =
        r.contains("groups") ? Str(r, "groups_led") + "/" + Str(r, "groups") : std::string();
    std::cout << fmt::format(
        "{:>3}  {:<21} {:<21} {:<11} {:<9} {:>5} {:>6} {:>9} {:>9} {:>8} {:>7}  {}\n", Str(r, "id"),
        Str(r, "client"), Str(r, "admin"), Str(r, "state"), Str(r, "role"), Str(r, "term"),
        Str(r, "leader"), Str(r, "commit"), Str(r, "applied"),
        contact < 0 ? std::string("never") : fmt::format("{}ms", contact), leads, note);
  }
  if (!shards.empty()) {
    std::cout << "\n";
    PrintShards(shards);
  }
  return 0;
}

// `synod shards`: the shards as `host` sees them (its /status), one line each.
int RunShards(const std::string& host, bool json) {
  auto st = AdminCall("GET", host, "/status", 2000);
  if (!st.ok() || st->status != 200 || !st->json.is_object() || !st->json.contains("shards")) {
    std::cerr << "synod shards: cannot read " << host
              << "/status: " << (st.ok() ? st->body : st.status().ToString()) << "\n";
    return kExitUnavailable;
  }
  nlohmann::json shards = st->json["shards"];
  // Writes per second are measured by each shard's leader, and a shard this node holds no
  // replica of has its keys, bytes and applied index there too: from every other node's /status.
  std::map<uint64_t, nlohmann::json> led;
  std::map<uint64_t, nlohmann::json> streams;  // snapshots being sent, by group
  const auto streams_of = [&](const nlohmann::json& status) {
    const nlohmann::json ss = status.value("snapshot_streams", nlohmann::json::object());
    for (const auto& x : ss.value("sending", nlohmann::json::array())) {
      streams[x.value("group", uint64_t{0})] = x;
    }
  };
  streams_of(st->json);
  for (const auto& n : st->json.value("node_list", nlohmann::json::array())) {
    if (n.value("id", uint64_t{0}) == st->json.value("id", uint64_t{0})) continue;
    auto other = AdminCall("GET", n.value("admin", ""), "/status", 1000);
    if (!other.ok() || other->status != 200 || !other->json.is_object()) continue;
    for (const auto& g : other->json.value("groups", nlohmann::json::array())) {
      if (g.value("role", "") == "leader") led[g.value("group", uint64_t{0})] = g;
    }
    streams_of(other->json);
  }
  for (auto& s : shards) {
    auto r = led.find(s.value("group", uint64_t{0}));
    if (r == led.end()) continue;
    for (const char* field : {"writes_per_second", "keys", "bytes", "applied"}) {
      if (!s.contains(field) && r->second.contains(field)) s[field] = r->second[field];
    }
  }
  if (json) {
    std::cout << shards.dump(2) << "\n";
    return 0;
  }
  PrintShards(shards);
  PrintMoves(MetaLeaderStatus(st->json).value("moves", nlohmann::json::array()), streams, shards);
  return 0;
}

// `synod node list`: every node of the node list (the meta shard's) with what it holds: its
// replicas of data shards, how many it leads, their keys and bytes, read from each node's
// /status.
int RunNodeList(const std::string& host, bool json) {
  auto first = AdminCall("GET", host, "/status", 2000);
  if (!first.ok() || first->status != 200 || !first->json.is_object()) {
    std::cerr << "synod node list: cannot read " << host
              << "/status: " << (first.ok() ? first->body : first.status().ToString()) << "\n";
    return kExitUnavailable;
  }
  nlohmann::json out = nlohmann::json::array();
  // Zones, draining and liveness as the meta leader (which places replicas) sees them.
  std::map<uint64_t, nlohmann::json> placed;
  for (const auto& n : MetaLeaderStatus(first->json).value("node_list", nlohmann::json::array())) {
    placed[n.value("id", uint64_t{0})] = n;
  }
  for (const auto& n : first->json.value("node_list", nlohmann::json::array())) {
    nlohmann::json row = {{"id", n["id"]}, {"client", n["client"]}, {"admin", n["admin"]}};
    const nlohmann::json& p = placed[n.value("id", uint64_t{0})];
    row["zone"] = p.value("zone", "");
    row["draining"] = p.value("draining", false);
    row["live"] = p.value("live", true);
    auto st = AdminCall("GET", n.value("admin", ""), "/status", 1000);
    if (!st.ok() || st->status != 200 || !st->json.is_object()) {
      row["state"] = row["live"].get<bool>() ? "unreachable" : "dead";
    } else {
      const auto& s = st->json;
      row["state"] = !s.value("failure", "").empty() ? "failed"
                     : row["draining"].get<bool>()   ? "draining"
                                                     : "up";
      uint64_t replicas = 0, leaders = 0, keys = 0, bytes = 0;
      double writes = 0;
      for (const auto& g : s.value("groups", nlohmann::json::array())) {
        if (g.value("group", uint64_t{0}) == 1) continue;  // the meta shard
        ++replicas;
        leaders += g.value("role", "") == "leader" ? 1 : 0;
        keys += g.value("keys", uint64_t{0});
        bytes += g.value("bytes", uint64_t{0});
        writes += g.value("writes_per_second", 0.0);
      }
      row["writes_per_second"] = writes;
      row["replicas"] = replicas;
      row["leaders"] = leaders;
      row["keys"] = keys;
      row["bytes"] = bytes;
    }
    out.push_back(std::move(row));
  }
  if (json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("{:>3}  {:<21} {:<21} {:<11} {:<8} {:>8} {:>7} {:>9} {:>11} {:>7}\n",
                           "ID", "CLIENT", "ADMIN", "STATE", "ZONE", "REPLICAS", "LEADERS", "KEYS",
                           "BYTES", "W/S");
  for (const auto& r : out) {
    std::cout << fmt::format(
        "{:>3}  {:<21} {:<21} {:<11} {:<8} {:>8} {:>7} {:>9} {:>11} {:>7}\n", Str(r, "id"),
        Str(r, "client"), Str(r, "admin"), Str(r, "state"), r.value("zone", ""), Str(r, "replicas"),
        Str(r, "leaders"), Str(r, "keys"), Str(r, "bytes"),
        r.contains("writes_per_second") ? fmt::format("{:.0f}", r.value("writes_per_second", 0.0))
                                        : std::string());
  }
  return 0;
}

// `synod node remove`: marks the node draining through the meta leader, then follows the drain
// (the replicas the node still holds, from the shards' descriptors) until it leaves the list.
int RunNodeRemove(const std::string& host, uint64_t id, bool no_wait, int64_t timeout_s) {
  auto r = AdminCall("POST", host, fmt::format("/nodes/remove?id={}", id), 15000,
                     /*follow_leader=*/true);
  if (!r.ok()) {
    std::cerr << "synod node remove: " << r.status().ToString() << "\n";
    return kExitUnavailable;
  }
  if (r->status != 200) {
    std::cerr << "synod node remove: HTTP " << r->status << ": " << r->body;
    return r->status == 400 || r->status == 404 || r->status == 409 ? 2 : kExitUnavailable;
  }
  std::cout << "node " << id << " is draining: its replicas move to other nodes\n";
  if (no_wait) return 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = AdminCall("GET", host, "/status", 2000);
    if (st.ok() && st->status == 200 && st->json.is_object()) {
      bool listed = false;
      for (const auto& n : st->json.value("node_list", nlohmann::json::array())) {
        listed = listed || n.value("id", uint64_t{0}) == id;
      }
      int held = 0;
      for (const auto& s : st->json.value("shards", nlohmann::json::array())) {
        for (const char* k : {"voters", "learners"}) {
          for (const auto& v : s.value(k, nlohmann::json::array())) held += v == id ? 1 : 0;
        }
      }
      if (!listed && held == 0) {
        std::cout << "node " << id << " has left the cluster; stop its process when you like\n";
        return 0;
      }
      const std::string line = fmt::format("node {}: {} replicas left", id, held);
      if (line != last) std::cout << line << "\n" << std::flush;
      last = line;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::cerr << "synod node remove: node " << id << " still drains after " << timeout_s
            << " s; the drain goes on (see `synod node list`)\n";
  return kExitUnavailable;
}

int Report(const Result<AdminReply>& r, const std::string& what) {
  if (!r.ok()) {
    std::cerr << "synod member " << what << ": " << r.status().ToString() << "\n";
    return kExitUnavailable;
  }
  if (r->status != 200) {
    std::cerr << "synod member " << what << ": HTTP " << r->status << ": " << r->body;
    return kExitUnavailable;
  }
  std::cout << r->body;
  return 0;
}

}  // namespace

void AddStatusCommand(CLI::App& app) {
  auto host = std::make_shared<std::string>("127.0.0.1:7201");
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "status", "Show every node (role, term, indexes, health, shards led) and every shard.");
  cmd->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([host, json] {
    const int code = RunStatus(*host, *json);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

void AddShardsCommand(CLI::App& app) {
  auto host = std::make_shared<std::string>("127.0.0.1:7201");
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "shards", "List the shards: slot range, epoch, leader, replicas, keys, applied index.");
  cmd->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->callback([host, json] {
    const int code = RunShards(*host, *json);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

namespace {

// The answer of a shard change: its JSON on stdout, or the error on stderr and an exit code (2
// for a request that makes no sense, the unavailable code otherwise).
void PrintShardChange(const char* what, const Result<AdminReply>& r) {
  if (!r.ok()) {
    std::cerr << what << ": " << r.status().ToString() << "\n";
    throw CLI::RuntimeError(kExitUnavailable);
  }
  if (r->status != 200) {
    std::cerr << what << ": HTTP " << r->status << ": " << r->body;
    throw CLI::RuntimeError(r->status == 400 || r->status == 404 ? 2 : kExitUnavailable);
  }
  std::cout << r->body;
}

}  // namespace

void AddShardCommand(CLI::App& app) {
  auto host = std::make_shared<std::string>("127.0.0.1:7201");
  auto id = std::make_shared<uint64_t>(0);
  auto at = std::make_shared<int>(-1);
  CLI::App* cmd = app.add_subcommand("shard", "Change a shard (split, merge, move).");
  cmd->require_subcommand(1);
  CLI::App* split = cmd->add_subcommand(
      "split",
      "Split a shard in two at a slot (default: the middle of its slots). A Raft command of the "
      "shard: no data is copied; clients see a pause, not an error.");
  split->add_option("id", *id, "The shard's group id (see `synod shards`)")->required();
  split->add_option("--at", *at, "The first slot of the new shard")->check(CLI::Range(0, 16383));
  split->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  split->callback([host, id, at] {
    std::string path = fmt::format("/shards/split?id={}", *id);
    if (*at >= 0) path += fmt::format("&at={}", *at);
    PrintShardChange("synod shard split", AdminCall("POST", *host, path, 20000, false));
  });
  auto into = std::make_shared<uint64_t>(0);
  CLI::App* merge = cmd->add_subcommand(
      "merge",
      "Merge a shard into its neighbour (by default the shard holding the slots before its own): "
      "the shard is frozen, its keys (at most 64 MiB) go through the neighbour's log, and it is "
      "gone. Clients see a pause, not an error.");
  merge->add_option("id", *id, "The shard merged away (see `synod shards`)")->required();
  merge->add_option("--into", *into, "The neighbour that absorbs it");
  merge->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  merge->callback([host, id, into] {
    std::string path = fmt::format("/shards/merge?id={}", *id);
    if (*into != 0) path += fmt::format("&into={}", *into);
    PrintShardChange("synod shard merge", AdminCall("POST", *host, path, 25000, false));
  });
  auto from = std::make_shared<uint64_t>(0);
  auto to = std::make_shared<uint64_t>(0);
  CLI::App* move = cmd->add_subcommand(
      "move",
      "Move a shard's replica from one node to another: the target joins as a learner, is "
      "promoted once caught up, then the source leaves and deletes its copy. Waits until done.");
  move->add_option("id", *id, "The shard's group id (see `synod shards`)")->required();
  move->add_option("--from", *from, "The node that holds the replica")->required();
  move->add_option("--to", *to, "The node to move it to")->required();
  move->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  move->callback([host, id, from, to] {
    PrintShardChange(
        "synod shard move",
        AdminCall("POST", *host, fmt::format("/shards/move?id={}&from={}&to={}", *id, *from, *to),
                  135000, /*follow_leader=*/true));
  });
}

void AddNodeCommand(CLI::App& app) {
  auto host = std::make_shared<std::string>("127.0.0.1:7201");
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("node", "The nodes of the cluster.");
  cmd->require_subcommand(1);
  CLI::App* list = cmd->add_subcommand(
      "list", "Every node with its replicas of data shards, leaders, keys and bytes.");
  list->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  list->add_flag("--json", *json, "Print JSON");
  list->callback([host, json] {
    const int code = RunNodeList(*host, *json);
    if (code != 0) throw CLI::RuntimeError(code);
  });
  auto id = std::make_shared<uint64_t>(0);
  auto no_wait = std::make_shared<bool>(false);
  auto timeout_s = std::make_shared<int64_t>(600);
  CLI::App* remove = cmd->add_subcommand(
      "remove",
      "Drain a node: its replicas move to other nodes (nothing is lost), then it leaves the "
      "cluster. Waits until it has left, showing the replicas it still holds.");
  remove->add_option("id", *id, "The node's id")->required();
  remove->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  remove->add_flag("--no-wait", *no_wait, "Return once the drain has started");
  remove->add_option("--timeout", *timeout_s, "Seconds to wait (the drain goes on after)")
      ->capture_default_str();
  remove->callback([host, id, no_wait, timeout_s] {
    const int code = RunNodeRemove(*host, *id, *no_wait, *timeout_s);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

void AddMemberCommand(CLI::App& app) {
  auto host = std::make_shared<std::string>("127.0.0.1:7201");
  auto id = std::make_shared<uint64_t>(0);
  auto peer = std::make_shared<std::string>();
  auto client = std::make_shared<std::string>();
  auto admin = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("member", "List, add or remove members.");
  cmd->require_subcommand(1);
  cmd->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  CLI::App* list = cmd->add_subcommand("list", "List the members.");
  list->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  list->callback([host] {
    const int code = RunStatus(*host, false);
    if (code != 0) throw CLI::RuntimeError(code);
  });
  CLI::App* add = cmd->add_subcommand(
      "add",
      "Add a node as a learner; the leader promotes it to voter once it caught up. "
      "Then start it with --join.");
  add->add_option("id", *id, "The new node's id")->required();
  add->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  add->add_option("--peer", *peer, "The new node's peer address")->required();
  add->add_option("--client", *client, "Its client address");
  add->add_option("--admin", *admin, "Its admin address");
  add->callback([host, id, peer, client, admin] {
    auto r = AdminCall("POST", *host,
                       fmt::format("/members/add?id={}&peer={}&client={}&admin={}", *id,
                                   UrlEncode(*peer), UrlEncode(*client), UrlEncode(*admin)),
                       5000, true);
    const int code = Report(r, "add");
    if (code != 0) throw CLI::RuntimeError(code);
  });
  CLI::App* remove = cmd->add_subcommand("remove", "Remove a node (joint consensus).");
  remove->add_option("id", *id, "The node's id")->required();
  remove->add_option("--host", *host, "Admin address of any node")->capture_default_str();
  remove->callback([host, id] {
    auto r = AdminCall("POST", *host, fmt::format("/members/remove?id={}", *id), 5000, true);
    const int code = Report(r, "remove");
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace synod::cli
