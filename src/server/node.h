// Node: one Synod server process — the Raft group host, the RESP client port and the admin
// HTTP port, wired together on one core thread.
//
// Threads: the core thread runs the io_context (Raft, state machine, client connections, peer
// transport); the storage thread (inside GroupHost) does the fsyncs; the admin server's threads
// answer HTTP and hop to the core with CallWithTimeout for anything that reads core state.
//
// Shutdown (SIGTERM, SIGINT, or Stop()): stop accepting clients, hand leadership to the most
// caught-up voter and wait for it (bounded), close clients, finish the write in flight, exit.
#pragma once

#include <asio.hpp>
#include <memory>
#include <string>

#include "cluster/group_host.h"
#include "common/log.h"
#include "common/status.h"
#include "server/admin/admin_server.h"
#include "server/admin/metrics.h"
#include "server/resp_server.h"
#include "storage/fault_fs.h"

namespace synod::server {

struct NodeOptions {
  cluster::HostOptions host;
  RespOptions resp;
  std::string admin_address;
  // Enables the test-only fault hooks on the admin port (/debug/partition, /debug/disk).
  bool fault_hooks = false;
  // -MOVED for keys whose shard another node leads (Redis Cluster's redirection).
  bool cluster_redirects = false;
  // Leadership hand-off budget at shutdown.
  int64_t shutdown_transfer_ms = 3000;
  std::string config_file;
};

class Node {
 public:
  // Opens storage and builds everything; nothing listens yet.
  static Result<std::unique_ptr<Node>> Open(NodeOptions opts, Logger logger);
  ~Node();

  // Listens on all ports. Errors name the port that failed.
  Status Start();
  // Runs the core loop on this thread until shutdown; handles SIGTERM/SIGINT.
  void Run();
  // Asks Run() to shut down gracefully (any thread).
  void RequestStop();

  std::string client_address() const;
  std::string admin_address() const;
  std::string peer_address() const;

 private:
  Node(NodeOptions opts, Logger logger);
  void RegisterMetrics();
  // The per-shard gauges of `group` (once; a split's new shard gets them when it appears).
  void RegisterShardMetrics(GroupId group);
  void RegisterRoutes();
  void BeginShutdown();
  void ShutdownStep(int64_t deadline_ns);
  admin::HttpResponse StatusJson();
  using Respond = std::function<void(admin::HttpResponse)>;
  void MembersAdd(const admin::HttpRequest& req, Respond respond);
  void MembersRemove(const admin::HttpRequest& req, Respond respond);
  void NodesRemove(const admin::HttpRequest& req, Respond respond);
  admin::HttpResponse Transfer(const admin::HttpRequest& req);
  void ShardSplit(const admin::HttpRequest& req, Respond respond);
  void ShardMerge(const admin::HttpRequest& req, Respond respond);
  void ShardMove(const admin::HttpRequest& req, Respond respond);
  admin::HttpResponse Partition(const admin::HttpRequest& req);
  admin::HttpResponse DiskFault(const admin::HttpRequest& req);
  admin::HttpResponse NotLeader();
  // Runs fn on the core thread and waits (bounded) for its answer.
  admin::HttpResponse OnCore(std::function<admin::HttpResponse()> fn);
  // Runs fn on the core thread, which answers through the callback now or later; waits for the
  // answer at most timeout_ms.
  admin::HttpResponse OnCoreAsync(std::function<void(Respond)> fn, int64_t timeout_ms);

  // The core's state as of the last 100 ms, in atomics: the metrics callbacks read it on the
  // admin server's threads.
  struct Published;

  NodeOptions opts_;
  Logger logger_;
  std::unique_ptr<Published> published_;
  // Run by the core thread alone. The hint 1 lets Asio queue the handlers that thread posts
  // (a reply's flush, a completed read) without taking the scheduler's mutex; handlers posted
  // by other threads (the storage thread, the admin server) still take it.
  asio::io_context io_{1};
  std::shared_ptr<storage::FaultInjectionFs> fault_fs_;
  std::unique_ptr<rocksdb::Env> fault_env_;
  std::unique_ptr<cluster::GroupHost> host_;
  ServerCounters counters_;
  ServerContext ctx_;
  std::unique_ptr<RespServer> resp_;
  admin::Registry registry_;
  std::unique_ptr<admin::AdminServer> admin_;
  asio::signal_set signals_;
  bool shutting_down_ = false;
  // The snapshot index last seen by the publish loop: when it moves, LASTSAVE moves.
  LogIndex last_snapshot_index_;
};

}  // namespace synod::server
