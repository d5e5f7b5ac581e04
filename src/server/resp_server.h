// RespServer: the client port. Accepts TCP connections, parses RESP requests, runs them through
// the command table and writes the replies back in request order.
//
// Pipelining: a connection may have many commands in flight (a write waits for its Raft entry to
// apply, a read for its ReadIndex). Each parsed command gets a reply slot in a FIFO; replies
// fill their slots in any order and leave the FIFO in request order, so pipelined clients see
// Redis's ordering. Everything completed in one event-loop round goes out in one write.
//
// Bounds: a connection stops reading while pipeline_max commands wait for replies (TCP then
// pushes back on the client), and is closed, with a log line, when its unsent output exceeds
// output_bytes_max (a client that does not read). Malformed input gets the parser's
// "-ERR Protocol error: ..." and the connection is closed after it is sent, as Redis does.
//
// Threading: the core thread (the io_context's); no locks.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "cluster/group_host.h"
#include "common/log.h"
#include "common/status.h"
#include "server/command_table.h"
#include "server/resp/resp.h"

namespace synod::server {

// Connections hold a reference to their server's options: CONFIG SET of output_bytes_max,
// pipeline_max and clients_max applies at once; `limits` is copied into each connection's
// parser, so a new proto-max-bulk-len applies to new connections.
struct RespOptions {
  std::string listen_address;  // "host:port"
  resp::Limits limits;
  size_t pipeline_max = 1024;  // commands awaiting replies per connection
  // busy-reply-threshold (lua-time-limit), ms: a script running longer makes commands on its
  // keys answer BUSY (compute::ScriptRunner holds the value that acts; CONFIG SET sets both).
  int64_t busy_reply_threshold_ms = 5000;
  // Unsent reply bytes per connection (the hard limit of client-output-buffer-limit's normal
  // class); SIZE_MAX for none (Redis's 0).
  size_t output_bytes_max = 256ull << 20;
  size_t clients_max = 10000;
  // The rest of client-output-buffer-limit, kept for CONFIG GET only: the normal class's soft
  // limit and seconds, and the replica and pubsub classes (Synod has no such clients).
  uint64_t output_soft_bytes = 0;
  int64_t output_soft_seconds = 0;
  std::string output_limit_other_classes = "slave 268435456 67108864 60 pubsub 33554432 8388608 60";
};

// Counters for INFO and /metrics; updated on the core thread, read anywhere.
struct ServerCounters {
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> connections_current{0};
  std::atomic<uint64_t> commands_total{0};
  std::atomic<uint64_t> errors_total{0};
  std::atomic<uint64_t> protocol_errors_total{0};
  std::atomic<uint64_t> rejected_connections{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  // Request latency from parse to reply, nanoseconds.
  std::function<void(int64_t)> observe_request_ns;
};

// INFO's stats as of the last CONFIG RESETSTAT: INFO shows the counters minus these, so that
// the Prometheus counters, which must never go down, are left alone.
struct StatBaseline {
  uint64_t connections_total = 0;
  uint64_t commands_total = 0;
  uint64_t errors_total = 0;
  uint64_t rejected_connections = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// What command handlers reach: the node's Raft group and facts about the node.
class RespServer;

class ServerContext {
 public:
  cluster::GroupHost* host = nullptr;
  // Where keyspace commands go: a key's shard, and the request run wherever it is served.
  cluster::Router* router = nullptr;
  RespServer* server = nullptr;
  ServerCounters* counters = nullptr;
  std::string client_address;
  std::string admin_address;
  int64_t start_time_ms = 0;  // wall clock, for INFO uptime
  std::string run_id;
  std::string data_dir;
  std::string config_file;
  // The core thread's io_context (WAIT's timers).
  asio::io_context* io = nullptr;
  // Wall-clock ms of the node's last durable state save as LASTSAVE and INFO report it: when
  // the node saw its snapshot index advance (a log compaction), else its start time.
  int64_t last_save_ms = 0;
  // Connections with a WAIT pending (INFO's blocked_clients).
  uint64_t blocked_clients = 0;
  StatBaseline stat_baseline;
  // --cluster-redirects: a keyed command for a shard another node leads gets -MOVED.
  bool cluster_redirects = false;
  // Fills INFO's sections not known to the handlers (set by the node).
  std::function<std::string()> extra_info;

  // The replicated requirepass, "" when none is set (read from the local replica of the meta
  // shard, or on a node beyond its replicas as last fetched from it).
  std::string_view password() const;
  // Whether password() is known yet (a node beyond the meta shard's replicas learns it within
  // a second or so of starting; until then it answers -LOADING).
  bool settings_known() const;
};

// A connection's MULTI/WATCH state (see commands_kv.cc).
struct Transaction {
  bool active = false;  // between MULTI and EXEC/DISCARD
  bool dirty = false;   // a command was refused while queueing: EXEC answers EXECABORT
  std::vector<std::vector<std::string>> queued;
  // WATCH: keys with the version read, and the earliest index they were read at.
  std::vector<std::pair<std::string, LogIndex>> watches;
  LogIndex watch_index;
  bool watch_failed = false;  // a WATCH read failed: EXEC aborts
  // The one shard every watched and queued key belongs to (kNoGroup until the first key):
  // a transaction is atomic within a shard.
  GroupId group;
  // The slots of those keys (first..last): EXEC is routed by them.
  std::optional<SlotRange> slots;
  void AddSlot(uint16_t slot) {
    slots = slots ? SlotRange{std::min(slots->first, slot), std::max(slots->last, slot)}
                  : SlotRange{slot, slot};
  }

  // Ends the transaction and forgets the watches (EXEC, DISCARD).
  void Reset() {
    active = false;
    dirty = false;
    queued.clear();
    watches.clear();
    watch_index = LogIndex();
    watch_failed = false;
    group = GroupId();
    slots.reset();
  }
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::ip::tcp::socket socket, uint64_t id, const RespOptions& opts, ServerContext& ctx,
             Logger logger, std::function<void(uint64_t)> on_close);
  void Start();
  // Closes after flushing what is queued (QUIT, protocol errors).
  void CloseAfterFlush();
  void Close(const char* why);

  // Called by a ReplySink.
  void Complete(uint64_t slot, std::string bytes);

  // Closes after flushing the replies already complete; replies still pending are dropped
  // (CLIENT KILL).
  void Kill();

  uint64_t id() const { return id_; }
  bool closed() const { return closed_; }
  // A CLIENT LIST line (without the newline), with Redis's fields.
  std::string InfoLine(int64_t now_ms) const;
  // The client session for at-most-once writes, one per shard the connection writes to: a
  // random id, and seq per write.
  uint64_t SessionFor(GroupId shard);
  uint64_t NextSeq(GroupId shard) { return ++sessions_[shard].seq; }
  // Starts a new session in `shard` (a new random id, seq from 1): after kSessionExpired, which
  // means the shard holds no session for this id (its first write never applied, or it was
  // evicted) and applied nothing.
  void ResetSession(GroupId shard);
  bool readonly = false;  // READONLY: reads from the local replica
  int protocol = 2;
  std::string name;
  std::string lib_name;  // CLIENT SETINFO
  std::string lib_ver;
  std::string remote;  // ip:port of the client
  std::string local;   // ip:port the client connected to
  int64_t created_ms = 0;
  int64_t last_active_ms = 0;  // the last command's arrival (CLIENT LIST idle)
  std::string last_command;    // "get", "client|list"...
  // AUTH: set when the connection authenticated, or when no password was configured as it
  // was accepted (as Redis: such a connection stays authenticated if a password is set later).
  bool authenticated = false;
  bool blocked = false;  // a WAIT is pending
  Transaction tx;
  // This connection's latest applied write: its shard and index (WAIT waits for replicas of
  // that shard to hold it).
  GroupId last_write_group;
  LogIndex last_write_index;

 private:
  // What a running command does to the keyspace, for ordering (see Dispatch).
  enum class Access : uint8_t { kNone, kRead, kWrite };
  struct Slot {
    uint64_t id;
    bool done = false;
    std::string bytes;
    int64_t start_ns = 0;
    Access access = Access::kNone;  // set when the command started running
  };
  // A command held back to keep this connection's order (see Dispatch).
  struct Deferred {
    std::vector<std::string> argv;
    uint64_t slot;
  };
  void Read();
  void OnRead(const asio::error_code& ec, size_t n);
  void ProcessInput();
  void Dispatch(std::vector<std::string>& argv);
  void DispatchNow(std::vector<std::string>& argv, uint64_t slot);
  static Access AccessOf(const std::vector<std::string>& argv);
  bool CanRunNow(Access a) const;
  void RunDeferred();
  void Flush();
  void Write();
  uint64_t OpenSlot();

  asio::ip::tcp::socket socket_;
  int fd_ = -1;  // for CLIENT LIST
  const uint64_t id_;
  const RespOptions& opts_;
  ServerContext& ctx_;
  Logger logger_;
  std::function<void(uint64_t)> on_close_;
  resp::RequestParser parser_;
  std::array<char, 16384> read_buf_;
  std::deque<Slot> slots_;
  uint64_t next_slot_ = 1;
  std::string out_;      // replies ready to send
  std::string writing_;  // the bytes of the write in flight
  bool reading_ = false;
  bool writing_now_ = false;
  bool close_after_flush_ = false;
  bool closed_ = false;
  bool flush_scheduled_ = false;
  // Keyspace commands running (replies pending) and the commands held behind them.
  int reads_running_ = 0;
  int writes_running_ = 0;
  std::deque<Deferred> deferred_;
  bool running_deferred_ = false;
  struct Session {
    uint64_t id = 0;
    uint64_t seq = 0;
  };
  std::map<GroupId, Session> sessions_;
};

class RespServer {
 public:
  RespServer(asio::io_context& io, RespOptions opts, ServerContext& ctx, Logger logger);
  ~RespServer();
  Status Start();
  // Stops accepting; existing connections stay (StopAll closes them).
  void StopAccepting();
  void CloseAll();
  std::string bound_address() const;
  size_t connections() const { return conns_.size(); }
  // CLIENT LIST lines.
  std::vector<std::string> ClientList() const;
  // The open connections, in id order (CLIENT KILL, CLIENT LIST filters).
  std::vector<std::shared_ptr<Connection>> Connections() const;
  // The options the connections use (CONFIG SET changes them; see RespOptions).
  RespOptions& options() { return opts_; }

 private:
  void Accept();

  asio::io_context& io_;
  RespOptions opts_;
  ServerContext& ctx_;
  Logger logger_;
  asio::ip::tcp::acceptor acceptor_;
  uint64_t next_conn_id_ = 1;
  // The owners of the open connections, by id (CLIENT LIST's order). Owned here, not only by
  // their pending I/O handlers: a connection that stopped reading (QUIT, pipeline_max) while
  // replies are pending must live until they are sent. Connection::Close removes it.
  std::map<uint64_t, std::shared_ptr<Connection>> conns_;
};

// The Redis error text for a failed request (without the leading '-').
std::string RedisErrorFor(const Status& s, bool write);

}  // namespace synod::server
