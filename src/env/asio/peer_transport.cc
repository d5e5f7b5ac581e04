#include "env/asio/peer_transport.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "common/address.h"
#include "common/assert.h"
#include "common/crc32c.h"

namespace synod::env {

namespace peer_wire {
namespace {

void PutLe(uint64_t v, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint64_t GetLe(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// magic u32, version u16, cluster id u64, from u64, to u64, address length u16.
constexpr size_t kHelloFixedBytes = 4 + 2 + 8 + 8 + 8 + 2;

}  // namespace

void AppendFrame(FrameType type, std::string_view payload, std::string* out) {
  SYNOD_ASSERT(payload.size() <= std::numeric_limits<uint32_t>::max());
  PutLe(payload.size(), 4, out);
  PutLe(Crc32c(payload), 4, out);
  out->push_back(static_cast<char>(type));
  out->append(payload);
}

FrameHeader DecodeFrameHeader(const unsigned char* bytes) {
  FrameHeader h;
  h.payload_bytes = static_cast<uint32_t>(GetLe(bytes, 4));
  h.crc = static_cast<uint32_t>(GetLe(bytes + 4, 4));
  h.type = bytes[8];
  return h;
}

std::string EncodeHello(const Hello& hello) {
  SYNOD_ASSERT(hello.advertise_address.size() <= kHelloBytesMax - kHelloFixedBytes);
  std::string out;
  PutLe(kHelloMagic, 4, &out);
  PutLe(kProtocolVersion, 2, &out);
  PutLe(hello.cluster_id, 8, &out);
  PutLe(hello.from.value(), 8, &out);
  PutLe(hello.to.value(), 8, &out);
  PutLe(hello.advertise_address.size(), 2, &out);
  out.append(hello.advertise_address);
  SYNOD_ASSERT(out.size() <= kHelloBytesMax);
  return out;
}

Result<Hello> DecodeHello(std::string_view payload) {
  // Magic and version come first so that a future version may change the rest of the layout.
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data());
  if (payload.size() < 6) return Status::InvalidArgument("hello: too short");
  const uint64_t magic = GetLe(p, 4);
  if (magic != kHelloMagic) {
    return Status::InvalidArgument(fmt::format("hello: bad magic {:#x}", magic));
  }
  const uint64_t version = GetLe(p + 4, 2);
  if (version != kProtocolVersion) {
    return Status::InvalidArgument(fmt::format("hello: unsupported version {}", version));
  }
  if (payload.size() < kHelloFixedBytes) return Status::InvalidArgument("hello: too short");
  const size_t address_bytes = GetLe(p + 30, 2);
  if (payload.size() != kHelloFixedBytes + address_bytes) {
    return Status::InvalidArgument("hello: length does not match its address length");
  }
  Hello hello;
  hello.cluster_id = GetLe(p + 6, 8);
  hello.from = NodeId(GetLe(p + 14, 8));
  hello.to = NodeId(GetLe(p + 22, 8));
  hello.advertise_address.assign(payload.substr(kHelloFixedBytes));
  return hello;
}

}  // namespace peer_wire

namespace {

using asio::ip::tcp;
using peer_wire::FrameType;

// Bounds that are no option because no deployment needs to tune them.
constexpr size_t kIncomingConnectionsMax = 1024;          // far above any cluster size
constexpr auto kHelloTimeout = std::chrono::seconds(10);  // an accepted socket must say hello
constexpr size_t kReadStepBytes = 1 << 20;  // a payload buffer grows by at most this per read
// An accepted connection reads into a buffer of its own and cuts frames out of it, so that one
// recv takes every message that has arrived (a round's append and its heartbeat, say) instead
// of two exact-size reads per frame. Small until the hello, so that unauthenticated
// connections cost little.
constexpr size_t kHelloReadBufferBytes = 2048;
static_assert(kHelloReadBufferBytes >= peer_wire::kFrameHeaderBytes + peer_wire::kHelloBytesMax);
constexpr size_t kReadBufferBytes = 64 << 10;
constexpr size_t kRetainBytesMax = 4 << 20;  // larger buffers are freed after use
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// Distinct peer ids we keep counters for: a node of our cluster could otherwise make the map
// grow by saying hello under ever new ids.
constexpr size_t kPeersMax = 1024;
constexpr size_t kAdvertiseBytesMax = 512;  // leaves room for the rest of a hello
static_assert(kAdvertiseBytesMax + 64 <= peer_wire::kHelloBytesMax);

std::string FormatEndpoint(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

// The wire size of a message encoding of `bytes` once framed (chunked when large).
size_t FramedBytes(size_t bytes, size_t chunk_bytes) {
  const size_t frames = bytes <= chunk_bytes ? 1 : (bytes + chunk_bytes - 1) / chunk_bytes;
  return bytes + frames * peer_wire::kFrameHeaderBytes;
}

void AppendMessageFrames(std::string_view encoded, size_t chunk_bytes, std::string* out) {
  if (encoded.size() <= chunk_bytes) {
    peer_wire::AppendFrame(FrameType::kMessage, encoded, out);
    return;
  }
  while (encoded.size() > chunk_bytes) {
    peer_wire::AppendFrame(FrameType::kChunk, encoded.substr(0, chunk_bytes), out);
    encoded.remove_prefix(chunk_bytes);
  }
  peer_wire::AppendFrame(FrameType::kLastChunk, encoded, out);
}

// Frees a buffer's memory once a large message has passed through it.
void ReleaseIfLarge(std::string* buffer) {
  buffer->clear();
  if (buffer->capacity() > kRetainBytesMax) std::string().swap(*buffer);
}

}  // namespace

struct PeerTransport::OutPeer {
  OutPeer(asio::io_context& io, NodeId id, std::string address)
      : id(id), address(std::move(address)), socket(io), resolver(io), backoff_timer(io) {}

  enum class State { kIdle, kConnecting, kConnected, kBackoff };

  const NodeId id;
  std::string address;
  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer backoff_timer;
  State state = State::kIdle;
  // Set when the peer is removed or the transport stops; handlers then return at once.
  bool closed = false;
  // Bumped whenever an attempt or a connection ends, so that handlers of an older one, still
  // queued, recognise themselves as stale.
  uint64_t generation = 0;
  int failures = 0;  // consecutive failed attempts; drives the backoff
  // UnreachableFn already called for the current attempt: for its failure, for a dropped message.
  bool unreachable_reported = false;
  bool drop_reported = false;
  bool flush_scheduled = false;
  bool write_in_progress = false;
  std::string hello;    // the hello frame, written ahead of `writing` on a new connection
  std::string pending;  // whole frames of messages not yet handed to a write
  uint64_t pending_messages = 0;
  std::string writing;  // the frames of the write in progress
  uint64_t writing_messages = 0;
  std::array<char, 1> probe{};  // target of the read that notices the peer closing
};

struct PeerTransport::InConn {
  InConn(tcp::socket s, asio::io_context& io)
      : socket(std::move(s)), hello_timer(io), in(kHelloReadBufferBytes) {}

  uint64_t number = 0;
  tcp::socket socket;
  asio::steady_timer hello_timer;
  std::string remote;   // "ip:port", for logs
  bool closed = false;  // handlers return at once when set
  NodeId from;          // kNoNode until a valid hello arrived
  // Bytes read and not yet consumed are in[in_begin, in_end).
  std::vector<char> in;
  size_t in_begin = 0;
  size_t in_end = 0;
  bool in_frame = false;  // `header` is that of a frame whose payload is still arriving
  peer_wire::FrameHeader header;
  size_t frame_start = 0;     // where this frame's payload begins in its destination buffer
  size_t frame_received = 0;  // bytes of this frame's payload copied there so far
  std::string hello;          // the hello frame's payload
  std::string message;        // the message being received; several frames when chunked

  size_t buffered() const { return in_end - in_begin; }
  std::string& destination() {
    return header.type == static_cast<uint8_t>(FrameType::kHello) ? hello : message;
  }
};

PeerTransport::PeerTransport(asio::io_context& io, PeerTransportOptions opts, Logger logger,
                             ReceiveFn on_receive, UnreachableFn on_unreachable,
                             PeerAddressFn on_peer_address)
    : io_(io),
      opts_(std::move(opts)),
      log_(logger.With("component=net ")),
      on_receive_(std::move(on_receive)),
      on_unreachable_(std::move(on_unreachable)),
      on_peer_address_(std::move(on_peer_address)),
      acceptor_(io),
      accept_retry_timer_(io),
      random_(std::random_device{}()) {
  SYNOD_ASSERT(opts_.self != kNoNode);
  SYNOD_ASSERT(opts_.chunk_bytes > 0 && opts_.chunk_bytes <= std::numeric_limits<uint32_t>::max());
  SYNOD_ASSERT(opts_.backoff_min_ms > 0 && opts_.backoff_min_ms <= opts_.backoff_max_ms);
  SYNOD_ASSERT(on_receive_ && on_unreachable_ && on_peer_address_);
}

PeerTransport::~PeerTransport() { Stop(); }

Status PeerTransport::Start() {
  if (state_ != State::kNew) return Status::FailedPrecondition("transport already started");
  Result<HostPort> hp = SplitHostPort(opts_.listen_address);
  if (!hp.ok()) return hp.status();
  if (opts_.advertise_address.size() > kAdvertiseBytesMax) {
    return Status::InvalidArgument("advertise address longer than a hello can carry");
  }
  const auto fail = [&](const asio::error_code& ec) {
    asio::error_code ignored;
    acceptor_.close(ignored);
    return Status::IoError(
        fmt::format("cannot listen on {}: {}", opts_.listen_address, ec.message()));
  };
  asio::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address(hp->host, ec), hp->port);
  if (ec) {
    // A host name: resolved once, synchronously, as this runs before the node serves anything.
    tcp::resolver resolver(io_);
    const auto results = resolver.resolve(hp->host, std::to_string(hp->port), ec);
    if (ec) return fail(ec);
    if (results.empty()) return fail(asio::error::host_not_found);
    endpoint = results.begin()->endpoint();
  }
  if (acceptor_.open(endpoint.protocol(), ec)) return fail(ec);
  // SO_REUSEADDR lets a restarted node bind its port while old connections are in TIME_WAIT;
  // on Linux it does not let two live listeners share a port.
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec)) return fail(ec);
  if (acceptor_.bind(endpoint, ec)) return fail(ec);
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) return fail(ec);
  const tcp::endpoint bound = acceptor_.local_endpoint(ec);
  if (ec) return fail(ec);
  bound_address_ = FormatEndpoint(bound);
  advertise_address_ = opts_.advertise_address.empty() ? bound_address_ : opts_.advertise_address;
  state_ = State::kStarted;
  log_.Info("event=listening address={} advertise={} cluster={}", bound_address_,
            advertise_address_, opts_.cluster_id);
  Accept();
  for (auto& [id, peer] : peers_) Dial(peer);
  return Status::Ok();
}

void PeerTransport::Stop() {
  if (state_ == State::kStopped) return;
  const bool was_started = state_ == State::kStarted;
  state_ = State::kStopped;
  *alive_ = false;
  asio::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_timer_.cancel();
  for (auto& [id, peer] : peers_) ClosePeer(*peer);
  peers_.clear();
  // Closing erases from conns_, so take the map first.
  std::map<uint64_t, std::shared_ptr<InConn>> conns;
  conns.swap(conns_);
  for (auto& [number, conn] : conns) CloseConn(conn, spdlog::level::off, "");
  if (was_started) log_.Info("event=stopped address={}", bound_address_);
}

void PeerTransport::SetPeer(NodeId id, std::string address) {
  SYNOD_ASSERT(id != kNoNode);
  if (state_ == State::kStopped) return;
  auto it = peers_.find(id);
  if (it != peers_.end()) {
    OutPeer& peer = *it->second;
    if (peer.address == address) return;
    log_.Info("event=peer_address_changed peer={} old={} new={}", id.value(), peer.address,
              address);
    // Redial at once: the old address may be why the peer is unreachable.
    ResetConnection(peer);
    peer.address = std::move(address);
    peer.state = OutPeer::State::kIdle;
    peer.failures = 0;
    if (state_ == State::kStarted) Dial(it->second);
    return;
  }
  auto peer = std::make_shared<OutPeer>(io_, id, std::move(address));
  peers_.emplace(id, peer);
  counters_[id];  // so that Stats() lists the peer before any traffic
  if (state_ == State::kStarted) Dial(peer);
}

void PeerTransport::RemovePeer(NodeId id) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  std::shared_ptr<OutPeer> peer = std::move(it->second);
  peers_.erase(it);
  counters_[id].messages_dropped += peer->pending_messages + peer->writing_messages;
  ClosePeer(*peer);
  log_.Info("event=peer_removed peer={}", id.value());
}

void PeerTransport::ClosePeer(OutPeer& peer) {
  peer.closed = true;
  asio::error_code ignored;
  peer.socket.close(ignored);
  peer.resolver.cancel();
  peer.backoff_timer.cancel();
}

void PeerTransport::Send(NodeId to, std::string_view payload) {
  if (state_ != State::kStarted) return;
  auto it = peers_.find(to);
  if (it == peers_.end()) {
    log_.Debug("event=send_dropped reason=unknown_peer to={} bytes={}", to.value(), payload.size());
    return;
  }
  const std::shared_ptr<OutPeer>& peer = it->second;
  Counters& counters = counters_[to];
  if (blocked_.contains(to)) {
    ++counters.messages_dropped;
    return;
  }
  if (payload.size() > opts_.message_bytes_max) {
    log_.Warn("event=send_dropped reason=too_large to={} bytes={} max={}", to.value(),
              payload.size(), opts_.message_bytes_max);
    ++counters.messages_dropped;
    return;
  }
  const size_t framed = FramedBytes(payload.size(), opts_.chunk_bytes);
  // A message larger than the whole bound (a snapshot) goes in while the queue is not full: it
  // would otherwise wait for an empty queue, which a busy peer's rarely is. The queue then
  // holds at most the bound plus one such message.
  const bool full = framed > opts_.queue_bytes_max
                        ? peer->pending.size() >= opts_.queue_bytes_max
                        : peer->pending.size() + framed > opts_.queue_bytes_max;
  if (!peer->pending.empty() && full) {
    ++counters.messages_dropped;
    log_.Debug("event=send_dropped reason=queue_full to={} bytes={} pending_bytes={}", to.value(),
               payload.size(), peer->pending.size());
    if (peer->state != OutPeer::State::kConnected && !peer->drop_reported) {
      peer->drop_reported = true;
      on_unreachable_(peer->id);
    }
    return;
  }
  AppendMessageFrames(payload, opts_.chunk_bytes, &peer->pending);
  ++peer->pending_messages;
  ScheduleFlush(peer);
}

std::vector<PeerTransport::PeerStats> PeerTransport::Stats() const {
  std::vector<PeerStats> out;
  out.reserve(counters_.size());
  for (const auto& [id, c] : counters_) {
    PeerStats s;
    s.id = id;
    s.address = c.advertised_address;
    auto it = peers_.find(id);
    if (it != peers_.end()) {
      s.address = it->second->address;
      s.connected = it->second->state == OutPeer::State::kConnected;
    }
    s.last_received_ns = c.last_received_ns;
    s.messages_sent = c.messages_sent;
    s.messages_received = c.messages_received;
    s.bytes_sent = c.bytes_sent;
    s.bytes_received = c.bytes_received;
    s.messages_dropped = c.messages_dropped;
    out.push_back(std::move(s));
  }
  return out;
}

// ---- Outgoing side ----

void PeerTransport::Dial(const std::shared_ptr<OutPeer>& peer) {
  SYNOD_ASSERT(!peer->closed);
  SYNOD_ASSERT(peer->state == OutPeer::State::kIdle || peer->state == OutPeer::State::kBackoff);
  peer->state = OutPeer::State::kConnecting;
  peer->unreachable_reported = false;
  peer->drop_reported = false;
  const uint64_t gen = peer->generation;
  Result<HostPort> hp = SplitHostPort(peer->address);
  if (!hp.ok()) {
    // Failed from the loop rather than here: Dial runs inside SetPeer and Start, whose callers
    // do not expect UnreachableFn to run before they return.
    asio::post(io_, [this, peer, gen, why = std::string(hp.status().message())] {
      if (peer->closed || peer->generation != gen) return;
      ConnectionFailed(peer, why);
    });
    return;
  }
  asio::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(hp->host, ec);
  if (!ec) {
    Connect(peer, {tcp::endpoint(ip, hp->port)});
    return;
  }
  peer->resolver.async_resolve(
      hp->host, std::to_string(hp->port),
      [this, peer, gen](const asio::error_code& ec, const tcp::resolver::results_type& results) {
        if (peer->closed || peer->generation != gen) return;
        if (ec) {
          ConnectionFailed(peer, "resolve: " + ec.message());
          return;
        }
        std::vector<tcp::endpoint> eps;
        for (const auto& entry : results) eps.push_back(entry.endpoint());
        Connect(peer, std::move(eps));
      });
}

void PeerTransport::Connect(const std::shared_ptr<OutPeer>& peer, std::vector<tcp::endpoint> eps) {
  const uint64_t gen = peer->generation;
  asio::async_connect(peer->socket, std::move(eps),
                      [this, peer, gen](const asio::error_code& ec, const tcp::endpoint&) {
                        if (peer->closed || peer->generation != gen) return;
                        if (ec) {
                          ConnectionFailed(peer, "connect: " + ec.message());
                          return;
                        }
                        OnConnected(peer);
                      });
}

void PeerTransport::OnConnected(const std::shared_ptr<OutPeer>& peer) {
  asio::error_code ec;
  // Raft messages are small and latency-bound, and we batch ourselves: Nagle only delays.
  peer->socket.set_option(tcp::no_delay(true), ec);
  if (ec) log_.Debug("event=nodelay_failed peer={} error=\"{}\"", peer->id.value(), ec.message());
  peer->state = OutPeer::State::kConnected;
  log_.Info("event=peer_connected peer={} address={} after_failures={}", peer->id.value(),
            peer->address, peer->failures);
  peer->failures = 0;
  peer->hello.clear();
  peer_wire::Hello hello{opts_.cluster_id, opts_.self, peer->id, advertise_address_};
  peer_wire::AppendFrame(FrameType::kHello, peer_wire::EncodeHello(hello), &peer->hello);
  WatchForClose(peer);
  Flush(peer);
}

void PeerTransport::WatchForClose(const std::shared_ptr<OutPeer>& peer) {
  const uint64_t gen = peer->generation;
  peer->socket.async_read_some(
      asio::buffer(peer->probe), [this, peer, gen](const asio::error_code& ec, size_t) {
        if (peer->closed || peer->generation != gen) return;
        ConnectionFailed(peer, ec ? ec.message() : "peer wrote on a send-only connection");
      });
}

void PeerTransport::ScheduleFlush(const std::shared_ptr<OutPeer>& peer) {
  // A write in progress flushes on completion; a down peer flushes on connect.
  if (peer->flush_scheduled || peer->write_in_progress) return;
  if (peer->state != OutPeer::State::kConnected) return;
  peer->flush_scheduled = true;
  asio::post(io_, [this, peer] {
    peer->flush_scheduled = false;
    if (peer->closed) return;
    Flush(peer);
  });
}

void PeerTransport::Flush(const std::shared_ptr<OutPeer>& peer) {
  if (peer->state != OutPeer::State::kConnected || peer->write_in_progress) return;
  if (peer->pending.empty() && peer->hello.empty()) return;
  SYNOD_ASSERT(peer->writing.empty() && peer->writing_messages == 0);
  peer->writing.swap(peer->pending);
  peer->writing_messages = peer->pending_messages;
  peer->pending_messages = 0;
  peer->write_in_progress = true;
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(peer->hello),
                                                  asio::buffer(peer->writing)};
  const uint64_t gen = peer->generation;
  asio::async_write(peer->socket, buffers,
                    [this, peer, gen](const asio::error_code& ec, size_t bytes) {
                      if (peer->closed || peer->generation != gen) return;
                      if (ec) {
                        ConnectionFailed(peer, "write: " + ec.message());
                        return;
                      }
                      OnWritten(peer, bytes);
                    });
}

void PeerTransport::OnWritten(const std::shared_ptr<OutPeer>& peer, size_t bytes) {
  SYNOD_ASSERT(bytes == peer->hello.size() + peer->writing.size());
  Counters& counters = counters_[peer->id];
  counters.messages_sent += peer->writing_messages;
  counters.bytes_sent += bytes;
  peer->write_in_progress = false;
  peer->writing_messages = 0;
  peer->hello.clear();
  ReleaseIfLarge(&peer->writing);
  // What accumulated during this write goes out now, as the next batch.
  Flush(peer);
}

void PeerTransport::ConnectionFailed(const std::shared_ptr<OutPeer>& peer, std::string_view why) {
  SYNOD_ASSERT(!peer->closed);
  const bool was_connected = peer->state == OutPeer::State::kConnected;
  ResetConnection(*peer);
  peer->state = OutPeer::State::kBackoff;
  ++peer->failures;
  const int64_t delay_ms = BackoffMs(peer->failures);
  // One line per outage at info; the retries of a long outage only at debug.
  if (was_connected || peer->failures == 1) {
    log_.Info("event=peer_unreachable peer={} address={} reason=\"{}\" retry_ms={}",
              peer->id.value(), peer->address, why, delay_ms);
  } else {
    log_.Debug("event=peer_dial_failed peer={} address={} reason=\"{}\" failures={} retry_ms={}",
               peer->id.value(), peer->address, why, peer->failures, delay_ms);
  }
  const uint64_t gen = peer->generation;
  peer->backoff_timer.expires_after(std::chrono::milliseconds(delay_ms));
  peer->backoff_timer.async_wait([this, peer, gen](const asio::error_code& ec) {
    if (ec || peer->closed || peer->generation != gen) return;
    Dial(peer);
  });
  // Last: the callback may remove the peer or stop the transport.
  if (!peer->unreachable_reported) {
    peer->unreachable_reported = true;
    on_unreachable_(peer->id);
  }
}

void PeerTransport::ResetConnection(OutPeer& peer) {
  asio::error_code ignored;
  peer.socket.close(ignored);
  peer.resolver.cancel();
  peer.backoff_timer.cancel();
  ++peer.generation;
  // Frames handed to the lost write may or may not have arrived; Raft retransmits either way.
  counters_[peer.id].messages_dropped += peer.writing_messages;
  peer.writing_messages = 0;
  ReleaseIfLarge(&peer.writing);
  peer.hello.clear();
  peer.write_in_progress = false;
}

int64_t PeerTransport::BackoffMs(int failures) {
  SYNOD_ASSERT(failures >= 1);
  const int shift = std::min(failures - 1, 30);
  const int64_t base = std::min(opts_.backoff_max_ms, opts_.backoff_min_ms << shift);
  // Jitter spreads the redials of peers that lost the same node at the same moment.
  return std::max<int64_t>(1, random_.Range(base / 2, base));
}

// ---- Incoming side ----

void PeerTransport::Accept() {
  acceptor_.async_accept([this, alive = alive_](const asio::error_code& ec, tcp::socket socket) {
    if (!*alive) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Such as EMFILE: pause rather than spin on an error that persists.
      log_.Warn("event=accept_failed error=\"{}\"", ec.message());
      accept_retry_timer_.expires_after(kAcceptRetryDelay);
      accept_retry_timer_.async_wait([this, alive](const asio::error_code& ec) {
        if (!ec && *alive) Accept();
      });
      return;
    }
    OnAccepted(std::move(socket));
    Accept();
  });
}

void PeerTransport::OnAccepted(tcp::socket socket) {
  asio::error_code ec;
  const tcp::endpoint remote = socket.remote_endpoint(ec);
  const std::string remote_text = ec ? std::string("unknown") : FormatEndpoint(remote);
  if (conns_.size() >= kIncomingConnectionsMax) {
    log_.Warn("event=peer_refused reason=too_many_connections remote={} max={}", remote_text,
              kIncomingConnectionsMax);
    socket.close(ec);
    return;
  }
  auto conn = std::make_shared<InConn>(std::move(socket), io_);
  conn->number = next_conn_id_++;
  conn->remote = remote_text;
  conns_.emplace(conn->number, conn);
  log_.Debug("event=peer_conn_accepted remote={}", conn->remote);
  conn->hello_timer.expires_after(kHelloTimeout);
  conn->hello_timer.async_wait([this, conn](const asio::error_code& ec) {
    if (ec || conn->closed || conn->from != kNoNode) return;
    CloseConn(conn, spdlog::level::info, "hello_timeout");
  });
  Read(conn);
}

void PeerTransport::Read(const std::shared_ptr<InConn>& conn) {
  // Large payloads are read straight into their destination, a step at a time.
  if (conn->in_frame && conn->buffered() == 0 &&
      conn->header.payload_bytes - conn->frame_received >= conn->in.size()) {
    return ReadPayload(conn);
  }
  // What Consume left is less than a frame header (payload bytes move out as they come).
  SYNOD_ASSERT(conn->buffered() < peer_wire::kFrameHeaderBytes);
  CompactInput(*conn);
  conn->socket.async_read_some(
      asio::buffer(conn->in.data() + conn->in_end, conn->in.size() - conn->in_end),
      [this, conn](const asio::error_code& ec, size_t bytes) {
        if (conn->closed) return;
        if (ec) return OnReadError(conn, ec);
        conn->in_end += bytes;
        Consume(conn);
        if (!conn->closed) Read(conn);
      });
}

void PeerTransport::CompactInput(InConn& conn) {
  std::memmove(conn.in.data(), conn.in.data() + conn.in_begin, conn.buffered());
  conn.in_end -= conn.in_begin;
  conn.in_begin = 0;
}

void PeerTransport::OnReadError(const std::shared_ptr<InConn>& conn, const asio::error_code& ec) {
  if (ec != asio::error::eof) {
    return CloseConn(conn, spdlog::level::info, "read_error: " + ec.message());
  }
  if (conn->buffered() == 0 && !conn->in_frame && conn->message.empty()) {
    return CloseConn(conn, spdlog::level::debug, "closed_by_peer");
  }
  CloseConn(conn, spdlog::level::info, "truncated_frame");
}

void PeerTransport::Consume(const std::shared_ptr<InConn>& conn) {
  while (!conn->closed) {
    if (!conn->in_frame) {
      if (conn->buffered() < peer_wire::kFrameHeaderBytes) return;
      conn->header = peer_wire::DecodeFrameHeader(
          reinterpret_cast<const unsigned char*>(conn->in.data() + conn->in_begin));
      conn->in_begin += peer_wire::kFrameHeaderBytes;
      OnHeader(conn);
      if (conn->closed) return;
      conn->in_frame = true;
      const uint32_t bytes = conn->header.payload_bytes;
      if (conn->header.type == static_cast<uint8_t>(FrameType::kMessage) &&
          conn->buffered() >= bytes) {
        // The common case: a whole message in the buffer, decoded where it lies.
        const std::string_view payload(conn->in.data() + conn->in_begin, bytes);
        conn->in_begin += bytes;
        conn->in_frame = false;
        OnFrame(conn, payload);
        continue;
      }
    }
    const size_t take =
        std::min<size_t>(conn->buffered(), conn->header.payload_bytes - conn->frame_received);
    conn->destination().append(conn->in.data() + conn->in_begin, take);
    conn->in_begin += take;
    conn->frame_received += take;
    if (conn->frame_received < conn->header.payload_bytes) return;
    OnAssembledFrame(conn);
  }
}

void PeerTransport::OnAssembledFrame(const std::shared_ptr<InConn>& conn) {
  conn->in_frame = false;
  const std::string& dest = conn->destination();
  OnFrame(conn, std::string_view(dest.data() + conn->frame_start, conn->header.payload_bytes));
}

void PeerTransport::OnHeader(const std::shared_ptr<InConn>& conn) {
  const uint32_t bytes = conn->header.payload_bytes;
  const bool said_hello = conn->from != kNoNode;
  switch (static_cast<FrameType>(conn->header.type)) {
    case FrameType::kHello:
      if (said_hello) {
        return CloseConn(conn, spdlog::level::info, "second_hello");
      }
      if (bytes > peer_wire::kHelloBytesMax) {
        return CloseConn(conn, spdlog::level::info, "oversized_hello");
      }
      conn->hello.clear();
      break;
    case FrameType::kMessage:
      if (!conn->message.empty()) {
        return CloseConn(conn, spdlog::level::info, "message_inside_chunked_message");
      }
      [[fallthrough]];
    case FrameType::kChunk:
    case FrameType::kLastChunk:
      if (!said_hello) {
        return CloseConn(conn, spdlog::level::info, "expected_hello");
      }
      // Checked before anything is reserved: the length is the peer's word, not a fact.
      if (bytes > opts_.message_bytes_max - conn->message.size()) {
        return CloseConn(conn, spdlog::level::warn,
                         fmt::format("oversized_message bytes={} already={} max={}", bytes,
                                     conn->message.size(), opts_.message_bytes_max));
      }
      break;
    default:
      return CloseConn(conn, spdlog::level::info,
                       fmt::format("bad_frame_type type={}", conn->header.type));
  }
  conn->frame_start = conn->destination().size();
  conn->frame_received = 0;
}

void PeerTransport::ReadPayload(const std::shared_ptr<InConn>& conn) {
  // Grow the buffer only as bytes arrive, so that a length promising much and sending little
  // costs the sender as much as us.
  const size_t remaining = conn->header.payload_bytes - conn->frame_received;
  const size_t step = std::min(remaining, kReadStepBytes);
  std::string& dest = conn->destination();
  const size_t at = dest.size();
  dest.resize(at + step);
  conn->socket.async_read_some(asio::buffer(dest.data() + at, step),
                               [this, conn, at](const asio::error_code& ec, size_t bytes) {
                                 if (conn->closed) return;
                                 std::string& dest = conn->destination();
                                 dest.resize(at + bytes);
                                 if (ec) return OnReadError(conn, ec);
                                 conn->frame_received += bytes;
                                 if (conn->frame_received == conn->header.payload_bytes) {
                                   OnAssembledFrame(conn);
                                 }
                                 if (!conn->closed) Read(conn);
                               });
}

void PeerTransport::OnFrame(const std::shared_ptr<InConn>& conn, std::string_view payload) {
  const uint32_t crc = Crc32c(payload);
  if (crc != conn->header.crc) {
    return CloseConn(conn, spdlog::level::warn,
                     fmt::format("bad_crc frame_type={} bytes={} crc={:#x} expected={:#x}",
                                 conn->header.type, payload.size(), crc, conn->header.crc));
  }
  if (conn->from != kNoNode) {
    counters_[conn->from].bytes_received += peer_wire::kFrameHeaderBytes + payload.size();
  }
  switch (static_cast<FrameType>(conn->header.type)) {
    case FrameType::kHello:
      return OnHello(conn);
    case FrameType::kChunk:
      return;
    case FrameType::kMessage:
      // In the read buffer, or (when it straddled reads) all of conn->message.
      return OnMessage(conn, payload);
    case FrameType::kLastChunk:
      return OnMessage(conn, conn->message);
  }
  SYNOD_UNREACHABLE();  // OnHeader let no other type through
}

void PeerTransport::OnHello(const std::shared_ptr<InConn>& conn) {
  Result<peer_wire::Hello> hello = peer_wire::DecodeHello(conn->hello);
  std::string().swap(conn->hello);
  if (!hello.ok()) {
    return CloseConn(conn, spdlog::level::warn,
                     fmt::format("bad_hello detail=\"{}\"", hello.status().message()));
  }
  const char* refusal = nullptr;
  std::string ours, theirs;
  if (hello->cluster_id != opts_.cluster_id) {
    refusal = "cluster_mismatch";
    ours = std::to_string(opts_.cluster_id);
    theirs = std::to_string(hello->cluster_id);
  } else if (hello->to != opts_.self) {
    refusal = "wrong_node";
    ours = std::to_string(opts_.self.value());
    theirs = std::to_string(hello->to.value());
  } else if (hello->from == kNoNode || hello->from == opts_.self) {
    refusal = "bad_from";
    ours = std::to_string(opts_.self.value());
    theirs = std::to_string(hello->from.value());
  } else if (counters_.size() >= kPeersMax && !counters_.contains(hello->from)) {
    refusal = "too_many_peers";
    ours = std::to_string(kPeersMax);
    theirs = std::to_string(counters_.size());
  }
  if (refusal != nullptr) {
    log_.Warn("event=peer_refused reason={} ours={} theirs={} from={} remote={}", refusal, ours,
              theirs, hello->from.value(), conn->remote);
    return CloseConn(conn, spdlog::level::off, "");
  }
  conn->from = hello->from;
  conn->hello_timer.cancel();
  Counters& counters = counters_[conn->from];
  counters.advertised_address = hello->advertise_address;
  counters.bytes_received += peer_wire::kFrameHeaderBytes + conn->header.payload_bytes;
  log_.Info("event=peer_accepted from={} remote={} advertise={}", conn->from.value(), conn->remote,
            hello->advertise_address);
  on_peer_address_(conn->from, hello->advertise_address);
  // A peer of ours now: read in larger gulps (Read compacts any leftover to the front first).
  if (!conn->closed && conn->in.size() < kReadBufferBytes) {
    CompactInput(*conn);
    conn->in.resize(kReadBufferBytes);
  }
}

void PeerTransport::OnMessage(const std::shared_ptr<InConn>& conn, std::string_view payload) {
  Counters& counters = counters_[conn->from];
  if (blocked_.contains(conn->from)) {
    ++counters.messages_dropped;
  } else {
    ++counters.messages_received;
    counters.last_received_ns = clock_.NowNanos();
    on_receive_(conn->from, payload);
  }
  // After the callback: `payload` may lie in the message buffer.
  ReleaseIfLarge(&conn->message);
}

void PeerTransport::CloseConn(const std::shared_ptr<InConn>& conn, spdlog::level::level_enum level,
                              std::string_view reason) {
  if (conn->closed) return;
  conn->closed = true;
  asio::error_code ignored;
  conn->socket.close(ignored);
  conn->hello_timer.cancel();
  conns_.erase(conn->number);
  const uint64_t from = conn->from.value();
  switch (level) {
    case spdlog::level::warn:
      log_.Warn("event=peer_conn_closed reason={} from={} remote={}", reason, from, conn->remote);
      break;
    case spdlog::level::info:
      log_.Info("event=peer_conn_closed reason={} from={} remote={}", reason, from, conn->remote);
      break;
    case spdlog::level::off:
      break;
    default:
      log_.Debug("event=peer_conn_closed reason={} from={} remote={}", reason, from, conn->remote);
      break;
  }
}

}  // namespace synod::env
