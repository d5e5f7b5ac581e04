// The data types of the Raft core: log entries, persistent state, snapshots and messages.
//
// These are plain values. The raft/ folder never serializes them; the node layer turns them
// into its wire and disk formats. Field comments state each invariant the core relies on.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/ids.h"

namespace synod::raft {

enum class EntryType : uint8_t {
  kNormal,      // application data (possibly empty: a new leader's no-op)
  kConfChange,  // data is an encoded ConfChange (see confchange.h)
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  std::string data;

  // The size counted against byte limits (messages, in-flight window, uncommitted log).
  uint64_t PayloadBytes() const { return data.size(); }
  bool operator==(const Entry&) const = default;
};

// The state that must be durable before any message that depends on it is sent.
struct HardState {
  Term term;
  NodeId vote;  // the candidate voted for in `term`, or kNoNode
  LogIndex commit;

  bool IsEmpty() const { return term == Term(0) && vote == kNoNode && commit == LogIndex(0); }
  bool operator==(const HardState&) const = default;
};

// The membership of a group, as stored in snapshots and returned by ApplyConfChange.
// Invariant: voters ∩ learners = ∅; learners_next ⊆ voters_outgoing; a node is never a learner
// and a voter of the incoming configuration at once.
struct ConfState {
  std::set<NodeId> voters;           // the incoming (or only) voter set
  std::set<NodeId> voters_outgoing;  // non-empty only while in a joint configuration
  std::set<NodeId> learners;
  std::set<NodeId> learners_next;  // voters of the outgoing config that become learners on leave
  bool auto_leave = false;         // leave the joint config automatically once it commits

  bool operator==(const ConfState&) const = default;
};

struct SnapshotMeta {
  LogIndex index;  // the last entry the snapshot covers
  Term term;       // that entry's term
  ConfState conf_state;
  bool operator==(const SnapshotMeta&) const = default;
};

struct Snapshot {
  SnapshotMeta meta;
  std::string data;  // opaque to raft: the state machine's image
  // Local to a node, never sent: nonzero when the state travels beside the Raft message, in a
  // stream the host runs (data is then empty; cluster/snapshot_stream.h). The host reports
  // such a snapshot's outcome (RawNode::ReportSnapshot) whichever way it ends, so a leader
  // never presumes it lost while the follower answers heartbeats during a long transfer.
  uint64_t stream = 0;

  bool IsEmpty() const { return meta.index == LogIndex(0); }
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : uint8_t {
  // Local messages: never sent over the network; used by RawNode to drive the core.
  kHup,          // start an election
  kBeat,         // leader: send heartbeats now
  kProp,         // propose entries (also forwarded follower -> leader)
  kUnreachable,  // the transport could not reach `from`
  kSnapStatus,   // the transport finished (or failed) sending a snapshot to `from`
  kCheckQuorum,  // leader: step down unless a quorum was active
  // Network messages.
  kApp,      // append entries / probe
  kAppResp,  // reply to kApp
  kVote,     // request vote
  kVoteResp,
  kPreVote,  // pre-vote (thesis §9.6): would you vote for me in term+1?
  kPreVoteResp,
  kSnap,  // install snapshot
  kHeartbeat,
  kHeartbeatResp,
  kTransferLeader,  // ask the leader to transfer leadership to `from`
  kTimeoutNow,      // leader -> transferee: campaign now, ignoring the lease
  kReadIndex,       // request a read index (also forwarded follower -> leader)
  kReadIndexResp,
};

const char* MessageTypeName(MessageType t);
bool IsLocalMessage(MessageType t);
bool IsResponseMessage(MessageType t);

struct Message {
  MessageType type = MessageType::kApp;
  NodeId to;
  NodeId from;
  Term term;  // 0 for local messages and for kProp / kReadIndex, which carry no term
  // kApp: the term and index of the entry just before `entries`.
  // kVote/kPreVote: the candidate's last log term and index.
  // kAppResp: the index acknowledged (or, on reject, the rejected index).
  Term log_term;
  LogIndex index;
  std::vector<Entry> entries;
  LogIndex commit;
  std::optional<Snapshot> snapshot;  // kSnap only
  bool reject = false;
  // kAppResp with reject: the follower's hint; the leader probes from (reject_hint, log_term)
  // and so skips a whole conflicting term at once (fast backtracking, thesis §5.3 note).
  LogIndex reject_hint;
  // kReadIndex/kReadIndexResp: the caller's request id; kVote: "transfer" when the election
  // is a leadership transfer (lets it through the lease).
  std::string context;
  // kHeartbeat/kApp: the leader's tick count when sent; echoed in the response. The leader
  // derives its lease from the newest tick acknowledged by a quorum.
  uint64_t sent_tick = 0;
};

// A completed ReadIndex request: once the state machine has applied `index`, a read of it
// is linearizable for the request identified by `context`.
struct ReadState {
  LogIndex index;
  std::string context;
  bool operator==(const ReadState&) const = default;
};

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* RoleName(Role r);

// Volatile state, reported in Ready when it changes; never persisted.
struct SoftState {
  NodeId lead;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

}  // namespace synod::raft
