// Quorum arithmetic for majority and joint configurations (Raft thesis §4.3).
//
// Pure functions of a configuration and of what each voter acknowledged. A joint configuration
// decides only when both of its halves decide; an empty majority config is "no constraint"
// (it commits everything and wins every vote), which is what makes a non-joint config a joint
// config with an empty outgoing half.
//
// Thread-safety: values; no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "common/ids.h"

namespace synod::raft {

enum class VoteResult : uint8_t {
  kPending,  // neither won nor lost yet: missing votes may still decide it
  kLost,     // a quorum can no longer be reached
  kWon,      // a quorum voted yes
};
const char* VoteResultName(VoteResult r);

// Reports, for a voter, the largest value it acknowledged (a log index, or a tick for
// leases), or nullopt when nothing is known about that voter (counted as 0).
class AckedIndexer {
 public:
  virtual ~AckedIndexer() = default;
  virtual std::optional<uint64_t> AckedIndex(NodeId id) const = 0;
};

// A set of voters deciding by simple majority.
class MajorityConfig {
 public:
  MajorityConfig() = default;
  explicit MajorityConfig(std::set<NodeId> ids) : ids_(std::move(ids)) {}

  const std::set<NodeId>& ids() const { return ids_; }
  std::set<NodeId>& mutable_ids() { return ids_; }
  size_t size() const { return ids_.size(); }
  bool empty() const { return ids_.empty(); }
  bool Contains(NodeId id) const { return ids_.count(id) != 0; }

  // The largest value v such that a majority acked at least v. For an empty config returns
  // UINT64_MAX (no constraint). Unknown voters count as 0.
  uint64_t CommittedIndex(const AckedIndexer& acked) const;

  // The outcome of an election given the votes so far (true = granted). Votes from
  // non-members are ignored. An empty config wins.
  VoteResult Vote(const std::map<NodeId, bool>& votes) const;

  // "(1 2 3)" for scripts and logs.
  std::string ToString() const;

  bool operator==(const MajorityConfig&) const = default;

 private:
  std::set<NodeId> ids_;
};

// The voters of a group: `incoming` always; `outgoing` non-empty only while joint.
struct JointConfig {
  MajorityConfig incoming;
  MajorityConfig outgoing;

  bool IsJoint() const { return !outgoing.empty(); }
  // Every voter of either half, sorted.
  std::set<NodeId> Ids() const;
  bool Contains(NodeId id) const { return incoming.Contains(id) || outgoing.Contains(id); }

  // min of both halves' CommittedIndex.
  uint64_t CommittedIndex(const AckedIndexer& acked) const;
  // Won if both halves won; Lost if either lost; else Pending.
  VoteResult Vote(const std::map<NodeId, bool>& votes) const;

  // "(1 2 3)" or "(1 2 3)&&(1 2 4)".
  std::string ToString() const;

  bool operator==(const JointConfig&) const = default;
};

}  // namespace synod::raft
