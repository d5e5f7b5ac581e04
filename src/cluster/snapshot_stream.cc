#include "cluster/snapshot_stream.h"

#include <fmt/format.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "cluster/peer_wire.h"
#include "common/assert.h"
#include "common/slot.h"
#include "storage/rocks_format.h"

namespace synod::cluster {

// ---- records ----

namespace {

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Chunks produced and not yet sent, per sending stream: the reading thread stays this far
// ahead of the network at most.
constexpr size_t kReadyChunksMax = 2;

}  // namespace

void AppendStreamRecord(StreamRecord kind, std::string_view key, std::string_view value,
                        std::string* out) {
  out->push_back(static_cast<char>(kind));
  AppendVarint(key.size(), out);
  out->append(key);
  AppendVarint(value.size(), out);
  out->append(value);
}

bool StreamRecordReader::ReadVarint(uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {  // at most 10 bytes
    if (in_.empty()) return false;
    const auto byte = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool StreamRecordReader::Next(StreamRecord* kind, std::string_view* key, std::string_view* value) {
  if (!status_.ok() || in_.empty()) return false;
  const auto k = static_cast<uint8_t>(in_.front());
  in_.remove_prefix(1);
  uint64_t key_bytes = 0;
  uint64_t value_bytes = 0;
  if (k < static_cast<uint8_t>(StreamRecord::kApplied) ||
      k > static_cast<uint8_t>(StreamRecord::kSession)) {
    status_ = Status::InvalidArgument(fmt::format("snapshot stream: record of kind {}", k));
    return false;
  }
  if (!ReadVarint(&key_bytes) || key_bytes > in_.size()) {
    status_ = Status::InvalidArgument("snapshot stream: a record's key is truncated");
    return false;
  }
  *key = in_.substr(0, key_bytes);
  in_.remove_prefix(key_bytes);
  if (!ReadVarint(&value_bytes) || value_bytes > in_.size()) {
    status_ = Status::InvalidArgument("snapshot stream: a record's value is truncated");
    return false;
  }
  *value = in_.substr(0, value_bytes);
  in_.remove_prefix(value_bytes);
  *kind = static_cast<StreamRecord>(k);
  return true;
}

// ---- the streams ----

// A stream this node sends. `mu` guards what the reading thread shares with the core.
struct SnapshotStreams::Outgoing {
  uint64_t id = 0;
  GroupId group;
  NodeId to;
  LogIndex index;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> ready;  // chunks read, not yet sent
  bool produced_all = false;      // the last chunk is in `ready` (or was sent)
  bool cancelled = false;
  bool finished = false;  // the thread is done
  Status error;
  // The core's alone.
  uint64_t next_seq = 0;
  size_t in_flight = 0;
  int64_t started_ms = 0;
  int64_t progress_ms = 0;
  uint64_t bytes = 0;
};

// A stream this node receives.
struct SnapshotStreams::Incoming {
  NodeId from;
  uint64_t id = 0;
  GroupId group;
  std::optional<SlotRange> range;  // as the sender declared it
  raft::Message m;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<std::string, bool>> chunks;  // records, last
  bool cancelled = false;
  bool finished = false;
  Status result;
  std::optional<kv::internal::State> state;
  std::optional<storage::ReceivedState> stored;
  // The core's alone.
  uint64_t next_seq = 0;
  int64_t started_ms = 0;
  int64_t progress_ms = 0;
  uint64_t bytes = 0;
};

SnapshotStreams::SnapshotStreams(asio::io_context& io, SnapshotStreamOptions opts,
                                 SnapshotStreamHost host, Logger logger)
    : io_(io), opts_(std::move(opts)), host_(std::move(host)), logger_(std::move(logger)) {
  SYNOD_ASSERT(opts_.chunk_bytes > 0 && opts_.window > 0);
}

SnapshotStreams::~SnapshotStreams() { Stop(); }

void SnapshotStreams::Stop() {
  if (stopped_) return;
  stopped_ = true;
  std::vector<uint64_t> ids;
  for (const auto& [id, o] : out_) ids.push_back(id);
  for (uint64_t id : ids) EndOut(id, /*delivered=*/false, "the node is stopping");
  for (Waiting& w : std::exchange(waiting_, {})) host_.ended(w.group, w.m.to, false);
  std::vector<std::pair<NodeId, uint64_t>> keys;
  for (const auto& [k, in] : in_) keys.push_back(k);
  for (const auto& [from, id] : keys) EndIn(from, id, /*refuse=*/false, "the node is stopping");
  *alive_ = false;
  for (auto& o : ended_out_) {
    if (o->thread.joinable()) o->thread.join();
  }
  for (auto& in : ended_in_) {
    if (in->thread.joinable()) in->thread.join();
  }
  ended_out_.clear();
  ended_in_.clear();
}

std::vector<StreamView> SnapshotStreams::Views() const {
  std::vector<StreamView> out;
  const int64_t now = host_.now_ms();
  for (const auto& [id, o] : out_) {
    out.push_back({o->group, o->to, true, o->index, o->bytes, now - o->started_ms});
  }
  for (const auto& [key, in] : in_) {
    out.push_back(
        {in->group, in->from, false, in->m.snapshot->meta.index, in->bytes, now - in->started_ms});
  }
  return out;
}

// ---- sending ----

void SnapshotStreams::Send(GroupId group, raft::Message m) {
  SYNOD_ASSERT(m.type == raft::MessageType::kSnap && m.snapshot && m.snapshot->stream != 0);
  std::optional<storage::GroupStorage::StateView> view = host_.take_view(group);
  if (stopped_ || !view || view->applied != m.snapshot->meta.index) {
    logger_.Warn("event=snapshot_stream_failed group={} to={} index={} reason=no_view",
                 group.value(), m.to.value(), m.snapshot->meta.index.value());
    counters_.failed.fetch_add(1, std::memory_order_relaxed);
    host_.ended(group, m.to, false);
    return;
  }
  waiting_.push_back(Waiting{group, std::move(m), std::move(*view), host_.now_ms()});
  StartWaiting();
}

void SnapshotStreams::StartWaiting() {
  while (!stopped_ && !waiting_.empty() && out_.size() < opts_.streams_out_max) {
    Waiting w = std::move(waiting_.front());
    waiting_.erase(waiting_.begin());
    Start(std::move(w));
  }
}

void SnapshotStreams::Start(Waiting w) {
  auto o = std::make_shared<Outgoing>();
  o->id = next_id_++;
  o->group = w.group;
  o->to = w.m.to;
  o->index = w.m.snapshot->meta.index;
  o->progress_ms = host_.now_ms();
  o->started_ms = o->progress_ms;
  raft::Message begin = w.m;
  begin.snapshot->stream = 0;
  begin.snapshot->data.clear();
  host_.send(o->to, peer_wire::EncodeSnapBegin(o->id, o->group, w.view.range, begin));
  out_[o->id] = o;
  logger_.Info("event=snapshot_stream_started id={} group={} to={} index={}", o->id,
               o->group.value(), o->to.value(), o->index.value());
  const uint64_t id = o->id;
  std::function<void()> wake = [this, id, alive = std::weak_ptr<bool>(alive_)] {
    asio::post(io_, [this, id, alive] {
      if (auto a = alive.lock(); a && *a) Pump(id);
    });
  };
  o->thread =
      std::thread([o, view = std::move(w.view), bytes = opts_.chunk_bytes,
                   wake = std::move(wake)]() mutable { Produce(o, std::move(view), bytes, wake); });
}

// The reading thread: the stored state's records from the view, in chunks.
void SnapshotStreams::Produce(const std::shared_ptr<Outgoing>& o,
                              storage::GroupStorage::StateView view, size_t chunk_bytes,
                              const std::function<void()>& wake) {
  std::string chunk;
  const Status cancelled = Status::Unavailable("cancelled");
  // Hands the chunk to the core, waiting while kReadyChunksMax wait there. False: cancelled.
  const auto hand = [&](bool last) {
    {
      std::unique_lock lock(o->mu);
      o->cv.wait(lock, [&] { return o->cancelled || o->ready.size() < kReadyChunksMax; });
      if (o->cancelled) return false;
      o->ready.push_back(std::move(chunk));
      o->produced_all = last;
    }
    chunk.clear();
    wake();
    return true;
  };
  const auto run = [&]() -> Status {
    const storage::StateKeys& k = view.keys;
    Result<std::optional<std::string>> applied = view.view->Get(k.applied, "the applied index");
    if (!applied.ok()) return applied.status();
    if (!applied->has_value()) return Status::Corruption("the stored state has no applied index");
    Result<LogIndex> index = storage::GroupStorage::DecodeApplied(k.applied, **applied);
    if (!index.ok()) return index.status();
    if (*index != view.applied) {
      return Status::Unavailable(
          fmt::format("the stored state moved on to {} before the view", index->value()));
    }
    Result<std::optional<std::string>> meta = view.view->Get(k.meta, "the meta record");
    if (!meta.ok()) return meta.status();
    if (!meta->has_value()) return Status::Corruption("the stored state has no meta record");
    AppendStreamRecord(StreamRecord::kApplied, k.applied, **applied, &chunk);
    AppendStreamRecord(StreamRecord::kMeta, k.meta, **meta, &chunk);
    const auto add = [&](StreamRecord kind) {
      return [&, kind](std::string_view key, std::string_view value) -> Status {
        AppendStreamRecord(kind, key, value, &chunk);
        if (chunk.size() >= chunk_bytes && !hand(false)) return cancelled;
        return Status::Ok();
      };
    };
    std::vector<storage::ScanRange> ranges;
    ranges.push_back({k.data_begin, k.data_end, add(StreamRecord::kData)});
    ranges.push_back({k.sessions_begin, k.sessions_end, add(StreamRecord::kSession)});
    SYNOD_RETURN_IF_ERROR(view.view->Scan(ranges));
    if (!hand(true)) return cancelled;
    return Status::Ok();
  };
  const Status s = run();
  view.view.reset();  // the database snapshot goes before the thread reports
  {
    std::lock_guard lock(o->mu);
    if (!s.ok() && o->error.ok()) o->error = s;
    o->finished = true;
  }
  wake();
}

void SnapshotStreams::Pump(uint64_t id) {
  Reap();
  auto it = out_.find(id);
  if (it == out_.end()) return;
  std::shared_ptr<Outgoing> o = it->second;
  std::vector<std::pair<std::string, bool>> send;
  Status error;
  {
    std::lock_guard lock(o->mu);
    while (o->in_flight + send.size() < opts_.window && !o->ready.empty() &&
           (rate_ == 0 || tokens_ > 0)) {
      std::string chunk = std::move(o->ready.front());
      o->ready.pop_front();
      if (rate_ != 0) tokens_ -= static_cast<int64_t>(chunk.size());
      send.emplace_back(std::move(chunk), o->produced_all && o->ready.empty());
    }
    error = o->error;
  }
  o->cv.notify_all();
  for (auto& [chunk, last] : send) {
    o->bytes += chunk.size();
    counters_.bytes_sent.fetch_add(chunk.size(), std::memory_order_relaxed);
    host_.send(o->to, peer_wire::EncodeSnapChunk(o->id, o->next_seq++, last, chunk));
    ++o->in_flight;
  }
  if (!error.ok()) EndOut(id, /*delivered=*/false, error.ToString());
}

void SnapshotStreams::PumpAll() {
  std::vector<uint64_t> ids;
  for (const auto& [id, o] : out_) ids.push_back(id);
  for (uint64_t id : ids) Pump(id);  // Pump may end a stream: by id
}

void SnapshotStreams::Refill() {
  const int64_t now = host_.now_ms();
  const int64_t elapsed = std::max<int64_t>(0, now - refilled_ms_);
  refilled_ms_ = now;
  if (rate_ == 0) return;
  const auto burst = static_cast<int64_t>(std::max<uint64_t>(rate_ / 4, opts_.chunk_bytes));
  const auto added = static_cast<int64_t>(
      std::min<uint64_t>(static_cast<uint64_t>(elapsed) * rate_ / 1000, uint64_t{1} << 40));
  tokens_ = std::min(tokens_ + added, burst);
}

void SnapshotStreams::SetRate(uint64_t bytes_per_second) {
  if (bytes_per_second == rate_) return;
  Refill();
  if (rate_ == 0) tokens_ = 0;  // a limit starts from an empty bucket
  logger_.Debug("event=snapshot_stream_rate bytes_per_second={} was={}", bytes_per_second, rate_);
  rate_ = bytes_per_second;
  if (rate_ == 0) PumpAll();
}

void SnapshotStreams::OnAck(NodeId from, std::string_view payload) {
  Result<peer_wire::SnapAck> a = peer_wire::DecodeSnapAck(payload);
  if (!a.ok()) {
    logger_.Warn("event=snapshot_stream_bad_message from={} error=\"{}\"", from.value(),
                 a.status().message());
    return;
  }
  auto it = out_.find(a->stream);
  if (it == out_.end() || it->second->to != from) return;  // ended already
  Outgoing& o = *it->second;
  o.progress_ms = host_.now_ms();
  switch (a->code) {
    case peer_wire::SnapAckCode::kChunkTaken:
      if (o.in_flight > 0) --o.in_flight;
      return Pump(a->stream);
    case peer_wire::SnapAckCode::kDelivered:
      return EndOut(a->stream, /*delivered=*/true, "");
    case peer_wire::SnapAckCode::kRefused:
      return EndOut(a->stream, /*delivered=*/false, "refused by the receiver");
  }
}

void SnapshotStreams::EndOut(uint64_t id, bool delivered, std::string_view why) {
  auto it = out_.find(id);
  if (it == out_.end()) return;
  std::shared_ptr<Outgoing> o = it->second;
  out_.erase(it);
  {
    std::lock_guard lock(o->mu);
    o->cancelled = true;
  }
  o->cv.notify_all();
  if (delivered) {
    counters_.sent.fetch_add(1, std::memory_order_relaxed);
    logger_.Info("event=snapshot_stream_sent id={} group={} to={} index={} bytes={}", o->id,
                 o->group.value(), o->to.value(), o->index.value(), o->bytes);
  } else {
    counters_.failed.fetch_add(1, std::memory_order_relaxed);
    logger_.Warn("event=snapshot_stream_failed id={} group={} to={} index={} bytes={} error=\"{}\"",
                 o->id, o->group.value(), o->to.value(), o->index.value(), o->bytes, why);
    host_.send(o->to, peer_wire::EncodeSnapCancel(o->id));
  }
  ended_out_.push_back(o);
  host_.ended(o->group, o->to, delivered);
  StartWaiting();
}

// ---- receiving ----

void SnapshotStreams::OnPeerMessage(NodeId from, std::string_view payload) {
  if (stopped_) return;
  switch (static_cast<peer_wire::Kind>(peer_wire::KindOf(payload))) {
    case peer_wire::Kind::kSnapBegin:
      return OnBegin(from, payload);
    case peer_wire::Kind::kSnapChunk:
      return OnChunk(from, payload);
    case peer_wire::Kind::kSnapAck:
      return OnAck(from, payload);
    case peer_wire::Kind::kSnapCancel:
      return OnCancel(from, payload);
    default:
      return;
  }
}

void SnapshotStreams::OnBegin(NodeId from, std::string_view payload) {
  Result<peer_wire::SnapBegin> b = peer_wire::DecodeSnapBegin(payload);
  if (!b.ok()) {
    logger_.Warn("event=snapshot_stream_bad_message from={} error=\"{}\"", from.value(),
                 b.status().message());
    return;
  }
  const auto refuse = [&](std::string_view why) {
    counters_.failed.fetch_add(1, std::memory_order_relaxed);
    logger_.Info("event=snapshot_stream_refused from={} id={} group={} reason=\"{}\"", from.value(),
                 b->stream, b->group.value(), why);
    host_.send(from, peer_wire::EncodeSnapAck({b->stream, 0, peer_wire::SnapAckCode::kRefused}));
  };
  if (b->message.from != from) return refuse("the message is not the sender's");
  if (in_.contains({from, b->stream})) return;  // a repeat
  if (in_.size() >= opts_.streams_in_max) return refuse("busy receiving other snapshots");
  for (const auto& [key, other] : in_) {
    // Two streams into the same group, or over the same slots, must not write at once.
    if (other->group == b->group ||
        (other->range && b->range && other->range->Overlaps(*b->range))) {
      return refuse("receiving another snapshot of the group or its slots");
    }
  }
  std::optional<ReceiveTarget> target = host_.target_of(b->group, b->range);
  if (!target) return refuse("no replica of the group here");
  auto in = std::make_shared<Incoming>();
  in->from = from;
  in->id = b->stream;
  in->group = b->group;
  in->range = b->range;
  in->m = std::move(b->message);
  in->progress_ms = host_.now_ms();
  in->started_ms = in->progress_ms;
  in_[{from, in->id}] = in;
  logger_.Info("event=snapshot_stream_receiving from={} id={} group={} index={} direct={}",
               from.value(), in->id, in->group.value(), in->m.snapshot->meta.index.value(),
               target->direct != nullptr);
  const uint64_t id = in->id;
  // A chunk taken: acknowledged from the core thread. The thread's end: OnBuilt.
  std::function<void(uint64_t)> took = [this, from, id,
                                        alive = std::weak_ptr<bool>(alive_)](uint64_t seq) {
    asio::post(io_, [this, from, id, seq, alive] {
      if (auto a = alive.lock(); !a || !*a) return;
      if (seq == UINT64_MAX) return OnBuilt(from, id);
      auto it = in_.find({from, id});
      if (it == in_.end()) return;
      it->second->progress_ms = host_.now_ms();
      host_.send(from, peer_wire::EncodeSnapAck({id, seq, peer_wire::SnapAckCode::kChunkTaken}));
    });
  };
  in->thread = std::thread([in, target = *target, kv = opts_.kv, took = std::move(took)] {
    Build(in, target, kv, took);
  });
}

void SnapshotStreams::OnChunk(NodeId from, std::string_view payload) {
  Result<peer_wire::SnapChunk> c = peer_wire::DecodeSnapChunk(payload);
  if (!c.ok()) {
    logger_.Warn("event=snapshot_stream_bad_message from={} error=\"{}\"", from.value(),
                 c.status().message());
    return;
  }
  auto it = in_.find({from, c->stream});
  if (it == in_.end()) return;  // ended (and refused) already
  Incoming& in = *it->second;
  if (c->seq != in.next_seq) {
    return EndIn(from, c->stream, /*refuse=*/true,
                 fmt::format("chunk {} came where {} was expected", c->seq, in.next_seq));
  }
  ++in.next_seq;
  in.bytes += c->records.size();
  counters_.bytes_received.fetch_add(c->records.size(), std::memory_order_relaxed);
  in.progress_ms = host_.now_ms();
  {
    std::lock_guard lock(in.mu);
    in.chunks.emplace_back(std::string(c->records), c->last);
  }
  in.cv.notify_all();
}

void SnapshotStreams::OnCancel(NodeId from, std::string_view payload) {
  Result<uint64_t> id = peer_wire::DecodeSnapCancel(payload);
  if (!id.ok()) return;
  EndIn(from, *id, /*refuse=*/false, "cancelled by the sender");
}

namespace {

// The receiving thread's view of its chunks: records one after another, across chunks, until
// the last chunk ends.
class ChunkRecords {
 public:
  explicit ChunkRecords(std::function<bool(std::string*, bool*)> next_chunk)
      : next_chunk_(std::move(next_chunk)) {}

  // False at the end of the stream or on an error (status()).
  bool Next(StreamRecord* kind, std::string_view* key, std::string_view* value) {
    for (;;) {
      if (reader_ && reader_->Next(kind, key, value)) return true;
      if (reader_ && !reader_->status().ok()) {
        status_ = reader_->status();
        return false;
      }
      if (last_) return false;
      if (!next_chunk_(&chunk_, &last_)) {
        status_ = Status::Unavailable("the stream was cancelled");
        return false;
      }
      reader_.emplace(chunk_);
    }
  }
  const Status& status() const { return status_; }

 private:
  std::function<bool(std::string*, bool*)> next_chunk_;
  std::string chunk_;
  bool last_ = false;
  std::optional<StreamRecordReader> reader_;
  Status status_;
};

}  // namespace

// The receiving thread: checks every record and builds the state and its stored form.
void SnapshotStreams::Build(const std::shared_ptr<Incoming>& in, ReceiveTarget target,
                            const kv::Options& kv_opts, const std::function<void(uint64_t)>& took) {
  storage::StateSpan span = target.span;
  // Keys written straight into the engine (target.direct), in batches of about a chunk.
  constexpr size_t kDirectBatchBytes = 1 << 20;
  rocksdb::WriteBatch direct;
  Status direct_failed;
  const auto flush_direct = [&] {
    if (target.direct == nullptr || direct.Count() == 0 || !direct_failed.ok()) return;
    direct_failed = target.direct->WriteNoSync(&direct);
    direct.Clear();
  };
  uint64_t seq = 0;
  ChunkRecords records([&](std::string* chunk, bool* last) {
    {
      std::unique_lock lock(in->mu);
      in->cv.wait(lock, [&] { return in->cancelled || !in->chunks.empty(); });
      if (in->cancelled) return false;
      *chunk = std::move(in->chunks.front().first);
      *last = in->chunks.front().second;
      in->chunks.pop_front();
    }
    took(seq++);
    return true;
  });
  const LogIndex index = in->m.snapshot->meta.index;
  storage::ReceivedState stored;
  kv::StateMachine sm(kv_opts);
  const auto run = [&]() -> Status {
    StreamRecord kind{};
    std::string_view key;
    std::string_view value;
    storage::StateKeys k = storage::GroupStorage::KeysOf(in->group, span);
    // The applied index and the meta record come first.
    if (!records.Next(&kind, &key, &value) || kind != StreamRecord::kApplied || key != k.applied) {
      return records.status().ok() ? Status::Corruption(
                                         "the stream does not start with the "
                                         "applied index")
                                   : records.status();
    }
    Result<LogIndex> applied = storage::GroupStorage::DecodeApplied(key, value);
    if (!applied.ok()) return applied.status();
    if (*applied != index) {
      return Status::Corruption(fmt::format("the streamed state is at {}, its snapshot at {}",
                                            applied->value(), index.value()));
    }
    const std::string applied_record(value);
    if (!records.Next(&kind, &key, &value) || kind != StreamRecord::kMeta || key != k.meta) {
      return records.status().ok() ? Status::Corruption("the stream has no meta record second")
                                   : records.status();
    }
    Result<std::string_view> meta = storage::format::Unframe(key, value, "the meta");
    if (!meta.ok()) return meta.status();
    const std::string meta_record(value);
    const std::string meta_payload(*meta);
    Result<std::optional<SlotRange>> range = kv::MetaRange(meta_payload);
    if (!range.ok()) return range.status();
    if (span.kind == storage::StateSpan::Kind::kSlots) {
      const SlotRange r = range->value_or(SlotRange{0, kSlotCount - 1});
      span = storage::StateSpan::Slots(r.first, r.last);
      k = storage::GroupStorage::KeysOf(in->group, span);
      // The slots the host judged safe to write into are the ones declared at the start.
      if (target.direct != nullptr &&
          (!in->range || in->range->first != r.first || in->range->last != r.last)) {
        return Status::Corruption("the streamed state's slots are not the ones declared");
      }
    }
    // The stored state is replaced whole, as a received image's reset does: its keys now (when
    // written straight into the engine) or in the install's batch.
    if (target.direct != nullptr) {
      (void)direct.DeleteRange(k.data_begin, k.data_end);
      flush_direct();
    } else {
      (void)stored.batch.DeleteRange(k.data_begin, k.data_end);
    }
    (void)stored.batch.DeleteRange(k.sessions_begin, k.sessions_end);
    Status bad;
    std::optional<std::tuple<StreamRecord, std::string_view, std::string_view>> held;
    const auto next = [&](StreamRecord want, std::string* out_key, std::string* out_value,
                          uint64_t* client) {
      if (!held) {
        if (!records.Next(&kind, &key, &value)) return false;
        held.emplace(kind, key, value);
      }
      const auto [rk, rkey, rvalue] = *held;
      if (rk != want) {
        if (want == StreamRecord::kData && rk == StreamRecord::kSession) return false;  // next
        bad = Status::Corruption("the stream's records are out of order");
        return false;
      }
      held.reset();
      const std::string& begin = want == StreamRecord::kData ? k.data_begin : k.sessions_begin;
      const std::string& end = want == StreamRecord::kData ? k.data_end : k.sessions_end;
      if (rkey < std::string_view(begin) || rkey >= std::string_view(end)) {
        bad = Status::Corruption("a streamed record lies outside the shard's keys");
        return false;
      }
      Result<std::string_view> payload =
          storage::format::Unframe(rkey, rvalue, "a streamed record");
      if (!payload.ok()) {
        bad = payload.status();
        return false;
      }
      if (want == StreamRecord::kData && target.direct != nullptr) {
        (void)direct.Put(rkey, rvalue);
        if (direct.GetDataSize() >= kDirectBatchBytes) flush_direct();
      } else {
        (void)stored.batch.Put(rkey, rvalue);
      }
      if (want == StreamRecord::kData) {
        out_key->assign(rkey.substr(k.data_prefix));
      } else {
        if (rkey.size() != k.session_prefix + 8) {
          bad = Status::Corruption("a streamed session's key is malformed");
          return false;
        }
        uint64_t id = 0;
        for (size_t i = 0; i < 8; ++i) {
          id = (id << 8) | static_cast<uint8_t>(rkey[k.session_prefix + i]);
        }
        *client = id;
      }
      out_value->assign(*payload);
      return true;
    };
    uint64_t unused = 0;
    Status loaded = sm.LoadState(
        *applied, meta_payload,
        [&](std::string* key_out, std::string* value_out) {
          return next(StreamRecord::kData, key_out, value_out, &unused);
        },
        [&](uint64_t* client, std::string* session) {
          std::string unused_key;
          return next(StreamRecord::kSession, &unused_key, session, client);
        });
    if (!bad.ok()) return bad;
    if (!records.status().ok()) return records.status();
    if (!loaded.ok()) return loaded;
    flush_direct();
    if (!direct_failed.ok()) return direct_failed;
    if (held || records.Next(&kind, &key, &value)) {
      return Status::Corruption("the stream has records after its sessions");
    }
    if (!records.status().ok()) return records.status();
    (void)stored.batch.Put(k.meta, meta_record);
    (void)stored.batch.Put(k.applied, applied_record);
    stored.applied = *applied;
    stored.meta = meta_payload;
    return Status::Ok();
  };
  Status s = run();
  {
    std::lock_guard lock(in->mu);
    in->result = s;
    if (s.ok()) {
      in->state = sm.ReleaseState();
      in->stored = std::move(stored);
    }
    in->finished = true;
  }
  took(UINT64_MAX);
}

void SnapshotStreams::OnBuilt(NodeId from, uint64_t stream) {
  Reap();
  auto it = in_.find({from, stream});
  if (it == in_.end()) return;
  std::shared_ptr<Incoming> in = it->second;
  Status s;
  {
    std::lock_guard lock(in->mu);
    s = in->result;
  }
  if (!s.ok()) return EndIn(from, stream, /*refuse=*/true, s.ToString());
  const uint64_t local = next_local_++;
  raft::Message m = in->m;
  m.snapshot->stream = local;
  s = host_.deliver(in->group, std::move(m), local, std::move(*in->state), std::move(*in->stored));
  in->state.reset();
  in->stored.reset();
  if (!s.ok()) return EndIn(from, stream, /*refuse=*/true, s.ToString());
  in_.erase(it);
  ended_in_.push_back(in);
  counters_.received.fetch_add(1, std::memory_order_relaxed);
  logger_.Info("event=snapshot_stream_received from={} id={} group={} index={} bytes={}",
               from.value(), stream, in->group.value(), in->m.snapshot->meta.index.value(),
               in->bytes);
  host_.send(from, peer_wire::EncodeSnapAck({stream, 0, peer_wire::SnapAckCode::kDelivered}));
}

void SnapshotStreams::EndIn(NodeId from, uint64_t stream, bool refuse, std::string_view why) {
  auto it = in_.find({from, stream});
  if (it == in_.end()) return;
  std::shared_ptr<Incoming> in = it->second;
  in_.erase(it);
  {
    std::lock_guard lock(in->mu);
    in->cancelled = true;
  }
  in->cv.notify_all();
  ended_in_.push_back(in);
  counters_.failed.fetch_add(1, std::memory_order_relaxed);
  logger_.Warn("event=snapshot_stream_dropped from={} id={} group={} bytes={} error=\"{}\"",
               from.value(), stream, in->group.value(), in->bytes, why);
  if (refuse) {
    host_.send(from, peer_wire::EncodeSnapAck({stream, 0, peer_wire::SnapAckCode::kRefused}));
  }
}

// ---- timeouts and threads ----

void SnapshotStreams::Tick() {
  if (stopped_) return;
  Reap();
  if (rate_ != 0) {
    Refill();
    PumpAll();
  }
  const int64_t now = host_.now_ms();
  std::vector<uint64_t> stalled;
  for (const auto& [id, o] : out_) {
    if (now - o->progress_ms > opts_.idle_timeout_ms) stalled.push_back(id);
  }
  for (uint64_t id : stalled) EndOut(id, /*delivered=*/false, "no progress within the timeout");
  std::vector<std::pair<NodeId, uint64_t>> idle;
  for (const auto& [key, in] : in_) {
    if (now - in->progress_ms > opts_.idle_timeout_ms) idle.push_back(key);
  }
  for (const auto& [from, id] : idle) {
    EndIn(from, id, /*refuse=*/true, "no progress within the timeout");
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (now - it->since_ms <= opts_.wait_timeout_ms) {
      ++it;
      continue;
    }
    counters_.failed.fetch_add(1, std::memory_order_relaxed);
    logger_.Warn("event=snapshot_stream_failed group={} to={} reason=waited_too_long",
                 it->group.value(), it->m.to.value());
    const GroupId group = it->group;
    const NodeId to = it->m.to;
    it = waiting_.erase(it);
    host_.ended(group, to, false);
  }
}

void SnapshotStreams::Reap() {
  std::erase_if(ended_out_, [](const std::shared_ptr<Outgoing>& o) {
    {
      std::lock_guard lock(o->mu);
      if (!o->finished) return false;
    }
    if (o->thread.joinable()) o->thread.join();  // returning now
    return true;
  });
  std::erase_if(ended_in_, [](const std::shared_ptr<Incoming>& in) {
    {
      std::lock_guard lock(in->mu);
      if (!in->finished) return false;
    }
    if (in->thread.joinable()) in->thread.join();
    return true;
  });
}

}  // namespace synod::cluster
