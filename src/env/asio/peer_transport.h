// PeerTransport: the real node's node-to-node transport over TCP, on Asio. It carries opaque
// messages (byte strings) between nodes; what they mean — Raft messages in their group
// envelopes, forwarded client requests — is the cluster layer's business (cluster/peer_wire.h),
// so this layer knows nothing of Raft or of storage formats.
//
// Threading: everything runs on the thread that runs the io_context (the node's core thread);
// there are no locks. Every public method, Send() included, may be called only from that
// thread, and the callbacks run on it too. Callbacks may call back into the transport (Send,
// SetPeer, RemovePeer, even Stop).
//
// Connections: each node dials each known peer for its OWN outgoing messages (one outgoing TCP
// connection per peer, TCP_NODELAY) and accepts connections on which it only receives. One
// direction per connection keeps both ends simple: no tie-breaking between two nodes dialling
// each other, and a receiver never has to route replies. When a dial fails or a connection
// drops, the peer is redialled after an exponential backoff with jitter (backoff_min_ms doubling
// up to backoff_max_ms, then uniformly in [delay/2, delay] so that restarted nodes do not dial in
// lockstep). UnreachableFn(peer) is called at most once per failed attempt, and also when a
// message is dropped because the peer is down and its queue is full (again at most once per
// attempt, so that Raft is told without being flooded by a burst of drops). An outgoing connection
// keeps a read posted although the peer never writes on it: its completion is how a close is
// noticed.
//
// Framing (peer_wire below): each frame is a 4-byte little-endian payload length, the 4-byte
// CRC-32C of the payload, a 1-byte frame type, then the payload. The first frame on every
// connection is a hello from the dialer (magic, protocol version, cluster id, from-node id,
// to-node id, the dialer's advertise address). The acceptor refuses another cluster id
// (`event=peer_refused reason=cluster_mismatch`, warn) or another to-node id
// (`reason=wrong_node`) and closes; a bad magic, version, CRC, an oversized frame, a truncated
// frame is logged and closes the connection. Nothing from the
// network can crash the node or make it allocate an attacker-chosen size up front: lengths are
// checked against the limits first and a payload buffer grows only as its bytes arrive. A
// valid hello calls PeerAddressFn(from, advertise_address). An accepted connection reads
// whatever has arrived into a buffer of its own (2 KiB until the hello, then 64 KiB) and cuts
// the frames out of it, decoding whole messages where they lie: one recv per batch of
// messages rather than two per frame. A payload larger than the buffer is read straight into
// its destination, at most 1 MiB per read.
//
// Batching: Send() encodes the message into the peer's pending buffer and, if no flush is
// scheduled, posts one; the flush hands everything pending for the peer to one async_write, so
// all messages of one event-loop round go out together. While a write is in progress new
// messages accumulate for the next write. A message whose encoding exceeds chunk_bytes goes out
// as chunk frames, which the receiver reassembles up to message_bytes_max.
//
// Ownership: the transport owns its sockets and timers; the io_context must outlive it. The
// objects of a connection are shared with its pending Asio handlers, which check a `closed`
// flag before touching the transport, so the transport may be destroyed while handlers are
// still queued.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "common/ids.h"
#include "common/log.h"
#include "common/status.h"
#include "env/asio/steady_clock.h"
#include "env/random.h"

namespace synod::env {

// The wire format of peer connections; public so that tests and tools can speak it.
namespace peer_wire {

// u32 payload length, u32 CRC-32C of the payload, u8 frame type; all little-endian.
inline constexpr size_t kFrameHeaderBytes = 9;
inline constexpr uint32_t kHelloMagic = 0x50444E53;  // "SNDP" on the wire
inline constexpr uint16_t kProtocolVersion = 1;
// A hello is tiny; bounding it keeps an unauthenticated connection from making us allocate.
inline constexpr size_t kHelloBytesMax = 1024;

enum class FrameType : uint8_t {
  kHello = 1,      // the dialer's Hello; first frame of every connection, and only there
  kMessage = 2,    // one whole message (opaque bytes)
  kChunk = 3,      // a part of a message; more parts follow
  kLastChunk = 4,  // the final part of a chunked message
};

struct FrameHeader {
  uint32_t payload_bytes = 0;
  uint32_t crc = 0;
  uint8_t type = 0;  // raw: a peer may send a value that is no FrameType
};

struct Hello {
  uint64_t cluster_id = 0;
  NodeId from;
  NodeId to;
  std::string advertise_address;
};

// Appends one frame (header and payload) to *out. REQUIRES: payload.size() <= UINT32_MAX.
void AppendFrame(FrameType type, std::string_view payload, std::string* out);
// Parses a frame header. REQUIRES: `bytes` holds kFrameHeaderBytes.
FrameHeader DecodeFrameHeader(const unsigned char* bytes);

// The payload of a hello frame (magic and version included).
// REQUIRES: the address is at most kHelloBytesMax - 32 bytes long.
std::string EncodeHello(const Hello& hello);
// kInvalidArgument for a bad magic, an unsupported version, or a payload of the wrong length.
Result<Hello> DecodeHello(std::string_view payload);

}  // namespace peer_wire

struct PeerTransportOptions {
  NodeId self;
  // Connections from another cluster are refused; guards against a mis-addressed node.
  uint64_t cluster_id = 0;
  // "host:port" to accept peer connections on; port 0 = any (tests).
  std::string listen_address;
  // What we tell peers to dial us on. Defaults to the bound address, which is useless to peers
  // when listening on a wildcard address such as 0.0.0.0: set it then.
  std::string advertise_address;
  // Large messages (snapshots) go out in chunks of this size. REQUIRES: 0 < chunk_bytes < 4 GiB.
  size_t chunk_bytes = 1 << 20;
  // A reassembled message larger than this closes the connection (and a larger outgoing one is
  // dropped); it bounds the memory one peer can make us hold.
  size_t message_bytes_max = 1ull << 30;
  // Per peer: messages beyond this many pending bytes, while the peer is slow or down, are
  // dropped (Raft retries). A message always fits into an empty queue, and one larger than this
  // bound (a snapshot) into any queue that is not full.
  size_t queue_bytes_max = 64 << 20;
  // Reconnect backoff, exponential with jitter. REQUIRES: 0 < backoff_min_ms <= backoff_max_ms.
  int64_t backoff_min_ms = 50;
  int64_t backoff_max_ms = 2000;
};

class PeerTransport final {
 public:
  // A message from `from` (the node id its connection's hello gave). `payload` is valid only
  // during the call.
  using ReceiveFn = std::function<void(NodeId from, std::string_view payload)>;
  using UnreachableFn = std::function<void(NodeId)>;  // a send to this peer failed / conn. lost
  // A peer's hello told us the address it can be dialled on.
  using PeerAddressFn = std::function<void(NodeId, const std::string&)>;

  PeerTransport(asio::io_context& io, PeerTransportOptions opts, Logger logger,
                ReceiveFn on_receive, UnreachableFn on_unreachable, PeerAddressFn on_peer_address);
  ~PeerTransport();

  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  // Binds and listens, then dials the peers already set. kIoError "cannot listen on ADDR:
  // Address already in use" (or the OS's other reason); kInvalidArgument for a malformed
  // listen address or an advertise address over 512 bytes; kFailedPrecondition when called
  // twice or after Stop.
  Status Start();
  // Closes the listener and every connection and drops everything pending. Safe to call twice;
  // the destructor calls it. A stopped transport cannot be started again.
  void Stop();
  // "IP:PORT" of the listener after a successful Start; empty before.
  std::string bound_address() const { return bound_address_; }

  // Adds a peer or updates where to dial it (an address change redials at once, keeping the
  // pending messages). Before Start the peer is only recorded.
  void SetPeer(NodeId id, std::string address);
  // Forgets a peer: closes its outgoing connection and drops its pending messages.
  void RemovePeer(NodeId id);

  // Sends `payload` to `to` as one message; never blocks. Dropped (with a debug log) if the peer
  // is unknown, if it is blocked, if its queue is full, if the payload exceeds
  // message_bytes_max, or if the transport is not started.
  void Send(NodeId to, std::string_view payload);

  // Test-controlled fault hook (the node exposes it on its admin port): messages to and from
  // these peers are dropped silently, as in a network partition. Empty set = no faults.
  void SetBlockedPeers(std::set<NodeId> peers) { blocked_ = std::move(peers); }

  struct PeerStats {
    NodeId id;
    std::string address;             // where we dial it, or else the address its hello advertised
    bool connected = false;          // our outgoing connection is established
    int64_t last_received_ns = 0;    // steady clock of the last delivered message; 0 if never
    uint64_t messages_sent = 0;      // written to the socket
    uint64_t messages_received = 0;  // delivered to ReceiveFn
    uint64_t bytes_sent = 0;         // wire bytes, frame headers and hellos included
    uint64_t bytes_received = 0;
    uint64_t messages_dropped = 0;  // either direction: blocked, queue full, lost in a reset...
  };
  // One entry per peer set or heard from, sorted by id.
  std::vector<PeerStats> Stats() const;

 private:
  struct OutPeer;  // our outgoing connection to one peer and its queue
  struct InConn;   // one accepted connection
  struct Counters {
    std::string advertised_address;
    int64_t last_received_ns = 0;
    uint64_t messages_sent = 0, messages_received = 0, bytes_sent = 0, bytes_received = 0;
    uint64_t messages_dropped = 0;
  };
  enum class State { kNew, kStarted, kStopped };

  // Outgoing side.
  void Dial(const std::shared_ptr<OutPeer>& peer);
  void Connect(const std::shared_ptr<OutPeer>& peer, std::vector<asio::ip::tcp::endpoint> eps);
  void OnConnected(const std::shared_ptr<OutPeer>& peer);
  void WatchForClose(const std::shared_ptr<OutPeer>& peer);
  void ScheduleFlush(const std::shared_ptr<OutPeer>& peer);
  void Flush(const std::shared_ptr<OutPeer>& peer);
  void OnWritten(const std::shared_ptr<OutPeer>& peer, size_t bytes);
  void ConnectionFailed(const std::shared_ptr<OutPeer>& peer, std::string_view why);
  // Ends the current attempt or connection: handlers still queued for it become stale, and the
  // frames of an unfinished write are lost.
  void ResetConnection(OutPeer& peer);
  // Marks a peer closed for good (removed, or the transport stopped) and cancels its I/O.
  void ClosePeer(OutPeer& peer);
  int64_t BackoffMs(int failures);

  // Incoming side.
  void Accept();
  void OnAccepted(asio::ip::tcp::socket socket);
  // Reads whatever has arrived into the connection's buffer (or a large payload straight into
  // its destination) and hands it to Consume.
  void Read(const std::shared_ptr<InConn>& conn);
  void OnReadError(const std::shared_ptr<InConn>& conn, const asio::error_code& ec);
  // Moves the unconsumed bytes to the front of the buffer.
  static void CompactInput(InConn& conn);
  // Cuts every complete frame out of the buffer; a partial payload is moved to its destination.
  void Consume(const std::shared_ptr<InConn>& conn);
  // Checks a frame header against the limits; closes the connection when it fails them.
  void OnHeader(const std::shared_ptr<InConn>& conn);
  void ReadPayload(const std::shared_ptr<InConn>& conn);
  void OnFrame(const std::shared_ptr<InConn>& conn, std::string_view payload);
  // The current frame's payload is complete in its destination buffer.
  void OnAssembledFrame(const std::shared_ptr<InConn>& conn);
  void OnHello(const std::shared_ptr<InConn>& conn);
  void OnMessage(const std::shared_ptr<InConn>& conn, std::string_view payload);
  // Closes an accepted connection with one log line at `level`.
  void CloseConn(const std::shared_ptr<InConn>& conn, spdlog::level::level_enum level,
                 std::string_view reason);

  asio::io_context& io_;
  const PeerTransportOptions opts_;
  const Logger log_;
  const ReceiveFn on_receive_;
  const UnreachableFn on_unreachable_;
  const PeerAddressFn on_peer_address_;

  State state_ = State::kNew;
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_timer_;  // pauses accepting after an error such as EMFILE
  // Accept handlers hold a copy; false once stopped, so that they never touch a dead transport.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::string bound_address_;
  std::string advertise_address_;

  std::map<NodeId, std::shared_ptr<OutPeer>> peers_;
  std::map<uint64_t, std::shared_ptr<InConn>> conns_;  // by a local connection number
  uint64_t next_conn_id_ = 1;
  std::map<NodeId, Counters> counters_;
  std::set<NodeId> blocked_;

  SteadyClock clock_;
  Random random_;  // backoff jitter; need not be reproducible on a real node
};

}  // namespace synod::env
