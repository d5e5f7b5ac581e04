// GroupHost's peer messages: the Raft envelope, the notices nodes send each other (leaders,
// shard bytes, quiescence, wakes, beats, removals) and the host side of snapshot streams
// (snapshot_stream.h).
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster/group_host.h"
#include "env/asio/steady_clock.h"

namespace synod::cluster {

using env::SteadyNowNs;
using env::WallNowMs;

void GroupHost::RaftOut::Send(GroupId group, raft::Message msg) {
  if (msg.type == raft::MessageType::kSnap && msg.snapshot && msg.snapshot->stream != 0) {
    return host_->streams_->Send(group, std::move(msg));
  }
  const NodeId to = msg.to;
  host_->transport_->Send(to, peer_wire::EncodeRaft(group, msg));
}

void GroupHost::RaftOut::SendQuiesce(NodeId to, GroupId group, Term term, LogIndex index) {
  host_->transport_->Send(to, peer_wire::EncodeQuiesce({{group, term.value(), index.value()}}));
}

void GroupHost::RaftOut::SendWake(NodeId to, GroupId group) {
  host_->transport_->Send(to, peer_wire::EncodeWake({group}));
}

void GroupHost::RaftOut::SendRemoved(NodeId to, GroupId group, LogIndex index) {
  host_->transport_->Send(to, peer_wire::EncodeRemoved({{group, index.value()}}));
}

void GroupHost::Drop(NodeId from, const char* reason, const Status& s) {
  // A peer of our cluster sent what we cannot use: a bug or another build, not an attack (the
  // hello checked the cluster). Drop it and keep the connection; Raft retransmits what matters
  // and a request's sender retries or times out.
  ++counters_.peer_messages_dropped;
  logger_.Warn("event=peer_message_dropped reason={} from={} error=\"{}\"", reason, from.value(),
               s.message());
}

void GroupHost::OnPeerMessage(NodeId from, std::string_view payload) {
  if (stopped_ || !store_) return;
  switch (static_cast<peer_wire::Kind>(peer_wire::KindOf(payload))) {
    case peer_wire::Kind::kRaft:
      return OnRaftMessage(from, payload);
    case peer_wire::Kind::kRequest:
      return OnRequest(from, payload);
    case peer_wire::Kind::kResponse:
      return OnResponse(from, payload);
    case peer_wire::Kind::kLeaders:
      return OnLeaders(from, payload);
    case peer_wire::Kind::kQuiesce:
      return OnQuiesce(from, payload);
    case peer_wire::Kind::kWake:
      return OnWake(from, payload);
    case peer_wire::Kind::kBeat:
      return OnBeat(from, payload);
    case peer_wire::Kind::kRemoved:
      return OnRemoved(from, payload);
    case peer_wire::Kind::kLoads:
      return OnLoads(from, payload);
    case peer_wire::Kind::kSnapBegin:
    case peer_wire::Kind::kSnapChunk:
    case peer_wire::Kind::kSnapAck:
    case peer_wire::Kind::kSnapCancel:
      return streams_->OnPeerMessage(from, payload);
  }
  Drop(from, "unknown_kind",
       Status::InvalidArgument("kind " + std::to_string(peer_wire::KindOf(payload))));
}

void GroupHost::OnRaftMessage(NodeId from, std::string_view payload) {
  Result<peer_wire::RaftEnvelope> env = peer_wire::DecodeRaft(payload);
  if (!env.ok()) return Drop(from, "undecodable", env.status());
  raft::Message& m = env->message;
  if (m.to != opts_.id || m.from != from) {
    ++counters_.peer_messages_dropped;
    logger_.Info(
        "event=peer_message_dropped reason=misaddressed type={} to={} from={} conn_from={}",
        raft::MessageTypeName(m.type), m.to.value(), m.from.value(), from.value());
    return;
  }
  if (m.type == raft::MessageType::kProp) store_->set_wall_clock_ms(WallNowMs());
  if (!store_->Receive(env->group, std::move(m)).ok()) {
    ++counters_.peer_messages_dropped;
    logger_.Debug("event=peer_message_dropped reason=unknown_group group={} from={}",
                  env->group.value(), from.value());
    return;
  }
  Kick();
}

void GroupHost::OnLeaders(NodeId from, std::string_view payload) {
  Result<std::vector<peer_wire::LeaderNotice>> led = peer_wire::DecodeLeaders(payload);
  if (!led.ok()) return Drop(from, "undecodable_leaders", led.status());
  for (const peer_wire::LeaderNotice& n : *led) map_->NoteLeader(n.group, from, n.term);
}

void GroupHost::OnQuiesce(NodeId from, std::string_view payload) {
  Result<std::vector<peer_wire::QuiesceNotice>> q = peer_wire::DecodeQuiesce(payload);
  if (!q.ok()) return Drop(from, "undecodable_quiesce", q.status());
  for (const peer_wire::QuiesceNotice& n : *q) {
    store_->ReceiveQuiesce(from, n.group, Term(n.term), LogIndex(n.index));
  }
  Kick();
}

void GroupHost::OnWake(NodeId from, std::string_view payload) {
  Result<std::vector<GroupId>> w = peer_wire::DecodeWake(payload);
  if (!w.ok()) return Drop(from, "undecodable_wake", w.status());
  for (GroupId g : *w) store_->ReceiveWake(from, g);
  Kick();
}

void GroupHost::OnRemoved(NodeId from, std::string_view payload) {
  Result<std::vector<peer_wire::RemovedNotice>> r = peer_wire::DecodeRemoved(payload);
  if (!r.ok()) return Drop(from, "undecodable_removal", r.status());
  for (const peer_wire::RemovedNotice& n : *r)
    store_->ReceiveRemoved(from, n.group, LogIndex(n.index));
  Kick();  // Drive() logs and writes the destruction
}

void GroupHost::OnBeat(NodeId from, std::string_view payload) {
  Result<uint8_t> flags = peer_wire::DecodeBeat(payload);
  if (!flags.ok()) return Drop(from, "undecodable_beat", flags.status());
  // The transport noted the time; a node whose storage failed can lead nothing.
  if ((*flags & peer_wire::kBeatStorageFailed) != 0) {
    store_->PeerDown(from);
    Kick();
  }
}

void GroupHost::BeatAndWatchPeers() {
  const uint8_t flags = db_->failure().ok() ? 0 : peer_wire::kBeatStorageFailed;
  const std::string beat = peer_wire::EncodeBeat(flags);
  for (const auto& [id, a] : members_) {
    if (id != opts_.id && !a.peer.empty()) transport_->Send(id, beat);
  }
  const int64_t now = SteadyNowNs();
  const int64_t timeout_ns = opts_.election_ticks * opts_.tick_ms * 1'000'000;
  for (const auto& ps : transport_->Stats()) {
    const bool silent = ps.last_received_ns == 0 || now - ps.last_received_ns >= timeout_ns;
    if (!silent) {
      if (silent_peers_.erase(ps.id) > 0) {
        logger_.Info("event=peer_heard peer={}", ps.id.value());
      }
      continue;
    }
    if (!silent_peers_.insert(ps.id).second) continue;
    if (ps.last_received_ns != 0)
      logger_.Info("event=peer_silent peer={} quiesced_groups={}", ps.id.value(),
                   store_->quiesced_count());
    store_->PeerDown(ps.id);
  }
}

void GroupHost::NoticeLeaders(bool force) {
  // A scan of every group: only when a role changed since the last, or for the periodic notice.
  if (!force && !roles_changed_) return;
  roles_changed_ = false;
  std::set<GroupId> led;
  std::vector<peer_wire::LeaderNotice> notices;
  for (GroupId g : store_->groups()) {
    const raft::Raft& r = store_->replica(g)->raw_node().raft();
    if (r.role() != raft::Role::kLeader) continue;
    led.insert(g);
    notices.push_back({g, r.term().value()});
  }
  if (!force && led == led_) return;
  led_ = std::move(led);
  const std::string msg = peer_wire::EncodeLeaders(notices);
  // Every second, the bytes of the data shards led here, for the meta leader's placement.
  std::string loads;
  if (force) {
    std::vector<peer_wire::LoadNotice> l;
    for (const peer_wire::LeaderNotice& n : notices) {
      if (n.group == kMetaGroup) continue;
      const kv::StateMachine& sm = store_->replica(n.group)->state_machine();
      const peer_wire::LoadNotice load{n.group, sm.keyspace().bytes(),
                                       static_cast<uint64_t>(load_.Rate(n.group) + 0.5),
                                       sm.mergeable(), sm.frozen().has_value()};
      l.push_back(load);
      NoteShardLoad(load);
    }
    if (!l.empty()) loads = peer_wire::EncodeLoads(l);
  }
  for (const auto& [id, a] : members_) {
    if (id == opts_.id || a.peer.empty()) continue;
    transport_->Send(id, msg);
    if (!loads.empty()) transport_->Send(id, loads);
  }
}

void GroupHost::NoteShardLoad(const peer_wire::LoadNotice& load) {
  shard_bytes_[load.group] =
      ShardBytes{load.bytes, ticks_, load.writes_per_second, load.mergeable, load.frozen};
}

const GroupHost::ShardBytes* GroupHost::FreshLoad(GroupId group) const {
  auto it = shard_bytes_.find(group);
  if (it == shard_bytes_.end() || ticks_ > it->second.tick + 5 * kNoticeTicks) return nullptr;
  return &it->second;
}

void GroupHost::OnLoads(NodeId from, std::string_view payload) {
  Result<std::vector<peer_wire::LoadNotice>> l = peer_wire::DecodeLoads(payload);
  if (!l.ok()) return Drop(from, "undecodable_loads", l.status());
  for (const peer_wire::LoadNotice& n : *l) NoteShardLoad(n);
}

// What the snapshot streams need of this node.
SnapshotStreamHost GroupHost::StreamHost() {
  SnapshotStreamHost ssh;
  ssh.send = [this](NodeId to, std::string payload) { transport_->Send(to, std::move(payload)); };
  ssh.ended = [this](GroupId group, NodeId to, bool delivered) {
    if (!store_) return;
    store_->StreamedSnapshotEnded(group, to, delivered);
    Kick();
  };
  ssh.take_view = [this](GroupId group) -> std::optional<storage::GroupStorage::StateView> {
    storage::GroupStorage* gs = store_->storage(group);
    if (gs == nullptr) return std::nullopt;
    return gs->TakeStateView();
  };
  ssh.target_of = [this](GroupId group,
                         std::optional<SlotRange> range) -> std::optional<ReceiveTarget> {
    const storage::GroupStorage* gs = store_->storage(group);
    if (gs == nullptr) return std::nullopt;
    ReceiveTarget t{gs->span(), nullptr};
    // An empty replica (a move's new one) over slots no other replica here owns: its keys may
    // go straight into the database as they arrive.
    if (store_->HoldsNothing(group) && range &&
        gs->span().kind == storage::StateSpan::Kind::kSlots &&
        !store_->SlotsHeldByOthers(group, *range)) {
      t.direct = &db_->engine();
    }
    return t;
  };
  ssh.deliver = [this](GroupId group, raft::Message m, uint64_t local, kv::internal::State state,
                       storage::ReceivedState stored) -> Status {
    if (stopped_) return Status::Unavailable("the node is stopping");
    Replica* r = store_->replica(group);
    storage::GroupStorage* gs = store_->storage(group);
    if (r == nullptr || gs == nullptr) {
      return Status::NotFound("this node holds no replica of group " +
                              std::to_string(group.value()) + " any more");
    }
    gs->DepositReceived(local, std::move(stored));
    r->DepositStreamed(local, std::move(state));
    Status s = store_->Receive(group, std::move(m));
    Kick();
    return s;
  };
  ssh.now_ms = [] { return SteadyNowNs() / 1'000'000; };
  return ssh;
}

void GroupHost::ThrottleStreams() {
  MoveThrottleSample sample;
  sample.interval_ms = static_cast<int64_t>(kThrottleTicks) * opts_.tick_ms;
  sample.p99_ms = client_latency_.P99Ms();
  sample.requests = client_latency_.count();
  client_latency_.Reset();
  const uint64_t sent = streams_->counters().bytes_sent.load(std::memory_order_relaxed);
  sample.sent_bytes = sent - std::exchange(stream_bytes_seen_, sent);
  // The shards streamed from here: what their replicas here applied since the last interval.
  std::map<GroupId, uint64_t> seen;
  for (const StreamView& v : streams_->Views()) {
    const Replica* r = v.sending ? store_->replica(v.group) : nullptr;
    if (r == nullptr || seen.contains(v.group)) continue;
    seen[v.group] = r->applied_bytes();
    auto last = applied_bytes_seen_.find(v.group);
    if (last != applied_bytes_seen_.end() && r->applied_bytes() >= last->second) {
      sample.written_bytes += r->applied_bytes() - last->second;
    }
  }
  applied_bytes_seen_ = std::move(seen);
  const uint64_t before = streams_->rate();
  const uint64_t rate = throttle_.Next(sample);
  if ((rate == 0) != (before == 0)) {  // throttled or not: each rate in between at debug
    logger_.Info("event=move_throttle rate={} was={} p99_ms={:.1f} requests={} floor={}", rate,
                 before, sample.p99_ms, sample.requests, throttle_.floor());
  } else if (rate != before) {
    logger_.Debug("event=move_throttle rate={} was={} p99_ms={:.1f} requests={} floor={}", rate,
                  before, sample.p99_ms, sample.requests, throttle_.floor());
  }
  streams_->SetRate(rate);
}

}  // namespace synod::cluster
