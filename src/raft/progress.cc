#include "raft/progress.h"

#include <algorithm>

#include "common/assert.h"

namespace synod::raft {

const char* ProgressStateName(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe:
      return "StateProbe";
    case ProgressState::kReplicate:
      return "StateReplicate";
    case ProgressState::kSnapshot:
      return "StateSnapshot";
  }
  return "StateUnknown";
}

Progress::Progress(LogIndex next, size_t inflight_max, uint64_t inflight_bytes_max, bool is_learner)
    : match(0),
      next(next),
      pending_snapshot(0),
      is_learner(is_learner),
      inflights(inflight_max, inflight_bytes_max) {
  SYNOD_ASSERT_MSG(next > LogIndex(0), "next must exceed match, which starts at 0");
}

namespace {

// The part common to every state change: the flow is unpaused and whatever was in flight is
// forgotten, since the new state decides afresh what to send.
void ResetState(Progress* pr, ProgressState state) {
  pr->msg_app_flow_paused = false;
  pr->pending_snapshot = LogIndex(0);
  pr->snapshot_reported = false;
  pr->state = state;
  pr->inflights.Reset();
}

}  // namespace

void Progress::BecomeProbe() {
  if (state == ProgressState::kSnapshot) {
    // The snapshot may have been applied even if its acknowledgement was lost: probing from
    // just after it avoids sending it again when it was.
    const LogIndex snapshot_index = pending_snapshot;
    ResetState(this, ProgressState::kProbe);
    next = std::max(match + 1, snapshot_index + 1);
  } else {
    ResetState(this, ProgressState::kProbe);
    next = match + 1;
  }
  SYNOD_ASSERT(match < next);
}

void Progress::BecomeReplicate() {
  ResetState(this, ProgressState::kReplicate);
  next = match + 1;
}

void Progress::BecomeSnapshot(LogIndex snapshot_index) {
  SYNOD_ASSERT_MSG(snapshot_index > LogIndex(0), "a snapshot covers at least one entry");
  ResetState(this, ProgressState::kSnapshot);
  pending_snapshot = snapshot_index;
}

bool Progress::MaybeUpdate(LogIndex n) {
  if (n <= match) {
    // A stale or duplicate ack; next is already past it since match < next.
    SYNOD_ASSERT(next > n);
    return false;
  }
  match = n;
  next = std::max(next, n + 1);
  msg_app_flow_paused = false;
  return true;
}

void Progress::SentEntries(LogIndex last_index, uint64_t bytes) {
  SYNOD_ASSERT_MSG(last_index + 1 >= next, "an append starts at next");
  switch (state) {
    case ProgressState::kReplicate:
      if (last_index >= next) {
        next = last_index + 1;
        inflights.Add(last_index, bytes);
      }
      // Mirrors the window so that the flag reads the same in every state; IsPaused() in
      // kReplicate consults the window itself.
      msg_app_flow_paused = inflights.Full();
      break;
    case ProgressState::kProbe:
      // Any append in kProbe is a probe: wait for its answer (or a heartbeat response)
      // before sending another.
      msg_app_flow_paused = true;
      break;
    case ProgressState::kSnapshot:
      SYNOD_ASSERT_MSG(false, "appends are not sent while a snapshot is in flight");
      break;
  }
}

bool Progress::MaybeDecrTo(LogIndex rejected, LogIndex match_hint) {
  if (state == ProgressState::kReplicate) {
    // In kReplicate the follower accepted everything up to match, so a rejection at or
    // below it was overtaken by a later success.
    if (rejected <= match) return false;
    // The optimistic stream broke somewhere after match: restart right after it (the
    // caller moves the follower to kProbe).
    next = match + 1;
    return true;
  }
  // Outside kReplicate one append is probed at a time, at next - 1; any other rejection is
  // an answer to an older probe. A best-effort check: reordering is rare.
  if (next - 1 != rejected) return false;
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  msg_app_flow_paused = false;
  SYNOD_ASSERT(match < next);
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe:
      return msg_app_flow_paused;
    case ProgressState::kReplicate:
      return inflights.Full();
    case ProgressState::kSnapshot:
      return true;
  }
  SYNOD_UNREACHABLE();
}

std::string Progress::ToString() const {
  std::string out = ProgressStateName(state);
  out.append(" match=").append(std::to_string(match.value()));
  out.append(" next=").append(std::to_string(next.value()));
  if (is_learner) out.append(" learner");
  if (IsPaused()) out.append(" paused");
  if (pending_snapshot > LogIndex(0)) {
    out.append(" pendingSnap=").append(std::to_string(pending_snapshot.value()));
  }
  if (inflights.Count() > 0) {
    out.append(" inflight=").append(std::to_string(inflights.Count()));
    if (inflights.Full()) out.append("[full]");
  }
  return out;
}

}  // namespace synod::raft
