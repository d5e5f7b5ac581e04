// Transport: how a node's core sends Raft messages to its peers.
//
// Sending never blocks and never fails synchronously: a message may be delayed, duplicated,
// reordered or lost, and the protocol above copes. A node learns about a peer it cannot reach
// through ReportUnreachable on its own initiative, not from here. Incoming messages are
// delivered by the owner of the node (the simulator, or the real node's network loop) by
// calling the node's receive method; this interface is only the sending half.
//
// Thread-safety: called from the node's core thread only.
#pragma once

#include "common/ids.h"
#include "raft/types.h"

namespace synod::env {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Send(raft::Message msg) = 0;
};

}  // namespace synod::env
