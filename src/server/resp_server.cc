#include "server/resp_server.h"

#include <chrono>
#include <utility>

#include "common/assert.h"
#include "env/asio/steady_clock.h"
#include "server/command_impl.h"

namespace synod::server {

namespace {

using env::SteadyNowNs;
using env::WallNowMs;

// Commands whose first argument is a subcommand: CLIENT LIST shows "client|list" as Redis.
bool IsContainerCommand(std::string_view name) {
  return name == "client" || name == "config" || name == "command" || name == "cluster" ||
         name == "script" || name == "function";
}

std::string LowerAscii(std::string_view s) {
  std::string out(s.substr(0, 32));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

uint64_t RandomSessionId() {
  // Client sessions must not collide across nodes and restarts: a random 64-bit id from the
  // OS (this is the real node, not a pure layer).
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t v = 0;
  while (v == 0) v = rng();
  return v;
}

}  // namespace

std::string_view ServerContext::password() const {
  if (host == nullptr) return {};
  return host->RequirePass().value_or(std::string_view());
}

bool ServerContext::settings_known() const {
  return host == nullptr || host->RequirePass().has_value();
}

std::string RedisErrorFor(const Status& s, bool write) {
  const std::string msg(s.message());
  switch (s.code()) {
    case Code::kProposalDropped:
    case Code::kNotLeader:
      return "CLUSTERDOWN no leader to accept the request (" + msg + "); it was not applied";
    case Code::kUnavailable:
      return "CLUSTERDOWN " + msg + "; it was not applied";
    case Code::kTimeout:
      // The replica's message says why and, for writes, that the outcome is unknown.
      if (write && msg.find("may or may not") == std::string::npos) {
        return "TRYAGAIN " + msg + "; it may or may not have been applied";
      }
      return "TRYAGAIN " + msg;
    case Code::kIoError:
      return "MISCONF this node cannot write to its disk (" + msg +
             "); it refuses writes until restarted";
    case Code::kResourceExhausted:
      return "TRYAGAIN " + msg;
    case Code::kInvalidArgument:
      return "ERR " + msg;
    default:
      return "ERR " + s.ToString();
  }
}

// ---- ReplySink ----

ReplySink::~ReplySink() {
  // A handler that forgot to answer would stall the connection's pipeline forever.
  if (!done_ && slot_ != 0) {
    if (auto c = conn_.lock()) c->Complete(slot_, "-ERR internal error: no reply\r\n");
  }
}

void ReplySink::Send(std::string bytes) {
  SYNOD_ASSERT_MSG(!done_, "a command replied twice");
  done_ = true;
  if (auto c = conn_.lock()) c->Complete(slot_, std::move(bytes));
}

void ReplySink::Error(std::string_view message) {
  std::string out;
  resp::ReplyWriter(&out, protocol_).Error(message);
  Send(std::move(out));
}

void ReplySink::Ok() { Send("+OK\r\n"); }

void ReplySink::Integer(int64_t v) {
  std::string out;
  resp::ReplyWriter(&out, protocol_).Integer(v);
  Send(std::move(out));
}

void ReplySink::Bulk(std::string_view s) {
  std::string out;
  resp::ReplyWriter(&out, protocol_).Bulk(s);
  Send(std::move(out));
}

void ReplySink::Null() {
  std::string out;
  resp::ReplyWriter(&out, protocol_).Null();
  Send(std::move(out));
}

// ---- Connection ----

Connection::Connection(asio::ip::tcp::socket socket, uint64_t id, const RespOptions& opts,
                       ServerContext& ctx, Logger logger, std::function<void(uint64_t)> on_close)
    : socket_(std::move(socket)),
      id_(id),
      opts_(opts),
      ctx_(ctx),
      logger_(std::move(logger)),
      on_close_(std::move(on_close)),
      parser_(opts.limits) {
  asio::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
  auto lep = socket_.local_endpoint(ec);
  if (!ec) local = lep.address().to_string() + ":" + std::to_string(lep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  fd_ = static_cast<int>(socket_.native_handle());
  created_ms = WallNowMs();
  last_active_ms = created_ms;
  authenticated = ctx_.settings_known() && ctx_.password().empty();
}

void Connection::Start() { Read(); }

uint64_t Connection::SessionFor(GroupId shard) {
  Session& s = sessions_[shard];
  if (s.id == 0) s.id = RandomSessionId();
  return s.id;
}

void Connection::ResetSession(GroupId shard) { sessions_[shard] = Session{RandomSessionId(), 0}; }

void Connection::Read() {
  if (reading_ || closed_ || close_after_flush_) return;
  // Backpressure: a client with too many commands in flight or too much unsent output waits.
  if (slots_.size() >= opts_.pipeline_max || out_.size() + writing_.size() > (4u << 20)) return;
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(read_buf_),
      [self = shared_from_this()](const asio::error_code& ec, size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(const asio::error_code& ec, size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    Close(ec == asio::error::eof ? "client closed" : "read error");
    return;
  }
  ctx_.counters->bytes_in.fetch_add(n, std::memory_order_relaxed);
  parser_.Feed(std::string_view(read_buf_.data(), n));
  ProcessInput();
  Read();
}

void Connection::ProcessInput() {
  std::vector<std::string> argv;
  // Bounded by the pipeline limit: the rest stays buffered until replies drain.
  while (!close_after_flush_ && !closed_ && slots_.size() < opts_.pipeline_max) {
    resp::RequestParser::State st = parser_.Next(&argv);
    if (st == resp::RequestParser::State::kNeedMore) break;
    if (st == resp::RequestParser::State::kError) {
      ctx_.counters->protocol_errors_total.fetch_add(1, std::memory_order_relaxed);
      logger_.Info("event=protocol_error client={} remote={} error=\"{}\"", id_, remote,
                   parser_.error());
      uint64_t slot = OpenSlot();
      std::string out;
      resp::ReplyWriter(&out, protocol).Error(parser_.error());
      Complete(slot, std::move(out));
      CloseAfterFlush();
      break;
    }
    Dispatch(argv);
  }
}

uint64_t Connection::OpenSlot() {
  slots_.push_back(Slot{next_slot_, false, {}, SteadyNowNs()});
  return next_slot_++;
}

// Redis runs one connection's commands one after another, so a pipelined GET sees the SET
// before it and a SET never shows in the GET before it. Synod runs them concurrently (writes
// through Raft, reads through ReadIndex), which would break both. So a read waits until this
// connection's earlier writes are applied, and a write until its earlier reads are served;
// consecutive reads (or writes) still run together, and a command behind a held one waits
// too, so the order is kept for everything (MULTI, WAIT, CONFIG SET included).
Connection::Access Connection::AccessOf(const std::vector<std::string>& argv) {
  const CommandSpec* spec = FindCommand(argv[0]);
  if (spec == nullptr) return Access::kNone;
  if ((spec->flags & kWrite) || std::string_view(spec->name) == "exec") return Access::kWrite;
  // WATCH reads versions; WAIT needs the connection's last write applied.
  if ((spec->flags & kReadOnly) || std::string_view(spec->name) == "watch" ||
      std::string_view(spec->name) == "wait") {
    return Access::kRead;
  }
  return Access::kNone;
}

bool Connection::CanRunNow(Access a) const {
  switch (a) {
    case Access::kRead:
      return writes_running_ == 0;
    case Access::kWrite:
      return reads_running_ == 0;
    case Access::kNone:
      return true;
  }
  return true;
}

void Connection::Dispatch(std::vector<std::string>& argv) {
  ctx_.counters->commands_total.fetch_add(1, std::memory_order_relaxed);
  const uint64_t slot = OpenSlot();
  if (!deferred_.empty() || !CanRunNow(AccessOf(argv))) {
    deferred_.push_back(Deferred{std::move(argv), slot});
    return;
  }
  DispatchNow(argv, slot);
}

void Connection::RunDeferred() {
  // A command may complete inside DispatchNow (an error, a local read), which calls back here:
  // the outer loop carries on instead, so the stack stays flat.
  if (running_deferred_) return;
  running_deferred_ = true;
  while (!closed_ && !deferred_.empty() && CanRunNow(AccessOf(deferred_.front().argv))) {
    Deferred d = std::move(deferred_.front());
    deferred_.pop_front();
    DispatchNow(d.argv, d.slot);
  }
  running_deferred_ = false;
}

void Connection::DispatchNow(std::vector<std::string>& argv, uint64_t slot) {
  ReplySink sink(weak_from_this(), slot, protocol);
  const CommandSpec* spec = FindCommand(argv[0]);
  if (spec == nullptr) {
    tx.dirty = tx.active;  // an error while queueing aborts the transaction
    std::string args;
    for (size_t i = 1; i < argv.size() && i < 8; ++i) args += "'" + argv[i].substr(0, 64) + "' ";
    sink.Error("ERR unknown command '" + argv[0].substr(0, 128) +
               "', with args beginning with: " + args);
    return;
  }
  if (!ArityOk(*spec, argv.size())) {
    tx.dirty = tx.active;
    sink.Error(std::string("ERR wrong number of arguments for '") + spec->name + "' command");
    return;
  }
  last_active_ms = WallNowMs();
  last_command = spec->name;
  if (argv.size() > 1 && IsContainerCommand(spec->name)) last_command += "|" + LowerAscii(argv[1]);
  // As Redis: unknown commands and wrong arity are reported before a missing AUTH. A node that
  // does not know the replicated password yet refuses rather than guess.
  if (!(spec->flags & kNoAuth) && !ctx_.settings_known()) {
    tx.dirty = tx.active;
    sink.Error("LOADING Synod is loading the cluster's replicated settings");
    return;
  }
  if (!authenticated && !(spec->flags & kNoAuth) && !ctx_.password().empty()) {
    tx.dirty = tx.active;
    sink.Error("NOAUTH Authentication required.");
    return;
  }
  if (std::optional<std::string> moved = ClusterRedirect(ctx_, *spec, argv, readonly)) {
    tx.dirty = tx.active;  // as Redis: a redirected command aborts the transaction
    sink.Error(*moved);
    return;
  }
  if (tx.active && !(spec->flags & kTransaction)) {
    // Inside MULTI: keyspace commands are queued for EXEC; anything else is refused and,
    // as in Redis, poisons the transaction.
    if (!(spec->flags & (kWrite | kReadOnly))) {
      tx.dirty = true;
      sink.Error(std::string("ERR Command not allowed inside a transaction: '") + spec->name +
                 "' (Synod queues keyspace commands only)");
      return;
    }
    if (std::optional<std::string> e = TransactionShardError(ctx_, *spec, argv, tx)) {
      tx.dirty = true;
      sink.Error(*e);
      return;
    }
    if (tx.queued.size() >= kTransactionCommandsMax) {
      tx.dirty = true;
      sink.Error("ERR too many commands in one transaction");
      return;
    }
    tx.queued.push_back(std::move(argv));
    sink.Send("+QUEUED\r\n");
    return;
  }
  const Access access = AccessOf(argv);
  if (access != Access::kNone) {
    for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
      if (it->id != slot) continue;
      it->access = access;
      ++(access == Access::kRead ? reads_running_ : writes_running_);
      break;
    }
  }
  CommandCall call{ctx_, *this, argv};
  spec->handler(call, std::move(sink));
}

void Connection::Complete(uint64_t slot, std::string bytes) {
  if (closed_) return;
  // Slots complete mostly in order; search from the front (bounded by pipeline_max).
  for (Slot& s : slots_) {
    if (s.id != slot) continue;
    SYNOD_ASSERT(!s.done);
    s.done = true;
    s.bytes = std::move(bytes);
    if (!s.bytes.empty() && s.bytes[0] == '-') {
      ctx_.counters->errors_total.fetch_add(1, std::memory_order_relaxed);
    }
    if (s.access == Access::kRead) --reads_running_;
    if (s.access == Access::kWrite) --writes_running_;
    s.access = Access::kNone;
    break;
  }
  if (!deferred_.empty()) RunDeferred();
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    // Replies completed in the same round go out in one write.
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->flush_scheduled_ = false;
      self->Flush();
    });
  }
}

void Connection::Flush() {
  if (closed_) return;
  const int64_t now = SteadyNowNs();
  while (!slots_.empty() && slots_.front().done) {
    Slot& s = slots_.front();
    out_ += s.bytes;
    if (ctx_.counters->observe_request_ns) ctx_.counters->observe_request_ns(now - s.start_ns);
    slots_.pop_front();
  }
  if (out_.size() + writing_.size() > opts_.output_bytes_max) {
    logger_.Warn("event=client_output_limit client={} remote={} bytes={} limit={}", id_, remote,
                 out_.size() + writing_.size(), opts_.output_bytes_max);
    Close("output buffer limit");
    return;
  }
  Write();
  // Parsed-but-waiting commands may proceed now that slots freed up.
  ProcessInput();
  Read();
}

void Connection::Write() {
  if (writing_now_ || closed_) return;
  if (out_.empty()) {
    if (close_after_flush_ && slots_.empty()) Close("closed after reply");
    return;
  }
  writing_now_ = true;
  writing_.swap(out_);
  out_.clear();
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                      self->writing_now_ = false;
                      self->writing_.clear();
                      if (self->closed_) return;
                      if (ec) {
                        self->Close("write error");
                        return;
                      }
                      self->ctx_.counters->bytes_out.fetch_add(n, std::memory_order_relaxed);
                      self->Write();
                      self->Read();
                    });
}

void Connection::Kill() {
  if (closed_) return;
  // The replies already complete at the front go out; the rest (a WAIT, a write in flight)
  // would hold the connection open, so they are dropped: their sinks find no slot.
  while (!slots_.empty() && slots_.front().done) {
    out_ += slots_.front().bytes;
    slots_.pop_front();
  }
  slots_.clear();
  CloseAfterFlush();
}

std::string Connection::InfoLine(int64_t now_ms) const {
  std::string flags;
  if (tx.active) flags += 'x';
  if (blocked) flags += 'b';
  if (tx.watch_failed) flags += 'd';
  if (close_after_flush_) flags += 'c';
  if (readonly) flags += 'r';
  if (flags.empty()) flags = "N";
  size_t multi_mem = 0;
  for (const auto& argv : tx.queued) {
    for (const std::string& a : argv) multi_mem += a.size();
  }
  const size_t qbuf = parser_.buffered_bytes();
  const size_t omem = out_.size() + writing_.size();
  // A connection reads again as soon as the command in hand is dispatched.
  std::string events;
  if (!close_after_flush_ && !closed_) events += 'r';
  if (writing_now_) events += 'w';
  return fmt::format(
      "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 "
      "multi={} watch={} qbuf={} qbuf-free={} argv-mem=0 multi-mem={} rbs={} rbp=0 obl=0 oll={} "
      "omem={} tot-mem={} events={} cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
      id_, remote, local, fd_, name, (now_ms - created_ms) / 1000, (now_ms - last_active_ms) / 1000,
      flags, tx.active ? static_cast<int64_t>(tx.queued.size()) : -1, tx.watches.size(), qbuf,
      parser_.capacity_bytes() > qbuf ? parser_.capacity_bytes() - qbuf : 0, multi_mem,
      read_buf_.size(), slots_.size(), omem,
      qbuf + omem + multi_mem + read_buf_.size() + sizeof(Connection), events,
      last_command.empty() ? "NULL" : last_command, protocol, lib_name, lib_ver);
}

void Connection::CloseAfterFlush() {
  close_after_flush_ = true;
  Write();
}

void Connection::Close(const char* why) {
  if (closed_) return;
  closed_ = true;
  // on_close_ drops the server's reference, which may be the last one.
  auto self = shared_from_this();
  logger_.Debug("event=client_closed client={} remote={} why=\"{}\"", id_, remote, why);
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  slots_.clear();
  if (on_close_) on_close_(id_);
}

// ---- RespServer ----

RespServer::RespServer(asio::io_context& io, RespOptions opts, ServerContext& ctx, Logger logger)
    : io_(io), opts_(std::move(opts)), ctx_(ctx), logger_(std::move(logger)), acceptor_(io) {}

RespServer::~RespServer() {
  StopAccepting();
  CloseAll();
}

Status RespServer::Start() {
  auto hp = SplitHostPort(opts_.listen_address, PortZero::kAllowed);
  if (!hp.ok()) return hp.status();
  asio::error_code ec;
  auto addr = asio::ip::make_address(hp->host, ec);
  if (ec) return Status::InvalidArgument("client address: bad host " + hp->host);
  asio::ip::tcp::endpoint ep(addr, hp->port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IoError("cannot listen for clients on " + opts_.listen_address + ": " +
                           ec.message());
  }
  Accept();
  return Status::Ok();
}

std::string RespServer::bound_address() const {
  asio::error_code ec;
  auto ep = acceptor_.local_endpoint(ec);
  if (ec) return "";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void RespServer::Accept() {
  acceptor_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (conns_.size() >= opts_.clients_max) {
        ctx_.counters->rejected_connections.fetch_add(1, std::memory_order_relaxed);
        std::string msg = "-ERR max number of clients reached\r\n";
        asio::error_code wec;
        asio::write(socket, asio::buffer(msg), wec);
        socket.close(wec);
      } else {
        const uint64_t id = next_conn_id_++;
        auto conn = std::make_shared<Connection>(
            std::move(socket), id, opts_, ctx_, logger_, [this](uint64_t cid) {
              conns_.erase(cid);
              ctx_.counters->connections_current.fetch_sub(1, std::memory_order_relaxed);
            });
        conns_[id] = conn;
        ctx_.counters->connections_total.fetch_add(1, std::memory_order_relaxed);
        ctx_.counters->connections_current.fetch_add(1, std::memory_order_relaxed);
        conn->Start();
      }
    } else {
      logger_.Warn("event=accept_failed error=\"{}\"", ec.message());
    }
    Accept();
  });
}

void RespServer::StopAccepting() {
  asio::error_code ec;
  acceptor_.close(ec);
}

void RespServer::CloseAll() {
  auto conns = conns_;
  for (auto& [id, c] : conns) c->Close("server stopping");
  conns_.clear();
}

std::vector<std::string> RespServer::ClientList() const {
  std::vector<std::string> out;
  const int64_t now = WallNowMs();
  for (const auto& c : Connections()) out.push_back(c->InfoLine(now));
  return out;
}

std::vector<std::shared_ptr<Connection>> RespServer::Connections() const {
  std::vector<std::shared_ptr<Connection>> out;
  out.reserve(conns_.size());
  for (const auto& [id, c] : conns_) out.push_back(c);
  return out;
}

}  // namespace synod::server
