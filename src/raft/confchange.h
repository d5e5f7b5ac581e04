// Membership changes: the configuration of a group and the rules for changing it
// (Raft thesis §4.3 joint consensus; etcd's confchange package).
//
// A ConfChange is a list of single changes plus a transition. It either takes effect as a
// simple change (at most one voter added or removed: any majority of the old config overlaps
// any majority of the new one) or enters a joint configuration (old && new) that a later,
// empty ConfChange leaves. Learners never vote; a voter demoted to learner during a joint
// config stays a voter of the outgoing half until the joint config is left ("learners_next").
//
// Everything here is a pure function on MembershipConfig values; the Raft core applies the
// result to its progress tracking.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "raft/quorum.h"
#include "raft/types.h"

namespace synod::raft {

enum class ConfChangeType : uint8_t {
  kAddNode,     // add (or promote a learner to) a voter
  kRemoveNode,  // remove a voter or learner
  kAddLearner,  // add a learner (or demote a voter to learner)
};

struct ConfChangeSingle {
  ConfChangeType type = ConfChangeType::kAddNode;
  NodeId node;
  bool operator==(const ConfChangeSingle&) const = default;
};

enum class ConfChangeTransition : uint8_t {
  // Simple change when possible (one voter added/removed), else joint with auto leave.
  kAuto,
  // Always joint; leave automatically once the joint config is committed.
  kJointImplicit,
  // Always joint; stay until an empty ConfChange (LeaveJoint) is proposed.
  kJointExplicit,
};

struct ConfChange {
  ConfChangeTransition transition = ConfChangeTransition::kAuto;
  std::vector<ConfChangeSingle> changes;
  // Opaque bytes carried with the change and handed back when it is applied; Raft never reads
  // them. The node puts the addresses of members being added here, so every replica learns
  // them from the log. At most kContextBytesMax.
  std::string context;
  static constexpr size_t kContextBytesMax = 64 * 1024;

  // An empty change means "leave the joint configuration".
  bool IsLeaveJoint() const { return changes.empty(); }
  // Whether applying this change enters a joint configuration, and if so whether it leaves
  // automatically.
  bool EntersJoint() const;
  bool AutoLeave() const;

  // The byte encoding stored in a kConfChange entry's data.
  std::string Encode() const;
  // REQUIRES nothing: returns kInvalidArgument on malformed bytes.
  static Result<ConfChange> Decode(std::string_view bytes);

  // "v2 v3 l4 r5" style, as used by the interaction scripts ("" for leave-joint).
  std::string ToString() const;
  // Parses the ToString form; transition is kAuto unless set by the caller.
  static Result<ConfChange> Parse(std::string_view text);

  bool operator==(const ConfChange&) const = default;
};

// The membership configuration tracked by every node (leader or not).
struct MembershipConfig {
  JointConfig voters;
  std::set<NodeId> learners;
  std::set<NodeId> learners_next;
  bool auto_leave = false;

  bool IsJoint() const { return voters.IsJoint(); }
  bool IsVoter(NodeId id) const { return voters.Contains(id); }
  bool IsLearner(NodeId id) const { return learners.count(id) != 0; }
  // Voters (both halves) and learners.
  std::set<NodeId> AllIds() const;

  ConfState ToConfState() const;
  // REQUIRES nothing: returns kInvalidArgument if `cs` violates the ConfState invariants.
  static Result<MembershipConfig> FromConfState(const ConfState& cs);

  // "voters=(1 2 3)&&(1 2) learners=(4) learners_next=(3) autoleave".
  std::string ToString() const;
  bool operator==(const MembershipConfig&) const = default;
};

// Applies `cc` to `current` and returns the new configuration, or kInvalidArgument with a
// reason when the change is not allowed:
//  - entering a joint config while already joint; leaving when not joint;
//  - a simple change that alters more than one voter;
//  - a change that leaves no voter;
//  - (for learners_next) promoting a node that is being demoted, etc.
// Learners and voters stay disjoint; removing an unknown node is a no-op.
Result<MembershipConfig> ApplyConfChange(const MembershipConfig& current, const ConfChange& cc);

// The three operations ApplyConfChange dispatches to (etcd's confchange.Changer), for callers
// and tests that need one directly. Each checks the invariants of `current` and of its result.
//
// Enters old && new: the incoming voters are copied to the outgoing half, then `changes` are
// applied to the incoming half. Fails if `current` is joint or has no voter.
Result<MembershipConfig> EnterJointConfig(const MembershipConfig& current, bool auto_leave,
                                          const std::vector<ConfChangeSingle>& changes);
// Leaves old && new: learners_next become learners and the outgoing half is dropped.
// Fails if `current` is not joint.
Result<MembershipConfig> LeaveJointConfig(const MembershipConfig& current);
// Applies `changes` without a joint phase. Fails if `current` is joint or if the incoming
// voters change by more than one node (two majorities might then not overlap).
Result<MembershipConfig> ApplySimpleConfChange(const MembershipConfig& current,
                                               const std::vector<ConfChangeSingle>& changes);

}  // namespace synod::raft
