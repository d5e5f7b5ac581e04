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
#include <memory>
#include <random>
#include <string>
#include <unordered_map>

#include "cluster/group_host.h"
#include "common/log.h"
#include "common/status.h"
#include "server/command_table.h"
#include "server/resp/resp.h"

namespace synod::server {

struct RespOptions {
  std::string listen_address;  // "host:port"
  resp::Limits limits;
  size_t pipeline_max = 1024;              // commands awaiting replies per connection
  size_t output_bytes_max = 256ull << 20;  // unsent reply bytes per connection
  size_t clients_max = 10000;
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

// What command handlers reach: the node's Raft group and facts about the node.
class RespServer;

class ServerContext {
 public:
  cluster::GroupHost* host = nullptr;
  RespServer* server = nullptr;
  ServerCounters* counters = nullptr;
  std::string client_address;
  std::string admin_address;
  int64_t start_time_ms = 0;  // wall clock, for INFO uptime
  std::string run_id;
  std::string data_dir;
  std::string config_file;
  // Fills INFO's sections not known to the handlers (set by the node).
  std::function<std::string()> extra_info;
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

  uint64_t id() const { return id_; }
  // The client session for at-most-once writes: a random id per connection, seq per write.
  uint64_t client_session() const { return client_session_; }
  uint64_t NextSeq() { return ++seq_; }
  // Starts a new session (a new random id, seq from 1): after kSessionExpired, which means the
  // state machine holds no session for this id (its first write never applied, or it was
  // evicted) and applied nothing.
  void ResetSession();
  bool readonly = false;  // READONLY: reads from the local replica
  int protocol = 2;
  std::string name;
  std::string remote;
  int64_t created_ms = 0;
  std::string last_command;

 private:
  struct Slot {
    uint64_t id;
    bool done = false;
    std::string bytes;
    int64_t start_ns = 0;
  };
  void Read();
  void OnRead(const asio::error_code& ec, size_t n);
  void ProcessInput();
  void Dispatch(std::vector<std::string>& argv);
  void Flush();
  void Write();
  uint64_t OpenSlot();

  asio::ip::tcp::socket socket_;
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
  uint64_t client_session_ = 0;
  uint64_t seq_ = 0;
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

 private:
  void Accept();

  asio::io_context& io_;
  RespOptions opts_;
  ServerContext& ctx_;
  Logger logger_;
  asio::ip::tcp::acceptor acceptor_;
  uint64_t next_conn_id_ = 1;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> conns_;
};

// The Redis error text for a failed request (without the leading '-').
std::string RedisErrorFor(const Status& s, bool write);

}  // namespace synod::server
