// Moving a shard's replica from one node to another (`synod shard move ID --from N --to M`):
// the steps, decided from the shard's descriptor as the meta shard holds it, so that any node
// can drive a move and pick it up after a failure or a leader change:
//
//  1. add M as a learner (it gets an empty replica, which the leader fills by snapshot);
//  2. wait: the shard's leader promotes a learner to voter once its log is close behind
//     (GroupHost's learner promotion, joint consensus);
//  3. remove N (joint consensus; a removed leader steps down and the others elect one), whose
//     replica then destroys itself and its data (Store);
//  4. done once the descriptor names M a voter and N no member.
//
// The old replica is removed only after the new one is a voter: there are never fewer voters
// than before. (A planted bug that removes it first is the elastic cluster's to add.)
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "cluster/logic/shard.h"
#include "common/ids.h"
#include "common/status.h"

namespace synod::cluster {

enum class MoveStep : uint8_t {
  kAddLearner,    // propose M as a learner
  kWait,          // M is a learner: the leader promotes it when it caught up
  kRemoveSource,  // M is a voter: propose removing N
  kDone,          // M a voter, N no member
};

// kInvalidArgument when the move makes no sense for this descriptor: the meta shard, N not a
// voter, M already a member, N == M, a node id 0. A move asked again after an interruption is
// accepted where the descriptor shows it under way (M a learner, N a member) or done (M a voter,
// N no member): it finishes, or answers at once.
Status CheckMove(const ShardDescriptor& d, NodeId from, NodeId to);

// The next step for `d` (see the file comment). A descriptor where neither is a member (N was
// removed some other way and M never added) gives kAddLearner. The placement logic also adds a
// replica without removing one (from = kNoNode: done once M is a voter) and removes one without
// adding one (to = kNoNode: kRemoveSource while N is a member, then kDone).
MoveStep NextMoveStep(const ShardDescriptor& d, NodeId from, NodeId to);

}  // namespace synod::cluster
