#include "server/node.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "common/assert.h"
#include "env/asio/steady_clock.h"

namespace synod::server {

namespace {

using env::SteadyNowNs;
using env::WallNowMs;

std::string RandomHex(int chars) {
  std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < chars; ++i) out.push_back(kHex[rng() % 16]);
  return out;
}

nlohmann::json MemberJson(const cluster::MemberStatus& m) {
  return {{"id", m.id.value()},
          {"peer", m.address.peer},
          {"client", m.address.client},
          {"admin", m.address.admin},
          {"voter", m.voter},
          {"connected", m.connected},
          {"last_contact_ms", m.last_contact_ms},
          {"match", m.match.value()}};
}

admin::HttpResponse Json(int status, const nlohmann::json& j) {
  return admin::JsonResponse(status, j.dump() + "\n");
}

admin::HttpResponse JsonError(int status, const std::string& message) {
  return Json(status, {{"error", message}});
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case Code::kInvalidArgument:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kFailedPrecondition:
      return 409;
    case Code::kNotLeader:
      return 421;
    default:
      return 503;
  }
}

}  // namespace

// Published by the core thread for the metrics callbacks, which run on HTTP threads.
struct Node::Published {
  std::atomic<uint64_t> term{0}, commit{0}, applied{0}, last_index{0}, leader{0}, members{0};
  std::atomic<bool> is_leader{false}, failed{false};
  std::atomic<uint64_t> disk_bytes{0}, keys{0}, groups{0}, groups_led{0}, groups_quiesced{0};
  std::atomic<uint64_t> stream_rate{0};
  // Per group held (fixed at start), for the metrics with a `shard` label.
  struct Group {
    std::atomic<uint64_t> term{0}, commit{0}, applied{0}, last_index{0}, leader{0}, keys{0};
    std::atomic<bool> is_leader{false}, quiesced{false};
  };
  std::map<GroupId, std::unique_ptr<Group>> by_group;
};

Node::Node(NodeOptions opts, Logger logger)
    : opts_(std::move(opts)),
      logger_(std::move(logger)),
      published_(std::make_unique<Published>()),
      signals_(io_) {}

Node::~Node() {
  if (admin_) admin_->Stop();
  resp_.reset();
  if (host_) host_->Stop();
}

Result<std::unique_ptr<Node>> Node::Open(NodeOptions opts, Logger logger) {
  std::unique_ptr<Node> n(new Node(std::move(opts), std::move(logger)));
  if (n->opts_.fault_hooks) {
    n->fault_fs_ = std::make_shared<storage::FaultInjectionFs>();
    n->fault_env_ = storage::NewFaultInjectionEnv(n->fault_fs_);
    n->opts_.host.rocks.env = n->fault_env_.get();
  }
  auto host = cluster::GroupHost::Open(n->io_, n->opts_.host, n->logger_);
  if (!host.ok()) return host.status();
  n->host_ = std::move(host).value();
  n->ctx_.host = n->host_.get();
  n->ctx_.router = n->host_.get();
  n->ctx_.counters = &n->counters_;
  n->ctx_.start_time_ms = WallNowMs();
  n->ctx_.io = &n->io_;
  // LASTSAVE starts at the start time: the state was durable (RocksDB) when the node opened.
  n->ctx_.last_save_ms = n->ctx_.start_time_ms;
  n->last_snapshot_index_ = n->host_->GetStatus().snapshot_index;
  n->ctx_.run_id = RandomHex(40);
  n->ctx_.data_dir = n->opts_.host.data_dir;
  n->ctx_.config_file = n->opts_.config_file;
  n->ctx_.cluster_redirects = n->opts_.cluster_redirects;
  n->resp_ = std::make_unique<RespServer>(n->io_, n->opts_.resp, n->ctx_, n->logger_);
  n->ctx_.server = n->resp_.get();
  admin::AdminOptions ao;
  ao.address = n->opts_.admin_address;
  n->admin_ = std::make_unique<admin::AdminServer>(ao, n->logger_);
  n->RegisterMetrics();
  n->RegisterRoutes();
  return n;
}

Status Node::Start() {
  SYNOD_RETURN_IF_ERROR(host_->Start());
  SYNOD_RETURN_IF_ERROR(resp_->Start());
  SYNOD_RETURN_IF_ERROR(admin_->Start());
  ctx_.client_address = resp_->bound_address();
  ctx_.admin_address = admin_->bound_address();
  logger_.Info("event=node_started client={} peer={} admin={}", client_address(), peer_address(),
               admin_address());
  return Status::Ok();
}

std::string Node::client_address() const { return resp_->bound_address(); }
std::string Node::admin_address() const { return admin_->bound_address(); }
std::string Node::peer_address() const { return host_->transport().bound_address(); }

void Node::RegisterMetrics() {
  auto& r = registry_;
  Published* p = published_.get();
  auto gauge = [&r](const char* name, const char* help, std::atomic<uint64_t>* v) {
    r.AddCallbackGauge(name, help, [v] { return static_cast<double>(v->load()); });
  };
  gauge("synod_raft_term", "Current Raft term.", &p->term);
  gauge("synod_raft_commit_index", "Highest log index known committed.", &p->commit);
  gauge("synod_raft_applied_index", "Highest log index applied to the state machine.", &p->applied);
  gauge("synod_raft_last_index", "Last index in this node's log.", &p->last_index);
  gauge("synod_raft_leader_id", "The leader this node knows of (0: none).", &p->leader);
  gauge("synod_raft_members", "Members of the Raft group (voters and learners).", &p->members);
  gauge("synod_disk_bytes", "Bytes of this node's RocksDB files.", &p->disk_bytes);
  gauge("synod_keys", "Keys in the data shards this node holds a replica of.", &p->keys);
  gauge("synod_raft_groups", "Raft groups (shards) this node holds a replica of.", &p->groups);
  gauge("synod_raft_groups_led", "Raft groups this node leads.", &p->groups_led);
  gauge("synod_raft_groups_quiesced",
        "Raft groups held here that are idle and stopped ticking (quiescence).",
        &p->groups_quiesced);
  // The same figures per group held, labelled shard="<group id>" (the meta shard is 1); a group
  // that appears later (a split's new shard) gets them when the status is next published.
  for (const cluster::GroupStatus& g : host_->GetStatus().groups) RegisterShardMetrics(g.group);
  r.AddCallbackGauge("synod_raft_is_leader",
                     "1 if this node leads the group /status reports (its first data shard).",
                     [p] { return p->is_leader.load() ? 1.0 : 0.0; });
  r.AddCallbackGauge("synod_storage_failed", "1 once a disk write failed (writes refused).",
                     [p] { return p->failed.load() ? 1.0 : 0.0; });
  auto counter = [&r](const char* name, const char* help, std::atomic<uint64_t>* v) {
    r.AddCallbackCounter(name, help, [v] { return static_cast<double>(v->load()); });
  };
  cluster::HostCounters& hc = host_->counters();
  counter("synod_proposals_total", "Write commands proposed to Raft.", &hc.proposals);
  counter("synod_fsyncs_total", "Durable writes (group commits) to RocksDB.", &hc.syncs);
  counter("synod_fsync_failures_total", "Durable writes that failed.", &hc.sync_failures);
  counter("synod_ready_rounds_total", "Raft Ready rounds processed.", &hc.ready_rounds);
  counter("synod_requests_forwarded_total",
          "Requests this node sent to the node serving their shard (one per hop).",
          &hc.requests_forwarded);
  counter("synod_requests_served_total", "Requests other nodes forwarded here and this node ran.",
          &hc.requests_served);
  counter("synod_request_retries_total",
          "Routed requests tried again (a hop met no leader, timed out or lost its peer).",
          &hc.request_retries);
  counter("synod_leader_balance_transfers_total",
          "Leadership hand-offs to a shard's preferred leader.", &hc.leader_balance_transfers);
  counter("synod_replicas_destroyed_total",
          "Replicas destroyed here, with their data, after their group removed this node.",
          &hc.replicas_removed);
  counter("synod_shard_splits_total",
          "Shard splits this node's replicas applied (each started the new shard's replica here).",
          &hc.splits);
  counter("synod_shard_merges_total",
          "Shard merges this node's replicas applied (each absorbed a neighbouring shard).",
          &hc.merges);
  // Streamed snapshots (cluster/snapshot_stream.h); the streams outlive no host.
  const cluster::SnapshotStreamCounters& sc = host_->stream_counters();
  auto stream_counter = [&r](const char* name, const char* help, const std::atomic<uint64_t>* v) {
    r.AddCallbackCounter(name, help, [v] { return static_cast<double>(v->load()); });
  };
  stream_counter("synod_snapshot_streams_sent_total",
                 "Snapshots this node streamed to a replica that received them.", &sc.sent);
  stream_counter("synod_snapshot_streams_received_total",
                 "Snapshots streamed to this node, checked and handed to their replica.",
                 &sc.received);
  stream_counter(
      "synod_snapshot_streams_failed_total",
      "Snapshot streams that ended otherwise (refused, damaged, timed out), either side.",
      &sc.failed);
  stream_counter("synod_snapshot_stream_bytes_sent_total", "Bytes of snapshot chunks sent.",
                 &sc.bytes_sent);
  stream_counter("synod_snapshot_stream_bytes_received_total", "Bytes of snapshot chunks received.",
                 &sc.bytes_received);
  r.AddCallbackGauge("synod_snapshot_stream_rate_bytes",
                     "The rate limit of the snapshots this node streams, bytes/s (0: none): lower "
                     "while its clients' p99 is above --move-p99-target-ms.",
                     [p] { return static_cast<double>(p->stream_rate.load()); });
  counter(
      "synod_peer_messages_dropped_total",
      "Peer messages dropped: undecodable, misaddressed, or for a group this node does not hold.",
      &hc.peer_messages_dropped);
  gauge("synod_client_connections", "Open client connections.", &counters_.connections_current);
  counter("synod_client_connections_total", "Client connections accepted.",
          &counters_.connections_total);
  counter("synod_client_commands_total", "Client commands received.", &counters_.commands_total);
  counter("synod_client_errors_total", "Error replies sent.", &counters_.errors_total);
  counter("synod_client_protocol_errors_total", "Connections closed for malformed RESP.",
          &counters_.protocol_errors_total);
  counter("synod_client_bytes_in_total", "Bytes received from clients.", &counters_.bytes_in);
  counter("synod_client_bytes_out_total", "Bytes sent to clients.", &counters_.bytes_out);
  admin::Histogram* fsync = r.AddHistogram("synod_fsync_seconds", "Latency of durable writes.",
                                           admin::LatencyBucketsSeconds());
  hc.observe_sync_ns = [fsync](int64_t ns) { fsync->Observe(static_cast<double>(ns) / 1e9); };
  admin::Histogram* req =
      r.AddHistogram("synod_request_seconds", "Client request latency, parse to reply.",
                     admin::LatencyBucketsSeconds());
  // On the core thread (the connections'): the moves' throttle watches the same latencies.
  counters_.observe_request_ns = [req, host = host_.get()](int64_t ns) {
    req->Observe(static_cast<double>(ns) / 1e9);
    host->ObserveClientRequest(ns);
  };
}

admin::HttpResponse Node::OnCore(std::function<admin::HttpResponse()> fn) {
  return admin::CallWithTimeout([this](std::function<void()> f) { asio::post(io_, std::move(f)); },
                                std::move(fn), 2000);
}

admin::HttpResponse Node::OnCoreAsync(
    std::function<void(std::function<void(admin::HttpResponse)>)> fn, int64_t timeout_ms) {
  // The answer may come later from the core (a request to other nodes): the core sets the
  // promise once; the waiter gives up at the timeout.
  struct Answer {
    std::promise<admin::HttpResponse> promise;
    std::atomic<bool> set{false};
  };
  auto answer = std::make_shared<Answer>();
  std::future<admin::HttpResponse> future = answer->promise.get_future();
  asio::post(io_, [fn = std::move(fn), answer] {
    fn([answer](admin::HttpResponse r) {
      if (!answer->set.exchange(true)) answer->promise.set_value(std::move(r));
    });
  });
  if (future.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return JsonError(503, "no answer within " + std::to_string(timeout_ms) + " ms");
  }
  return future.get();
}

void Node::RegisterShardMetrics(GroupId group) {
  Published* p = published_.get();
  auto& r = registry_;
  auto& slot = p->by_group[group];
  if (slot) return;
  slot = std::make_unique<Published::Group>();
  Published::Group* pg = slot.get();
  const admin::Labels shard = {{"shard", std::to_string(group.value())}};
  auto per = [&r, &shard](const char* name, const char* help, std::atomic<uint64_t>* v) {
    r.AddCallbackGauge(
        name, help, [v] { return static_cast<double>(v->load()); }, shard);
  };
  per("synod_shard_raft_term", "Current Raft term of this node's replica of the shard.", &pg->term);
  per("synod_shard_raft_commit_index", "Highest log index this replica knows committed.",
      &pg->commit);
  per("synod_shard_raft_applied_index", "Highest log index this replica applied.", &pg->applied);
  per("synod_shard_raft_last_index", "Last index in this replica's log.", &pg->last_index);
  per("synod_shard_raft_leader_id", "The shard's leader this replica knows of (0: none).",
      &pg->leader);
  per("synod_shard_keys", "Keys in this replica of the shard.", &pg->keys);
  r.AddCallbackGauge(
      "synod_shard_raft_is_leader", "1 if this node leads the shard.",
      [pg] { return pg->is_leader.load() ? 1.0 : 0.0; }, shard);
  r.AddCallbackGauge(
      "synod_shard_quiesced", "1 if the shard is idle here and stopped ticking.",
      [pg] { return pg->quiesced.load() ? 1.0 : 0.0; }, shard);
}

void Node::RegisterRoutes() {
  admin_->Handle("GET", "/metrics", admin::MetricsHandler(&registry_));
  admin_->Handle("GET", "/status", [this](const admin::HttpRequest&) {
    return OnCore([this] { return StatusJson(); });
  });
  // Membership changes every group, through each group's leader: answered when all took it.
  const int64_t membership_ms = opts_.host.request_timeout_ms + 3000;
  admin_->Handle("POST", "/members/add", [this, membership_ms](const admin::HttpRequest& req) {
    return OnCoreAsync([this, req](auto respond) { MembersAdd(req, std::move(respond)); },
                       membership_ms);
  });
  admin_->Handle("POST", "/members/remove", [this, membership_ms](const admin::HttpRequest& req) {
    return OnCoreAsync([this, req](auto respond) { MembersRemove(req, std::move(respond)); },
                       membership_ms);
  });
  // A split: the new shard's id from the meta shard, then the split through the shard's log.
  const int64_t split_ms = 2 * opts_.host.request_timeout_ms + 3000;
  admin_->Handle("POST", "/shards/split", [this, split_ms](const admin::HttpRequest& req) {
    return OnCoreAsync([this, req](auto respond) { ShardSplit(req, std::move(respond)); },
                       split_ms);
  });
  // A merge: the shard frozen, its state read and proposed to its neighbour (four requests).
  const int64_t merge_ms = 4 * opts_.host.request_timeout_ms + 3000;
  admin_->Handle("POST", "/shards/merge", [this, merge_ms](const admin::HttpRequest& req) {
    return OnCoreAsync([this, req](auto respond) { ShardMerge(req, std::move(respond)); },
                       merge_ms);
  });
  // A move: the target added as a learner, promoted once caught up, then the source removed.
  admin_->Handle("POST", "/shards/move", [this](const admin::HttpRequest& req) {
    return OnCoreAsync([this, req](auto respond) { ShardMove(req, std::move(respond)); }, 130'000);
  });
  // A node removal: marked draining; the placement logic moves its replicas away, then forgets it.
  admin_->Handle("POST", "/nodes/remove", [this, membership_ms](const admin::HttpRequest& req) {
    return OnCoreAsync([this, req](auto respond) { NodesRemove(req, std::move(respond)); },
                       membership_ms);
  });
  admin_->Handle("POST", "/transfer", [this](const admin::HttpRequest& req) {
    return OnCore([this, req] { return Transfer(req); });
  });
  if (opts_.fault_hooks) {
    admin_->Handle("POST", "/debug/partition", [this](const admin::HttpRequest& req) {
      return OnCore([this, req] { return Partition(req); });
    });
    admin_->Handle("POST", "/debug/disk", [this](const admin::HttpRequest& req) {
      return DiskFault(req);  // the fault flag is thread-safe
    });
  }
}

admin::HttpResponse Node::StatusJson() {
  const cluster::HostStatus st = host_->GetStatus();
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : st.members) members.push_back(MemberJson(m));
  // The shards as this node sees them; keys and applied for those it holds.
  std::map<GroupId, const cluster::GroupStatus*> held;
  for (const cluster::GroupStatus& g : st.groups) held[g.group] = &g;
  nlohmann::json shards = nlohmann::json::array();
  for (const cluster::ShardView& s : host_->Shards()) {
    nlohmann::json voters = nlohmann::json::array();
    nlohmann::json learners = nlohmann::json::array();
    for (NodeId v : s.desc.voters) voters.push_back(v.value());
    for (NodeId l : s.desc.learners) learners.push_back(l.value());
    nlohmann::json shard = {{"group", s.desc.group.value()}, {"first_slot", s.desc.first_slot},
                            {"last_slot", s.desc.last_slot}, {"epoch", s.desc.epoch},
                            {"leader", s.leader.value()},    {"voters", voters},
                            {"learners", learners}};
    auto h = held.find(s.desc.group);
    if (h != held.end()) {
      shard["keys"] = h->second->keys;
      shard["bytes"] = h->second->bytes;
      shard["applied"] = h->second->applied.value();
      shard["role"] = h->second->role;
      // Over --shard-max-bytes with all of it in one slot: no split can divide it.
      if (h->second->one_hot_slot) shard["note"] = "one hot slot: cannot split further";
      if (h->second->merging_into != 0) {
        shard["note"] = fmt::format("merging into shard {}", h->second->merging_into);
      }
      if (h->second->writes_per_second > 0) {
        shard["writes_per_second"] = std::llround(h->second->writes_per_second);
      }
    }
    shards.push_back(std::move(shard));
  }
  nlohmann::json groups = nlohmann::json::array();
  for (const cluster::GroupStatus& g : st.groups) {
    groups.push_back({{"group", g.group.value()},
                      {"role", g.role},
                      {"term", g.term.value()},
                      {"leader", g.leader.value()},
                      {"commit", g.commit.value()},
                      {"applied", g.applied.value()},
                      {"last_index", g.last_index.value()},
                      {"keys", g.keys},
                      {"bytes", g.bytes},
                      {"writes_per_second", std::llround(g.writes_per_second)},
                      {"quiesced", g.quiesced}});
  }
  // The node list as the meta shard holds it (every node's registered addresses).
  // With each node's zone, whether it drains, and whether this node hears from it (the meta
  // leader's view decides placement).
  nlohmann::json node_list = nlohmann::json::array();
  std::map<NodeId, cluster::NodeView> views;
  for (const cluster::NodeView& v : host_->Nodes()) views[v.id] = v;
  for (const auto& [nid, na] : host_->NodeList()) {
    nlohmann::json n = {
        {"id", nid.value()}, {"peer", na.peer}, {"client", na.client}, {"admin", na.admin}};
    if (auto v = views.find(nid); v != views.end()) {
      n["zone"] = v->second.zone;
      n["draining"] = v->second.draining;
      n["live"] = v->second.live;
      n["unheard_ms"] = v->second.unheard_ms;
    }
    node_list.push_back(std::move(n));
  }
  // Membership changes under way (on the meta leader, which runs them all).
  nlohmann::json moves = nlohmann::json::array();
  for (const cluster::MoveView& m : host_->Moves()) {
    nlohmann::json mj = {{"group", m.group.value()}, {"from", m.from.value()},
                         {"to", m.to.value()},       {"step", m.step},
                         {"reason", m.reason},       {"age_ms", m.age_ms}};
    if (m.leader_last > 0) {
      mj["leader_last"] = m.leader_last;
      mj["target_match"] = m.target_match;
    }
    moves.push_back(std::move(mj));
  }
  // Snapshots streaming from and to this node, and what streamed so far.
  const cluster::SnapshotStreamCounters& sc = host_->stream_counters();
  nlohmann::json streams = {{"sent", sc.sent.load()},
                            {"received", sc.received.load()},
                            {"failed", sc.failed.load()},
                            {"bytes_sent", sc.bytes_sent.load()},
                            {"bytes_received", sc.bytes_received.load()},
                            {"sending", nlohmann::json::array()},
                            {"receiving", nlohmann::json::array()}};
  for (const cluster::StreamView& v : host_->Streams()) {
    streams[v.sending ? "sending" : "receiving"].push_back(
        {{"group", v.group.value()},
         {v.sending ? "to" : "from", v.peer.value()},
         {"index", v.index.value()},
         {"bytes", v.bytes},
         {"age_ms", v.age_ms}});
  }
  nlohmann::json j = {{"id", st.id.value()},
                      {"cluster_id", fmt::format("{:016x}", st.cluster_id)},
                      {"role", st.role},
                      {"term", st.term.value()},
                      {"leader", st.leader.value()},
                      {"commit", st.commit.value()},
                      {"applied", st.applied.value()},
                      {"last_index", st.last_index.value()},
                      {"snapshot_index", st.snapshot_index.value()},
                      {"joint", st.joint},
                      {"failure", st.failure},
                      {"keys", st.keys},
                      {"disk_bytes", st.disk_bytes},
                      {"client", client_address()},
                      {"admin", admin_address()},
                      {"peer", peer_address()},
                      {"connections", counters_.connections_current.load()},
                      {"shutting_down", shutting_down_},
                      {"members", members},
                      {"groups_led", st.groups_led},
                      {"groups_quiesced", st.groups_quiesced},
                      {"meta_leader", host_->leader().value()},
                      {"groups", groups},
                      {"shards", shards},
                      {"node_list", node_list},
                      {"moves", moves},
                      {"snapshot_streams", streams}};
  return Json(200, j);
}

admin::HttpResponse Node::NotLeader() {
  const NodeId leader = host_->leader();
  nlohmann::json j = {{"error", "not the leader"}, {"leader", leader.value()}};
  const auto& book = host_->address_book();
  auto it = book.find(leader);
  if (it != book.end()) j["leader_admin"] = it->second.admin;
  return Json(421, j);
}

void Node::MembersAdd(const admin::HttpRequest& req, Respond respond) {
  auto get = [&req](const char* k) {
    auto it = req.params.find(k);
    return it == req.params.end() ? std::string() : it->second;
  };
  uint64_t id = 0;
  try {
    id = std::stoull(get("id"));
  } catch (...) {
    return respond(JsonError(400, "id must be a positive number"));
  }
  if (!host_->is_leader()) return respond(NotLeader());
  cluster::MemberAddress a{get("peer"), get("client"), get("admin")};
  host_->AddMember(NodeId(id), a, [this, id, a, respond](Status s) {
    // Adding a member twice with the same peer address is not an error: `synod member add`
    // followed by `synod start --join` asks twice, and a joining node may retry.
    const auto& book = host_->address_book();
    auto known = book.find(NodeId(id));
    const bool same_member = s.code() == Code::kFailedPrecondition && known != book.end() &&
                             known->second.peer == a.peer;
    if (!s.ok() && !same_member) return respond(JsonError(HttpStatusFor(s), s.ToString()));
    nlohmann::json members = nlohmann::json::object();
    for (const auto& [mid, ma] : host_->address_book()) {
      members[std::to_string(mid.value())] = {
          {"peer", ma.peer}, {"client", ma.client}, {"admin", ma.admin}};
    }
    respond(Json(200, {{"added", id},
                       {"already_member", same_member},
                       {"cluster_id", fmt::format("{:016x}", host_->db().cluster_id())},
                       {"members", members},
                       {"member_list", cluster::FormatMemberList(host_->address_book())},
                       {"layout", cluster::EncodeLayout(host_->layout())}}));
  });
}

namespace {

// The request's "id" parameter as a node id; nullopt when missing or not a number.
std::optional<uint64_t> NodeIdParam(const admin::HttpRequest& req) {
  auto it = req.params.find("id");
  try {
    return std::stoull(it == req.params.end() ? "" : it->second);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

void Node::MembersRemove(const admin::HttpRequest& req, Respond respond) {
  const std::optional<uint64_t> parsed = NodeIdParam(req);
  if (!parsed) return respond(JsonError(400, "id must be a positive number"));
  const uint64_t id = *parsed;
  if (!host_->is_leader()) return respond(NotLeader());
  host_->RemoveMember(NodeId(id), [id, respond](Status s) {
    if (!s.ok()) return respond(JsonError(HttpStatusFor(s), s.ToString()));
    respond(Json(200, {{"removed", id}}));
  });
}

void Node::NodesRemove(const admin::HttpRequest& req, Respond respond) {
  const std::optional<uint64_t> parsed = NodeIdParam(req);
  if (!parsed) return respond(JsonError(400, "id must be a positive number"));
  const uint64_t id = *parsed;
  if (!host_->is_leader()) return respond(NotLeader());
  host_->DrainNode(NodeId(id), [this, id, respond](Status s) {
    if (s.code() == Code::kNotLeader) return respond(NotLeader());
    if (!s.ok()) return respond(JsonError(HttpStatusFor(s), s.ToString()));
    respond(Json(200, {{"draining", id}}));
  });
}

void Node::ShardSplit(const admin::HttpRequest& req, Respond respond) {
  auto get = [&req](const char* k) -> std::optional<std::string> {
    auto it = req.params.find(k);
    if (it == req.params.end()) return std::nullopt;
    return it->second;
  };
  uint64_t id = 0;
  std::optional<uint16_t> at;
  try {
    id = std::stoull(get("id").value_or(""));
    if (auto a = get("at")) {
      const uint64_t v = std::stoull(*a);
      if (v >= kSlotCount) throw std::out_of_range("slot");
      at = static_cast<uint16_t>(v);
    }
  } catch (...) {
    return respond(JsonError(400, "id must be a shard's group id and at a slot (0-16383)"));
  }
  host_->SplitShard(GroupId(id), at, [id, respond](Result<cluster::SplitResult> r) {
    if (!r.ok()) return respond(JsonError(HttpStatusFor(r.status()), r.status().ToString()));
    respond(Json(200, {{"split", id},
                       {"new_shard", r->child.value()},
                       {"kept", fmt::format("{}-{}", r->kept.first, r->kept.last)},
                       {"moved", fmt::format("{}-{}", r->moved.first, r->moved.last)}}));
  });
}

void Node::ShardMerge(const admin::HttpRequest& req, Respond respond) {
  uint64_t id = 0;
  std::optional<GroupId> into;
  try {
    id = std::stoull(req.params.at("id"));
    if (auto it = req.params.find("into"); it != req.params.end()) {
      into = GroupId(std::stoull(it->second));
    }
  } catch (...) {
    return respond(JsonError(400, "id and into must be shards' group ids"));
  }
  host_->MergeShard(GroupId(id), into, [id, respond](Result<cluster::MergeResult> r) {
    if (!r.ok()) return respond(JsonError(HttpStatusFor(r.status()), r.status().ToString()));
    respond(Json(200, {{"merged", id},
                       {"into", r->into.value()},
                       {"slots", fmt::format("{}-{}", r->slots.first, r->slots.last)},
                       {"epoch", r->epoch}}));
  });
}

void Node::ShardMove(const admin::HttpRequest& req, Respond respond) {
  uint64_t id = 0, from = 0, to = 0;
  try {
    id = std::stoull(req.params.at("id"));
    from = std::stoull(req.params.at("from"));
    to = std::stoull(req.params.at("to"));
  } catch (...) {
    return respond(JsonError(400, "id, from and to must be a shard's group id and two node ids"));
  }
  if (!host_->is_leader()) return respond(NotLeader());
  host_->MoveShard(GroupId(id), NodeId(from), NodeId(to), [this, id, from, to, respond](Status s) {
    // Not (or no longer) the meta leader: the caller asks the new one, which goes on from the
    // descriptor (CheckMove accepts a move under way).
    if (s.code() == Code::kNotLeader || (!s.ok() && !host_->is_leader())) {
      return respond(NotLeader());
    }
    if (!s.ok()) return respond(JsonError(HttpStatusFor(s), s.ToString()));
    respond(Json(200, {{"moved", id}, {"from", from}, {"to", to}}));
  });
}

// Hands the leadership of every group this node leads to `to` (or to each group's most
// caught-up voter).
admin::HttpResponse Node::Transfer(const admin::HttpRequest& req) {
  auto it = req.params.find("to");
  NodeId to;
  if (it != req.params.end()) {
    try {
      to = NodeId(std::stoull(it->second));
    } catch (...) {
      return JsonError(400, "to must be a node id");
    }
  }
  if (host_->groups_led() == 0) return NotLeader();
  if (!host_->CanHandOff()) return JsonError(409, "no other voter to hand leadership to");
  const int groups = host_->TransferLeadership(to);
  if (groups == 0) return JsonError(409, "no group could hand its leadership over");
  return Json(200, {{"transferring_to", to.value()}, {"groups", groups}});
}

admin::HttpResponse Node::Partition(const admin::HttpRequest& req) {
  std::set<NodeId> blocked;
  auto it = req.params.find("peers");
  std::string list = it == req.params.end() ? "" : it->second;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    std::string item =
        list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? list.size() : comma + 1;
    if (item.empty()) continue;
    try {
      blocked.insert(NodeId(std::stoull(item)));
    } catch (...) {
      return JsonError(400, "peers must be a comma-separated list of node ids");
    }
  }
  host_->transport().SetBlockedPeers(blocked);
  logger_.Warn("event=fault_partition blocked=\"{}\"", list);
  nlohmann::json ids = nlohmann::json::array();
  for (NodeId b : blocked) ids.push_back(b.value());
  return Json(200, {{"blocked", ids}});
}

admin::HttpResponse Node::DiskFault(const admin::HttpRequest& req) {
  auto it = req.params.find("fail");
  const bool fail = it != req.params.end() && it->second == "1";
  fault_fs_->SetFailWrites(fail);
  logger_.Warn("event=fault_disk fail_writes={}", fail);
  return Json(200, {{"fail_writes", fail}});
}

void Node::Run() {
  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.async_wait([this](const asio::error_code& ec, int sig) {
    if (ec) return;
    logger_.Info("event=signal signal={}", sig);
    BeginShutdown();
  });
  // Publish the core's state for the metrics.
  auto publish = std::make_shared<std::function<void()>>();
  auto timer = std::make_shared<asio::steady_timer>(io_);
  *publish = [this, timer, publish_weak = std::weak_ptr<std::function<void()>>(publish)] {
    const cluster::HostStatus st = host_->GetStatus();
    published_->term = st.term.value();
    published_->commit = st.commit.value();
    published_->applied = st.applied.value();
    published_->last_index = st.last_index.value();
    published_->leader = st.leader.value();
    published_->members = st.members.size();
    published_->is_leader = st.role == "leader";
    published_->failed = !st.failure.empty();
    published_->disk_bytes = st.disk_bytes;
    published_->stream_rate = host_->stream_rate();
    published_->keys = st.keys;
    published_->groups = st.groups.size();
    published_->groups_led = static_cast<uint64_t>(st.groups_led);
    published_->groups_quiesced = static_cast<uint64_t>(st.groups_quiesced);
    for (const cluster::GroupStatus& g : st.groups) {
      auto it = published_->by_group.find(g.group);
      if (it == published_->by_group.end()) {
        RegisterShardMetrics(g.group);
        it = published_->by_group.find(g.group);
      }
      Published::Group& pg = *it->second;
      pg.term = g.term.value();
      pg.commit = g.commit.value();
      pg.applied = g.applied.value();
      pg.last_index = g.last_index.value();
      pg.leader = g.leader.value();
      pg.keys = g.keys;
      pg.is_leader = g.role == "leader";
      pg.quiesced = g.quiesced;
    }
    if (st.snapshot_index != last_snapshot_index_) {
      // A compaction (or an installed snapshot): LASTSAVE's time, within this period.
      last_snapshot_index_ = st.snapshot_index;
      ctx_.last_save_ms = WallNowMs();
    }
    // Every 100 ms; a node of many groups (the status visits each) every group/10 ms, at most
    // every second.
    timer->expires_after(
        std::chrono::milliseconds(std::clamp<int64_t>(st.groups.size() / 10, 100, 1000)));
    timer->async_wait([this, publish_weak](const asio::error_code& ec) {
      auto p = publish_weak.lock();
      if (!ec && p && !shutting_down_) (*p)();
    });
  };
  (*publish)();
  io_.run();
  logger_.Info("event=node_stopped");
}

void Node::RequestStop() {
  asio::post(io_, [this] { BeginShutdown(); });
}

void Node::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  resp_->StopAccepting();
  if (host_->CanHandOff()) {
    const int groups = host_->Drain();
    logger_.Info("event=shutdown_transfer groups={}", groups);
  }
  ShutdownStep(SteadyNowNs() + opts_.shutdown_transfer_ms * 1'000'000);
}

void Node::ShutdownStep(int64_t deadline_ns) {
  if (host_->CanHandOff() && SteadyNowNs() < deadline_ns) {
    auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(50));
    t->async_wait([this, t, deadline_ns](const asio::error_code&) { ShutdownStep(deadline_ns); });
    return;
  }
  logger_.Info("event=shutdown leader_now={}", host_->leader().value());
  resp_->CloseAll();
  host_->Stop();
  signals_.cancel();
  io_.stop();
}

}  // namespace synod::server
