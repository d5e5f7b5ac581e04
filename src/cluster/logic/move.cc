#include "cluster/logic/move.h"

#include <algorithm>
#include <string>

#include "cluster/logic/layout.h"

namespace synod::cluster {

namespace {

bool Has(const std::vector<NodeId>& v, NodeId n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

}  // namespace

Status CheckMove(const ShardDescriptor& d, NodeId from, NodeId to) {
  const std::string shard = "shard " + std::to_string(d.group.value());
  if (d.group == kMetaGroup) return Status::InvalidArgument("the meta shard does not move");
  if (from == kNoNode || to == kNoNode) return Status::InvalidArgument("node ids start at 1");
  if (from == to) return Status::InvalidArgument("--from and --to are the same node");
  // Asked again after an interruption: M a learner (being caught up), or the move done.
  const bool from_member = Has(d.voters, from) || Has(d.learners, from);
  if ((Has(d.learners, to) && from_member) || (Has(d.voters, to) && !from_member)) {
    return Status::Ok();
  }
  if (!Has(d.voters, from)) {
    return Status::InvalidArgument("node " + std::to_string(from.value()) +
                                   " holds no voting replica of " + shard);
  }
  if (Has(d.voters, to) || Has(d.learners, to)) {
    return Status::InvalidArgument("node " + std::to_string(to.value()) + " holds a replica of " +
                                   shard + " already");
  }
  return Status::Ok();
}

MoveStep NextMoveStep(const ShardDescriptor& d, NodeId from, NodeId to) {
  const bool from_member = from != kNoNode && (Has(d.voters, from) || Has(d.learners, from));
  if (to == kNoNode) return from_member ? MoveStep::kRemoveSource : MoveStep::kDone;
  if (Has(d.learners, to)) return MoveStep::kWait;
  if (!Has(d.voters, to)) return MoveStep::kAddLearner;
  return from_member ? MoveStep::kRemoveSource : MoveStep::kDone;
}

}  // namespace synod::cluster
