// RaftTransport: how a node's Raft groups send messages to their peers on other nodes.
//
// A node hosts many groups and keeps one connection per node pair for all of them, so every
// message travels with the id of its group (the envelope): the receiving node routes it to its
// replica of that group. The Raft core knows nothing of groups; each Replica stamps its own.
//
// Sending never blocks and never fails synchronously: a message may be delayed, duplicated,
// reordered or lost, and the protocol above copes. A node learns about a peer it cannot reach
// through Replica::ReportUnreachable, not from here. Incoming messages are delivered by the
// owner of the node (the simulator, or the real node's network loop); this interface is only
// the sending half. Implementations: the simulator's network (sim/) and the real node's
// envelope over env::PeerTransport (cluster/peer_wire.h).
//
// Thread-safety: called from the node's core thread only.
#pragma once

#include "common/ids.h"
#include "raft/types.h"

namespace synod::cluster {

class RaftTransport {
 public:
  virtual ~RaftTransport() = default;
  // Sends `msg` (addressed to msg.to) for group `group`.
  virtual void Send(GroupId group, raft::Message msg) = 0;
  // Quiescence notices (see Store), beside the Raft messages: the leader of `group` at `term`
  // tells `to` that the group is idle with every log ending at `index`; a member asks the
  // leader `to` to wake `group` up.
  virtual void SendQuiesce(NodeId to, GroupId group, Term term, LogIndex index) = 0;
  virtual void SendWake(NodeId to, GroupId group) = 0;
  // A removal notice (Store::ReceiveRemoved): `to` sent a message for `group`, whose
  // configuration as this replica applied it up to `index` does not list `to`.
  virtual void SendRemoved(NodeId to, GroupId group, LogIndex index) = 0;
};

}  // namespace synod::cluster
