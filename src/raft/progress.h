// Progress: the leader's view of one follower's log (Raft thesis §3.5, etcd's tracker.Progress).
//
// A follower is in one of three states:
//  - kProbe: the leader does not know where the logs match; it sends at most one append per
//    heartbeat interval and waits for the answer to find the match point.
//  - kReplicate: logs match up to `match`; the leader streams appends optimistically, bounded
//    by the inflights window.
//  - kSnapshot: the entries the follower needs were compacted; a snapshot is being sent and
//    nothing else is until it is acknowledged or reported failed.
//
// Invariants: match < next; in kSnapshot, pending_snapshot > 0.
// Thread-safety: none; owned by the leader role.
#pragma once

#include <cstdint>
#include <string>

#include "common/ids.h"
#include "raft/inflights.h"

namespace synod::raft {

enum class ProgressState : uint8_t { kProbe, kReplicate, kSnapshot };
const char* ProgressStateName(ProgressState s);

class Progress {
 public:
  // A new follower whose log is assumed to end at next-1 (probe state).
  Progress(LogIndex next, size_t inflight_max, uint64_t inflight_bytes_max, bool is_learner);

  LogIndex match;  // highest index known to be replicated on the follower
  LogIndex next;   // index of the next entry to send
  ProgressState state = ProgressState::kProbe;
  LogIndex pending_snapshot;  // in kSnapshot: the index of the snapshot being sent
  // In kSnapshot: the leader's tick when it sent the snapshot. A heartbeat sent later and
  // answered while the snapshot is still unacknowledged means the snapshot was lost.
  uint64_t snapshot_sent_tick = 0;
  // In kSnapshot: the snapshot is streamed (Snapshot::stream) and its outcome will be reported,
  // so a heartbeat answered meanwhile says nothing about it.
  bool snapshot_reported = false;
  // True if the follower was heard from since the last check-quorum round.
  bool recent_active = false;
  // In kProbe: an append was sent and no answer has come yet; cleared on heartbeat response.
  bool msg_app_flow_paused = false;
  bool is_learner = false;
  // The newest leader tick the follower acknowledged (see Message::sent_tick); drives leases.
  uint64_t acked_tick = 0;
  // The leader's tick when a heartbeat response last retried appends to this follower
  // (kNeverRetried before the first): at most one retry per tick.
  static constexpr uint64_t kNeverRetried = UINT64_MAX;
  uint64_t heartbeat_retry_tick = kNeverRetried;
  Inflights inflights;

  void BecomeProbe();
  void BecomeReplicate();
  // REQUIRES: snapshot_index > 0.
  void BecomeSnapshot(LogIndex snapshot_index);

  // Called when `n` is acknowledged. Returns false if n was already known (a stale ack).
  // Unpauses the flow and moves next to at least n+1.
  bool MaybeUpdate(LogIndex n);

  // Records that entries up to `last_index` (carrying `bytes`) were sent in one append.
  // In kReplicate this advances `next` optimistically and fills the window; in kProbe it pauses.
  // REQUIRES: state != kSnapshot (IsPaused() is true there); last_index >= next - 1 (the
  // append started at next; last_index == next - 1 means it carried no entries).
  void SentEntries(LogIndex last_index, uint64_t bytes);

  // Called on a rejected append of index `rejected`; `match_hint` is the index (from the
  // follower's hint, resolved by the leader) below which the logs may match. Returns false if
  // the rejection is stale (does not concern the current next), true if next was lowered.
  bool MaybeDecrTo(LogIndex rejected, LogIndex match_hint);

  // True when no append should be sent now (probe in flight, window full, or snapshotting).
  bool IsPaused() const;

  // "StateReplicate match=5 next=6" (+ " learner", " paused", " pendingSnap=N", " inflight=N").
  std::string ToString() const;
};

}  // namespace synod::raft
