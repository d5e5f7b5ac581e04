// SnapshotStreams: a node's streamed snapshots, sent and received off the core thread.
//
// A Raft snapshot is the whole state of a shard. Built as one image on the core thread, sent as
// one message and restored on the receiver's core thread, a shard of hundreds of megabytes held
// both nodes' core threads for seconds (every other shard's heartbeats and writes waited), and
// above the transport's 1 GiB message bound it could not move at all. Here it travels beside
// its Raft message instead:
//
//  - The leader's replica hands Raft a snapshot of its *stored* state at an index whose write
//    is durable (Replica::BuildSnapshot with ReplicaOptions::stream_snapshots; the store keeps
//    a RocksDB snapshot of that moment, GroupStorage::TakeStateView). The kSnap message Raft
//    sends carries no image (raft::Snapshot::stream is set) and comes here.
//  - A sender thread reads the shard's records from that view — applied index and meta record
//    first, then its keys in key order, then its sessions — exactly as stored (same keys, same
//    checksummed values on every node), in chunks of `chunk_bytes`. The core thread sends at
//    most `window` chunks not yet acknowledged: flow control end to end, since the receiver
//    acknowledges a chunk once its thread consumed it.
//  - The receiver's thread checks every record (checksum, key range, order) and builds both
//    the state machine's state (kv::StateMachine::LoadState) and the write that stores it (one
//    RocksDB batch that replaces the group's stored state). When the receiving replica is empty
//    and no other replica on the node owns any of the slots (a move's new replica), the thread
//    writes the keys straight into the database as they come instead (after deleting whatever
//    the slots held), unsynced: the install's node write, synced, makes them durable, and the
//    batch carries only the sessions, meta and applied index. A crash before it leaves keys
//    under slots no replica here owns, which the next snapshot's install deletes first; one
//    stream per group is received at a time. Only then does the core thread get
//    the kSnap message, with both deposited beside it (Store: Replica::DepositStreamed,
//    GroupStorage::DepositReceived); the Replica installs the snapshot through Raft as any
//    other, its state riding on the same node write as the snapshot record. The receiver
//    answers kDelivered, and the sender reports the outcome to Raft (Replica::
//    StreamedSnapshotEnded), which is how every streamed snapshot ends: delivered, refused,
//    cancelled or timed out.
//
// Rate: SetRate bounds the bytes per second all outgoing streams send together; a chunk held
// back waits for the next Tick (the node lowers it while its clients' p99 is above target,
// never below what the streamed shards are written at: cluster/logic/throttle.h).
//
// Bounds: at most `streams_out_max` sending and `streams_in_max` receiving at once (more kSnap
// messages wait their turn, for `wait_timeout_ms` at most; more incoming are refused and Raft
// sends again later); a stream that makes no progress for `idle_timeout_ms` ends as failed; a
// chunk out of order, a malformed record, a checksum mismatch or a key outside the shard's
// slots ends it as refused. Nothing is written on the receiver until the whole state checked
// out. A receiver holds the state twice while it builds it (the state machine's form and the
// batch), as the image path did.
//
// Threading: every public method runs on the core thread (the io_context's); each stream has
// one thread of its own, which talks to the core only through the stream's mutex-guarded queue
// and handlers posted to the io_context. Stop() ends every stream and joins every thread.
#pragma once

#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "common/log.h"
#include "common/status.h"
#include "kv/state_machine.h"
#include "raft/types.h"
#include "storage/group_storage.h"

namespace synod::cluster {

// The records of a stream's chunks: [u8 kind][varint key bytes][key][varint value bytes][value],
// key and value as stored in the node's database.
enum class StreamRecord : uint8_t { kApplied = 1, kMeta = 2, kData = 3, kSession = 4 };
void AppendStreamRecord(StreamRecord kind, std::string_view key, std::string_view value,
                        std::string* out);
// Reads the records of one chunk in order. Next returns false at the end of the chunk and sets
// status() (kInvalidArgument) when what follows is not a whole record of a known kind.
class StreamRecordReader {
 public:
  explicit StreamRecordReader(std::string_view in) : in_(in) {}
  bool Next(StreamRecord* kind, std::string_view* key, std::string_view* value);
  const Status& status() const { return status_; }

 private:
  bool ReadVarint(uint64_t* v);
  std::string_view in_;
  Status status_;
};

struct SnapshotStreamOptions {
  size_t chunk_bytes = 1 << 20;
  size_t window = 4;  // chunks sent and not yet acknowledged
  size_t streams_out_max = 2;
  size_t streams_in_max = 2;
  int64_t idle_timeout_ms = 15'000;
  int64_t wait_timeout_ms = 60'000;  // a kSnap waiting for a free sending slot
  kv::Options kv;                    // the state machine's bounds (what the receiver builds)
};

// Where a received stream goes: its group's stored span here, and, when the replica is empty
// and no other replica here owns any of the stream's slots, the engine the receiving thread
// writes the keys straight into as they arrive (else they ride on the install's node write).
struct ReceiveTarget {
  storage::StateSpan span;
  storage::Engine* direct = nullptr;
};

// What the streams need of their node (GroupHost).
struct SnapshotStreamHost {
  std::function<void(NodeId to, std::string payload)> send;
  // A streamed snapshot handed out by `group`'s replica ended (Replica::StreamedSnapshotEnded).
  std::function<void(GroupId group, NodeId to, bool delivered)> ended;
  // The view `group`'s store took for its streamed snapshot (GroupStorage::TakeStateView).
  std::function<std::optional<storage::GroupStorage::StateView>(GroupId group)> take_view;
  // Where a stream of `group`'s state over `range` goes here (see ReceiveTarget), or nullopt
  // when this node holds no replica of it.
  std::function<std::optional<ReceiveTarget>(GroupId group, std::optional<SlotRange> range)>
      target_of;
  // Deposits a received state and delivers its kSnap message (stream set to `local`).
  std::function<Status(GroupId group, raft::Message m, uint64_t local, kv::internal::State state,
                       storage::ReceivedState stored)>
      deliver;
  std::function<int64_t()> now_ms;  // a steady clock
};

struct SnapshotStreamCounters {
  std::atomic<uint64_t> sent{0};  // streams delivered, as sender
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> failed{0};  // streams that ended otherwise, either side
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
};

// A stream under way, for /status.
struct StreamView {
  GroupId group;
  NodeId peer;  // the receiver (sending) or the sender (receiving)
  bool sending = false;
  LogIndex index;      // the snapshot's
  uint64_t bytes = 0;  // chunk bytes so far
  int64_t age_ms = 0;
};

class SnapshotStreams {
 public:
  SnapshotStreams(asio::io_context& io, SnapshotStreamOptions opts, SnapshotStreamHost host,
                  Logger logger);
  ~SnapshotStreams();
  SnapshotStreams(const SnapshotStreams&) = delete;
  SnapshotStreams& operator=(const SnapshotStreams&) = delete;

  // A kSnap message from `group`'s replica with Snapshot::stream set: streams it to m.to.
  void Send(GroupId group, raft::Message m);
  // The stream kinds of peer_wire, from `from`.
  void OnPeerMessage(NodeId from, std::string_view payload);
  // Timeouts, and chunks held back by the rate; call every tick or so.
  void Tick();
  // The most chunk bytes per second sent over every stream together (a token bucket that
  // holds a quarter of a second, or a chunk); 0: no limit (cluster/logic/throttle.h sets it).
  void SetRate(uint64_t bytes_per_second);
  uint64_t rate() const { return rate_; }
  // Ends every stream (senders' as not delivered), joins every thread. Idempotent.
  void Stop();

  std::vector<StreamView> Views() const;
  size_t sending() const { return out_.size(); }
  size_t receiving() const { return in_.size(); }
  const SnapshotStreamCounters& counters() const { return counters_; }

 private:
  struct Outgoing;
  struct Incoming;
  struct Waiting {
    GroupId group;
    raft::Message m;
    storage::GroupStorage::StateView view;
    int64_t since_ms = 0;
  };

  void Start(Waiting w);
  void StartWaiting();
  void Pump(uint64_t id);
  void PumpAll();
  void Refill();
  void EndOut(uint64_t id, bool delivered, std::string_view why);
  void OnAck(NodeId from, std::string_view payload);
  void OnBegin(NodeId from, std::string_view payload);
  void OnChunk(NodeId from, std::string_view payload);
  void OnCancel(NodeId from, std::string_view payload);
  void OnBuilt(NodeId from, uint64_t stream);
  void EndIn(NodeId from, uint64_t stream, bool refuse, std::string_view why);
  void Reap();

  static void Produce(const std::shared_ptr<Outgoing>& o, storage::GroupStorage::StateView view,
                      size_t chunk_bytes, const std::function<void()>& wake);
  static void Build(const std::shared_ptr<Incoming>& in, ReceiveTarget target,
                    const kv::Options& kv, const std::function<void(uint64_t)>& took);

  asio::io_context& io_;
  const SnapshotStreamOptions opts_;
  const SnapshotStreamHost host_;
  Logger logger_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool stopped_ = false;
  uint64_t next_id_ = 1;     // the streams this node sends
  uint64_t next_local_ = 1;  // the deposits this node receives
  std::map<uint64_t, std::shared_ptr<Outgoing>> out_;
  std::vector<Waiting> waiting_;
  std::map<std::pair<NodeId, uint64_t>, std::shared_ptr<Incoming>> in_;
  // Streams ended whose thread may still run: joined once it finished (Reap) or at Stop.
  std::vector<std::shared_ptr<Outgoing>> ended_out_;
  std::vector<std::shared_ptr<Incoming>> ended_in_;
  SnapshotStreamCounters counters_;
  // The rate limit (SetRate): bytes that may go now; may go below zero by a chunk.
  uint64_t rate_ = 0;
  int64_t tokens_ = 0;
  int64_t refilled_ms_ = 0;
};

}  // namespace synod::cluster
